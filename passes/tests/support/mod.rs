//! What the corpus-wide tests of the passes share: where the corpus objects are.

use std::path::{Path, PathBuf};

/// Every object of the shared corpus outside `invalid/` (hostile input for the reader, not
/// programs), sorted so that output is stable.
pub fn corpus_objects() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/elf");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let p = entry.expect("directory entry").path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "invalid") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "o") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(
        !out.is_empty(),
        "no corpus objects under {}",
        root.display()
    );
    out
}
