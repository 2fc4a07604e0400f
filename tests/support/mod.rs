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
