//! Drivers for the real hardware tools nicc checks its Verilog with: Verilator (with a
//! generated C++ testbench), Icarus Verilog as a second opinion, and Yosys for synthesis
//! figures. Each driver probes for its tool and says plainly what is missing.
//!
//! - [`stimulus`]: the text formats the generated core testbenches read and write.
//! - [`shell_stimulus`]: the same for the shell testbench (AXI4-Stream beats, AXI4-Lite).
//! - [`verilator`]: build and run a Verilator testbench (C++ or Verilog).
//! - [`icarus`]: build and run a Verilog testbench under Icarus Verilog.
//! - [`yosys`]: `synth_xilinx` resource counts and logic depth.
//! - [`netlist_depth`]: LUT levels into every register of a Yosys JSON netlist.

pub mod icarus;
pub mod netlist_depth;
pub mod shell_stimulus;
pub mod stimulus;
pub mod verilator;
pub mod yosys;

use std::path::Path;
use std::process::Command;

/// Runs `tool --version` and returns the first line, or says the tool is missing.
pub fn probe(tool: &str) -> Result<String, String> {
    let out = Command::new(tool)
        .arg(if tool == "iverilog" {
            "-V"
        } else {
            "--version"
        })
        .output()
        .map_err(|e| {
            format!(
                "`{tool}` is not installed or not on PATH ({e}); install the Debian package `{}`",
                debian_package(tool)
            )
        })?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

fn debian_package(tool: &str) -> &'static str {
    match tool {
        "verilator" => "verilator",
        "iverilog" | "vvp" => "iverilog",
        "yosys" => "yosys",
        _ => "(unknown)",
    }
}

/// A fresh scratch directory under the system temporary directory.
pub fn scratch_dir(tag: &str) -> Result<std::path::PathBuf, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("nicc-{tag}-{}-{n}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Runs a command in `dir`, returning its standard output or an error with its output.
pub fn run_in(dir: &Path, program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if !out.status.success() {
        let mut msg = String::from_utf8_lossy(&out.stderr).to_string();
        msg.push_str(&String::from_utf8_lossy(&out.stdout));
        let tail: Vec<&str> = msg.lines().rev().take(30).collect();
        return Err(format!(
            "`{program} {}` failed ({}):\n{}",
            args.join(" "),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}
