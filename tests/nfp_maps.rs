//! The NFP map routines against the interpreter, on a program written to exercise them:
//! `tests/data/nfp_maps.c` (compiled here with clang) updates, looks up and deletes keys of
//! two hash maps (4-byte and 12-byte keys, small enough to fill), an array and a per-CPU
//! array, choosing the operation, the key, the flags and the value from packet bytes, and
//! writes every helper result into the packet. Thousands of pseudo-random packets fill the
//! tables, hit `-E2BIG`, `-EEXIST` and `-ENOENT`, delete and reinsert (tombstone reuse), so
//! each result, each output packet and the final maps (converted back from chip memory) must
//! be the interpreter's.

mod support;

use backends::nfp::link::compile_linked;
use frontend::lift::{lift_program, LiftOptions};
use passes::pass::PassContext;
use passes::pipeline::{pipeline, PassManager};
use sim::nfp::{run_xdp_nfp, NfpMachine};
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};
use std::path::PathBuf;
use std::process::Command;

/// Compiles `tests/data/nfp_maps.c` for BPF into a fresh temporary directory.
fn build_object() -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/nfp_maps.c");
    let dir = std::env::temp_dir().join(format!("nicc-nfp-maps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("nfp_maps.o");
    let run = Command::new("clang")
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

#[test]
fn map_routines_in_chip_memory_match_the_interpreter() {
    let path = build_object();
    let obj = frontend::elf::read_file(&path).unwrap_or_else(|d| panic!("{d}"));
    let lift = |p: usize| -> Result<ir::Module, frontend::Diagnostic> {
        let mut module = lift_program(&obj, p, &LiftOptions { inline_calls: true })?;
        let pipe = pipeline("nfp").unwrap();
        PassManager::new()
            .run(&pipe, &mut module, &mut PassContext::new(pipe.target))
            .map_err(|e| frontend::Diagnostic::new(e.to_string()))?;
        Ok(module)
    };
    let prog = compile_linked(&lift, 0, &[0]).unwrap_or_else(|d| panic!("{d}"));
    // Every map of the program lives in chip memory, and the hash operations are routines.
    let laid_out: Vec<String> = prog
        .maps
        .iter()
        .map(|m| format!("{}: {:?}", m.name, m.layout.as_ref().map(|l| &l.kind)))
        .collect();
    println!("{}", laid_out.join("\n"));
    assert!(
        prog.maps.iter().all(|m| m.layout.is_some()),
        "a map is not in chip memory: {laid_out:?}"
    );
    let listing = prog.listing();
    for op in ["hash lookup", "hash update", "hash delete"] {
        assert!(listing.contains(op), "no {op} routine:\n{listing}");
    }
    let mut rt_bc = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
    let mut rt_nfp = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
    let machine = NfpMachine::load(&prog, &mut rt_nfp).unwrap_or_else(|d| panic!("{d}"));
    // A linear congruential generator (Knuth's MMIX constants) makes the packets.
    let mut state: u64 = 0x6e69_6363;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u8
    };
    let packets = 4000;
    let mut results = std::collections::BTreeMap::new();
    for k in 0..packets {
        let pkt: Vec<u8> = (0..16).map(|_| next()).collect();
        let input = XdpInput::new(pkt.clone());
        let want = sim::interp::run_xdp(&obj, 0, &mut rt_bc, &input).unwrap();
        let (got, _) = run_xdp_nfp(&machine, &mut rt_nfp, &input)
            .unwrap_or_else(|d| panic!("packet {k} ({pkt:02x?}): the NFP model faulted: {d}"));
        assert_eq!(
            got.test_run_data(),
            want.test_run_data(),
            "packet {k} ({pkt:02x?}): operation {} gave a different result",
            pkt[0] % 12
        );
        let rc = i64::from_le_bytes(want.test_run_data()[8..16].try_into().unwrap());
        if rc < 0 {
            *results.entry(rc).or_insert(0) += 1;
        }
    }
    machine.store_maps(&mut rt_nfp).unwrap();
    assert_eq!(rt_nfp.snapshot(), rt_bc.snapshot(), "final maps differ");
    println!("{packets} packets; negative results (errno or not found) by count: {results:?}");
    // The error paths were exercised: not found, -ENOENT, -EEXIST, -E2BIG, -EINVAL.
    for errno in [-1i64, -2, -17, -7, -22] {
        assert!(results.contains_key(&errno), "no packet gave {errno}");
    }
}
