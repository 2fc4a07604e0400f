//! `nicc check OBJ --target T`: says, program by program, what fits a hardware target and
//! what does not (and by how much), without writing anything.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The BPF ELF object.
    pub object: PathBuf,
    /// The hardware target to check against.
    #[arg(long, value_enum)]
    pub target: super::sim::SimTarget,
    /// Check only this program (a function or section name); by default every program.
    #[arg(long)]
    pub program: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn check(args: &CheckArgs) -> Result<String, String> {
    match args.target {
        super::sim::SimTarget::Nfp => super::compile_nfp::check(args),
        super::sim::SimTarget::Verilog => super::compile_verilog::check(args),
    }
}
