//! Inputs the fuzzers (`fuzz/`, see its README) found to hurt nicc, rebuilt here from corpus
//! objects so each stays fixed. Each test names the fuzz target and what the input did.

mod support;

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Sets the size of section `name` in the section header table of a 64-bit little-endian ELF.
fn set_section_size(elf: &mut [u8], name: &str, size: u64) {
    let shoff = u64_at(elf, 0x28) as usize;
    let (entsize, count, strndx) = (u16_at(elf, 0x3a), u16_at(elf, 0x3c), u16_at(elf, 0x3e));
    let strtab = u64_at(elf, shoff + strndx * entsize + 0x18) as usize;
    for i in 0..count {
        let h = shoff + i * entsize;
        let name_off = u32::from_le_bytes(elf[h..h + 4].try_into().unwrap()) as usize;
        let start = strtab + name_off;
        let end = start + elf[start..].iter().position(|b| *b == 0).unwrap();
        if &elf[start..end] == name.as_bytes() {
            elf[h + 0x20..h + 0x28].copy_from_slice(&size.to_le_bytes());
            return;
        }
    }
    panic!("no section {name}");
}

/// elf_reader: a `.bss` whose header claims 4 GB made the reader allocate (and clone) that
/// many zeroes: 4 GB of memory and 10 s for a 16 KB file. It is refused at once now, with the
/// kernel's limit.
#[test]
fn a_huge_bss_is_refused_without_allocating_it() {
    let path = support::corpus().join("elf/build/global_variable.o");
    let mut bytes = std::fs::read(&path).expect("corpus object");
    set_section_size(&mut bytes, ".bss", 4_194_304_016);
    let err = frontend::elf::read_object(&bytes, "huge-bss.o").expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("global data section `.bss` is 4194304016 bytes"),
        "{text}"
    );
    assert!(text.contains("help:"), "{text}");
}
