//! `nicc bench`: nanoseconds per packet of every engine on the same packets, side by side.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A folder of objects, or one object.
    pub input: Option<PathBuf>,
}

pub fn bench(_args: &BenchArgs) -> Result<String, String> {
    Err("nicc bench is not built yet".into())
}
