//! Golden cycle tests for the NFP microengine model: small hand-written microcode programs
//! whose cycle counts are worked out by hand below from the latency data file's figures, and
//! must be what the simulator reports. Also checks that the pointer constants the backend
//! folds (`hw::nfp::abi`) are the runtime's.

use backends::nfp::{EntryKind, NfpProgram};
use hw::nfp::insn::*;
use hw::nfp::regs::{Bank, Dest, Operand};
use hw::nfp::{encode, LatencyTable};
use sim::nfp::{run_xdp_nfp, schedule, NfpConfig, NfpMachine, Trace};
use sim::runtime::{Runtime, RuntimeConfig, XdpAction, XdpInput};

fn program(insns: Vec<Insn>) -> NfpProgram {
    let n = insns.len();
    NfpProgram {
        name: "golden".into(),
        words: insns.iter().map(|i| encode(i).unwrap()).collect(),
        insns,
        bpf_insn: vec![u32::MAX; n],
        comments: vec![String::new(); n],
        relocations: Vec::new(),
        code_addresses: Vec::new(),
        maps: Vec::new(),
        entry: EntryKind::Xdp,
        registers: 0,
        lm_windows: 0,
        routine_words: 0,
        program_branches: Vec::new(),
    }
}

fn mov(dst: u8, imm: u8) -> Insn {
    Insn::Alu {
        dst: Dest::Both(dst),
        a: Operand::None,
        op: AluOp::PassB,
        b: Operand::Imm(imm),
    }
}

/// Reads the EtherType (2 bytes at offset 12) and passes IPv4, drops the rest.
fn ethertype_filter() -> NfpProgram {
    program(vec![
        // 0: the low word of xdp_md.data, from the dispatcher's transfer register.
        Insn::Alu {
            dst: Dest::Both(6),
            a: Operand::None,
            op: AluOp::PassB,
            b: Operand::Xfer(0),
        },
        // 1: CTM read of 2 bytes at data + 12, swapping the context out.
        Insn::Cmd {
            level: MemLevel::Ctm,
            action: MemAction::Read,
            xfer: 8,
            count: 1,
            a: Operand::Gpr(Bank::A, 6),
            b: Operand::Imm(12),
            sig: 1,
            swap: CtxSwap::Swap,
            mode: AddrMode::Implied,
            token: 0,
        },
        // 2: compare with 0x0008 (bytes 08 00 read little-endian).
        Insn::Alu {
            dst: Dest::None,
            a: Operand::Xfer(8),
            op: AluOp::Sub,
            b: Operand::Imm(8),
        },
        // 3: not IPv4: to the drop exit.
        Insn::Br {
            cond: BrCond::Ne,
            target: 7,
            defer: 0,
        },
        // 4-6: XDP_PASS, the return registers set in the defer slots.
        Insn::Br {
            cond: BrCond::Always,
            target: EXIT_TARGET,
            defer: 2,
        },
        mov(RET_LO, 2),
        mov(RET_HI, 0),
        // 7-9: XDP_DROP.
        Insn::Br {
            cond: BrCond::Always,
            target: EXIT_TARGET,
            defer: 2,
        },
        mov(RET_LO, 1),
        mov(RET_HI, 0),
    ])
}

fn packet(ethertype: [u8; 2]) -> XdpInput {
    let mut p = vec![0u8; 60];
    p[12] = ethertype[0];
    p[13] = ethertype[1];
    XdpInput::new(p)
}

fn run(ethertype: [u8; 2]) -> (XdpAction, Trace) {
    let prog = ethertype_filter();
    let mut rt = Runtime::empty(RuntimeConfig::default());
    let m = NfpMachine::load(&prog, &mut rt).unwrap();
    let (o, t) = run_xdp_nfp(&m, &mut rt, &packet(ethertype)).unwrap();
    (o.action, t)
}

#[test]
fn an_ipv4_packet_takes_the_hand_counted_cycles() {
    let t = LatencyTable::shipped().unwrap();
    let p = &t.pipeline;
    let (action, trace) = run([0x08, 0x00]);
    assert_eq!(action, XdpAction::Pass);
    // Dispatch; instructions 0 and 1 (the command); the CTM latency; one context swap to
    // resume; instructions 2, 3 (not taken: no shadow), 4, 5, 6; the exit branch's shadow
    // less its two defer slots.
    let expected = p.dispatch
        + 2 * p.issue
        + t.memory.ctm
        + p.context_swap
        + 5 * p.issue
        + (p.branch_shadow - 2);
    assert_eq!(trace.alone_cycles(&t), expected);
    assert_eq!(trace.instructions, 7);
    // With the shipped table: 2 + 2 + 50 + 1 + 5 + 1.
    assert_eq!(expected, 61);
}

#[test]
fn a_non_ipv4_packet_pays_the_full_branch_shadow() {
    let t = LatencyTable::shipped().unwrap();
    let p = &t.pipeline;
    let (action, trace) = run([0x86, 0xdd]);
    assert_eq!(action, XdpAction::Drop);
    // Instructions 0, 1; wait; swap; 2, 3 taken with no defer slot (full shadow), then 7, 8,
    // 9 with the exit's shadow less two defer slots.
    let expected = p.dispatch
        + 2 * p.issue
        + t.memory.ctm
        + p.context_swap
        + 2 * p.issue
        + p.branch_shadow
        + 3 * p.issue
        + (p.branch_shadow - 2);
    assert_eq!(trace.alone_cycles(&t), expected);
    assert_eq!(expected, 64);
}

#[test]
fn two_threads_hide_each_others_memory_latency() {
    let t = LatencyTable::shipped().unwrap();
    let (_, a) = run([0x08, 0x00]);
    let (_, b) = run([0x08, 0x00]);
    let one_engine = NfpConfig {
        engines: 1,
        threads: 2,
        mhz: 800.0,
    };
    let timing = schedule(&[&a, &b], &one_engine, &t);
    // Context 0 starts after dispatch (2), runs 2 cycles (to 4) and sleeps until 54; context
    // 1 runs 4..6 and sleeps until 56; the engine idles to 54, context 0 resumes (+1 swap)
    // and runs 6 cycles to 61; context 1 resumes (+1) at 62 and finishes at 68.
    assert_eq!(timing.latency, vec![61, 68]);
    assert_eq!(timing.makespan, 68);
    // One thread: the second packet starts after the first (61) plus its own 61.
    let single = NfpConfig {
        engines: 1,
        threads: 1,
        mhz: 800.0,
    };
    let timing1 = schedule(&[&a, &b], &single, &t);
    assert_eq!(timing1.makespan, 122);
    assert!(timing.mpps > timing1.mpps);
}

#[test]
fn the_abi_constants_are_the_runtimes() {
    use sim::runtime::memory as m;
    assert_eq!(hw::nfp::abi::REGION_CTX, m::REGION_CTX);
    assert_eq!(hw::nfp::abi::REGION_PACKET, m::REGION_PACKET);
    assert_eq!(hw::nfp::abi::REGION_MEM, m::REGION_MEM);
    assert_eq!(hw::nfp::abi::REGION_STACK, m::REGION_STACK);
    assert_eq!(hw::nfp::abi::REGION_MAP, m::REGION_MAP);
    assert_eq!(hw::nfp::abi::STACK_SIZE as usize, m::STACK_SIZE);
}
