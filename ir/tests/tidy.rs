//! Architecture invariants of the `ir` crate that a test can check.

/// `ir` depends on no other crate of the workspace: it is the vocabulary every other crate
/// shares, so it must not know about any of them.
#[test]
fn ir_depends_on_no_workspace_crate() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("ir/Cargo.toml is readable");
    for line in manifest.lines() {
        let line = line.trim_start();
        assert!(
            !line.starts_with("nicc-") && !line.contains("path ="),
            "ir must not depend on a workspace crate: {line}"
        );
    }
}
