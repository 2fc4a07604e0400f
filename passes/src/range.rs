//! Range analysis: what each value can be, and how long the packet is known to be, at every
//! point of a function.
//!
//! This is the part of the kernel verifier's reasoning that optimizations need. Scalars get
//! unsigned and signed intervals; packet pointers are tracked as `data + [lo, hi]`; and a
//! comparison of a packet pointer with `data_end` proves, on the edge where it holds, that
//! `data_end - data >= N`. Branch conditions refine intervals on the edges they guard, as the
//! kernel does when it follows each direction of a conditional jump.
//!
//! # How it is computed
//!
//! One walk over the blocks in reverse postorder. Facts about SSA values never stop being true
//! (a value never changes), so the fact computed where a value is defined holds at every use:
//! those live in one table. Facts that hold only on some paths (a refinement from a branch,
//! a proven packet length) live in the state carried along edges. At a block whose
//! predecessors are all visited, states are joined (a fact survives if every incoming edge has
//! it); block parameters get the hull of their arguments. At a loop header (a block with a
//! predecessor not yet visited) the analysis does not iterate: parameters are unknown, and the
//! state is the one at the end of the immediate dominator, whose value facts hold on every path
//! into the loop. Packet lengths survive into a loop only if the function contains no
//! instruction that can change the packet.
//!
//! # Packet pointers
//!
//! In an XDP program entry, `load.ctx.u32 ctx+0` is `data` and `load.ctx.u32 ctx+4` is
//! `data_end`, where `ctx` is the entry's first parameter. A helper that may move or resize the
//! packet (anything not known to leave it alone, such as `xdp_adjust_head`, `_tail` and
//! `_meta`) and every bpf-to-bpf call forget all packet lengths and make every `data` and
//! `data_end` loaded before them unusable, exactly as the kernel invalidates packet pointers.

use crate::cfg::{ControlFlowGraph, DominatorTree};
use cranelift_entity::SecondaryMap;
use imbl::{OrdMap, OrdSet};
use ir::instructions::{BinaryOp, InstructionData, Region, UnaryOp};
use ir::semantics::{self, ByteOrder, JmpCond, Width};
use ir::{Block, Function, Inst, MemSize, Module, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The kernel's limit on a constant packet offset (`MAX_PACKET_OFF`); offsets beyond it are not
/// tracked, which also keeps every offset sum far from overflow.
pub const MAX_PACKET_OFFSET: u64 = 0xffff;

/// Helpers known not to change packet data or its bounds; every other helper is assumed to.
/// IDs are the kernel's `BPF_FUNC_*` numbers.
const PACKET_PRESERVING_HELPERS: &[u32] = &[
    1,   // map_lookup_elem
    2,   // map_update_elem
    3,   // map_delete_elem
    5,   // ktime_get_ns
    6,   // trace_printk
    7,   // get_prandom_u32
    8,   // get_smp_processor_id
    23,  // redirect
    25,  // perf_event_output
    28,  // csum_diff
    51,  // redirect_map
    69,  // fib_lookup
    125, // ktime_get_boot_ns
    130, // ringbuf_output
    131, // ringbuf_reserve
    132, // ringbuf_submit
    133, // ringbuf_discard
];

/// True when `data` may change the packet's location or length.
pub fn may_change_packet(data: &InstructionData) -> bool {
    match data {
        InstructionData::CallHelper { helper, .. } => !PACKET_PRESERVING_HELPERS.contains(helper),
        InstructionData::Call { .. } => true,
        _ => false,
    }
}

/// An integer interval, both as unsigned and as signed 64-bit numbers. Every value in the set
/// lies in both intervals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interval {
    pub umin: u64,
    pub umax: u64,
    pub smin: i64,
    pub smax: i64,
}

impl Interval {
    pub const FULL: Interval = Interval {
        umin: 0,
        umax: u64::MAX,
        smin: i64::MIN,
        smax: i64::MAX,
    };

    pub fn exact(c: u64) -> Interval {
        Interval {
            umin: c,
            umax: c,
            smin: c as i64,
            smax: c as i64,
        }
    }

    /// `[lo, hi]` as unsigned numbers; the signed bounds follow when the interval does not
    /// cross the sign boundary.
    pub fn unsigned(lo: u64, hi: u64) -> Interval {
        let mut i = Interval {
            umin: lo,
            umax: hi,
            ..Interval::FULL
        };
        if (lo as i64) <= (hi as i64) {
            i.smin = lo as i64;
            i.smax = hi as i64;
        }
        i
    }

    /// `[lo, hi]` as signed numbers; the unsigned bounds follow when both have the same sign.
    pub fn signed(lo: i64, hi: i64) -> Interval {
        let mut i = Interval {
            smin: lo,
            smax: hi,
            ..Interval::FULL
        };
        if (lo < 0) == (hi < 0) {
            i.umin = lo as u64;
            i.umax = hi as u64;
        }
        i
    }

    /// The values representable in `bits` unsigned bits.
    pub fn bits(bits: u32) -> Interval {
        Interval::unsigned(0, semantics::truncate(u64::MAX, bits))
    }

    pub fn as_const(&self) -> Option<u64> {
        (self.umin == self.umax).then_some(self.umin)
    }

    /// The smallest interval holding both.
    pub fn hull(&self, other: &Interval) -> Interval {
        Interval {
            umin: self.umin.min(other.umin),
            umax: self.umax.max(other.umax),
            smin: self.smin.min(other.smin),
            smax: self.smax.max(other.smax),
        }
    }

    /// The intersection, tightened so the unsigned and signed views agree where they can;
    /// `None` when it is empty (the path is impossible).
    pub fn meet(&self, other: &Interval) -> Option<Interval> {
        let mut i = Interval {
            umin: self.umin.max(other.umin),
            umax: self.umax.min(other.umax),
            smin: self.smin.max(other.smin),
            smax: self.smax.min(other.smax),
        };
        // When the signed range has one sign it is also an unsigned range, and vice versa.
        if (i.smin < 0) == (i.smax < 0) {
            i.umin = i.umin.max(i.smin as u64);
            i.umax = i.umax.min(i.smax as u64);
        }
        if (i.umin as i64) <= (i.umax as i64) {
            i.smin = i.smin.max(i.umin as i64);
            i.smax = i.smax.min(i.umax as i64);
        }
        (i.umin <= i.umax && i.smin <= i.smax).then_some(i)
    }

    pub fn contains(&self, v: u64) -> bool {
        self.umin <= v && v <= self.umax && self.smin <= v as i64 && v as i64 <= self.smax
    }
}

/// What is known about one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fact {
    /// A number in this interval.
    Scalar(Interval),
    /// `base + off` with `base` a `data` load and `off` in `[lo, hi]` (at most
    /// [`MAX_PACKET_OFFSET`]).
    Packet { base: Value, lo: u64, hi: u64 },
    /// The `data_end` loaded by this very instruction.
    PacketEnd,
}

impl Fact {
    pub const UNKNOWN: Fact = Fact::Scalar(Interval::FULL);

    pub fn interval(&self) -> Option<Interval> {
        match self {
            Fact::Scalar(i) => Some(*i),
            _ => None,
        }
    }

    fn hull(&self, other: &Fact) -> Fact {
        match (self, other) {
            (Fact::Scalar(a), Fact::Scalar(b)) => Fact::Scalar(a.hull(b)),
            (
                Fact::Packet { base, lo, hi },
                Fact::Packet {
                    base: b2,
                    lo: l2,
                    hi: h2,
                },
            ) if base == b2 => Fact::Packet {
                base: *base,
                lo: (*lo).min(*l2),
                hi: (*hi).max(*h2),
            },
            _ => Fact::UNKNOWN,
        }
    }
}

/// What holds at one program point beyond the facts of the values themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
///
/// A state is kept for every branch and packet access, and neighbouring states differ in a
/// few entries, so the maps are persistent (imbl): a copy shares everything it does not
/// change. With ordinary maps the copies alone took 1.4 GB on a 23,532-instruction program.
pub struct State {
    /// Intervals narrowed by branch conditions on the way here.
    pub refined: OrdMap<Value, Interval>,
    /// `data` and `data_end` values loaded since the last instruction that may change the
    /// packet, on every path here.
    pub valid: OrdSet<Value>,
    /// `data_end - data >= len`, keyed by `(data, data_end)`.
    pub packet_len: OrdMap<(Value, Value), u64>,
}

impl State {
    fn join(&self, other: &State) -> State {
        let mut out = State::default();
        for (v, a) in &self.refined {
            if let Some(b) = other.refined.get(v) {
                out.refined.insert(*v, a.hull(b));
            }
        }
        out.valid = self.valid.clone().intersection(other.valid.clone());
        for (k, a) in &self.packet_len {
            if let Some(b) = other.packet_len.get(k) {
                out.packet_len.insert(*k, (*a).min(*b));
            }
        }
        out
    }

    /// The longest proven length of the packet starting at `data`.
    pub fn proven_len(&self, data: Value) -> u64 {
        self.packet_len
            .iter()
            .filter(|((d, e), _)| *d == data && self.valid.contains(e))
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    }

    fn invalidate_packet(&mut self) {
        self.valid.clear();
        self.packet_len.clear();
    }

    fn prove_len(&mut self, data: Value, end: Value, len: u64) {
        let known = self.packet_len.get(&(data, end)).copied().unwrap_or(0);
        self.packet_len.insert((data, end), known.max(len));
    }
}

/// The result of range analysis over one function.
#[derive(Clone, Debug, Default)]
pub struct RangeAnalysis {
    facts: SecondaryMap<Value, Option<Fact>>,
    /// The state at the start of each reachable block.
    block_in: SecondaryMap<Block, Option<State>>,
    /// The state right before each instruction that is a packet access or a branch.
    at_inst: BTreeMap<Inst, State>,
    /// The values that are `data` (first) and `data_end` (second) loads.
    packet_bases: BTreeSet<Value>,
    packet_ends: BTreeSet<Value>,
}

impl RangeAnalysis {
    /// Analyses `func`; `xdp_entry` says whether its first parameter is an XDP context.
    pub fn compute(func: &Function, xdp_entry: bool) -> RangeAnalysis {
        let mut ra = RangeAnalysis::default();
        let Some(entry) = func.entry_block() else {
            return ra;
        };
        let ctx = xdp_entry
            .then(|| func.dfg.block_params(entry).first().copied())
            .flatten();
        let cfg = ControlFlowGraph::compute(func);
        let dom = DominatorTree::compute(func, &cfg);
        let changes_packet = func.insts().any(|i| may_change_packet(func.dfg.inst(i)));
        let mut block_out: SecondaryMap<Block, Option<State>> = SecondaryMap::new();
        for &block in dom.reverse_postorder() {
            let preds = cfg.predecessors(block);
            let is_header = block == entry
                || preds.iter().any(|(p, _)| {
                    dom.rpo_number(*p)
                        .is_some_and(|n| Some(n) >= dom.rpo_number(block))
                });
            let mut state = if is_header {
                for &p in func.dfg.block_params(block) {
                    ra.facts[p] = Some(Fact::UNKNOWN);
                }
                let mut s = dom
                    .idom(block)
                    .and_then(|d| block_out[d].clone())
                    .unwrap_or_default();
                if changes_packet {
                    s.invalidate_packet();
                }
                s
            } else {
                ra.join_predecessors(func, &dom, &block_out, block, preds)
            };
            ra.block_in[block] = Some(state.clone());
            for inst in func.layout.block_insts(block) {
                let data = func.dfg.inst(inst);
                if matches!(data.memory_access(), Some((Region::Packet, _)))
                    || matches!(data, InstructionData::Brif { .. })
                {
                    ra.at_inst.insert(inst, state.clone());
                }
                if may_change_packet(data) {
                    state.invalidate_packet();
                }
                if let Some(v) = func.dfg.inst_result(inst) {
                    let fact = ra.transfer(data, v, ctx, &state);
                    match fact {
                        Fact::Packet { base, lo: 0, hi: 0 } if base == v => {
                            ra.packet_bases.insert(v);
                            state.valid.insert(v);
                        }
                        Fact::PacketEnd => {
                            ra.packet_ends.insert(v);
                            state.valid.insert(v);
                        }
                        _ => {}
                    }
                    ra.facts[v] = Some(fact);
                }
            }
            block_out[block] = Some(state);
        }
        ra
    }

    /// The state entering `block` along each incoming edge, joined, after binding parameters.
    fn join_predecessors(
        &mut self,
        func: &Function,
        dom: &DominatorTree,
        block_out: &SecondaryMap<Block, Option<State>>,
        block: Block,
        preds: &[(Block, Inst)],
    ) -> State {
        let params = func.dfg.block_params(block).to_vec();
        let mut joined: Option<State> = None;
        let mut param_facts: Vec<Option<Fact>> = vec![None; params.len()];
        for &(pred, branch) in preds {
            if !dom.is_reachable(pred) {
                continue;
            }
            let Some(out) = block_out[pred].as_ref() else {
                continue;
            };
            let data = func.dfg.inst(branch);
            for (which, dest) in data.branch_destinations().iter().enumerate() {
                if dest.block != block {
                    continue;
                }
                let Some(edge) = self.edge_state(func, data, which, out) else {
                    // The condition cannot hold on this edge: it contributes nothing.
                    continue;
                };
                for (slot, arg) in param_facts.iter_mut().zip(&dest.args) {
                    let f = self.fact_in(*arg, &edge);
                    *slot = Some(match slot {
                        Some(prev) => prev.hull(&f),
                        None => f,
                    });
                }
                joined = Some(match joined {
                    Some(j) => j.join(&edge),
                    None => edge,
                });
            }
        }
        for (p, f) in params.iter().zip(param_facts) {
            self.facts[*p] = Some(f.unwrap_or(Fact::UNKNOWN));
        }
        joined.unwrap_or_default()
    }

    /// The fact of `v` in `state`: its own fact, narrowed by the state's refinements.
    pub fn fact_in(&self, v: Value, state: &State) -> Fact {
        let own = self.fact(v);
        match (own, state.refined.get(&v)) {
            (Fact::Scalar(i), Some(r)) => Fact::Scalar(i.meet(r).unwrap_or(*r)),
            _ => own,
        }
    }

    /// What holds for `v` wherever it is defined.
    pub fn fact(&self, v: Value) -> Fact {
        self.facts
            .get(v)
            .copied()
            .flatten()
            .unwrap_or(Fact::UNKNOWN)
    }

    fn interval_in(&self, v: Value, state: &State) -> Interval {
        self.fact_in(v, state).interval().unwrap_or(Interval::FULL)
    }

    /// The state at the start of `block`, if it is reachable.
    pub fn block_state(&self, block: Block) -> Option<&State> {
        self.block_in[block].as_ref()
    }

    /// The state right before a packet access or a `brif`.
    pub fn state_before(&self, inst: Inst) -> Option<&State> {
        self.at_inst.get(&inst)
    }

    /// True when `v` is a `data` load of an XDP context.
    pub fn is_packet_base(&self, v: Value) -> bool {
        self.packet_bases.contains(&v)
    }

    /// True when `v` is a `data_end` load of an XDP context.
    pub fn is_packet_end(&self, v: Value) -> bool {
        self.packet_ends.contains(&v)
    }

    /// The fact for the result of `data` given `state`.
    fn transfer(
        &self,
        data: &InstructionData,
        result: Value,
        ctx: Option<Value>,
        state: &State,
    ) -> Fact {
        let iv = |v: Value| self.interval_in(v, state);
        match *data {
            InstructionData::Iconst { imm } => Fact::Scalar(Interval::exact(imm as u64)),
            InstructionData::Binary { op, width, args } => {
                let (a, b) = (self.fact_in(args[0], state), self.fact_in(args[1], state));
                if let (Fact::Scalar(x), Fact::Scalar(y)) = (a, b) {
                    if let (Some(cx), Some(cy)) = (x.as_const(), y.as_const()) {
                        return Fact::Scalar(Interval::exact(op.eval(width, cx, cy)));
                    }
                    return Fact::Scalar(binary_interval(op, width, x, y));
                }
                packet_arith(op, width, a, b)
            }
            InstructionData::Unary { op, width, arg } => {
                let x = iv(arg);
                if let Some(c) = x.as_const() {
                    return Fact::Scalar(Interval::exact(op.eval(width, c)));
                }
                Fact::Scalar(match (op, width) {
                    (UnaryOp::Mov, Width::W32) if x.umax <= u32::MAX as u64 => x,
                    (_, Width::W32) => Interval::bits(32),
                    (UnaryOp::Mov, Width::W64) => x,
                    (UnaryOp::MovSx8, _) => Interval::signed(-128, 127),
                    (UnaryOp::MovSx16, _) => Interval::signed(-32768, 32767),
                    (UnaryOp::MovSx32, _) => Interval::signed(i32::MIN as i64, i32::MAX as i64),
                    (UnaryOp::Neg, Width::W64) => Interval::FULL,
                })
            }
            InstructionData::Endian { order, bits, arg } => {
                let x = iv(arg);
                if let Some(c) = x.as_const() {
                    return Fact::Scalar(Interval::exact(semantics::byte_order(
                        order,
                        bits as u32,
                        c,
                    )));
                }
                let all = Interval::bits(bits as u32);
                Fact::Scalar(match order {
                    // On a little-endian machine `le` only truncates.
                    ByteOrder::ToLe if x.umax <= all.umax => x,
                    _ => all,
                })
            }
            InstructionData::Load {
                region,
                size,
                signed,
                base,
                offset,
            } => {
                if region == Region::Ctx && Some(base) == ctx && size == MemSize::U32 {
                    match offset {
                        // `data`: the load is its own base, which is how the caller tells it.
                        0 => {
                            return Fact::Packet {
                                base: result,
                                lo: 0,
                                hi: 0,
                            }
                        }
                        4 => return Fact::PacketEnd,
                        _ => {}
                    }
                }
                Fact::Scalar(load_interval(size, signed))
            }
            InstructionData::Atomic { size, .. } | InstructionData::CmpXchg { size, .. } => {
                Fact::Scalar(Interval::bits(size.bits()))
            }
            _ => Fact::UNKNOWN,
        }
    }
}

impl RangeAnalysis {
    /// The state on edge `which` (0: taken, 1: not taken) of the terminator `data`, given the
    /// state `out` at the end of its block; `None` when the edge cannot be followed.
    pub fn edge_state(
        &self,
        func: &Function,
        data: &InstructionData,
        which: usize,
        out: &State,
    ) -> Option<State> {
        let mut state = out.clone();
        let InstructionData::Brif {
            cond,
            width,
            args: [a, b],
            ..
        } = *data
        else {
            return Some(state);
        };
        let _ = func;
        // The condition that holds on this edge.
        let holds = if which == 0 { Some(cond) } else { negate(cond) };
        let Some(cond) = holds else {
            return Some(state);
        };
        if width == Width::W64 {
            self.refine_packet(cond, a, b, &mut state);
        }
        let (x, y) = (self.interval_in(a, &state), self.interval_in(b, &state));
        if let (Fact::Scalar(_), Fact::Scalar(_)) = (self.fact(a), self.fact(b)) {
            // A 32-bit comparison sees the low halves; it narrows the 64-bit values only when
            // both are known to fit in 32 bits, where the two comparisons agree (unsigned).
            let fits = x.umax <= u32::MAX as u64 && y.umax <= u32::MAX as u64;
            let usable = width == Width::W64 || (fits && is_unsigned(cond));
            if usable {
                let (nx, ny) = refine(cond, x, y)?;
                if nx != x {
                    state.refined.insert(a, nx);
                }
                if ny != y && a != b {
                    state.refined.insert(b, ny);
                }
            }
        }
        Some(state)
    }

    /// Records the packet length a comparison of `data + off` with `data_end` proves.
    fn refine_packet(&self, cond: JmpCond, a: Value, b: Value, state: &mut State) {
        // Normalize to `ptr REL end`.
        let (ptr, end, cond) = match (self.fact(a), self.fact(b)) {
            (Fact::Packet { .. }, Fact::PacketEnd) => (a, b, cond),
            (Fact::PacketEnd, Fact::Packet { .. }) => match swap(cond) {
                Some(c) => (b, a, c),
                None => return,
            },
            _ => return,
        };
        let Fact::Packet { base, lo, .. } = self.fact(ptr) else {
            return;
        };
        if !state.valid.contains(&base) || !state.valid.contains(&end) {
            return;
        }
        // `data + off <= data_end` proves `len >= off >= lo`; `<` proves one more byte.
        let len = match cond {
            JmpCond::Le | JmpCond::Eq => lo,
            JmpCond::Lt => lo + 1,
            _ => return,
        };
        state.prove_len(base, end, len);
    }
}

fn is_unsigned(cond: JmpCond) -> bool {
    matches!(
        cond,
        JmpCond::Eq | JmpCond::Ne | JmpCond::Gt | JmpCond::Ge | JmpCond::Lt | JmpCond::Le
    )
}

/// The condition that holds when `cond` does not (`set` has no such condition).
pub fn negate(cond: JmpCond) -> Option<JmpCond> {
    Some(match cond {
        JmpCond::Eq => JmpCond::Ne,
        JmpCond::Ne => JmpCond::Eq,
        JmpCond::Gt => JmpCond::Le,
        JmpCond::Ge => JmpCond::Lt,
        JmpCond::Lt => JmpCond::Ge,
        JmpCond::Le => JmpCond::Gt,
        JmpCond::Sgt => JmpCond::Sle,
        JmpCond::Sge => JmpCond::Slt,
        JmpCond::Slt => JmpCond::Sge,
        JmpCond::Sle => JmpCond::Sgt,
        JmpCond::Set => return None,
    })
}

/// The condition `b COND' a` equivalent to `a COND b`.
pub fn swap(cond: JmpCond) -> Option<JmpCond> {
    Some(match cond {
        JmpCond::Eq => JmpCond::Eq,
        JmpCond::Ne => JmpCond::Ne,
        JmpCond::Gt => JmpCond::Lt,
        JmpCond::Ge => JmpCond::Le,
        JmpCond::Lt => JmpCond::Gt,
        JmpCond::Le => JmpCond::Ge,
        JmpCond::Sgt => JmpCond::Slt,
        JmpCond::Sge => JmpCond::Sle,
        JmpCond::Slt => JmpCond::Sgt,
        JmpCond::Sle => JmpCond::Sge,
        JmpCond::Set => return None,
    })
}

/// Narrows `x` and `y` given that `x COND y` holds (64-bit view); `None` when it cannot hold.
fn refine(cond: JmpCond, x: Interval, y: Interval) -> Option<(Interval, Interval)> {
    let umax_below = |v: u64| Interval::unsigned(0, v);
    let umin_above = |v: u64| Interval::unsigned(v, u64::MAX);
    let smax_below = |v: i64| Interval::signed(i64::MIN, v);
    let smin_above = |v: i64| Interval::signed(v, i64::MAX);
    Some(match cond {
        JmpCond::Eq => {
            let m = x.meet(&y)?;
            (m, m)
        }
        JmpCond::Ne => {
            // Only an exact other side can shave an end off.
            let shave = |v: Interval, c: Option<u64>| -> Option<Interval> {
                match c {
                    Some(c) if v.umin == c && v.umax == c => None,
                    Some(c) if v.umin == c => v.meet(&umin_above(c + 1)),
                    Some(c) if v.umax == c => v.meet(&umax_below(c - 1)),
                    _ => Some(v),
                }
            };
            (shave(x, y.as_const())?, shave(y, x.as_const())?)
        }
        JmpCond::Lt => {
            if y.umax == 0 || x.umin == u64::MAX {
                return None;
            }
            (
                x.meet(&umax_below(y.umax - 1))?,
                y.meet(&umin_above(x.umin + 1))?,
            )
        }
        JmpCond::Le => (x.meet(&umax_below(y.umax))?, y.meet(&umin_above(x.umin))?),
        JmpCond::Gt => {
            let (ny, nx) = refine(JmpCond::Lt, y, x)?;
            (nx, ny)
        }
        JmpCond::Ge => {
            let (ny, nx) = refine(JmpCond::Le, y, x)?;
            (nx, ny)
        }
        JmpCond::Slt => {
            if y.smax == i64::MIN || x.smin == i64::MAX {
                return None;
            }
            (
                x.meet(&smax_below(y.smax - 1))?,
                y.meet(&smin_above(x.smin + 1))?,
            )
        }
        JmpCond::Sle => (x.meet(&smax_below(y.smax))?, y.meet(&smin_above(x.smin))?),
        JmpCond::Sgt => {
            let (ny, nx) = refine(JmpCond::Slt, y, x)?;
            (nx, ny)
        }
        JmpCond::Sge => {
            let (ny, nx) = refine(JmpCond::Sle, y, x)?;
            (nx, ny)
        }
        JmpCond::Set => (x, y),
    })
}

/// The interval of a loaded value.
fn load_interval(size: MemSize, signed: bool) -> Interval {
    if size == MemSize::U64 {
        return Interval::FULL;
    }
    if signed {
        let bits = size.bits();
        let max = (1i64 << (bits - 1)) - 1;
        Interval::signed(-max - 1, max)
    } else {
        Interval::bits(size.bits())
    }
}

/// Packet pointer arithmetic: `data + off` plus or minus a bounded scalar stays a packet
/// pointer; everything else about pointers is unknown.
fn packet_arith(op: BinaryOp, width: Width, a: Fact, b: Fact) -> Fact {
    if width != Width::W64 {
        return Fact::UNKNOWN;
    }
    match (op, a, b) {
        (BinaryOp::Add, Fact::Packet { base, lo, hi }, Fact::Scalar(s))
        | (BinaryOp::Add, Fact::Scalar(s), Fact::Packet { base, lo, hi })
            if s.umax <= MAX_PACKET_OFFSET && hi + s.umax <= MAX_PACKET_OFFSET =>
        {
            Fact::Packet {
                base,
                lo: lo + s.umin,
                hi: hi + s.umax,
            }
        }
        (BinaryOp::Sub, Fact::Packet { base, lo, hi }, Fact::Scalar(s)) if s.umax <= lo => {
            Fact::Packet {
                base,
                lo: lo - s.umax,
                hi: hi - s.umin,
            }
        }
        _ => Fact::UNKNOWN,
    }
}

/// The interval of `x op y` for scalar intervals, computed conservatively: whenever an
/// operation may wrap, the result is everything the width allows.
pub fn binary_interval(op: BinaryOp, width: Width, x: Interval, y: Interval) -> Interval {
    let (x, y, all) = match width {
        Width::W64 => (x, y, Interval::FULL),
        Width::W32 => {
            // A 32-bit operation reads the low halves; when a value does not fit, its low half
            // can be anything.
            let low = |v: Interval| {
                if v.umax <= u32::MAX as u64 {
                    v
                } else {
                    Interval::bits(32)
                }
            };
            (low(x), low(y), Interval::bits(32))
        }
    };
    let limit = all.umax;
    let r = match op {
        BinaryOp::Add => match x.umax.checked_add(y.umax) {
            // No sum wraps, so the smallest sum is the sum of the minima.
            Some(hi) if hi <= limit => Some(Interval::unsigned(x.umin + y.umin, hi)),
            _ => None,
        },
        BinaryOp::Sub if x.umin >= y.umax => {
            Some(Interval::unsigned(x.umin - y.umax, x.umax - y.umin))
        }
        BinaryOp::Mul => match x.umax.checked_mul(y.umax) {
            Some(hi) if hi <= limit => Some(Interval::unsigned(x.umin * y.umin, hi)),
            _ => None,
        },
        BinaryOp::And => Some(Interval::unsigned(0, x.umax.min(y.umax))),
        BinaryOp::Or | BinaryOp::Xor => {
            let m = x.umax.max(y.umax);
            let mask = if m == 0 {
                0
            } else {
                u64::MAX >> m.leading_zeros()
            };
            let lo = if op == BinaryOp::Or {
                x.umin.max(y.umin)
            } else {
                0
            };
            Some(Interval::unsigned(lo, mask.min(limit)))
        }
        BinaryOp::Rsh => y.as_const().map(|c| {
            let c = (c & (all_bits(width) - 1)) as u32;
            Interval::unsigned(x.umin >> c, x.umax >> c)
        }),
        BinaryOp::Lsh => y.as_const().and_then(|c| {
            let c = (c & (all_bits(width) - 1)) as u32;
            let hi = x.umax.checked_shl(c)?;
            (hi >> c == x.umax && hi <= limit).then(|| Interval::unsigned(x.umin << c, hi))
        }),
        BinaryOp::Div => y
            .as_const()
            .filter(|c| *c != 0)
            .map(|c| Interval::unsigned(x.umin / c, x.umax / c)),
        BinaryOp::Mod => y
            .as_const()
            .filter(|c| *c != 0)
            .map(|c| Interval::unsigned(0, x.umax.min(c - 1))),
        _ => None,
    };
    r.unwrap_or(all)
}

fn all_bits(width: Width) -> u64 {
    match width {
        Width::W64 => 64,
        Width::W32 => 32,
    }
}

/// Range analysis of every function of a module. Program entries whose kind starts with `xdp`
/// have an XDP context as first parameter.
pub fn analyze_module(module: &Module) -> BTreeMap<ir::FuncRef, RangeAnalysis> {
    module
        .functions
        .iter()
        .map(|(f, func)| (f, RangeAnalysis::compute(func, is_xdp_entry(module, f))))
        .collect()
}

/// True when `func` is a program entry of an XDP kind.
pub fn is_xdp_entry(module: &Module, func: ir::FuncRef) -> bool {
    module
        .programs
        .iter()
        .any(|p| p.func == func && p.kind.starts_with("xdp"))
}
