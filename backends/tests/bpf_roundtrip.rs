//! Hand-written IR modules compiled by the BPF backend, written as ELF, read back by nicc's
//! frontend and run by the golden interpreter and by the kernel: both must give the verdicts
//! the IR means, and the kernel verifier must accept every object.
//!
//! Each module exercises one part of the backend: packet bounds checks, map lookups with NULL
//! checks and atomics, register pressure that forces spills across helper calls, loops whose
//! block parameters swap (parallel-move cycles), bpf-to-bpf calls, and global data.

use backends::bpf;
use frontend::elf::read_object;
use frontend::insn::{decode_all, Insn};
use hw::linux::{KernelObject, XdpCtx};
use ir::parse::parse_module;
use sim::interp::run_xdp;
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};

/// An Ethernet frame with the given EtherType and `extra` payload bytes counting up from 1.
fn frame(ethertype: u16, extra: usize) -> Vec<u8> {
    let mut p = vec![0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 1, 2, 3, 4, 5, 6];
    p.extend_from_slice(&ethertype.to_be_bytes());
    p.extend((1..=extra).map(|b| b as u8));
    p
}

/// Compiles the module's first program, reads the object back, runs every packet in the
/// interpreter and the kernel, and checks the return values against `expected`. Returns the
/// interpreter's runtime for map checks.
fn check(text: &str, cases: &[(Vec<u8>, u64)]) -> Runtime {
    let module = parse_module(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    ir::verifier::verify_module(&module).unwrap_or_else(|e| panic!("{e}"));
    let bytes = bpf::emit_object(&module, "test.o").unwrap_or_else(|d| panic!("{d}"));
    let obj = read_object(&bytes, "test.o").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(obj.programs.len(), module.programs.len());
    let code = bpf::emit_program(&module, module.programs[0].func).unwrap();
    let read_back = decode_all(&obj.programs[0].insns).unwrap();
    assert_eq!(
        code.len(),
        read_back.len(),
        "emit_program and the object disagree on the program's length"
    );
    let listing: String = read_back
        .iter()
        .enumerate()
        .map(|(k, i)| format!("{k:4}: {}\n", frontend::disasm::format_insn(i)))
        .collect();
    let mut rt = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
    for (packet, want) in cases {
        let out = run_xdp(&obj, 0, &mut rt, &XdpInput::new(packet.clone()))
            .unwrap_or_else(|d| panic!("{d}\n{listing}"));
        assert_eq!(
            out.retval, *want,
            "interpreter, packet {packet:02x?}\n{listing}"
        );
    }
    hw::linux::kernel_available().unwrap_or_else(|e| panic!("the kernel is needed: {e}"));
    let kernel = KernelObject::load(&obj, &[0]).unwrap_or_else(|e| {
        panic!(
            "the kernel refused the object: {e}\n{}\n{listing}",
            e.verifier_log_tail(40).unwrap_or_default()
        )
    });
    for (packet, want) in cases {
        let r = kernel.test_run_xdp(0, packet, &XdpCtx::default()).unwrap();
        assert_eq!(
            r.retval as u64, *want,
            "kernel, packet {packet:02x?}\n{listing}"
        );
    }
    rt
}

#[test]
fn packet_bounds_check_and_ethertype() {
    let text = r#"program fn0 "xdp"

function fn0 %parse(i64) {
block0(v0: i64):
    v1 = load.ctx.u32 v0+0
    v2 = load.ctx.u32 v0+4
    v3 = iconst 14
    v4 = add.w64 v1, v3
    brif gt.w64 v4, v2, block1, block2
block1:
    v5 = iconst 1
    return v5
block2:
    v6 = load.packet.u16 v1+12
    v7 = be16 v6
    v8 = iconst 2048
    brif eq.w64 v7, v8, block3, block4
block3:
    v9 = iconst 2
    return v9
block4:
    v10 = iconst 3
    return v10
}
"#;
    check(
        text,
        &[
            (frame(0x0800, 20), 2),
            (frame(0x0806, 20), 3),
            (frame(0x86dd, 0), 3),
        ],
    );
}

#[test]
fn map_lookup_null_check_and_atomic_add() {
    let text = r#"program fn0 "xdp"

map0 = map "counts" type 2 key 4 value 8 max 4

function fn0 %count(i64) {
    ss0 = stack 4
block0(v0: i64):
    v1 = stack_addr ss0+0
    v2 = load.ctx.u32 v0+0
    v3 = load.ctx.u32 v0+4
    v4 = sub.w64 v3, v2
    v5 = iconst 3
    v6 = and.w64 v4, v5
    store.stack(ss0).u32 v1+0, v6
    v7 = map_ref map0
    v8 = call_helper 1(v7, v1)
    v9 = iconst 0
    brif eq.w64 v8, v9, block1, block2
block1:
    v10 = iconst 0
    return v10
block2:
    v11 = iconst 1
    atomic.map_value(map0).u64 add v8+0, v11
    v12 = load.map_value(map0).u64 v8+0
    v13 = iconst 2
    v14 = add.w64 v12, v13
    return v14
}
"#;
    // Lengths 16 and 20 share key 0; 17 is key 1.
    let rt = check(
        text,
        &[
            (frame(0x0800, 2), 3),
            (frame(0x0800, 6), 4),
            (frame(0x0800, 3), 3),
        ],
    );
    let snap = rt.snapshot();
    let text = format!("{snap:?}");
    assert!(text.contains("counts"), "{text}");
}

#[test]
fn spills_across_helper_calls() {
    // Eleven packet bytes stay live across a helper call: more than the four callee-saved
    // registers, so most of them are spilled and reloaded.
    let mut body = String::new();
    for k in 0..11 {
        body.push_str(&format!("    v{} = load.packet.u8 v1+{}\n", 10 + k, k + 14));
    }
    body.push_str("    v30 = call_helper 7()\n");
    let mut acc = 10;
    for k in 1..11 {
        body.push_str(&format!(
            "    v{} = add.w64 v{}, v{}\n",
            40 + k,
            acc,
            10 + k
        ));
        acc = 40 + k;
    }
    let text = format!(
        r#"program fn0 "xdp"

function fn0 %pressure(i64) {{
block0(v0: i64):
    v1 = load.ctx.u32 v0+0
    v2 = load.ctx.u32 v0+4
    v3 = iconst 25
    v4 = add.w64 v1, v3
    brif gt.w64 v4, v2, block1, block2
block1:
    v5 = iconst 1
    return v5
block2:
{body}    v60 = iconst 255
    v61 = and.w64 v{acc}, v60
    return v61
}}
"#
    );
    let packet = frame(0x0800, 11);
    let sum: u64 = (1..=11u64).sum::<u64>() & 255;
    check(&text, &[(packet, sum), (frame(0x0800, 5), 1)]);
}

#[test]
fn loop_with_swapping_block_parameters() {
    // (a, b) <- (b, a + b) five times from (0, 1): a parallel move with a cycle each trip.
    let text = r#"program fn0 "xdp"

function fn0 %fib(i64) {
block0(v0: i64):
    v1 = iconst 0
    v2 = iconst 1
    v3 = iconst 0
    jump block1(v1, v2, v3)
block1(v4: i64, v5: i64, v6: i64):
    v7 = add.w64 v4, v5
    v8 = iconst 1
    v9 = add.w64 v6, v8
    v10 = iconst 10
    brif lt.w64 v9, v10, block1(v5, v7, v9), block2(v4, v5)
block2(v11: i64, v12: i64):
    v13 = iconst 100
    v14 = mul.w64 v11, v13
    v15 = add.w64 v14, v12
    return v15
}
"#;
    // The tenth trip leaves the loop with the pair it entered with: (34, 55).
    check(text, &[(frame(0x0800, 0), 34 * 100 + 55)]);
}

#[test]
fn bpf_to_bpf_call() {
    let text = r#"program fn0 "xdp"

function fn0 %caller(i64) {
block0(v0: i64):
    v1 = load.ctx.u32 v0+0
    v2 = load.ctx.u32 v0+4
    v3 = sub.w64 v2, v1
    v4 = iconst 7
    v5 = call fn1(v3, v4)
    v6 = add.w64 v5, v3
    return v6
}

function fn1 %scale(i64, i64) {
block0(v0: i64, v1: i64):
    v2 = iconst 3
    v3 = mul.w64 v0, v2
    v4 = sub.w64 v3, v1
    return v4
}
"#;
    check(text, &[(frame(0x0800, 6), 20 * 3 - 7 + 20)]);
}

#[test]
fn global_data_reads_and_writes() {
    let text = r#"program fn0 "xdp"

map0 = map ".bss" type 2 key 4 value 8 max 1 data "0000000000000000"
map1 = map ".rodata" type 2 key 4 value 8 max 1 data "0500000000000000"

function fn0 %globals(i64) {
block0(v0: i64):
    v1 = map_value_addr map0+0
    v2 = load.global(map0).u64 v1+0
    v3 = iconst 1
    v4 = add.w64 v2, v3
    store.global(map0).u64 v1+0, v4
    v5 = map_value_addr map1+0
    v6 = load.global(map1).u32 v5+0
    v7 = add.w64 v4, v6
    return v7
}
"#;
    check(
        text,
        &[
            (frame(0x0800, 0), 6),
            (frame(0x0800, 0), 7),
            (frame(0x0800, 0), 8),
        ],
    );
}

#[test]
fn too_much_stack_is_a_diagnostic_naming_the_function() {
    let text = r#"program fn0 "xdp"

function fn0 %big(i64) {
    ss0 = stack 300
    ss1 = stack 300
block0(v0: i64):
    v1 = stack_addr ss0+0
    v2 = stack_addr ss1+0
    v3 = iconst 0
    store.stack(ss0).u64 v1+0, v3
    store.stack(ss1).u64 v2+0, v3
    return v3
}
"#;
    let module = parse_module(text).unwrap();
    let err = bpf::emit_object(&module, "big.o").unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("big"), "{shown}");
    assert!(shown.contains("512"), "{shown}");
}

#[test]
fn emitted_code_has_no_jump_to_the_next_instruction() {
    let text = r#"program fn0 "xdp"

function fn0 %straight(i64) {
block0(v0: i64):
    v1 = iconst 2
    jump block1(v1)
block1(v2: i64):
    return v2
}
"#;
    let module = parse_module(text).unwrap();
    let code = bpf::emit_program(&module, module.programs[0].func).unwrap();
    assert!(
        !code.iter().any(|i| matches!(i, Insn::Ja { off: 0, .. })),
        "{code:?}"
    );
    // mov r?, 2 ; mov r0, r? ; exit at most.
    assert!(code.len() <= 3, "{code:?}");
}
