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
use native_remote::RemoteProgram;
use object_diff::{
    compare_xdp, compile_corpus_program, conformance_suite, kernel_accepted_xdp_programs, link,
    summarize, target_of, toolchain, HarnessCache,
};

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
    let programs = kernel_accepted_xdp_programs();
    let mut cache = HarnessCache::default();
    let (mut compared, mut runs, mut faults, mut round_trips) = (0, 0, 0, 0u64);
    let mut failures = Vec::new();
    let mut times = Vec::new();
    let started = std::time::Instant::now();
    for (n, p) in programs.iter().enumerate() {
        let name = &p.obj.programs[p.index].name;
        let what = format!("{} {name}", p.rel);
        let (compilation, module_index) = match compile_corpus_program(p, target_of(&tc)) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{what}: not compiled: {e}"));
                continue;
            }
        };
        if let Some(r) = compilation.programs.iter().find(|r| &r.name == name) {
            times.push(r.compile_time);
        }
        let linked = match link(&tc, &mut cache, &dir, &format!("prog{n}"), compilation) {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("{what}: {e}"));
                continue;
            }
        };
        let mut remote =
            match RemoteProgram::start(tc.command(&linked.exe), &linked.compilation.module) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{what}: {e}"));
                    continue;
                }
            };
        let r = compare_xdp(p, &mut remote, module_index, &packets);
        round_trips += remote.round_trips;
        if let Err(e) = remote.finish() {
            failures.push(format!("{what}: {e}"));
        }
        compared += 1;
        runs += r.packets;
        faults += r.both_faulted;
        println!(
            "compared {what:60} {} packets ({} faulted in both), {} mismatches",
            r.packets,
            r.both_faulted,
            r.mismatches.len()
        );
        for (k, m) in r.mismatches.iter().take(3) {
            failures.push(format!("{what}: packet {k:?}: {m}"));
        }
    }
    println!(
        "{} kernel-accepted XDP programs, {compared} run as aarch64 objects under qemu-aarch64 over {runs} packet runs ({faults} faulted in both, {round_trips} harness round trips) in {:.1} s, {} failures",
        programs.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    println!(
        "aarch64 compile time per program (lift + native pipeline + code generation): {}",
        summarize(&mut times)
    );
    assert!(compared >= 10, "only {compared} programs were compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
