//! The `nicc` tool as a library: the code behind each subcommand, so that integration tests
//! drive exactly what users run.

// The subcommands are switched on as the frontend, interpreter and kernel oracle land.
#[cfg(any())]
pub mod commands;
#[cfg(any())]
pub mod kernel_diff;
pub mod report;
