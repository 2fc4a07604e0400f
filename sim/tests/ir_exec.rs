//! Tests of the IR executor on hand-built IR: every instruction kind, compared with the
//! bytecode interpreter running the same computation written as BPF; the region check catching
//! wrong annotations; helpers, calls, tail calls; and faults that name where they happened.

use cranelift_entity::EntityRef;
use frontend::asm::assemble;
use frontend::mapdata::{MapContents, MapEntry, MapsSnapshot};
use frontend::object::{Function as ObjFunction, MapDef, MapOrigin, MapType, Program, ProgramKind};
use frontend::Object;
use ir::semantics::{ByteOrder, JmpCond, Width};
use ir::{
    AtomicOp, BinaryOp, FuncRef, Function, FunctionBuilder, LineInfo, MapDecl, Module, Region,
    SrcLoc, Type, UnaryOp, Value,
};
use sim::interp::{run_with_memory, run_xdp};
use sim::ir_exec::{run_ir_with_memory, run_xdp_ir};
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};

// ---- Building blocks ----

/// Interesting 64-bit operands: zero, one, sign boundaries, shift counts past the width.
const OPERANDS: [u64; 10] = [
    0,
    1,
    2,
    7,
    63,
    65,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff_ffff_fff9,
    0x8000_0000_0000_0000,
];

fn asm(text: &str) -> Vec<frontend::insn::RawInsn> {
    assemble(text).unwrap_or_else(|e| panic!("assembling {text:?}: {e:?}"))
}

/// A module with one function `f(mem, len)` built by `body`, which gets the builder and the
/// two parameters and returns the value to return.
fn memory_module(body: impl FnOnce(&mut FunctionBuilder, Value, Value) -> Value) -> Module {
    let mut func = Function::new("f", vec![Type::I64, Type::I64]);
    let mut b = FunctionBuilder::new(&mut func);
    let entry = b.create_block();
    b.switch_to_block(entry);
    let params = b.append_entry_params(entry);
    b.set_srcloc(SrcLoc::new(0));
    let r = body(&mut b, params[0], params[1]);
    b.ret(r);
    ir::verifier::verify_function(&func).expect("the test function verifies");
    let mut module = Module::new();
    module.add_function(func);
    module
}

fn entry() -> FuncRef {
    FuncRef::new(0)
}

/// Runs `text` in the interpreter and `module` in the executor on copies of `mem`; both the
/// results and the final memory must agree.
fn same_on_memory(text: &str, module: &Module, mem: &[u8]) -> u64 {
    let (mut m1, mut m2) = (mem.to_vec(), mem.to_vec());
    let want = run_with_memory(&asm(text), &mut m1).expect("interpreter");
    let got = run_ir_with_memory(module, entry(), &mut m2).expect("IR executor");
    assert_eq!(got, want, "result of {text:?}");
    assert_eq!(m2, m1, "memory after {text:?}");
    got
}

fn two_operands(a: u64, b: u64) -> Vec<u8> {
    [a.to_le_bytes(), b.to_le_bytes()].concat()
}

fn load64(b: &mut FunctionBuilder, base: Value, offset: i32) -> Value {
    b.load(Region::Ctx, ir::MemSize::U64, false, base, offset)
}

fn suffix(width: Width) -> &'static str {
    match width {
        Width::W32 => "32",
        Width::W64 => "",
    }
}

// ---- Pure instructions ----

#[test]
fn binary_operations_match_the_interpreter() {
    let mut runs = 0;
    for op in BinaryOp::ALL {
        for width in [Width::W32, Width::W64] {
            let module = memory_module(|b, mem, _| {
                let x = load64(b, mem, 0);
                let y = load64(b, mem, 8);
                b.binary(op, width, x, y)
            });
            let text = format!(
                "ldxdw %r0, [%r1+0]\nldxdw %r2, [%r1+8]\n{}{} %r0, %r2\nexit",
                op.name(),
                suffix(width)
            );
            for a in OPERANDS {
                for c in OPERANDS {
                    same_on_memory(&text, &module, &two_operands(a, c));
                    runs += 1;
                }
            }
        }
    }
    assert_eq!(runs, 13 * 2 * OPERANDS.len() * OPERANDS.len());
}

#[test]
fn unary_and_byte_order_operations_match_the_interpreter() {
    let cases: Vec<(UnaryOp, Width, &str)> = vec![
        (UnaryOp::Neg, Width::W64, "neg %r0"),
        (UnaryOp::Neg, Width::W32, "neg32 %r0"),
        (UnaryOp::Mov, Width::W32, "mov32 %r0, %r0"),
        (UnaryOp::Mov, Width::W64, "mov %r0, %r0"),
        (UnaryOp::MovSx8, Width::W64, "movsx864 %r0, %r0"),
        (UnaryOp::MovSx8, Width::W32, "movsx832 %r0, %r0"),
        (UnaryOp::MovSx16, Width::W64, "movsx1664 %r0, %r0"),
        (UnaryOp::MovSx16, Width::W32, "movsx1632 %r0, %r0"),
        (UnaryOp::MovSx32, Width::W64, "movsx3264 %r0, %r0"),
    ];
    for (op, width, line) in cases {
        let module = memory_module(|b, mem, _| {
            let x = load64(b, mem, 0);
            b.unary(op, width, x)
        });
        let text = format!("ldxdw %r0, [%r1+0]\n{line}\nexit");
        for a in OPERANDS
            .into_iter()
            .chain([0x1234_5678_9abc_def0, 0x80, 0x8000])
        {
            same_on_memory(&text, &module, &two_operands(a, 0));
        }
    }
    for order in [ByteOrder::ToLe, ByteOrder::ToBe, ByteOrder::Swap] {
        for bits in [16u8, 32, 64] {
            let module = memory_module(|b, mem, _| {
                let x = load64(b, mem, 0);
                b.endian(order, bits, x)
            });
            let name = ir::instructions::endian_name(order, bits).unwrap();
            let text = format!("ldxdw %r0, [%r1+0]\n{name} %r0\nexit");
            same_on_memory(&text, &module, &two_operands(0x0102_0304_0506_0708, 0));
        }
    }
    // Constants: a 64-bit immediate is loaded whole.
    let module = memory_module(|b, _, _| b.iconst(-0x1234_5678_9abc));
    same_on_memory("lddw %r0, -0x123456789abc\nexit", &module, &[0; 16]);
}

#[test]
fn conditional_branches_match_the_interpreter() {
    for cond in ir::instructions::ALL_CONDS {
        for width in [Width::W32, Width::W64] {
            let mut func = Function::new("f", vec![Type::I64, Type::I64]);
            let mut b = FunctionBuilder::new(&mut func);
            let (start, yes, no) = (b.create_block(), b.create_block(), b.create_block());
            b.switch_to_block(start);
            let mem = b.append_entry_params(start)[0];
            let x = load64(&mut b, mem, 0);
            let y = load64(&mut b, mem, 8);
            b.brif(cond, width, x, y, yes, &[], no, &[]);
            b.switch_to_block(yes);
            let one = b.iconst(1);
            b.ret(one);
            b.switch_to_block(no);
            let zero = b.iconst(0);
            b.ret(zero);
            let mut module = Module::new();
            module.add_function(func);
            let text = format!(
                "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nmov %r0, 1\nj{}{} %r2, %r3, +1\nmov %r0, 0\nexit",
                ir::instructions::cond_name(cond),
                suffix(width)
            );
            let mut taken = 0;
            for a in OPERANDS {
                for c in OPERANDS {
                    taken += same_on_memory(&text, &module, &two_operands(a, c));
                }
            }
            // Every condition is true for some operand pair and false for another.
            assert!(taken > 0 && taken < (OPERANDS.len() * OPERANDS.len()) as u64);
        }
    }
}

#[test]
fn block_parameters_are_assigned_in_parallel() {
    // block1(a, b, n): if n == 0 return a - b * 1000, else jump block1(b, a, n - 1).
    // Swapping in parallel exchanges the two after every round; assigning one after the other
    // would make both equal after the first round.
    let mut func = Function::new("f", vec![Type::I64, Type::I64]);
    let mut b = FunctionBuilder::new(&mut func);
    let (start, head, done, again) = (
        b.create_block(),
        b.create_block(),
        b.create_block(),
        b.create_block(),
    );
    b.switch_to_block(start);
    let mem = b.append_entry_params(start)[0];
    let rounds = load64(&mut b, mem, 0);
    let (x0, y0) = (b.iconst(3), b.iconst(5));
    b.jump(head, &[x0, y0, rounds]);
    let x = b.append_block_param(head, Type::I64);
    let y = b.append_block_param(head, Type::I64);
    let n = b.append_block_param(head, Type::I64);
    b.switch_to_block(head);
    let zero = b.iconst(0);
    b.brif(JmpCond::Eq, Width::W64, n, zero, done, &[], again, &[]);
    b.switch_to_block(done);
    let thousand = b.iconst(1000);
    let scaled = b.binary(BinaryOp::Mul, Width::W64, y, thousand);
    let r = b.binary(BinaryOp::Sub, Width::W64, x, scaled);
    b.ret(r);
    b.switch_to_block(again);
    let one = b.iconst(1);
    let n1 = b.binary(BinaryOp::Sub, Width::W64, n, one);
    b.jump(head, &[y, x, n1]);
    ir::verifier::verify_function(&func).expect("verifies");
    let mut module = Module::new();
    module.add_function(func);
    let text = "ldxdw %r3, [%r1+0]\nmov %r1, 3\nmov %r2, 5\nhead:\njeq %r3, 0, done\nmov %r4, %r1\nmov %r1, %r2\nmov %r2, %r4\nsub %r3, 1\nja head\ndone:\nmov %r0, %r2\nmul %r0, 1000\nmov %r5, %r1\nsub %r5, %r0\nmov %r0, %r5\nexit";
    let even = same_on_memory(text, &module, &two_operands(4, 0));
    let odd = same_on_memory(text, &module, &two_operands(3, 0));
    assert_ne!(even, odd, "the swap must change the result");
}

// ---- Memory ----

#[test]
fn loads_stores_and_atomics_match_the_interpreter() {
    let mem: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x81).collect();
    for size in ir::MemSize::ALL {
        let sfx = ["b", "h", "w", "dw"][size.bytes().trailing_zeros() as usize];
        for signed in [false, true] {
            if signed && size == ir::MemSize::U64 {
                continue;
            }
            let module = memory_module(|b, mem, _| {
                let v = b.load(Region::Ctx, size, signed, mem, 3);
                b.store(Region::Packet, size, mem, 17, v);
                b.load(Region::Any, size, signed, mem, 17)
            });
            let s = if signed { "s" } else { "" };
            let text = format!(
                "ldx{s}{sfx} %r0, [%r1+3]\nstx{sfx} [%r1+17], %r0\nldx{s}{sfx} %r0, [%r1+17]\nexit"
            );
            same_on_memory(&text, &module, &mem);
        }
    }
    let mut atomics = 0;
    for size in [ir::MemSize::U32, ir::MemSize::U64] {
        let sfx = if size == ir::MemSize::U32 { "32" } else { "" };
        for op in AtomicOp::ALL {
            for fetch in [false, true] {
                if op == AtomicOp::Xchg && !fetch {
                    continue;
                }
                let module = memory_module(|b, mem, _| {
                    let v = load64(b, mem, 16);
                    let r = b.atomic(Region::Any, size, op, fetch, mem, 8, v);
                    match r {
                        Some(old) => old,
                        None => load64(b, mem, 8),
                    }
                });
                let f = if fetch { "fetch " } else { "" };
                let tail = if fetch {
                    "mov %r0, %r2"
                } else {
                    "ldxdw %r0, [%r1+8]"
                };
                let text = format!(
                    "ldxdw %r2, [%r1+16]\nlock {f}{}{sfx} [%r1+8], %r2\n{tail}\nexit",
                    op.name()
                );
                same_on_memory(&text, &module, &mem);
                atomics += 1;
            }
            // Compare and exchange, once succeeding and once failing.
            let module = memory_module(|b, mem, _| {
                let expected = load64(b, mem, 0);
                let replacement = load64(b, mem, 16);
                b.cmpxchg(Region::Any, size, mem, 8, expected, replacement)
            });
            let text = format!(
                "ldxdw %r0, [%r1+0]\nldxdw %r2, [%r1+16]\nlock cmpxchg{sfx} [%r1+8], %r2\nexit"
            );
            let mut equal = mem.clone();
            let (head, rest) = equal.split_at_mut(8);
            head.copy_from_slice(&rest[..8]);
            same_on_memory(&text, &module, &equal);
            same_on_memory(&text, &module, &mem);
        }
    }
    assert_eq!(atomics, 2 * 9);
}

#[test]
fn stack_slots_live_in_the_frame_and_are_checked() {
    // Two slots; a value goes through each.
    let build = |wrong_slot: bool| {
        let mut func = Function::new("f", vec![Type::I64, Type::I64]);
        let mut b = FunctionBuilder::new(&mut func);
        let start = b.create_block();
        b.switch_to_block(start);
        let mem = b.append_entry_params(start)[0];
        let s0 = b.create_stack_slot(8);
        let s1 = b.create_stack_slot(4);
        let p0 = b.stack_addr(s0, 0);
        let p1 = b.stack_addr(s1, 0);
        let v = load64(&mut b, mem, 0);
        b.store(Region::Stack(s0), ir::MemSize::U64, p0, 0, v);
        b.store(Region::Stack(s1), ir::MemSize::U32, p1, 0, v);
        let annotated = if wrong_slot { s0 } else { s1 };
        let w = b.load(Region::Stack(annotated), ir::MemSize::U32, false, p1, 0);
        let d = b.load(Region::Stack(s0), ir::MemSize::U64, false, p0, 0);
        let r = b.binary(BinaryOp::Add, Width::W64, w, d);
        b.ret(r);
        let mut module = Module::new();
        module.add_function(func);
        module
    };
    let text = "ldxdw %r2, [%r1+0]\nstxdw [%r10-8], %r2\nstxw [%r10-12], %r2\nldxw %r0, [%r10-12]\nldxdw %r3, [%r10-8]\nadd %r0, %r3\nexit";
    same_on_memory(text, &build(false), &two_operands(0x1_2345_6789, 0));
    let err = run_ir_with_memory(&build(true), entry(), &mut two_operands(1, 0)).unwrap_err();
    assert!(
        err.message.contains("region mismatch") && err.message.contains("stack(ss0)"),
        "{err}"
    );
    assert_eq!(err.program.as_deref(), Some("f"));
}

// ---- XDP programs with maps, helpers, calls and tail calls ----

fn program(name: &str, text: &str) -> Program {
    let insns = asm(text);
    Program {
        name: name.into(),
        section: "xdp".into(),
        kind: ProgramKind::Xdp,
        functions: vec![ObjFunction {
            name: name.into(),
            section: "xdp".into(),
            start: 0,
            len: insns.len(),
            section_offset: 0,
        }],
        lines: Vec::new(),
        insns,
    }
}

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

fn decl(d: &MapDef) -> MapDecl {
    MapDecl::new(
        d.name.clone(),
        d.map_type.to_raw(),
        d.key_size,
        d.value_size,
        d.max_entries,
    )
}

fn object(programs: Vec<Program>, maps: Vec<MapDef>) -> Object {
    Object {
        name: "hand.o".into(),
        programs,
        maps,
        ..Object::default()
    }
}

/// Runs program `index` of `obj` in the interpreter and `func` of `module` in the executor on
/// each packet, each engine with its own runtime seeded with `seed`; verdicts, packets,
/// redirects, trace output and final maps must agree. Returns the verdicts.
fn same_on_packets(
    obj: &Object,
    index: usize,
    module: &Module,
    func: FuncRef,
    seed: Option<&MapsSnapshot>,
    packets: &[Vec<u8>],
) -> Vec<u64> {
    let mut rt_bc = Runtime::new(obj, RuntimeConfig::default()).unwrap();
    let mut rt_ir = Runtime::new(obj, RuntimeConfig::default()).unwrap();
    if let Some(s) = seed {
        rt_bc.load_snapshot(s).unwrap();
        rt_ir.load_snapshot(s).unwrap();
    }
    let mut verdicts = Vec::new();
    for p in packets {
        let input = XdpInput::new(p.clone());
        let want = run_xdp(obj, index, &mut rt_bc, &input).expect("interpreter");
        let got = run_xdp_ir(module, func, &mut rt_ir, &input).expect("IR executor");
        assert_eq!(got.retval, want.retval);
        assert_eq!(got.test_run_data(), want.test_run_data());
        assert_eq!(got.redirect, want.redirect);
        verdicts.push(got.retval);
    }
    assert_eq!(rt_ir.snapshot(), rt_bc.snapshot());
    assert_eq!(rt_ir.outputs(), rt_bc.outputs());
    verdicts
}

fn counter_seed(obj: &Object, name: &str, key: u32, value: Vec<u8>) -> MapsSnapshot {
    let (_, def) = obj.map_by_name(name).unwrap();
    let mut snap = MapsSnapshot::default();
    snap.maps.insert(
        name.into(),
        MapContents {
            map_type: def.map_type,
            key_size: def.key_size,
            value_size: def.value_size,
            entries: vec![MapEntry {
                key: frontend::mapdata::to_hex(&key.to_le_bytes()),
                value: Some(frontend::mapdata::to_hex(&value)),
                per_cpu: None,
            }],
        },
    );
    snap
}

#[test]
fn helpers_maps_and_packets_match_the_interpreter() {
    // Count packets per first byte in a hash map (lookup, then atomic add or insert), mix in
    // the clock and the PRNG, grow the head by 4 bytes and write the count there, and return
    // XDP_TX for even counts and XDP_PASS for odd ones.
    let maps = vec![mapdef("counts", MapType::Hash, 4, 8, 16)];
    let text = "
        mov %r6, %r1
        ldxw %r2, [%r6+0]
        ldxw %r3, [%r6+4]
        mov %r4, %r2
        add %r4, 1
        jgt %r4, %r3, drop
        ldxb %r7, [%r2+0]
        stxw [%r10-4], %r7
        lddw %r1, map_idx 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, insert
        mov %r1, 1
        lock add [%r0+0], %r1
        ja after
    insert:
        stdw [%r10-16], 1
        lddw %r1, map_idx 0
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        call 2
    after:
        call 5
        mov %r8, %r0
        call 7
        add %r8, %r0
        mov %r1, %r6
        mov %r2, -4
        call 44
        jne %r0, 0, drop
        ldxw %r2, [%r6+0]
        ldxw %r3, [%r6+4]
        mov %r4, %r2
        add %r4, 4
        jgt %r4, %r3, drop
        stxw [%r2+0], %r8
        mov %r0, %r8
        and %r0, 1
        add %r0, 2
        exit
    drop:
        mov %r0, 1
        exit";
    let obj = object(vec![program("count", text)], maps.clone());

    let mut module = Module::new();
    let counts = module.add_map(decl(&maps[0]));
    let mut func = Function::new("count", vec![Type::I64]);
    {
        let mut b = FunctionBuilder::new(&mut func);
        let start = b.create_block();
        let (lookup, found, insert, after, grown, send, drop) = (
            b.create_block(),
            b.create_block(),
            b.create_block(),
            b.create_block(),
            b.create_block(),
            b.create_block(),
            b.create_block(),
        );
        b.switch_to_block(start);
        let ctx = b.append_entry_params(start)[0];
        let key_slot = b.create_stack_slot(4);
        let value_slot = b.create_stack_slot(8);
        let data = b.load(Region::Ctx, ir::MemSize::U32, false, ctx, 0);
        let end = b.load(Region::Ctx, ir::MemSize::U32, false, ctx, 4);
        let one = b.iconst(1);
        let first_end = b.binary(BinaryOp::Add, Width::W64, data, one);
        b.brif(
            JmpCond::Gt,
            Width::W64,
            first_end,
            end,
            drop,
            &[],
            lookup,
            &[],
        );
        b.switch_to_block(lookup);
        let byte = b.load(Region::Packet, ir::MemSize::U8, false, data, 0);
        let key = b.stack_addr(key_slot, 0);
        b.store(Region::Stack(key_slot), ir::MemSize::U32, key, 0, byte);
        let m = b.map_ref(counts);
        let v = b.call_helper(1, &[m, key]);
        let zero = b.iconst(0);
        b.brif(JmpCond::Eq, Width::W64, v, zero, insert, &[], found, &[]);
        b.switch_to_block(found);
        b.atomic(
            Region::MapValue(Some(counts)),
            ir::MemSize::U64,
            AtomicOp::Add,
            false,
            v,
            0,
            one,
        );
        b.jump(after, &[]);
        b.switch_to_block(insert);
        let value = b.stack_addr(value_slot, 0);
        b.store(Region::Stack(value_slot), ir::MemSize::U64, value, 0, one);
        let m2 = b.map_ref(counts);
        b.call_helper(2, &[m2, key, value, zero]);
        b.jump(after, &[]);
        b.switch_to_block(after);
        let t = b.call_helper(5, &[]);
        let r = b.call_helper(7, &[]);
        let mix = b.binary(BinaryOp::Add, Width::W64, t, r);
        let minus4 = b.iconst(-4);
        let rc = b.call_helper(44, &[ctx, minus4]);
        b.brif(JmpCond::Ne, Width::W64, rc, zero, drop, &[], grown, &[]);
        b.switch_to_block(grown);
        let data = b.load(Region::Ctx, ir::MemSize::U32, false, ctx, 0);
        let end = b.load(Region::Ctx, ir::MemSize::U32, false, ctx, 4);
        let four = b.iconst(4);
        let need = b.binary(BinaryOp::Add, Width::W64, data, four);
        b.brif(JmpCond::Gt, Width::W64, need, end, drop, &[], send, &[]);
        b.switch_to_block(send);
        b.store(Region::Packet, ir::MemSize::U32, data, 0, mix);
        let low = b.binary(BinaryOp::And, Width::W64, mix, one);
        let two = b.iconst(2);
        let verdict = b.binary(BinaryOp::Add, Width::W64, low, two);
        b.ret(verdict);
        b.switch_to_block(drop);
        b.ret(one);
    }
    ir::verifier::verify_function(&func).expect("verifies");
    let f = module.add_function(func);
    module.add_program(f, "xdp");

    let packets: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i % 3; 20 + i as usize]).collect();
    let seed = counter_seed(&obj, "counts", 2, 100u64.to_le_bytes().to_vec());
    let verdicts = same_on_packets(&obj, 0, &module, f, Some(&seed), &packets);
    // Both kinds of verdict are reached.
    assert!(
        verdicts.contains(&2) && verdicts.contains(&3),
        "{verdicts:?}"
    );
}

#[test]
fn map_pointers_and_global_data_addresses_match_lddw() {
    let maps = vec![
        mapdef("table", MapType::Hash, 4, 4, 4),
        mapdef(".data", MapType::Array, 4, 16, 1),
    ];
    // r0 = address of .data + 8 plus the byte found there, so the pointer and the access
    // both count.
    for (text, global) in [
        ("lddw %r0, map_idx 0\nexit", false),
        (
            "lddw %r1, map_idx_value 1, 8\nldxb %r2, [%r1+0]\nstb [%r1+1], 9\nmov %r0, %r1\nadd %r0, %r2\nexit",
            true,
        ),
    ] {
        let obj = object(vec![program("p", text)], maps.clone());
        let mut module = Module::new();
        let table = module.add_map(decl(&maps[0]));
        let data = module.add_map(decl(&maps[1]));
        let mut func = Function::new("p", vec![Type::I64]);
        {
            let mut b = FunctionBuilder::new(&mut func);
            let start = b.create_block();
            b.switch_to_block(start);
            b.append_entry_params(start);
            let r = if global {
                let p = b.map_value_addr(data, 8);
                let byte = b.load(Region::Global(data), ir::MemSize::U8, false, p, 0);
                let nine = b.iconst(9);
                b.store(Region::Global(data), ir::MemSize::U8, p, 1, nine);
                b.binary(BinaryOp::Add, Width::W64, p, byte)
            } else {
                b.map_ref(table)
            };
            b.ret(r);
        }
        let f = module.add_function(func);
        let seed = counter_seed(&obj, ".data", 0, (1..=16).collect());
        same_on_packets(&obj, 0, &module, f, Some(&seed), &[vec![0; 64]]);
    }
}

#[test]
fn calls_get_fresh_frames_and_tail_calls_switch_programs() {
    // Program 0 stores a marker on its stack, calls a subprogram that writes through the
    // caller's pointer into its own frame and returns a sum, then tail-calls program 1 through
    // the prog array (index taken from the packet's first byte); program 1 returns 3 plus the
    // length. A missing entry falls through to return the call's result.
    let maps = vec![mapdef("progs", MapType::ProgArray, 4, 4, 4)];
    let text0 = "
        mov %r6, %r1
        stdw [%r10-8], 40
        mov %r1, %r10
        add %r1, -8
        call local sub
        mov %r7, %r0
        ldxw %r2, [%r6+0]
        ldxw %r3, [%r6+4]
        mov %r4, %r2
        add %r4, 1
        jgt %r4, %r3, out
        ldxb %r3, [%r2+0]
        mov %r1, %r6
        lddw %r2, map_idx 0
        call 12
    out:
        mov %r0, %r7
        exit
    sub:
        ldxdw %r2, [%r1+0]
        stdw [%r10-8], 2
        ldxdw %r3, [%r10-8]
        add %r2, %r3
        stxdw [%r1+0], %r2
        mov %r0, %r2
        exit";
    let text1 = "
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        sub %r3, %r2
        mov %r0, %r3
        add %r0, 3
        exit";
    let obj = object(
        vec![program("first", text0), program("second", text1)],
        maps.clone(),
    );

    let mut module = Module::new();
    let progs = module.add_map(decl(&maps[0]));
    // The subprogram: takes a pointer into the caller's frame.
    let mut sub = Function::new("sub", vec![Type::I64]);
    {
        let mut b = FunctionBuilder::new(&mut sub);
        let start = b.create_block();
        b.switch_to_block(start);
        let p = b.append_entry_params(start)[0];
        let own = b.create_stack_slot(8);
        let v = b.load(Region::Any, ir::MemSize::U64, false, p, 0);
        let own_addr = b.stack_addr(own, 0);
        let two = b.iconst(2);
        b.store(Region::Stack(own), ir::MemSize::U64, own_addr, 0, two);
        let back = b.load(Region::Stack(own), ir::MemSize::U64, false, own_addr, 0);
        let sum = b.binary(BinaryOp::Add, Width::W64, v, back);
        b.store(Region::Any, ir::MemSize::U64, p, 0, sum);
        b.ret(sum);
    }
    let mut first = Function::new("first", vec![Type::I64]);
    let mut second = Function::new("second", vec![Type::I64]);
    let first_ref = FuncRef::new(0);
    let second_ref = FuncRef::new(1);
    let sub_ref = FuncRef::new(2);
    {
        let mut b = FunctionBuilder::new(&mut first);
        let (start, tail, out) = (b.create_block(), b.create_block(), b.create_block());
        b.switch_to_block(start);
        let ctx = b.append_entry_params(start)[0];
        let slot = b.create_stack_slot(8);
        let addr = b.stack_addr(slot, 0);
        let forty = b.iconst(40);
        b.store(Region::Stack(slot), ir::MemSize::U64, addr, 0, forty);
        let r = b.call(sub_ref, &[addr]);
        let data = b.load(Region::Ctx, ir::MemSize::U32, false, ctx, 0);
        let end = b.load(Region::Ctx, ir::MemSize::U32, false, ctx, 4);
        let one = b.iconst(1);
        let need = b.binary(BinaryOp::Add, Width::W64, data, one);
        b.brif(JmpCond::Gt, Width::W64, need, end, out, &[], tail, &[]);
        b.switch_to_block(tail);
        let index = b.load(Region::Packet, ir::MemSize::U8, false, data, 0);
        b.tail_call(ctx, progs, index);
        b.jump(out, &[]);
        b.switch_to_block(out);
        b.ret(r);
    }
    {
        let mut b = FunctionBuilder::new(&mut second);
        let start = b.create_block();
        b.switch_to_block(start);
        let ctx = b.append_entry_params(start)[0];
        let data = b.load(Region::Ctx, ir::MemSize::U32, false, ctx, 0);
        let end = b.load(Region::Ctx, ir::MemSize::U32, false, ctx, 4);
        let len = b.binary(BinaryOp::Sub, Width::W64, end, data);
        let three = b.iconst(3);
        let r = b.binary(BinaryOp::Add, Width::W64, len, three);
        b.ret(r);
    }
    assert_eq!(module.add_function(first), first_ref);
    assert_eq!(module.add_function(second), second_ref);
    assert_eq!(module.add_function(sub), sub_ref);
    module.add_program(first_ref, "xdp");
    module.add_program(second_ref, "xdp");
    ir::verifier::verify_module(&module).expect("verifies");

    // Entry 1 of the prog array runs program 1; entry 0 is empty.
    let snap = counter_seed(&obj, "progs", 1, 1u32.to_le_bytes().to_vec());
    let packets = vec![vec![0u8; 30], vec![1u8; 30], vec![1u8; 50], vec![7u8; 14]];
    let verdicts = same_on_packets(&obj, 0, &module, first_ref, Some(&snap), &packets);
    assert_eq!(verdicts[0], 42, "a failed tail call falls through");
    assert_ne!(verdicts[1], verdicts[2], "the tail-called program ran");
}

// ---- Faults ----

#[test]
fn region_annotations_are_checked_against_the_address() {
    let maps = vec![
        mapdef("a", MapType::Array, 4, 8, 1),
        mapdef("b", MapType::Array, 4, 8, 1),
    ];
    let obj = object(vec![program("p", "mov %r0, 2\nexit")], maps.clone());
    // Each case: the region claimed for a load through a pointer of a known kind.
    let cases: Vec<(Region, &str, bool)> = vec![
        (Region::Ctx, "ctx", true),
        (Region::Packet, "ctx", false),
        (Region::Any, "ctx", true),
        (Region::Packet, "packet", true),
        (Region::Ctx, "packet", false),
        (Region::Global(ir::MapRef::new(0)), "value a", true),
        (Region::Global(ir::MapRef::new(1)), "value a", false),
        (Region::MapValue(Some(ir::MapRef::new(0))), "value a", true),
        (Region::MapValue(Some(ir::MapRef::new(1))), "value a", false),
        (Region::MapValue(None), "value a", true),
        (Region::Packet, "value a", false),
    ];
    for (claim, pointer, ok) in cases {
        let mut module = Module::new();
        let a = module.add_map(decl(&maps[0]));
        module.add_map(decl(&maps[1]));
        let mut func = Function::new("p", vec![Type::I64]);
        {
            let mut b = FunctionBuilder::new(&mut func);
            let start = b.create_block();
            b.switch_to_block(start);
            let ctx = b.append_entry_params(start)[0];
            b.set_srcloc(SrcLoc::new(7));
            let base = match pointer {
                "ctx" => ctx,
                "packet" => b.load(Region::Ctx, ir::MemSize::U32, false, ctx, 0),
                _ => b.map_value_addr(a, 0),
            };
            let size = if pointer == "ctx" {
                ir::MemSize::U32
            } else {
                ir::MemSize::U8
            };
            let v = b.load(claim, size, false, base, 4);
            b.ret(v);
        }
        let f = module.add_function(func);
        let mut rt = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
        let r = run_xdp_ir(&module, f, &mut rt, &XdpInput::new(vec![0; 60]));
        match (ok, r) {
            (true, Ok(_)) => {}
            (false, Err(d)) => {
                assert!(
                    d.message.contains("region mismatch"),
                    "{claim} on {pointer}: {d}"
                );
                assert_eq!(d.insn, Some(7));
                assert_eq!(d.program.as_deref(), Some("p"));
            }
            (true, Err(d)) => panic!("{claim} on {pointer} should be accepted: {d}"),
            (false, Ok(o)) => panic!("{claim} on {pointer} should fault, returned {o:?}"),
        }
    }
}

#[test]
fn faults_name_the_function_instruction_and_source_line() {
    let obj = object(vec![program("p", "mov %r0, 2\nexit")], Vec::new());
    let mut module = Module::new();
    let line = module.add_line(LineInfo {
        file: "prog.c".into(),
        line: 42,
        column: 5,
        text: "return data[100];".into(),
    });
    // The entry calls `helper_fn`, which reads past the end of a 60-byte packet.
    let mut callee = Function::new("helper_fn", vec![Type::I64]);
    {
        let mut b = FunctionBuilder::new(&mut callee);
        let start = b.create_block();
        b.switch_to_block(start);
        let data = b.append_entry_params(start)[0];
        b.set_srcloc(SrcLoc::with_line(13, line));
        let v = b.load(Region::Packet, ir::MemSize::U8, false, data, 100);
        b.ret(v);
    }
    let mut main = Function::new("main", vec![Type::I64]);
    {
        let mut b = FunctionBuilder::new(&mut main);
        let start = b.create_block();
        b.switch_to_block(start);
        let ctx = b.append_entry_params(start)[0];
        let data = b.load(Region::Ctx, ir::MemSize::U32, false, ctx, 0);
        let r = b.call(FuncRef::new(1), &[data]);
        b.ret(r);
    }
    let main_ref = module.add_function(main);
    module.add_function(callee);
    let mut rt = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
    let d = run_xdp_ir(&module, main_ref, &mut rt, &XdpInput::new(vec![0; 60])).unwrap_err();
    assert!(d.message.contains("out of bounds"), "{d}");
    assert!(d.message.contains("helper_fn"), "{d}");
    assert_eq!(d.program.as_deref(), Some("main"));
    assert_eq!(d.object.as_deref(), Some("hand.o"));
    assert_eq!(d.insn, Some(13));
    let l = d.line.expect("source line");
    assert_eq!(
        (l.file.as_str(), l.line, l.source.as_str()),
        ("prog.c", 42, "return data[100];")
    );
}

#[test]
fn budget_and_call_depth_are_limited_as_in_the_interpreter() {
    // An endless loop.
    let mut func = Function::new("spin", vec![Type::I64, Type::I64]);
    {
        let mut b = FunctionBuilder::new(&mut func);
        let (start, lp) = (b.create_block(), b.create_block());
        b.switch_to_block(start);
        b.append_entry_params(start);
        b.jump(lp, &[]);
        b.switch_to_block(lp);
        b.jump(lp, &[]);
    }
    let mut module = Module::new();
    module.add_function(func);
    let d = run_ir_with_memory(&module, entry(), &mut []).unwrap_err();
    assert!(d.message.contains("instruction budget"), "{d}");
    let bc = run_with_memory(&asm("ja -1\nexit"), &mut []).unwrap_err();
    assert_eq!(d.message, bc.message, "same budget, same message");

    // Unbounded recursion: the call nesting limit, as for bpf-to-bpf calls.
    let mut rec = Function::new("rec", vec![Type::I64, Type::I64]);
    {
        let mut b = FunctionBuilder::new(&mut rec);
        let start = b.create_block();
        b.switch_to_block(start);
        let p = b.append_entry_params(start);
        let r = b.call(FuncRef::new(0), &[p[0], p[1]]);
        b.ret(r);
    }
    let mut module = Module::new();
    module.add_function(rec);
    let d = run_ir_with_memory(&module, entry(), &mut []).unwrap_err();
    let bc = run_with_memory(&asm("top:\ncall local top\nexit\n"), &mut []).unwrap_err();
    assert!(d.message.starts_with(&bc.message), "{d} vs {bc}");
}
