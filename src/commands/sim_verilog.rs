//! `nicc sim` on the packet-pipeline model.

use super::sim::SimArgs;

pub fn sim(args: &SimArgs) -> Result<String, String> {
    Err(format!(
        "nicc sim --target {:?}: this simulator is not built yet",
        args.target
    ))
}
