//! Register allocation onto the ten BPF registers, with spills inside the 512-byte frame.
//!
//! The allocator is a linear scan over one live interval per SSA value (Poletto and Sarkar),
//! chosen over graph colouring because BPF functions are small, the calling convention gives
//! only two register classes, and a single pass over sorted intervals is easy to check.
//!
//! The rules it follows, and why:
//!
//! - `r0` is never given to a value. It is the return register and every call clobbers it, so
//!   a value could only live there between a call and its first use; keeping it free gives the
//!   instruction selector a scratch register at every instruction and parallel moves a
//!   temporary for breaking cycles.
//! - `r1` to `r9` are allocatable, but at most eight values hold a register at any position.
//!   The ninth register is then free at every instruction whose result is spilled, which is
//!   exactly when the selector needs a second scratch register (one operand in `r0`, the
//!   other loaded from its spill slot).
//! - A value live across a call (a helper, a bpf-to-bpf call or a tail call) must be in one of
//!   the callee-saved `r6` to `r9`, or spilled, because calls clobber `r1` to `r5`.
//! - A spilled value lives in its own 8-byte slot for its whole life: it is stored right after
//!   its definition and loaded before each use. Slots are 8-byte aligned and written with
//!   64-bit stores, the one form in which the kernel verifier keeps a spilled pointer's type
//!   and a spilled scalar's range. Spill slots are never shared, so a parallel move can never
//!   write a slot another move of the same group still reads.
//! - Constants, map references, global-data addresses, stack addresses and function
//!   addresses are rematerialized at each use instead of occupying a register: they become
//!   immediates, `lddw` straight into a helper's argument register (where the verifier wants
//!   to see a map pointer), or an `r10`-relative access.
//!
//! A value's interval runs from the first to the last position where it is defined, used or
//! live (from block-level liveness), with no holes; that is conservative and always correct.

use super::layout::LinearOrder;
use frontend::insn::Reg;
use ir::{Block, FuncRef, Function, Inst, InstructionData, MapRef, Region, StackSlot, Value};
use std::collections::{HashMap, HashSet};

/// The size of the BPF frame of one function.
pub const FRAME_SIZE: i32 = 512;

/// How many values may hold a register at once (see the module docs for why not nine).
pub(crate) const MAX_ACTIVE: usize = 8;

/// A value that is recomputed where it is used rather than kept in a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remat {
    Const(i64),
    MapRef(MapRef),
    MapValue(MapRef, i32),
    Stack(StackSlot, i32),
    Func(FuncRef),
}

/// Where a value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    Reg(Reg),
    /// An 8-byte spill slot at this offset from `r10`.
    Spill(i16),
    Remat(Remat),
}

/// The frame of one function: IR stack slots and spill slots, as offsets from `r10`.
#[derive(Clone, Debug, Default)]
pub struct Frame {
    pub slots: HashMap<StackSlot, i32>,
    /// Bytes used below `r10`.
    pub size: i32,
}

/// The result of allocation for one function.
pub struct Allocation {
    pub locs: HashMap<Value, Loc>,
    pub frame: Frame,
    /// Values that have no use at all; their defining instructions may be skipped when pure.
    pub unused: HashSet<Value>,
    /// The positions where each value that is not rematerialized holds its location, as
    /// inclusive `(first, last)` segments.
    pub intervals: HashMap<Value, Vec<(u32, u32)>>,
}

/// Why allocation failed.
pub struct AllocError {
    pub message: String,
    pub inst: Option<Inst>,
}

/// The value an instruction defines that can be rematerialized, if any.
pub fn remat_of(data: &InstructionData) -> Option<Remat> {
    Some(match *data {
        InstructionData::Iconst { imm } => Remat::Const(imm),
        InstructionData::MapRef { map } => Remat::MapRef(map),
        InstructionData::MapValueAddr { map, offset } => Remat::MapValue(map, offset),
        InstructionData::StackAddr { slot, offset } => Remat::Stack(slot, offset),
        InstructionData::FuncAddr { func } => Remat::Func(func),
        _ => return None,
    })
}

/// The operands of an instruction with whether each is read late (at the result position),
/// which keeps the result from being given the operand's register.
pub fn operand_uses(data: &InstructionData) -> Vec<(Value, bool)> {
    match data {
        InstructionData::Binary { args, .. } => {
            vec![(args[0], false), (args[1], args[0] != args[1])]
        }
        InstructionData::Atomic {
            base,
            value,
            fetch: true,
            ..
        } => vec![(*base, true), (*value, false)],
        _ => data.args().into_iter().map(|v| (v, false)).collect(),
    }
}

/// True for instructions that clobber `r0` to `r5`.
pub fn is_call(data: &InstructionData) -> bool {
    matches!(
        data,
        InstructionData::CallHelper { .. }
            | InstructionData::Call { .. }
            | InstructionData::TailCall { .. }
    )
}

struct Interval {
    value: Value,
    start: u32,
    end: u32,
    crosses_call: bool,
}

/// Allocates every value of `func`.
pub fn allocate(func: &Function, order: &LinearOrder) -> Result<Allocation, AllocError> {
    allocate_with(func, order, SpillChoice::FurthestEnd)
}

/// The linear scan choosing as victim the value with the fewest uses, since a spilled value
/// costs one load per use: the furthest-ending value of the classic heuristic is often a
/// pointer read at every step of a parser, while a helper's result kept for one late use
/// costs one store and one load.
pub fn allocate_by_uses(func: &Function, order: &LinearOrder) -> Result<Allocation, AllocError> {
    allocate_with(func, order, SpillChoice::FewestUses)
}

/// Which value the linear scan spills when registers run out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpillChoice {
    /// The interval ending last (Poletto and Sarkar).
    FurthestEnd,
    /// The interval with the fewest uses, ties to the one ending last.
    FewestUses,
}

fn allocate_with(
    func: &Function,
    order: &LinearOrder,
    choice: SpillChoice,
) -> Result<Allocation, AllocError> {
    let dfg = &func.dfg;
    let mut use_count: HashMap<Value, usize> = HashMap::new();
    for &b in &order.blocks {
        for &i in &order.insts[&b] {
            dfg.inst(i)
                .for_each_arg(|v| *use_count.entry(v).or_insert(0) += 1);
        }
    }
    let uses_of = |v: &Value| use_count.get(v).copied().unwrap_or(0);
    let mut locs: HashMap<Value, Loc> = HashMap::new();
    // Rematerializable values first: they take no register and no interval.
    for &b in &order.blocks {
        for &i in &order.insts[&b] {
            if let (Some(r), Some(v)) = (remat_of(dfg.inst(i)), dfg.inst_result(i)) {
                locs.insert(v, Loc::Remat(r));
            }
        }
    }
    let is_remat = |v: &Value| matches!(locs.get(v), Some(Loc::Remat(_)));
    let (live_in, live_out) = block_liveness(func, order, &is_remat);

    // One interval per value that needs a register or a slot.
    let mut range: HashMap<Value, (u32, u32)> = HashMap::new();
    let touch = |v: Value, p: u32, range: &mut HashMap<Value, (u32, u32)>| {
        let e = range.entry(v).or_insert((p, p));
        e.0 = e.0.min(p);
        e.1 = e.1.max(p);
    };
    let mut call_positions = Vec::new();
    let mut used: HashSet<Value> = HashSet::new();
    for &b in &order.blocks {
        let start = order.block_start(b);
        let end = order.block_end(b);
        for &p in dfg.block_params(b) {
            touch(p, start, &mut range);
        }
        for v in &live_in[&b] {
            touch(*v, start, &mut range);
        }
        for v in &live_out[&b] {
            touch(*v, end, &mut range);
        }
        for &i in &order.insts[&b] {
            let n = order.number[&i];
            let data = dfg.inst(i);
            for v in data.args() {
                used.insert(v);
            }
            for (v, late) in operand_uses(data) {
                if !is_remat(&v) {
                    touch(v, 2 * n + late as u32, &mut range);
                }
            }
            if let Some(r) = dfg.inst_result(i) {
                if !is_remat(&r) {
                    touch(r, 2 * n + 1, &mut range);
                }
            }
            if is_call(data) {
                call_positions.push(n);
            }
        }
    }
    let interval_map = range.clone();
    let mut intervals: Vec<Interval> = range
        .into_iter()
        .map(|(value, (start, end))| Interval {
            value,
            start,
            end,
            crosses_call: call_positions
                .iter()
                .any(|&n| start <= 2 * n && end > 2 * n),
        })
        .collect();
    intervals.sort_by_key(|iv| (iv.start, iv.value));

    let hints = register_hints(func, order);
    let mut active: Vec<(u32, Value, Reg)> = Vec::new();
    let mut spilled: Vec<Value> = Vec::new();
    for iv in &intervals {
        active.retain(|&(end, _, _)| end >= iv.start);
        let allowed: Vec<Reg> = if iv.crosses_call {
            (6..=9).map(Reg).collect()
        } else {
            (1..=9).map(Reg).collect()
        };
        let busy: HashSet<Reg> = active.iter().map(|a| a.2).collect();
        let free: Vec<Reg> = allowed
            .iter()
            .copied()
            .filter(|r| !busy.contains(r))
            .collect();
        if active.len() < MAX_ACTIVE && !free.is_empty() {
            let hint = hints
                .get(&iv.value)
                .into_iter()
                .flatten()
                .filter_map(|h| match h {
                    Hint::Reg(r) => Some(*r),
                    Hint::SameAs(o) => match locs.get(o) {
                        Some(Loc::Reg(r)) => Some(*r),
                        _ => None,
                    },
                })
                .find(|r| free.contains(r));
            let reg = hint.unwrap_or(free[0]);
            locs.insert(iv.value, Loc::Reg(reg));
            active.push((iv.end, iv.value, reg));
            continue;
        }
        // Evict the active interval that ends last, if it ends after this one and its
        // register (or the count it frees) lets this interval have a register.
        let victim = match choice {
            SpillChoice::FurthestEnd => active
                .iter()
                .enumerate()
                .filter(|(_, a)| a.0 > iv.end)
                .filter(|(_, a)| allowed.contains(&a.2) || !free.is_empty())
                .max_by_key(|(_, a)| (a.0, a.1))
                .map(|(k, _)| k),
            // An active value is evicted only when it has fewer uses than this one; a spilled
            // value keeps its slot for its whole life, so any active value may go.
            SpillChoice::FewestUses => active
                .iter()
                .enumerate()
                .filter(|(_, a)| allowed.contains(&a.2) || !free.is_empty())
                .filter(|(_, a)| {
                    uses_of(&a.1) < uses_of(&iv.value)
                        || (uses_of(&a.1) == uses_of(&iv.value) && a.0 > iv.end)
                })
                .min_by_key(|(_, a)| (uses_of(&a.1), std::cmp::Reverse(a.0), a.1))
                .map(|(k, _)| k),
        };
        match victim {
            Some(k) => {
                let (_, v, r) = active.remove(k);
                let reg = if allowed.contains(&r) { r } else { free[0] };
                spilled.push(v);
                locs.remove(&v);
                locs.insert(iv.value, Loc::Reg(reg));
                active.push((iv.end, iv.value, reg));
            }
            None => spilled.push(iv.value),
        }
    }

    let mut frame = layout_frame(func, order)?;
    spilled.sort();
    for v in spilled {
        frame.size += 8;
        if frame.size > FRAME_SIZE {
            return Err(AllocError {
                message: format!(
                    "the function needs more than {FRAME_SIZE} bytes of stack: its stack slots and {} bytes of spilled values do not fit in the BPF frame",
                    frame.size
                ),
                inst: dfg.value_inst(v),
            });
        }
        locs.insert(v, Loc::Spill(-frame.size as i16));
    }
    let unused = dfg
        .values()
        .map(|(v, _)| v)
        .filter(|v| !used.contains(v))
        .collect();
    Ok(Allocation {
        locs,
        frame,
        unused,
        intervals: interval_map
            .into_iter()
            .map(|(v, r)| (v, vec![r]))
            .collect(),
    })
}

/// Values live into and out of every block, iterated to a fixed point in reverse order.
/// Rematerialized values are left out: they occupy nothing.
#[allow(clippy::type_complexity)]
pub(crate) fn block_liveness(
    func: &Function,
    order: &LinearOrder,
    is_remat: &dyn Fn(&Value) -> bool,
) -> (
    HashMap<Block, HashSet<Value>>,
    HashMap<Block, HashSet<Value>>,
) {
    let dfg = &func.dfg;
    let mut uses_of: HashMap<Block, HashSet<Value>> = HashMap::new();
    let mut defs_of: HashMap<Block, HashSet<Value>> = HashMap::new();
    for &b in &order.blocks {
        let mut defs: HashSet<Value> = dfg.block_params(b).iter().copied().collect();
        let mut uses = HashSet::new();
        for &i in &order.insts[&b] {
            for v in dfg.inst(i).args() {
                if !is_remat(&v) && !defs.contains(&v) {
                    uses.insert(v);
                }
            }
            if let Some(r) = dfg.inst_result(i) {
                defs.insert(r);
            }
        }
        uses_of.insert(b, uses);
        defs_of.insert(b, defs);
    }
    let mut live_in: HashMap<Block, HashSet<Value>> =
        order.blocks.iter().map(|&b| (b, HashSet::new())).collect();
    let mut live_out = live_in.clone();
    let mut changed = true;
    while changed {
        changed = false;
        for &b in order.blocks.iter().rev() {
            let mut out = HashSet::new();
            for s in func.successors(b) {
                if let Some(li) = live_in.get(&s) {
                    out.extend(li.iter().copied());
                }
            }
            let mut inn: HashSet<Value> = uses_of[&b].clone();
            for v in &out {
                if !defs_of[&b].contains(v) {
                    inn.insert(*v);
                }
            }
            if inn.len() != live_in[&b].len() || out.len() != live_out[&b].len() {
                changed = true;
            }
            live_in.insert(b, inn);
            live_out.insert(b, out);
        }
    }
    (live_in, live_out)
}

pub(crate) enum Hint {
    Reg(Reg),
    SameAs(Value),
}

/// Registers each value would like, best first: an argument register for values passed to a
/// call, the incoming register for parameters, and the register of a value it is copied from
/// or to (two-address operations, block arguments), so that moves disappear.
pub(crate) fn register_hints(func: &Function, order: &LinearOrder) -> HashMap<Value, Vec<Hint>> {
    let dfg = &func.dfg;
    let mut hints: HashMap<Value, Vec<Hint>> = HashMap::new();
    if let Some(entry) = order.blocks.first() {
        for (k, &p) in dfg.block_params(*entry).iter().enumerate().take(5) {
            hints
                .entry(p)
                .or_default()
                .push(Hint::Reg(Reg(k as u8 + 1)));
        }
    }
    for &b in &order.blocks {
        for &i in &order.insts[&b] {
            let data = dfg.inst(i);
            match data {
                InstructionData::CallHelper { args, .. } | InstructionData::Call { args, .. } => {
                    for (k, &a) in args.iter().enumerate().take(5) {
                        hints
                            .entry(a)
                            .or_default()
                            .push(Hint::Reg(Reg(k as u8 + 1)));
                    }
                }
                InstructionData::TailCall { ctx, index, .. } => {
                    hints.entry(*ctx).or_default().push(Hint::Reg(Reg(1)));
                    hints.entry(*index).or_default().push(Hint::Reg(Reg(3)));
                }
                InstructionData::Binary { args, .. } => {
                    if let Some(r) = dfg.inst_result(i) {
                        hints.entry(r).or_default().push(Hint::SameAs(args[0]));
                    }
                }
                InstructionData::Unary { arg, .. } | InstructionData::Endian { arg, .. } => {
                    if let Some(r) = dfg.inst_result(i) {
                        hints.entry(r).or_default().push(Hint::SameAs(*arg));
                    }
                }
                _ => {}
            }
            for dest in data.branch_destinations() {
                for (&a, &p) in dest.args.iter().zip(dfg.block_params(dest.block)) {
                    hints.entry(p).or_default().push(Hint::SameAs(a));
                    hints.entry(a).or_default().push(Hint::SameAs(p));
                }
            }
        }
    }
    hints
}

/// Places the function's IR stack slots below `r10`. Each slot keeps, modulo 8, the alignment
/// its accesses need: the verifier insists that stack accesses be aligned to their size, and
/// the lifter's slots need not start on an 8-byte boundary of the original frame.
pub(crate) fn layout_frame(func: &Function, order: &LinearOrder) -> Result<Frame, AllocError> {
    let dfg = &func.dfg;
    let mut accesses: HashMap<StackSlot, Vec<(i64, i64)>> = HashMap::new();
    for &b in &order.blocks {
        for &i in &order.insts[&b] {
            let data = dfg.inst(i);
            let (Some((Region::Stack(_), size)), Some(base)) =
                (data.memory_access(), mem_base(data))
            else {
                continue;
            };
            if let Some(InstructionData::StackAddr { slot, offset }) =
                dfg.value_inst(base).map(|bi| dfg.inst(bi))
            {
                let off = *offset as i64 + mem_offset(data) as i64;
                accesses
                    .entry(*slot)
                    .or_default()
                    .push((off, size.bytes() as i64));
            }
        }
    }
    let mut frame = Frame::default();
    let mut cursor: i64 = 0;
    for (slot, data) in func.stack_slots.iter() {
        let list = accesses.get(&slot).map(Vec::as_slice).unwrap_or(&[]);
        let residue = (0..8i64)
            .find(|r| {
                list.iter()
                    .all(|(off, size)| (r + off).rem_euclid(*size) == 0)
            })
            .unwrap_or(0);
        let mut start = cursor - data.size as i64;
        while start.rem_euclid(8) != residue {
            start -= 1;
        }
        cursor = start;
        if -cursor > FRAME_SIZE as i64 {
            return Err(AllocError {
                message: format!(
                    "the stack slots of the function need {} bytes, more than the {FRAME_SIZE}-byte BPF frame",
                    -cursor
                ),
                inst: None,
            });
        }
        frame.slots.insert(slot, cursor as i32);
    }
    // Spill slots follow, 8-byte aligned.
    frame.size = ((-cursor + 7) / 8 * 8) as i32;
    Ok(frame)
}

/// The base operand of a memory access.
pub fn mem_base(data: &InstructionData) -> Option<Value> {
    match *data {
        InstructionData::Load { base, .. }
        | InstructionData::Store { base, .. }
        | InstructionData::Atomic { base, .. }
        | InstructionData::CmpXchg { base, .. } => Some(base),
        _ => None,
    }
}

/// The offset of a memory access.
pub fn mem_offset(data: &InstructionData) -> i32 {
    match *data {
        InstructionData::Load { offset, .. }
        | InstructionData::Store { offset, .. }
        | InstructionData::Atomic { offset, .. }
        | InstructionData::CmpXchg { offset, .. } => offset,
        _ => 0,
    }
}
