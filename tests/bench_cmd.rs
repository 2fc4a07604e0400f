//! `nicc bench` on two corpus programs: every row has every column (a time, not a reason why
//! not), the kernel accepted the program, the JIT agrees with the interpreter on every packet,
//! and the table shows each program and the median ratios. Behaviour only: no assertion is
//! about speed, which depends on the machine and its load.

mod support;

use nicc::bench::{
    BenchConfig, INTERP, JIT_CHECKED, JIT_LOOP, JIT_NATIVE, JIT_NET, JIT_NONE, JIT_RA1, KERNEL,
    KERNEL_LOOP, KERNEL_NET,
};
use nicc::commands::bench::{bench, bench_objects, packets_from_captures, BenchArgs, COLUMNS};

/// A small configuration: enough runs to exercise every engine, few enough to be quick.
const QUICK: BenchConfig = BenchConfig {
    repeat: 20,
    interp_repeat: 2,
    rounds: 1,
};

#[test]
fn bench_measures_every_engine_on_kernel_accepted_programs() {
    if let Err(why) = hw::linux::kernel_available() {
        panic!("nicc bench times the kernel's JIT, which needs bpf(): {why}");
    }
    let packets =
        packets_from_captures(&[support::corpus().join("pcap")], 24).expect("corpus captures");
    assert_eq!(
        packets.len(),
        24,
        "the corpus captures hold 24 usable packets"
    );
    let mut rows = Vec::new();
    for object in ["linux/xdp1_kern.o", "linux/xdp_tx_iptunnel_kern.o"] {
        let path = support::corpus().join("elf").join(object);
        let got = bench_objects(&path, &packets, &QUICK).expect("bench runs");
        assert!(
            !got.is_empty(),
            "{object}: no program measured (the kernel accepts its XDP program)"
        );
        rows.extend(got);
    }
    for row in &rows {
        for column in COLUMNS {
            assert!(
                row.get(column).is_some(),
                "{}:{}: no {column} figure: {:?}",
                row.object,
                row.program,
                row.cells.get(column)
            );
        }
        // Net figures are differences of two measurements and may come out below zero.
        assert!(row.get(JIT_NET).is_some() && row.get(KERNEL_NET).is_some());
        for column in [
            JIT_NATIVE,
            JIT_LOOP,
            JIT_CHECKED,
            JIT_RA1,
            JIT_NONE,
            INTERP,
            KERNEL,
            KERNEL_LOOP,
        ] {
            let v = row.get(column).unwrap_or_default();
            assert!(
                v.is_finite() && v > 0.0,
                "{}:{}: {column} = {v}",
                row.object,
                row.program
            );
        }
        assert_eq!(row.packets, packets.len());
        assert!(
            row.notes.is_empty(),
            "{}:{}: {:?}",
            row.object,
            row.program,
            row.notes
        );
    }
}

#[test]
fn bench_command_prints_a_table_with_medians() {
    if let Err(why) = hw::linux::kernel_available() {
        panic!("nicc bench times the kernel's JIT, which needs bpf(): {why}");
    }
    let args = BenchArgs {
        input: Some(support::corpus().join("elf/linux/xdp1_kern.o")),
        pcap: vec![support::corpus().join("pcap")],
        max_packets: 8,
        repeat: QUICK.repeat,
        interp_repeat: QUICK.interp_repeat,
        rounds: QUICK.rounds,
    };
    let out = bench(&args).expect("nicc bench runs");
    let header = out
        .lines()
        .find(|l| l.starts_with("program"))
        .expect("a header line");
    for c in COLUMNS {
        assert!(header.contains(c), "header lacks {c}: {header}");
    }
    assert!(
        out.lines().any(|l| l.starts_with("xdp1_kern.o:")),
        "no row for xdp1: {out}"
    );
    // The ratio itself may be missing when the kernel's net time is within the noise of
    // its loop overhead on so few runs; the line must be there either way.
    for ratio in [
        "j-net / k-net:",
        "jit / kernel:",
        "jit / jit-chk:",
        "jit / jit-ra1:",
        "jit / jit-none:",
    ] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(ratio)),
            "no median ratio line {ratio}: {out}"
        );
    }
}
