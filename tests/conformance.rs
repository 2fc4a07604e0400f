//! The BPF conformance suite (`../shared/corpus/conformance`): every test must pass on the
//! interpreter, both in process and through `nicc conformance-plugin` driven exactly as the
//! public bpf_conformance runner drives a plugin; every negative test must fail, with a message.

mod support;

use frontend::conformance::{self, ConformanceTest};
use std::io::Write;
use std::process::{Command, Stdio};

fn suite(folder: &str) -> Vec<ConformanceTest> {
    let dir = support::corpus().join("conformance").join(folder);
    let files = support::files_under(&dir, &|p| p.extension().is_some_and(|e| e == "data"));
    assert!(
        !files.is_empty(),
        "no conformance tests under {}",
        dir.display()
    );
    files
        .iter()
        .map(|p| conformance::read(p).unwrap_or_else(|e| panic!("{}: {e:?}", p.display())))
        .collect()
}

/// Runs a program the way the public runner does: memory as the first argument (only when the
/// test has memory), the program on standard input as hex bytes separated by two spaces, r0
/// read back from standard output as hex. Returns r0, or the exit status and standard error.
fn run_plugin(program: &[u8], memory: &[u8]) -> Result<u64, String> {
    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}  ")).collect() };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nicc"));
    cmd.arg("conformance-plugin");
    if !memory.is_empty() {
        cmd.arg(hex(memory));
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nicc starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{}", hex(program)).expect("write program");
    }
    let out = child.wait_with_output().expect("nicc finishes");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(format!(
            "exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    u64::from_str_radix(stdout.trim_start_matches("0x"), 16)
        .map_err(|e| format!("plugin printed {stdout:?}, not hex: {e}"))
}

fn program_bytes(test: &ConformanceTest) -> Result<Vec<u8>, String> {
    conformance::program_of(test).map(|raw| frontend::insn::to_bytes(&raw))
}

/// The outcome of one test on one engine: `Ok(())` when it behaved as the file says.
fn judge(test: &ConformanceTest, run: Result<u64, String>) -> Result<(), String> {
    match (test.result, run) {
        (Some(want), Ok(got)) if want == got => Ok(()),
        (Some(want), Ok(got)) => Err(format!("r0 is {got:#x}, expected {want:#x}")),
        (Some(want), Err(e)) => Err(format!("failed ({e}), expected r0 {want:#x}")),
        (None, Err(_)) if test.error.is_some() => Ok(()),
        (None, other) => Err(format!("no expected result in the file; got {other:?}")),
    }
}

#[test]
fn every_test_passes_in_process() {
    let tests = suite("tests");
    let mut failures = Vec::new();
    for t in &tests {
        let run = conformance::program_of(t).and_then(|raw| {
            let mut mem = t.mem.clone();
            sim::interp::run_with_memory(&raw, &mut mem).map_err(|d| d.to_string())
        });
        if let Err(e) = judge(t, run) {
            failures.push(format!("{}: {e}", t.name));
        }
    }
    println!(
        "{} passed, {} failed",
        tests.len() - failures.len(),
        failures.len()
    );
    assert_eq!(tests.len(), 313, "the suite should hold 313 tests");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_test_passes_through_the_plugin_protocol() {
    let tests = suite("tests");
    let mut failures = Vec::new();
    for t in &tests {
        let run = program_bytes(t).and_then(|code| run_plugin(&code, &t.mem));
        if let Err(e) = judge(t, run) {
            failures.push(format!("{}: {e}", t.name));
        }
    }
    println!(
        "through the plugin: {} passed, {} failed",
        tests.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_negative_test_fails_with_a_message() {
    let tests = suite("negative");
    let mut wrongly_passed = Vec::new();
    for t in &tests {
        // A negative test fails at the first stage that refuses it: no program in the file,
        // the assembler, the decoder (through the plugin), or a result that differs from the
        // (deliberately wrong) expectation.
        let message = match program_bytes(t) {
            Err(e) => format!("refused by the assembler: {e}"),
            Ok(code) if code.is_empty() => "the file holds no program".to_string(),
            Ok(code) => match judge(t, run_plugin(&code, &t.mem)) {
                Err(e) => format!("failed when run: {e}"),
                Ok(()) if t.error.as_deref().is_some_and(|e| !e.is_empty()) => {
                    "refused at run time".to_string()
                }
                Ok(()) if t.result.is_none() => "refused by the plugin".to_string(),
                Ok(()) => {
                    wrongly_passed.push(t.name.clone());
                    continue;
                }
            },
        };
        assert!(!message.trim().is_empty());
        println!("{:45} {}", t.name, message.lines().next().unwrap_or(""));
    }
    println!(
        "{} negative tests, {} wrongly passed",
        tests.len(),
        wrongly_passed.len()
    );
    assert_eq!(tests.len(), 60);
    assert!(
        wrongly_passed.is_empty(),
        "negative tests that passed: {wrongly_passed:?}"
    );
}
