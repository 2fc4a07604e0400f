//! `nicc disasm OBJ`: the object's code in llvm-objdump's syntax.
//!
//! Only the code sections are read, so an object whose maps or calls cannot be resolved can
//! still be looked at; that is often why someone disassembles it.

use std::path::Path;

pub fn disasm(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().to_string(),
    );
    let sections = frontend::elf::read_code_sections(&bytes, &name).map_err(|d| d.to_string())?;
    Ok(frontend::disasm::disassemble_sections(&name, &sections))
}
