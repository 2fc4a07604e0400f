//! `nicc compile --target` for native code (x86_64, aarch64).

use super::compile::CompileArgs;

pub fn compile(args: &CompileArgs) -> Result<String, String> {
    Err(format!(
        "nicc compile --target {:?}: this target is not built yet; nothing was written",
        args.target
    ))
}
