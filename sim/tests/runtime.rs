//! Runtime and interpreter tests on hand-built objects: every map type, the helpers, the XDP
//! frame limits, tail calls, bpf-to-bpf calls and faults.

use frontend::insn::{encode_all, CallTarget, Imm64, Insn, Operand, Reg, Size};
use frontend::mapdata::MapsSnapshot;
use frontend::object::{Function, LineInfo, MapDef, MapOrigin, MapType, Program, ProgramKind};
use frontend::Object;
use ir::semantics::{AluOp, JmpCond, Width};
use sim::interp::run_xdp;
use sim::runtime::{Fib, Redirect, Route, Runtime, RuntimeConfig, XdpAction, XdpInput};

fn mov(d: u8, imm: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst: Reg(d),
        src: Operand::Imm(imm),
    }
}
fn movr(d: u8, s: u8) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst: Reg(d),
        src: Operand::Reg(Reg(s)),
    }
}
fn add(d: u8, imm: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Add,
        dst: Reg(d),
        src: Operand::Imm(imm),
    }
}
fn addr(d: u8, s: u8) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Add,
        dst: Reg(d),
        src: Operand::Reg(Reg(s)),
    }
}
fn ldx(size: Size, d: u8, s: u8, off: i16) -> Insn {
    Insn::Load {
        size,
        signed: false,
        dst: Reg(d),
        src: Reg(s),
        off,
    }
}
fn stx(size: Size, d: u8, s: u8, off: i16) -> Insn {
    Insn::StoreReg {
        size,
        dst: Reg(d),
        src: Reg(s),
        off,
    }
}
fn st(size: Size, d: u8, off: i16, imm: i32) -> Insn {
    Insn::StoreImm {
        size,
        dst: Reg(d),
        off,
        imm,
    }
}
fn jmp(cond: JmpCond, d: u8, imm: i32, off: i16) -> Insn {
    Insn::Jmp {
        width: Width::W64,
        cond,
        dst: Reg(d),
        src: Operand::Imm(imm),
        off,
    }
}
fn call(id: i32) -> Insn {
    Insn::Call(CallTarget::Helper(id))
}
fn map(d: u8, idx: i32) -> Insn {
    Insn::Imm64 {
        dst: Reg(d),
        imm: Imm64::MapIdx(idx),
    }
}
fn exit() -> Insn {
    Insn::Exit
}
/// `r2 = fp + off` (a stack pointer argument).
fn fp(d: u8, off: i32) -> [Insn; 2] {
    [movr(d, 10), add(d, off)]
}

fn program(name: &str, insns: &[Insn]) -> Program {
    let raw = encode_all(insns);
    Program {
        name: name.into(),
        section: "xdp".into(),
        kind: ProgramKind::Xdp,
        functions: vec![Function {
            name: name.into(),
            section: "xdp".into(),
            start: 0,
            len: raw.len(),
            section_offset: 0,
        }],
        lines: (0..raw.len())
            .map(|i| LineInfo {
                insn: i,
                file: "test.c".into(),
                line: 100 + i as u32,
                column: 1,
                source: format!("line {i}"),
            })
            .collect(),
        insns: raw,
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

fn object(progs: Vec<Program>, maps: Vec<MapDef>) -> Object {
    Object {
        name: "test.o".into(),
        programs: progs,
        maps,
        ..Object::default()
    }
}

fn packet(n: usize) -> XdpInput {
    XdpInput::new((0..n).map(|i| i as u8).collect())
}

fn run(obj: &Object, rt: &mut Runtime, n: usize) -> sim::runtime::XdpOutcome {
    run_xdp(obj, 0, rt, &packet(n)).expect("run")
}

fn rt(obj: &Object) -> Runtime {
    Runtime::new(obj, RuntimeConfig::default()).unwrap()
}

#[test]
fn pass_keeps_the_packet_and_context_fields_read() {
    // r0 = ctx->ingress_ifindex + ctx->rx_queue_index; data_end - data must be 60.
    let obj = object(
        vec![program(
            "p",
            &[
                ldx(Size::W, 2, 1, 0),
                ldx(Size::W, 3, 1, 4),
                Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Sub,
                    dst: Reg(3),
                    src: Operand::Reg(Reg(2)),
                },
                jmp(JmpCond::Ne, 3, 60, 3),
                ldx(Size::W, 0, 1, 12),
                ldx(Size::W, 4, 1, 16),
                addr(0, 4),
                exit(),
            ],
        )],
        vec![],
    );
    let mut r = rt(&obj);
    let out = run(&obj, &mut r, 60);
    assert_eq!(out.retval, 1);
    assert_eq!(out.action, XdpAction::Drop);
    assert_eq!(out.packet, packet(60).packet);
    let mut input = packet(60);
    input.ingress_ifindex = 1;
    input.rx_queue_index = 1;
    assert_eq!(
        run_xdp(&obj, 0, &mut r, &input).unwrap().action,
        XdpAction::Pass
    );
    assert_eq!(XdpAction::from_retval(7).name(), "aborted");
}

#[test]
fn out_of_bounds_packet_read_is_a_fault_with_index_and_line() {
    // Reads data[60..64] of a 60-byte packet without a bounds check.
    let obj = object(
        vec![program(
            "oob",
            &[ldx(Size::W, 2, 1, 0), ldx(Size::W, 0, 2, 60), exit()],
        )],
        vec![],
    );
    let mut r = rt(&obj);
    let e = run_xdp(&obj, 0, &mut r, &packet(60)).unwrap_err();
    assert_eq!(e.insn, Some(1));
    assert_eq!(e.program.as_deref(), Some("oob"));
    assert_eq!(e.line.as_ref().map(|l| l.line), Some(101));
    assert!(
        e.message.contains("out of bounds of the packet"),
        "{}",
        e.message
    );
    let text = e.to_string();
    assert!(
        text.contains("instruction 1") && text.contains("test.c:101"),
        "{text}"
    );
}

#[test]
fn endless_loop_hits_the_budget() {
    let obj = object(
        vec![program(
            "spin",
            &[
                mov(0, 0),
                Insn::Ja {
                    off: -1,
                    long: false,
                },
            ],
        )],
        vec![],
    );
    let mut r = Runtime::new(
        &obj,
        RuntimeConfig {
            insn_budget: 5000,
            ..RuntimeConfig::default()
        },
    )
    .unwrap();
    let e = run_xdp(&obj, 0, &mut r, &packet(20)).unwrap_err();
    assert!(e.message.contains("budget of 5000"), "{}", e.message);
    assert_eq!(e.insn, Some(1));
}

#[test]
fn context_writes_and_null_dereference_fault() {
    let obj = object(
        vec![program("w", &[st(Size::W, 1, 12, 5), mov(0, 2), exit()])],
        vec![],
    );
    let e = run_xdp(&obj, 0, &mut rt(&obj), &packet(20)).unwrap_err();
    assert!(e.message.contains("XDP context"), "{}", e.message);
    let obj = object(
        vec![program("n", &[mov(1, 0), ldx(Size::B, 0, 1, 0), exit()])],
        vec![],
    );
    let e = run_xdp(&obj, 0, &mut rt(&obj), &packet(20)).unwrap_err();
    assert!(e.message.contains("NULL"), "{}", e.message);
}

/// key = *(u32*)(fp-4) = 3; value = *(u64*)(fp-16) = 0x42; update(flags r4) then lookup and
/// return the value + update result * 0x1000.
fn array_prog(flags: i32, key: i32) -> Vec<Insn> {
    let mut p = vec![
        st(Size::W, 10, -4, key),
        st(Size::DW, 10, -16, 0x42),
        map(1, 0),
    ];
    p.extend(fp(2, -4));
    p.extend(fp(3, -16));
    p.extend([mov(4, flags), call(2), movr(6, 0)]);
    p.push(map(1, 0));
    p.extend(fp(2, -4));
    p.extend([
        call(1),
        jmp(JmpCond::Eq, 0, 0, 2),
        ldx(Size::DW, 0, 0, 0),
        Insn::Ja {
            off: 1,
            long: false,
        },
        mov(0, 0),
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Lsh,
            dst: Reg(6),
            src: Operand::Imm(12),
        },
        addr(0, 6),
        exit(),
    ]);
    p
}

#[test]
fn array_map_update_lookup_flags_and_snapshot() {
    let obj = object(
        vec![program("a", &array_prog(0, 3))],
        vec![mapdef("arr", MapType::Array, 4, 8, 4)],
    );
    let mut r = rt(&obj);
    assert_eq!(run(&obj, &mut r, 20).retval, 0x42);
    let snap = r.snapshot();
    let c = &snap.maps["arr"];
    assert_eq!(c.entries.len(), 1, "zero entries are omitted");
    assert_eq!(c.entries[0].key, "03000000");
    assert_eq!(c.entries[0].value.as_deref(), Some("4200000000000000"));
    // BPF_NOEXIST on an array: -EEXIST; an index past the end: -E2BIG and no value.
    let obj = object(
        vec![program("a", &array_prog(1, 3))],
        vec![mapdef("arr", MapType::Array, 4, 8, 4)],
    );
    let out = run(&obj, &mut rt(&obj), 20);
    assert_eq!(out.retval, ((-17i64) << 12) as u64);
    let obj = object(
        vec![program("a", &array_prog(0, 4))],
        vec![mapdef("arr", MapType::Array, 4, 8, 4)],
    );
    assert_eq!(run(&obj, &mut rt(&obj), 20).retval, ((-7i64) << 12) as u64);
    let obj = object(
        vec![program("a", &array_prog(3, 1))],
        vec![mapdef("arr", MapType::Array, 4, 8, 4)],
    );
    assert_eq!(run(&obj, &mut rt(&obj), 20).retval, ((-22i64) << 12) as u64);
}

#[test]
fn hash_map_flags_capacity_and_delete() {
    let obj = object(
        vec![program("h", &array_prog(2, 9))],
        vec![mapdef("h", MapType::Hash, 4, 8, 2)],
    );
    let mut r = rt(&obj);
    // BPF_EXIST on a missing key: -ENOENT, and the lookup finds nothing.
    assert_eq!(run(&obj, &mut r, 20).retval, ((-2i64) << 12) as u64);
    let m = r.map_mut(0).unwrap();
    assert_eq!(m.update(&1u32.to_le_bytes(), &[1; 8], 1, 0), 0);
    assert_eq!(m.update(&1u32.to_le_bytes(), &[2; 8], 1, 0), -17);
    assert_eq!(m.update(&2u32.to_le_bytes(), &[2; 8], 0, 0), 0);
    assert_eq!(m.update(&3u32.to_le_bytes(), &[3; 8], 0, 0), -7, "full");
    assert_eq!(
        m.update(&2u32.to_le_bytes(), &[4; 8], 2, 0),
        0,
        "replacing needs no room"
    );
    assert_eq!(m.delete(&3u32.to_le_bytes()), -2);
    assert_eq!(m.delete(&2u32.to_le_bytes()), 0);
    assert_eq!(m.update(&3u32.to_le_bytes(), &[3; 8], 0, 0), 0);
    let snap = r.snapshot();
    let keys: Vec<&str> = snap.maps["h"]
        .entries
        .iter()
        .map(|e| e.key.as_str())
        .collect();
    assert_eq!(keys, ["01000000", "03000000"]);
}

#[test]
fn lru_hash_evicts_the_least_recently_used() {
    let obj = object(vec![], vec![mapdef("lru", MapType::LruHash, 4, 4, 3)]);
    let mut r = rt(&obj);
    let m = r.map_mut(0).unwrap();
    for k in 0u32..3 {
        assert_eq!(m.update(&k.to_le_bytes(), &k.to_le_bytes(), 0, 0), 0);
    }
    assert!(m.lookup(&0u32.to_le_bytes()).is_some()); // 0 is now more recent than 1
    assert_eq!(m.update(&7u32.to_le_bytes(), &[7; 4], 0, 0), 0);
    assert!(m.get(&1u32.to_le_bytes()).is_none(), "1 was evicted");
    assert!(m.get(&0u32.to_le_bytes()).is_some());
    assert!(m.get(&7u32.to_le_bytes()).is_some());
}

#[test]
fn lpm_trie_longest_prefix_match() {
    let obj = object(vec![], vec![mapdef("lpm", MapType::LpmTrie, 8, 4, 8)]);
    let mut r = rt(&obj);
    let m = r.map_mut(0).unwrap();
    let key = |plen: u32, a: [u8; 4]| {
        let mut k = plen.to_le_bytes().to_vec();
        k.extend(a);
        k
    };
    assert_eq!(m.update(&key(8, [10, 0, 0, 0]), &[8, 0, 0, 0], 0, 0), 0);
    assert_eq!(m.update(&key(24, [10, 1, 2, 0]), &[24, 0, 0, 0], 0, 0), 0);
    assert_eq!(m.update(&key(33, [10, 1, 2, 0]), &[0; 4], 0, 0), -22);
    assert_eq!(
        m.update(&key(8, [10, 9, 9, 9]), &[9; 4], 1, 0),
        -17,
        "same /8 prefix exists"
    );
    let v = |m: &mut sim::runtime::MapState, k: Vec<u8>| m.get(&k);
    let _ = v;
    let hit = |m: &mut sim::runtime::MapState, a: [u8; 4], plen: u32| match m.lookup(&key(plen, a))
    {
        Some(sim::runtime::maps::Found::Value(s)) => m.value(s, 0).map(|v| v[0]),
        _ => None,
    };
    assert_eq!(hit(m, [10, 1, 2, 77], 32), Some(24));
    assert_eq!(hit(m, [10, 1, 3, 77], 32), Some(8));
    assert_eq!(
        hit(m, [10, 1, 2, 77], 16),
        Some(8),
        "the key's own length caps the match"
    );
    assert_eq!(hit(m, [11, 1, 2, 77], 32), None);
    assert_eq!(m.delete(&key(16, [10, 1, 0, 0])), -2);
    assert_eq!(m.delete(&key(24, [10, 1, 2, 0])), 0);
    assert_eq!(hit(m, [10, 1, 2, 77], 32), Some(8));
}

#[test]
fn per_cpu_array_uses_the_configured_cpu() {
    let obj = object(
        vec![program("pc", &array_prog(0, 0))],
        vec![mapdef("pc", MapType::PercpuArray, 4, 8, 2)],
    );
    let mut r = Runtime::new(
        &obj,
        RuntimeConfig {
            cpus: 4,
            cpu: 2,
            ..RuntimeConfig::default()
        },
    )
    .unwrap();
    assert_eq!(run(&obj, &mut r, 20).retval, 0x42);
    let snap = r.snapshot();
    let e = &snap.maps["pc"].entries[0];
    let per_cpu = e.per_cpu.as_ref().unwrap();
    assert_eq!(per_cpu.len(), 4);
    assert_eq!(per_cpu[2], "4200000000000000");
    assert_eq!(per_cpu[0], "0000000000000000");
    assert!(e.value.is_none());
}

#[test]
fn snapshots_round_trip_and_reject_strangers() {
    let obj = object(
        vec![],
        vec![
            mapdef("h", MapType::PercpuHash, 4, 4, 8),
            mapdef("a", MapType::Array, 4, 4, 8),
        ],
    );
    let mut r = Runtime::new(
        &obj,
        RuntimeConfig {
            cpus: 2,
            ..RuntimeConfig::default()
        },
    )
    .unwrap();
    let json = r#"{"maps":{"h":{"type":"percpu_hash","key_size":4,"value_size":4,"entries":[
        {"key":"01000000","per_cpu":["0a000000","0b000000"]}]},
        "a":{"type":"array","key_size":4,"value_size":4,"entries":[{"key":"05000000","value":"ffffffff"}]}}}"#;
    let snap: MapsSnapshot = serde_json::from_str(json).unwrap();
    r.load_snapshot(&snap).unwrap();
    assert_eq!(r.snapshot(), snap);
    let mut bad = snap.clone();
    let c = bad.maps.remove("a").unwrap();
    bad.maps.insert("nope".into(), c);
    assert!(r.load_snapshot(&bad).is_err());
}

#[test]
fn tail_calls_chain_at_most_33_times() {
    // Program 0 counts its runs in an array and tail-calls itself through slot 0.
    let body = {
        let mut p = vec![movr(6, 1), st(Size::W, 10, -4, 0), map(1, 1)];
        p.extend(fp(2, -4));
        p.extend([
            call(1),
            jmp(JmpCond::Eq, 0, 0, 2),
            mov(1, 1),
            Insn::Atomic {
                size: Size::DW,
                op: frontend::insn::AtomicOp::Add,
                fetch: false,
                dst: Reg(0),
                src: Reg(1),
                off: 0,
            },
            movr(1, 6),
            map(2, 0),
            mov(3, 0),
            call(12),
            mov(0, 2),
            exit(),
        ]);
        p
    };
    let obj = object(
        vec![program("tc", &body)],
        vec![
            mapdef("progs", MapType::ProgArray, 4, 4, 4),
            mapdef("count", MapType::Array, 4, 8, 1),
        ],
    );
    let mut r = rt(&obj);
    r.map_mut(0)
        .unwrap()
        .set(&0u32.to_le_bytes(), &0u32.to_le_bytes())
        .unwrap();
    assert_eq!(run(&obj, &mut r, 20).action, XdpAction::Pass);
    let count = r.map_mut(1).unwrap().get(&0u32.to_le_bytes()).unwrap();
    assert_eq!(
        u64::from_le_bytes(count[0].clone().try_into().unwrap()),
        34,
        "1 run + 33 tail calls"
    );
}

#[test]
fn bpf_to_bpf_calls_preserve_callee_saved_registers_and_limit_depth() {
    // main: r6 = 7; call f; r0 += r6; exit.   f: r6 = 100; r0 = 5; exit.
    let insns = [
        mov(6, 7),
        Insn::Call(CallTarget::Local(2)),
        addr(0, 6),
        exit(),
        mov(6, 100),
        mov(0, 5),
        exit(),
    ];
    let obj = object(vec![program("c", &insns)], vec![]);
    assert_eq!(run(&obj, &mut rt(&obj), 20).retval, 12);
    // A function that calls itself forever runs out of frames.
    let obj = object(
        vec![program("r", &[Insn::Call(CallTarget::Local(-1)), exit()])],
        vec![],
    );
    let e = run_xdp(&obj, 0, &mut rt(&obj), &packet(20)).unwrap_err();
    assert!(e.message.contains("8 frames"), "{}", e.message);
}

#[test]
fn adjust_head_meta_and_tail_through_a_program() {
    // adjust_meta(-8); adjust_head(-4); adjust_tail(+6); write 0xee into data[0]; return sum.
    let insns = [
        movr(6, 1),
        mov(2, -8),
        call(54),
        movr(7, 0),
        movr(1, 6),
        mov(2, -4),
        call(44),
        addr(7, 0),
        movr(1, 6),
        mov(2, 6),
        call(65),
        addr(7, 0),
        ldx(Size::W, 2, 6, 0),
        ldx(Size::W, 3, 6, 4),
        movr(4, 2),
        add(4, 1),
        Insn::Jmp {
            width: Width::W64,
            cond: JmpCond::Gt,
            dst: Reg(4),
            src: Operand::Reg(Reg(3)),
            off: 1,
        },
        st(Size::B, 2, 0, 0xee),
        movr(0, 7),
        exit(),
    ];
    let obj = object(vec![program("adj", &insns)], vec![]);
    let out = run(&obj, &mut rt(&obj), 20);
    assert_eq!(out.retval, 0);
    assert_eq!(out.meta.len(), 8);
    assert_eq!(out.packet.len(), 30);
    assert_eq!(out.packet[0], 0xee);
    assert_eq!(&out.packet[4..24], &packet(20).packet[..]);
    assert_eq!(&out.packet[24..], &[0; 6]);
    assert_eq!(out.test_run_data().len(), 38);
    // Shrinking below an Ethernet header is refused.
    let obj = object(vec![program("t", &[mov(2, -7), call(65), exit()])], vec![]);
    assert_eq!(run(&obj, &mut rt(&obj), 20).retval as i64, -22);
}

#[test]
fn redirect_map_falls_back_to_the_flags_action() {
    // redirect_map(devmap, key 1, flags r3).
    let prog = |flags: i32| {
        program(
            "r",
            &[map(1, 0), mov(2, 1), mov(3, flags), call(51), exit()],
        )
    };
    let maps = vec![mapdef("tx", MapType::Devmap, 4, 4, 4)];
    let obj = object(vec![prog(2)], maps.clone());
    let mut r = rt(&obj);
    let out = run(&obj, &mut r, 20);
    assert_eq!((out.action, out.redirect.clone()), (XdpAction::Pass, None));
    r.map_mut(0)
        .unwrap()
        .set(&1u32.to_le_bytes(), &5u32.to_le_bytes())
        .unwrap();
    let out = run(&obj, &mut r, 20);
    assert_eq!(out.action, XdpAction::Redirect);
    assert!(
        matches!(out.redirect, Some(Redirect::Map { key: 1, value: Some(ref v), .. }) if v == &5u32.to_le_bytes())
    );
    let obj = object(vec![prog(0x40)], maps);
    assert_eq!(
        run(&obj, &mut rt(&obj), 20).action,
        XdpAction::Aborted,
        "unknown flag"
    );
    // bpf_redirect with flags is aborted, without records the ifindex.
    let obj = object(
        vec![program("r", &[mov(1, 3), mov(2, 0), call(23), exit()])],
        vec![],
    );
    let out = run(&obj, &mut rt(&obj), 20);
    assert_eq!(out.redirect, Some(Redirect::Ifindex(3)));
}

#[test]
fn csum_diff_from_a_program() {
    // to = 0xdeadbeefdeadbeef on the stack, from = NULL: the kernel returns 0x3b3b.
    let mut p = vec![
        Insn::Imm64 {
            dst: Reg(1),
            imm: Imm64::Value(0xdead_beef_dead_beef),
        },
        stx(Size::DW, 10, 1, -8),
        mov(1, 0),
        mov(2, 0),
    ];
    p.extend(fp(3, -8));
    p.extend([mov(4, 8), mov(5, 0), call(28), exit()]);
    let obj = object(vec![program("c", &p)], vec![]);
    assert_eq!(run(&obj, &mut rt(&obj), 20).retval, 0x3b3b);
    // A size that is not a multiple of 4 is -EINVAL.
    let mut p = vec![mov(1, 0), mov(2, 0)];
    p.extend(fp(3, -8));
    p.extend([mov(4, 6), mov(5, 0), call(28), exit()]);
    let obj = object(vec![program("c", &p)], vec![]);
    assert_eq!(run(&obj, &mut rt(&obj), 20).retval as i64, -22);
}

#[test]
fn fib_lookup_fills_the_parameters() {
    // struct bpf_fib_lookup at fp-64: family 2, ifindex 1, ipv4_dst 10.1.2.3.
    let mut p = vec![movr(6, 1)];
    for off in (-64..0).step_by(8) {
        p.push(st(Size::DW, 10, off as i16, 0));
    }
    p.extend([
        st(Size::B, 10, -64, 2),
        st(Size::W, 10, -56, 1),
        st(Size::W, 10, -32, i32::from_le_bytes([10, 1, 2, 3])),
        movr(1, 6),
    ]);
    p.extend(fp(2, -64));
    p.extend([
        mov(3, 64),
        mov(4, 0),
        call(69),
        ldx(Size::W, 1, 10, -56),
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Lsh,
            dst: Reg(1),
            src: Operand::Imm(8),
        },
        addr(0, 1),
        exit(),
    ]);
    let obj = object(vec![program("f", &p)], vec![]);
    let fib = Fib {
        routes: vec![Route {
            prefix: "10.1.0.0/16".into(),
            ifindex: 4,
            gateway: None,
            dmac: Some("02:00:00:00:00:09".into()),
            smac: "02:00:00:00:00:04".into(),
            mtu: 1500,
            kind: Default::default(),
            metric: 0,
            src: None,
        }],
        ..Fib::default()
    };
    let mut r = Runtime::new(
        &obj,
        RuntimeConfig {
            fib,
            ..RuntimeConfig::default()
        },
    )
    .unwrap();
    assert_eq!(run(&obj, &mut r, 20).retval, 4 << 8, "success, ifindex 4");
    let mut r = rt(&obj);
    assert_eq!(
        run(&obj, &mut r, 20).retval,
        (1 << 8) | 4,
        "no route: NOT_FWDED, ifindex unchanged"
    );
}

#[test]
fn trace_printk_is_captured() {
    // "x=%d\n\0" on the stack.
    let fmt = b"x=%d %s\0";
    let mut p = vec![];
    p.push(Insn::Imm64 {
        dst: Reg(1),
        imm: Imm64::Value(u64::from_le_bytes(*fmt)),
    });
    p.push(stx(Size::DW, 10, 1, -8));
    p.push(st(Size::W, 10, -16, i32::from_le_bytes(*b"hi\0\0")));
    p.extend(fp(1, -8));
    p.extend([mov(2, 8), mov(3, -5)]);
    p.extend(fp(4, -16));
    p.extend([call(6), exit()]);
    let obj = object(vec![program("t", &p)], vec![]);
    let mut r = rt(&obj);
    let out = run(&obj, &mut r, 20);
    assert_eq!(r.outputs().trace, vec!["x=-5 hi".to_string()]);
    assert_eq!(out.retval, 7);
}

#[test]
fn unimplemented_helper_is_named() {
    let obj = object(vec![program("u", &[mov(0, 0), call(26), exit()])], vec![]);
    let e = run_xdp(&obj, 0, &mut rt(&obj), &packet(20)).unwrap_err();
    assert_eq!(
        e.message,
        "helper bpf_skb_load_bytes (id 26) is not implemented by the interpreter"
    );
    assert_eq!(e.insn, Some(1));
    assert_eq!(e.line.map(|l| l.line), Some(101));
}

#[test]
fn ring_buffer_and_perf_outputs_are_captured() {
    // ringbuf_output(rb, fp-8, 8, 0); reserve 4 bytes, write, submit; perf_event_output with 4
    // bytes of packet appended.
    let mut p = vec![movr(6, 1), st(Size::DW, 10, -8, 0x1234), map(1, 0)];
    p.extend(fp(2, -8));
    p.extend([mov(3, 8), mov(4, 0), call(130), movr(7, 0)]);
    p.extend([
        map(1, 0),
        mov(2, 4),
        mov(3, 0),
        call(131),
        jmp(JmpCond::Eq, 0, 0, 4),
        st(Size::W, 0, 0, 0x55),
        movr(1, 0),
        mov(2, 0),
        call(132),
    ]);
    p.extend([
        movr(1, 6),
        map(2, 1),
        Insn::Imm64 {
            dst: Reg(3),
            imm: Imm64::Value((4 << 32) | 0xffff_ffff),
        },
    ]);
    p.extend(fp(4, -8));
    p.extend([mov(5, 2), call(25), addr(0, 7), exit()]);
    let obj = object(
        vec![program("o", &p)],
        vec![
            mapdef("rb", MapType::Ringbuf, 0, 0, 4096),
            mapdef("ev", MapType::PerfEventArray, 4, 4, 1),
        ],
    );
    let mut r = rt(&obj);
    assert_eq!(run(&obj, &mut r, 20).retval, 0);
    let o = r.take_outputs();
    assert_eq!(o.ringbuf.len(), 2);
    assert_eq!(o.ringbuf[0].data, 0x1234u64.to_le_bytes());
    assert_eq!(o.ringbuf[1].data, [0x55, 0, 0, 0]);
    assert_eq!(o.perf.len(), 1);
    assert_eq!(o.perf[0].data, [0x34, 0x12, 0, 1, 2, 3]);
}

#[test]
fn global_data_is_readable_and_rodata_is_not_writable() {
    let mut ro = mapdef(".rodata", MapType::Array, 4, 8, 1);
    ro.origin = MapOrigin::GlobalData {
        section: ".rodata".into(),
        read_only: true,
    };
    ro.initial_value = Some(vec![9, 0, 0, 0, 0, 0, 0, 0]);
    let read = [
        Insn::Imm64 {
            dst: Reg(1),
            imm: Imm64::MapIdxValue {
                index: 0,
                offset: 0,
            },
        },
        ldx(Size::DW, 0, 1, 0),
        exit(),
    ];
    let obj = object(vec![program("g", &read)], vec![ro.clone()]);
    assert_eq!(run(&obj, &mut rt(&obj), 20).retval, 9);
    let write = [
        Insn::Imm64 {
            dst: Reg(1),
            imm: Imm64::MapIdxValue {
                index: 0,
                offset: 4,
            },
        },
        st(Size::W, 1, 0, 1),
        exit(),
    ];
    let obj = object(vec![program("g", &write)], vec![ro]);
    let e = run_xdp(&obj, 0, &mut rt(&obj), &packet(20)).unwrap_err();
    assert!(
        e.message.contains("read-only map `.rodata`"),
        "{}",
        e.message
    );
}

#[test]
fn queue_push_pop_and_stack_order() {
    let obj = object(
        vec![],
        vec![
            mapdef("q", MapType::Queue, 0, 4, 2),
            mapdef("s", MapType::Stack, 0, 4, 2),
        ],
    );
    let mut r = rt(&obj);
    for m in 0..2 {
        let map = r.map_mut(m).unwrap();
        assert_eq!(map.push(&[1; 4], 0), 0);
        assert_eq!(map.push(&[2; 4], 0), 0);
        assert_eq!(map.push(&[3; 4], 0), -7);
        assert_eq!(map.push(&[3; 4], 2), 0, "BPF_EXIST overwrites the oldest");
    }
    assert_eq!(r.map_mut(0).unwrap().pop(true), Ok(vec![2; 4]));
    assert_eq!(r.map_mut(1).unwrap().pop(true), Ok(vec![3; 4]));
    assert_eq!(r.map_mut(1).unwrap().pop(false), Ok(vec![2; 4]));
}
