//! `nicc conformance-plugin [MEMORY_HEX]`: the plugin protocol of the bpf_conformance runner.
//!
//! The runner writes the program as hex bytes on standard input and passes the memory the
//! program gets in r1 (length in r2) as hex in the first argument; plugin options may follow.
//! On success the plugin prints r0 in hex; on failure it prints the reason on standard error
//! and exits non-zero. The program is decoded by the one decoder and run by the interpreter,
//! so a pass here means the interpreter itself is conformant.

use frontend::mapdata::from_hex;

/// Runs one program; returns r0 or the message for standard error.
pub fn run(program_hex: &str, memory_hex: Option<&str>) -> Result<u64, String> {
    let code = from_hex(program_hex).map_err(|e| format!("program: {e}"))?;
    let mut memory = match memory_hex {
        Some(text) => from_hex(text).map_err(|e| format!("memory: {e}"))?,
        None => Vec::new(),
    };
    let insns = frontend::insn::slots(&code).map_err(|e| e.to_string())?;
    if insns.is_empty() {
        return Err("the program is empty".to_string());
    }
    sim::interp::run_with_memory(&insns, &mut memory).map_err(|d| d.to_string())
}
