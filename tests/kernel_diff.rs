//! The differential test against the running kernel: every XDP program of the corpus that the
//! kernel verifier accepts runs on every Ethernet packet of the pcap corpus and on generated
//! packets, in the kernel (BPF_PROG_TEST_RUN, repeat 1) and in the interpreter, with the same
//! seeded maps. Verdicts, packet bytes and final maps must agree exactly.

mod support;

use frontend::object::ProgramKind;
use nicc::kernel_diff::{diff_program, DiffReport};
use support::seeds::seed_for;

#[test]
fn interpreter_matches_the_kernel_on_the_corpus() {
    if let Err(why) = hw::linux::kernel_available() {
        panic!("this test needs the kernel's bpf() (run as root on Linux): {why}");
    }
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let pcaps = support::files_under(&support::corpus().join("pcap"), &|_| true);
    for path in &pcaps {
        // Damaged captures are part of the corpus; what can be read of them is used.
        if let Ok(capture) = sim::pcap::read_file(path) {
            packets.extend(capture.ethernet().map(|p| p.data.clone()));
        }
    }
    let from_pcaps = packets.len();
    packets.extend(support::packets::generated());
    println!(
        "{} packets: {} from {} capture files, {} generated",
        packets.len(),
        from_pcaps,
        pcaps.len(),
        packets.len() - from_pcaps
    );

    let mut reports: Vec<DiffReport> = Vec::new();
    for path in support::valid_objects() {
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let seed = seed_for(&name, &obj);
        for (i, p) in obj.programs.iter().enumerate() {
            if p.kind != ProgramKind::Xdp {
                continue;
            }
            let mut report = diff_program(&obj, i, &packets, seed.as_ref());
            report.object = path
                .strip_prefix(support::corpus().join("elf"))
                .unwrap_or(&path)
                .display()
                .to_string();
            reports.push(report);
        }
    }

    let mut compared = 0;
    let mut refused = Vec::new();
    let mut mismatched = 0;
    let mut nondeterministic = 0;
    let mut runs = 0;
    let mut packets_refused = 0;
    for r in &reports {
        match &r.kernel_refused {
            Some(reason) => refused.push((r, reason.lines().last().unwrap_or("").to_string())),
            None => {
                compared += 1;
                runs += r.packets_compared;
                packets_refused += r.packets_refused;
                println!(
                    "compared {:45} {:32} {:6} packets, {:3} refused by test run, {} mismatches{}",
                    r.object,
                    r.program,
                    r.packets_compared,
                    r.packets_refused,
                    r.mismatches.len(),
                    if r.nondeterministic.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (expected: the program calls {})",
                            r.nondeterministic.join(", ")
                        )
                    }
                );
                println!("    kernel verdicts: {:?}", r.kernel_verdicts);
                for m in r.maps_not_compared.iter() {
                    println!("    map not comparable: {m}");
                }
                for m in r.mismatches.iter().take(5) {
                    println!("    packet {:?}: {}", m.packet, m.what);
                }
                if !r.is_clean() {
                    mismatched += 1;
                }
                if !r.nondeterministic.is_empty() {
                    nondeterministic += 1;
                }
            }
        }
    }
    for (r, reason) in &refused {
        println!("kernel refused {} {}: {}", r.object, r.program, reason);
    }
    println!(
        "{} XDP programs: {} compared over {} packet runs ({} packets refused by the kernel's test run), {} refused by the verifier, {} with mismatches, {} nondeterministic (compared for faults only)",
        reports.len(),
        compared,
        runs,
        packets_refused,
        refused.len(),
        mismatched,
        nondeterministic
    );
    assert!(compared >= 20, "only {compared} programs were compared");
    assert_eq!(
        mismatched, 0,
        "programs whose results differ from the kernel's"
    );
}
