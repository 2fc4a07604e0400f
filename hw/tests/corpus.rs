//! Every XDP program of the real corpus objects, loaded into the running kernel one program at
//! a time (with all of its object's maps): how many the verifier accepts, and for each refusal
//! the kernel's reason (the last line of the verifier log).
//!
//! The corpus lives outside the repository, at `../shared/corpus` from the project root; the
//! test fails if it or the kernel is missing, rather than passing without having looked.

use frontend::object::ProgramKind;
use hw::linux::{kernel_available, KernelError, KernelObject, XdpCtx};
use std::path::{Path, PathBuf};

const FOLDERS: [&str; 5] = [
    "linux",
    "prototype-kernel",
    "suricata",
    "cilium-examples",
    "build",
];

/// The folders whose XDP programs the kernel is known to accept, mostly.
const MOSTLY_ACCEPTED: [&str; 3] = ["linux", "prototype-kernel", "suricata"];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/elf")
}

fn objects(folder: &str) -> Vec<PathBuf> {
    let dir = corpus().join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus folder {} is missing: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    files.sort();
    files
}

/// The kernel samples name XDP sections `xdp1`, `xdp_fwd` and so on: their loader
/// (`samples/bpf/bpf_load.c`) and libbpf before 1.0 took every section starting with `xdp` for
/// an XDP program, while libbpf 1.x wants `xdp` followed by nothing, `/` or `.`. Should the
/// object model leave such a program unclassified, this test classifies it as its own loader
/// did, so the count does not depend on that choice.
fn legacy_xdp_names(obj: &mut frontend::Object) {
    for prog in &mut obj.programs {
        if prog.kind == ProgramKind::Unknown && prog.section.starts_with("xdp") {
            prog.kind = ProgramKind::Xdp;
        }
    }
}

#[derive(Default)]
struct Tally {
    accepted: usize,
    refused: usize,
    unreadable: usize,
}

#[test]
fn corpus_xdp_programs_load_into_the_kernel() {
    if let Err(why) = kernel_available() {
        panic!("this test needs the kernel's bpf(): {why}");
    }
    let mut total = Tally::default();
    let mut mostly = Tally::default();
    for folder in FOLDERS {
        let mut tally = Tally::default();
        for path in objects(folder) {
            let short = format!("{folder}/{}", path.file_name().unwrap().to_string_lossy());
            let mut obj = match frontend::elf::read_file(&path) {
                Ok(obj) => obj,
                Err(d) => {
                    println!("  unreadable {short}: {}", d.message);
                    tally.unreadable += 1;
                    continue;
                }
            };
            legacy_xdp_names(&mut obj);
            for (index, prog) in obj.programs.iter().enumerate() {
                if prog.kind != ProgramKind::Xdp {
                    continue;
                }
                match KernelObject::load(&obj, &[index]) {
                    Ok(k) => {
                        tally.accepted += 1;
                        // A loaded program must also run and dump its maps.
                        let packet = [0u8; 64];
                        k.test_run_xdp(index, &packet, &XdpCtx::default())
                            .unwrap_or_else(|e| panic!("{short} {}: test run: {e}", prog.name));
                        k.snapshot()
                            .unwrap_or_else(|e| panic!("{short} {}: snapshot: {e}", prog.name));
                    }
                    Err(e) => {
                        tally.refused += 1;
                        let reason = match &e {
                            KernelError::ProgramRefused { .. } => {
                                e.verifier_reason().unwrap_or("(empty log)").to_string()
                            }
                            other => other.to_string(),
                        };
                        println!("  refused {short} `{}`: {reason}", prog.name);
                    }
                }
            }
        }
        println!(
            "{folder}: {} XDP programs accepted, {} refused, {} objects unreadable",
            tally.accepted, tally.refused, tally.unreadable
        );
        total.accepted += tally.accepted;
        total.refused += tally.refused;
        total.unreadable += tally.unreadable;
        if MOSTLY_ACCEPTED.contains(&folder) {
            mostly.accepted += tally.accepted;
            mostly.refused += tally.refused;
        }
    }
    println!(
        "total: {} accepted, {} refused, {} objects unreadable",
        total.accepted, total.refused, total.unreadable
    );
    assert!(
        mostly.accepted > 2 * mostly.refused,
        "the kernel accepts most XDP programs of {MOSTLY_ACCEPTED:?}, but the loader got only \
         {} of {} through",
        mostly.accepted,
        mostly.accepted + mostly.refused
    );
}
