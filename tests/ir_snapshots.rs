//! The IR of a few real programs as lifted and after each target's optimization pipeline, as
//! `nicc ir` prints it. These snapshots are for people: a change to the lifter, a pass or a
//! cost function shows up here as a reviewable diff of real code, program by program.

mod support;

use nicc::commands::ir::{ir, IrArgs};
use std::path::{Path, PathBuf};

/// Small programs that together use packet parsing, map lookups and updates, packet rewriting,
/// a checksum, a tail adjustment, a redirect, and BTF line information (the bundled example).
const PROGRAMS: [(&str, &str); 4] = [
    ("xdp1", "elf/linux/xdp1_kern.o"),
    ("xdp_adjust_tail", "elf/linux/xdp_adjust_tail_kern.o"),
    ("xdp_redirect_map", "elf/linux/xdp_redirect_map_kern.o"),
    ("xdp_firewall", "examples/xdp_firewall.o"),
];

/// The pipelines whose output is shown, one per target.
const PIPELINES: [&str; 4] = ["bpf", "native", "nfp", "hw"];

fn object_path(rel: &str) -> PathBuf {
    match rel.strip_prefix("examples/") {
        Some(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel),
        None => support::corpus().join(rel),
    }
}

/// What `nicc ir OBJ --program P [--pipeline NAME]` prints.
fn ir_of(object: &Path, program: &str, pipeline: Option<&str>) -> String {
    let args = IrArgs {
        object: object.to_path_buf(),
        program: Some(program.to_string()),
        pipeline: pipeline.map(str::to_string),
        after: None,
        inline_calls: false,
    };
    ir(&args).unwrap_or_else(|e| panic!("{}: {e}", object.display()))
}

#[test]
fn ir_before_and_after_each_pipeline() {
    for (name, rel) in PROGRAMS {
        let object = object_path(rel);
        let obj = frontend::elf::read_file(&object).unwrap_or_else(|e| panic!("{rel}: {e}"));
        // The first XDP program of the object.
        let program = obj
            .programs
            .iter()
            .find(|p| p.kind == frontend::object::ProgramKind::Xdp)
            .unwrap_or_else(|| panic!("{rel} has no XDP program"))
            .name
            .clone();
        let lifted = ir_of(&object, &program, None);
        let mut text = format!("# {rel}, program {program}\n\n## lifted\n\n{lifted}");
        for p in PIPELINES {
            let optimized = ir_of(&object, &program, Some(p));
            assert_ne!(
                optimized, lifted,
                "{rel}: the {p} pipeline changed nothing in {program}"
            );
            text.push_str(&format!("\n## after the {p} pipeline\n\n{optimized}"));
        }
        insta::assert_snapshot!(name, text);
    }
}
