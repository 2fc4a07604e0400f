//! Verilator: builds a Verilog design with its generated C++ testbench
//! (`verilator --cc --exe --build`) and runs it on a stimulus file.

use super::stimulus::{Stimulus, TestbenchResult};
use super::{probe, run_in, scratch_dir};
use std::path::PathBuf;

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

/// Builds `verilog` (top module `top`) with the C++ testbench `testbench`.
pub fn build(top: &str, verilog: &str, testbench: &str) -> Result<VerilatedDesign, String> {
    available()?;
    let dir = scratch_dir("verilator")?;
    std::fs::write(dir.join("design.v"), verilog).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("tb.cpp"), testbench).map_err(|e| e.to_string())?;
    run_in(
        &dir,
        "verilator",
        &[
            "--cc",
            "--exe",
            "--build",
            "-Wno-fatal",
            "-Wno-WIDTH",
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
            "design.v",
            "tb.cpp",
        ],
    )?;
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
