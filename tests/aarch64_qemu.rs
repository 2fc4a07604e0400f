//! aarch64 objects checked for real: `nicc compile --target aarch64` output, linked by
//! `aarch64-linux-gnu-gcc -static` with the C harness (`hw/harness/nicc_harness.c`) and run
//! under `qemu-aarch64`, with every runtime callback answered by the shared runtime on the
//! host, against the golden interpreter: the conformance suite (one process per test), and
//! every kernel-accepted XDP program of the corpus (one process per program, all packets
//! batched through it) over the generated probe packets and a sample of the pcap corpus.
//! Verdicts, output packets, redirects, captured outputs and final maps must be identical.
//! The tests fail, never skip, when the cross compiler (Debian `gcc-aarch64-linux-gnu`) or
//! qemu-user (`qemu-user`) is missing. Compile times for aarch64 are printed.

#[path = "support/native_remote.rs"]
mod native_remote;
#[path = "support/object_diff.rs"]
mod object_diff;
mod support;

use hw::qemu::Arch;
use object_diff::{conformance_suite, run_corpus_programs, summarize, toolchain};

/// Every `PCAP_STRIDE`-th Ethernet packet of the pcap corpus is run under qemu (with every
/// generated probe packet): each run is at least one round trip to an emulated process, and
/// the x86-64 test (`tests/native_objects.rs`) already covers every packet with the same
/// objects' code generator.
const PCAP_STRIDE: usize = 8;

/// The generated probe packets and a deterministic sample of the pcap corpus.
fn packets() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for path in support::files_under(&support::corpus().join("pcap"), &|_| true) {
        if let Ok(capture) = sim::pcap::read_file(&path) {
            out.extend(
                capture
                    .ethernet()
                    .map(|p| p.data.clone())
                    .step_by(PCAP_STRIDE),
            );
        }
    }
    out.extend(support::packets::generated());
    out
}

#[test]
fn conformance_suite_as_aarch64_objects_under_qemu_matches_the_interpreter() {
    let tc = toolchain(Arch::Aarch64);
    assert!(
        tc.runner.is_some(),
        "aarch64 objects must run under qemu-user here"
    );
    let dir = hw::qemu::scratch_dir("conformance-aarch64").unwrap();
    let r = conformance_suite(&tc, &dir);
    println!(
        "conformance (aarch64 objects under qemu-aarch64): {} tests, {} compared, {} not lifted, {} mismatches",
        r.tests,
        r.compared,
        r.not_lifted.len(),
        r.mismatches.len()
    );
    for n in &r.not_lifted {
        println!("  not lifted: {n}");
    }
    assert!(r.mismatches.is_empty(), "{}", r.mismatches.join("\n"));
    assert!(r.compared >= 300, "only {} tests compared", r.compared);
}

#[test]
fn kernel_accepted_corpus_programs_as_aarch64_objects_under_qemu_match_the_interpreter() {
    let tc = toolchain(Arch::Aarch64);
    let dir = hw::qemu::scratch_dir("corpus-aarch64").unwrap();
    let packets = packets();
    println!("{} packets per program", packets.len());
    let started = std::time::Instant::now();
    let mut run = run_corpus_programs(&tc, &dir, &packets);
    println!(
        "{} kernel-accepted XDP programs, {} run as aarch64 objects under qemu-aarch64 over {} packet runs ({} faulted in both, {} harness round trips) in {:.1} s, {} failures",
        run.programs,
        run.compared,
        run.runs,
        run.both_faulted,
        run.round_trips,
        started.elapsed().as_secs_f64(),
        run.failures.len()
    );
    println!(
        "aarch64 compile time per program (lift + native pipeline + code generation): {}",
        summarize(&mut run.compile_times)
    );
    assert!(
        run.compared >= 10,
        "only {} programs were compared",
        run.compared
    );
    assert!(run.failures.is_empty(), "{}", run.failures.join("\n"));
}
