//! Any bytes as instructions, and any text as assembly: decoding, printing and assembling
//! refuse bad input with an error. What decodes must print in the assembler's syntax and
//! assemble back to the same instructions.
#![no_main]

use frontend::{asm, insn};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = insn::slots(&data[..data.len() / 8 * 8]) {
        if let Ok(decoded) = insn::decode_all(&raw) {
            for i in &decoded {
                let _ = frontend::disasm::format_insn(i);
            }
            let text = asm::format_asm(&decoded);
            if let Ok(again) = asm::assemble(&text) {
                let redecoded = insn::decode_all(&again).expect("assembler output decodes");
                assert_eq!(
                    asm::format_asm(&redecoded),
                    text,
                    "print/assemble round trip"
                );
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(raw) = asm::assemble(text) {
            let _ = insn::decode_all(&raw);
        }
    }
});
