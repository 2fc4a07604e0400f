//! The e-graph optimizer over the lifted IR of every corpus program, for every cost target:
//! the IR verifier accepts every result, and the counts of pure instructions before and after,
//! the runner's stop reasons and the time taken are printed, so the optimizer's effect on real
//! code is visible in the test log. Each saturation run is bounded by the runner limits, and
//! the whole corpus must finish within a time bound.
//!
//! Run with `cargo test --release -p nicc-passes --test egraph_corpus -- --nocapture`.

mod support;

use frontend::lift::{lift_program, LiftOptions};
use passes::egraph::{optimize_module, CostTarget, EgraphStats, RunnerLimits};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[test]
fn every_corpus_program_optimizes_to_valid_ir_for_every_target() {
    let limits = RunnerLimits::default();
    let started = Instant::now();
    let mut modules = Vec::new();
    for path in support::corpus_objects() {
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        for p in 0..obj.programs.len() {
            // Programs the lifter refuses are the lifter's tests' business.
            if let Ok(module) = lift_program(&obj, p, &LiftOptions::default()) {
                if ir::verifier::verify_module(&module).is_ok() {
                    modules.push((format!("{file}:{}", obj.programs[p].name), module));
                }
            }
        }
    }
    assert!(!modules.is_empty(), "no corpus program lifted");
    let mut failures = Vec::new();
    for target in CostTarget::ALL {
        let target_started = Instant::now();
        let mut total = EgraphStats::default();
        for (name, module) in &modules {
            let mut module = module.clone();
            let stats = optimize_module(&mut module, target, &limits);
            if let Some(e) = &stats.rule_error {
                failures.push(format!("{target:?}: rules do not compile: {e}"));
            }
            if let Err(e) = ir::verifier::verify_module(&module) {
                failures.push(format!("{name} ({target:?}): {e}"));
            }
            total.pure_before += stats.pure_before;
            total.pure_after += stats.pure_after;
            total.blocks_rewritten += stats.blocks_rewritten;
            total.blocks_unchanged += stats.blocks_unchanged;
            total.max_nodes = total.max_nodes.max(stats.max_nodes);
            for (k, v) in stats.stop_reasons {
                *total.stop_reasons.entry(k).or_default() += v;
            }
            for (k, v) in stats.blocks_skipped {
                *total.blocks_skipped.entry(k).or_default() += v;
            }
        }
        let skipped: BTreeMap<_, _> = total.blocks_skipped.iter().collect();
        println!(
            "{:<15} {} programs: pure instructions {} -> {}, blocks rewritten {}, unchanged {}, skipped {:?}, stop reasons {:?}, largest e-graph {} nodes, {:.2?}",
            target.name(),
            modules.len(),
            total.pure_before,
            total.pure_after,
            total.blocks_rewritten,
            total.blocks_unchanged,
            skipped,
            total.stop_reasons,
            total.max_nodes,
            target_started.elapsed()
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every run is bounded by the runner limits; the corpus as a whole must stay interactive.
    assert!(
        started.elapsed() < Duration::from_secs(600),
        "the corpus took {:.2?}",
        started.elapsed()
    );
}
