//! Pointer provenance: what every register (and every spilled 8-byte stack word) holds.
//!
//! The kernel verifier types every register as a scalar or as a pointer of some kind (context,
//! packet, packet end, stack, map value, map). The lifter needs the same knowledge to give
//! every load and store its [`ir::Region`], and the stack analysis needs it to know which
//! stack bytes a pointer reaches. This module computes it by abstract interpretation over a
//! function's blocks: a forward data flow whose join merges equal kinds (forgetting an offset
//! that differs) and turns disagreeing kinds into [`Prov::Unknown`]. A constant zero joins with
//! any pointer as that pointer, because a checked null return (`if (!p) ...`) merges a null
//! path with a pointer path.
//!
//! Across bpf-to-bpf calls the analysis is interprocedural: a callee's parameters are the join
//! of what every call site passes, and a call's result is the join of what the callee returns.
//! A caller's stack pointer reaching a callee is `Unknown` there (it points into another
//! frame, which `ir::Region::Stack` cannot name).

use super::cfg::Cfg;
use super::helpers;
use crate::insn::{AtomicOp, CallTarget, Imm64, Insn, Operand, Reg, Size};
use crate::object::{MapDef, MapOrigin, ProgramKind};
use ir::semantics::{self, AluOp, Width};
use std::collections::{BTreeMap, HashMap};

/// What a register holds, as far as the analysis knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prov {
    /// Nothing reaches here yet (the bottom of the lattice), or the register is unset.
    Undef,
    /// A number; the constant when known.
    Scalar(Option<i64>),
    /// A pointer into the program context at this offset.
    Ctx(Option<i64>),
    /// A pointer into packet data (or packet metadata).
    Packet,
    /// The end of packet data (`data_end`).
    PacketEnd,
    /// A pointer into the current function's frame, as an offset from r10 (negative inside).
    Stack(Option<i64>),
    /// A pointer into a map value returned by a lookup (of this map, when known).
    MapValue(Option<u32>),
    /// A map (what `lddw rX, map` loads).
    MapPtr(u32),
    /// A pointer into the value of a global-data map, at this offset.
    Global(u32, Option<i64>),
    /// The address of the subprogram starting at this slot.
    Func(usize),
    /// Disagreeing or unknown contents (the top of the lattice).
    Unknown,
}

fn join_off(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    if a == b {
        a
    } else {
        None
    }
}

impl Prov {
    pub fn join(self, other: Prov) -> Prov {
        use Prov::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Undef, x) | (x, Undef) => x,
            (Scalar(a), Scalar(b)) => Scalar(join_off(a, b)),
            (Scalar(Some(0)), p) | (p, Scalar(Some(0))) if p.is_pointer() => p,
            (Ctx(a), Ctx(b)) => Ctx(join_off(a, b)),
            (Packet, PacketEnd) | (PacketEnd, Packet) => Packet,
            (Stack(a), Stack(b)) => Stack(join_off(a, b)),
            (MapValue(a), MapValue(b)) => MapValue(if a == b { a } else { None }),
            (Global(m, a), Global(n, b)) if m == n => Global(m, join_off(a, b)),
            _ => Unknown,
        }
    }

    pub fn is_pointer(self) -> bool {
        !matches!(self, Prov::Undef | Prov::Scalar(_) | Prov::Unknown)
    }

    /// The constant, for a known scalar.
    pub fn constant(self) -> Option<i64> {
        match self {
            Prov::Scalar(c) => c,
            _ => None,
        }
    }

    /// The same pointer moved by `delta` bytes (`None`: by an unknown amount).
    fn offset_by(self, delta: Option<i64>) -> Prov {
        let add = |o: Option<i64>| match (o, delta) {
            (Some(o), Some(d)) => o.checked_add(d),
            _ => None,
        };
        match self {
            Prov::Ctx(o) => Prov::Ctx(add(o)),
            Prov::Stack(o) => Prov::Stack(add(o)),
            Prov::Global(m, o) => Prov::Global(m, add(o)),
            Prov::Packet | Prov::PacketEnd => Prov::Packet,
            Prov::MapValue(m) => Prov::MapValue(m),
            _ => Prov::Unknown,
        }
    }
}

/// The abstract machine state before an instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// r0 to r10; r10 is always `Stack(Some(0))`.
    pub regs: [Prov; 11],
    /// What 8-byte stores left at 8-byte aligned frame offsets. A missing offset was never
    /// written on any path seen so far.
    pub stack: BTreeMap<i64, Prov>,
}

impl State {
    /// The state at a function's entry with these values in r1 to r5.
    pub fn entry(params: [Prov; 5]) -> State {
        let mut regs = [Prov::Undef; 11];
        regs[1..6].copy_from_slice(&params);
        regs[10] = Prov::Stack(Some(0));
        State {
            regs,
            stack: BTreeMap::new(),
        }
    }

    pub fn reg(&self, r: Reg) -> Prov {
        self.regs
            .get(r.0 as usize)
            .copied()
            .unwrap_or(Prov::Unknown)
    }

    fn set(&mut self, r: Reg, p: Prov) {
        // r10 is read-only; the lifter rejects writes to it, the analysis ignores them.
        if r.0 < 10 {
            self.regs[r.0 as usize] = p;
        }
    }

    fn operand(&self, src: Operand) -> Prov {
        match src {
            Operand::Reg(r) => self.reg(r),
            Operand::Imm(i) => Prov::Scalar(Some(i as i64)),
        }
    }

    /// Joins `other` into `self`; true when `self` changed.
    pub fn join_from(&mut self, other: &State) -> bool {
        let mut changed = false;
        for (a, b) in self.regs.iter_mut().zip(other.regs.iter()) {
            let j = a.join(*b);
            if j != *a {
                *a = j;
                changed = true;
            }
        }
        for (off, p) in &other.stack {
            let cur = self.stack.get(off).copied().unwrap_or(Prov::Undef);
            let j = cur.join(*p);
            if j != cur {
                self.stack.insert(*off, j);
                changed = true;
            }
        }
        changed
    }

    /// Forgets what the stack words overlapping `[lo, hi)` hold: something wrote a number there.
    fn clobber_stack(&mut self, lo: i64, hi: i64) {
        // Only the frame can hold anything: an address far below it (which the kernel would
        // refuse to dereference) must not make the analysis walk millions of words.
        let frame_bottom = -(ir::function::MAX_STACK_SLOT as i64);
        let (lo, hi) = (lo.max(frame_bottom), hi.min(0));
        if lo >= hi {
            return;
        }
        let keys: Vec<i64> = self
            .stack
            .range(lo.saturating_sub(7)..hi)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.stack.insert(k, Prov::Scalar(None));
        }
        // Words never written before become known numbers too, so that a later join with a
        // path that spilled a pointer there does not keep the pointer.
        let mut k = lo.div_euclid(8) * 8;
        while k < hi {
            self.stack.insert(k, Prov::Scalar(None));
            k += 8;
        }
    }

    fn clobber_all_stack(&mut self) {
        for v in self.stack.values_mut() {
            *v = Prov::Scalar(None);
        }
    }

    /// A store of `size` bytes of `value` through `base + off`.
    fn store(&mut self, base: Prov, off: i16, size: Size, value: Prov) {
        match base {
            Prov::Stack(Some(c)) => {
                let at = c + off as i64;
                if size == Size::DW && at % 8 == 0 {
                    self.stack.insert(at, value.join(Prov::Undef));
                } else {
                    self.clobber_stack(at, at + size.bytes() as i64);
                }
            }
            Prov::Stack(None) => self.clobber_all_stack(),
            _ => {}
        }
    }
}

/// What the analysis needs to know about the program.
pub struct Env<'a> {
    pub kind: ProgramKind,
    pub maps: &'a [MapDef],
    /// What each subprogram (by first slot) returns.
    pub returns: &'a HashMap<usize, Prov>,
}

impl Env<'_> {
    /// What a context load at `off` of `size` yields: packet pointers for the fields that hold
    /// them (`xdp_md.data`, `__sk_buff.data`, ...), numbers otherwise.
    fn ctx_field(&self, off: i64, size: Size) -> Prov {
        use ProgramKind::*;
        let field = match (self.kind, size) {
            (Xdp | Unknown, Size::W) => match off {
                0 | 8 => Some(Prov::Packet),
                4 => Some(Prov::PacketEnd),
                _ => None,
            },
            (
                SchedCls | SchedAct | SkSkb | LwtIn | LwtOut | LwtXmit | CgroupSkb | SocketFilter,
                Size::W,
            ) => match off {
                76 | 140 => Some(Prov::Packet),
                80 => Some(Prov::PacketEnd),
                _ => None,
            },
            (SkMsg, Size::DW) => match off {
                0 => Some(Prov::Packet),
                8 => Some(Prov::PacketEnd),
                _ => None,
            },
            _ => None,
        };
        field.unwrap_or(Prov::Scalar(None))
    }

    fn is_global(&self, map: i32) -> bool {
        usize::try_from(map)
            .ok()
            .and_then(|m| self.maps.get(m))
            .is_some_and(|m| matches!(m.origin, MapOrigin::GlobalData { .. }))
    }
}

/// The provenance of `op(a, b)` for an ALU operation.
fn alu(op: AluOp, width: Width, a: Prov, b: Prov) -> Prov {
    if width == Width::W64 {
        match op {
            AluOp::Mov => return b,
            AluOp::Add if a.is_pointer() && !b.is_pointer() => return a.offset_by(b.constant()),
            AluOp::Add if b.is_pointer() && !a.is_pointer() => return b.offset_by(a.constant()),
            AluOp::Sub if a.is_pointer() && !b.is_pointer() => {
                return a.offset_by(b.constant().and_then(|c| c.checked_neg()))
            }
            _ => {}
        }
    }
    let ca = if op == AluOp::Mov || matches!(op, AluOp::MovSx8 | AluOp::MovSx16 | AluOp::MovSx32) {
        Some(0)
    } else {
        a.constant()
    };
    match (ca, b.constant()) {
        (Some(x), Some(y)) => {
            Prov::Scalar(Some(semantics::alu(op, width, x as u64, y as u64) as i64))
        }
        _ if op == AluOp::Neg => Prov::Scalar(
            a.constant()
                .map(|x| semantics::alu(op, width, x as u64, 0) as i64),
        ),
        _ => Prov::Scalar(None),
    }
}

/// Applies instruction `insn` to `state`.
pub fn step(state: &mut State, slot: usize, insn: &Insn, env: &Env) {
    match *insn {
        Insn::Alu {
            width,
            op,
            dst,
            src,
        } => {
            let p = alu(op, width, state.reg(dst), state.operand(src));
            state.set(dst, p);
        }
        Insn::Endian { order, bits, dst } => {
            let p = match state.reg(dst).constant() {
                Some(c) => Prov::Scalar(Some(semantics::byte_order(order, bits, c as u64) as i64)),
                None => Prov::Scalar(None),
            };
            state.set(dst, p);
        }
        Insn::Imm64 { dst, imm } => {
            let p = match imm {
                Imm64::Value(v) => Prov::Scalar(Some(v as i64)),
                Imm64::MapFd(m) | Imm64::MapIdx(m) => match u32::try_from(m) {
                    Ok(m) => Prov::MapPtr(m),
                    Err(_) => Prov::Unknown,
                },
                Imm64::MapValue { fd: m, offset } | Imm64::MapIdxValue { index: m, offset } => {
                    match u32::try_from(m) {
                        Ok(mu) if env.is_global(m) => Prov::Global(mu, Some(offset as i64)),
                        Ok(mu) => Prov::MapValue(Some(mu)),
                        Err(_) => Prov::Unknown,
                    }
                }
                Imm64::Func(off) => {
                    let t = slot as i64 + 1 + off as i64;
                    usize::try_from(t).map(Prov::Func).unwrap_or(Prov::Unknown)
                }
                Imm64::BtfId { .. } => Prov::Unknown,
            };
            state.set(dst, p);
        }
        Insn::Imm64Tail => {}
        Insn::LoadAbs { .. } | Insn::LoadInd { .. } => {
            state.regs[0] = Prov::Scalar(None);
        }
        Insn::Load {
            size,
            dst,
            src,
            off,
            ..
        } => {
            let p = match state.reg(src) {
                Prov::Ctx(Some(c)) => env.ctx_field(c + off as i64, size),
                Prov::Stack(Some(c)) if size == Size::DW => {
                    match state.stack.get(&(c + off as i64)) {
                        Some(Prov::Undef) | None => Prov::Scalar(None),
                        Some(p) => *p,
                    }
                }
                _ => Prov::Scalar(None),
            };
            state.set(dst, p);
        }
        Insn::StoreImm {
            size,
            dst,
            off,
            imm,
        } => {
            state.store(state.reg(dst), off, size, Prov::Scalar(Some(imm as i64)));
        }
        Insn::StoreReg {
            size,
            dst,
            src,
            off,
        } => {
            let value = state.reg(src);
            state.store(state.reg(dst), off, size, value);
        }
        Insn::Atomic {
            size,
            op,
            fetch,
            dst,
            src,
            off,
        } => {
            state.store(state.reg(dst), off, size, Prov::Scalar(None));
            if op == AtomicOp::CmpXchg {
                state.regs[0] = Prov::Scalar(None);
            } else if fetch || op == AtomicOp::Xchg {
                state.set(src, Prov::Scalar(None));
            }
        }
        Insn::Ja { .. } | Insn::Jmp { .. } | Insn::Exit => {}
        Insn::Call(target) => {
            let r0 = match target {
                CallTarget::Helper(id) => {
                    // A helper given a stack pointer may write anything behind it (a number:
                    // helpers do not store pointers the lifter tracks).
                    for r in 1..=5 {
                        match state.regs[r] {
                            Prov::Stack(Some(c)) => state.clobber_stack(c, 0),
                            Prov::Stack(None) => state.clobber_all_stack(),
                            _ => {}
                        }
                    }
                    if id == helpers::MAP_LOOKUP_ELEM || id == helpers::MAP_LOOKUP_PERCPU_ELEM {
                        match state.regs[1] {
                            Prov::MapPtr(m) => Prov::MapValue(Some(m)),
                            _ => Prov::MapValue(None),
                        }
                    } else if helpers::returns_opaque_pointer(id) {
                        Prov::Unknown
                    } else {
                        Prov::Scalar(None)
                    }
                }
                CallTarget::Local(off) => {
                    if state.regs[1..6].iter().any(|p| matches!(p, Prov::Stack(_))) {
                        state.clobber_all_stack();
                    }
                    let callee = slot as i64 + 1 + off as i64;
                    usize::try_from(callee)
                        .ok()
                        .and_then(|c| env.returns.get(&c).copied())
                        .unwrap_or(Prov::Unknown)
                }
                CallTarget::Kfunc(_) | CallTarget::Register(_) => Prov::Unknown,
            };
            state.regs[0] = r0;
            for r in 1..=5 {
                state.regs[r] = Prov::Undef;
            }
        }
    }
}

/// Block entry states of one function at the fixpoint (`None` for unreachable blocks).
#[derive(Clone, Debug)]
pub struct FunctionProvenance {
    pub entry: Vec<Option<State>>,
}

impl FunctionProvenance {
    /// Calls `f(slot, insn, state_before)` for every reachable instruction, block by block in
    /// reverse postorder.
    pub fn replay(
        &self,
        cfg: &Cfg,
        insns: &[Insn],
        env: &Env,
        mut f: impl FnMut(usize, &Insn, &State),
    ) {
        for &b in &cfg.rpo {
            let Some(mut state) = self.entry[b].clone() else {
                continue;
            };
            for slot in cfg.slots(b, insns) {
                f(slot, &insns[slot], &state);
                step(&mut state, slot, &insns[slot], env);
            }
        }
    }

    /// The state at the end of every block of the function where `exit` runs, for return
    /// values; also the states before every local call, for callee parameters.
    fn calls_and_returns(
        &self,
        cfg: &Cfg,
        insns: &[Insn],
        env: &Env,
    ) -> (Vec<(usize, [Prov; 5])>, Prov) {
        let mut calls = Vec::new();
        let mut ret = Prov::Undef;
        self.replay(cfg, insns, env, |slot, insn, st| match insn {
            Insn::Call(CallTarget::Local(off)) => {
                let callee = slot as i64 + 1 + *off as i64;
                if let Ok(c) = usize::try_from(callee) {
                    let mut args = [Prov::Undef; 5];
                    args.copy_from_slice(&st.regs[1..6]);
                    calls.push((c, args));
                }
            }
            Insn::Exit => ret = ret.join(st.regs[0]),
            _ => {}
        });
        (calls, ret)
    }
}

/// Runs the data flow of one function from `entry` to its fixpoint.
pub fn analyze_function(cfg: &Cfg, insns: &[Insn], env: &Env, entry: State) -> FunctionProvenance {
    let n = cfg.blocks.len();
    let mut states: Vec<Option<State>> = vec![None; n];
    states[0] = Some(entry);
    let order: Vec<usize> = cfg.rpo.clone();
    let mut dirty = vec![false; n];
    dirty[0] = true;
    // Round-robin in reverse postorder until nothing changes. Offsets can only be forgotten
    // and kinds only rise to Unknown, so the lattice has finite height and this terminates;
    // the round limit is a guard against a bug, after which everything is made Unknown.
    for _round in 0..10_000 {
        let mut changed = false;
        for &b in &order {
            if !dirty[b] {
                continue;
            }
            dirty[b] = false;
            let Some(mut state) = states[b].clone() else {
                continue;
            };
            for slot in cfg.slots(b, insns) {
                step(&mut state, slot, &insns[slot], env);
            }
            for s in cfg.blocks[b].successors() {
                let updated = match &mut states[s] {
                    Some(existing) => existing.join_from(&state),
                    slot @ None => {
                        *slot = Some(state.clone());
                        true
                    }
                };
                if updated {
                    dirty[s] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    FunctionProvenance { entry: states }
}

/// Makes a caller's value meaningful in a callee: the caller's stack is another frame.
fn into_callee(p: Prov) -> Prov {
    match p {
        Prov::Stack(_) => Prov::Unknown,
        other => other,
    }
}

/// Provenance of every function of a program, interprocedurally. `functions` holds each
/// function's first slot and CFG; the first is the program entry, whose r1 is the context.
pub fn analyze_program(
    functions: &[(usize, &Cfg)],
    insns: &[Insn],
    kind: ProgramKind,
    maps: &[MapDef],
) -> (Vec<FunctionProvenance>, HashMap<usize, Prov>) {
    let mut params: HashMap<usize, [Prov; 5]> = HashMap::new();
    let mut returns: HashMap<usize, Prov> = HashMap::new();
    let mut entry_params = [Prov::Undef; 5];
    entry_params[0] = Prov::Ctx(Some(0));
    if let Some((start, _)) = functions.first() {
        params.insert(*start, entry_params);
    }
    let mut result = Vec::new();
    // Iterate until parameter and return summaries are stable; BPF call graphs are acyclic
    // and shallow, so a few rounds suffice. After the limit the last results stand, which is
    // safe because regions are only hints to later passes, never needed for correctness of
    // the lifted arithmetic.
    for _round in 0..16 {
        let env = Env {
            kind,
            maps,
            returns: &returns,
        };
        result.clear();
        let mut new_params: HashMap<usize, [Prov; 5]> = HashMap::new();
        new_params.insert(functions[0].0, entry_params);
        let mut new_returns = HashMap::new();
        for (start, cfg) in functions {
            let p = params.get(start).copied().unwrap_or([Prov::Unknown; 5]);
            let fp = analyze_function(cfg, insns, &env, State::entry(p));
            let (calls, ret) = fp.calls_and_returns(cfg, insns, &env);
            for (callee, args) in calls {
                let e = new_params.entry(callee).or_insert([Prov::Undef; 5]);
                for (a, b) in e.iter_mut().zip(args) {
                    *a = a.join(into_callee(b));
                }
            }
            new_returns.insert(*start, into_callee(ret));
            result.push(fp);
        }
        if new_params == params && new_returns == returns {
            break;
        }
        params = new_params;
        returns = new_returns;
    }
    (result, returns)
}
