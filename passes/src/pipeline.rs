//! Named pipelines and the pass manager that runs them.
//!
//! A pipeline is an ordered list of pass names; the order matters and each position carries a
//! comment saying why. The [`PassManager`] runs a pipeline over a module, verifies the IR
//! before the first pass and after every pass when asked (always in tests and debug builds),
//! times each pass, records whether it changed anything and how many instructions remain, and
//! can stop after a named pass so `nicc ir OBJ --after PASS` can show the IR at that point.

use crate::pass::{Pass, PassContext, PassError, Target};
use ir::Module;
use std::time::{Duration, Instant};

/// Every pass this crate provides, freshly created, in the order `--help` lists them.
pub fn all_passes() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(crate::simplify_cfg::SimplifyCfg),
        Box::new(crate::dce::DeadCodeElimination),
        Box::new(crate::const_fold::ConstantFolding),
        Box::new(crate::redundant_mem::RedundantMemory),
        Box::new(crate::redundant_params::RedundantParams),
        Box::new(crate::merge_loads::MergeLoads),
        Box::new(crate::source_order::SourceOrder),
        Box::new(crate::bounds_check::BoundsCheckElimination),
        Box::new(crate::egraph::EgraphOptimizer::default()),
    ]
}

/// A fresh instance of the pass named `name`.
pub fn create_pass(name: &str) -> Option<Box<dyn Pass>> {
    all_passes().into_iter().find(|p| p.name() == name)
}

/// `(name, description)` of every pass, for `--help`.
pub fn pass_descriptions() -> Vec<(&'static str, &'static str)> {
    all_passes()
        .iter()
        .map(|p| (p.name(), p.description()))
        .collect()
}

/// A named, ordered list of passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipeline {
    pub name: &'static str,
    pub description: &'static str,
    /// The target the pipeline prepares code for; [`PassManager::run`] puts it in the context,
    /// so target-dependent passes (the e-graph's extraction) use the right cost.
    pub target: Target,
    pub passes: Vec<&'static str>,
}

/// The names of every pipeline, in the order `--help` lists them.
pub const PIPELINE_NAMES: [&str; 6] = ["none", "cleanup", "bpf", "native", "nfp", "hw"];

/// The pipeline named `name`.
pub fn pipeline(name: &str) -> Option<Pipeline> {
    let (description, passes): (&'static str, Vec<&'static str>) = match name {
        "none" => ("no pass: the IR exactly as lifted", vec![]),
        "cleanup" => (
            "structural cleanup only: what lifting leaves behind, without changing any computation",
            vec![
                // Unreachable blocks and jump chains go first, so that dead-code elimination
                // sees fewer uses and fewer block parameters.
                "simplify-cfg",
                // Removes what became unused, including parameters of merged blocks.
                "dce",
            ],
        ),
        "bpf" => (
            "the full pipeline for re-emitting BPF the kernel verifier still accepts",
            vec![
                // A simple CFG first: every later analysis walks fewer, larger blocks.
                "simplify-cfg",
                // Lifting passes every live register along every edge; parameters that carry
                // one value (the packet pointers above all) become that value, so that the
                // analyses below see one base where the program has one.
                "redundant-params",
                // Constants early, so branch folding and range analysis start from them.
                "const-fold",
                // Reusing repeated `data`/`data_end` loads makes checks of the same packet
                // share one base value, which bounds-check elimination needs to compare them.
                "redundant-mem",
                // Byte loads that clang assembles into a 16- or 32-bit field become one wide
                // load before the e-graph, which cannot merge memory accesses; after the
                // redundant loads are gone, so that each byte load has its one use.
                "merge-loads",
                // Only checks with constant offsets are folded, which the kernel verifier
                // already considered redundant, so the output stays acceptable.
                "bounds-check",
                // Folded checks leave unreachable failure paths and single-entry blocks.
                "simplify-cfg",
                // Equality saturation on a clean CFG with shared packet bases, extracting by
                // BPF instruction count.
                "egraph",
                // Dead code: everything above leaves unused values behind.
                "dce",
                // Parameters that get one value on every edge: each would cost a register
                // copy per edge in the backend. After dead code, so that parameters fed only
                // by dead values are already gone, and after the e-graph, which may have
                // made arguments equal.
                "redundant-params",
                // Merging blocks and threading jumps that lost their parameters.
                "simplify-cfg",
                "dce",
                // Last: the e-graph lists pure instructions after the loads they follow, which
                // keeps many values live at once; clang's order needs fewer registers.
                "source-order",
            ],
        ),
        "native" | "nfp" | "hw" => (
            match name {
                "native" => "optimization for native code; records which packet accesses need no run-time check",
                "nfp" => "optimization for NFP microengines; records which packet accesses need no run-time check",
                _ => "optimization for hardware pipelines; records which packet accesses need no run-time check",
            },
            vec![
                "simplify-cfg",
                "const-fold",
                "redundant-mem",
                // First run: folds decided checks so the CFG can shrink before optimizing.
                "bounds-check",
                "simplify-cfg",
                // Equality saturation, extracting by this target's cost.
                "egraph",
                "dce",
                // Last, so its table of proven packet accesses describes the final IR that the
                // backend receives (no later pass changes the module and drops it).
                "bounds-check",
            ],
        ),
        _ => return None,
    };
    Some(Pipeline {
        name: PIPELINE_NAMES.iter().find(|n| **n == name)?,
        description,
        target: Target::from_name(name).unwrap_or(Target::Bpf),
        passes,
    })
}

/// Every pipeline.
pub fn pipelines() -> Vec<Pipeline> {
    PIPELINE_NAMES.iter().filter_map(|n| pipeline(n)).collect()
}

/// What one pass did in one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassRecord {
    pub pass: &'static str,
    pub changed: bool,
    pub duration: Duration,
    /// Instructions in the layouts of all functions before and after the pass.
    pub insts_before: usize,
    pub insts_after: usize,
}

/// What a pipeline run did, pass by pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineReport {
    pub pipeline: String,
    pub passes: Vec<PassRecord>,
    /// The pass the run stopped after, when asked to stop early.
    pub stopped_after: Option<String>,
}

impl PipelineReport {
    pub fn total_duration(&self) -> Duration {
        self.passes.iter().map(|p| p.duration).sum()
    }
}

/// Counts the instructions in the layouts of every function of a module.
pub fn count_insts(module: &Module) -> usize {
    module.functions.values().map(|f| f.insts().count()).sum()
}

/// Runs pipelines over modules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassManager {
    verify: bool,
    stop_after: Option<String>,
}

impl Default for PassManager {
    fn default() -> PassManager {
        PassManager::new()
    }
}

impl PassManager {
    /// A manager that verifies after every pass in debug builds (and so in tests) only.
    pub fn new() -> PassManager {
        PassManager {
            verify: cfg!(debug_assertions),
            stop_after: None,
        }
    }

    /// Whether to run the IR verifier before the first pass and after every pass.
    pub fn verify_each(mut self, verify: bool) -> PassManager {
        self.verify = verify;
        self
    }

    /// Stops the run after the first occurrence of pass `name` in the pipeline.
    pub fn stop_after(mut self, name: impl Into<String>) -> PassManager {
        self.stop_after = Some(name.into());
        self
    }

    /// Runs `pipeline` over `module`. Fails when a pass fails, when the verifier rejects the
    /// IR after a pass (naming that pass), or when the pass to stop after is not in the
    /// pipeline.
    pub fn run(
        &self,
        pipeline: &Pipeline,
        module: &mut Module,
        ctx: &mut PassContext,
    ) -> Result<PipelineReport, PassError> {
        if let Some(stop) = &self.stop_after {
            if !pipeline.passes.iter().any(|p| p == stop) {
                return Err(PassError::new(
                    stop.clone(),
                    format!(
                        "pipeline {} has no pass {stop}; its passes are: {}",
                        pipeline.name,
                        if pipeline.passes.is_empty() {
                            "(none)".to_string()
                        } else {
                            pipeline.passes.join(", ")
                        }
                    ),
                ));
            }
        }
        let mut passes = Vec::with_capacity(pipeline.passes.len());
        for name in &pipeline.passes {
            let pass = create_pass(name).ok_or_else(|| {
                PassError::new(
                    *name,
                    format!("pipeline {} names an unknown pass", pipeline.name),
                )
            })?;
            passes.push(pass);
        }
        ctx.target = pipeline.target;
        if self.verify {
            verify(module, "(input)", pipeline.name)?;
        }
        let mut report = PipelineReport {
            pipeline: pipeline.name.to_string(),
            ..PipelineReport::default()
        };
        for mut pass in passes {
            let insts_before = count_insts(module);
            let start = Instant::now();
            let changed = pass.run(module, ctx)?;
            let duration = start.elapsed();
            if changed && !pass.preserves_analyses() {
                ctx.analyses = Default::default();
            }
            if self.verify {
                verify(module, pass.name(), pipeline.name)?;
            }
            report.passes.push(PassRecord {
                pass: pass.name(),
                changed,
                duration,
                insts_before,
                insts_after: count_insts(module),
            });
            if self.stop_after.as_deref() == Some(pass.name()) {
                report.stopped_after = Some(pass.name().to_string());
                break;
            }
        }
        Ok(report)
    }
}

/// Runs the module verifier and turns its complaints into an error naming the pass after which
/// the IR became invalid.
fn verify(module: &Module, after: &str, pipeline: &str) -> Result<(), PassError> {
    ir::verifier::verify_module(module).map_err(|errors| {
        let what = if after == "(input)" {
            format!("the input of pipeline {pipeline} is invalid IR")
        } else {
            format!("the IR is invalid after this pass (pipeline {pipeline})")
        };
        PassError::new(after, format!("{what}:\n{errors}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_pipeline_names_known_passes() {
        for p in pipelines() {
            for name in &p.passes {
                assert!(
                    create_pass(name).is_some(),
                    "{}: unknown pass {name}",
                    p.name
                );
            }
        }
        assert_eq!(pipelines().len(), PIPELINE_NAMES.len());
        assert!(pipeline("no-such-pipeline").is_none());
    }

    #[test]
    fn pass_names_are_unique_and_described() {
        let mut seen = HashSet::new();
        for (name, description) in pass_descriptions() {
            assert!(seen.insert(name), "pass {name} listed twice");
            assert!(!description.is_empty(), "pass {name} has no description");
        }
    }

    #[test]
    fn stopping_after_an_absent_pass_is_an_error() {
        let mut module = Module::new();
        let mut ctx = PassContext::default();
        let cleanup = pipeline("cleanup").unwrap();
        let err = PassManager::new()
            .stop_after("no-such-pass")
            .run(&cleanup, &mut module, &mut ctx)
            .unwrap_err();
        assert!(err.message.contains("simplify-cfg, dce"), "{err}");
        let report = PassManager::new()
            .stop_after("simplify-cfg")
            .run(&cleanup, &mut module, &mut ctx)
            .unwrap();
        assert_eq!(report.passes.len(), 1);
        assert_eq!(report.stopped_after.as_deref(), Some("simplify-cfg"));
    }
}
