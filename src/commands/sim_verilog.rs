//! `nicc sim OBJ --target verilog --pcap IN`: runs a capture through the cycle-accurate model
//! of the program's pipeline (the block the Verilog is printed from), one packet per clock,
//! and reports per packet the verdict and the cycles it entered and left, with maps seeded
//! from and written back to the shared runtime's JSON format, and waveforms with `--vcd`.

use super::sim::SimArgs;
use sim::pipeline::run_xdp_pipeline_traced;
use sim::runtime::{ExecState, Runtime, RuntimeConfig, XdpInput};
use std::fmt::Write;

pub fn sim(args: &SimArgs) -> Result<String, String> {
    let obj = super::read_object(&args.object)?;
    let index = super::select_program(&obj, args.program.as_deref())?;
    let compiled = super::compile_verilog::compile_xdp_program(&obj, index, None)?;
    let block = &compiled.block;
    let mut rt = Runtime::new(&obj, RuntimeConfig::default()).map_err(|d| d.to_string())?;
    if let Some(path) = &args.maps_in {
        rt.load_snapshot(&super::read_maps(path)?)?;
    }
    let capture = sim::pcap::read_file(&args.pcap)?;
    let mut inputs = Vec::new();
    let mut skipped = Vec::new();
    for (k, p) in capture.ethernet().enumerate() {
        let input = XdpInput::new(p.data.clone());
        match ExecState::for_xdp(&input) {
            Ok(_) => inputs.push((k, p.clone(), input)),
            Err(why) => skipped.push(format!("packet {k}: {why}")),
        }
    }
    let xdp: Vec<XdpInput> = inputs.iter().map(|(_, _, i)| i.clone()).collect();
    let mut vcd = args
        .vcd
        .as_ref()
        .map(|_| sim::pipeline::vcd::VcdWriter::new(&sim::pipeline::PipelineSim::new(block)));
    let (outcomes, run) = run_xdp_pipeline_traced(block, &mut rt, &xdp, 0, &[], vcd.as_mut())?;
    if let (Some(path), Some(w)) = (&args.vcd, &vcd) {
        std::fs::write(path, w.finish(&backends::verilog::emit::core_name(block)))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.maps_out {
        let text = serde_json::to_string_pretty(&rt.snapshot()).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.out {
        let kept: Vec<sim::pcap::Packet> = inputs
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| {
                matches!(
                    o.action,
                    sim::runtime::XdpAction::Pass | sim::runtime::XdpAction::Tx
                )
            })
            .map(|((_, p, _), o)| sim::pcap::Packet {
                data: o.packet.clone(),
                orig_len: o.packet.len() as u32,
                ..p.clone()
            })
            .collect();
        let file = std::fs::File::create(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        sim::pcap::write(std::io::BufWriter::new(file), 1, &kept).map_err(|e| e.to_string())?;
    }
    if args.json {
        let packets: Vec<_> = inputs
            .iter()
            .zip(&outcomes)
            .map(|((k, _, _), o)| {
                serde_json::json!({
                    "packet": k, "retval": o.retval, "action": o.action.name(),
                    "entry_cycle": o.entry_cycle, "exit_cycle": o.exit_cycle,
                    "latency_cycles": o.exit_cycle - o.entry_cycle,
                })
            })
            .collect();
        let v = serde_json::json!({
            "program": obj.programs[index].name,
            "stages": block.stages,
            "window_bytes": block.window_bytes,
            "cycles": run.cycles,
            "packets": packets,
            "skipped": skipped,
        });
        return serde_json::to_string_pretty(&v).map_err(|e| e.to_string());
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} stages, window {} bytes; {} packets in {} cycles ({:.3} packets per cycle)",
        obj.programs[index].name,
        block.stages,
        block.window_bytes,
        outcomes.len(),
        run.cycles,
        outcomes.len() as f64 / run.cycles.max(1) as f64
    );
    for ((k, _, _), o) in inputs.iter().zip(&outcomes) {
        let _ = writeln!(
            s,
            "packet {k}: {} (retval {}), entered cycle {}, left cycle {}",
            o.action.name(),
            o.retval,
            o.entry_cycle,
            o.exit_cycle
        );
    }
    for w in skipped {
        let _ = writeln!(s, "skipped {w}");
    }
    Ok(s)
}
