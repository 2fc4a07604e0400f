//! Inputs the fuzzers (`fuzz/`, see its README) found to hurt nicc, rebuilt here from corpus
//! objects so each stays fixed. Each test names the fuzz target and what the input did.

mod support;

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

/// The NUL-terminated string at `at`.
fn c_str(b: &[u8], at: usize) -> &[u8] {
    let end = at + b[at..].iter().position(|c| *c == 0).unwrap();
    &b[at..end]
}

/// The offset of the header of section `name`, and its index, in a 64-bit little-endian ELF.
fn section_header(elf: &[u8], name: &str) -> (usize, usize) {
    let shoff = u64_at(elf, 0x28) as usize;
    let (entsize, count, strndx) = (u16_at(elf, 0x3a), u16_at(elf, 0x3c), u16_at(elf, 0x3e));
    let strtab = u64_at(elf, shoff + strndx * entsize + 0x18) as usize;
    (0..count)
        .map(|i| (shoff + i * entsize, i))
        .find(|&(h, _)| c_str(elf, strtab + u32_at(elf, h)) == name.as_bytes())
        .unwrap_or_else(|| panic!("no section {name}"))
}

/// Sets the size of section `name` in the section header table of a 64-bit little-endian ELF.
fn set_section_size(elf: &mut [u8], name: &str, size: u64) {
    let (h, _) = section_header(elf, name);
    elf[h + 0x20..h + 0x28].copy_from_slice(&size.to_le_bytes());
}

/// Moves the contents of section `name` to `bytes`, appended at the end of the file.
fn replace_section_contents(elf: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    while !elf.len().is_multiple_of(8) {
        elf.push(0);
    }
    let offset = elf.len() as u64;
    elf.extend_from_slice(bytes);
    let (h, _) = section_header(elf, name);
    elf[h + 0x18..h + 0x20].copy_from_slice(&offset.to_le_bytes());
    set_section_size(elf, name, bytes.len() as u64);
}

/// Sets the size of function symbol `name` (in `.symtab`).
fn set_symbol_size(elf: &mut [u8], name: &str, size: u64) {
    let (h, _) = section_header(elf, ".symtab");
    let (off, len) = (
        u64_at(elf, h + 0x18) as usize,
        u64_at(elf, h + 0x20) as usize,
    );
    let shoff = u64_at(elf, 0x28) as usize;
    let link = u32_at(elf, h + 0x28);
    let strtab = u64_at(elf, shoff + link * u16_at(elf, 0x3a) + 0x18) as usize;
    for sym in (off..off + len).step_by(24) {
        if c_str(elf, strtab + u32_at(elf, sym)) == name.as_bytes() {
            elf[sym + 16..sym + 24].copy_from_slice(&size.to_le_bytes());
            return;
        }
    }
    panic!("no symbol {name}");
}

/// `count` instructions `r0 = 0` and then `exit`, as section bytes.
fn straight_line_code(count: usize) -> Vec<u8> {
    let mut code = Vec::with_capacity((count + 1) * 8);
    for _ in 0..count {
        code.extend_from_slice(&[0xb7, 0, 0, 0, 0, 0, 0, 0]);
    }
    code.extend_from_slice(&[0x95, 0, 0, 0, 0, 0, 0, 0]);
    code
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

/// Limits: a program longer than the kernel would ever load (1,000,000 instructions) is
/// refused by the reader, naming the program and the limit, before any stage spends time on
/// it; one just under the limit still reads.
#[test]
fn a_program_longer_than_the_kernel_accepts_is_refused_by_the_reader() {
    let path = support::corpus().join("elf/build/packet_start_ok.o");
    let original = std::fs::read(&path).expect("corpus object");
    let limit = frontend::elf::MAX_PROGRAM_SLOTS;
    let with_code = |count: usize| {
        let mut bytes = original.clone();
        let code = straight_line_code(count);
        replace_section_contents(&mut bytes, "xdp", &code);
        set_symbol_size(&mut bytes, "read_write_packet_start", code.len() as u64);
        bytes
    };
    let err = frontend::elf::read_object(&with_code(limit), "too-long.o").expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("program `read_write_packet_start`"), "{text}");
    assert!(text.contains("more than 1000000 instructions"), "{text}");
    assert!(text.contains("help:"), "{text}");
    let obj = frontend::elf::read_object(&with_code(limit - 1), "just-fits.o").expect("reads");
    assert_eq!(obj.programs[0].insns.len(), limit);
}

/// pipeline: `r0 = *(u32 *)(r10 - 769)` (bpf2bpf.o with the bytes of one offset swapped) was
/// lifted into a stack load 257 bytes below the frame's memory, which the IR verifier then
/// refused as a bug in the lifter. The lifter refuses it itself now, as the kernel does.
#[test]
fn a_stack_access_below_the_frame_is_refused_by_the_lifter() {
    let path = support::corpus().join("elf/build/bpf2bpf.o");
    let mut bytes = std::fs::read(&path).expect("corpus object");
    let load = [0x61, 0xa0, 0xfc, 0xff, 0, 0, 0, 0];
    let at = bytes
        .windows(8)
        .rposition(|w| w == load)
        .expect("`r0 = *(u32 *)(r10 - 4)` in bpf2bpf.o");
    bytes[at + 2..at + 4].copy_from_slice(&(-769i16).to_le_bytes());
    let obj = frontend::elf::read_object(&bytes, "below-frame.o").expect("reads");
    let err = frontend::lift::lift_object(&obj, &frontend::lift::LiftOptions::default())
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("4-byte stack access at r10-769 is outside the 512-byte frame"),
        "{text}"
    );
    assert!(text.contains("help:"), "{text}");
}
