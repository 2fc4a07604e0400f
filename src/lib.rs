//! The `nicc` tool as a library: the code behind each subcommand, so that integration tests
//! drive exactly what users run.

pub mod bench;
pub mod commands;
pub mod kernel_diff;
pub mod report;
