//! `nicc compile OBJ --target T -o OUT`: one command for every code generator. This module
//! only parses the shared arguments and hands them to the module of the chosen target, so
//! that each target's output format lives in one file of its own.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CompileArgs {
    /// The BPF ELF object.
    pub object: PathBuf,
    /// What to generate code for.
    #[arg(long, value_enum)]
    pub target: CompileTarget,
    /// Where to write the result: an object file for native targets, a file stem for `nfp`
    /// (words, listing and JSON beside it), a directory for `verilog`.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Compile only this program (a function or section name); by default every program.
    #[arg(long)]
    pub program: Option<String>,
    /// The optimization pipeline to run first; by default the one named after the target's
    /// family (`native`, `nfp` or `hw`). `none` compiles the program as lifted.
    #[arg(long)]
    pub pipeline: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CompileTarget {
    /// x86-64 machine code in a relocatable ELF object, with a C header.
    #[value(name = "x86_64", alias = "x86-64")]
    X86_64,
    /// AArch64 machine code in a relocatable ELF object, with a C header.
    Aarch64,
    /// Microcode for an NFP-style SmartNIC.
    Nfp,
    /// A Verilog packet pipeline for an FPGA NIC.
    Verilog,
}

impl CompileTarget {
    /// The pipeline whose cost model fits the target.
    pub fn default_pipeline(self) -> &'static str {
        match self {
            CompileTarget::X86_64 | CompileTarget::Aarch64 => "native",
            CompileTarget::Nfp => "nfp",
            CompileTarget::Verilog => "hw",
        }
    }
}

pub fn compile(args: &CompileArgs) -> Result<String, String> {
    match args.target {
        CompileTarget::X86_64 | CompileTarget::Aarch64 => super::compile_native::compile(args),
        CompileTarget::Nfp => super::compile_nfp::compile(args),
        CompileTarget::Verilog => super::compile_verilog::compile(args),
    }
}
