//! Runs the assembler, the conformance syntax printer and the disassembler over every file of
//! the bpf_conformance suite: each program must assemble (to exactly its `-- raw` words when
//! the file has them), survive decode → print → assemble unchanged, and format without
//! panicking; each negative test that expects bad input must be refused with a message.

use frontend::asm::{assemble, format_asm};
use frontend::conformance::{program_of, read, ConformanceTest};
use frontend::disasm::format_insn;
use frontend::insn::decode_all;
use std::path::{Path, PathBuf};

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/conformance")
}

fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> ConformanceTest {
    read(path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_conformance_program_assembles_and_round_trips() {
    let files = data_files(&suite().join("tests"));
    assert_eq!(files.len(), 313, "the suite has 313 positive tests");
    let (mut with_asm, mut with_raw, mut slots) = (0, 0, 0);
    let mut failures = Vec::new();
    for path in &files {
        let test = load(path);
        let Some(asm) = &test.asm else { continue };
        with_asm += 1;
        let raw = match assemble(asm) {
            Ok(raw) => raw,
            Err(e) => {
                failures.push(format!("{}: {e}", test.name));
                continue;
            }
        };
        slots += raw.len();
        if let Some(words) = &test.raw {
            with_raw += 1;
            let ours: Vec<u64> = raw.iter().map(|r| r.to_word()).collect();
            if &ours != words {
                failures.push(format!(
                    "{}: assembled {ours:#018x?}, the file's raw section is {words:#018x?}",
                    test.name
                ));
            }
        }
        let insns = match decode_all(&raw) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!(
                    "{}: assembled program does not decode: {e}",
                    test.name
                ));
                continue;
            }
        };
        for insn in &insns {
            let _ = format_insn(insn);
        }
        let printed = format_asm(&insns);
        match assemble(&printed) {
            Ok(again) if again == raw => {}
            Ok(_) => failures.push(format!(
                "{}: printing and assembling again changed the program:\n{printed}",
                test.name
            )),
            Err(e) => failures.push(format!(
                "{}: the printed program does not assemble ({e}):\n{printed}",
                test.name
            )),
        }
    }
    println!(
        "conformance programs: {with_asm} assembled ({slots} slots), {with_raw} checked against \
         their raw words, {} failures",
        failures.len()
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(with_asm > 300, "only {with_asm} programs with asm");
    assert!(failures.is_empty(), "{} programs failed", failures.len());
}

/// Negative tests whose input is valid and whose expected failure happens when the program
/// runs, not when it is assembled or decoded.
const RUNTIME_NEGATIVES: &[&str] = &[
    // `or %r0, %r10` is well formed; the runner expects the run to be reported as an error.
    "error",
    // The program returns a value with high bits the expected result lacks.
    "incorrect_return_value_high_bits",
];

#[test]
fn negative_tests_are_refused_with_a_message() {
    let files = data_files(&suite().join("negative"));
    assert_eq!(files.len(), 60, "the suite has 60 negative tests");
    let (mut refused, mut no_program, mut runtime) = (0, 0, 0);
    let mut accepted = Vec::new();
    for path in &files {
        let test = load(path);
        if test.asm.is_none() && test.raw.is_none() && test.unknown_sections.is_empty() {
            no_program += 1;
            println!("{}: no program in the file", test.name);
            continue;
        }
        let outcome = program_of(&test).and_then(|raw| {
            decode_all(&raw)
                .map(|_| ())
                .map_err(|e| format!("{}: {e}", test.name))
        });
        match outcome {
            Err(message) => {
                refused += 1;
                let expected = test.error.as_deref().unwrap_or("(no error section)");
                println!("refused {message}   [file expects: {expected:?}]");
                assert!(!message.trim().is_empty(), "{}: empty message", test.name);
                if let Some(expected) = test.error.as_deref().filter(|e| !e.is_empty()) {
                    // The runner reports a stray section header as "Invalid register"; nicc names
                    // the directive instead, which says more.
                    if test.name != "invalid_unknown_directive" {
                        assert!(
                            message.contains(expected),
                            "{}: message {message:?} does not contain the expected {expected:?}",
                            test.name
                        );
                    }
                }
            }
            Ok(()) if RUNTIME_NEGATIVES.contains(&test.name.as_str()) => {
                runtime += 1;
                println!("{}: valid input, fails only when run", test.name);
            }
            Ok(()) => accepted.push(test.name.clone()),
        }
    }
    println!(
        "negative tests: {refused} refused by the assembler or decoder, {runtime} fail only at \
         run time, {no_program} have no program, {} wrongly accepted",
        accepted.len()
    );
    assert!(accepted.is_empty(), "accepted bad input: {accepted:?}");
    assert!(refused >= 50, "only {refused} refused");
}
