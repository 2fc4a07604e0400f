//! Helpers shared by the integration tests: where the corpus is, and packets built to reach
//! the branches the capture corpus does not.
#![allow(dead_code)]

pub mod engine_diff;
pub mod packets;
pub mod seeds;

use std::path::{Path, PathBuf};

/// The shared corpus, beside the repository.
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// Every file under `dir` (recursively) whose name passes `keep`, sorted.
pub fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if keep(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The corpus objects outside `invalid/`.
pub fn valid_objects() -> Vec<PathBuf> {
    let elf = corpus().join("elf");
    files_under(&elf, &|p| {
        p.extension().is_some_and(|e| e == "o") && !p.starts_with(elf.join("invalid"))
    })
}

/// Compiles `tests/data/<name>.c` for BPF with clang (as the corpus objects are built: `-O2 -g`)
/// into a fresh temporary directory and returns the object's path; a missing clang or a
/// compile error fails the test.
pub fn clang_bpf_object(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{name}.c"));
    let dir = std::env::temp_dir().join(format!("nicc-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let out = dir.join(format!("{name}.o"));
    let run = std::process::Command::new("clang")
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("this test needs clang to build {}: {e}", src.display()));
    assert!(
        run.status.success(),
        "clang failed on {}: {}",
        src.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    out
}
