//! The e-graph optimizer: equality saturation over each basic block's pure dataflow with egg,
//! then extraction of the cheapest form for the chosen target.
//!
//! **Architecture Invariant:** egg appears only inside this module of `passes`, and only pure
//! dataflow enters the e-graph. Loads, stores, helper and function calls, map operations and
//! terminators stay in program order as each block's skeleton.
//!
//! - [`language`]: the BPF language for egg (IR operator names, opaque value leaves).
//! - [`analysis`]: constant folding through `ir::semantics`, and known-zero upper bits.
//! - [`rules`]: directional rule tables by topic, each with soundness tests.
//! - [`runner`]: explicit limits (iterations, nodes, time) and why a run stopped.
//! - [`cost`]: one cost function per target ([`CostTarget`]).
//! - [`rebuild`]: block to e-graph, extraction, and the rebuilt block.
//!
//! Entry points: [`optimize_module`] and the [`EgraphOptimizer`] pass.

pub mod analysis;
pub mod cost;
pub mod language;
pub mod rebuild;
pub mod rules;
pub mod runner;

pub use cost::CostTarget;
pub use runner::{RunnerLimits, StopReason};

use crate::pass::{Pass, PassContext, PassError};
use rebuild::{optimize_block, values_used_outside_their_block, BlockOutcome};
use std::collections::BTreeMap;

/// What [`optimize_module`] did, summed over every block it looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgraphStats {
    pub functions: usize,
    /// Blocks whose pure instructions were rebuilt.
    pub blocks_rewritten: usize,
    /// Blocks where the cheapest terms were the ones already there.
    pub blocks_unchanged: usize,
    /// Blocks left as they were, by reason.
    pub blocks_skipped: BTreeMap<String, usize>,
    /// Pure instructions in the blocks that were saturated, before and after.
    pub pure_before: usize,
    pub pure_after: usize,
    /// Why each saturation run stopped, with how many runs stopped that way.
    pub stop_reasons: BTreeMap<String, usize>,
    pub iterations: usize,
    /// The largest e-graph built, in e-nodes.
    pub max_nodes: usize,
    /// Set when the rule tables did not compile; nothing was changed then.
    pub rule_error: Option<String>,
}

impl EgraphStats {
    pub fn changed(&self) -> bool {
        self.blocks_rewritten > 0
    }
}

/// Why blocks are skipped once a function has built [`RunnerLimits::function_nodes`] e-nodes.
pub const FUNCTION_BUDGET_SPENT: &str = "function e-node budget spent";

/// Optimizes every block of every function of `module` for `target`, each saturation run
/// bounded by `limits`.
pub fn optimize_module(
    module: &mut ir::Module,
    target: CostTarget,
    limits: &RunnerLimits,
) -> EgraphStats {
    let mut stats = EgraphStats::default();
    let rules = match rules::rewrites_for(target) {
        Ok(rules) => rules,
        Err(e) => {
            stats.rule_error = Some(e);
            return stats;
        }
    };
    let xdp_entries: Vec<ir::FuncRef> = module
        .functions
        .keys()
        .filter(|&f| crate::range::is_xdp_entry(module, f))
        .collect();
    for (fref, func) in module.functions.iter_mut() {
        stats.functions += 1;
        let outside = values_used_outside_their_block(func);
        // For BPF, what the range analysis knows about a block's leaves (a block parameter
        // that only ever receives 16-bit loads, a value a branch bounded) lets masks and
        // zero extensions go. Other targets do not use it yet, so that their reviewed
        // outputs do not move with this backend's work.
        let ranges = (target == CostTarget::BpfInsnCount)
            .then(|| crate::range::RangeAnalysis::compute(func, xdp_entries.contains(&fref)));
        let blocks: Vec<ir::Block> = func.layout.blocks().collect();
        let mut nodes_built = 0;
        for block in blocks {
            if nodes_built >= limits.function_nodes {
                *stats
                    .blocks_skipped
                    .entry(FUNCTION_BUDGET_SPENT.to_string())
                    .or_default() += 1;
                continue;
            }
            let (outcome, counts) = optimize_block(
                func,
                block,
                target,
                limits,
                &rules,
                &outside,
                ranges.as_ref(),
            );
            let report = match &outcome {
                BlockOutcome::NothingToDo => continue,
                BlockOutcome::Unchanged(r) => {
                    stats.blocks_unchanged += 1;
                    r
                }
                BlockOutcome::Rewritten(r) => {
                    stats.blocks_rewritten += 1;
                    r
                }
                BlockOutcome::Skipped(r, why) => {
                    *stats.blocks_skipped.entry(why.to_string()).or_default() += 1;
                    r
                }
            };
            stats.pure_before += counts.before;
            stats.pure_after += counts.after;
            *stats
                .stop_reasons
                .entry(report.stop_reason.to_string())
                .or_default() += 1;
            stats.iterations += report.iterations;
            stats.max_nodes = stats.max_nodes.max(report.nodes);
            nodes_built += report.nodes;
        }
    }
    stats
}

/// The e-graph optimizer as a pipeline pass; the pipeline's target chooses the cost function.
#[derive(Clone, Debug, Default)]
pub struct EgraphOptimizer {
    pub limits: RunnerLimits,
}

impl Pass for EgraphOptimizer {
    fn name(&self) -> &'static str {
        "egraph"
    }

    fn description(&self) -> &'static str {
        "rewrite each block's pure arithmetic by equality saturation and extract the cheapest form for the target"
    }

    fn run(&mut self, module: &mut ir::Module, ctx: &mut PassContext) -> Result<bool, PassError> {
        let stats = optimize_module(module, CostTarget::for_target(ctx.target), &self.limits);
        if let Some(e) = stats.rule_error {
            return Err(PassError::new(self.name(), e));
        }
        let name = self.name();
        ctx.stats
            .add(name, "blocks_rewritten", stats.blocks_rewritten as u64);
        ctx.stats.add(name, "pure_before", stats.pure_before as u64);
        ctx.stats.add(name, "pure_after", stats.pure_after as u64);
        ctx.stats.add(
            name,
            "blocks_skipped",
            stats.blocks_skipped.values().sum::<usize>() as u64,
        );
        for (reason, n) in &stats.stop_reasons {
            ctx.stats.add(name, &format!("stop.{reason}"), *n as u64);
        }
        Ok(stats.blocks_rewritten > 0)
    }
}

#[cfg(test)]
mod tests;
