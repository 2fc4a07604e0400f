//! Register allocation with precise live ranges and coalescing of block parameters.
//!
//! The linear scan in [`super::regalloc`] gives each value one interval without holes and
//! chooses registers one value at a time, so a block parameter and the arguments that feed it
//! often end up in different registers and every edge pays a copy. This allocator differs in
//! two ways:
//!
//! - **Live ranges with holes.** A value occupies its register only at the positions where it
//!   is live (one segment per block it lives in), so two values whose live ranges interleave
//!   in the linear order without ever being live together can share a register.
//! - **Coalescing.** Block parameters and their arguments are grouped (union-find) whenever
//!   their live ranges do not overlap; a group is given one register for all of its members at
//!   once when one is free over all of them, which makes the edge copies self-moves that the
//!   selector drops. Other preferences (a call argument's register, the first operand's
//!   register for a two-address operation) come from the same hints as the linear scan.
//!
//! The rules that keep the selector and the verifier happy are the linear scan's (see its
//! module docs): at most eight values hold registers at any position (so a scratch register
//! is always free), values live across a call sit in `r6`-`r9` or are
//! spilled to their own 8-byte slot, and constants, map and stack addresses are
//! rematerialized. `r0` is never allocated by [`allocate`]; [`allocate_with_r0`] also offers
//! it to values that no call clobbers and no `cmpxchg` touches, first of all to a helper's
//! result and to a returned value, and the selector then takes scratch registers from what is
//! free at each instruction. A value that finds no register is spilled (no eviction): the backend
//! compiles each function with both allocators and keeps the shorter code, so a program with
//! high register pressure loses nothing against the linear scan.

use super::layout::LinearOrder;
use super::regalloc::{
    block_liveness, is_call, layout_frame, operand_uses, register_hints, remat_of, AllocError,
    Allocation, Hint, Loc, FRAME_SIZE, MAX_ACTIVE,
};
use frontend::insn::Reg;
use ir::{Function, Value};
use std::collections::{HashMap, HashSet};

/// Inclusive position segments of one value.
type Segments = Vec<(u32, u32)>;

fn overlap(a: &Segments, b: &Segments) -> bool {
    a.iter()
        .any(|&(s1, e1)| b.iter().any(|&(s2, e2)| s1 <= e2 && s2 <= e1))
}

/// Which positions each register is taken at, and how many registers are taken at each.
struct Occupancy {
    taken: Vec<Vec<bool>>,
    count: Vec<u8>,
}

impl Occupancy {
    fn new(positions: usize) -> Occupancy {
        Occupancy {
            taken: vec![vec![false; positions]; 10],
            count: vec![0; positions],
        }
    }

    fn free(&self, r: Reg, segs: &Segments) -> bool {
        segs.iter().all(|&(s, e)| {
            (s..=e).all(|p| {
                let p = p as usize;
                !self.taken[r.0 as usize][p] && (self.count[p] as usize) < MAX_ACTIVE
            })
        })
    }

    fn take(&mut self, r: Reg, segs: &Segments) {
        for &(s, e) in segs {
            for p in s..=e {
                let p = p as usize;
                if !self.taken[r.0 as usize][p] {
                    self.taken[r.0 as usize][p] = true;
                    self.count[p] += 1;
                }
            }
        }
    }
}

fn find(parent: &mut HashMap<Value, Value>, v: Value) -> Value {
    let p = *parent.get(&v).unwrap_or(&v);
    if p == v {
        return v;
    }
    let root = find(parent, p);
    parent.insert(v, root);
    root
}

/// Allocates every value of `func` onto `r1`-`r9`.
pub fn allocate(func: &Function, order: &LinearOrder) -> Result<Allocation, AllocError> {
    allocate_with(func, order, false)
}

/// Allocates every value of `func`, letting values that live between two calls sit in `r0`
/// too. A helper's result then stays where the call left it (clang's `if r0 == 0` and
/// `*(u64 *)(r0 + 0)`), and a returned value is computed where `exit` reads it, saving the
/// copy out of or into `r0`. The selector then takes its scratch registers from whatever is
/// free at each instruction instead of always `r0`.
pub fn allocate_with_r0(func: &Function, order: &LinearOrder) -> Result<Allocation, AllocError> {
    allocate_with(func, order, true)
}

fn allocate_with(
    func: &Function,
    order: &LinearOrder,
    allow_r0: bool,
) -> Result<Allocation, AllocError> {
    let dfg = &func.dfg;
    let mut locs: HashMap<Value, Loc> = HashMap::new();
    for &b in &order.blocks {
        for &i in &order.insts[&b] {
            if let (Some(r), Some(v)) = (remat_of(dfg.inst(i)), dfg.inst_result(i)) {
                locs.insert(v, Loc::Remat(r));
            }
        }
    }
    let remat: HashSet<Value> = locs.keys().copied().collect();
    let is_remat = |v: &Value| remat.contains(v);
    let (live_in, live_out) = block_liveness(func, order, &is_remat);

    // Precise segments: one per block a value lives in.
    let mut segments: HashMap<Value, Segments> = HashMap::new();
    let mut used: HashSet<Value> = HashSet::new();
    let mut call_positions = Vec::new();
    // Instructions that use `r0` implicitly beyond what a value in `r0` survives.
    let mut r0_hostile: Vec<u32> = Vec::new();
    for &b in &order.blocks {
        let (start, end) = (order.block_start(b), order.block_end(b));
        let mut open: HashMap<Value, u32> = HashMap::new();
        let mut last: HashMap<Value, u32> = HashMap::new();
        for &p in dfg.block_params(b) {
            open.insert(p, start);
        }
        for &v in &live_in[&b] {
            open.insert(v, start);
        }
        for &i in &order.insts[&b] {
            let n = order.number[&i];
            let data = dfg.inst(i);
            for v in data.args() {
                used.insert(v);
            }
            for (v, late) in operand_uses(data) {
                if !is_remat(&v) {
                    let at = 2 * n + late as u32;
                    let l = last.entry(v).or_insert(at);
                    *l = (*l).max(at);
                }
            }
            if let Some(r) = dfg.inst_result(i) {
                if !is_remat(&r) {
                    open.insert(r, 2 * n + 1);
                }
            }
            if is_call(data) {
                call_positions.push(n);
            }
            if matches!(data, ir::InstructionData::CmpXchg { .. }) {
                r0_hostile.push(n);
            }
        }
        for (v, lo) in open {
            let hi = if live_out[&b].contains(&v) {
                end
            } else {
                last.get(&v).copied().unwrap_or(lo).max(lo)
            };
            segments.entry(v).or_default().push((lo, hi));
        }
    }
    let crosses_call = |segs: &Segments| {
        segs.iter()
            .any(|&(s, e)| call_positions.iter().any(|&n| s <= 2 * n && e > 2 * n))
    };
    // `r0` is a candidate for segments that no call clobbers (a call's own result starts
    // after it) and that touch no `cmpxchg`, which reads and writes `r0` itself.
    let r0_allowed = |segs: &Segments| {
        allow_r0
            && !crosses_call(segs)
            && segs
                .iter()
                .all(|&(s, e)| r0_hostile.iter().all(|&n| e < 2 * n || s > 2 * n + 1))
    };

    // Coalescing groups of block parameters and their arguments.
    let mut parent: HashMap<Value, Value> = HashMap::new();
    let mut group_segs: HashMap<Value, Segments> = HashMap::new();
    for &b in &order.blocks {
        let Some(&term) = order.insts[&b].last() else {
            continue;
        };
        for dest in dfg.inst(term).branch_destinations() {
            for (&a, &p) in dest.args.iter().zip(dfg.block_params(dest.block)) {
                if is_remat(&a) || !segments.contains_key(&a) || !segments.contains_key(&p) {
                    continue;
                }
                let (ra, rp) = (find(&mut parent, a), find(&mut parent, p));
                if ra == rp {
                    continue;
                }
                let sa = group_segs
                    .get(&ra)
                    .cloned()
                    .unwrap_or_else(|| segments[&ra].clone());
                let sp = group_segs
                    .get(&rp)
                    .cloned()
                    .unwrap_or_else(|| segments[&rp].clone());
                if overlap(&sa, &sp) {
                    continue;
                }
                parent.insert(ra, rp);
                let mut merged = sp;
                merged.extend(sa);
                group_segs.insert(rp, merged);
            }
        }
    }
    let mut members: HashMap<Value, Vec<Value>> = HashMap::new();
    let mut values: Vec<Value> = segments.keys().copied().collect();
    values.sort_by_key(|v| (segments[v].iter().map(|s| s.0).min(), *v));
    for &v in &values {
        let root = find(&mut parent, v);
        members.entry(root).or_default().push(v);
    }

    let mut hints = register_hints(func, order);
    if allow_r0 {
        add_r0_hints(func, order, &mut hints);
    }
    let positions = 2 * order.number.len() + 2;
    let mut occ = Occupancy::new(positions);
    let mut spilled: Vec<Value> = Vec::new();
    for &v in &values {
        if locs.contains_key(&v) || spilled.contains(&v) {
            continue;
        }
        let root = find(&mut parent, v);
        let pending: Vec<Value> = members[&root]
            .iter()
            .copied()
            .filter(|m| !locs.contains_key(m) && !spilled.contains(m))
            .collect();
        // The whole group first, then this value alone.
        let mut placed = false;
        if pending.len() > 1 {
            let segs: Segments = pending
                .iter()
                .flat_map(|m| segments[m].iter().copied())
                .collect();
            let wishes: Vec<&Hint> = pending
                .iter()
                .flat_map(|m| hints.get(m).into_iter().flatten())
                .collect();
            if let Some(r) = choose(
                &occ,
                &locs,
                &segs,
                crosses_call(&segs),
                r0_allowed(&segs),
                &wishes,
            ) {
                occ.take(r, &segs);
                for m in &pending {
                    locs.insert(*m, Loc::Reg(r));
                }
                placed = true;
            }
        }
        if !placed {
            let segs = &segments[&v];
            let wishes: Vec<&Hint> = hints.get(&v).into_iter().flatten().collect();
            match choose(
                &occ,
                &locs,
                segs,
                crosses_call(segs),
                r0_allowed(segs),
                &wishes,
            ) {
                Some(r) => {
                    occ.take(r, segs);
                    locs.insert(v, Loc::Reg(r));
                }
                None => spilled.push(v),
            }
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
        intervals: segments,
    })
}

/// Puts `r0` first among the wishes of a call's result and of a returned value: the call
/// leaves its result there and `exit` reads it from there.
fn add_r0_hints(func: &Function, order: &LinearOrder, hints: &mut HashMap<Value, Vec<Hint>>) {
    let dfg = &func.dfg;
    for &b in &order.blocks {
        for &i in &order.insts[&b] {
            let wants_r0 = match dfg.inst(i) {
                ir::InstructionData::CallHelper { .. } | ir::InstructionData::Call { .. } => {
                    dfg.inst_result(i)
                }
                ir::InstructionData::Return { value } => Some(*value),
                _ => None,
            };
            if let Some(v) = wants_r0 {
                hints.entry(v).or_default().insert(0, Hint::Reg(Reg::R0));
            }
        }
    }
}

/// The register for a value (or group) with these segments: a wished-for one if free, else
/// the lowest free one allowed (`r0` last, and only when `r0_ok`).
fn choose(
    occ: &Occupancy,
    locs: &HashMap<Value, Loc>,
    segs: &Segments,
    crosses_call: bool,
    r0_ok: bool,
    wishes: &[&Hint],
) -> Option<Reg> {
    let allowed = |r: Reg| {
        if r == Reg::R0 {
            r0_ok
        } else if crosses_call {
            (6..=9).contains(&r.0)
        } else {
            (1..=9).contains(&r.0)
        }
    };
    let wished = wishes.iter().filter_map(|h| match h {
        Hint::Reg(r) => Some(*r),
        Hint::SameAs(o) => match locs.get(o) {
            Some(Loc::Reg(r)) => Some(*r),
            _ => None,
        },
    });
    let mut candidates: Vec<Reg> = wished.collect();
    candidates.extend((1..=9).map(Reg));
    candidates.push(Reg::R0);
    candidates
        .into_iter()
        .find(|&r| allowed(r) && occ.free(r, segs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontend::insn::{Insn, Operand};
    use ir::semantics::AluOp;

    /// A map lookup whose result is tested and counted into, with no call after it.
    const LOOKUP: &str = r#"program fn0 "xdp"

map0 = map "counts" type 2 key 4 value 8 max 4

function fn0 %count(i64) {
    ss0 = stack 4
block0(v0: i64):
    v1 = stack_addr ss0+0
    v2 = load.ctx.u32 v0+0
    store.stack(ss0).u32 v1+0, v2
    v7 = map_ref map0
    v8 = call_helper 1(v7, v1)
    v9 = iconst 0
    brif eq.w64 v8, v9, block1, block2
block1:
    v10 = iconst 0
    return v10
block2:
    v11 = iconst 1
    atomic.map_value(map0).u64 add v8+0, v11
    v12 = iconst 2
    return v12
}
"#;

    fn lookup() -> (ir::Module, ir::FuncRef) {
        let module = ir::parse::parse_module(LOOKUP).unwrap_or_else(|e| panic!("{e}"));
        let f = module.programs[0].func;
        (module, f)
    }

    #[test]
    fn a_helper_result_and_a_returned_value_may_live_in_r0() {
        let (module, f) = lookup();
        let func = &module.functions[f];
        let order = LinearOrder::new(func);
        let with = allocate_with_r0(func, &order).unwrap_or_else(|e| panic!("{}", e.message));
        let without = allocate(func, &order).unwrap_or_else(|e| panic!("{}", e.message));
        let result = func
            .dfg
            .values()
            .map(|(v, _)| v)
            .find(|v| v.to_string() == "v8")
            .expect("v8 exists");
        assert_eq!(with.locs.get(&result), Some(&Loc::Reg(Reg::R0)));
        assert!(without.locs.values().all(|l| *l != Loc::Reg(Reg::R0)));
    }

    #[test]
    fn the_r0_strategy_copies_nothing_out_of_r0() {
        let (module, f) = lookup();
        let func = &module.functions[f];
        let order = LinearOrder::new(func);
        let alloc = allocate_with_r0(func, &order).unwrap_or_else(|e| panic!("{}", e.message));
        let code = super::super::isel::select(func, &order, &alloc)
            .unwrap_or_else(|e| panic!("{}", e.message));
        let copies_from_r0 = code
            .iter()
            .filter(|m| {
                matches!(
                    m,
                    super::super::branches::MachInsn::Insn(Insn::Alu {
                        op: AluOp::Mov,
                        src: Operand::Reg(Reg::R0),
                        ..
                    })
                )
            })
            .count();
        assert_eq!(copies_from_r0, 0, "{code:?}");
        // The whole function: the one strategy that wins is at least as short as plain
        // coalescing, which needs the copy.
        let lengths = super::super::strategy_lengths(&module, f);
        let of = |name: &str| lengths.iter().find(|(n, _)| *n == name).and_then(|x| x.1);
        assert!(of("coalescing-r0") < of("coalescing"), "{lengths:?}");
    }
}
