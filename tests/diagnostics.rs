//! What a user sees when nicc refuses its input: every object of the corpus's `invalid/`
//! folder and every negative conformance test, with the whole message, snapshotted so that a
//! change to any of them is reviewed by a person (`cargo insta review`).
//!
//! Each message must name what was refused and where; the snapshots are where a reviewer
//! checks that it also says what to do.

mod support;

use frontend::conformance;
use std::fmt::Write;

/// The message for an object: the reader's refusal, or for an object the reader takes, what
/// `nicc run` says when asked to run it.
fn object_message(path: &std::path::Path) -> String {
    match frontend::elf::read_file(path) {
        Err(d) => d.to_string(),
        Ok(obj) => match nicc::commands::select_program(&obj, None) {
            Err(e) => e,
            Ok(i) => format!("accepted: program {} would run", obj.programs[i].name),
        },
    }
}

/// Paths inside messages are made relative to the corpus, so the snapshot does not depend on
/// where the checkout is.
fn relative(text: &str) -> String {
    let corpus = support::corpus();
    let corpus = corpus.to_string_lossy();
    text.replace(&*corpus, "<corpus>")
}

#[test]
fn invalid_objects_are_refused_with_helpful_messages() {
    let dir = support::corpus().join("elf/invalid");
    let files = support::files_under(&dir, &|_| true);
    assert_eq!(files.len(), 11, "the corpus's invalid folder");
    let mut all = String::new();
    for path in &files {
        let message = relative(&object_message(path));
        assert!(
            !message.starts_with("accepted"),
            "{} is invalid and must be refused",
            path.display()
        );
        assert!(
            !message.contains("error:") || message.contains("help:"),
            "{}: no help line in {message}",
            path.display()
        );
        let name = path.file_name().unwrap().to_string_lossy();
        let _ = writeln!(all, "=== {name}\n{}\n", message.trim_end());
    }
    insta::assert_snapshot!(all);
}

#[test]
fn negative_conformance_tests_are_refused_with_helpful_messages() {
    let dir = support::corpus().join("conformance/negative");
    let files = support::files_under(&dir, &|p| p.extension().is_some_and(|e| e == "data"));
    let mut all = String::new();
    for path in &files {
        let t = conformance::read(path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        // The first stage that refuses the test speaks: the assembler, then the interpreter;
        // a program that runs is reported with its result, which the file's expectation
        // contradicts (that is what makes those tests negative).
        let message = match conformance::program_of(&t) {
            Err(e) => format!("assembler: {e}"),
            Ok(raw) if raw.is_empty() => "the file holds no program".to_string(),
            Ok(raw) => {
                let mut mem = t.mem.clone();
                match sim::interp::run_with_memory(&raw, &mut mem) {
                    Err(d) => format!("interpreter: {d}"),
                    Ok(r0) => format!(
                        "runs and returns {r0:#x}; the file expects {}",
                        t.result.map_or_else(
                            || format!("an error ({:?})", t.error),
                            |r| format!("{r:#x}")
                        )
                    ),
                }
            }
        };
        assert!(!message.trim().is_empty());
        // A refusal by the interpreter is a compiler-style error: it says what to do.
        assert!(
            !message.starts_with("interpreter:") || message.contains("help:"),
            "{}: no help line in {message}",
            t.name
        );
        let _ = writeln!(all, "=== {}\n{}\n", t.name, relative(message.trim_end()));
    }
    assert_eq!(files.len(), 60);
    insta::assert_snapshot!(all);
}

/// Target limits are compiler errors too: every XDP program of the corpus's `build/` folder
/// (built with BTF line info) that the NFP or the pipeline target refuses is refused with the
/// program, the instruction, the C source line and what to do.
#[test]
fn target_rejections_name_the_c_source_line() {
    let dir = support::corpus().join("elf/build");
    let files = support::files_under(&dir, &|p| p.extension().is_some_and(|e| e == "o"));
    let mut all = String::new();
    let mut refused = 0;
    for path in &files {
        let Ok(obj) = frontend::elf::read_file(path) else {
            continue;
        };
        for (i, p) in obj.programs.iter().enumerate() {
            if p.kind != frontend::object::ProgramKind::Xdp || p.lines.is_empty() {
                continue;
            }
            // A program the lifter refuses is covered by the frontend's own diagnostics.
            if frontend::lift::lift_program(&obj, i, &Default::default()).is_err() {
                continue;
            }
            let results = [
                (
                    "nfp",
                    nicc::commands::compile_nfp::compile_program(&obj, i, "nfp").err(),
                ),
                (
                    "verilog",
                    nicc::commands::compile_verilog::compile_xdp_program(&obj, i, None).err(),
                ),
            ];
            for (target, err) in results {
                let Some(message) = err else {
                    continue;
                };
                refused += 1;
                let place = format!("{} on {target}", p.name);
                assert!(message.contains("help:"), "{place}: no help in {message}");
                if message.contains("instruction ") {
                    assert!(
                        message.contains(".c:"),
                        "{place}: the instruction's C line is missing in {message}"
                    );
                }
                let _ = writeln!(all, "=== {place}\n{}\n", relative(message.trim_end()));
            }
        }
    }
    assert!(
        refused > 0,
        "the build folder has programs the targets refuse"
    );
    insta::assert_snapshot!(all);
}
