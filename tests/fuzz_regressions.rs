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

/// Replaces the immediate of the first `dst += -4`-style ALU64 add of `old` to register `dst`
/// in `elf` with `new`; the encoding is opcode 0x07, the register byte, a zero offset, then
/// the little-endian immediate.
fn patch_add_imm(elf: &mut [u8], dst: u8, old: i32, new: i32) {
    let mut pattern = vec![0x07, dst, 0, 0];
    pattern.extend_from_slice(&old.to_le_bytes());
    let at = elf
        .windows(8)
        .position(|w| w == pattern.as_slice())
        .unwrap_or_else(|| panic!("no `r{dst} += {old}` in the object"));
    elf[at + 4..at + 8].copy_from_slice(&new.to_le_bytes());
}

/// Lifts `bytes` and runs every optimization pipeline with the IR verifier after each pass,
/// as the `pipeline` fuzz target does; returns how many programs lifted.
fn lift_and_optimize(bytes: &[u8], name: &str) -> usize {
    let obj = frontend::elf::read_object(bytes, name).expect("the patched object still reads");
    let lifted = frontend::lift::lift_object(&obj, &frontend::lift::LiftOptions::default())
        .expect("a frame address outside the frame is only wrong when dereferenced");
    for pipe_name in ["bpf", "native", "nfp", "hw"] {
        let mut module = lifted.clone();
        let pipe = passes::pipeline::pipeline(pipe_name).expect("named pipeline");
        let mut ctx = passes::pass::PassContext::new(pipe.target);
        passes::pipeline::PassManager::new()
            .verify_each(true)
            .run(&pipe, &mut module, &mut ctx)
            .unwrap_or_else(|e| panic!("pipeline {pipe_name}: {e}"));
    }
    lifted.programs.len()
}

/// pipeline: `r2 = r10; r2 += -67108868` handed to a map helper made the provenance analysis
/// mark every 8-byte word between that address and the frame as written by the helper: eight
/// million map entries per analysed path, 59 s and 4.9 GB for a 2.6 KB object. Only the
/// 512-byte frame is tracked now.
#[test]
fn a_helper_pointer_far_below_the_frame_lifts_quickly() {
    let path = support::corpus().join("elf/linux/xdp_monitor_kern.o");
    let mut bytes = std::fs::read(&path).expect("corpus object");
    patch_add_imm(&mut bytes, 0x02, -4, -67_108_868);
    let programs = lift_and_optimize(&bytes, "far-below-frame.o");
    assert!(programs > 0, "the object's programs lifted");
}

/// simulators: the same mistake through `r3 += -13959240` before a map update (offwaketime's
/// `oncpu`), found by the simulator target, which lifts every object it runs.
#[test]
fn a_map_value_pointer_far_below_the_frame_lifts_quickly() {
    let path = support::corpus().join("elf/linux/offwaketime_kern.o");
    let mut bytes = std::fs::read(&path).expect("corpus object");
    patch_add_imm(&mut bytes, 0x03, -72, -13_959_240);
    let programs = lift_and_optimize(&bytes, "far-below-frame-2.o");
    assert!(programs > 0, "the object's programs lifted");
}

/// A frame pointer above r10 handed to a helper used to make the same analysis ask a
/// `BTreeMap` for an empty-but-reversed range, which panics; the kernel would refuse the
/// access, nicc must not abort on it.
#[test]
fn a_helper_pointer_above_the_frame_does_not_abort_the_lifter() {
    let path = support::corpus().join("elf/linux/xdp_monitor_kern.o");
    let mut bytes = std::fs::read(&path).expect("corpus object");
    patch_add_imm(&mut bytes, 0x02, -4, 64);
    let programs = lift_and_optimize(&bytes, "above-frame.o");
    assert!(programs > 0, "the object's programs lifted");
}
