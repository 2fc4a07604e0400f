//! `nicc sim OBJ --target nfp --pcap IN`: compiles the program to microcode, runs every
//! packet through the microengine model (which executes the encoded words on the shared
//! runtime), and reports per packet the verdict, the output length and the cycles from the
//! packet reaching its context to the verdict, and in total the verdicts and the modelled
//! throughput for the configuration (by default the NFP-4000 offload: 50 engines, 4 threads,
//! 800 MHz).

use super::sim::SimArgs;
use serde::Serialize;
use sim::nfp::{run_xdp_nfp, schedule, throughput, NfpConfig, NfpMachine, Trace};
use sim::pcap;
use sim::runtime::{Runtime, RuntimeConfig, XdpAction, XdpInput};
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Serialize)]
struct PacketLine {
    index: usize,
    verdict: String,
    retval: u64,
    out_len: usize,
    /// Cycles from dispatch to verdict with the context alone on its engine.
    cycles: u64,
    /// Cycles from dispatch to verdict in the scheduled run of all packets.
    latency: u64,
    instructions: u64,
    error: Option<String>,
}

#[derive(Serialize)]
struct Report {
    program: String,
    config: NfpConfig,
    microcode_words: usize,
    packets: Vec<PacketLine>,
    verdicts: BTreeMap<String, usize>,
    mean_cycles: f64,
    /// Packets per microsecond for the capture as dispatched.
    run_mpps: f64,
    /// Steady-state packets per microsecond with the capture repeated.
    mpps: f64,
}

pub fn sim(args: &SimArgs) -> Result<String, String> {
    let obj = super::read_object(&args.object)?;
    let index = super::select_program(&obj, args.program.as_deref())?;
    let d = NfpConfig::NFP4000_OFFLOAD;
    let config = NfpConfig {
        engines: args.engines.unwrap_or(d.engines),
        threads: args.threads.unwrap_or(d.threads),
        mhz: args.mhz.unwrap_or(d.mhz),
    };
    if config.engines == 0
        || config.threads == 0
        || config.threads > 8
        || config.mhz.is_nan()
        || config.mhz <= 0.0
    {
        return Err(format!(
            "--engines and --threads must be at least 1 (at most 8 threads per engine) and --mhz positive; got {} engines, {} threads, {} MHz",
            config.engines, config.threads, config.mhz
        ));
    }
    let prog = super::compile_nfp::compile_program(&obj, index, "nfp")?;
    let per_ctx = 128 / config.threads.max(1) as usize;
    if per_ctx < hw::nfp::regs::GPRS_PER_BANK as usize && prog.registers + 6 > per_ctx {
        return Err(format!(
            "with {} threads a context has {per_ctx} registers per bank; the program needs {} (use --threads 4 or fewer)",
            config.threads,
            prog.registers + 6
        ));
    }
    let capture = pcap::read_file(&args.pcap)?;
    let mut rt = Runtime::new(&obj, RuntimeConfig::default()).map_err(|d| d.to_string())?;
    if let Some(path) = &args.maps_in {
        let seed = super::read_maps(path)?;
        rt.load_snapshot(&seed)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let machine = NfpMachine::load(&prog, &mut rt).map_err(|d| d.to_string())?;
    let mut lines = Vec::new();
    let mut traces: Vec<Trace> = Vec::new();
    let mut out_packets = Vec::new();
    let mut verdicts = BTreeMap::new();
    for (i, packet) in capture.packets.iter().enumerate() {
        let input = XdpInput {
            packet: packet.data.clone(),
            ..XdpInput::default()
        };
        match run_xdp_nfp(&machine, &mut rt, &input) {
            Ok((o, t)) => {
                if matches!(
                    o.action,
                    XdpAction::Pass | XdpAction::Tx | XdpAction::Redirect
                ) {
                    out_packets.push(pcap::Packet {
                        data: o.packet.clone(),
                        orig_len: o.packet.len() as u32,
                        ..packet.clone()
                    });
                }
                *verdicts.entry(o.action.name().to_string()).or_insert(0) += 1;
                lines.push(PacketLine {
                    index: i,
                    verdict: o.action.name().to_string(),
                    retval: o.retval,
                    out_len: o.packet.len(),
                    cycles: t.alone_cycles(&machine.table),
                    latency: 0,
                    instructions: t.instructions,
                    error: None,
                });
                traces.push(t);
            }
            Err(e) => {
                *verdicts.entry("aborted".to_string()).or_insert(0) += 1;
                lines.push(PacketLine {
                    index: i,
                    verdict: "aborted".into(),
                    retval: 0,
                    out_len: 0,
                    cycles: 0,
                    latency: 0,
                    instructions: 0,
                    error: Some(e.to_string()),
                });
            }
        }
    }
    let refs: Vec<&Trace> = traces.iter().collect();
    let timing = schedule(&refs, &config, &machine.table);
    for (k, l) in lines.iter_mut().filter(|l| l.error.is_none()).enumerate() {
        l.latency = timing.latency.get(k).copied().unwrap_or(0);
    }
    let mpps = throughput(&refs, &config, &machine.table, 8);
    let mean_cycles = if traces.is_empty() {
        0.0
    } else {
        lines.iter().map(|l| l.cycles as f64).sum::<f64>() / traces.len() as f64
    };
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
    if let Some(path) = &args.maps_out {
        machine.store_maps(&mut rt).map_err(|d| d.to_string())?;
        let text = serde_json::to_string_pretty(&rt.snapshot()).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let report = Report {
        program: obj.programs[index].name.clone(),
        config,
        microcode_words: prog.words.len(),
        packets: lines,
        verdicts,
        mean_cycles,
        run_mpps: timing.mpps,
        mpps,
    };
    if args.json {
        return serde_json::to_string_pretty(&report)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string());
    }
    let mut out = String::new();
    for l in &report.packets {
        match &l.error {
            None => {
                let _ = writeln!(
                    out,
                    "packet {:4}: {:8} out {:5} bytes  {:6} cycles alone, {:6} scheduled, {:5} instructions",
                    l.index, l.verdict, l.out_len, l.cycles, l.latency, l.instructions
                );
            }
            Some(e) => {
                let _ = writeln!(out, "packet {:4}: aborted: {e}", l.index);
            }
        }
    }
    let _ = writeln!(
        out,
        "{}: {} microcode words; {} packets: {}; mean {:.1} cycles per packet; {} engines x {} threads at {} MHz: {:.1} Mpps steady state",
        report.program,
        report.microcode_words,
        report.packets.len(),
        report
            .verdicts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        report.mean_cycles,
        config.engines,
        config.threads,
        config.mhz,
        report.mpps
    );
    Ok(out)
}
