//! The NFP microengine model against the golden interpreter: the conformance suite, and every
//! XDP program of the corpus that the kernel verifier accepts, over the pcap corpus and the
//! generated packets. Each program is lifted with calls inlined, optimized by the `nfp`
//! pipeline, compiled to microcode words, and the simulator executes the words (decoded from
//! the encoding) on a runtime of its own: verdicts, output packets, redirects, trace output
//! and final map contents must be identical. Programs the backend rejects are listed with the
//! reason; counts and a per-program report (BPF instructions, microcode instructions, cycles
//! per packet, modelled Mpps at the NFP-4000 offload configuration) are printed.

mod support;

use backends::nfp::link::compile_linked;
use backends::nfp::{compile_function, EntryKind, NfpProgram};
use frontend::conformance::{self, ConformanceTest};
use frontend::lift::{lift_program, LiftOptions};
use frontend::object::{Function as ObjFunction, Program, ProgramKind};
use frontend::Object;
use passes::pass::PassContext;
use passes::pipeline::{pipeline, PassManager};
use sim::nfp::{run_memory_nfp, run_xdp_nfp, throughput, NfpConfig, NfpMachine, Trace};
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};

fn object_of(name: &str, insns: Vec<frontend::insn::RawInsn>, kind: ProgramKind) -> Object {
    Object {
        name: format!("{name}.o"),
        programs: vec![Program {
            name: name.into(),
            section: "conformance".into(),
            kind,
            functions: vec![ObjFunction {
                name: name.into(),
                section: "conformance".into(),
                start: 0,
                len: insns.len(),
                section_offset: 0,
            }],
            lines: Vec::new(),
            insns,
        }],
        ..Object::default()
    }
}

/// Lifts program `i` with calls inlined, runs the `nfp` pipeline and compiles it; an XDP
/// program that makes tail calls gets the object's other XDP programs linked in.
fn compile(obj: &Object, i: usize, kind: EntryKind) -> Result<NfpProgram, String> {
    let lift = |p: usize| -> Result<ir::Module, frontend::Diagnostic> {
        let mut module = lift_program(obj, p, &LiftOptions { inline_calls: true })?;
        let pipe = pipeline("nfp").ok_or(frontend::Diagnostic::new("no nfp pipeline"))?;
        PassManager::new()
            .run(&pipe, &mut module, &mut PassContext::new(pipe.target))
            .map_err(|e| frontend::Diagnostic::new(format!("pipeline: {e}")))?;
        Ok(module)
    };
    let describe = |d: frontend::Diagnostic| {
        let at = d
            .insn
            .map(|i| format!(" (BPF instruction {i})"))
            .unwrap_or_default();
        format!("{}{at}", d.message)
    };
    if kind == EntryKind::Xdp {
        let candidates: Vec<usize> = obj
            .programs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.kind == ProgramKind::Xdp)
            .map(|(k, _)| k)
            .collect();
        return compile_linked(&lift, i, &candidates).map_err(describe);
    }
    let module = lift(i).map_err(|d| format!("not lifted: {}", d.message))?;
    let entry = module.programs[0].func;
    compile_function(&module, entry, kind).map_err(describe)
}

#[test]
fn conformance_suite_nfp_matches_the_interpreter() {
    let dir = support::corpus().join("conformance").join("tests");
    let files = support::files_under(&dir, &|p| p.extension().is_some_and(|e| e == "data"));
    assert!(
        !files.is_empty(),
        "no conformance tests under {}",
        dir.display()
    );
    let (mut compared, mut rejected, mut mismatches) = (0, Vec::new(), Vec::new());
    let (mut bpf_total, mut micro_total) = (0usize, 0usize);
    for path in &files {
        let t: ConformanceTest =
            conformance::read(path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let Ok(raw) = conformance::program_of(&t) else {
            rejected.push(format!("{name}: does not assemble"));
            continue;
        };
        let obj = object_of(&name, raw.clone(), ProgramKind::SocketFilter);
        let prog = match compile(&obj, 0, EntryKind::Memory) {
            Ok(p) => p,
            Err(e) => {
                rejected.push(format!("{name}: {e}"));
                continue;
            }
        };
        let mut rt = Runtime::empty(RuntimeConfig::default());
        let machine = match NfpMachine::load(&prog, &mut rt) {
            Ok(m) => m,
            Err(d) => {
                mismatches.push(format!("{name}: compiled but did not load: {d}"));
                continue;
            }
        };
        let (mut m1, mut m2) = (t.mem.clone(), t.mem.clone());
        let want = sim::interp::run_with_memory(&raw, &mut m1);
        let got = run_memory_nfp(&machine, &mut rt, &mut m2);
        compared += 1;
        bpf_total += raw.len();
        micro_total += prog.words.len();
        match (&want, &got) {
            (Ok(w), Ok((g, _))) if w == g && m1 == m2 => {}
            (Err(_), Err(_)) => {}
            _ => mismatches.push(format!(
                "{name}: interpreter {:?}, NFP {:?}{}",
                want.as_ref().map_err(|d| d.message.clone()),
                got.as_ref().map(|(v, _)| *v).map_err(|d| d.message.clone()),
                if m1 != m2 { " (memory differs)" } else { "" }
            )),
        }
    }
    println!(
        "conformance: {} tests, {compared} compiled and compared NFP vs interpreter, {} rejected, {} mismatches; {bpf_total} BPF slots -> {micro_total} microcode words",
        files.len(),
        rejected.len(),
        mismatches.len()
    );
    for r in &rejected {
        println!("  rejected: {r}");
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(compared > 0, "no conformance test was compared");
}

/// The per-program line of the report.
struct ProgramFigures {
    what: String,
    bpf: usize,
    /// The program's own words (the map routines apart).
    micro: usize,
    /// Words of shared map routines.
    routines: usize,
    cycles: f64,
    mpps: f64,
}

#[test]
fn kernel_accepted_corpus_programs_nfp_matches_the_interpreter() {
    if let Err(why) = hw::linux::kernel_available() {
        panic!("this test needs the kernel's bpf() to know which programs it accepts: {why}");
    }
    let packets = support::engine_diff::corpus_packets();
    let table = hw::nfp::LatencyTable::shipped().unwrap();
    let (mut accepted, mut compared, mut runs, mut faults) = (0, 0, 0, 0);
    let mut rejected = Vec::new();
    let mut failures = Vec::new();
    let mut figures = Vec::new();
    for path in support::valid_objects() {
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(support::corpus().join("elf"))
            .unwrap_or(&path)
            .display()
            .to_string();
        for (i, p) in obj.programs.iter().enumerate() {
            if p.kind != ProgramKind::Xdp {
                continue;
            }
            if hw::linux::KernelObject::load(&obj, &[i]).is_err() {
                continue;
            }
            accepted += 1;
            let what = format!("{rel} {}", p.name);
            let prog = match compile(&obj, i, EntryKind::Xdp) {
                Ok(x) => x,
                Err(e) => {
                    rejected.push(format!("{what}: {e}"));
                    continue;
                }
            };
            // Both runtimes start from the same map seed the other engines' differential tests
            // use, so that programs take their interesting paths (blocklist hits, tunnels).
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let seeded = || -> Runtime {
                let mut rt = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
                if let Some(seed) = support::seeds::seed_for(&file, &obj) {
                    rt.load_snapshot(&seed)
                        .unwrap_or_else(|e| panic!("{what}: seeding the maps: {e}"));
                }
                rt
            };
            let mut rt_bc = seeded();
            let mut rt_nfp = seeded();
            let machine = match NfpMachine::load(&prog, &mut rt_nfp) {
                Ok(m) => m,
                Err(d) => {
                    failures.push(format!("{what}: compiled but did not load: {d}"));
                    continue;
                }
            };
            let mut bad = 0;
            let mut traces: Vec<Trace> = Vec::new();
            for (k, pkt) in packets.iter().enumerate() {
                let input = XdpInput::new(pkt.clone());
                let want = sim::interp::run_xdp(&obj, i, &mut rt_bc, &input);
                let got = run_xdp_nfp(&machine, &mut rt_nfp, &input);
                runs += 1;
                let same = match (&want, &got) {
                    (Ok(w), Ok((g, t))) => {
                        traces.push(t.clone());
                        w.retval == g.retval
                            && w.test_run_data() == g.test_run_data()
                            && w.redirect == g.redirect
                    }
                    (Err(_), Err(_)) => {
                        faults += 1;
                        true
                    }
                    _ => false,
                };
                let same = same && rt_bc.outputs() == rt_nfp.outputs();
                if !same && bad < 3 {
                    failures.push(format!(
                        "{what}: packet {k}: interpreter {:?}, NFP {:?}",
                        want.map(|o| (o.retval, o.action)).map_err(|d| d.message),
                        got.map(|(o, _)| (o.retval, o.action))
                            .map_err(|d| d.message)
                    ));
                }
                bad += usize::from(!same);
                rt_bc.take_outputs();
                rt_nfp.take_outputs();
            }
            // The maps in chip memory go back into the runtime for the comparison.
            if let Err(d) = machine.store_maps(&mut rt_nfp) {
                failures.push(format!("{what}: map images did not convert back: {d}"));
            }
            if rt_bc.snapshot() != rt_nfp.snapshot() {
                failures.push(format!("{what}: map snapshots differ after all packets"));
                bad += 1;
            }
            compared += 1;
            let refs: Vec<&Trace> = traces.iter().collect();
            let cycles = if traces.is_empty() {
                0.0
            } else {
                traces
                    .iter()
                    .map(|t| t.alone_cycles(&table) as f64)
                    .sum::<f64>()
                    / traces.len() as f64
            };
            let mpps = throughput(&refs, &NfpConfig::NFP4000_OFFLOAD, &table, 8);
            figures.push(ProgramFigures {
                what: what.clone(),
                bpf: p.insns.len(),
                micro: prog.words.len() - prog.routine_words,
                routines: prog.routine_words,
                cycles,
                mpps,
            });
            println!(
                "compared {what:60} {} packets, {bad} mismatches",
                packets.len()
            );
        }
    }
    // The per-program report: reviewed as a snapshot, so that a change in density, cycles or
    // modelled throughput shows in the diff.
    let mut report = String::from(
        "per program: BPF slots, program words (microcode without the map routines), program words per BPF slot, map routine words (shipped once per map and chip, not per program), mean cycles per packet (one context alone), modelled Mpps (NFP-4000 offload: 50 engines x 4 threads at 800 MHz)\n",
    );
    let (mut b, mut m, mut r) = (0, 0, 0);
    let mut ratios = Vec::new();
    for f in &figures {
        b += f.bpf;
        m += f.micro;
        r += f.routines;
        let ratio = f.micro as f64 / f.bpf.max(1) as f64;
        ratios.push(ratio);
        report += &format!(
            "  {:66} {:5} {:5} {:5.2} {:4} {:8.1} {:8.1}\n",
            f.what, f.bpf, f.micro, ratio, f.routines, f.cycles, f.mpps
        );
    }
    report += &format!(
        "  total: {b} BPF slots -> {m} program words ({:.2} per BPF slot overall, {:.2} the mean over programs) and {r} words of map routines ({:.2} per BPF slot with them)\n",
        m as f64 / b.max(1) as f64,
        ratios.iter().sum::<f64>() / ratios.len().max(1) as f64,
        (m + r) as f64 / b.max(1) as f64
    );
    print!("\n{report}");
    println!(
        "{accepted} kernel-accepted XDP programs: {compared} compiled and compared NFP vs interpreter over {runs} packet runs ({faults} faulted in both), {} rejected, {} failures",
        rejected.len(),
        failures.len()
    );
    for r in &rejected {
        println!("  rejected: {r}");
    }
    assert!(
        compared >= 10,
        "only {compared} programs were compiled and compared"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    insta::assert_snapshot!("nfp_corpus_report", report);
}

/// The listing of samples/bpf `xdp1` as the NFP backend compiles it, for review of the
/// generated microcode.
#[test]
fn xdp1_listing_snapshot() {
    let path = support::corpus().join("elf/linux/xdp1_kern.o");
    let obj = frontend::elf::read_file(&path).unwrap();
    let i = obj
        .programs
        .iter()
        .position(|p| p.kind == ProgramKind::Xdp)
        .unwrap();
    let prog = compile(&obj, i, EntryKind::Xdp).unwrap();
    insta::assert_snapshot!("nfp_xdp1_listing", prog.listing());
}
