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
//! module docs): `r0` is never allocated, at most eight values hold registers at any position
//! (so a scratch register is always free), values live across a call sit in `r6`-`r9` or are
//! spilled to their own 8-byte slot, and constants, map and stack addresses are
//! rematerialized. A value that finds no register is spilled (no eviction): the backend
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

/// Allocates every value of `func`.
pub fn allocate(func: &Function, order: &LinearOrder) -> Result<Allocation, AllocError> {
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

    let hints = register_hints(func, order);
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
            if let Some(r) = choose(&occ, &locs, &segs, crosses_call(&segs), &wishes) {
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
            match choose(&occ, &locs, segs, crosses_call(segs), &wishes) {
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

/// The register for a value (or group) with these segments: a wished-for one if free, else
/// the lowest free one allowed.
fn choose(
    occ: &Occupancy,
    locs: &HashMap<Value, Loc>,
    segs: &Segments,
    crosses_call: bool,
    wishes: &[&Hint],
) -> Option<Reg> {
    let allowed = |r: Reg| {
        if crosses_call {
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
    candidates
        .into_iter()
        .find(|&r| allowed(r) && occ.free(r, segs))
}
