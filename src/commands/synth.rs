//! `nicc synth OBJ`: synthesizes a program's Verilog pipeline with Yosys and prints the
//! resources, the logic depth and the clock they allow.

use std::fmt::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// The BPF ELF object.
    pub object: PathBuf,
    /// Synthesize only this program (a function or section name).
    #[arg(long)]
    pub program: Option<String>,
}

/// LUTs of an AMD Alveo U50 (872K, as ../shared/design/targets.md gives it), for percentages.
const U50_LUTS: f64 = 872_000.0;

pub fn synth(args: &SynthArgs) -> Result<String, String> {
    let obj = super::read_object(&args.object)?;
    let programs = super::compile_verilog::selected_programs(&obj, args.program.as_deref())?;
    let mut s = String::new();
    for i in programs {
        let name = &obj.programs[i].name;
        let c = match super::compile_verilog::compile_xdp_program(&obj, i, None) {
            Ok(c) => c,
            Err(e) => {
                let _ = writeln!(s, "{name}: not synthesized: {e}");
                continue;
            }
        };
        let top = backends::verilog::emit::core_name(&c.block);
        let r = hw::tools::yosys::synth_xilinx(&top, &c.verilog)?;
        let _ = writeln!(
            s,
            "{name}: {} stages; {} LUTs ({:.3}% of an Alveo U50), {} flip-flops, {} BRAM tiles, {} LUT-RAM cells, {} DSPs; deepest stage {} LUT levels; slowest stage by the delay model {:.0} MHz",
            c.block.stages,
            r.luts,
            100.0 * r.luts as f64 / U50_LUTS,
            r.flip_flops,
            r.brams,
            r.lutram_cells,
            r.dsps,
            r.lut_levels,
            c.schedule.fmax_mhz()
        );
    }
    Ok(s)
}
