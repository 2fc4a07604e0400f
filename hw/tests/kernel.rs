//! The kernel oracle against the running kernel, with small objects built by hand: each test
//! loads programs, runs packets and checks verdicts, output bytes and map snapshots.
//!
//! These tests need `bpf()` (root on Linux). They fail, saying why, when it is not usable: a
//! test that skipped itself silently could never catch a broken oracle.

use frontend::insn::{encode_all, CallTarget, Imm64, Insn, Operand, Reg, Size};
use frontend::mapdata::{MapContents, MapEntry, MapsSnapshot};
use frontend::object::{Function, MapDef, MapOrigin, MapType, Program, ProgramKind};
use frontend::Object;
use hw::linux::{kernel_available, possible_cpus, KernelError, KernelObject, XdpCtx};
use ir::semantics::{AluOp, JmpCond, Width};

const XDP_ABORTED: u32 = 0;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const MAP_LOOKUP_ELEM: i32 = 1;
const TAIL_CALL: i32 = 12;
const XDP_ADJUST_HEAD: i32 = 44;
const XDP_ADJUST_META: i32 = 54;

fn require_kernel() {
    if let Err(why) = kernel_available() {
        panic!("these tests need the kernel's bpf(): {why}");
    }
}

// Instruction builders, so that programs read like assembly.
fn mov64(dst: u8, imm: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst: Reg(dst),
        src: Operand::Imm(imm),
    }
}
fn mov64_reg(dst: u8, src: u8) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst: Reg(dst),
        src: Operand::Reg(Reg(src)),
    }
}
fn add64(dst: u8, imm: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Add,
        dst: Reg(dst),
        src: Operand::Imm(imm),
    }
}
fn ldx(size: Size, dst: u8, src: u8, off: i16) -> Insn {
    Insn::Load {
        size,
        signed: false,
        dst: Reg(dst),
        src: Reg(src),
        off,
    }
}
fn stx(size: Size, dst: u8, off: i16, src: u8) -> Insn {
    Insn::StoreReg {
        size,
        dst: Reg(dst),
        src: Reg(src),
        off,
    }
}
fn st(size: Size, dst: u8, off: i16, imm: i32) -> Insn {
    Insn::StoreImm {
        size,
        dst: Reg(dst),
        off,
        imm,
    }
}
fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
    Insn::Jmp {
        width: Width::W64,
        cond: JmpCond::Eq,
        dst: Reg(dst),
        src: Operand::Imm(imm),
        off,
    }
}
fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
    Insn::Jmp {
        width: Width::W64,
        cond: JmpCond::Ne,
        dst: Reg(dst),
        src: Operand::Imm(imm),
        off,
    }
}
fn jgt_reg(dst: u8, src: u8, off: i16) -> Insn {
    Insn::Jmp {
        width: Width::W64,
        cond: JmpCond::Gt,
        dst: Reg(dst),
        src: Operand::Reg(Reg(src)),
        off,
    }
}
fn map(dst: u8, index: i32) -> [Insn; 2] {
    [
        Insn::Imm64 {
            dst: Reg(dst),
            imm: Imm64::MapIdx(index),
        },
        Insn::Imm64Tail,
    ]
}
fn map_value(dst: u8, index: i32, offset: u32) -> [Insn; 2] {
    [
        Insn::Imm64 {
            dst: Reg(dst),
            imm: Imm64::MapIdxValue { index, offset },
        },
        Insn::Imm64Tail,
    ]
}
fn call(helper: i32) -> Insn {
    Insn::Call(CallTarget::Helper(helper))
}

fn program(name: &str, insns: Vec<Insn>) -> Program {
    let insns = encode_all(&insns);
    Program {
        name: name.into(),
        section: "xdp".into(),
        kind: ProgramKind::Xdp,
        functions: vec![Function {
            name: name.into(),
            section: "xdp".into(),
            start: 0,
            len: insns.len(),
            section_offset: 0,
        }],
        insns,
        lines: vec![],
    }
}

fn map_def(name: &str, map_type: MapType, key: u32, value: u32, entries: u32) -> MapDef {
    MapDef {
        name: name.into(),
        map_type,
        key_size: key,
        value_size: value,
        max_entries: entries,
        flags: 0,
        inner: None,
        initial_value: None,
        origin: MapOrigin::Legacy,
    }
}

fn object(programs: Vec<Program>, maps: Vec<MapDef>) -> Object {
    Object {
        name: "handmade.o".into(),
        license: Some("GPL".into()),
        programs,
        maps,
        ..Object::default()
    }
}

/// An IPv4/UDP-looking frame of `len` bytes with recognisable contents.
fn packet(len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    p[12] = 0x08;
    p[13] = 0x00;
    p
}

/// Looks up key 0 of map 0 and adds 1 to its first 8 bytes; returns XDP_PASS.
fn counter_program() -> Program {
    let mut insns = vec![st(Size::W, 10, -4, 0), mov64_reg(2, 10), add64(2, -4)];
    insns.extend(map(1, 0));
    insns.extend([
        call(MAP_LOOKUP_ELEM),
        jeq_imm(0, 0, 2),
        mov64(1, 1),
        Insn::Atomic {
            size: Size::DW,
            op: frontend::insn::AtomicOp::Add,
            fetch: false,
            dst: Reg(0),
            src: Reg(1),
            off: 0,
        },
        mov64(0, XDP_PASS as i32),
        Insn::Exit,
    ]);
    program("count", insns)
}

fn entry(key: &str, value: &str) -> MapEntry {
    MapEntry {
        key: key.into(),
        value: Some(value.into()),
        per_cpu: None,
    }
}

#[test]
fn the_kernel_is_available() {
    require_kernel();
}

#[test]
fn counts_packets_in_an_array_map() {
    require_kernel();
    let obj = object(
        vec![counter_program()],
        vec![map_def("counters", MapType::Array, 4, 8, 4)],
    );
    let k = KernelObject::load(&obj, &[0]).expect("load");
    let before = k.snapshot().expect("snapshot");
    assert!(before.maps["counters"].entries.is_empty(), "{before:?}");
    let p = packet(64);
    for _ in 0..3 {
        let r = k.test_run_xdp(0, &p, &XdpCtx::default()).expect("run");
        assert_eq!(r.retval, XDP_PASS);
        assert_eq!(r.packet, p);
    }
    let after = k.snapshot().expect("snapshot");
    assert_eq!(
        after.maps["counters"],
        MapContents {
            map_type: MapType::Array,
            key_size: 4,
            value_size: 8,
            entries: vec![entry("00000000", "0300000000000000")],
        }
    );
}

#[test]
fn per_cpu_counts_land_on_cpu_zero() {
    require_kernel();
    let obj = object(
        vec![counter_program()],
        vec![map_def("pcpu", MapType::PercpuArray, 4, 12, 2)],
    );
    let k = KernelObject::load(&obj, &[0]).expect("load");
    for _ in 0..2 {
        k.test_run_xdp(0, &packet(60), &XdpCtx::default())
            .expect("run");
    }
    let snap = k.snapshot().expect("snapshot");
    let entries = &snap.maps["pcpu"].entries;
    assert_eq!(entries.len(), 1, "{snap:?}");
    let cpus = possible_cpus().unwrap();
    let mut expected = vec!["000000000000000000000000".to_string(); cpus];
    expected[0] = "020000000000000000000000".into();
    assert_eq!(entries[0].per_cpu.as_ref(), Some(&expected));
    assert_eq!(entries[0].value, None);
}

#[test]
fn drops_and_leaves_the_packet_alone() {
    require_kernel();
    let obj = object(
        vec![program("drop", vec![mov64(0, XDP_DROP as i32), Insn::Exit])],
        vec![],
    );
    let k = KernelObject::load(&obj, &[0]).expect("load");
    let p = packet(100);
    let r = k.test_run_xdp(0, &p, &XdpCtx::default()).expect("run");
    assert_eq!(r.retval, XDP_DROP);
    assert_eq!(r.packet, p);
    assert!(k.snapshot().unwrap().maps.is_empty());
}

/// Moves the packet start by `delta` and, when it grew, writes 0xdeadbeef at the new start;
/// returns XDP_TX, or XDP_ABORTED when the helper fails.
fn adjust_head_program(delta: i32) -> Program {
    program(
        "adjust",
        vec![
            mov64_reg(6, 1),
            mov64(2, delta),
            call(XDP_ADJUST_HEAD),
            jne_imm(0, 0, 9),
            ldx(Size::W, 2, 6, 0),
            ldx(Size::W, 3, 6, 4),
            mov64_reg(4, 2),
            add64(4, 4),
            jgt_reg(4, 3, 5),
            jne_imm(6, -1, 0),
            st(
                Size::W,
                2,
                0,
                if delta < 0 { 0xdeadbeefu32 as i32 } else { 0 },
            ),
            mov64(0, XDP_TX as i32),
            Insn::Exit,
            Insn::Ja {
                off: 0,
                long: false,
            },
            mov64(0, XDP_ABORTED as i32),
            Insn::Exit,
        ],
    )
}

#[test]
fn adjust_head_grows_and_shrinks_the_packet() {
    require_kernel();
    let p = packet(80);

    let grow = object(vec![adjust_head_program(-4)], vec![]);
    let k = KernelObject::load(&grow, &[0]).expect("load");
    let r = k.test_run_xdp(0, &p, &XdpCtx::default()).expect("run");
    assert_eq!(r.retval, XDP_TX);
    let mut expected = vec![0xef, 0xbe, 0xad, 0xde];
    expected.extend_from_slice(&p);
    assert_eq!(r.packet, expected);

    let shrink = object(vec![adjust_head_program(14)], vec![]);
    let k = KernelObject::load(&shrink, &[0]).expect("load");
    let r = k.test_run_xdp(0, &p, &XdpCtx::default()).expect("run");
    assert_eq!(r.retval, XDP_TX);
    let mut expected = p[14..].to_vec();
    expected[..4].fill(0);
    assert_eq!(r.packet, expected);

    // The headroom is 256 bytes: growing by more fails inside the program.
    let too_far = object(vec![adjust_head_program(-512)], vec![]);
    let k = KernelObject::load(&too_far, &[0]).expect("load");
    let r = k.test_run_xdp(0, &p, &XdpCtx::default()).expect("run");
    assert_eq!(r.retval, XDP_ABORTED);
    assert_eq!(r.packet, p);
}

/// Metadata grown with `bpf_xdp_adjust_meta` comes back in front of the packet.
#[test]
fn metadata_is_returned_in_front_of_the_packet() {
    require_kernel();
    let prog = program(
        "meta",
        vec![
            mov64_reg(6, 1),
            mov64(2, -4),
            call(XDP_ADJUST_META),
            jne_imm(0, 0, 6),
            ldx(Size::W, 2, 6, 8), // data_meta
            ldx(Size::W, 3, 6, 0), // data
            mov64_reg(4, 2),
            add64(4, 4),
            jgt_reg(4, 3, 1),
            st(Size::W, 2, 0, 0x04030201),
            mov64(0, XDP_PASS as i32),
            Insn::Exit,
        ],
    );
    let obj = object(vec![prog], vec![]);
    let k = KernelObject::load(&obj, &[0]).expect("load");
    let p = packet(40);
    let r = k.test_run_xdp(0, &p, &XdpCtx::default()).expect("run");
    assert_eq!(r.retval, XDP_PASS);
    let mut expected = vec![1, 2, 3, 4];
    expected.extend_from_slice(&p);
    assert_eq!(r.packet, expected);
}

#[test]
fn global_data_is_initialised_and_rodata_frozen() {
    require_kernel();
    let mut data = map_def(".data", MapType::Array, 4, 8, 1);
    data.origin = MapOrigin::GlobalData {
        section: ".data".into(),
        read_only: false,
    };
    data.initial_value = Some(5u64.to_le_bytes().to_vec());
    let mut rodata = map_def(".rodata", MapType::Array, 4, 8, 1);
    rodata.origin = MapOrigin::GlobalData {
        section: ".rodata".into(),
        read_only: true,
    };
    rodata.initial_value = Some(vec![0, 0, 0, 0, 1, 0, 0, 0]);
    // `.data` counter += 1; return the u32 at offset 4 of `.rodata` (1, XDP_DROP).
    let mut insns = Vec::new();
    insns.extend(map_value(1, 0, 0));
    insns.extend([ldx(Size::DW, 2, 1, 0), add64(2, 1), stx(Size::DW, 1, 0, 2)]);
    insns.extend(map_value(1, 1, 4));
    insns.extend([ldx(Size::W, 0, 1, 0), Insn::Exit]);
    let obj = object(vec![program("globals", insns)], vec![data, rodata]);
    let k = KernelObject::load(&obj, &[0]).expect("load");
    let r = k
        .test_run_xdp(0, &packet(20), &XdpCtx::default())
        .expect("run");
    assert_eq!(r.retval, XDP_DROP);
    let snap = k.snapshot().expect("snapshot");
    assert_eq!(
        snap.maps[".data"].entries,
        vec![entry("00000000", "0600000000000000")]
    );
    assert_eq!(
        snap.maps[".rodata"].entries,
        vec![entry("00000000", "0000000001000000")]
    );

    // Seeding `.data` works; seeding `.rodata` with its own contents is accepted, with
    // anything else refused because the kernel froze it.
    let mut seed = snap.clone();
    seed.maps.get_mut(".data").unwrap().entries = vec![entry("00000000", "0a00000000000000")];
    k.load_snapshot(&seed).expect("seed");
    assert_eq!(
        k.snapshot().unwrap().maps[".data"].entries,
        vec![entry("00000000", "0a00000000000000")]
    );
    seed.maps.get_mut(".rodata").unwrap().entries = vec![entry("00000000", "0000000002000000")];
    let err = k.load_snapshot(&seed).unwrap_err();
    assert!(err.to_string().contains("frozen"), "{err}");
}

#[test]
fn a_seeded_hash_map_decides_the_verdict() {
    require_kernel();
    // Look up key 7 in the hash map; return its value, or XDP_PASS when absent.
    let mut insns = vec![st(Size::W, 10, -4, 7), mov64_reg(2, 10), add64(2, -4)];
    insns.extend(map(1, 0));
    insns.extend([
        call(MAP_LOOKUP_ELEM),
        jeq_imm(0, 0, 2),
        ldx(Size::W, 0, 0, 0),
        Insn::Exit,
        mov64(0, XDP_PASS as i32),
        Insn::Exit,
    ]);
    let obj = object(
        vec![program("lookup", insns)],
        vec![map_def("verdicts", MapType::Hash, 4, 4, 16)],
    );
    let k = KernelObject::load(&obj, &[0]).expect("load");
    let p = packet(64);
    assert_eq!(
        k.test_run_xdp(0, &p, &XdpCtx::default()).unwrap().retval,
        XDP_PASS
    );
    let mut seed = MapsSnapshot::default();
    seed.maps.insert(
        "verdicts".into(),
        MapContents {
            map_type: MapType::Hash,
            key_size: 4,
            value_size: 4,
            // Out of order on purpose: the snapshot comes back sorted.
            entries: vec![entry("07000000", "01000000"), entry("03000000", "00000000")],
        },
    );
    k.load_snapshot(&seed).expect("seed");
    assert_eq!(
        k.test_run_xdp(0, &p, &XdpCtx::default()).unwrap().retval,
        XDP_DROP
    );
    // Hash maps keep zero values; entries are sorted by key.
    let snap = k.snapshot().unwrap();
    assert_eq!(
        snap.maps["verdicts"].entries,
        vec![entry("03000000", "00000000"), entry("07000000", "01000000")]
    );
}

#[test]
fn tail_calls_go_through_a_seeded_prog_array() {
    require_kernel();
    let mut caller = vec![mov64_reg(6, 1)];
    caller.extend(map(2, 0));
    caller.extend([
        mov64(3, 1),
        call(TAIL_CALL),
        mov64(0, XDP_PASS as i32),
        Insn::Exit,
    ]);
    let obj = object(
        vec![
            program("caller", caller),
            program("dropper", vec![mov64(0, XDP_DROP as i32), Insn::Exit]),
        ],
        vec![map_def("jumps", MapType::ProgArray, 4, 4, 4)],
    );
    let k = KernelObject::load(&obj, &[0, 1]).expect("load");
    let p = packet(64);
    // Slot 1 is empty: the tail call falls through.
    assert_eq!(
        k.test_run_xdp(0, &p, &XdpCtx::default()).unwrap().retval,
        XDP_PASS
    );
    let mut seed = MapsSnapshot::default();
    seed.maps.insert(
        "jumps".into(),
        MapContents {
            map_type: MapType::ProgArray,
            key_size: 4,
            value_size: 4,
            entries: vec![entry("01000000", "01000000")],
        },
    );
    k.load_snapshot(&seed).expect("seed");
    assert_eq!(
        k.test_run_xdp(0, &p, &XdpCtx::default()).unwrap().retval,
        XDP_DROP
    );
    assert_eq!(k.snapshot().unwrap(), seed);

    // A program index that is not loaded is refused with a clear error.
    seed.maps.get_mut("jumps").unwrap().entries = vec![entry("00000000", "05000000")];
    let err = k.load_snapshot(&seed).unwrap_err();
    assert!(err.to_string().contains("not loaded"), "{err}");
}

#[test]
fn the_verifier_log_explains_a_refusal() {
    require_kernel();
    let obj = object(
        vec![program("bad", vec![mov64_reg(0, 2), Insn::Exit])],
        vec![],
    );
    let err = KernelObject::load(&obj, &[0]).unwrap_err();
    assert!(matches!(err, KernelError::ProgramRefused { .. }), "{err:?}");
    let reason = err.verifier_reason().expect("a verifier log");
    assert!(reason.contains("R2 !read_ok"), "{reason}");
    assert!(err.to_string().contains("EACCES"), "{err}");
    let tail = err.verifier_log_tail(3).unwrap();
    assert!(tail.contains("r0 = r2"), "{tail}");
    let diag = frontend::Diagnostic::from(&err);
    assert_eq!(diag.program.as_deref(), Some("bad"));
    assert!(diag.message.contains("R2 !read_ok"), "{diag}");
}

#[test]
fn out_of_range_map_indices_are_refused_before_the_kernel() {
    require_kernel();
    let mut insns = map(1, 3).to_vec();
    insns.extend([mov64(0, 2), Insn::Exit]);
    let obj = object(vec![program("oob", insns)], vec![]);
    let err = KernelObject::load(&obj, &[0]).unwrap_err();
    assert!(err.to_string().contains("refers to map 3"), "{err}");
    let err = KernelObject::load(&obj, &[4]).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[test]
fn packets_the_test_run_does_not_take_are_reported_apart() {
    require_kernel();
    let obj = object(
        vec![program("pass", vec![mov64(0, XDP_PASS as i32), Insn::Exit])],
        vec![],
    );
    let k = KernelObject::load(&obj, &[0]).expect("load");
    for len in [0, 13, hw::linux::MAX_PACKET + 1, 9000] {
        let err = k
            .test_run_xdp(0, &packet(len.max(14))[..len], &XdpCtx::default())
            .unwrap_err();
        assert!(
            matches!(err, KernelError::PacketRejected { len: l, .. } if l == len),
            "{len}: {err:?}"
        );
    }
    for len in [14, hw::linux::MAX_PACKET] {
        let r = k
            .test_run_xdp(0, &packet(len), &XdpCtx::default())
            .expect("run");
        assert_eq!(r.packet.len(), len);
    }
}

/// The limits the oracle checks are the kernel's own: the kernel refuses 13 bytes, and a
/// longer packet than MAX_PACKET runs with only MAX_PACKET bytes between `data` and `data_end`
/// (the rest goes into fragments), which is why the oracle refuses it.
#[test]
fn the_packet_limits_are_the_kernels() {
    require_kernel();
    // Return data_end - data.
    let prog = program(
        "length",
        vec![
            ldx(Size::W, 2, 1, 0),
            ldx(Size::W, 0, 1, 4),
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Sub,
                dst: Reg(0),
                src: Operand::Reg(Reg(2)),
            },
            Insn::Exit,
        ],
    );
    let obj = object(vec![prog], vec![]);
    let k = KernelObject::load(&obj, &[0]).expect("load");
    let fd = k.program_fd(0).unwrap();
    let mut out = vec![0u8; 8192];
    let max = hw::linux::MAX_PACKET;
    for len in [14, max, max + 1, 4096] {
        let run = hw::linux::sys::test_run(fd, &packet(len), &mut out, None, 1).expect("run");
        assert_eq!(run.retval as usize, len.min(max), "{len}");
        assert_eq!(run.data_size_out as usize, len);
    }
    let err = hw::linux::sys::test_run(fd, &packet(14)[..13], &mut out, None, 1).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
}

#[test]
fn the_context_names_the_receive_queue() {
    require_kernel();
    // Return ctx->ingress_ifindex * 16 + ctx->rx_queue_index (XDP allows any return value in
    // a test run).
    let prog = program(
        "ifindex",
        vec![
            ldx(Size::W, 0, 1, 12),
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Lsh,
                dst: Reg(0),
                src: Operand::Imm(4),
            },
            ldx(Size::W, 2, 1, 16),
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst: Reg(0),
                src: Operand::Reg(Reg(2)),
            },
            Insn::Exit,
        ],
    );
    let obj = object(vec![prog], vec![]);
    let k = KernelObject::load(&obj, &[0]).expect("load");
    let p = packet(64);
    let r = k.test_run_xdp(0, &p, &XdpCtx::default()).expect("run");
    assert_eq!(r.retval, 16, "loopback (ifindex 1), queue 0");

    // Another device, when the machine has one.
    let other = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("ifindex")).ok())
        .filter_map(|s| s.trim().parse::<u32>().ok())
        .find(|i| *i != 1);
    if let Some(ifindex) = other {
        let ctx = XdpCtx {
            ingress_ifindex: ifindex,
            rx_queue_index: 0,
        };
        let r = k.test_run_xdp(0, &p, &ctx).expect("run on another device");
        assert_eq!(r.retval, ifindex * 16);
        assert_eq!(r.packet, p);
    } else {
        eprintln!("only the loopback device exists; the other-device check did not run");
    }

    // The loopback device has one receive queue.
    let err = k
        .test_run_xdp(
            0,
            &p,
            &XdpCtx {
                ingress_ifindex: 1,
                rx_queue_index: 5,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("receive queue"), "{err}");
}

#[test]
fn unusual_maps_are_created_and_skipped_in_snapshots() {
    require_kernel();
    let mut outer = map_def("outer", MapType::ArrayOfMaps, 4, 4, 2);
    outer.inner = Some(0);
    let maps = vec![
        map_def("inner", MapType::Array, 4, 4, 1),
        outer,
        map_def("events", MapType::PerfEventArray, 4, 4, 0),
        map_def("ring", MapType::Ringbuf, 0, 0, 1000),
        map_def("pcpu_hash", MapType::PercpuHash, 8, 3, 8),
    ];
    // Mention every map so that each must be created.
    let mut insns = Vec::new();
    for i in 0..maps.len() as i32 {
        insns.extend(map(1, i));
    }
    insns.extend([mov64(0, XDP_PASS as i32), Insn::Exit]);
    let obj = object(vec![program("all", insns)], maps);
    let k = KernelObject::load(&obj, &[0]).expect("load");

    // A per-CPU hash map seeded with a plain value holds it on CPU 0 only.
    let mut seed = MapsSnapshot::default();
    seed.maps.insert(
        "pcpu_hash".into(),
        MapContents {
            map_type: MapType::PercpuHash,
            key_size: 8,
            value_size: 3,
            entries: vec![entry("0102030405060708", "aabbcc")],
        },
    );
    k.load_snapshot(&seed).expect("seed");

    let (snap, skipped) = k.snapshot_report().expect("snapshot");
    let names: Vec<&str> = skipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["outer", "events", "ring"], "{skipped:?}");
    assert!(snap.maps["inner"].entries.is_empty());
    let cpus = possible_cpus().unwrap();
    let mut per_cpu = vec!["000000".to_string(); cpus];
    per_cpu[0] = "aabbcc".into();
    assert_eq!(
        snap.maps["pcpu_hash"].entries,
        vec![MapEntry {
            key: "0102030405060708".into(),
            value: None,
            per_cpu: Some(per_cpu),
        }]
    );
}

#[test]
fn a_map_the_kernel_refuses_is_an_error_only_when_used() {
    require_kernel();
    // A zero-sized array value is invalid.
    let maps = vec![map_def("broken", MapType::Array, 4, 0, 1)];
    let unused = object(
        vec![program("pass", vec![mov64(0, XDP_PASS as i32), Insn::Exit])],
        maps.clone(),
    );
    let k = KernelObject::load(&unused, &[0]).expect("load without the broken map");
    let (_, skipped) = k.snapshot_report().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].reason.contains("not created"), "{skipped:?}");

    let mut insns = map(1, 0).to_vec();
    insns.extend([mov64(0, XDP_PASS as i32), Insn::Exit]);
    let used = object(vec![program("uses", insns)], maps);
    let err = KernelObject::load(&used, &[0]).unwrap_err();
    assert!(matches!(err, KernelError::MapCreate { .. }), "{err:?}");
    assert!(err.to_string().contains("broken"), "{err}");
}
