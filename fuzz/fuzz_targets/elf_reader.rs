//! Any bytes as an object file: the reader refuses or accepts, never panics, and what it
//! accepts can be disassembled.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(obj) = frontend::elf::read_object(data, "fuzz.o") {
        let _ = frontend::disasm::disassemble_object(&obj);
    }
});
