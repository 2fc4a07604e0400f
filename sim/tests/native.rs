//! Tests of the native engine on hand-built IR: every instruction kind compared with
//! `ir::semantics` and with the IR executor on the same module and runtime contents; helpers
//! through the ABI; bpf-to-bpf calls and tail calls; faults that name their instruction; the
//! loop budget; executable memory that is never writable; and relocatable objects with their
//! C header for x86-64 and aarch64.

use cranelift_codegen::entity::EntityRef;
use frontend::object::{MapDef, MapOrigin, MapType};
use frontend::Object;
use ir::semantics::{self, ByteOrder, Width};
use ir::{
    AtomicOp, BinaryOp, FuncRef, Function, FunctionBuilder, MapDecl, MemSize, Module, Region,
    SrcLoc, Type, UnaryOp, Value,
};
use sim::ir_exec::{run_ir_with_memory, run_xdp_ir};
use sim::native::{run_native_with_memory_in, run_xdp_native, JitProgram};
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};

/// Interesting 64-bit operands: zero, one, sign boundaries, shift counts past the width.
const OPERANDS: [u64; 11] = [
    0,
    1,
    2,
    7,
    63,
    65,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0xffff_ffff_ffff_fff9,
    0x8000_0000_0000_0000,
];

fn entry() -> FuncRef {
    FuncRef::new(0)
}

/// A module with one function `f(mem, len)` whose body `body` builds; the body's result is
/// returned.
fn memory_module(body: impl FnOnce(&mut FunctionBuilder, Value, Value) -> Value) -> Module {
    let mut func = Function::new("f", vec![Type::I64, Type::I64]);
    let mut b = FunctionBuilder::new(&mut func);
    let blk = b.create_block();
    b.switch_to_block(blk);
    let params = b.append_entry_params(blk);
    b.set_srcloc(SrcLoc::new(0));
    let r = body(&mut b, params[0], params[1]);
    b.ret(r);
    ir::verifier::verify_function(&func).expect("the test function verifies");
    let mut module = Module::new();
    module.add_function(func);
    module
}

/// Runs `module` natively and in the IR executor on copies of `mem`; results and memory must
/// agree. Returns the result.
fn same_on_memory(jit: &JitProgram, module: &Module, mem: &[u8]) -> u64 {
    let (mut m1, mut m2) = (mem.to_vec(), mem.to_vec());
    let want = run_ir_with_memory(module, entry(), &mut m1).expect("IR executor");
    let mut rt = Runtime::empty(RuntimeConfig::default());
    let got = run_native_with_memory_in(jit, &mut rt, &mut m2).expect("native");
    assert_eq!(got, want, "result of {}", jit.name());
    assert_eq!(m2, m1, "memory after {}", jit.name());
    got
}

fn two_operands(a: u64, b: u64) -> Vec<u8> {
    [a.to_le_bytes(), b.to_le_bytes()].concat()
}

fn load64(b: &mut FunctionBuilder, base: Value, offset: i32) -> Value {
    b.load(Region::Any, MemSize::U64, false, base, offset)
}

// ---- Arithmetic ----

#[test]
fn binary_operations_match_semantics_on_every_operand_pair() {
    let mut checked = 0;
    for op in BinaryOp::ALL {
        for width in [Width::W32, Width::W64] {
            let module = memory_module(|b, mem, _| {
                let x = load64(b, mem, 0);
                let y = load64(b, mem, 8);
                b.binary(op, width, x, y)
            });
            let jit = JitProgram::new(&module, entry()).expect("compiles");
            for a in OPERANDS {
                for c in OPERANDS {
                    let got = same_on_memory(&jit, &module, &two_operands(a, c));
                    assert_eq!(got, op.eval(width, a, c), "{op:?} {width:?} {a:#x} {c:#x}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 13 * 2 * OPERANDS.len() * OPERANDS.len());
}

#[test]
fn unary_operations_and_byte_orders_match_semantics() {
    for op in UnaryOp::ALL {
        for width in [Width::W32, Width::W64] {
            if op == UnaryOp::MovSx32 && width == Width::W32 {
                continue; // The verifier rejects it: the 32-bit class has no such instruction.
            }
            let module = memory_module(|b, mem, _| {
                let x = load64(b, mem, 0);
                b.unary(op, width, x)
            });
            let jit = JitProgram::new(&module, entry()).expect("compiles");
            for a in OPERANDS {
                let got = same_on_memory(&jit, &module, &two_operands(a, 0));
                assert_eq!(got, op.eval(width, a), "{op:?} {width:?} {a:#x}");
            }
        }
    }
    for order in [ByteOrder::ToLe, ByteOrder::ToBe, ByteOrder::Swap] {
        for bits in [16u8, 32, 64] {
            let module = memory_module(|b, mem, _| {
                let x = load64(b, mem, 0);
                b.endian(order, bits, x)
            });
            let jit = JitProgram::new(&module, entry()).expect("compiles");
            for a in OPERANDS.iter().chain(&[0x1122_3344_5566_7788]) {
                let got = same_on_memory(&jit, &module, &two_operands(*a, 0));
                assert_eq!(got, semantics::byte_order(order, bits as u32, *a));
            }
        }
    }
}

#[test]
fn every_branch_condition_matches_semantics() {
    for cond in ir::instructions::ALL_CONDS {
        for width in [Width::W32, Width::W64] {
            let mut func = Function::new("f", vec![Type::I64, Type::I64]);
            let mut b = FunctionBuilder::new(&mut func);
            let blk = b.create_block();
            let yes = b.create_block();
            let no = b.create_block();
            let join = b.create_block();
            b.switch_to_block(blk);
            let mem = b.append_entry_params(blk)[0];
            b.set_srcloc(SrcLoc::new(0));
            let x = load64(&mut b, mem, 0);
            let y = load64(&mut b, mem, 8);
            b.brif(cond, width, x, y, yes, &[], no, &[]);
            let r = b.append_block_param(join, Type::I64);
            b.switch_to_block(yes);
            let one = b.iconst(1);
            b.jump(join, &[one]);
            b.switch_to_block(no);
            let zero = b.iconst(0);
            b.jump(join, &[zero]);
            b.switch_to_block(join);
            b.ret(r);
            let mut module = Module::new();
            module.add_function(func);
            let jit = JitProgram::new(&module, entry()).expect("compiles");
            for a in OPERANDS {
                for c in OPERANDS {
                    let got = same_on_memory(&jit, &module, &two_operands(a, c));
                    assert_eq!(got, semantics::compare(cond, width, a, c) as u64);
                }
            }
        }
    }
}

// ---- Memory ----

#[test]
fn loads_and_stores_of_every_size_on_the_stack_and_through_the_runtime() {
    for size in MemSize::ALL {
        for signed in [false, true] {
            if signed && size == MemSize::U64 {
                continue;
            }
            // Copy a value through a stack slot (direct stack_addr), then through a computed stack
            // pointer, then store it back to memory.
            let module = memory_module(|b, mem, _| {
                let slot = b.create_stack_slot(16);
                let x = load64(b, mem, 0);
                let at = b.stack_addr(slot, 0);
                b.store(Region::Stack(slot), MemSize::U64, at, 0, x);
                let v = b.load(Region::Stack(slot), size, signed, at, 0);
                let eight = b.iconst(8);
                let at8 = b.binary(BinaryOp::Add, Width::W64, at, eight);
                b.store(Region::Stack(slot), size, at8, 0, v);
                let w = b.load(Region::Stack(slot), size, signed, at8, 0);
                b.store(Region::Any, size, mem, 8, w);
                b.load(Region::Any, size, signed, mem, 8)
            });
            let jit = JitProgram::new(&module, entry()).expect("compiles");
            // The direct stack accesses need no check; since the lowering reaches memory through
            // the region table, the computed stack pointer and the memory accesses are all
            // checked inline and none goes through the runtime callback.
            let (unchecked, inline, runtime) = jit.access_counts;
            assert!(
                unchecked >= 2 && inline >= 5 && runtime == 0,
                "{:?}",
                jit.access_counts
            );
            for a in OPERANDS.iter().chain(&[0x8899_aabb_ccdd_eeff]) {
                let got = same_on_memory(&jit, &module, &two_operands(*a, 0));
                let bits = size.bits();
                let want = if signed {
                    semantics::sign_extend(*a, bits)
                } else {
                    semantics::truncate(*a, bits)
                };
                assert_eq!(got, want, "{size:?} signed={signed} {a:#x}");
            }
        }
    }
}

#[test]
fn atomics_on_the_stack_and_through_the_runtime_match_the_executor() {
    for size in [MemSize::U32, MemSize::U64] {
        for op in AtomicOp::ALL {
            for fetch in [false, true] {
                if op == AtomicOp::Xchg && !fetch {
                    continue;
                }
                let module = memory_module(|b, mem, _| {
                    let slot = b.create_stack_slot(8);
                    let x = load64(b, mem, 0);
                    let y = load64(b, mem, 8);
                    let at = b.stack_addr(slot, 0);
                    b.store(Region::Stack(slot), MemSize::U64, at, 0, x);
                    let old = b.atomic(Region::Stack(slot), size, op, fetch, at, 0, y);
                    let after = b.load(Region::Stack(slot), MemSize::U64, false, at, 0);
                    // The same operation on the memory buffer goes through the runtime.
                    let old2 = b.atomic(Region::Any, size, op, fetch, mem, 0, y);
                    let mut r = b.binary(BinaryOp::Xor, Width::W64, after, x);
                    for v in [old, old2].into_iter().flatten() {
                        let k = b.iconst(13);
                        let rot = b.binary(BinaryOp::Lsh, Width::W64, r, k);
                        r = b.binary(BinaryOp::Add, Width::W64, rot, v);
                    }
                    r
                });
                let jit = JitProgram::new(&module, entry()).expect("compiles");
                for a in [0u64, 5, 0xffff_ffff, 0x1_0000_0001, u64::MAX] {
                    for c in [1u64, 0xffff_ffff, 0x8000_0000_0000_0000] {
                        same_on_memory(&jit, &module, &two_operands(a, c));
                    }
                }
            }
        }
        // Compare-and-exchange, equal and not equal at the access size.
        let module = memory_module(|b, mem, _| {
            let slot = b.create_stack_slot(8);
            let x = load64(b, mem, 0);
            let y = load64(b, mem, 8);
            let at = b.stack_addr(slot, 0);
            b.store(Region::Stack(slot), MemSize::U64, at, 0, x);
            let old = b.cmpxchg(Region::Stack(slot), size, at, 0, y, y);
            let after = b.load(Region::Stack(slot), MemSize::U64, false, at, 0);
            let old2 = b.cmpxchg(Region::Any, size, mem, 0, x, y);
            let s = b.binary(BinaryOp::Add, Width::W64, old, after);
            b.binary(BinaryOp::Xor, Width::W64, s, old2)
        });
        let jit = JitProgram::new(&module, entry()).expect("compiles");
        for (a, c) in [
            (5u64, 5u64),
            (5, 6),
            (0x1_0000_0005, 5),
            (u64::MAX, 0xffff_ffff),
        ] {
            same_on_memory(&jit, &module, &two_operands(a, c));
        }
    }
}

// ---- XDP programs with maps, helpers and calls ----

fn mapdef(name: &str, t: MapType, k: u32, v: u32, n: u32) -> MapDef {
    MapDef {
        name: name.into(),
        map_type: t,
        key_size: k,
        value_size: v,
        max_entries: n,
        flags: 0,
        inner: None,
        initial_value: None,
        origin: MapOrigin::Btf,
    }
}

fn object(maps: Vec<MapDef>) -> Object {
    Object {
        name: "hand.o".into(),
        maps,
        ..Object::default()
    }
}

fn parse(text: &str) -> Module {
    let m = ir::parse::parse_module(text).unwrap_or_else(|e| panic!("parse: {e}"));
    if let Err(e) = ir::verifier::verify_module(&m) {
        panic!("the test module does not verify:\n{e}");
    }
    m
}

/// Runs `func` of `module` natively and in the IR executor over `packets`, each engine with
/// its own runtime for `obj`; outcomes, trace output and map snapshots must agree. Returns the
/// return values.
fn same_on_packets(obj: &Object, module: &Module, func: FuncRef, packets: &[Vec<u8>]) -> Vec<u64> {
    let jit = JitProgram::new(module, func).expect("compiles");
    let mut rt_ir = Runtime::new(obj, RuntimeConfig::default()).unwrap();
    let mut rt_nat = Runtime::new(obj, RuntimeConfig::default()).unwrap();
    let mut out = Vec::new();
    for p in packets {
        let input = XdpInput::new(p.clone());
        let want = run_xdp_ir(module, func, &mut rt_ir, &input);
        let got = run_xdp_native(&jit, &mut rt_nat, &input);
        match (&want, &got) {
            (Ok(w), Ok(g)) => {
                assert_eq!(g.retval, w.retval);
                assert_eq!(g.test_run_data(), w.test_run_data());
                assert_eq!(g.redirect, w.redirect);
                out.push(g.retval);
            }
            (Err(w), Err(g)) => {
                assert_eq!(g.insn, w.insn, "fault location: {g} vs {w}");
                out.push(u64::MAX);
            }
            _ => panic!("executor {want:?} but native {got:?}"),
        }
        assert_eq!(rt_nat.outputs(), rt_ir.outputs());
        assert_eq!(rt_nat.snapshot(), rt_ir.snapshot());
    }
    out
}

fn packet(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// Counts packets per first byte in a hash map (lookup, update, atomic add on the value), keeps
/// the total in global data, rewrites the packet's first bytes, and drops short packets.
const COUNTER: &str = r#"
program fn0 "xdp"
map0 = map "counts" type 1 key 4 value 8 max 16
map1 = map ".bss" type 2 key 4 value 16 max 1
function %xdp_count(i64) {
    ss0 = stack 16
block0(v0: i64):
    v1 = load.ctx.u32 v0+0 @0
    v2 = load.ctx.u32 v0+4 @1
    v3 = iconst 20 @2
    v4 = add.w64 v1, v3 @2
    brif gt.w64 v4, v2, block3, block1 @3
block1:
    v5 = load.packet.u8 v1+0 @4
    v6 = stack_addr ss0+16 @5
    v7 = iconst 0 @5
    store.stack(ss0).u32 v6-4, v7 @5
    store.stack(ss0).u8 v6-4, v5 @6
    store.stack(ss0).u64 v6-16, v7 @7
    v8 = map_ref map0 @8
    v9 = add.w64 v6, v7 @8
    v10 = iconst -4 @8
    v11 = add.w64 v9, v10 @8
    v12 = call_helper 1(v8, v11) @9
    brif ne.w64 v12, v7, block2, block4 @10
block4:
    v13 = iconst -16 @11
    v14 = add.w64 v6, v13 @11
    v15 = iconst 0 @11
    v16 = call_helper 2(v8, v11, v14, v15) @12
    jump block5 @13
block2:
    v17 = iconst 1 @14
    atomic.map_value(map0).u64 add v12+0, v17 @14
    jump block5 @15
block5:
    v18 = map_value_addr map1+8 @16
    v19 = load.global(map1).u64 v18+0 @17
    v20 = iconst 1 @17
    v21 = add.w64 v19, v20 @17
    store.global(map1).u64 v18+0, v21 @18
    v22 = load.packet.u32.sx v1+1 @19
    v23 = be32 v22 @20
    store.packet.u32 v1+8, v23 @21
    store.packet.u16 v1+14, v21 @22
    v24 = load.ctx.u32 v0+12 @23
    v25 = load.ctx.u32 v0+16 @24
    v26 = add.w64 v24, v25 @24
    v27 = iconst 2 @25
    v28 = add.w64 v27, v26 @25
    return v27 @26
block3:
    v29 = iconst 1 @27
    return v29 @27
}
"#;

#[test]
fn an_xdp_program_with_maps_globals_atomics_and_packet_writes_matches_the_executor() {
    let module = parse(COUNTER);
    let obj = object(vec![
        mapdef("counts", MapType::Hash, 4, 8, 16),
        mapdef(".bss", MapType::Array, 4, 16, 1),
    ]);
    let mut packets: Vec<Vec<u8>> = (14..40).map(packet).collect();
    packets.push(vec![9; 64]);
    packets.push(vec![9; 64]);
    let r = same_on_packets(&obj, &module, entry(), &packets);
    assert_eq!(
        r.iter().filter(|&&v| v == 1).count(),
        6,
        "short packets dropped: {r:?}"
    );
    assert_eq!(r.iter().filter(|&&v| v == 2).count(), packets.len() - 6);
}

/// Moves the head with bpf_xdp_adjust_head, then reads through pointers loaded afterwards
/// (the packet bounds the code checks must follow the helper), calls a subprogram that uses
/// its own frame, and loops over the first bytes of the packet.
const HEAD_AND_CALLS: &str = r#"
program fn0 "xdp"
function %xdp_head(i64) {
block0(v0: i64):
    v1 = iconst 4 @0
    v2 = call_helper 44(v0, v1) @1
    v3 = load.ctx.u32 v0+0 @2
    v4 = load.ctx.u32 v0+4 @3
    v5 = iconst 8 @4
    v6 = add.w64 v3, v5 @4
    brif gt.w64 v6, v4, block9, block1 @5
block1:
    v7 = load.packet.u64 v3+0 @6
    v8 = call fn1(v7, v2) @7
    v9 = iconst 0 @8
    jump block2(v9, v9) @8
block2(v10: i64, v11: i64):
    v12 = add.w64 v3, v10 @9
    v13 = load.packet.u8 v12+0 @10
    v14 = add.w64 v11, v13 @11
    v15 = iconst 1 @12
    v16 = add.w64 v10, v15 @12
    v17 = iconst 8 @13
    brif lt.w64 v16, v17, block2(v16, v14), block3 @13
block3:
    v18 = add.w64 v14, v8 @14
    v19 = iconst 3 @15
    v20 = and.w64 v18, v19 @15
    return v20 @16
block9:
    v21 = iconst 0 @17
    return v21 @17
}
function %sub(i64, i64) {
    ss0 = stack 24
block0(v0: i64, v1: i64):
    v2 = stack_addr ss0+24 @20
    store.stack(ss0).u64 v2-8, v0 @21
    store.stack(ss0).u64 v2-16, v1 @22
    v3 = load.stack(ss0).u32 v2-8 @23
    v4 = load.stack(ss0).u64 v2-24 @24
    v5 = add.w64 v3, v4 @25
    v6 = load.stack(ss0).u64 v2-16 @26
    v7 = mul.w32 v5, v6 @27
    return v7 @28
}
"#;

#[test]
fn helpers_that_move_the_packet_calls_and_loops_match_the_executor() {
    let module = parse(HEAD_AND_CALLS);
    let obj = object(Vec::new());
    let packets: Vec<Vec<u8>> = [14usize, 17, 18, 20, 60, 200]
        .iter()
        .map(|&n| packet(n))
        .collect();
    let r = same_on_packets(&obj, &module, entry(), &packets);
    assert_eq!(r.len(), packets.len());
}

#[test]
fn an_out_of_bounds_packet_read_is_a_fault_that_names_its_instruction() {
    let module = parse(
        r#"
program fn0 "xdp"
function %oob(i64) {
block0(v0: i64):
    v1 = load.ctx.u32 v0+0 @0
    v2 = load.packet.u32 v1+100 @7
    return v2 @8
}
"#,
    );
    let jit = JitProgram::new(&module, entry()).expect("compiles");
    assert_eq!(jit.access_counts.1, 2, "both accesses are checked inline");
    let obj = object(Vec::new());
    let mut rt = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
    let err = run_xdp_native(&jit, &mut rt, &XdpInput::new(packet(60))).unwrap_err();
    assert_eq!(err.insn, Some(7), "{err}");
    assert!(err.message.contains("out of bounds of the packet"), "{err}");
    assert_eq!(err.program.as_deref(), Some("oob"));
    // With a long enough packet the same code reads.
    let ok = run_xdp_native(&jit, &mut rt, &XdpInput::new(packet(200))).unwrap();
    assert_eq!(
        ok.retval,
        u32::from_le_bytes(packet(200)[100..104].try_into().unwrap()) as u64
    );
    same_on_packets(&obj, &module, entry(), &[packet(60), packet(200)]);
}

#[test]
fn an_endless_loop_runs_out_of_budget_instead_of_hanging() {
    let module = parse(
        r#"
program fn0 "xdp"
function %spin(i64) {
block0(v0: i64):
    v1 = iconst 0 @0
    jump block1(v1) @0
block1(v2: i64):
    v3 = iconst 1 @1
    v4 = add.w64 v2, v3 @1
    jump block1(v4) @2
}
"#,
    );
    let jit = JitProgram::new(&module, entry()).expect("compiles");
    let obj = object(Vec::new());
    let config = RuntimeConfig {
        insn_budget: 10_000,
        ..RuntimeConfig::default()
    };
    let mut rt = Runtime::new(&obj, config).unwrap();
    let err = run_xdp_native(&jit, &mut rt, &XdpInput::new(packet(60))).unwrap_err();
    assert!(err.message.contains("budget"), "{err}");
    assert_eq!(err.insn, Some(2));
}

#[test]
fn tail_calls_run_the_target_program_and_failures_fall_through() {
    let module = parse(
        r#"
program fn0 "xdp"
program fn1 "xdp"
map0 = map "progs" type 3 key 4 value 4 max 4
function %first(i64) {
block0(v0: i64):
    v1 = load.ctx.u32 v0+0 @0
    v2 = load.ctx.u32 v0+4 @1
    v3 = sub.w64 v2, v1 @2
    v4 = iconst 3 @3
    v5 = and.w64 v3, v4 @3
    tail_call v0, map0, v5 @4
    v6 = iconst 1 @5
    return v6 @5
}
function %second(i64) {
block0(v0: i64):
    v1 = load.ctx.u32 v0+0 @0
    v2 = load.packet.u8 v1+0 @1
    v3 = iconst 3 @2
    return v3 @2
}
"#,
    );
    let obj = object(vec![mapdef("progs", MapType::ProgArray, 4, 4, 4)]);
    let snapshot = |rt: &mut Runtime| {
        // Slot 1 holds program 1; the others are empty.
        rt.map_by_name_mut("progs")
            .unwrap()
            .set(&1u32.to_le_bytes(), &1u32.to_le_bytes())
            .unwrap();
    };
    let jit = JitProgram::new(&module, entry()).expect("compiles");
    let mut rt_nat = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
    let mut rt_ir = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
    snapshot(&mut rt_nat);
    snapshot(&mut rt_ir);
    let mut seen = Vec::new();
    for n in [60usize, 61, 62, 63] {
        let input = XdpInput::new(packet(n));
        let got = run_xdp_native(&jit, &mut rt_nat, &input).unwrap();
        let want = run_xdp_ir(&module, entry(), &mut rt_ir, &input).unwrap();
        assert_eq!(got.retval, want.retval, "length {n}");
        seen.push(got.retval);
    }
    assert!(seen.contains(&3) && seen.contains(&1), "{seen:?}");
}

// ---- Executable memory and objects ----

#[test]
fn compiled_code_is_mapped_executable_and_never_writable() {
    let module = parse(COUNTER);
    let jit = JitProgram::new(&module, entry()).expect("compiles");
    let addr = jit.entry_address();
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let line = maps
        .lines()
        .find(|l| {
            let range = l.split_whitespace().next().unwrap_or("");
            let mut it = range.split('-');
            let lo = usize::from_str_radix(it.next().unwrap_or(""), 16).unwrap_or(usize::MAX);
            let hi = usize::from_str_radix(it.next().unwrap_or(""), 16).unwrap_or(0);
            (lo..hi).contains(&addr)
        })
        .unwrap_or_else(|| panic!("no mapping holds the code at {addr:#x}"));
    let perms = line.split_whitespace().nth(1).unwrap();
    assert!(perms.starts_with("r-x"), "code mapping is {perms}: {line}");
}

#[test]
fn objects_for_both_targets_export_the_entries_and_import_the_runtime() {
    use backends::native::{write_object, NativeTarget};
    let module = parse(COUNTER);
    for (target, machine) in [
        (NativeTarget::X86_64, 0x3eu16),
        (NativeTarget::Aarch64, 0xb7),
    ] {
        let (obj, header) = write_object(&module, target).expect("object");
        assert_eq!(&obj[..4], b"\x7fELF");
        assert_eq!(obj[4], 2, "64-bit ELF");
        assert_eq!(u16::from_le_bytes([obj[16], obj[17]]), 1, "relocatable");
        assert_eq!(
            u16::from_le_bytes([obj[18], obj[19]]),
            machine,
            "{target:?}"
        );
        let has = |s: &str| obj.windows(s.len()).any(|w| w == s.as_bytes());
        for sym in [
            "nicc_prog_xdp_count",
            "nicc_helper_map_lookup_elem",
            "nicc_helper_map_update_elem",
            "nicc_load",
        ] {
            assert!(has(sym), "{target:?} object lacks {sym}");
        }
        for text in [
            "uint64_t nicc_prog_xdp_count(struct nicc_ctx *ctx, uint64_t r1);",
            "#define NICC_MAP_COUNTS 0",
            "#define NICC_MAP__BSS 1",
            "uint64_t nicc_helper_map_lookup_elem(struct nicc_ctx *ctx, uint64_t r1",
        ] {
            assert!(header.contains(text), "header lacks {text:?}:\n{header}");
        }
        // The same input gives the same bytes.
        let (again, header2) = write_object(&module, target).expect("object");
        assert_eq!(again, obj);
        assert_eq!(header2, header);
    }
}

#[test]
fn the_generated_header_compiles_and_its_layout_asserts_hold() {
    let module = parse(COUNTER);
    let (_, header) =
        backends::native::write_object(&module, backends::native::NativeTarget::X86_64)
            .expect("object");
    let dir = std::env::temp_dir().join(format!("nicc-native-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("prog.h");
    std::fs::write(&path, &header).unwrap();
    let src = dir.join("use.c");
    std::fs::write(
        &src,
        "#include \"prog.h\"\nint main(void) { struct nicc_ctx c; (void)c; return 0; }\n",
    )
    .unwrap();
    let out = std::process::Command::new("cc")
        .args(["-std=c11", "-fsyntax-only", "-Wall", "-Werror"])
        .arg(&src)
        .output()
        .expect("a C compiler (cc) is needed to check the generated header");
    assert!(
        out.status.success(),
        "the header does not compile:\n{}\n{header}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn module_maps_are_declared_in_the_header_with_their_geometry() {
    let mut module = parse(COUNTER);
    module.add_map(MapDecl::new("extra*/map", 2, 4, 32, 8));
    let header = backends::native::c_header(&module, &["nicc_prog_xdp_count".into()], &[]);
    assert!(header.contains("#define NICC_MAP_EXTRA__MAP 2"), "{header}");
    assert!(
        header.contains("type 2, key 4 bytes, value 32 bytes, 8 entries"),
        "{header}"
    );
    assert!(
        !header.contains("extra*/map"),
        "comment terminators are escaped"
    );
}
