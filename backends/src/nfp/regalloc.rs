//! Register allocation: linear scan over live intervals of 32-bit halves.
//!
//! Every half the shape analysis ([`super::shapes`]) leaves in a register gets one
//! general-purpose register for its whole live range. As the Linux JIT does, a value is
//! written to register `n` of *both* banks at once (`WR_AB`), so any two values can be the two
//! operands of one ALU instruction (one read through the A port, the other through the B
//! port) and the bank restriction never costs a copy; the price is that the 32 registers of
//! each bank hold the same 32 values. Registers 0 and 1 carry the return value to the exit
//! and registers 2 to 5 are scratch for the expansion of a single IR instruction; the others
//! are allocated.
//!
//! Blocks are laid out in reverse postorder and numbered; a value's interval runs from its
//! definition to its last use or the end of the last block it is live out of, which covers
//! loops because a loop's blocks are contiguous in reverse postorder from header to latch.
//! An operand's interval includes the instruction that consumes it, so an instruction's result
//! never shares a register with its operands and expansions may write the result's halves in
//! any order. A program that needs more registers than there are is rejected with the count.
//!
//! Moves are coalesced by hints: a block parameter and the arguments passed to it prefer one
//! register, so that when an argument's interval ends before the parameter's starts (a forward
//! edge) or the parameter's ends before the argument's starts (a loop's back edge), both get
//! the same register and the parallel move on that edge disappears. The half that is
//! allocated second takes the register of any hinted partner that is free at its start.

use super::shapes::{Half, Shape};
use ir::{Block, Function, Inst, Value};
use std::collections::{BTreeSet, HashMap, HashSet};

/// First allocatable register.
pub const FIRST_ALLOCATABLE: u8 = 6;
/// Registers per bank per context.
pub const REGISTERS: u8 = hw::nfp::regs::GPRS_PER_BANK;
/// Scratch registers for one instruction's expansion.
pub const SCRATCH: [u8; 4] = [2, 3, 4, 5];

/// Where each half lives.
#[derive(Clone, Debug, Default)]
pub struct Allocation {
    pub lo: HashMap<Value, u8>,
    pub hi: HashMap<Value, u8>,
    /// Largest number of registers live at once (allocatable ones).
    pub max_live: usize,
}

/// Why allocation failed: the position and how many registers were needed.
#[derive(Clone, Debug)]
pub struct OutOfRegisters {
    pub inst: Option<Inst>,
    pub needed: usize,
    pub available: usize,
}

/// Reverse postorder of the reachable blocks.
pub fn reverse_postorder(func: &Function) -> Vec<Block> {
    let Some(entry) = func.entry_block() else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    let mut post = Vec::new();
    let mut stack = vec![(entry, 0usize)];
    seen.insert(entry);
    while let Some((b, i)) = stack.pop() {
        let succ = func.successors(b);
        if i < succ.len() {
            stack.push((b, i + 1));
            let s = succ[i];
            if seen.insert(s) {
                stack.push((s, 0));
            }
        } else {
            post.push(b);
        }
    }
    post.reverse();
    post
}

/// Allocates registers for `func` with blocks in the order `order`.
pub fn allocate(
    func: &Function,
    order: &[Block],
    shapes: &HashMap<Value, Shape>,
) -> Result<Allocation, OutOfRegisters> {
    // Positions: each block has a start position (its parameters are defined there), then one
    // position per instruction.
    let mut pos_of_inst: HashMap<Inst, u32> = HashMap::new();
    let mut block_start: HashMap<Block, u32> = HashMap::new();
    let mut block_end: HashMap<Block, u32> = HashMap::new();
    let mut p = 0u32;
    for &b in order {
        block_start.insert(b, p);
        p += 1;
        for inst in func.block_insts(b) {
            pos_of_inst.insert(inst, p);
            p += 1;
        }
        block_end.insert(b, p - 1);
    }
    // Liveness by backward dataflow over blocks.
    let mut live_in: HashMap<Block, BTreeSet<Value>> = HashMap::new();
    let mut changed = true;
    while changed {
        changed = false;
        for &b in order.iter().rev() {
            let mut live: BTreeSet<Value> = BTreeSet::new();
            for s in func.successors(b) {
                if let Some(li) = live_in.get(&s) {
                    let params: HashSet<Value> = func.dfg.block_params(s).iter().copied().collect();
                    live.extend(li.iter().filter(|v| !params.contains(v)));
                }
            }
            let insts: Vec<Inst> = func.block_insts(b).collect();
            for &inst in insts.iter().rev() {
                if let Some(r) = func.dfg.inst_result(inst) {
                    live.remove(&r);
                }
                func.dfg.inst(inst).for_each_arg(|a| {
                    live.insert(a);
                });
            }
            for prm in func.dfg.block_params(b) {
                live.remove(prm);
            }
            if live_in.get(&b) != Some(&live) {
                live_in.insert(b, live);
                changed = true;
            }
        }
    }
    // Intervals.
    let mut start: HashMap<Value, u32> = HashMap::new();
    let mut end: HashMap<Value, u32> = HashMap::new();
    let mut def_inst: HashMap<Value, Inst> = HashMap::new();
    let extend = |end: &mut HashMap<Value, u32>, v: Value, at: u32| {
        let e = end.entry(v).or_insert(at);
        *e = (*e).max(at);
    };
    for &b in order {
        let bs = block_start[&b];
        for prm in func.dfg.block_params(b) {
            start.insert(*prm, bs);
            extend(&mut end, *prm, bs);
        }
        for v in live_in.get(&b).into_iter().flatten() {
            extend(&mut end, *v, bs);
        }
        for inst in func.block_insts(b) {
            let ip = pos_of_inst[&inst];
            if let Some(r) = func.dfg.inst_result(inst) {
                start.insert(r, ip);
                extend(&mut end, r, ip);
                def_inst.insert(r, inst);
            }
            func.dfg
                .inst(inst)
                .for_each_arg(|a| extend(&mut end, a, ip));
        }
        // Live out: live into any successor (parameters excluded).
        let be = block_end[&b];
        for s in func.successors(b) {
            if let Some(li) = live_in.get(&s) {
                let params: HashSet<Value> = func.dfg.block_params(s).iter().copied().collect();
                for v in li.iter().filter(|v| !params.contains(v)) {
                    extend(&mut end, *v, be);
                }
            }
        }
    }
    // Halves that need registers, by start.
    let mut halves: Vec<(u32, u32, Value, bool)> = Vec::new();
    for (v, s) in &start {
        let shape = shapes.get(v).copied().unwrap_or(Shape {
            lo: Half::Reg,
            hi: Half::Reg,
        });
        let e = end.get(v).copied().unwrap_or(*s);
        if shape.lo == Half::Reg {
            halves.push((*s, e, *v, false));
        }
        if shape.hi == Half::Reg {
            halves.push((*s, e, *v, true));
        }
    }
    halves.sort_by_key(|&(s, e, v, hi)| (s, e, v, hi));
    // Coalescing hints: each block parameter with every argument bound to it.
    let mut partners: HashMap<Value, Vec<Value>> = HashMap::new();
    for &b in order {
        for inst in func.block_insts(b) {
            for dest in func.dfg.inst(inst).branch_destinations() {
                let params = func.dfg.block_params(dest.block);
                for (p, a) in params.iter().zip(&dest.args) {
                    if p != a {
                        partners.entry(*p).or_default().push(*a);
                        partners.entry(*a).or_default().push(*p);
                    }
                }
            }
        }
    }
    let available = (REGISTERS - FIRST_ALLOCATABLE) as usize;
    let mut free: BTreeSet<u8> = (FIRST_ALLOCATABLE..REGISTERS).collect();
    let mut active: Vec<(u32, u8)> = Vec::new();
    let mut out = Allocation::default();
    for (s, e, v, hi) in halves {
        active.retain(|&(ae, r)| {
            if ae < s {
                free.insert(r);
                false
            } else {
                true
            }
        });
        let taken = if hi { &out.hi } else { &out.lo };
        let hinted = partners
            .get(&v)
            .into_iter()
            .flatten()
            .filter_map(|p| taken.get(p))
            .find(|r| free.contains(r))
            .copied();
        let Some(r) = hinted.or_else(|| free.iter().next().copied()) else {
            return Err(OutOfRegisters {
                inst: def_inst.get(&v).copied(),
                needed: active.len() + 1,
                available,
            });
        };
        free.remove(&r);
        active.push((e, r));
        out.max_live = out.max_live.max(active.len());
        if hi {
            out.hi.insert(v, r);
        } else {
            out.lo.insert(v, r);
        }
    }
    Ok(out)
}
