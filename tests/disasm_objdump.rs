//! Checks nicc's disassembler against `llvm-objdump -d` (LLVM 14), the tool people compare it
//! with: every object of the ELF corpus, section by section, instruction by instruction (slot
//! number, bytes and text, branch labels included), plus every encoding the decoder accepts
//! assembled into a synthetic object with `llvm-mc`.
//!
//! These tests need LLVM's command-line tools; they fail (rather than skip) when the tools are
//! missing, so that a machine without them cannot pass by testing nothing.

mod support;

use frontend::disasm::format_insn;
use frontend::insn::{decode, Insn, RawInsn};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn corpus() -> PathBuf {
    support::corpus().join("elf")
}

/// Finds an LLVM tool (plain or with the `-14` suffix Debian uses) or fails the test with a
/// message saying how to get it.
fn llvm_tool(name: &str) -> String {
    for candidate in [name.to_string(), format!("{name}-14")] {
        if Command::new(&candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return candidate;
        }
    }
    panic!(
        "`{name}` was not found: install LLVM 14 (for example `apt-get install llvm-14`) so that \
         the disassembler can be compared with it"
    );
}

/// One line of a disassembly: a symbol header `(byte address, name)` or an instruction
/// `(slot, bytes, text)`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Line {
    Symbol(String, String),
    Insn(String, String, String),
}

/// Splits llvm-objdump-style text into sections of lines. Whitespace is normalised only at
/// the ends of fields; everything inside the text must match.
fn parse(text: &str) -> BTreeMap<String, Vec<Line>> {
    let mut out: BTreeMap<String, Vec<Line>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("Disassembly of section ")
            .and_then(|l| l.strip_suffix(':'))
        {
            current = Some(name.to_string());
            out.entry(name.to_string()).or_default();
            continue;
        }
        let Some(section) = &current else { continue };
        let lines = out.get_mut(section).expect("section entry exists");
        if let Some((addr, rest)) = line.split_once(" <") {
            if addr.len() == 16 && addr.chars().all(|c| c.is_ascii_hexdigit()) {
                let name = rest.strip_suffix(">:").unwrap_or(rest);
                lines.push(Line::Symbol(addr.to_string(), name.to_string()));
                continue;
            }
        }
        let mut fields = line.splitn(3, '\t');
        if let (Some(slot), Some(bytes)) = (fields.next(), fields.next()) {
            if let Some(slot) = slot.trim().strip_suffix(':') {
                if slot.chars().all(|c| c.is_ascii_digit()) && !slot.is_empty() {
                    lines.push(Line::Insn(
                        slot.to_string(),
                        bytes.trim().to_string(),
                        fields.next().unwrap_or("").trim_end().to_string(),
                    ));
                }
            }
        }
    }
    out
}

/// The text without a branch's `<symbol+0xoff>` suffix.
fn strip_label(text: &str) -> &str {
    match text.rfind(" <") {
        Some(p) if text.contains("goto") && text.ends_with('>') => &text[..p],
        _ => text,
    }
}

#[test]
fn corpus_matches_llvm_objdump() {
    let objdump = llvm_tool("llvm-objdump");
    let files = support::valid_objects();
    assert!(
        files.len() > 100,
        "corpus not found under {}",
        corpus().display()
    );
    let (mut sections, mut insns, mut symbols) = (0, 0, 0);
    let mut rejected = Vec::new();
    let mut mismatches = Vec::new();
    for path in &files {
        let rel = path
            .strip_prefix(corpus())
            .unwrap_or(path)
            .display()
            .to_string();
        // Exactly what `nicc disasm` prints.
        let text = match nicc::commands::disasm::disasm(path) {
            Ok(t) => t,
            Err(e) => {
                rejected.push(format!("{rel}: {e}"));
                continue;
            }
        };
        let output = Command::new(&objdump)
            .arg("-d")
            .arg(path)
            .output()
            .expect("llvm-objdump runs");
        assert!(
            output.status.success(),
            "llvm-objdump failed on {rel}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs = parse(&String::from_utf8_lossy(&output.stdout));
        // Instructions, branch labels and symbol headers must all match.
        let ours = parse(&text);
        let names = |m: &BTreeMap<String, Vec<Line>>| m.keys().cloned().collect::<Vec<_>>();
        if names(&theirs) != names(&ours) {
            mismatches.push(format!(
                "{rel}: sections differ: llvm-objdump {:?}, nicc {:?}",
                names(&theirs),
                names(&ours)
            ));
            continue;
        }
        for (name, their_lines) in &theirs {
            sections += 1;
            let our_lines = &ours[name];
            for (k, their) in their_lines.iter().enumerate() {
                match their {
                    Line::Insn(..) => insns += 1,
                    Line::Symbol(..) => symbols += 1,
                }
                let our = our_lines.get(k);
                if our != Some(their) {
                    mismatches.push(format!(
                        "{rel} [{name}] line {k}:\n  llvm-objdump: {their:?}\n  nicc:         {our:?}"
                    ));
                    break;
                }
            }
            if our_lines.len() > their_lines.len() {
                mismatches.push(format!(
                    "{rel} [{name}]: nicc prints {} extra lines, first {:?}",
                    our_lines.len() - their_lines.len(),
                    our_lines[their_lines.len()]
                ));
            }
        }
    }
    println!(
        "objects: {} read, {} rejected by the reader; sections: {sections}; instructions \
         compared: {insns}; symbol headers compared: {symbols}; mismatches: {}",
        files.len() - rejected.len(),
        rejected.len(),
        mismatches.len()
    );
    for r in &rejected {
        println!("rejected by the reader (not compared): {r}");
    }
    for m in mismatches.iter().take(40) {
        println!("MISMATCH {m}");
    }
    assert!(insns > 5000, "too few instructions compared: {insns}");
    assert!(
        mismatches.is_empty(),
        "{} sections differ from llvm-objdump (first ones printed above)",
        mismatches.len()
    );
}

/// Field values that reach every decoding path: zero and non-zero registers, small, negative
/// and flag-like immediates, and offsets that select the v4 variants.
const FIELDS: &[(u8, u8, i16, i32)] = &[
    (1, 2, 0, 0),
    (1, 0, 0, 7),
    (1, 0, 0, -7),
    (0, 0, 0, i32::MIN),
    (10, 0, 0, i32::MAX),
    (1, 2, 1, 0),
    (1, 0, 1, 3),
    (1, 2, 8, 0),
    (1, 2, 16, 0),
    (1, 2, 32, 0),
    (1, 0, 0, 16),
    (1, 0, 0, 32),
    (1, 0, 0, 64),
    (3, 4, -3, 0),
    (3, 4, i16::MIN, 0),
    (3, 4, i16::MAX, 0),
    (1, 2, 3, 0x01),
    (1, 2, 3, 0x40),
    (1, 2, 3, 0x41),
    (1, 2, 3, 0x50),
    (1, 2, 3, 0xa1),
    (1, 2, 3, 0xe1),
    (1, 2, 3, 0xf1),
    (0, 0, 5, 0),
    (0, 0, -5, 0),
    (0, 1, 0, 5),
    (0, 1, 0, -5),
    (0, 2, 0, 3),
    (0, 0, 0, 2),
    (2, 0, 0, 0),
    (0, 3, 0, 0),
];

/// Instructions that LLVM 14 cannot print the way nicc does on purpose (see the `disasm`
/// module documentation): ISA v4 forms, `jset`, stores of immediates and `callx`.
fn llvm14_differs(insn: &Insn) -> bool {
    use frontend::insn::{AtomicOp, CallTarget, Imm64, Size};
    use ir::semantics::{AluOp, ByteOrder, JmpCond};
    match *insn {
        Insn::Alu { op, .. } => matches!(
            op,
            AluOp::SDiv | AluOp::SMod | AluOp::MovSx8 | AluOp::MovSx16 | AluOp::MovSx32
        ),
        Insn::Endian { order, .. } => order == ByteOrder::Swap,
        Insn::Load { signed, .. } => signed,
        Insn::StoreImm { .. } => true,
        Insn::Atomic {
            size, op, fetch, ..
        } => size == Size::W && (fetch || op != AtomicOp::Add),
        Insn::Ja { long, .. } => long,
        Insn::Jmp { cond, .. } => cond == JmpCond::Set,
        Insn::Call(CallTarget::Register(_)) => true,
        // LLVM drops the immediate of an indirect packet load; nicc prints it.
        Insn::LoadInd { imm, .. } => imm != 0,
        // LLVM drops the second immediate of a pseudo load; nicc prints it when it is set.
        Insn::Imm64 { imm, .. } => matches!(
            imm,
            Imm64::MapValue { offset: 1.., .. }
                | Imm64::BtfId { extra: 1.., .. }
                | Imm64::MapIdxValue { offset: 1.., .. }
        ),
        _ => false,
    }
}

#[test]
fn every_encoding_matches_llvm14() {
    let mc = llvm_tool("llvm-mc");
    let objdump = llvm_tool("llvm-objdump");
    // Every opcode with every field sample that the decoder accepts, each followed by a zero
    // slot with a distinctive immediate so that a 64-bit load has its second half.
    let mut slots = Vec::new();
    for code in 0..=255u8 {
        for &(dst, src, off, imm) in FIELDS {
            let raw = [
                RawInsn {
                    code,
                    dst,
                    src,
                    off,
                    imm,
                },
                RawInsn {
                    imm: 0x55,
                    ..RawInsn::default()
                },
            ];
            if decode(&raw, 0).is_ok() {
                slots.extend(raw);
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("nicc-disasm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let source = dir.join("all.s");
    let object = dir.join("all.o");
    let mut text = String::from(".section probe,\"ax\"\n");
    for s in &slots {
        text.push_str(&format!(".quad {:#018x}\n", s.to_word()));
    }
    std::fs::write(&source, text).expect("write assembly");
    let status = Command::new(&mc)
        .args(["-triple", "bpfel", "-filetype=obj", "-o"])
        .arg(&object)
        .arg(&source)
        .status()
        .expect("llvm-mc runs");
    assert!(status.success(), "llvm-mc failed");
    let output = Command::new(&objdump)
        .arg("-d")
        .arg(&object)
        .output()
        .expect("llvm-objdump runs");
    let _ = std::fs::remove_dir_all(&dir);
    let theirs = parse(&String::from_utf8_lossy(&output.stdout));
    let lines = theirs.get("probe").expect("probe section disassembled");
    let (mut compared, mut skipped) = (0, 0);
    let mut mismatches = Vec::new();
    for line in lines {
        let Line::Insn(slot, _, their_text) = line else {
            continue;
        };
        let index: usize = slot.parse().expect("slot number");
        let Ok(insn) = decode(&slots, index) else {
            continue;
        };
        // LLVM prints a branch target label; the labels are checked on the corpus.
        let their_text = strip_label(their_text);
        // LLVM 14 decodes a few pseudo loads into `r0` as its codegen-only `lea`.
        if llvm14_differs(&insn) || their_text == "<unknown>" || their_text.starts_with("lea\t") {
            skipped += 1;
            continue;
        }
        compared += 1;
        let ours = format_insn(&insn);
        if ours != their_text {
            mismatches.push(format!(
                "{:016x}: llvm-objdump `{their_text}`, nicc `{ours}`",
                slots[index].to_word()
            ));
        }
    }
    println!(
        "encodings compared with LLVM 14: {compared}; printed differently on purpose or \
         unknown to LLVM 14: {skipped}; mismatches: {}",
        mismatches.len()
    );
    for m in mismatches.iter().take(40) {
        println!("MISMATCH {m}");
    }
    assert!(compared > 800, "too few encodings compared: {compared}");
    assert!(
        mismatches.is_empty(),
        "{} encodings differ",
        mismatches.len()
    );
}
