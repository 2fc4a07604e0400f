//! The Verilog pipeline target, end to end, against the golden interpreter and real tools.
//!
//! Every XDP program of the corpus that the kernel verifier accepts is lifted (calls inlined),
//! optimized with the `hw` pipeline and compiled to a pipeline block; programs the backend
//! refuses are listed with the reason. For the accepted ones:
//! - the pipeline simulator runs every corpus packet back to back, one per clock, and must give
//!   the interpreter's verdict and packet for each, and the same maps at the end;
//! - the emitted Verilog runs under Verilator with the same packets, map contents and an
//!   output that stalls now and then, and must give the simulator's outputs, entry and exit
//!   cycles and memories, cycle for cycle;
//! - with the output always ready every packet leaves exactly `stages` cycles after it
//!   entered, one per clock.

mod support;
#[path = "support/verilog_programs.rs"]
mod verilog_programs;

use backends::verilog::CompiledPipeline;
use hw::tools::stimulus::{Stimulus, StimulusPacket};
use sim::pipeline::{packet_in, run_xdp_pipeline, PipelineSim};
use sim::runtime::{ExecState, Runtime, XdpInput};
use verilog_programs::{
    compile, corpus_object, kernel_accepted_candidates as candidates, runtime_for,
};

/// The corpus packets an XDP frame can hold (the others `BPF_PROG_TEST_RUN` refuses).
fn runnable_packets() -> Vec<XdpInput> {
    support::engine_diff::corpus_packets()
        .iter()
        .map(|p| XdpInput::new(p.clone()))
        .filter(|i| ExecState::for_xdp(i).is_ok())
        .collect()
}

#[test]
fn pipeline_simulator_matches_the_interpreter_on_the_corpus() {
    let packets = runnable_packets();
    let all = candidates();
    let (mut compared, mut runs, mut failures, mut rejected) = (0, 0, Vec::new(), Vec::new());
    for c in &all {
        let compiled = match &c.compiled {
            Ok(p) => p,
            Err(why) => {
                rejected.push(format!("{}: {why}", c.name));
                continue;
            }
        };
        let block = &compiled.block;
        let mut rt_interp = runtime_for(&c.obj);
        let mut rt_pipe = runtime_for(&c.obj);
        let want: Vec<_> = packets
            .iter()
            .map(|p| sim::interp::run_xdp(&c.obj, c.index, &mut rt_interp, p))
            .collect();
        let (got, run) = match run_xdp_pipeline(block, &mut rt_pipe, &packets, 0, &[]) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: {e}", c.name));
                continue;
            }
        };
        let mut bad = 0;
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            runs += 1;
            let same = match w {
                Ok(w) => {
                    w.retval == g.retval
                        && w.test_run_data() == g.packet
                        && w.redirect == g.redirect
                }
                Err(_) => false,
            };
            if !same {
                if bad < 3 {
                    failures.push(format!(
                        "{}: packet {k}: interpreter {:?}, pipeline retval {} ({} bytes, redirect {:?})",
                        c.name,
                        w.as_ref().map(|o| (o.retval, o.packet.len(), &o.redirect)),
                        g.retval,
                        g.packet.len(),
                        g.redirect
                    ));
                }
                bad += 1;
            }
        }
        if rt_interp.snapshot() != rt_pipe.snapshot() {
            failures.push(format!("{}: map contents differ after all packets", c.name));
            bad += 1;
        }
        // One packet per clock: with the output always ready, packet k enters at cycle k and
        // leaves `stages` cycles later.
        let stages = block.stages as u64;
        for (k, o) in got.iter().enumerate() {
            if o.entry_cycle != k as u64 || o.exit_cycle != k as u64 + stages {
                failures.push(format!(
                    "{}: packet {k} entered at {} and left at {}, expected {k} and {}",
                    c.name,
                    o.entry_cycle,
                    o.exit_cycle,
                    k as u64 + stages
                ));
                break;
            }
        }
        compared += 1;
        println!(
            "compared {:60} {} packets in {} cycles, {} stages, window {} bytes, {bad} mismatches",
            c.name,
            packets.len(),
            run.cycles,
            block.stages,
            block.window_bytes
        );
    }
    println!(
        "{} kernel-accepted XDP programs: {compared} accepted by the pipeline backend and compared over {runs} packet runs, {} rejected, {} failures",
        all.len(),
        rejected.len(),
        failures.len()
    );
    for r in &rejected {
        println!("  rejected: {r}");
    }
    assert!(
        compared >= 3 || verilog_programs::candidates_filtered(),
        "only {compared} programs were compared"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The stimulus the Verilator testbench gets for `packets`, with the memories as the runtime
/// holds them and `out_ready` following `ready`.
fn stimulus(
    block: &hw::pipeline::Block,
    rt: &Runtime,
    packets: &[XdpInput],
    gaps: &[u32],
    ready: &[bool],
) -> Stimulus {
    let mut sim = PipelineSim::new(block);
    sim::pipeline::load_memories(&mut sim, rt).expect("memories");
    let mut s = Stimulus {
        ready: ready.to_vec(),
        ..Stimulus::default()
    };
    for (k, rows) in sim.memories.iter().enumerate() {
        for (r, bytes) in rows.iter().enumerate() {
            if bytes.iter().any(|&b| b != 0) {
                s.memory_rows.push((k as u32, r as u32, bytes.clone()));
            }
        }
    }
    for (p, &gap) in packets.iter().zip(gaps) {
        let pin = packet_in(block, p, gap);
        s.packets.push(StimulusPacket {
            gap,
            len: pin.len,
            ingress_ifindex: pin.ingress_ifindex,
            rx_queue: pin.rx_queue,
            window: pin.window,
        });
    }
    s
}

/// Runs the same packets through the simulator and Verilator, both starting from the corpus
/// runtime of `obj`, and compares everything.
fn sim_versus_verilator(
    c: &CompiledPipeline,
    obj: &frontend::Object,
    packets: &[XdpInput],
    gaps: &[u32],
    ready: &[bool],
) -> Result<(usize, u64), String> {
    sim_versus_verilator_from(c, &runtime_for(obj), packets, gaps, ready)
}

/// [`sim_versus_verilator`] with memories loaded from `rt`.
fn sim_versus_verilator_from(
    c: &CompiledPipeline,
    rt: &Runtime,
    packets: &[XdpInput],
    gaps: &[u32],
    ready: &[bool],
) -> Result<(usize, u64), String> {
    let block = &c.block;
    let stim = stimulus(block, rt, packets, gaps, ready);
    let mut sim = PipelineSim::new(block);
    sim::pipeline::load_memories(&mut sim, rt)?;
    let pins: Vec<_> = packets
        .iter()
        .zip(gaps)
        .map(|(p, &g)| packet_in(block, p, g))
        .collect();
    let want = sim::pipeline::drive(&mut sim, &pins, ready, &mut |_, _, _| {});
    let tb = backends::verilog::testbench::verilator_testbench(block);
    let design =
        hw::tools::verilator::build(&backends::verilog::emit::core_name(block), &c.verilog, &tb)?;
    let got = design.run(&stim)?;
    if got.entries != want.entries {
        let k = got
            .entries
            .iter()
            .zip(&want.entries)
            .position(|(a, b)| a != b);
        return Err(format!(
            "entry cycles differ (first at packet {k:?}): Verilator {} entries, simulator {}",
            got.entries.len(),
            want.entries.len()
        ));
    }
    if got.outputs.len() != want.outputs.len() {
        return Err(format!(
            "Verilator gave {} packets, the simulator {}",
            got.outputs.len(),
            want.outputs.len()
        ));
    }
    for (k, (g, w)) in got.outputs.iter().zip(&want.outputs).enumerate() {
        if (g.cycle, g.retval, g.len, &g.window) != (w.cycle, w.retval, w.len, &w.window)
            || (g.redirect_kind, g.redirect_key, &g.redirect_value)
                != (w.redirect_kind, w.redirect_key, &w.redirect_value)
        {
            return Err(format!(
                "packet {k}: Verilator (cycle {}, retval {:#x}, len {}), simulator (cycle {}, retval {:#x}, len {}){}",
                g.cycle, g.retval, g.len, w.cycle, w.retval, w.len,
                if g.window != w.window { ", windows differ" } else { "" }
            ));
        }
    }
    for (k, row, bytes) in &got.memory_rows {
        if &sim.memories[*k as usize][*row as usize] != bytes {
            return Err(format!("memory {k} row {row} differs after the run"));
        }
    }
    Ok((got.outputs.len(), got.cycles))
}

#[test]
fn verilator_agrees_with_the_pipeline_simulator_cycle_for_cycle() {
    if let Err(why) = hw::tools::verilator::available() {
        panic!("this test needs Verilator: {why}");
    }
    let all_packets = runnable_packets();
    // Every 7th packet keeps the Verilator runs short while spanning the whole corpus.
    let packets: Vec<XdpInput> = all_packets.iter().step_by(7).cloned().collect();
    // Packets arrive mostly back to back with some idle cycles, and the output stalls in
    // bursts, so the stall logic is exercised as much as the datapath.
    let gaps: Vec<u32> = (0..packets.len())
        .map(|k| if k % 11 == 5 { (k % 3) as u32 + 1 } else { 0 })
        .collect();
    let ready: Vec<bool> = (0..packets.len() * 2)
        .map(|c| (c / 5) % 4 != 3 && c % 13 != 0)
        .collect();
    let (mut compared, mut failures) = (0, Vec::new());
    for c in candidates() {
        let Ok(compiled) = &c.compiled else { continue };
        match sim_versus_verilator(compiled, &c.obj, &packets, &gaps, &ready) {
            Ok((n, cycles)) => {
                compared += 1;
                println!(
                    "verilator {:60} {n} packets, {cycles} cycles, identical",
                    c.name
                );
            }
            Err(e) => failures.push(format!("{}: {e}", c.name)),
        }
    }
    println!(
        "{compared} programs identical under Verilator and the simulator, {} failures",
        failures.len()
    );
    assert!(
        compared >= 3 || verilog_programs::candidates_filtered(),
        "only {compared} programs compared"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The first runnable corpus packet that is IPv4 with IP protocol `proto`.
fn ipv4_packet(proto: u8) -> XdpInput {
    runnable_packets()
        .into_iter()
        .find(|p| p.packet.len() >= 34 && p.packet[12..14] == [8, 0] && p.packet[23] == proto)
        .expect("an IPv4 packet of that protocol in the corpus")
}

#[test]
fn back_to_back_updates_of_one_map_entry_equal_sequential_execution() {
    // xdp1 counts packets per IP protocol in a per-CPU array: every packet of one flow
    // increments the same entry, so each packet's read-modify-write depends on the one just
    // before it in the pipeline.
    let obj = corpus_object("linux/xdp1_kern.o");
    let compiled = compile(&obj, 0).expect("xdp1 compiles to a pipeline");
    assert!(
        !compiled.block.memories.is_empty(),
        "xdp1 should keep its counters in a memory"
    );
    let (udp, tcp) = (ipv4_packet(17), ipv4_packet(6));
    // Long runs of one flow, interleaved with runs of another of varying length.
    let mut packets = Vec::new();
    for run in 0..40 {
        packets.extend(std::iter::repeat_n(udp.clone(), 50 + run));
        packets.extend(std::iter::repeat_n(tcp.clone(), run % 7));
    }
    let mut rt_seq = runtime_for(&obj);
    for p in &packets {
        sim::interp::run_xdp(&obj, 0, &mut rt_seq, p).expect("interpreter");
    }
    let mut rt_pipe = runtime_for(&obj);
    let (out, run) =
        run_xdp_pipeline(&compiled.block, &mut rt_pipe, &packets, 0, &[]).expect("pipeline");
    assert_eq!(out.len(), packets.len());
    assert_eq!(
        run.cycles,
        packets.len() as u64 + compiled.block.stages as u64,
        "one packet per clock"
    );
    assert_eq!(
        rt_seq.snapshot(),
        rt_pipe.snapshot(),
        "counters after {} back-to-back packets",
        packets.len()
    );
    // The same stream under Verilator, stalled now and then, gives the same memories.
    if let Err(why) = hw::tools::verilator::available() {
        panic!("this test needs Verilator: {why}");
    }
    let gaps = vec![0; packets.len()];
    let ready: Vec<bool> = (0..packets.len()).map(|c| c % 17 != 3).collect();
    let (n, _) =
        sim_versus_verilator(&compiled, &obj, &packets, &gaps, &ready).expect("Verilator agrees");
    assert_eq!(n, packets.len());
    println!(
        "{} back-to-back packets of two flows: pipeline, Verilator and sequential execution agree",
        packets.len()
    );
}

/// An Ethernet, IPv4 and UDP packet from `src` to `dst` with `payload` zero bytes.
fn udp_packet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: usize) -> XdpInput {
    let mut p = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let ip_len = (20 + 8 + payload) as u16;
    p.extend_from_slice(&[
        0x45,
        0,
        (ip_len >> 8) as u8,
        ip_len as u8,
        0,
        0,
        0,
        0,
        64,
        17,
        0,
        0,
    ]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.resize(p.len() + payload, 0);
    XdpInput::new(p)
}

#[test]
fn back_to_back_updates_of_hash_entries_equal_sequential_execution() {
    // Per-source counters in a hash map and per-flow counters in a per-CPU hash map, updated
    // through the value pointers of their lookups, plus the clock and the random state: every
    // packet reads what the packet before it wrote, one clock earlier.
    let path = support::clang_bpf_object("verilog_hash");
    let obj = frontend::elf::read_file(&path).unwrap_or_else(|d| panic!("{d}"));
    let compiled = compile(&obj, 0).unwrap_or_else(|e| panic!("verilog_hash.c: {e}"));
    let block = &compiled.block;
    let layout_of = |name: &str| {
        block
            .memories
            .iter()
            .find_map(|m| match m.kind {
                hw::pipeline::MemoryKind::Hash(l) if m.name == name => Some(l),
                _ => None,
            })
            .unwrap_or_else(|| panic!("map `{name}` should be a hash memory"))
    };
    let (sources, flows) = (layout_of("by_source"), layout_of("by_flow"));
    assert_eq!((sources.buckets, sources.ways), (32, 4));
    assert_eq!((flows.buckets, flows.ways, flows.key_bytes), (128, 4, 16));
    // 10.0.0.1 and 10.0.0.33 fall into one bucket, so they are told apart by the parallel key
    // comparison of its ways; 10.0.1.7 has a bucket of its own; 10.0.0.2 is not in the map.
    let (a, b, c, absent) = ([10, 0, 0, 1], [10, 0, 0, 33], [10, 0, 1, 7], [10, 0, 0, 2]);
    assert_eq!(sources.bucket_of(&a), sources.bucket_of(&b));
    assert_ne!(sources.bucket_of(&a), sources.bucket_of(&c));
    let dst = [192, 168, 1, 10];
    let mut rt = runtime_for(&obj);
    for s in [a, b, c] {
        rt.map_by_name_mut("by_source")
            .expect("by_source")
            .set(&s, &[0; 24])
            .expect("seed by_source");
    }
    let flow_key = |s: [u8; 4], sport: u16| {
        let mut k = s.to_vec();
        k.extend_from_slice(&dst);
        k.extend_from_slice(&sport.to_be_bytes());
        k.extend_from_slice(&53u16.to_be_bytes());
        k.extend_from_slice(&17u32.to_le_bytes());
        k
    };
    // Flows from a and b are counted per flow; c's flow is not in the flow map.
    for (s, sport) in [(a, 1000), (b, 1000), (a, 2000)] {
        rt.map_by_name_mut("by_flow")
            .expect("by_flow")
            .set(&flow_key(s, sport), &[0; 8])
            .expect("seed by_flow");
    }
    let mut sim0 = PipelineSim::new(block);
    sim::pipeline::load_memories(&mut sim0, &rt).expect("memories");
    let source_mem = block
        .memories
        .iter()
        .position(|m| m.name == "by_source")
        .expect("by_source memory");
    let bucket = &sim0.memories[source_mem][sources.bucket_of(&a) as usize];
    assert_eq!(
        hw::pipeline::hash_table::entries(&sources, bucket)
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>(),
        vec![a.to_vec(), b.to_vec()],
        "both keys share a bucket, in two ways"
    );
    let streams = [
        udp_packet(a, dst, 1000, 53, 10),
        udp_packet(b, dst, 1000, 53, 30),
        udp_packet(a, dst, 2000, 53, 0),
        udp_packet(c, dst, 1000, 53, 20),
        udp_packet(absent, dst, 1000, 53, 5),
    ];
    // Long runs of one flow, interleaved with short runs of the others, so the same entry,
    // another way of its bucket and other buckets follow each other at every distance.
    let mut packets = Vec::new();
    for run in 0..60usize {
        packets.extend(std::iter::repeat_n(streams[run % 3].clone(), 5 + run % 17));
        packets.push(streams[(run + 1) % 5].clone());
        packets.extend(std::iter::repeat_n(streams[3 + run % 2].clone(), run % 4));
    }
    let mut rt_seq = Runtime::new(&obj, sim::runtime::RuntimeConfig::default()).expect("rt");
    rt_seq.load_snapshot(&rt.snapshot()).expect("snapshot");
    let want: Vec<_> = packets
        .iter()
        .map(|p| sim::interp::run_xdp(&obj, 0, &mut rt_seq, p).expect("interpreter"))
        .collect();
    let mut rt_pipe = Runtime::new(&obj, sim::runtime::RuntimeConfig::default()).expect("rt");
    rt_pipe.load_snapshot(&rt.snapshot()).expect("snapshot");
    let (got, run) = run_xdp_pipeline(block, &mut rt_pipe, &packets, 0, &[]).expect("pipeline");
    assert_eq!(
        run.cycles,
        packets.len() as u64 + block.stages as u64,
        "one packet per clock"
    );
    let mut verdicts = std::collections::BTreeMap::new();
    for (k, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(
            (w.retval, w.test_run_data()),
            (g.retval, g.packet.clone()),
            "packet {k}"
        );
        *verdicts.entry(w.retval).or_insert(0usize) += 1;
    }
    assert_eq!(
        rt_seq.snapshot(),
        rt_pipe.snapshot(),
        "maps after {} packets",
        packets.len()
    );
    assert_eq!(rt_seq.clock(), rt_pipe.clock(), "the clock after the run");
    assert_eq!(
        rt_seq.random_state(),
        rt_pipe.random_state(),
        "the random state"
    );
    // Every verdict the program can give occurred, so the hazards reached every path.
    for v in [0u64, 1, 2, 3] {
        assert!(
            verdicts.contains_key(&v),
            "verdict {v} never occurred: {verdicts:?}"
        );
    }
    if let Err(why) = hw::tools::verilator::available() {
        panic!("this test needs Verilator: {why}");
    }
    let gaps: Vec<u32> = (0..packets.len()).map(|k| u32::from(k % 29 == 7)).collect();
    let ready: Vec<bool> = (0..packets.len() * 2).map(|c| c % 11 != 4).collect();
    let (n, cycles) = sim_versus_verilator_from(&compiled, &rt, &packets, &gaps, &ready)
        .expect("Verilator agrees");
    assert_eq!(n, packets.len());
    println!(
        "{} back-to-back packets over two hash maps ({} stages): verdicts {verdicts:?}; pipeline, sequential execution and Verilator ({cycles} cycles with stalls) agree",
        packets.len(),
        block.stages
    );
}

#[test]
fn verilog_of_a_small_program_is_stable() {
    let obj = corpus_object("prototype-kernel/xdp_ttl_kern.o");
    let compiled = compile(&obj, 0).expect("xdp_ttl compiles to a pipeline");
    insta::assert_snapshot!("xdp_ttl_pipeline_v", compiled.verilog);
}

#[test]
fn yosys_synthesizes_a_corpus_pipeline_within_budget() {
    if let Err(why) = hw::tools::yosys::available() {
        panic!("this test needs Yosys: {why}");
    }
    let obj = corpus_object("linux/xdp1_kern.o");
    let compiled = compile(&obj, 0).expect("xdp1 compiles to a pipeline");
    let top = backends::verilog::emit::core_name(&compiled.block);
    let r = hw::tools::yosys::synth_xilinx(&top, &compiled.verilog).expect("synthesis");
    println!(
        "xdp1: {} stages, {} LUTs, {} flip-flops, {} BRAM, {} LUT-RAM cells, {} DSP, deepest stage {} LUT levels",
        compiled.block.stages, r.luts, r.flip_flops, r.brams, r.lutram_cells, r.dsps, r.lut_levels
    );
    let measured = backends::verilog::emit::stage_lut_levels(&compiled.block, &r.register_depths);
    let model = backends::verilog::PipelineOptions::default().model;
    let predicted: Vec<u32> = compiled
        .schedule
        .stage_delay_ps
        .iter()
        .map(|&d| model.lut_levels(d))
        .collect();
    println!("xdp1 LUT levels per stage: Yosys {measured:?}, delay model {predicted:?}");
    assert!(
        r.luts > 0 && r.flip_flops > 0,
        "synthesis produced no logic: {r:?}"
    );
    // The per-stage measurement covers every stage and finds no path longer than Yosys's
    // own longest one.
    assert_eq!(measured.len(), compiled.block.stages as usize);
    assert!(
        measured.iter().all(|&l| l as u64 <= r.lut_levels),
        "a stage deeper than Yosys's longest path: {measured:?} vs {}",
        r.lut_levels
    );
    // The map's read-modify-write spans two stages (the read registered, the write
    // forwarded), so no stage is deeper than the 6 LUT levels of 250 MHz on UltraScale+
    // (../shared/design/targets.md), and the counters sit in block RAM.
    assert!(
        r.lut_levels <= 6,
        "deepest stage {} LUT levels",
        r.lut_levels
    );
    assert!(r.brams >= 1, "the counters should be in block RAM: {r:?}");
    // eHDL's designs take 6.5 to 13.3 percent of an Alveo U50's 872K LUTs
    // (../shared/design/targets.md); this one must stay well under the low end.
    assert!((r.luts as f64) < 0.065 * 872_000.0 / 2.0, "{} LUTs", r.luts);
}
