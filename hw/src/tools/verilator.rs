//! Verilator: builds a Verilog design with its generated C++ testbench
//! (`verilator --cc --exe --build`) and runs it on a stimulus file.

use super::stimulus::{Stimulus, TestbenchResult};
use super::{probe, run_in, scratch_dir};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A built testbench binary, reusable for any number of stimuli.
#[derive(Debug)]
pub struct VerilatedDesign {
    pub dir: PathBuf,
    pub binary: PathBuf,
}

/// Probes Verilator; the version line or what is missing.
pub fn available() -> Result<String, String> {
    probe("verilator")
}

/// The `verilator` arguments every nicc build uses: a C++ model with its `main` (`--exe`),
/// built in place, optimized, uninitialized state and `x` as zeros (what the simulator
/// assumes), top module `top`, objects in `obj/` and the binary `obj/tb`; `extra_warnings_off`
/// names more warnings to silence than the width warnings every nicc design has.
fn base_args(top: &str, extra_warnings_off: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--cc", "--exe", "--build", "-Wno-fatal", "-Wno-WIDTH"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra_warnings_off.iter().map(|w| format!("-Wno-{w}")));
    for a in [
        "-O2",
        "--x-assign",
        "0",
        "--x-initial",
        "0",
        "--top-module",
        top,
        "-Mdir",
        "obj",
        "-o",
        "tb",
    ] {
        args.push(a.to_string());
    }
    args
}

/// The object files of Verilator's own C++ runtime. They do not depend on the design, and
/// compiling them is most of a build: for xdp1's pipeline, 5.0 s of 8.6 s (verilated.cpp
/// 4.1 s, verilated_threads.cpp 0.9 s; measured 2026-11-22 on this project's CI machine
/// shape with Verilator 5.006), which is why they are compiled once per process.
const RUNTIME_OBJECTS: [&str; 2] = ["verilated.o", "verilated_threads.o"];

/// The runtime objects of the first build in this process, as bytes so that no directory
/// outlives the process. Every build uses [`base_args`], and those are the only arguments
/// that change how the runtime is compiled (tracing, coverage and threads are never
/// enabled), so one copy fits every design.
static RUNTIME: Mutex<Option<Arc<RuntimeObjects>>> = Mutex::new(None);

/// Each runtime object file's name and contents.
type RuntimeObjects = Vec<(String, Vec<u8>)>;

/// Runs `verilator` with `args` in `dir`, linking the runtime objects kept from an earlier
/// build when there are some, and keeping this build's otherwise.
fn build_reusing_runtime(dir: &Path, mut args: Vec<String>) -> Result<(), String> {
    let kept = RUNTIME.lock().map_err(|e| e.to_string())?.clone();
    let obj = dir.join("obj");
    if let Some(objects) = &kept {
        std::fs::create_dir_all(&obj).map_err(|e| e.to_string())?;
        for (name, bytes) in objects.iter() {
            std::fs::write(obj.join(name), bytes).map_err(|e| e.to_string())?;
            // The makefile Verilator writes makes these objects depend on itself, so it
            // would recompile them; `make -o` declares them old and never to be remade.
            args.insert(0, format!("-o {name}"));
            args.insert(0, "-MAKEFLAGS".to_string());
        }
    }
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run_in(dir, "verilator", &arg_refs)?;
    if kept.is_none() {
        let mut objects = Vec::new();
        for name in RUNTIME_OBJECTS {
            match std::fs::read(obj.join(name)) {
                Ok(bytes) => objects.push((name.to_string(), bytes)),
                // A Verilator that names its runtime differently still builds correctly,
                // only without the saving.
                Err(_) => return Ok(()),
            }
        }
        let mut slot = RUNTIME.lock().map_err(|e| e.to_string())?;
        if slot.is_none() {
            *slot = Some(Arc::new(objects));
        }
    }
    Ok(())
}

/// Builds `verilog` (top module `top`) with the C++ testbench `testbench`.
pub fn build(top: &str, verilog: &str, testbench: &str) -> Result<VerilatedDesign, String> {
    available()?;
    let dir = scratch_dir("verilator")?;
    std::fs::write(dir.join("design.v"), verilog).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("tb.cpp"), testbench).map_err(|e| e.to_string())?;
    let mut args = base_args(top, &[]);
    args.extend(["design.v".to_string(), "tb.cpp".to_string()]);
    build_reusing_runtime(&dir, args)?;
    Ok(VerilatedDesign {
        binary: dir.join("obj").join("tb"),
        dir,
    })
}

impl VerilatedDesign {
    /// Runs the testbench on `stimulus`.
    pub fn run(&self, stimulus: &Stimulus) -> Result<TestbenchResult, String> {
        let stim = self.dir.join("stimulus.txt");
        let res = self.dir.join("results.txt");
        std::fs::write(&stim, stimulus.to_text()).map_err(|e| e.to_string())?;
        let bin = self.binary.to_string_lossy().to_string();
        run_in(&self.dir, &bin, &["stimulus.txt", "results.txt"])?;
        let text = std::fs::read_to_string(&res).map_err(|e| format!("no results: {e}"))?;
        TestbenchResult::parse(&text)
    }
}

impl Drop for VerilatedDesign {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Verilator build of a testbench written in Verilog (a top module with one `clk` input that
/// reads `+stimulus=` and writes `+results=` itself), driven by a C++ main that only toggles the
/// clock until `$finish`: the same testbench text then runs under Icarus Verilog too.
#[derive(Debug)]
pub struct VerilatedTestbench {
    design: VerilatedDesign,
}

/// The C++ main of a Verilog testbench with top module `top`.
fn clock_main(top: &str) -> String {
    format!(
        "// Clock driver for the Verilog testbench `{top}`, generated by nicc.\n\
         #include \"V{top}.h\"\n#include \"verilated.h\"\n\
         int main(int argc, char** argv) {{\n\
         \x20 Verilated::commandArgs(argc, argv);\n\
         \x20 V{top}* top = new V{top};\n\
         \x20 top->clk = 0;\n\
         \x20 top->eval();\n\
         \x20 while (!Verilated::gotFinish()) {{ top->clk = 1; top->eval(); top->clk = 0; top->eval(); }}\n\
         \x20 top->final();\n\
         \x20 delete top;\n\
         \x20 return 0;\n}}\n"
    )
}

/// Builds the Verilog testbench `top` from `files` (name and text) with macro `defines`.
pub fn build_verilog_testbench(
    top: &str,
    files: &[(&str, &str)],
    defines: &[(&str, String)],
) -> Result<VerilatedTestbench, String> {
    available()?;
    let dir = scratch_dir("verilator-tb")?;
    std::fs::write(dir.join("main.cpp"), clock_main(top)).map_err(|e| e.to_string())?;
    // The testbench's `#` delays are for Icarus; Verilator drives the clock from C++.
    let mut args = base_args(top, &["STMTDLY"]);
    for (name, value) in defines {
        args.push(format!("+define+{name}={value}"));
    }
    for (name, text) in files {
        std::fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
        args.push((*name).to_string());
    }
    args.push("main.cpp".into());
    let design = VerilatedDesign {
        binary: dir.join("obj").join("tb"),
        dir,
    };
    build_reusing_runtime(&design.dir, args)?;
    Ok(VerilatedTestbench { design })
}

impl VerilatedTestbench {
    /// Runs the testbench with `stimulus` as the `+stimulus=` file; the `+results=` file's text.
    pub fn run(&self, stimulus: &str) -> Result<String, String> {
        let dir = &self.design.dir;
        std::fs::write(dir.join("stimulus.txt"), stimulus).map_err(|e| e.to_string())?;
        let bin = self.design.binary.to_string_lossy().to_string();
        run_in(
            dir,
            &bin,
            &["+stimulus=stimulus.txt", "+results=results.txt"],
        )?;
        std::fs::read_to_string(dir.join("results.txt")).map_err(|e| format!("no results: {e}"))
    }
}
