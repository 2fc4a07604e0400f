//! Optimized IR to a packet pipeline (`hw::pipeline`), printed as Verilog with a testbench and a shell wrapper.
//!
//! One step per file: `ifconv` (predicated dataflow from the acyclic CFG), `schedule` (stages
//! for a clock period), `check` (the independent schedule checker), `vast` (the Verilog syntax
//! tree and printer), `emit` (block to module), `shell` (the OpenNIC-style AXI4-Stream/AXI4-Lite top level),
//! `testbench` (the Verilator C++ testbench of the core).
//! [`compile_program`] runs them in order and validates the block before anything prints it.

pub mod check;
pub mod emit;
pub mod ifconv;
pub mod schedule;
pub mod shell;
pub mod testbench;
pub mod vast;

use hw::pipeline::{Block, DelayModel};
use std::fmt;

/// Why a program does not fit the pipeline backend, at BPF instruction `insn` when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub insn: u32,
    pub message: String,
}

impl Rejection {
    pub fn new(insn: u32, message: impl Into<String>) -> Rejection {
        Rejection {
            insn,
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.insn == u32::MAX {
            f.write_str(&self.message)
        } else {
            write!(f, "instruction {}: {}", self.insn, self.message)
        }
    }
}

/// Options of the pipeline backend.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub ifconv: ifconv::IfConvOptions,
    /// The delay model the schedule is made with.
    pub model: DelayModel,
    /// The clock period; the model's when `None`.
    pub clock_period_ps: Option<u32>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            ifconv: ifconv::IfConvOptions::default(),
            model: DelayModel::ultrascale(),
            clock_period_ps: None,
        }
    }
}

/// A compiled program: the scheduled block, the checker's report, and the core's Verilog.
#[derive(Clone, Debug)]
pub struct CompiledPipeline {
    pub block: Block,
    pub schedule: check::ScheduleReport,
    pub verilog: String,
}

/// A Verilog identifier from a program name.
pub fn identifier(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s.insert_str(0, "p_");
    }
    s
}

/// Compiles entry `func` of `module` (calls inlined, after the `hw` pipeline) to a pipeline.
pub fn compile_program(
    module: &ir::Module,
    func: ir::FuncRef,
    name: &str,
    options: &PipelineOptions,
) -> Result<CompiledPipeline, Rejection> {
    let mut block = ifconv::if_convert(module, func, &identifier(name), &options.ifconv)?;
    schedule::schedule(&mut block, &options.model, options.clock_period_ps);
    let report = check::check_schedule(&block, &options.model);
    if !report.is_legal() {
        return Err(Rejection::new(
            u32::MAX,
            format!(
                "internal error: the schedule checker refused the schedule: {}",
                report.violations.join("; ")
            ),
        ));
    }
    let errors = hw::pipeline::validate(&block);
    if !errors.is_empty() {
        return Err(Rejection::new(
            u32::MAX,
            format!(
                "internal error: the pipeline block is malformed: {}",
                errors.join("; ")
            ),
        ));
    }
    let verilog = vast::module_to_string(&emit::core_module(&block));
    Ok(CompiledPipeline {
        block,
        schedule: report,
        verilog,
    })
}
