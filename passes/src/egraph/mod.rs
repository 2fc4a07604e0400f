//! The e-graph optimizer (egg): see the submodules.
pub mod analysis;
pub mod language;
pub mod rules;
