//! The differential test of lifting: every XDP program of the corpus (outside `invalid/`)
//! that lifts runs on every Ethernet packet of the pcap corpus and on the generated packets,
//! once as bytecode in the interpreter and once as lifted IR in the IR executor, each engine
//! with its own runtime seeded alike. Verdicts, output packets, redirects, final maps and
//! captured outputs must agree on every packet: zero mismatches. The IR executor also checks
//! every memory access against the region the lifter inferred, so a wrong provenance is a
//! mismatch too.
//!
//! The comparison itself is `support::engine_diff::check_engine`, which optimization
//! pipelines call with their output module.

mod support;

use frontend::lift::{lift_object, lift_program, LiftOptions};
use frontend::object::ProgramKind;
use support::engine_diff::{check_engine, corpus_packets};

/// The module to run program `program` from: the whole object when it lifts (so tail calls
/// reach the other programs, in object order), else the program alone.
fn lift(obj: &frontend::Object, program: usize, opts: &LiftOptions) -> Result<ir::Module, String> {
    lift_object(obj, opts)
        .or_else(|_| lift_program(obj, program, opts))
        .map_err(|d| d.to_string())
}

fn run_corpus(opts: &LiftOptions) {
    run_corpus_after(opts, "none");
}

/// Lifts, runs pipeline `pipeline` (with the verifier after every pass), and compares the
/// IR executor on the result with the interpreter on the original bytecode.
fn run_corpus_after(opts: &LiftOptions, pipeline: &str) {
    let pipe = passes::pipeline::pipeline(pipeline).expect("a pipeline of that name");
    println!(
        "pipeline {pipeline}: {} packets per program",
        corpus_packets().len()
    );
    let (mut programs, mut runs, mut faulted, mut refused) = (0, 0, 0, 0);
    let mut unlifted = Vec::new();
    let mut dirty = Vec::new();
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
            let mut module = match lift(&obj, i, opts) {
                Ok(m) => m,
                Err(e) => {
                    unlifted.push(format!(
                        "{rel} {}: {}",
                        p.name,
                        e.lines().next().unwrap_or("")
                    ));
                    continue;
                }
            };
            let mut ctx = passes::pass::PassContext::new(
                passes::pass::Target::from_name(pipeline).unwrap_or_default(),
            );
            if let Err(e) = passes::pipeline::PassManager::new().verify_each(true).run(
                &pipe,
                &mut module,
                &mut ctx,
            ) {
                dirty.push(format!("{rel} {}: pipeline {pipeline} failed: {e}", p.name));
                continue;
            }
            let report = check_engine(&obj, i, &module);
            programs += 1;
            runs += report.packets;
            faulted += report.both_faulted;
            refused = report.refused;
            println!(
                "compared {rel:45} {:32} {:6} packets, {:4} faulted in both, {} mismatches, verdicts {{{}}}",
                report.program,
                report.packets,
                report.both_faulted,
                report.mismatches.len(),
                report.verdict_summary(6)
            );
            for (packet, what) in report.mismatches.iter().take(3) {
                println!("    packet {packet:?}: {what}");
            }
            if !report.is_clean() {
                dirty.push(format!("{rel} {}", report.program));
            }
        }
    }
    for u in &unlifted {
        println!("did not lift: {u}");
    }
    println!(
        "{programs} XDP programs compared over {runs} packet runs ({faulted} faulted in both engines; {refused} packets per program no XDP frame holds), {} did not lift, {} with mismatches",
        unlifted.len(),
        dirty.len()
    );
    assert!(programs >= 20, "only {programs} programs were compared");
    assert!(
        dirty.is_empty(),
        "programs whose IR differs from their bytecode: {dirty:#?}"
    );
}

#[test]
fn lifted_ir_matches_the_interpreter_on_the_corpus() {
    run_corpus(&LiftOptions::default());
}

#[test]
fn lifted_ir_with_calls_inlined_matches_the_interpreter_on_the_corpus() {
    run_corpus(&LiftOptions { inline_calls: true });
}

/// "Before and after every pipeline": each optimization pipeline's output must still compute
/// exactly what the bytecode computes, packet for packet.
#[test]
fn optimized_ir_matches_the_interpreter_after_every_pipeline() {
    for name in passes::pipeline::PIPELINE_NAMES {
        if name != "none" {
            run_corpus_after(&LiftOptions::default(), name);
        }
    }
}
