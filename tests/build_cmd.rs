//! `nicc build` over the whole corpus, as a build pipeline would run it: every program of
//! every object is accounted for on every target (accepted, rejected with a reason, or not
//! applicable), the JSON report says the same as the table, and `--require` turns a program
//! that does not fit into a failing exit status.

mod support;

use std::path::Path;
use std::process::Command;

const NICC: &str = env!("CARGO_BIN_EXE_nicc");
const TARGETS: [&str; 4] = ["bpf", "native", "nfp", "verilog"];

fn build(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(NICC)
        .arg("build")
        .arg(support::corpus().join("elf"))
        .arg("-o")
        .arg(out)
        .args(extra)
        .env("CI", "true")
        .output()
        .expect("cannot run nicc")
}

#[test]
fn corpus_build_accounts_for_every_program_on_every_target() {
    let out = std::env::temp_dir().join(format!("nicc-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let result = build(&out, &["--require", "xdp_prog1:bpf"]);
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        result.status.success(),
        "nicc build failed:\n{stdout}\n{stderr}"
    );
    // Not a terminal and CI set: plain progress lines, no bar.
    assert!(stderr.contains("jobs done"), "{stderr}");
    println!(
        "{}",
        stdout.lines().rev().take(8).collect::<Vec<_>>().join("\n")
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
            .expect("report.json is JSON");
    let rows = report["rows"].as_array().expect("rows");
    // Every readable object of the corpus, every program, once per target.
    let mut expected = 0;
    let mut readable = 0;
    for path in support::files_under(&support::corpus().join("elf"), &|p| {
        p.extension().is_some_and(|e| e == "o")
    }) {
        if let Ok(obj) = frontend::elf::read_file(&path) {
            readable += 1;
            expected += obj.programs.len();
        }
    }
    assert_eq!(report["objects"].as_u64(), Some(readable));
    assert_eq!(rows.len(), expected * TARGETS.len());
    for r in rows {
        let status = r["status"].as_str().unwrap();
        assert!(
            ["accepted", "rejected", "not_applicable"].contains(&status),
            "{r}"
        );
        if status != "accepted" {
            let reason = r["reason"].as_str().unwrap_or("");
            assert!(reason.len() > 10, "a refusal says why: {r}");
        } else {
            for a in r["artifacts"].as_array().expect("artifacts") {
                assert!(Path::new(a.as_str().unwrap()).exists(), "{a} was written");
            }
        }
    }
    for t in TARGETS {
        let of_target = rows.iter().filter(|r| r["target"] == t).count();
        assert_eq!(of_target, expected, "one {t} row per program");
        let accepted = report["accepted"][t].as_u64().unwrap();
        let counted = rows
            .iter()
            .filter(|r| r["target"] == t && r["status"] == "accepted")
            .count() as u64;
        assert_eq!(accepted, counted, "{t}");
        assert!(accepted > 0, "{t} accepts some corpus program");
        assert!(
            stdout.contains(&format!("{t:<8} {accepted} accepted")),
            "the table agrees with the report for {t}"
        );
    }
    // Unreadable inputs are listed with the reader's reason, not dropped.
    let unreadable = report["unreadable"].as_array().unwrap();
    assert!(unreadable
        .iter()
        .all(|u| u["reason"].as_str().is_some_and(|r| !r.is_empty())));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_required_program_that_does_not_fit_fails_the_build() {
    let out = std::env::temp_dir().join(format!("nicc-build-req-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    // xdp_fwd calls bpf_fib_lookup, which the NFP target does not offer.
    let result = build(&out, &["--targets", "nfp", "--require", "xdp_fwd_prog:nfp"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "the requirement is not met");
    assert!(
        stderr.contains("required `xdp_fwd_prog:nfp`") && stderr.contains("fib_lookup"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
