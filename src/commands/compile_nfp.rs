//! `nicc compile --target` for the nfp target.

use super::compile::CompileArgs;

pub fn compile(args: &CompileArgs) -> Result<String, String> {
    Err(format!(
        "nicc compile --target {:?}: this target is not built yet; nothing was written",
        args.target
    ))
}

pub fn check(args: &super::check::CheckArgs) -> Result<String, String> {
    Err(format!(
        "nicc check --target {:?}: this target is not built yet",
        args.target
    ))
}
