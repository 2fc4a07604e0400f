//! Every pipeline over the lifted IR of every corpus program, with the IR verifier after every
//! pass. A pass that leaves invalid IR on real programs fails here, naming the program and the
//! pass; the instruction counts before and after each pipeline are printed per program and in
//! total, so the effect of the passes on real code is visible in the test log.
//!
//! Run with `cargo test --release -p nicc-passes --test corpus_pipelines -- --nocapture`.

mod support;

use frontend::lift::{lift_program, LiftOptions};
use passes::pipeline::{count_insts, pipelines, PassManager};
use passes::{PassContext, Target};

fn target_of(pipeline: &str) -> Target {
    Target::from_name(pipeline).unwrap_or(Target::Bpf)
}

#[test]
fn every_pipeline_keeps_every_corpus_program_valid() {
    let mut lifted = 0usize;
    let mut lift_failures = Vec::new();
    let mut failures = Vec::new();
    let all = pipelines();
    let mut totals = vec![(0usize, 0usize); all.len()];
    // Pass statistics summed over the corpus, per pipeline.
    let mut stats: Vec<std::collections::BTreeMap<String, u64>> =
        vec![Default::default(); all.len()];
    for path in support::corpus_objects() {
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for (index, prog) in obj.programs.iter().enumerate() {
            let module = match lift_program(&obj, index, &LiftOptions::default()) {
                Ok(m) => m,
                Err(e) => {
                    lift_failures.push(format!("{name}:{}: {e}", prog.name));
                    continue;
                }
            };
            if ir::verifier::verify_module(&module).is_err() {
                lift_failures.push(format!("{name}:{}: lifted IR does not verify", prog.name));
                continue;
            }
            lifted += 1;
            let before = count_insts(&module);
            let mut line = format!("{name}:{} {before}", prog.name);
            for (i, p) in all.iter().enumerate() {
                let mut m = module.clone();
                let mut ctx = PassContext::new(target_of(p.name));
                match PassManager::new()
                    .verify_each(true)
                    .run(p, &mut m, &mut ctx)
                {
                    Ok(_) => {
                        let after = count_insts(&m);
                        totals[i].0 += before;
                        totals[i].1 += after;
                        for (k, v) in ctx.stats.iter() {
                            *stats[i].entry(k.to_string()).or_default() += v;
                        }
                        line.push_str(&format!(" {}={after}", p.name));
                    }
                    Err(e) => {
                        failures.push(format!("{name}:{} pipeline {}: {e}", prog.name, p.name))
                    }
                }
            }
            println!("{line}");
        }
    }
    println!(
        "lifted {lifted} programs; {} could not be lifted",
        lift_failures.len()
    );
    for f in &lift_failures {
        println!("  not lifted: {f}");
    }
    for ((p, (b, a)), st) in all.iter().zip(&totals).zip(&stats) {
        println!("pipeline {:8} instructions {b} -> {a}", p.name);
        for (k, v) in st {
            println!("    {k} {v}");
        }
    }
    assert!(lifted > 0, "no corpus program could be lifted");
    assert!(
        failures.is_empty(),
        "{} pipeline runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
