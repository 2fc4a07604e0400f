//! `nicc synth OBJ...`: synthesizes programs' Verilog pipelines with Yosys and prints the
//! resources, the logic depth and the clock they allow: one line per program, or with
//! `--table` one Markdown table over every XDP program of every object given (programs the
//! pipeline backend refuses are listed under it with the reason). Each stage's depth is shown
//! twice: the LUT levels the delay model predicted when it scheduled the stage, and the LUT
//! levels Yosys's netlist has on the deepest path into the stage's registers, so that the
//! model can be checked against the tool stage by stage.

use std::fmt::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// BPF ELF objects.
    #[arg(required = true)]
    pub objects: Vec<PathBuf>,
    /// Synthesize only this program (a function or section name).
    #[arg(long)]
    pub program: Option<String>,
    /// Print a Markdown table (program, stages, LUTs, flip-flops, BRAM, LUT levels of the
    /// deepest stage, the delay model's clock).
    #[arg(long)]
    pub table: bool,
}

/// LUTs of an AMD Alveo U50 (872K, as ../shared/design/targets.md gives it), for percentages.
const U50_LUTS: f64 = 872_000.0;

pub fn synth(args: &SynthArgs) -> Result<String, String> {
    let mut s = String::new();
    let mut refused = Vec::new();
    if args.table {
        println!(
            "| program | stages | LUTs | % U50 | flip-flops | BRAM | LUT-RAM | DSP | LUT levels per stage, Yosys | predicted by the model | deepest, Yosys `ltp` | model MHz |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
    }
    for path in &args.objects {
        let obj = match super::read_object(path) {
            Ok(o) => o,
            Err(e) if args.objects.len() > 1 => {
                refused.push(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let programs =
            match super::compile_verilog::selected_programs(&obj, args.program.as_deref()) {
                Ok(p) => p,
                Err(e) if args.objects.len() > 1 => {
                    refused.push(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
        for i in programs {
            let name = &obj.programs[i].name;
            let c = match super::compile_verilog::compile_xdp_program(&obj, i, None) {
                Ok(c) => c,
                Err(e) => {
                    refused.push(e);
                    continue;
                }
            };
            let top = backends::verilog::emit::core_name(&c.block);
            let r = hw::tools::yosys::synth_xilinx(&top, &c.verilog)?;
            let measured = backends::verilog::emit::stage_lut_levels(&c.block, &r.register_depths);
            let model = backends::verilog::PipelineOptions::default().model;
            let predicted: Vec<u32> = c
                .schedule
                .stage_delay_ps
                .iter()
                .map(|&d| model.lut_levels(d))
                .collect();
            let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
            if args.table {
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_default();
                // Rows are printed as they are made: a table over the corpus takes hours of
                // Yosys time, and a partial table is worth having.
                println!(
                    "| {file} {name} | {} | {} | {:.3} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    c.block.stages,
                    r.luts,
                    100.0 * r.luts as f64 / U50_LUTS,
                    r.flip_flops,
                    r.brams,
                    r.lutram_cells,
                    r.dsps,
                    list(&measured),
                    list(&predicted),
                    r.lut_levels,
                    model_clock(&c.schedule)
                );
            } else {
                let _ = writeln!(
                    s,
                    "{name}: {} stages; {} LUTs ({:.3}% of an Alveo U50), {} flip-flops, {} BRAM tiles, {} LUT-RAM cells, {} DSPs; deepest stage {} LUT levels; slowest stage by the delay model {} MHz\n  LUT levels per stage, Yosys: {}\n  predicted by the model:      {}",
                    c.block.stages,
                    r.luts,
                    100.0 * r.luts as f64 / U50_LUTS,
                    r.flip_flops,
                    r.brams,
                    r.lutram_cells,
                    r.dsps,
                    r.lut_levels,
                    model_clock(&c.schedule),
                    list(&measured),
                    list(&predicted)
                );
            }
        }
    }
    if args.table {
        let _ = writeln!(
            s,
            "\nFor scale: eHDL's pipelines take 6.5 to 13.3% of an Alveo U50 (ASPLOS 2023, as ../shared/design/targets.md gives it). LUT levels are counted on Yosys's generic LUT6 netlist (`synth -flatten; abc -lut 6`), where adders are LUT chains rather than carry primitives; about 6 per stage is the aim for 250 MHz on UltraScale+ (targets.md)."
        );
    }
    if !refused.is_empty() {
        let _ = writeln!(s);
        for e in refused {
            let _ = writeln!(s, "not synthesized: {e}");
        }
    }
    Ok(s)
}

/// The clock the delay model allows, in MHz, or "wires only" for a pipeline without logic.
fn model_clock(schedule: &backends::verilog::check::ScheduleReport) -> String {
    if schedule.stage_delay_ps.iter().all(|&d| d == 0) {
        "wires only".to_string()
    } else {
        format!("{:.0}", schedule.fmax_mhz())
    }
}
