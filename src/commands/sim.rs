//! `nicc sim OBJ --target T --pcap IN`: runs a program on a cycle-accurate model of a
//! hardware target. Each target's simulator has a module of its own; this one holds the
//! arguments they share and refuses options that do not belong to the chosen target.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// The BPF ELF object.
    pub object: PathBuf,
    /// The hardware model to simulate.
    #[arg(long, value_enum)]
    pub target: SimTarget,
    /// The program to run: a function name or a section name.
    #[arg(long)]
    pub program: Option<String>,
    /// The packets, as a pcap or pcapng capture.
    #[arg(long)]
    pub pcap: PathBuf,
    /// Write the packets the program passed, bounced or redirected to this pcap file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed the maps from this JSON file before the first packet.
    #[arg(long)]
    pub maps_in: Option<PathBuf>,
    /// Write the final map contents to this JSON file.
    #[arg(long)]
    pub maps_out: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// NFP: the number of microengines packets are dispatched to.
    #[arg(long)]
    pub engines: Option<u32>,
    /// NFP: hardware threads per microengine.
    #[arg(long)]
    pub threads: Option<u32>,
    /// NFP: the clock of the microengines, in MHz.
    #[arg(long)]
    pub mhz: Option<f64>,
    /// Verilog: write the waveforms of the run to this VCD file.
    #[arg(long)]
    pub vcd: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SimTarget {
    /// The NFP-style microengine model, executing the encoded microcode words.
    Nfp,
    /// The packet-pipeline model, executing the pipeline block the Verilog is printed from.
    Verilog,
}

pub fn sim(args: &SimArgs) -> Result<String, String> {
    match args.target {
        SimTarget::Nfp => {
            if args.vcd.is_some() {
                return Err(
                    "--vcd belongs to --target verilog; the NFP model writes no waveforms".into(),
                );
            }
            super::sim_nfp::sim(args)
        }
        SimTarget::Verilog => {
            if args.engines.is_some() || args.threads.is_some() || args.mhz.is_some() {
                return Err(
                    "--engines, --threads and --mhz belong to --target nfp; a pipeline takes one packet per clock"
                        .into(),
                );
            }
            super::sim_verilog::sim(args)
        }
    }
}
