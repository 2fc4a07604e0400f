//! `nicc diff-kernel OBJ --pcap IN`: runs the same packets through the interpreter and through
//! the running kernel (BPF_PROG_TEST_RUN) and reports every difference.

use crate::kernel_diff::{diff_program, DiffReport};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct DiffKernelArgs {
    /// The BPF ELF object.
    pub object: PathBuf,
    /// Only this program (function or section name); by default every XDP program.
    #[arg(long)]
    pub program: Option<String>,
    /// The packets, as a pcap or pcapng capture.
    #[arg(long)]
    pub pcap: PathBuf,
    /// Seed the maps of both engines from this JSON file.
    #[arg(long)]
    pub maps_in: Option<PathBuf>,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn execute(args: &DiffKernelArgs) -> Result<Vec<DiffReport>, String> {
    hw::linux::kernel_available()?;
    let obj = super::read_object(&args.object)?;
    let capture = sim::pcap::read_file(&args.pcap)?;
    let packets: Vec<Vec<u8>> = capture.ethernet().map(|p| p.data.clone()).collect();
    let seed = args.maps_in.as_deref().map(super::read_maps).transpose()?;
    let programs: Vec<usize> = match &args.program {
        Some(name) => vec![super::select_program(&obj, Some(name))?],
        None => obj
            .programs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.kind == frontend::object::ProgramKind::Xdp)
            .map(|(i, _)| i)
            .collect(),
    };
    if programs.is_empty() {
        return Err(format!("{} holds no XDP program to compare", obj.name));
    }
    Ok(programs
        .into_iter()
        .map(|i| diff_program(&obj, i, &packets, seed.as_ref()))
        .collect())
}
