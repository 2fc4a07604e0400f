//! Running the rules: explicit limits and a report of why saturation stopped.
//!
//! Equality saturation can grow without bound, so every run has three limits: iterations,
//! e-nodes and wall-clock time. The iteration and node limits are deterministic; the time limit
//! is a safety net set well above what the other two allow, so that output stays the same from
//! run to run on any machine that is not pathologically slow.

use super::analysis::{BpfAnalysis, BpfEGraph};
use super::language::BpfLang;
use egg::{Rewrite, Runner};
use std::fmt;
use std::time::Duration;

/// The limits of one saturation run (one basic block), and of all the runs of one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerLimits {
    pub iterations: usize,
    pub nodes: usize,
    pub time: Duration,
    /// E-nodes all the runs of one function may build together. Each run is bounded, but a
    /// hostile program of many blocks that each blow up would still take hours; once the
    /// budget is spent the remaining blocks keep their code as it is (still correct, just not
    /// optimized). Counted in nodes, not time, so the output stays deterministic.
    pub function_nodes: usize,
}

impl Default for RunnerLimits {
    fn default() -> RunnerLimits {
        RunnerLimits {
            iterations: 8,
            nodes: 10_000,
            time: Duration::from_secs(2),
            function_nodes: 2_000_000,
        }
    }
}

/// Why a saturation run stopped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StopReason {
    /// No rule could add anything new: every equality the rules can prove was found.
    Saturated,
    IterationLimit,
    NodeLimit,
    TimeLimit,
    Other(String),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Saturated => f.write_str("saturated"),
            StopReason::IterationLimit => f.write_str("iteration-limit"),
            StopReason::NodeLimit => f.write_str("node-limit"),
            StopReason::TimeLimit => f.write_str("time-limit"),
            StopReason::Other(why) => write!(f, "other: {why}"),
        }
    }
}

/// What one run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    pub stop_reason: StopReason,
    pub iterations: usize,
    pub nodes: usize,
    pub classes: usize,
}

/// Saturates `egraph` with `rules` under `limits`.
pub fn saturate(
    egraph: BpfEGraph,
    rules: &[Rewrite<BpfLang, BpfAnalysis>],
    limits: &RunnerLimits,
) -> (BpfEGraph, RunReport) {
    let runner: Runner<BpfLang, BpfAnalysis, ()> = Runner::new(BpfAnalysis::default())
        .with_egraph(egraph)
        .with_iter_limit(limits.iterations)
        .with_node_limit(limits.nodes)
        .with_time_limit(limits.time)
        .run(rules);
    let stop_reason = match runner.stop_reason {
        Some(egg::StopReason::Saturated) => StopReason::Saturated,
        Some(egg::StopReason::IterationLimit(_)) => StopReason::IterationLimit,
        Some(egg::StopReason::NodeLimit(_)) => StopReason::NodeLimit,
        Some(egg::StopReason::TimeLimit(_)) => StopReason::TimeLimit,
        Some(egg::StopReason::Other(why)) => StopReason::Other(why),
        None => StopReason::Other("the runner did not report a reason".to_string()),
    };
    let report = RunReport {
        stop_reason,
        iterations: runner.iterations.len(),
        nodes: runner.egraph.total_number_of_nodes(),
        classes: runner.egraph.number_of_classes(),
    };
    (runner.egraph, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egraph::rules::all_rewrites;
    use egg::RecExpr;

    fn egraph_of(text: &str) -> BpfEGraph {
        let mut egraph = BpfEGraph::default();
        let expr: RecExpr<BpfLang> = text.parse().unwrap();
        egraph.add_expr(&expr);
        egraph
    }

    #[test]
    fn small_terms_saturate() {
        let (_, report) = saturate(
            egraph_of("(add.w64 (add.w64 v1 4) 10)"),
            &all_rewrites().unwrap(),
            &RunnerLimits::default(),
        );
        assert_eq!(report.stop_reason, StopReason::Saturated);
    }

    #[test]
    fn limits_stop_the_run_and_say_which() {
        let rules = all_rewrites().unwrap();
        let term = "(mul.w64 (mul.w64 (add.w64 (lsh.w64 v1 3) (mul.w64 v2 7)) 5) 9)";
        let one_iteration = RunnerLimits {
            iterations: 1,
            ..RunnerLimits::default()
        };
        let (_, report) = saturate(egraph_of(term), &rules, &one_iteration);
        assert_eq!(report.stop_reason, StopReason::IterationLimit);
        assert_eq!(report.iterations, 1);
        let few_nodes = RunnerLimits {
            nodes: 12,
            ..RunnerLimits::default()
        };
        let (_, report) = saturate(egraph_of(term), &rules, &few_nodes);
        assert_eq!(report.stop_reason, StopReason::NodeLimit);
        let no_time = RunnerLimits {
            time: Duration::ZERO,
            ..RunnerLimits::default()
        };
        let (_, report) = saturate(egraph_of(term), &rules, &no_time);
        assert_eq!(report.stop_reason, StopReason::TimeLimit);
    }
}
