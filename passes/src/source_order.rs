//! Putting the pure instructions of each block back in source order.
//!
//! The e-graph keeps loads, stores, calls and terminators in program order and rebuilds the
//! pure dataflow of a block around them, placing the pure instructions after the skeleton
//! instructions they follow in the rebuild. A checksum that clang computes as
//! `load; add; load; add; ...` then comes back as eight loads followed by eight adds, with
//! eight values live at once where clang needed two, and the BPF register allocator spills.
//!
//! This pass lists each block again: among the instructions whose operands are ready it picks
//! the one with the smallest BPF instruction index of its source location (clang's own
//! schedule, which keeps register pressure low for BPF's ten registers), with the skeleton
//! instructions kept in their order and the terminator last. An instruction without a source
//! location takes the smallest index of its users, so it is placed just before where it is
//! needed.
//!
//! Only the order of pure instructions relative to others changes, never an operand: every
//! value is computed from the same values, and memory, calls and branches happen in the same
//! order, so the function computes exactly what it did.

use crate::pass::{Pass, PassContext, PassError};
use ir::{Block, Function, Inst, Module};
use std::collections::HashMap;

/// The `source-order` pass.
pub struct SourceOrder;

impl Pass for SourceOrder {
    fn name(&self) -> &'static str {
        "source-order"
    }

    fn description(&self) -> &'static str {
        "list each block's pure instructions in the order of their BPF source instructions"
    }

    fn run(&mut self, module: &mut Module, ctx: &mut PassContext) -> Result<bool, PassError> {
        let mut changed = false;
        for func in module.functions.values_mut() {
            let n = order_blocks(func);
            ctx.stats.add(self.name(), "reordered_blocks", n as u64);
            changed |= n > 0;
        }
        Ok(changed)
    }
}

/// Reorders every block of `func`; returns how many blocks changed.
pub fn order_blocks(func: &mut Function) -> usize {
    let blocks: Vec<Block> = func.layout.blocks().collect();
    let mut changed = 0;
    for block in blocks {
        let insts: Vec<Inst> = func.layout.block_insts(block).collect();
        let order = schedule(func, &insts);
        if order != insts {
            for &i in &insts {
                func.layout.remove_inst(i);
            }
            for &i in &order {
                func.layout.append_inst(i, block);
            }
            changed += 1;
        }
    }
    changed
}

/// The new order of one block's instructions.
fn schedule(func: &Function, insts: &[Inst]) -> Vec<Inst> {
    let n = insts.len();
    if n < 3 {
        return insts.to_vec();
    }
    let index: HashMap<Inst, usize> = insts.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let pure: Vec<bool> = insts
        .iter()
        .map(|&i| func.dfg.inst(i).opcode().is_pure())
        .collect();
    // Dependencies inside the block: operands defined here, and the previous skeleton
    // instruction for a skeleton instruction (the terminator is the last of them).
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut last_skeleton: Option<usize> = None;
    for (k, &i) in insts.iter().enumerate() {
        func.dfg.inst(i).for_each_arg(|v| {
            if let Some(&d) = func.dfg.value_inst(v).and_then(|d| index.get(&d)) {
                if d != k && !preds[k].contains(&d) {
                    preds[k].push(d);
                    users[d].push(k);
                }
            }
        });
        if !pure[k] || k == n - 1 {
            if let Some(p) = last_skeleton {
                if !preds[k].contains(&p) {
                    preds[k].push(p);
                    users[p].push(k);
                }
            }
            last_skeleton = Some(k);
        }
    }
    // The terminator follows everything.
    let sinks: Vec<usize> = (0..n - 1).filter(|&k| users[k].is_empty()).collect();
    for k in sinks {
        preds[n - 1].push(k);
        users[k].push(n - 1);
    }
    // Priorities: the source instruction index, or the smallest of the users' (users come
    // later in the block, so a backward walk sees them first).
    let mut key = vec![u64::MAX; n];
    for k in (0..n).rev() {
        let loc = func.srclocs[insts[k]];
        key[k] = if loc.is_none() {
            users[k].iter().map(|&u| key[u]).min().unwrap_or(u64::MAX)
        } else {
            loc.insn as u64
        };
    }
    let mut waiting: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..n).filter(|&k| waiting[k] == 0).collect();
    let mut out = Vec::with_capacity(n);
    while !ready.is_empty() {
        let (pos, &k) = ready
            .iter()
            .enumerate()
            .min_by_key(|(_, &k)| (key[k], k))
            .unwrap_or((0, &ready[0]));
        ready.swap_remove(pos);
        out.push(insts[k]);
        for &u in &users[k] {
            waiting[u] -= 1;
            if waiting[u] == 0 {
                ready.push(u);
            }
        }
    }
    if out.len() == n {
        out
    } else {
        // A dependency cycle cannot occur in verified IR; keep the block as it was.
        insts.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_pass;

    #[test]
    fn sums_interleave_with_their_loads_again() {
        check_pass(
            SourceOrder,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = load.packet.u32 v0+0     @1
                 v2 = load.packet.u32 v0+4     @2
                 v4 = load.packet.u32 v0+8     @4
                 v3 = add.w64 v1, v2           @3
                 v5 = add.w64 v3, v4           @5
                 return v5                     @6
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v1 = load.packet.u32 v0+0     @1
                 v2 = load.packet.u32 v0+4     @2
                 v3 = add.w64 v1, v2           @3
                 v4 = load.packet.u32 v0+8     @4
                 v5 = add.w64 v3, v4           @5
                 return v5                     @6
             }",
        );
    }

    #[test]
    fn skeleton_order_and_dependencies_win_over_source_order() {
        // The store must stay after the load it follows, and the add cannot go before its
        // operand even though its source index is smaller; the constant needs nothing.
        let text = "function %f(i64) {
             block0(v0: i64):
                 v1 = load.packet.u32 v0+0     @5
                 store.packet.u32 v0+4, v1     @2
                 v2 = iconst 1                 @1
                 v3 = add.w64 v1, v2           @0
                 return v3                     @6
             }";
        let out = "function %f(i64) {
             block0(v0: i64):
                 v2 = iconst 1                 @1
                 v1 = load.packet.u32 v0+0     @5
                 v3 = add.w64 v1, v2           @0
                 store.packet.u32 v0+4, v1     @2
                 return v3                     @6
             }";
        check_pass(SourceOrder, text, out);
    }
}
