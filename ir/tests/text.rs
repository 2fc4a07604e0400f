//! The text format: a snapshot of a printed module, round trips of hand-built, hand-written and
//! randomly generated functions through printer and parser, and a mutation fuzzer that checks
//! that no input makes the parser (or the verifier and printer after it) panic.

use ir::builder::FunctionBuilder;
use ir::function::{Function, LineInfo, MapDecl, Module, SrcLoc};
use ir::instructions::{AtomicOp, BinaryOp, Region, UnaryOp};
use ir::parse::{parse_function, parse_module};
use ir::semantics::{ByteOrder, JmpCond, Width};
use ir::types::{MemSize, Type};
use ir::verifier::verify_module;
use ir::write::{function_to_string, module_to_string};
use proptest::prelude::*;

/// An XDP program in the shape clang gives the kernel samples: bounds check, map lookup,
/// atomic counter, a subprogram call with a loop, global data and a tail call.
fn example_module() -> Module {
    let mut m = Module::new();
    let rxcnt = m.add_map(MapDecl::new("rxcnt", 6, 4, 8, 256));
    let mut rodata = MapDecl::new(".rodata", 2, 4, 4, 1);
    rodata.flags = 128;
    rodata.data = Some(vec![42, 0, 0, 0]);
    let rodata = m.add_map(rodata);
    let jmp = m.add_map(MapDecl::new("jmp_table", 3, 4, 4, 8));
    let l0 = m.add_line(LineInfo {
        file: "xdp1_kern.c".into(),
        line: 40,
        column: 2,
        text: "if (data + nh_off > data_end)".into(),
    });
    let l1 = m.add_line(LineInfo {
        file: "xdp1_kern.c".into(),
        line: 52,
        column: 3,
        text: "*value += 1;".into(),
    });

    let mut prog = Function::new("xdp_prog1", vec![Type::I64]);
    let popcount_ref = ir::FuncRef::from_u32(1);
    {
        let mut b = FunctionBuilder::new(&mut prog);
        let ss = b.create_stack_slot(8);
        let entry = b.create_block();
        let parse = b.create_block();
        let found = b.create_block();
        let drop = b.create_block();
        let exit = b.create_block();
        b.switch_to_block(entry);
        let ctx = b.append_entry_params(entry)[0];
        b.set_srcloc(SrcLoc::with_line(0, l0));
        let data = b.load(Region::Ctx, MemSize::U32, false, ctx, 0);
        b.set_srcloc(SrcLoc::with_line(1, l0));
        let end = b.load(Region::Ctx, MemSize::U32, false, ctx, 4);
        b.set_srcloc(SrcLoc::new(2));
        let nh_off = b.iconst(14);
        let hdr_end = b.binary(BinaryOp::Add, Width::W64, data, nh_off);
        b.set_srcloc(SrcLoc::with_line(4, l0));
        b.brif(JmpCond::Gt, Width::W64, hdr_end, end, drop, &[], parse, &[]);

        b.switch_to_block(parse);
        b.set_srcloc(SrcLoc::new(5));
        let proto = b.load(Region::Packet, MemSize::U16, false, data, 12);
        let proto = b.endian(ByteOrder::ToBe, 16, proto);
        let key = b.stack_addr(ss, 0);
        b.set_srcloc(SrcLoc::new(7));
        b.store(Region::Stack(ss), MemSize::U32, key, 4, proto);
        let map = b.map_ref(rxcnt);
        b.set_srcloc(SrcLoc::new(10));
        let value = b.call_helper(1, &[map, key]);
        let zero = b.iconst(0);
        b.brif(
            JmpCond::Eq,
            Width::W64,
            value,
            zero,
            drop,
            &[],
            found,
            &[value],
        );

        b.switch_to_block(found);
        let ptr = b.append_block_param(found, Type::I64);
        b.set_srcloc(SrcLoc::with_line(13, l1));
        let one = b.iconst(1);
        b.atomic(
            Region::MapValue(Some(rxcnt)),
            MemSize::U64,
            AtomicOp::Add,
            false,
            ptr,
            0,
            one,
        );
        b.set_srcloc(SrcLoc::new(14));
        let bits = b.call(popcount_ref, &[proto]);
        let rd = b.map_value_addr(rodata, 0);
        let idx = b.load(Region::Global(rodata), MemSize::U32, false, rd, 0);
        let idx = b.binary(BinaryOp::Add, Width::W32, idx, bits);
        b.set_srcloc(SrcLoc::new(20));
        b.tail_call(ctx, jmp, idx);
        let pass = b.iconst(2);
        b.jump(exit, &[pass]);

        b.switch_to_block(drop);
        b.set_srcloc(SrcLoc::new(25));
        let xdp_drop = b.iconst(1);
        b.jump(exit, &[xdp_drop]);

        b.switch_to_block(exit);
        let rc = b.append_block_param(exit, Type::I64);
        b.set_srcloc(SrcLoc::new(27));
        b.ret(rc);
    }

    let mut popcount = Function::new("popcount", vec![Type::I64]);
    {
        let mut b = FunctionBuilder::new(&mut popcount);
        let entry = b.create_block();
        let header = b.create_block();
        let body = b.create_block();
        let done = b.create_block();
        b.switch_to_block(entry);
        let x = b.append_entry_params(entry)[0];
        b.set_srcloc(SrcLoc::new(30));
        let zero = b.iconst(0);
        b.jump(header, &[x, zero]);
        b.switch_to_block(header);
        let n = b.append_block_param(header, Type::I64);
        let acc = b.append_block_param(header, Type::I64);
        b.set_srcloc(SrcLoc::new(31));
        b.brif(JmpCond::Eq, Width::W64, n, zero, done, &[], body, &[]);
        b.switch_to_block(body);
        b.set_srcloc(SrcLoc::new(32));
        let one = b.iconst(1);
        let low = b.binary(BinaryOp::And, Width::W64, n, one);
        let acc2 = b.binary(BinaryOp::Add, Width::W32, acc, low);
        let n2 = b.binary(BinaryOp::Rsh, Width::W64, n, one);
        b.jump(header, &[n2, acc2]);
        b.switch_to_block(done);
        b.set_srcloc(SrcLoc::new(36));
        b.ret(acc);
    }
    let f0 = m.add_function(prog);
    let f1 = m.add_function(popcount);
    assert_eq!(f1, popcount_ref);
    m.add_program(f0, "xdp");
    m
}

/// Every instruction form, written by hand.
const ALL_FORMS: &str = r#"program fn0 "xdp"
program fn1 "socket_filter"

map0 = map "counters" type 1 key 4 value 8 max 1024
map1 = map ".bss" type 2 key 4 value 16 max 1 data "00000000000000000000000000000000"
map2 = map "progs" type 3 key 4 value 4 max 4 flags 1

line0 = "a.c" 1:1 "int x = \"q\";\t// tab"

function fn0 %all_forms(i64) {
    ss0 = stack 16
    ss1 = stack 512
block0(v0: i64):
    v1 = iconst -9223372036854775808
    v2 = iconst 9223372036854775807
    v3 = add.w64 v1, v2                     @0:0
    v4 = sub.w32 v3, v2
    v5 = mul.w64 v4, v3
    v6 = div.w32 v5, v4
    v7 = sdiv.w64 v6, v5
    v8 = mod.w32 v7, v6
    v9 = smod.w64 v8, v7
    v10 = or.w32 v9, v8
    v11 = and.w64 v10, v9
    v12 = xor.w32 v11, v10
    v13 = lsh.w64 v12, v11
    v14 = rsh.w32 v13, v12
    v15 = arsh.w64 v14, v13
    v16 = neg.w32 v15
    v17 = mov.w32 v16
    v18 = movsx8.w64 v17
    v19 = movsx16.w32 v18
    v20 = movsx32.w64 v19
    v21 = le16 v20
    v22 = le32 v21
    v23 = le64 v22
    v24 = be16 v23
    v25 = be32 v24
    v26 = be64 v25
    v27 = bswap16 v26
    v28 = bswap32 v27
    v29 = bswap64 v28
    v30 = stack_addr ss0+0
    v31 = stack_addr ss1+512
    store.stack(ss0).u64 v30+8, v29
    v32 = load.stack(ss0).u8.sx v30+8
    v33 = load.stack(ss1).u32 v31-4
    v34 = load.packet.u16 v33+0
    v35 = load.ctx.u32 v0+16
    v36 = load.any.u64 v35-8
    v37 = map_ref map0
    v38 = call_helper 1(v37, v30)
    atomic.map_value(map0).u64 add v38+0, v32
    v39 = atomic.map_value(?).u32 or.fetch v38+4, v32
    atomic.any.u64 and v36+0, v34
    v40 = atomic.global(map1).u64 xor.fetch v36+8, v34
    v41 = atomic.stack(ss0).u64 xchg.fetch v30+0, v39
    v42 = cmpxchg.map_value(map0).u64 v38+0, v40, v41
    v43 = map_value_addr map1+8
    v44 = load.global(map1).u64 v43+0
    v45 = func_addr fn1
    v46 = call_helper 181(v45, v44)
    v47 = call fn1(v42)
    v48 = call_helper 7()
    tail_call v0, map2, v47
    brif set.w32 v46, v48, block1(v47, v48), block2
block1(v49: i64, v50: i64):
    brif sle.w64 v49, v50, block2, block3(v49)
block2:
    jump block3(v1)
block3(v51: i64):
    return v51                              @99
}

function fn1 %"callee cold"(i64) {
block0(v0: i64):
    return v0
}
"#;

/// A module with nothing but a subprogram taking three arguments.
const SMALL: &str = r#"function fn0 %three(i64, i64, i64) {
block0(v0: i64, v1: i64, v2: i64):
    v3 = iconst 0                           @0
    brif ge.w32 v0, v1, block1(v2), block1(v3) @1
block1(v4: i64):
    return v4                               @2
}
"#;

/// A function whose numbering has gaps, as passes leave it.
const GAPS: &str = r#"function %gaps(i64, i64) {
block3(v7: i64, v2: i64):
    v9 = iconst 3
    jump block1(v9)
block1(v4: i64):
    v12 = add.w64 v4, v7
    return v12
}
"#;

fn assert_round_trip(m: &Module) {
    let text = module_to_string(m);
    let parsed = parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(module_to_string(&parsed), text);
    assert!(
        parsed == *m,
        "parsed module differs from the original:\n{text}"
    );
}

#[test]
fn example_module_snapshot() {
    let m = example_module();
    verify_module(&m).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(module_to_string(&m));
}

#[test]
fn example_module_round_trips() {
    assert_round_trip(&example_module());
}

#[test]
fn hand_written_text_round_trips_byte_for_byte() {
    for text in [ALL_FORMS, SMALL] {
        let m = parse_module(text).unwrap_or_else(|e| panic!("{e}"));
        verify_module(&m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(module_to_string(&m), text);
        assert_round_trip(&m);
    }
    let f = parse_function(GAPS).unwrap_or_else(|e| panic!("{e}"));
    ir::verifier::verify_function(&f).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(function_to_string(&f), GAPS);
    assert_eq!(parse_function(&function_to_string(&f)).unwrap(), f);
}

#[test]
fn equality_sees_every_printed_difference() {
    let m = example_module();
    let text = module_to_string(&m);
    for (from, to) in [
        ("iconst 14", "iconst 15"),
        ("@27", "@28"),
        ("add.w32", "add.w64"),
        ("jump block4(v17)", "jump block4(v18)"),
    ] {
        assert!(text.contains(from), "{from}");
        let other = parse_module(&text.replacen(from, to, 1)).unwrap();
        assert!(other != m, "changing {from} to {to} went unnoticed");
    }
}

#[test]
fn parse_errors_carry_positions() {
    let e = parse_module(
        "program fn0 \"xdp\"\nfunction %f(i64) {\nblock0(v0: i64):\n    v1 = load.heap.u32 v0+0\n}",
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (4, 15), "{e}");
    assert_eq!(e.to_string(), "4:15: unknown memory region `heap`");
}

// ---- Random functions ----

type Op = (u8, u8, u8, i32);

/// Builds a module from a script: each op adds one instruction to one of `nblocks` blocks.
/// Every block uses only its own parameters and results (and the function's context through
/// the entry block), so the function is valid whatever the script says.
fn build_random(script: &[Op], nblocks: usize, ends: &[(u8, u8)]) -> Module {
    let mut m = Module::new();
    let hash = m.add_map(MapDecl::new("h", 1, 4, 8, 16));
    let global = m.add_map(MapDecl::new(".data", 2, 4, 64, 1));
    let progs = m.add_map(MapDecl::new("progs", 3, 4, 4, 4));
    m.add_line(LineInfo {
        file: "r.c".into(),
        line: 1,
        column: 1,
        text: "x".into(),
    });
    let mut func = Function::new("random", vec![Type::I64]);
    {
        let mut b = FunctionBuilder::new(&mut func);
        let ss = b.create_stack_slot(64);
        let blocks: Vec<_> = (0..nblocks).map(|_| b.create_block()).collect();
        for (i, &block) in blocks.iter().enumerate() {
            if i > 0 {
                for _ in 0..(i % 3) {
                    b.append_block_param(block, Type::I64);
                }
            }
        }
        for (i, &block) in blocks.iter().enumerate() {
            b.switch_to_block(block);
            let mut vals: Vec<_> = if i == 0 {
                b.append_entry_params(block)
            } else {
                b.block_params(block).to_vec()
            };
            if vals.is_empty() {
                vals.push(b.iconst(i as i64));
            }
            let pick = |vals: &Vec<ir::Value>, k: u8| vals[k as usize % vals.len()];
            for (k, &(a, c, d, imm)) in script.iter().enumerate() {
                if k % nblocks != i {
                    continue;
                }
                b.set_srcloc(match d % 3 {
                    0 => SrcLoc::NONE,
                    1 => SrcLoc::new(k as u32),
                    _ => SrcLoc::with_line(k as u32, 0),
                });
                let (x, y) = (pick(&vals, c), pick(&vals, d));
                let size = MemSize::ALL[(c % 4) as usize];
                let v = match a % 12 {
                    0 => Some(b.iconst(imm as i64 * (d as i64 - 100))),
                    1 => Some(b.binary(
                        BinaryOp::ALL[(c % 13) as usize],
                        if d & 1 == 0 { Width::W32 } else { Width::W64 },
                        x,
                        y,
                    )),
                    2 => {
                        let op = UnaryOp::ALL[(c % 5) as usize];
                        let w = if op == UnaryOp::MovSx32 || d & 1 == 1 {
                            Width::W64
                        } else {
                            Width::W32
                        };
                        Some(b.unary(op, w, y))
                    }
                    3 => Some(b.endian(
                        [ByteOrder::ToLe, ByteOrder::ToBe, ByteOrder::Swap][(c % 3) as usize],
                        [16, 32, 64][(d % 3) as usize],
                        x,
                    )),
                    4 => {
                        let region = [
                            Region::Packet,
                            Region::Ctx,
                            Region::Any,
                            Region::MapValue(None),
                        ][(d % 4) as usize];
                        Some(b.load(
                            region,
                            size,
                            size != MemSize::U64 && imm & 1 == 1,
                            x,
                            imm % 256,
                        ))
                    }
                    5 => {
                        let addr = b.stack_addr(ss, imm.rem_euclid(8) * 8);
                        b.store(Region::Stack(ss), size, addr, 0, y);
                        Some(b.load(Region::Stack(ss), size, false, addr, 0))
                    }
                    6 => {
                        let n = (d % 4) as usize;
                        let args: Vec<_> = (0..n)
                            .map(|j| pick(&vals, c.wrapping_add(j as u8)))
                            .collect();
                        Some(b.call_helper(imm.unsigned_abs() % 212, &args))
                    }
                    7 => {
                        let map = if c & 1 == 0 { hash } else { global };
                        Some(if d & 1 == 0 {
                            b.map_ref(map)
                        } else {
                            b.map_value_addr(global, imm.rem_euclid(57))
                        })
                    }
                    8 => {
                        let region = [
                            Region::MapValue(Some(hash)),
                            Region::MapValue(None),
                            Region::Any,
                        ][(d % 3) as usize];
                        let size = if c & 1 == 0 {
                            MemSize::U32
                        } else {
                            MemSize::U64
                        };
                        let op = AtomicOp::ALL[(c % 5) as usize];
                        let fetch = op == AtomicOp::Xchg || d & 1 == 1;
                        b.atomic(region, size, op, fetch, x, imm % 64, y)
                    }
                    9 => Some(b.cmpxchg(Region::Any, MemSize::U64, x, 0, y, x)),
                    10 => {
                        b.tail_call(vals[0], progs, y);
                        None
                    }
                    _ => {
                        let addr = b.map_value_addr(global, 0);
                        Some(b.load(
                            Region::Global(global),
                            MemSize::U32,
                            false,
                            addr,
                            imm.rem_euclid(61),
                        ))
                    }
                };
                vals.extend(v);
            }
            b.set_srcloc(SrcLoc::NONE);
            let (e0, e1) = ends.get(i).copied().unwrap_or((0, 0));
            let target = |k: u8| blocks[1 + (k as usize) % (nblocks - 1)];
            if i + 1 == nblocks || e0 % 4 == 0 {
                b.ret(pick(&vals, e1));
            } else {
                let t = target(e1);
                let ti = blocks.iter().position(|&x| x == t).unwrap();
                let t_args: Vec<_> = (0..ti % 3)
                    .map(|j| pick(&vals, e0.wrapping_add(j as u8)))
                    .collect();
                if e0 % 4 == 1 {
                    b.jump(t, &t_args);
                } else {
                    let f = target(e0);
                    let fi = blocks.iter().position(|&x| x == f).unwrap();
                    let f_args: Vec<_> = (0..fi % 3)
                        .map(|j| pick(&vals, e1.wrapping_add(j as u8)))
                        .collect();
                    let cond = ir::instructions::ALL_CONDS[(e0 % 11) as usize];
                    b.brif(
                        cond,
                        Width::W64,
                        pick(&vals, e0),
                        pick(&vals, e1),
                        t,
                        &t_args,
                        f,
                        &f_args,
                    );
                }
            }
        }
    }
    let f = m.add_function(func);
    m.add_program(f, "xdp");
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_functions_verify_and_round_trip(
        script in prop::collection::vec(any::<Op>(), 0..60),
        nblocks in 2usize..7,
        ends in prop::collection::vec(any::<(u8, u8)>(), 7),
    ) {
        let m = build_random(&script, nblocks, &ends);
        if let Err(e) = verify_module(&m) {
            panic!("{e}\n{}", module_to_string(&m));
        }
        assert_round_trip(&m);
    }
}

// ---- Mutation fuzzing of the parser ----

/// A small deterministic generator, so that a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    "v1",
    "v0",
    "v999999",
    "v4294967296",
    "block1",
    "block0",
    "block1048576",
    "(",
    ")",
    ",",
    "=",
    ":",
    "@",
    "@3",
    "@4294967295",
    "+",
    "-",
    "-1",
    "0x",
    "0xffffffffffffffffff",
    "\"",
    "\\",
    "%",
    "%\"",
    "{",
    "}",
    ";",
    "\n",
    "iconst",
    "jump",
    "brif",
    "return",
    "load",
    ".",
    ".sx",
    "ss0",
    "ss9",
    "map0",
    "map7",
    "fn0",
    "fn3",
    "i64",
    "i8",
    "stack",
    "map_value(?)",
    "function",
    "program",
    "line0",
    "\\x",
    "é",
    "\t",
    "w32",
    "u64",
    "call_helper",
    "tail_call",
];

fn mutate(rng: &mut XorShift, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(chars.len() + 1);
        match rng.below(6) {
            0 if !chars.is_empty() => {
                let len = 1 + rng.below(8);
                let end = (at + len).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            1 => {
                let frag = FRAGMENTS[rng.below(FRAGMENTS.len())];
                for (k, c) in frag.chars().enumerate() {
                    chars.insert(at + k, c);
                }
            }
            2 if at < chars.len() => chars[at] = (32 + rng.below(95) as u8) as char,
            3 if at < chars.len() => {
                // Duplicate a stretch of text, such as a whole instruction.
                let len = 1 + rng.below(40);
                let end = (at + len).min(chars.len());
                let piece: Vec<char> = chars[at..end].to_vec();
                let to = rng.below(chars.len() + 1);
                for (k, c) in piece.into_iter().enumerate() {
                    chars.insert(to + k, c);
                }
            }
            4 if at < chars.len() && chars[at].is_ascii_digit() => {
                chars[at] = (b'0' + rng.below(10) as u8) as char;
            }
            _ => {
                let a = rng.below(chars.len() + 1);
                let (lo, hi) = (a.min(at), a.max(at));
                chars[lo..hi].reverse();
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_text_never_panics() {
    let rounds: usize = std::env::var("NICC_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000);
    let seeds = [
        module_to_string(&example_module()),
        ALL_FORMS.to_string(),
        GAPS.to_string(),
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut verified) = (0, 0);
    for _ in 0..rounds {
        let seed = &seeds[rng.below(seeds.len())];
        let text = mutate(&mut rng, seed);
        let _ = parse_function(&text);
        if let Ok(m) = parse_module(&text) {
            accepted += 1;
            // Whatever parses must verify or be rejected without panicking, and must print to
            // text that parses back into an equal module.
            if verify_module(&m).is_ok() {
                verified += 1;
            }
            let printed = module_to_string(&m);
            let again =
                parse_module(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}\nfrom\n{text}"));
            assert!(again == m, "reparse differs:\n{printed}\nfrom\n{text}");
        }
    }
    // The mutations must leave some inputs valid, or the fuzzer only tests the lexer.
    assert!(
        accepted > rounds / 100,
        "only {accepted} of {rounds} mutants parsed"
    );
    assert!(verified > 0);
}
