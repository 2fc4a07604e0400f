//! `nicc disasm OBJ`: the object's code in llvm-objdump's syntax.

use std::path::Path;

pub fn disasm(path: &Path) -> Result<String, String> {
    let obj = super::read_object(path)?;
    Ok(frontend::disasm::disassemble_object(&obj))
}
