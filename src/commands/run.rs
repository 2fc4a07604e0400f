//! `nicc run OBJ --pcap IN`: runs an XDP program on every packet of a capture with the golden
//! interpreter and reports each verdict, the output packets and, on request, the maps.

use crate::report::{PacketResult, RunReport};
use frontend::mapdata::{to_hex, MapsSnapshot};
use sim::interp::run_xdp;
use sim::pcap;
use sim::runtime::{Redirect, Runtime, RuntimeConfig, XdpAction, XdpInput};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The BPF ELF object.
    pub object: PathBuf,
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
    /// Print the final map contents after the summary.
    #[arg(long)]
    pub print_maps: bool,
    /// Print one JSON object (`packets`, `verdicts`) instead of text.
    #[arg(long)]
    pub json: bool,
    /// The engine: `jit` (Cranelift native code), `interp` (the golden bytecode interpreter)
    /// or `ir` (the IR executor). By default the JIT, or the interpreter when the program
    /// cannot be lifted or compiled.
    #[arg(long, value_enum)]
    pub engine: Option<Engine>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Jit,
    Interp,
    Ir,
}

/// A program made ready for one engine.
enum Prepared {
    Interp,
    Ir(ir::Module, ir::FuncRef),
    Jit(Box<sim::native::JitProgram>),
}

/// Lifts (and for the JIT compiles) the program; with no engine asked for, falls back to the
/// interpreter and says why.
fn prepare(
    obj: &frontend::Object,
    index: usize,
    engine: Option<Engine>,
    warnings: &mut Vec<String>,
) -> Result<(Prepared, Engine), String> {
    if engine == Some(Engine::Interp) {
        return Ok((Prepared::Interp, Engine::Interp));
    }
    let lifted = frontend::lift::lift_object(obj, &frontend::lift::LiftOptions::default())
        .map_err(|d| d.to_string())
        .and_then(|m| {
            // `lift_object` lists program entries in the object's program order.
            let entry = m
                .programs
                .get(index)
                .map(|p| p.func)
                .ok_or_else(|| "the lifted module lacks the program".to_string())?;
            Ok((m, entry))
        });
    let prepared = match (engine, lifted) {
        (Some(Engine::Ir), Ok((m, entry))) => Ok((Prepared::Ir(m, entry), Engine::Ir)),
        (_, Ok((m, entry))) => sim::native::JitProgram::new(&m, entry)
            .map(|j| (Prepared::Jit(Box::new(j)), Engine::Jit))
            .map_err(|d| d.to_string()),
        (_, Err(e)) => Err(e),
    };
    match (prepared, engine) {
        (Ok(p), _) => Ok(p),
        (Err(e), None) => {
            warnings.push(format!(
                "the JIT cannot run this program, so the interpreter does: {}",
                e.lines().next().unwrap_or("")
            ));
            Ok((Prepared::Interp, Engine::Interp))
        }
        (Err(e), Some(_)) => Err(e),
    }
}

/// The outcome of a run, before formatting.
pub struct RunOutput {
    pub program: String,
    pub engine: Engine,
    pub section: String,
    pub report: RunReport,
    pub maps: MapsSnapshot,
    pub trace: Vec<String>,
    pub warnings: Vec<String>,
    pub elapsed_us: u128,
}

pub fn execute(args: &RunArgs) -> Result<RunOutput, String> {
    let obj = super::read_object(&args.object)?;
    let index = super::select_program(&obj, args.program.as_deref())?;
    let capture = pcap::read_file(&args.pcap)?;
    let mut warnings = capture.warnings.clone();
    let foreign = capture
        .packets
        .iter()
        .filter(|p| p.linktype != pcap::LINKTYPE_ETHERNET)
        .count();
    if foreign > 0 {
        warnings.push(format!(
            "{foreign} packets were not captured on Ethernet; the program sees their bytes as Ethernet frames"
        ));
    }
    let mut rt = Runtime::new(&obj, RuntimeConfig::default()).map_err(|d| d.to_string())?;
    if let Some(path) = &args.maps_in {
        let seed = super::read_maps(path)?;
        rt.load_snapshot(&seed)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let (prepared, engine) = prepare(&obj, index, args.engine, &mut warnings)?;
    let start = Instant::now();
    let mut report = RunReport::new();
    let mut out_packets = Vec::new();
    for (i, packet) in capture.packets.iter().enumerate() {
        let input = XdpInput {
            packet: packet.data.clone(),
            ..XdpInput::default()
        };
        let outcome = match &prepared {
            Prepared::Interp => run_xdp(&obj, index, &mut rt, &input),
            Prepared::Ir(m, entry) => sim::ir_exec::run_xdp_ir(m, *entry, &mut rt, &input),
            Prepared::Jit(j) => sim::native::run_xdp_native(j, &mut rt, &input),
        };
        let result = match outcome {
            Ok(outcome) => {
                if matches!(
                    outcome.action,
                    XdpAction::Pass | XdpAction::Tx | XdpAction::Redirect
                ) {
                    out_packets.push(pcap::Packet {
                        data: outcome.packet.clone(),
                        orig_len: outcome.packet.len() as u32,
                        ..packet.clone()
                    });
                }
                PacketResult {
                    index: i,
                    verdict: outcome.action.name().to_string(),
                    out_hex: to_hex(&outcome.packet),
                    retval: (outcome.retval > 4).then_some(outcome.retval),
                    redirect: outcome.redirect.as_ref().map(describe_redirect),
                    error: None,
                }
            }
            Err(diag) => PacketResult {
                index: i,
                verdict: "aborted".to_string(),
                out_hex: String::new(),
                retval: None,
                redirect: None,
                error: Some(diag.to_string()),
            },
        };
        report.push(result);
    }
    let elapsed_us = start.elapsed().as_micros();
    if let Some(path) = &args.out {
        let file = std::fs::File::create(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        pcap::write(
            std::io::BufWriter::new(file),
            pcap::LINKTYPE_ETHERNET,
            &out_packets,
        )
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let maps = rt.snapshot();
    if let Some(path) = &args.maps_out {
        let text = serde_json::to_string_pretty(&maps).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let program = &obj.programs[index];
    Ok(RunOutput {
        program: program.name.clone(),
        engine,
        section: program.section.clone(),
        report,
        maps,
        trace: rt.outputs().trace.clone(),
        warnings,
        elapsed_us,
    })
}

/// Formats a run for a person: the verdict of every packet (up to a screenful), the counts,
/// the trace output, and the maps when asked.
pub fn format_text(args: &RunArgs, out: &RunOutput) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let n = out.report.packets.len();
    let _ = writeln!(
        s,
        "program {} (section {}, engine {:?}): {} packets from {} in {} us",
        out.program,
        out.section,
        out.engine,
        n,
        args.pcap.display(),
        out.elapsed_us
    );
    const SHOWN: usize = 20;
    for p in out.report.packets.iter().take(SHOWN) {
        let len = p.out_hex.len() / 2;
        let _ = write!(s, "  #{:<4} {:<9} {:>5} bytes", p.index, p.verdict, len);
        if let Some(r) = &p.redirect {
            let _ = write!(s, "  -> {r}");
        }
        if let Some(v) = p.retval {
            let _ = write!(s, "  (return value {v})");
        }
        if let Some(e) = &p.error {
            let _ = write!(s, "\n{}", indent(e));
        }
        s.push('\n');
    }
    if n > SHOWN {
        let _ = writeln!(s, "  ... {} more (use --json for all)", n - SHOWN);
    }
    let counts: Vec<String> = out
        .report
        .verdicts
        .iter()
        .filter(|(_, c)| **c > 0)
        .map(|(v, c)| format!("{v} {c}"))
        .collect();
    let _ = writeln!(s, "verdicts: {}", counts.join(", "));
    for w in &out.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    if !out.trace.is_empty() {
        let _ = writeln!(s, "trace_printk output ({} lines):", out.trace.len());
        for line in out.trace.iter().take(SHOWN) {
            let _ = writeln!(s, "  {}", line.trim_end());
        }
    }
    if args.print_maps {
        let _ = writeln!(
            s,
            "maps:\n{}",
            serde_json::to_string_pretty(&out.maps).unwrap_or_default()
        );
    }
    s
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("        {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names a redirect target for people: an interface index, or a map and key.
fn describe_redirect(r: &Redirect) -> String {
    match r {
        Redirect::Ifindex(ifindex) => format!("ifindex {ifindex}"),
        Redirect::Map { map, key, .. } => format!("map {map} key {key}"),
    }
}
