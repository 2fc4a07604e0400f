//! The functional core of the model: one context executing decoded microengine words for one
//! packet, with every memory command, map operation and helper served by the shared runtime,
//! and a record of where its time went ([`Trace`]) for the scheduler in [`super::timing`].
//!
//! Registers are the model's: two banks of general-purpose registers, read and write transfer
//! registers, next-neighbour registers, four local-memory address registers; local memory is
//! the run's stack frame (`ExecState::stacks[0]`), so that map keys the program builds on its
//! stack are the very bytes the runtime's map code reads. Condition codes, the multiplier and
//! the indirect shift amount behave as `hw::nfp::insn` documents them.

use super::chip_memory::{is_chip_region, ChipMemory};
use crate::runtime::helpers::{self, HelperOutcome};
use crate::runtime::memory::{make_addr, Fault, REGION_PACKET, REGION_STACK, STACK_SIZE};
use crate::runtime::{ExecState, Runtime};
use frontend::object::MapType;
use hw::nfp::insn::*;
use hw::nfp::latency::MapKind;
use hw::nfp::regs::{Bank, Dest, Operand};
use hw::nfp::LatencyTable;

/// Where a context's time went, in engine cycles: it alternates between running on the
/// engine and waiting for a command's completion signal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    pub segments: Vec<Segment>,
    /// Microengine instructions executed.
    pub instructions: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Cycles on the engine (instructions and branch shadows).
    Run(u64),
    /// Cycles waiting for a command, swapped out.
    Wait(u64),
}

impl Trace {
    /// Cycles from dispatch to verdict when the context has the engine to itself: dispatch,
    /// every run and wait, and one context swap to resume after each wait.
    pub fn alone_cycles(&self, t: &LatencyTable) -> u64 {
        let mut c = t.pipeline.dispatch;
        for s in &self.segments {
            match s {
                Segment::Run(n) => c += n,
                Segment::Wait(n) => c += n + t.pipeline.context_swap,
            }
        }
        c
    }
    /// Engine cycles the packet occupies the engine (runs only).
    pub fn busy_cycles(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Run(n) => *n,
                Segment::Wait(_) => 0,
            })
            .sum()
    }
}

/// A stop of the context.
pub enum Stop {
    Exit(u64),
    Fault(Fault, usize),
}

/// What the executor needs to know about the program besides its instructions.
pub struct Code<'a> {
    pub insns: &'a [Insn],
    /// The memory level of each map (by object map index), for map-operation latency.
    pub map_levels: &'a [MemLevel],
    pub table: &'a LatencyTable,
}

/// One context's architectural state.
pub struct Context {
    a: [u32; 32],
    b: [u32; 32],
    xin: [u32; 32],
    xout: [u32; 32],
    nn: [u32; 128],
    lm_addr: [u32; 4],
    z: bool,
    n: bool,
    c: bool,
    v: bool,
    prev_b: u32,
    mul: (u32, u32),
}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

impl Context {
    pub fn new() -> Context {
        Context {
            a: [0; 32],
            b: [0; 32],
            xin: [0; 32],
            xout: [0; 32],
            nn: [0; 128],
            lm_addr: [0; 4],
            z: false,
            n: false,
            c: false,
            v: false,
            prev_b: 0,
            mul: (0, 0),
        }
    }

    /// Sets a read transfer register (the dispatcher's packet metadata).
    pub fn set_xfer(&mut self, n: u8, v: u32) {
        if let Some(x) = self.xin.get_mut(n as usize) {
            *x = v;
        }
    }

    /// Register `n` of bank A (where the exit finds the return value).
    pub fn reg_a(&self, n: u8) -> u32 {
        self.a.get(n as usize).copied().unwrap_or(0)
    }

    fn lm_index(&self, index: u8, offset: u8) -> Result<usize, Fault> {
        let addr = self.lm_addr[(index & 3) as usize].wrapping_add(4 * offset as u32) as usize;
        if !addr.is_multiple_of(4) || addr + 4 > STACK_SIZE {
            return Err(Fault::new(format!(
                "local memory word at byte {addr} is outside this context's {STACK_SIZE}-byte stack window"
            )));
        }
        Ok(addr)
    }

    fn read(&self, st: &ExecState, op: Operand) -> Result<u32, Fault> {
        Ok(match op {
            Operand::Gpr(Bank::A, n) => self.a[n as usize & 31],
            Operand::Gpr(Bank::B, n) => self.b[n as usize & 31],
            Operand::Xfer(n) => self.xin[n as usize & 31],
            Operand::Nn(n) => self.nn[n as usize & 127],
            Operand::Lm { index, offset } => {
                let i = self.lm_index(index, offset)?;
                let w = &st.stacks[0][i..i + 4];
                u32::from_le_bytes([w[0], w[1], w[2], w[3]])
            }
            Operand::Imm(v) => v as u32,
            Operand::None => 0,
        })
    }

    fn write(&mut self, st: &mut ExecState, d: Dest, v: u32) -> Result<(), Fault> {
        match d {
            Dest::Gpr(Bank::A, n) => self.a[n as usize & 31] = v,
            Dest::Gpr(Bank::B, n) => self.b[n as usize & 31] = v,
            Dest::Both(n) => {
                self.a[n as usize & 31] = v;
                self.b[n as usize & 31] = v;
            }
            Dest::Xfer(n) => self.xout[n as usize & 31] = v,
            Dest::Nn(n) => self.nn[n as usize & 127] = v,
            Dest::Lm { index, offset } => {
                let i = self.lm_index(index, offset)?;
                st.stacks[0][i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            Dest::None => {}
        }
        Ok(())
    }

    fn read_dest(&self, st: &ExecState, d: Dest) -> Result<u32, Fault> {
        match d {
            Dest::Gpr(bank, n) => self.read(st, Operand::Gpr(bank, n)),
            Dest::Both(n) => Ok(self.a[n as usize & 31]),
            Dest::Xfer(n) => Ok(self.xout[n as usize & 31]),
            Dest::Nn(n) => Ok(self.nn[n as usize & 127]),
            Dest::Lm { index, offset } => self.read(st, Operand::Lm { index, offset }),
            Dest::None => Ok(0),
        }
    }

    fn alu(&mut self, op: AluOp, a: u32, b: u32) -> u32 {
        let sa = a as i32 as i64;
        let sb = b as i32 as i64;
        let (r, c, v) = match op {
            AluOp::PassB => (b, false, false),
            AluOp::Not => (!b, false, false),
            AluOp::And => (a & b, false, false),
            AluOp::AndNotA => (!a & b, false, false),
            AluOp::AndNotB => (a & !b, false, false),
            AluOp::Or => (a | b, false, false),
            AluOp::Xor => (a ^ b, false, false),
            AluOp::Add | AluOp::Add2b => {
                let full = a as u64 + b as u64;
                let s = sa + sb;
                (full as u32, full >> 32 != 0, s != s as i32 as i64)
            }
            AluOp::AddC => {
                let cin = u64::from(self.c);
                let full = a as u64 + b as u64 + cin;
                let s = sa + sb + cin as i64;
                (full as u32, full >> 32 != 0, s != s as i32 as i64)
            }
            AluOp::Sub => {
                let s = sa - sb;
                (a.wrapping_sub(b), a >= b, s != s as i32 as i64)
            }
            AluOp::SubC => {
                let borrow = u64::from(!self.c);
                let s = sa - sb - borrow as i64;
                (
                    (a as u64).wrapping_sub(b as u64 + borrow) as u32,
                    a as u64 >= b as u64 + borrow,
                    s != s as i32 as i64,
                )
            }
        };
        self.z = r == 0;
        self.n = r >> 31 == 1;
        self.c = c;
        self.v = v;
        r
    }

    fn cond(&self, c: BrCond) -> bool {
        match c {
            BrCond::Eq => self.z,
            BrCond::Ne => !self.z,
            BrCond::Mi => self.n,
            BrCond::Hs => self.c,
            BrCond::Lo => !self.c,
            BrCond::Ge => self.n == self.v,
            BrCond::Lt => self.n != self.v,
            BrCond::Always => true,
        }
    }
}

fn shifted(x: u32, hi: u32, sc: ShiftClass, s: u32, arith: bool) -> u32 {
    let s = s & 31;
    match sc {
        ShiftClass::Left => x << s,
        ShiftClass::Right if arith => ((x as i32) >> s) as u32,
        ShiftClass::Right => x >> s,
        ShiftClass::RightRotate => x.rotate_right(s),
        ShiftClass::DoubleRight => ((((hi as u64) << 32) | x as u64) >> s) as u32,
    }
}

fn map_kind(t: MapType) -> MapKind {
    match t {
        MapType::Array => MapKind::Array,
        MapType::PercpuArray => MapKind::PercpuArray,
        MapType::Hash => MapKind::Hash,
        MapType::PercpuHash => MapKind::PercpuHash,
        MapType::LruHash | MapType::LruPercpuHash => MapKind::LruHash,
        MapType::LpmTrie => MapKind::LpmTrie,
        _ => MapKind::Other,
    }
}

/// Refreshes the packet metadata transfer registers from the frame (after a helper).
pub fn load_meta(ctx: &mut Context, st: &ExecState) {
    if st.xdp.is_none() {
        return;
    }
    for k in 0..hw::nfp::abi::XFER_META_LEN {
        let v = st.ctx_load(4 * k as u32, 4).unwrap_or(0);
        ctx.set_xfer(hw::nfp::abi::XFER_META + k, v as u32);
    }
}

/// Runs the context from address 0 until the exit or a fault; `budget` bounds the
/// instructions executed.
pub fn run(
    code: &Code,
    ctx: &mut Context,
    rt: &mut Runtime,
    chip: &mut ChipMemory,
    st: &mut ExecState,
    budget: u64,
    trace: &mut Trace,
) -> Stop {
    let t = code.table;
    let mut pc: usize = 0;
    let mut run_cycles: u64 = 0;
    // A taken branch waiting for its defer slots: (target, slots left, shadow cycles).
    let mut pending: Option<(usize, u8, u64)> = None;
    // The last address executed, which a fault at a fixed target is reported at.
    let mut last_pc: usize = 0;
    loop {
        if pc == EXIT_TARGET as usize {
            trace.segments.push(Segment::Run(run_cycles));
            let r0 = ctx.reg_a(RET_LO) as u64 | ((ctx.reg_a(RET_HI) as u64) << 32);
            return Stop::Exit(r0);
        }
        if pc == TAIL_CALL_FAULT_TARGET as usize {
            trace.segments.push(Segment::Run(run_cycles));
            let p = ctx.reg_a(RET_LO);
            return Stop::Fault(
                Fault::new(format!(
                    "bpf_tail_call chose program {p} of the object, which is not in this code store: it did not compile for the NFP target, so it was not linked"
                ))
                .help("run `nicc check --target nfp` on the object to see why that program does not compile"),
                last_pc,
            );
        }
        if pc == MAP_HANDLE_FAULT_TARGET as usize {
            trace.segments.push(Segment::Run(run_cycles));
            return Stop::Fault(
                Fault::new(
                    "a map helper was called with a handle that is none of the maps that can reach this call (a NULL or forged map pointer)",
                )
                .help("check the map pointer before the call: the kernel's verifier refuses a program that can pass anything but a map"),
                last_pc,
            );
        }
        let Some(insn) = code.insns.get(pc).copied() else {
            return Stop::Fault(
                Fault::new(format!(
                    "execution reached address {pc}, past the end of the {}-word program",
                    code.insns.len()
                )),
                pc.saturating_sub(1),
            );
        };
        if trace.instructions >= budget {
            return Stop::Fault(
                Fault::new(format!(
                    "the packet executed {budget} microengine instructions without finishing (the runtime's instruction budget)"
                )),
                pc,
            );
        }
        trace.instructions += 1;
        last_pc = pc;
        run_cycles += t.pipeline.issue;
        let in_defer = pending.is_some();
        let mut next = pc + 1;
        let fault = |m: Fault| Stop::Fault(m, pc);
        match insn {
            Insn::Alu { dst, a, op, b } => {
                let (va, vb) = match (ctx.read(st, a), ctx.read(st, b)) {
                    (Ok(x), Ok(y)) => (x, y),
                    (Err(e), _) | (_, Err(e)) => return fault(e),
                };
                let r = ctx.alu(op, va, vb);
                ctx.prev_b = vb;
                if let Err(e) = ctx.write(st, dst, r) {
                    return fault(e);
                }
            }
            Insn::Shf {
                dst,
                a,
                op,
                b,
                sc,
                shift,
            } => {
                let (va, vb) = match (ctx.read(st, a), ctx.read(st, b)) {
                    (Ok(x), Ok(y)) => (x, y),
                    (Err(e), _) | (_, Err(e)) => return fault(e),
                };
                let s = if shift == INDIRECT_SHIFT {
                    ctx.prev_b & 31
                } else {
                    shift as u32
                };
                let x = shifted(vb, va, sc, s, op == ShfOp::Ashr);
                let r = match op {
                    ShfOp::None | ShfOp::Ashr => x,
                    ShfOp::And => va & x,
                    ShfOp::Or => va | x,
                };
                if let Err(e) = ctx.write(st, dst, r) {
                    return fault(e);
                }
            }
            Insn::LdField {
                dst,
                bmask,
                src,
                sc,
                shift,
                zero,
            } => {
                let vs = match ctx.read(st, src) {
                    Ok(v) => v,
                    Err(e) => return fault(e),
                };
                let old = match ctx.read_dest(st, dst) {
                    Ok(v) => v,
                    Err(e) => return fault(e),
                };
                let x = shifted(vs, 0, sc, shift as u32, false);
                let mut m = 0u32;
                for i in 0..4 {
                    if bmask >> i & 1 == 1 {
                        m |= 0xff << (8 * i);
                    }
                }
                let r = if zero { x & m } else { (old & !m) | (x & m) };
                if let Err(e) = ctx.write(st, dst, r) {
                    return fault(e);
                }
            }
            Insn::Immed {
                dst,
                imm,
                shift,
                width,
                inv,
            } => {
                let s = 8 * shift as u32;
                let r = match width {
                    ImmedWidth::All => {
                        let v = (imm as u32) << s;
                        if inv {
                            !v
                        } else {
                            v
                        }
                    }
                    ImmedWidth::Byte | ImmedWidth::Word => {
                        let fm: u32 = if width == ImmedWidth::Byte {
                            0xff
                        } else {
                            0xffff
                        };
                        let val = (imm as u32 ^ if inv { fm } else { 0 }) & fm;
                        let old = match ctx.read_dest(st, dst) {
                            Ok(v) => v,
                            Err(e) => return fault(e),
                        };
                        (old & !(fm << s)) | (val << s)
                    }
                };
                if let Err(e) = ctx.write(st, dst, r) {
                    return fault(e);
                }
            }
            _ => {}
        }
        // The address a `rtn` branches to, read from its register.
        let mut return_to = 0usize;
        let taken = match insn {
            Insn::Br { cond, .. } => Some(ctx.cond(cond)),
            Insn::BrBit { src, bit, set, .. } => match ctx.read(st, src) {
                Ok(v) => Some(((v >> (bit & 31)) & 1 == 1) == set),
                Err(e) => return Stop::Fault(e, pc),
            },
            Insn::BrByte {
                src,
                byte,
                value,
                eq,
                ..
            } => match ctx.read(st, src) {
                Ok(v) => Some((((v >> (8 * (byte & 3) as u32)) & 0xff) as u8 == value) == eq),
                Err(e) => return Stop::Fault(e, pc),
            },
            Insn::Rtn { src, .. } => match ctx.read(st, src) {
                Ok(v) => {
                    return_to = (v & 0x3fff) as usize;
                    Some(true)
                }
                Err(e) => return Stop::Fault(e, pc),
            },
            _ => None,
        };
        if let Some(taken) = taken {
            if in_defer {
                return Stop::Fault(
                    Fault::new("a branch in the defer slots of another branch"),
                    pc,
                );
            }
            if taken {
                let target = insn.target().map_or(return_to, usize::from);
                let d = insn.defer();
                let shadow = t.pipeline.branch_shadow.saturating_sub(d as u64);
                if d == 0 {
                    run_cycles += shadow;
                    next = target;
                } else {
                    pending = Some((target, d, shadow));
                }
            }
        }
        match insn {
            Insn::Cmd {
                level,
                action,
                xfer,
                count,
                a,
                b,
                mode,
                token,
                ..
            } => {
                let latency = match command(
                    code, ctx, rt, chip, st, level, action, xfer, count, a, b, mode, token,
                ) {
                    Ok(l) => l,
                    Err(e) => return Stop::Fault(e, pc),
                };
                trace.segments.push(Segment::Run(run_cycles));
                trace.segments.push(Segment::Wait(latency));
                run_cycles = 0;
            }
            Insn::LocalCsrWr { csr, src } => {
                let v = match ctx.read(st, src) {
                    Ok(v) => v,
                    Err(e) => return Stop::Fault(e, pc),
                };
                match CSR_ACT_LM_ADDR.iter().position(|c| *c == csr) {
                    Some(i) => ctx.lm_addr[i] = v,
                    None if csr == CSR_PSEUDO_RND_NUM => {}
                    None => {
                        return Stop::Fault(
                            Fault::new(format!("local CSR {csr:#x} is not modelled")),
                            pc,
                        )
                    }
                }
            }
            Insn::CtxArb => {
                trace.segments.push(Segment::Run(run_cycles));
                trace.segments.push(Segment::Wait(0));
                run_cycles = 0;
            }
            Insn::Mul { step, dst, a, b } => match step {
                MulStep::Start => match (ctx.read(st, a), ctx.read(st, b)) {
                    (Ok(x), Ok(y)) => ctx.mul = (x, y),
                    (Err(e), _) | (_, Err(e)) => return Stop::Fault(e, pc),
                },
                MulStep::Step(_) => {}
                MulStep::Last | MulStep::Last2 => {
                    let p = ctx.mul.0 as u64 * ctx.mul.1 as u64;
                    let v = if step == MulStep::Last {
                        p as u32
                    } else {
                        (p >> 32) as u32
                    };
                    if let Err(e) = ctx.write(st, dst, v) {
                        return Stop::Fault(e, pc);
                    }
                }
            },
            _ => {}
        }
        if in_defer {
            if let Some((target, left, shadow)) = pending {
                if left <= 1 {
                    pending = None;
                    run_cycles += shadow;
                    next = target;
                } else {
                    pending = Some((target, left - 1, shadow));
                }
            }
        }
        pc = next;
    }
}

/// The atomic operation of a command, with the access size.
fn atomic_of(action: MemAction, bytes: usize) -> (ir::AtomicOp, ir::MemSize) {
    let op = match action {
        MemAction::AtomicAdd => ir::AtomicOp::Add,
        MemAction::AtomicOr => ir::AtomicOp::Or,
        MemAction::AtomicAnd => ir::AtomicOp::And,
        MemAction::AtomicXor => ir::AtomicOp::Xor,
        _ => ir::AtomicOp::Xchg,
    };
    let size = match bytes {
        1 => ir::MemSize::U8,
        2 => ir::MemSize::U16,
        4 => ir::MemSize::U32,
        _ => ir::MemSize::U64,
    };
    (op, size)
}

/// A memory command on a map image in chip memory; returns what comes back in the read
/// transfer registers.
fn chip_command(
    chip: &mut ChipMemory,
    action: MemAction,
    addr: u64,
    bytes: usize,
    operand: u64,
    expected: u64,
) -> Result<Option<u64>, Fault> {
    Ok(match action {
        MemAction::Read => Some(chip.load(addr, bytes)?),
        MemAction::Write => {
            chip.store_le(addr, bytes, operand)?;
            None
        }
        MemAction::CmpXchg => {
            chip.locate(addr, bytes, true)?;
            let old = chip.load(addr, bytes)?;
            if old == ir::semantics::truncate(expected, 8 * bytes as u32) {
                chip.store_le(addr, bytes, operand)?;
            }
            Some(old)
        }
        MemAction::Helper => {
            return Err(Fault::new("internal: a helper call addressed chip memory"))
        }
        _ => {
            chip.locate(addr, bytes, true)?;
            let old = chip.load(addr, bytes)?;
            let (op, size) = atomic_of(action, bytes);
            chip.store_le(addr, bytes, op.apply(size, old, operand))?;
            Some(old)
        }
    })
}

/// Executes one command against the runtime and returns its latency.
#[allow(clippy::too_many_arguments)]
fn command(
    code: &Code,
    ctx: &mut Context,
    rt: &mut Runtime,
    chip: &mut ChipMemory,
    st: &mut ExecState,
    level: MemLevel,
    action: MemAction,
    xfer: u8,
    count: u8,
    a: Operand,
    b: Operand,
    mode: AddrMode,
    token: u8,
) -> Result<u64, Fault> {
    let t = code.table;
    let x = xfer as usize;
    if action == MemAction::Helper {
        let id = ctx.read(st, b)? as i32 + 128 * token as i32;
        let mut args = [0u64; 5];
        for (i, arg) in args.iter_mut().enumerate().take(count.min(5) as usize) {
            *arg =
                ctx.xout[(x + 2 * i) & 31] as u64 | ((ctx.xout[(x + 2 * i + 1) & 31] as u64) << 32);
        }
        let latency = if matches!(id, 1..=3 | 195) {
            match rt.map_of_pointer(args[0]) {
                Ok(m) if chip.has_image(m) => {
                    return Err(Fault::new(format!(
                        "helper {id} reached the lookup engine for map {m}, which lives in chip memory: the runtime's copy of it is not the map the microcode keeps"
                    ))
                    .help("this is a compiler error: the NFP backend must operate on maps in chip memory with its routines"));
                }
                Ok(m) => {
                    let kind = map_kind(rt.maps()[m].map_type());
                    let lvl = code.map_levels.get(m).copied().unwrap_or(MemLevel::Emem);
                    t.map_operation(kind, lvl)
                }
                Err(_) => t.lookup.helper,
            }
        } else {
            t.lookup.helper
        };
        // Pointers into chip memory are lent to the runtime for the helper's duration. An
        // argument whose high word only looks like a map's region (a scalar such as
        // `bpf_perf_event_output`'s flags, with the sample size in the high word) points into
        // no value and is passed on unchanged. A scalar that happened to land inside a value
        // would be replaced by a runtime pointer: the words carry no type, and no program of
        // the corpus passes such a scalar (the differential test would show it).
        let mut lent = Vec::new();
        for arg in args.iter_mut().take(count.min(5) as usize) {
            if is_chip_region((*arg >> 32) as u32) && chip.locate(*arg, 0, false).is_ok() {
                let (p, at) = chip.lend(rt, *arg)?;
                *arg = p;
                lent.push(at);
            }
        }
        let outcome = helpers::call(rt, st, id, args);
        for at in lent {
            chip.take_back(rt, at);
        }
        let r = match outcome? {
            HelperOutcome::Return(v) => v,
            // The microcode compares the answer with the programs linked into the code store
            // and branches to the one named; all ones matches none and falls through.
            HelperOutcome::TailCall(p) => p as u64,
            HelperOutcome::TailCallFailed => u64::MAX,
        };
        ctx.xin[x & 31] = r as u32;
        ctx.xin[(x + 1) & 31] = (r >> 32) as u32;
        load_meta(ctx, st);
        return Ok(latency);
    }
    let (va, vb) = (ctx.read(st, a)?, ctx.read(st, b)?);
    let addr = match mode {
        AddrMode::Region => ((va as u64) << 32) | vb as u64,
        AddrMode::Implied => match level {
            MemLevel::Ctm => make_addr(REGION_PACKET, va.wrapping_add(vb)),
            MemLevel::Lm => make_addr(REGION_STACK, va.wrapping_add(vb)),
            _ => {
                return Err(Fault::new(format!(
                    "the implied address mode names no region at {}",
                    level.name()
                )))
            }
        },
    };
    let bytes = 1usize << count.min(6);
    if bytes > 8 {
        // A bulk transfer of 16 to 64 bytes, 4 bytes per transfer register.
        let words = bytes / 4;
        if x + words > 32 {
            return Err(Fault::new(format!(
                "a {bytes}-byte command at transfer register {x} runs past the 32 transfer registers"
            )));
        }
        let chip_addr = mode == AddrMode::Region && is_chip_region((addr >> 32) as u32);
        match action {
            MemAction::Read => {
                let data = if chip_addr {
                    chip.read_bytes(addr, bytes)?
                } else {
                    rt.read_bytes(st, addr, bytes)?
                };
                for (i, w) in data.chunks_exact(4).enumerate() {
                    ctx.xin[x + i] = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                }
            }
            MemAction::Write => {
                let data: Vec<u8> = ctx.xout[x..x + words]
                    .iter()
                    .flat_map(|w| w.to_le_bytes())
                    .collect();
                if chip_addr {
                    chip.write_bytes(addr, &data)?;
                } else {
                    rt.write_bytes(st, addr, &data)?;
                }
            }
            _ => {
                return Err(Fault::new(format!(
                    "{} of {bytes} bytes: atomic commands take at most 8 bytes",
                    action.name()
                )))
            }
        }
        return Ok(t.memory(level));
    }
    let operand = ctx.xout[x & 31] as u64 | ((ctx.xout[(x + 1) & 31] as u64) << 32);
    if mode == AddrMode::Region && is_chip_region((addr >> 32) as u32) {
        let expected = ctx.xout[(x + 2) & 31] as u64 | ((ctx.xout[(x + 3) & 31] as u64) << 32);
        let result = chip_command(chip, action, addr, bytes, operand, expected)?;
        if let Some(v) = result {
            ctx.xin[x & 31] = v as u32;
            ctx.xin[(x + 1) & 31] = (v >> 32) as u32;
        }
        return Ok(t.memory(level));
    }
    let result = match action {
        MemAction::Read => Some(rt.load(st, addr, bytes)?),
        MemAction::Write => {
            rt.store(st, addr, bytes, operand)?;
            None
        }
        MemAction::CmpXchg => {
            let old = rt.load_for_update(st, addr, bytes)?;
            let expected = ctx.xout[(x + 2) & 31] as u64 | ((ctx.xout[(x + 3) & 31] as u64) << 32);
            let bits = 8 * bytes as u32;
            if old == ir::semantics::truncate(expected, bits) {
                rt.store(st, addr, bytes, operand)?;
            }
            Some(old)
        }
        _ => {
            let op = match action {
                MemAction::AtomicAdd => ir::AtomicOp::Add,
                MemAction::AtomicOr => ir::AtomicOp::Or,
                MemAction::AtomicAnd => ir::AtomicOp::And,
                MemAction::AtomicXor => ir::AtomicOp::Xor,
                _ => ir::AtomicOp::Xchg,
            };
            let size = match bytes {
                1 => ir::MemSize::U8,
                2 => ir::MemSize::U16,
                4 => ir::MemSize::U32,
                _ => ir::MemSize::U64,
            };
            let old = rt.load_for_update(st, addr, bytes)?;
            rt.store(st, addr, bytes, op.apply(size, old, operand))?;
            Some(old)
        }
    };
    if let Some(v) = result {
        ctx.xin[x & 31] = v as u32;
        ctx.xin[(x + 1) & 31] = (v >> 32) as u32;
    }
    Ok(t.memory(level))
}
