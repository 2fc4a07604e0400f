//! Analyses and transformations over `ir`, one per file, each with a name and a one-line
//! description, grouped into named pipelines.
//!
//! - [`pass`]: the [`pass::Pass`] trait, the [`pass::PassContext`] passes share (target,
//!   statistics, analysis results) and [`pass::PassError`].
//! - [`pipeline`]: named pipelines and the [`pipeline::PassManager`] that runs them with the
//!   verifier after every pass.
//! - [`cfg`]: predecessors, reverse postorder and dominators, shared by the passes.
//! - [`simplify_cfg`], [`dce`]: structural cleanup.
//! - [`const_fold`]: cheap constant folding through `ir::semantics`.
//! - [`range`]: intervals, packet pointers and proven packet lengths per program point.
//! - [`bounds_check`]: packet bounds-check elimination and the table of proven accesses.
//! - [`redundant_mem`]: redundant load and dead store elimination (stack, packet, context).
//! - [`merge_loads`]: adjacent narrow loads assembled by shifts and ors become one wide load.
//! - [`redundant_params`]: block parameters that receive one value on every edge.
//! - [`source_order`]: pure instructions listed again in the source's order after the e-graph.
//! - [`egraph`]: the e-graph optimizer with one cost model per target.

pub mod bounds_check;
pub mod cfg;
pub mod const_fold;
pub mod dce;
pub mod egraph;
pub mod merge_loads;
pub mod pass;
pub mod pipeline;
pub mod range;
pub mod redundant_mem;
pub mod redundant_params;
pub mod simplify_cfg;
pub mod source_order;
#[cfg(test)]
mod testing;

pub use pass::{AnalysisResults, Pass, PassContext, PassError, Statistics, Target};
pub use pipeline::{pipeline, pipelines, PassManager, Pipeline, PipelineReport};
