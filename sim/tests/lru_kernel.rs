//! LRU hash maps in the interpreter against the running kernel: a hand-built XDP program looks
//! keys up, inserts, replaces and deletes them in a small LRU map, and thousands of packets with
//! sequential, hot, random and flow-like keys run through both. Every result the program writes
//! back into the packet and the map contents at regular checkpoints must be identical, for
//! `LRU_HASH` and `LRU_PERCPU_HASH`, with the common LRU and with `BPF_F_NO_COMMON_LRU`.
//!
//! The test needs `bpf()` (root on Linux) and fails, saying why, when it is not usable: a test
//! that skipped itself could never catch the model drifting from the kernel.

use frontend::insn::{encode_all, CallTarget, Imm64, Insn, Operand, Reg, Size};
use frontend::mapdata::MapsSnapshot;
use frontend::object::{Function, MapDef, MapOrigin, MapType, Program, ProgramKind};
use frontend::Object;
use hw::linux::{kernel_available, possible_cpus, KernelObject, XdpCtx};
use ir::semantics::{AluOp, JmpCond, Width};
use sim::interp::run_xdp;
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};

const BPF_F_NO_COMMON_LRU: u32 = 2;

/// What a packet asks the program to do with its key.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Look the key up and count, inserting it with `BPF_NOEXIST` when missing (the cilium
    /// `xdp_stats_map` pattern).
    Count = 0,
    Delete = 1,
    UpdateAny = 2,
    UpdateExist = 3,
    UpdateNoexist = 4,
    /// Look the key up only (sets the reference bit when found).
    Lookup = 5,
}

/// An instruction or a jump to a label, resolved into offsets once the program is complete.
enum Item {
    I(Insn),
    Jump(JmpCond, u8, Operand, &'static str),
    Goto(&'static str),
    Label(&'static str),
}

fn assemble(items: &[Item]) -> Vec<Insn> {
    let mut at = std::collections::HashMap::new();
    let mut pos = 0i32;
    for item in items {
        match item {
            Item::Label(l) => {
                at.insert(*l, pos);
            }
            _ => pos += 1,
        }
    }
    let mut out = Vec::new();
    for item in items {
        let here = out.len() as i32 + 1;
        match item {
            Item::I(insn) => out.push(*insn),
            Item::Jump(cond, dst, src, l) => out.push(Insn::Jmp {
                width: Width::W64,
                cond: *cond,
                dst: Reg(*dst),
                src: *src,
                off: (at[l] - here) as i16,
            }),
            Item::Goto(l) => out.push(Insn::Ja {
                off: at[l] - here,
                long: false,
            }),
            Item::Label(_) => {}
        }
    }
    out
}

fn alu(op: AluOp, dst: u8, src: Operand) -> Item {
    Item::I(Insn::Alu {
        width: Width::W64,
        op,
        dst: Reg(dst),
        src,
    })
}
fn mov(dst: u8, imm: i32) -> Item {
    alu(AluOp::Mov, dst, Operand::Imm(imm))
}
fn movr(dst: u8, src: u8) -> Item {
    alu(AluOp::Mov, dst, Operand::Reg(Reg(src)))
}
fn add(dst: u8, imm: i32) -> Item {
    alu(AluOp::Add, dst, Operand::Imm(imm))
}
fn ldx(size: Size, dst: u8, src: u8, off: i16) -> Item {
    Item::I(Insn::Load {
        size,
        signed: false,
        dst: Reg(dst),
        src: Reg(src),
        off,
    })
}
fn stx(size: Size, dst: u8, off: i16, src: u8) -> Item {
    Item::I(Insn::StoreReg {
        size,
        dst: Reg(dst),
        src: Reg(src),
        off,
    })
}
fn st(size: Size, dst: u8, off: i16, imm: i32) -> Item {
    Item::I(Insn::StoreImm {
        size,
        dst: Reg(dst),
        off,
        imm,
    })
}
fn jeq(dst: u8, imm: i32, label: &'static str) -> Item {
    Item::Jump(JmpCond::Eq, dst, Operand::Imm(imm), label)
}
fn call(helper: i32) -> Item {
    Item::I(Insn::Call(CallTarget::Helper(helper)))
}
/// `r1 = &map 0`, with the `lddw` second slot.
fn map_ptr() -> [Item; 2] {
    [
        Item::I(Insn::Imm64 {
            dst: Reg(1),
            imm: Imm64::MapIdx(0),
        }),
        Item::I(Insn::Imm64Tail),
    ]
}
/// `r2 = fp - 4` (the key) and, with `value`, `r3 = fp - 16` (the value).
fn args(value: bool) -> Vec<Item> {
    let mut v = vec![movr(2, 10), add(2, -4)];
    if value {
        v.extend([movr(3, 10), add(3, -16)]);
    }
    v
}

/// The program: the packet holds the key (bytes 0..4), the operation (4..8) and a sequence
/// number (8..12) that updates store as the value; the helper's result goes to bytes 12..16.
fn lru_program() -> Program {
    let mut items = vec![
        ldx(Size::W, 2, 1, 0),
        ldx(Size::W, 3, 1, 4),
        movr(4, 2),
        add(4, 16),
        Item::Jump(JmpCond::Gt, 4, Operand::Reg(Reg(3)), "out"),
        ldx(Size::W, 6, 2, 0),
        ldx(Size::W, 7, 2, 4),
        ldx(Size::W, 8, 2, 8),
        movr(9, 2),
        stx(Size::W, 10, -4, 6),
        stx(Size::DW, 10, -16, 8),
        jeq(7, Op::Delete as i32, "delete"),
        jeq(7, Op::UpdateAny as i32, "any"),
        jeq(7, Op::UpdateExist as i32, "exist"),
        jeq(7, Op::UpdateNoexist as i32, "noexist"),
        jeq(7, Op::Lookup as i32, "lookup"),
    ];
    // Count: look up, add one in place, or insert 1 with BPF_NOEXIST.
    items.extend(map_ptr());
    items.extend(args(false));
    items.extend([
        call(1),
        jeq(0, 0, "insert"),
        ldx(Size::DW, 1, 0, 0),
        add(1, 1),
        stx(Size::DW, 0, 0, 1),
        mov(0, 1),
        Item::Goto("done"),
        Item::Label("insert"),
        st(Size::DW, 10, -16, 1),
    ]);
    items.extend(map_ptr());
    items.extend(args(true));
    items.extend([
        mov(4, 1),
        call(2),
        Item::Goto("done"),
        Item::Label("delete"),
    ]);
    items.extend(map_ptr());
    items.extend(args(false));
    items.extend([call(3), Item::Goto("done"), Item::Label("lookup")]);
    items.extend(map_ptr());
    items.extend(args(false));
    items.extend([
        call(1),
        jeq(0, 0, "done"),
        mov(0, 1),
        Item::Goto("done"),
        Item::Label("any"),
        mov(4, 0),
        Item::Goto("update"),
        Item::Label("exist"),
        mov(4, 2),
        Item::Goto("update"),
        Item::Label("noexist"),
        mov(4, 1),
        Item::Label("update"),
    ]);
    items.extend(map_ptr());
    items.extend(args(true));
    items.extend([
        call(2),
        Item::Label("done"),
        stx(Size::W, 9, 12, 0),
        Item::Label("out"),
        mov(0, 2),
        Item::I(Insn::Exit),
    ]);
    let insns = encode_all(&assemble(&items));
    Program {
        name: "lru_ops".into(),
        section: "xdp".into(),
        kind: ProgramKind::Xdp,
        functions: vec![Function {
            name: "lru_ops".into(),
            section: "xdp".into(),
            start: 0,
            len: insns.len(),
            section_offset: 0,
        }],
        insns,
        lines: vec![],
    }
}

fn lru_object(map_type: MapType, flags: u32, max_entries: u32) -> Object {
    Object {
        name: "lru_kernel.o".into(),
        license: Some("GPL".into()),
        programs: vec![lru_program()],
        maps: vec![MapDef {
            name: "lru".into(),
            map_type,
            key_size: 4,
            value_size: 8,
            max_entries,
            flags,
            inner: None,
            initial_value: None,
            origin: MapOrigin::Legacy,
        }],
        ..Object::default()
    }
}

/// SplitMix64, so that the random workloads are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The key patterns, as (key, operation) pairs.
fn workload(pattern: &str, max: u32, seed: u64) -> Vec<(u32, Op)> {
    let mut rng = Rng(seed);
    let n = (12 * max as usize).max(2500);
    let max = max as u64;
    (0..n)
        .map(|i| match pattern {
            // Every key new: the map fills once and then evicts at every insert.
            "sequential" => (i as u32, Op::Count),
            // A few hot keys that should stay, among a stream of cold ones.
            "hot" => {
                if rng.below(10) < 7 {
                    (rng.below(6) as u32, Op::Count)
                } else {
                    (1000 + rng.below(20 * max) as u32, Op::Count)
                }
            }
            // Every operation on a key space twice the map's size.
            "random" => {
                let key = rng.below(2 * max) as u32;
                let op = match rng.below(100) {
                    0..=59 => Op::Count,
                    60..=67 => Op::Delete,
                    68..=75 => Op::UpdateAny,
                    76..=83 => Op::UpdateExist,
                    84..=91 => Op::UpdateNoexist,
                    _ => Op::Lookup,
                };
                (key, op)
            }
            // Source addresses of many flows, a skewed half of them recurring.
            "flows" => {
                let key = if rng.below(2) == 0 {
                    rng.below(max / 2 + 1)
                } else {
                    rng.below(4 * max)
                };
                let op = if rng.below(10) == 0 {
                    Op::Lookup
                } else {
                    Op::Count
                };
                (0x0a00_0000 | key as u32, op)
            }
            _ => unreachable!("unknown pattern {pattern}"),
        })
        .collect()
}

fn packet(key: u32, op: Op, seq: u32) -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[0..4].copy_from_slice(&key.to_le_bytes());
    p[4..8].copy_from_slice(&(op as u32).to_le_bytes());
    p[8..12].copy_from_slice(&seq.to_le_bytes());
    p
}

/// Runs one configuration through both; returns the first difference, if any, and the number
/// of packets compared.
fn compare(
    map_type: MapType,
    flags: u32,
    max: u32,
    pattern: &str,
    cpus: usize,
) -> (Option<String>, usize) {
    let obj = lru_object(map_type, flags, max);
    let kernel = match KernelObject::load(&obj, &[0]) {
        Ok(k) => k,
        Err(e) => {
            return (
                Some(format!("the kernel would not load the program: {e}")),
                0,
            )
        }
    };
    let config = RuntimeConfig {
        cpus: cpus as u32,
        cpu: 0,
        ..RuntimeConfig::default()
    };
    let mut rt = match Runtime::new(&obj, config) {
        Ok(rt) => rt,
        Err(e) => return (Some(format!("the runtime would not start: {e:?}")), 0),
    };
    let work = workload(pattern, max, 0x5eed ^ max as u64);
    let snapshots = |k: &KernelObject, rt: &Runtime| -> Result<(), String> {
        let ks: MapsSnapshot = k.snapshot().map_err(|e| format!("kernel snapshot: {e}"))?;
        let is = rt.snapshot();
        if ks == is {
            return Ok(());
        }
        let (kl, il) = (&ks.maps["lru"].entries, &is.maps["lru"].entries);
        let only_k: Vec<_> = kl.iter().filter(|e| !il.contains(e)).collect();
        let only_i: Vec<_> = il.iter().filter(|e| !kl.contains(e)).collect();
        Err(format!(
            "maps differ: kernel {} entries, interpreter {}; only in the kernel {:?}; only in the interpreter {:?}",
            kl.len(),
            il.len(),
            only_k.iter().take(6).collect::<Vec<_>>(),
            only_i.iter().take(6).collect::<Vec<_>>()
        ))
    };
    for (i, (key, op)) in work.iter().enumerate() {
        let p = packet(*key, *op, i as u32 + 1);
        let k = match kernel.test_run_xdp(0, &p, &XdpCtx::default()) {
            Ok(r) => r.packet,
            Err(e) => return (Some(format!("kernel run {i}: {e}")), i),
        };
        let s = match run_xdp(&obj, 0, &mut rt, &XdpInput::new(p)) {
            Ok(o) => o.packet,
            Err(e) => return (Some(format!("interpreter run {i}: {e:?}")), i),
        };
        if k != s {
            return (
                Some(format!(
                    "packet {i} (key {key:#x}, {op:?}): kernel result {:?}, interpreter {:?}",
                    &k[12..16],
                    &s[12..16]
                )),
                i,
            );
        }
        if (i + 1) % 250 == 0 || i + 1 == work.len() {
            if let Err(m) = snapshots(&kernel, &rt) {
                return (Some(format!("after packet {i}: {m}")), i + 1);
            }
        }
    }
    (None, work.len())
}

#[test]
fn lru_maps_evict_like_the_kernel() {
    if let Err(why) = kernel_available() {
        panic!("this test needs the kernel's bpf() (run as root on Linux): {why}");
    }
    let cpus = possible_cpus().expect("possible CPUs");
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut packets = 0;
    for map_type in [MapType::LruHash, MapType::LruPercpuHash] {
        for flags in [0, BPF_F_NO_COMMON_LRU] {
            for max in [7, 8, 64, 130, 300] {
                for pattern in ["sequential", "hot", "random", "flows"] {
                    let (diff, n) = compare(map_type, flags, max, pattern, cpus);
                    runs += 1;
                    packets += n;
                    if let Some(d) = diff {
                        failures.push(format!(
                            "{map_type:?} flags {flags:#x} max_entries {max} {pattern}: {d}"
                        ));
                    }
                }
            }
        }
    }
    println!(
        "{runs} configurations, {packets} packets compared on {cpus} possible CPUs, {} differ",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} configurations differ from the kernel:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
