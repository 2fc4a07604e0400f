//! `nicc synth OBJ`: synthesizes a program's Verilog pipeline with Yosys and prints the
//! resources, the logic depth and the clock they allow.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// The BPF ELF object.
    pub object: PathBuf,
    /// Synthesize only this program (a function or section name).
    #[arg(long)]
    pub program: Option<String>,
}

pub fn synth(_args: &SynthArgs) -> Result<String, String> {
    Err("nicc synth: the Verilog target is not built yet".into())
}
