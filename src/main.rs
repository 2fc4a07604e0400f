//! The `nicc` command line: one subcommand per user job.
fn main() {}
