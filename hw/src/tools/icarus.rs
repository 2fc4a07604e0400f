//! Icarus Verilog (`iverilog`, `vvp`): the second opinion on the emitted RTL. The shell
//! testbench is plain Verilog, so the same text that Verilator compiles runs here, and the two
//! simulators' outputs and cycle counts must agree.

use super::{probe, run_in, scratch_dir};
use std::path::PathBuf;

/// A compiled Icarus simulation, reusable for any number of runs.
#[derive(Debug)]
pub struct IcarusDesign {
    pub dir: PathBuf,
}

/// Probes Icarus Verilog; the version line or what is missing.
pub fn available() -> Result<String, String> {
    probe("iverilog")?;
    probe("vvp")
}

/// Compiles `files` (name and text) with top module `top` and the given macro definitions.
pub fn build(
    top: &str,
    files: &[(&str, &str)],
    defines: &[(&str, String)],
) -> Result<IcarusDesign, String> {
    available()?;
    let dir = scratch_dir("icarus")?;
    let mut args: Vec<String> = vec![
        "-g2005".into(),
        "-s".into(),
        top.into(),
        "-o".into(),
        "sim.vvp".into(),
    ];
    for (name, value) in defines {
        args.push(format!("-D{name}={value}"));
    }
    for (name, text) in files {
        std::fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
        args.push((*name).to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Err(e) = run_in(&dir, "iverilog", &args) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(IcarusDesign { dir })
}

impl IcarusDesign {
    /// Runs the simulation with `stimulus` as the `+stimulus=` file; the `+results=` file's text.
    pub fn run(&self, stimulus: &str) -> Result<String, String> {
        std::fs::write(self.dir.join("stimulus.txt"), stimulus).map_err(|e| e.to_string())?;
        run_in(
            &self.dir,
            "vvp",
            &[
                "-n",
                "sim.vvp",
                "+stimulus=stimulus.txt",
                "+results=results.txt",
            ],
        )?;
        std::fs::read_to_string(self.dir.join("results.txt"))
            .map_err(|e| format!("no results: {e}"))
    }
}

impl Drop for IcarusDesign {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
