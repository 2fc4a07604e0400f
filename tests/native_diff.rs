//! The native engine against the golden interpreter: the conformance suite, and every XDP
//! program of the corpus that the kernel verifier accepts over the pcap corpus and the
//! generated packets. Programs are lifted to IR, compiled by the JIT (with the packet accesses
//! that range analysis proves in bounds left unchecked) and run on the same runtime contents
//! as the bytecode interpreter: results, packets, redirects, trace output and map snapshots
//! must be identical. Counts are printed.

mod support;

use backends::native::LowerOptions;
use frontend::conformance::{self, ConformanceTest};
use frontend::lift::{lift_object, lift_program, LiftOptions};
use frontend::object::{Function as ObjFunction, Program, ProgramKind};
use frontend::Object;
use sim::native::{run_native_with_memory_in, run_xdp_native, JitProgram};
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};
use std::collections::HashSet;

/// An object holding one program made of `insns`, as the conformance suite gives them.
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

/// Packet accesses that range analysis proves in bounds, for every XDP entry of `module`.
fn proven_packet_accesses(module: &ir::Module) -> LowerOptions {
    let mut proven = HashSet::new();
    for (f, func) in module.functions.iter() {
        let xdp_entry = module
            .programs
            .iter()
            .any(|p| p.func == f && p.kind == "xdp");
        for (inst, ok) in passes::bounds_check::classify_packet_accesses(func, xdp_entry) {
            if ok {
                proven.insert((f, inst));
            }
        }
    }
    LowerOptions {
        proven_safe: proven,
        ..LowerOptions::default()
    }
}

#[test]
fn conformance_suite_jit_matches_the_interpreter() {
    let dir = support::corpus().join("conformance").join("tests");
    let files = support::files_under(&dir, &|p| p.extension().is_some_and(|e| e == "data"));
    assert!(
        !files.is_empty(),
        "no conformance tests under {}",
        dir.display()
    );
    let (mut compared, mut not_lifted, mut mismatches) = (0, Vec::new(), Vec::new());
    for path in &files {
        let t: ConformanceTest =
            conformance::read(path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let Ok(raw) = conformance::program_of(&t) else {
            not_lifted.push(format!("{name}: does not assemble"));
            continue;
        };
        let obj = object_of(&name, raw.clone(), ProgramKind::SocketFilter);
        let module = match lift_program(&obj, 0, &LiftOptions::default()) {
            Ok(m) => m,
            Err(d) => {
                not_lifted.push(format!("{name}: {}", d.message));
                continue;
            }
        };
        let entry = module.programs[0].func;
        let jit = match JitProgram::new(&module, entry) {
            Ok(j) => j,
            Err(d) => {
                mismatches.push(format!("{name}: lifted but the JIT refused it: {d}"));
                continue;
            }
        };
        let (mut m1, mut m2) = (t.mem.clone(), t.mem.clone());
        let want = sim::interp::run_with_memory(&raw, &mut m1);
        let mut rt = Runtime::empty(RuntimeConfig::default());
        let got = run_native_with_memory_in(&jit, &mut rt, &mut m2);
        compared += 1;
        match (&want, &got) {
            (Ok(w), Ok(g)) if w == g && m1 == m2 => {}
            (Err(_), Err(_)) => {}
            _ => mismatches.push(format!(
                "{name}: interpreter {want:?}, JIT {got:?}{}",
                if m1 != m2 { " (memory differs)" } else { "" }
            )),
        }
    }
    println!(
        "conformance: {} tests, {compared} compared JIT vs interpreter, {} not lifted, {} mismatches",
        files.len(),
        not_lifted.len(),
        mismatches.len()
    );
    for n in &not_lifted {
        println!("  not lifted: {n}");
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(compared > 0, "no conformance test was compared");
}

#[test]
fn kernel_accepted_corpus_programs_jit_matches_the_interpreter() {
    if let Err(why) = hw::linux::kernel_available() {
        panic!("this test needs the kernel's bpf() to know which programs it accepts: {why}");
    }
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let pcaps = support::files_under(&support::corpus().join("pcap"), &|_| true);
    for path in &pcaps {
        if let Ok(capture) = sim::pcap::read_file(path) {
            packets.extend(capture.ethernet().map(|p| p.data.clone()));
        }
    }
    let from_pcaps = packets.len();
    packets.extend(support::packets::generated());
    println!(
        "{} packets: {from_pcaps} from {} capture files, {} generated",
        packets.len(),
        pcaps.len(),
        packets.len() - from_pcaps
    );
    let (mut accepted, mut compared, mut runs, mut faults) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    let mut counts = (0, 0, 0);
    for path in support::valid_objects() {
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(support::corpus().join("elf"))
            .unwrap_or(&path)
            .display()
            .to_string();
        // A sibling the kernel refuses may lift to IR that does not verify (a tail call
        // through a map that is no program array); then each program is lifted alone.
        let whole = lift_object(&obj, &LiftOptions::default())
            .ok()
            .filter(|m| ir::verifier::verify_module(m).is_ok());
        for (i, p) in obj.programs.iter().enumerate() {
            if p.kind != ProgramKind::Xdp {
                continue;
            }
            if hw::linux::KernelObject::load(&obj, &[i]).is_err() {
                continue;
            }
            accepted += 1;
            let what = format!("{rel} {}", p.name);
            // The whole object, so tail calls find their targets; one program if that fails.
            let (module, entry) = match &whole {
                Some(m) if m.programs.len() == obj.programs.len() => {
                    (m.clone(), m.programs[i].func)
                }
                _ => match lift_program(&obj, i, &LiftOptions::default()) {
                    Ok(m) => {
                        let e = m.programs[0].func;
                        (m, e)
                    }
                    Err(d) => {
                        failures.push(format!(
                            "{what}: accepted by the kernel but not lifted: {d}"
                        ));
                        continue;
                    }
                },
            };
            let options = proven_packet_accesses(&module);
            let jit = match JitProgram::with_options(&module, entry, &options) {
                Ok(j) => j,
                Err(d) => {
                    failures.push(format!("{what}: the JIT refused it: {d}"));
                    continue;
                }
            };
            counts.0 += jit.access_counts.0;
            counts.1 += jit.access_counts.1;
            counts.2 += jit.access_counts.2;
            let mut rt_bc = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
            let mut rt_jit = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
            let mut bad = 0;
            for (k, pkt) in packets.iter().enumerate() {
                let input = XdpInput::new(pkt.clone());
                let want = sim::interp::run_xdp(&obj, i, &mut rt_bc, &input);
                let got = run_xdp_native(&jit, &mut rt_jit, &input);
                runs += 1;
                let same = match (&want, &got) {
                    (Ok(w), Ok(g)) => {
                        w.retval == g.retval
                            && w.test_run_data() == g.test_run_data()
                            && w.redirect == g.redirect
                    }
                    (Err(w), Err(g)) => {
                        faults += 1;
                        w.insn == g.insn
                    }
                    _ => false,
                };
                let same = same && rt_bc.outputs() == rt_jit.outputs();
                if !same && bad < 3 {
                    failures.push(format!(
                        "{what}: packet {k}: interpreter {:?}, JIT {:?}",
                        want.map(|o| (o.retval, o.action)),
                        got.map(|o| (o.retval, o.action))
                    ));
                }
                bad += usize::from(!same);
                rt_bc.take_outputs();
                rt_jit.take_outputs();
            }
            if rt_bc.snapshot() != rt_jit.snapshot() {
                failures.push(format!("{what}: map snapshots differ after all packets"));
                bad += 1;
            }
            compared += 1;
            println!(
                "compared {what:60} {} packets, {bad} mismatches",
                packets.len()
            );
        }
    }
    println!(
        "{accepted} kernel-accepted XDP programs, {compared} compared JIT vs interpreter over {runs} packet runs ({faults} faulted in both), {} failures; accesses unchecked {}, checked inline {}, through the runtime {}",
        failures.len(),
        counts.0,
        counts.1,
        counts.2
    );
    assert!(compared >= 20, "only {compared} programs were compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
