//! Lifts every program of the ELF corpus to IR and checks what comes out: the IR verifier
//! accepts every module, the text form round-trips through the parser, inlining keeps the IR
//! valid, XDP packet accesses get the packet region, and loops are found.

mod support;

use frontend::lift::{lift_object, lift_program, program_loops, LiftOptions};
use frontend::object::{Object, ProgramKind};
use ir::instructions::Region;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn elf() -> PathBuf {
    support::corpus().join("elf")
}

fn rel(path: &Path) -> String {
    path.strip_prefix(elf())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(rel_path: &str) -> Object {
    frontend::elf::read_file(&elf().join(rel_path)).unwrap_or_else(|e| panic!("{rel_path}: {e}"))
}

/// XDP programs the kernel accepts, which must lift: every XDP program in these folders, and
/// these objects of build/.
fn must_lift(rel_path: &str, kind: ProgramKind) -> bool {
    let dirs = [
        "linux/",
        "prototype-kernel/",
        "suricata/",
        "cilium-examples/",
    ];
    let built = [
        "build/dependent_read.o",
        "build/packet_access.o",
        "build/packet_start_ok.o",
        "build/tail_call.o",
    ];
    kind == ProgramKind::Xdp
        && (dirs.iter().any(|d| rel_path.starts_with(d)) || built.contains(&rel_path))
}

/// Prints, parses, prints again: the texts and the modules must be equal.
fn round_trip(what: &str, module: &ir::Module) -> Result<(), String> {
    let text = ir::write::module_to_string(module);
    let parsed = ir::parse::parse_module(&text).map_err(|e| format!("{what}: parse: {e}"))?;
    let again = ir::write::module_to_string(&parsed);
    if again != text {
        return Err(format!("{what}: printed text changes after parsing"));
    }
    if &parsed != module {
        return Err(format!("{what}: parsed module differs from the lifted one"));
    }
    Ok(())
}

fn verify(what: &str, module: &ir::Module) -> Result<(), String> {
    ir::verifier::verify_module(module).map_err(|e| format!("{what}: IR verifier:\n{e}"))
}

#[test]
fn every_corpus_program_lifts_verifies_and_round_trips() {
    let mut objects = 0;
    let mut programs = 0;
    let mut lifted = 0;
    let mut inlined = 0;
    let mut rejected: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for path in support::valid_objects() {
        let name = rel(&path);
        let obj = match frontend::elf::read_file(&path) {
            Ok(o) => o,
            Err(e) => {
                rejected.push(format!("{name}: unreadable: {}", e.message));
                continue;
            }
        };
        objects += 1;
        for (i, prog) in obj.programs.iter().enumerate() {
            programs += 1;
            let what = format!("{name} {}", prog.name);
            match lift_program(&obj, i, &LiftOptions::default()) {
                Ok(m) => {
                    lifted += 1;
                    if let Err(e) = verify(&what, &m).and_then(|_| round_trip(&what, &m)) {
                        failures.push(e);
                    }
                    if m.programs.len() != 1 || m.maps.len() != obj.maps.len() {
                        failures.push(format!("{what}: wrong program or map count"));
                    }
                }
                Err(d) => {
                    if must_lift(&name, prog.kind) {
                        failures.push(format!("{what} must lift:\n{d}"));
                    }
                    rejected.push(format!("{what}: {}", d.message));
                    continue;
                }
            }
            if prog.functions.len() > 1 {
                let opts = LiftOptions { inline_calls: true };
                match lift_program(&obj, i, &opts) {
                    Ok(m) => {
                        inlined += 1;
                        let what = format!("{what} (inlined)");
                        if let Err(e) = verify(&what, &m).and_then(|_| round_trip(&what, &m)) {
                            failures.push(e);
                        }
                        let calls = m
                            .functions
                            .values()
                            .flat_map(|f| f.insts().map(move |i| f.dfg.inst(i).opcode()))
                            .filter(|o| *o == ir::instructions::Opcode::Call)
                            .count();
                        if calls != 0 {
                            failures.push(format!("{what}: {calls} calls left after inlining"));
                        }
                    }
                    Err(d) => failures.push(format!("{what}: inlining failed:\n{d}")),
                }
            }
        }
        // The whole object in one module.
        if let Ok(m) = lift_object(&obj, &LiftOptions::default()) {
            let what = format!("{name} (whole object)");
            if let Err(e) = verify(&what, &m).and_then(|_| round_trip(&what, &m)) {
                failures.push(e);
            }
        }
    }
    println!(
        "objects {objects}, programs {programs}, lifted {lifted}, rejected {}, lifted with calls inlined {inlined}",
        rejected.len()
    );
    for r in &rejected {
        println!("  rejected: {r}");
    }
    assert!(objects > 50, "the corpus is missing ({objects} objects)");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// How many memory accesses got each region, over the XDP programs of a folder.
fn region_counts(dir: &str) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut counts = BTreeMap::new();
    let mut any_sites = Vec::new();
    for path in support::files_under(&elf().join(dir), &|p| {
        p.extension().is_some_and(|e| e == "o")
    }) {
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        for (i, prog) in obj.programs.iter().enumerate() {
            if prog.kind != ProgramKind::Xdp {
                continue;
            }
            let Ok(m) = lift_program(&obj, i, &LiftOptions::default()) else {
                continue;
            };
            for f in m.functions.values() {
                for inst in f.insts() {
                    if let Some((region, _)) = f.dfg.inst(inst).memory_access() {
                        let key = match region {
                            Region::Stack(_) => "stack".to_string(),
                            Region::MapValue(_) => "map_value".to_string(),
                            Region::Global(_) => "global".to_string(),
                            r => r.to_string(),
                        };
                        *counts.entry(key).or_insert(0) += 1;
                        if region == Region::Any {
                            any_sites.push(format!(
                                "{} {} {}: {}",
                                rel(&path),
                                prog.name,
                                f.srclocs[inst],
                                ir::write::inst_to_string(f, inst)
                            ));
                        }
                    }
                }
            }
        }
    }
    (counts, any_sites)
}

#[test]
fn xdp_accesses_get_their_regions() {
    let mut all_any = Vec::new();
    for dir in [
        "linux",
        "prototype-kernel",
        "suricata",
        "cilium-examples",
        "build",
    ] {
        let (counts, any) = region_counts(dir);
        println!("{dir}: {counts:?}");
        assert!(
            counts.get("packet").copied().unwrap_or(0) > 0 || dir == "build",
            "{dir}: no packet accesses found"
        );
        if dir == "linux" || dir == "prototype-kernel" {
            all_any.extend(any);
        } else {
            for a in any {
                println!("  any: {a}");
            }
        }
    }
    assert!(
        all_any.is_empty(),
        "accesses with unknown region in XDP programs of linux/ and prototype-kernel/:\n{}",
        all_any.join("\n")
    );
}

#[test]
fn snapshots_of_small_programs() {
    for (name, file) in [
        ("xdp1", "linux/xdp1_kern.o"),
        ("bpf2bpf", "build/bpf2bpf.o"),
    ] {
        let obj = read(file);
        let m = lift_object(&obj, &LiftOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        verify(file, &m).unwrap();
        insta::assert_snapshot!(format!("lift_{name}"), ir::write::module_to_string(&m));
    }
    let obj = read("build/bpf2bpf.o");
    let m = lift_object(&obj, &LiftOptions { inline_calls: true }).unwrap();
    verify("bpf2bpf inlined", &m).unwrap();
    insta::assert_snapshot!("lift_bpf2bpf_inlined", ir::write::module_to_string(&m));
}

#[test]
fn loops_are_found() {
    let mut report = String::new();
    for file in ["build/loop.o", "build/bounded_loop.o"] {
        let obj = read(file);
        let mut found = 0;
        for (i, prog) in obj.programs.iter().enumerate() {
            let loops = program_loops(&obj, i).unwrap_or_else(|e| panic!("{e}"));
            for (func, l) in &loops {
                writeln!(
                    report,
                    "{file} {} ({:?}) fn {func}: header {} body {:?} back edges {:?} trip count {:?}",
                    prog.name, prog.kind, l.header, l.body, l.back_edges, l.trip_count
                )
                .unwrap();
            }
            found += loops.len();
            let m = lift_program(&obj, i, &LiftOptions::default())
                .unwrap_or_else(|e| panic!("{file} {}: {e}", prog.name));
            verify(file, &m).unwrap();
        }
        assert!(found > 0, "{file}: no loop found");
    }
    println!("{report}");
}
