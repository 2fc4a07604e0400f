//! CFG simplification: the structural cleanup every other pass benefits from.
//!
//! Repeated until nothing changes:
//! 1. **Fold branches.** A `brif` whose two destinations are the same block with the same
//!    arguments, whose operands are both constants, or whose operands are one value compared
//!    with itself (for every condition but `set`) always goes one way; it becomes a `jump`.
//!    The outcome is computed with [`ir::semantics::compare`], never re-derived.
//! 2. **Remove unreachable blocks.** Blocks the entry cannot reach go, with their instructions.
//!    No reachable code can use their values, because a definition must dominate its uses.
//! 3. **Thread jumps.** A branch to a block that holds nothing but a `jump` goes straight to
//!    that jump's destination, with the forwarded arguments substituted.
//! 4. **Merge blocks.** A block whose single incoming edge is a `jump` from a block with no
//!    other successor is appended to that predecessor; its parameters become the arguments.

use crate::cfg::ControlFlowGraph;
use crate::pass::{Pass, PassContext, PassError};
use cranelift_entity::SecondaryMap;
use ir::instructions::{BlockCall, InstructionData};
use ir::semantics::{self, JmpCond};
use ir::{Block, Function, Module, Value};

/// The `simplify-cfg` pass.
pub struct SimplifyCfg;

impl Pass for SimplifyCfg {
    fn name(&self) -> &'static str {
        "simplify-cfg"
    }

    fn description(&self) -> &'static str {
        "fold constant branches, remove unreachable blocks, thread jumps and merge straight-line blocks"
    }

    fn run(&mut self, module: &mut Module, ctx: &mut PassContext) -> Result<bool, PassError> {
        let mut changed = false;
        for func in module.functions.values_mut() {
            let s = simplify_function(func);
            ctx.stats
                .add(self.name(), "folded_branches", s.folded as u64);
            ctx.stats
                .add(self.name(), "removed_blocks", s.removed as u64);
            ctx.stats
                .add(self.name(), "threaded_jumps", s.threaded as u64);
            ctx.stats.add(self.name(), "merged_blocks", s.merged as u64);
            changed |= s.folded + s.removed + s.threaded + s.merged > 0;
        }
        Ok(changed)
    }
}

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Simplified {
    pub folded: usize,
    pub removed: usize,
    pub threaded: usize,
    pub merged: usize,
}

/// An upper bound on rounds; each round that changes something removes a block or a branch
/// direction, so real functions settle long before it.
const MAX_ROUNDS: usize = 64;

/// Simplifies the CFG of `func` until nothing changes.
pub fn simplify_function(func: &mut Function) -> Simplified {
    let mut total = Simplified::default();
    for _ in 0..MAX_ROUNDS {
        let folded = fold_branches(func);
        let removed = remove_unreachable_blocks(func);
        let threaded = thread_jumps(func);
        let removed2 = remove_unreachable_blocks(func);
        let merged = merge_blocks(func);
        total.folded += folded;
        total.removed += removed + removed2;
        total.threaded += threaded;
        total.merged += merged;
        if folded + removed + threaded + removed2 + merged == 0 {
            break;
        }
    }
    total
}

/// The direction a `brif` always takes, if its operands decide it: `Some(true)` for the taken
/// destination.
pub fn constant_branch_direction(func: &Function, data: &InstructionData) -> Option<bool> {
    let InstructionData::Brif {
        cond,
        width,
        args: [a, b],
        dests,
    } = data
    else {
        return None;
    };
    if dests[0] == dests[1] {
        return Some(true);
    }
    if let (Some(x), Some(y)) = (func.dfg.value_const(*a), func.dfg.value_const(*b)) {
        return Some(semantics::compare(*cond, *width, x as u64, y as u64));
    }
    if a == b && *cond != JmpCond::Set {
        // Every condition but `set` compares a value with itself the same way for every value.
        return Some(semantics::compare(*cond, *width, 0, 0));
    }
    None
}

/// Turns every `brif` whose direction is known into a `jump`. Returns how many.
pub fn fold_branches(func: &mut Function) -> usize {
    let mut folded = 0;
    let blocks: Vec<Block> = func.layout.blocks().collect();
    for block in blocks {
        let Some(term) = func.layout.last_inst(block) else {
            continue;
        };
        let data = func.dfg.inst(term);
        let Some(taken) = constant_branch_direction(func, data) else {
            continue;
        };
        let dest = data.branch_destinations()[if taken { 0 } else { 1 }].clone();
        func.dfg.replace_inst(term, InstructionData::Jump { dest });
        folded += 1;
    }
    folded
}

/// Removes blocks the entry cannot reach. Returns how many.
pub fn remove_unreachable_blocks(func: &mut Function) -> usize {
    let Some(entry) = func.entry_block() else {
        return 0;
    };
    let cfg = ControlFlowGraph::compute(func);
    let mut reachable: SecondaryMap<Block, bool> = SecondaryMap::new();
    let mut stack = vec![entry];
    reachable[entry] = true;
    while let Some(b) = stack.pop() {
        for &s in cfg.successors(b) {
            if !reachable[s] {
                reachable[s] = true;
                stack.push(s);
            }
        }
    }
    let dead: Vec<Block> = func.layout.blocks().filter(|b| !reachable[*b]).collect();
    for &block in &dead {
        let insts: Vec<_> = func.layout.block_insts(block).collect();
        for inst in insts {
            func.remove_inst(inst);
        }
        func.layout.remove_block(block);
    }
    dead.len()
}

/// If `block` holds only a `jump` (and is not the entry), that jump's destination.
fn forwarding_target(func: &Function, block: Block) -> Option<BlockCall> {
    if func.entry_block() == Some(block) {
        return None;
    }
    let first = func.layout.first_inst(block)?;
    if func.layout.last_inst(block) != Some(first) {
        return None;
    }
    match func.dfg.inst(first) {
        InstructionData::Jump { dest } if dest.block != block => Some(dest.clone()),
        _ => None,
    }
}

/// Retargets branches to forwarding blocks. Returns how many destinations changed.
///
/// The forwarded arguments are either parameters of the forwarding block, replaced by what the
/// branch passes for them, or values defined in a block that strictly dominates the forwarding
/// block and therefore also dominates each of its predecessors, so the substitution keeps every
/// use dominated by its definition.
pub fn thread_jumps(func: &mut Function) -> usize {
    let mut threaded = 0;
    let blocks: Vec<Block> = func.layout.blocks().collect();
    for block in blocks {
        let Some(term) = func.layout.last_inst(block) else {
            continue;
        };
        let n = func.dfg.inst(term).branch_destinations().len();
        for i in 0..n {
            let dest = func.dfg.inst(term).branch_destinations()[i].clone();
            let Some(target) = forwarding_target(func, dest.block) else {
                continue;
            };
            // A forwarding block that jumps to itself through this very branch is a loop of
            // empty blocks; leave it alone.
            if target.block == block && forwarding_target(func, block).is_some() {
                continue;
            }
            let params = func.dfg.block_params(dest.block);
            if params.len() != dest.args.len() {
                continue;
            }
            let args: Vec<Value> = target
                .args
                .iter()
                .map(|a| match params.iter().position(|p| p == a) {
                    Some(pos) => dest.args[pos],
                    None => *a,
                })
                .collect();
            func.dfg.inst_mut(term).branch_destinations_mut()[i] =
                BlockCall::new(target.block, args);
            threaded += 1;
        }
    }
    threaded
}

/// Appends blocks to their single predecessor. Returns how many blocks were merged.
pub fn merge_blocks(func: &mut Function) -> usize {
    let mut merged = 0;
    let entry = func.entry_block();
    let blocks: Vec<Block> = func.layout.blocks().collect();
    // A merge keeps every edge and every branch instruction; it only moves the merged block's
    // terminator into its predecessor. So the graph is computed once, and a predecessor that
    // has since been merged into another block is followed to where its code went now
    // (recomputing the graph per merge made this quadratic: 65 s for 23,000 instructions).
    let cfg = ControlFlowGraph::compute(func);
    let mut merged_into: SecondaryMap<Block, Option<Block>> = SecondaryMap::new();
    // The merged blocks' parameters are replaced by their arguments in one sweep at the end.
    let mut subst = ir::dfg::ValueSubstitution::new();
    let resolve = |merged_into: &SecondaryMap<Block, Option<Block>>, mut b: Block| {
        while let Some(next) = merged_into[b] {
            b = next;
        }
        b
    };
    for block in blocks {
        if Some(block) == entry || !func.layout.is_block_inserted(block) {
            continue;
        }
        let preds = cfg.predecessors(block);
        if preds.len() != 1 {
            continue;
        }
        let (pred, term) = preds[0];
        let pred = resolve(&merged_into, pred);
        if pred == block {
            continue;
        }
        let InstructionData::Jump { dest } = func.dfg.inst(term).clone() else {
            continue;
        };
        let params = func.dfg.block_params(block).to_vec();
        if params.len() != dest.args.len() {
            continue;
        }
        for (param, arg) in params.iter().zip(&dest.args) {
            subst.insert(*param, *arg);
        }
        for pos in (0..params.len()).rev() {
            func.dfg.remove_block_param(block, pos);
        }
        func.remove_inst(term);
        let insts: Vec<_> = func.layout.block_insts(block).collect();
        for inst in insts {
            func.layout.remove_inst(inst);
            func.layout.append_inst(inst, pred);
        }
        func.layout.remove_block(block);
        merged_into[block] = Some(pred);
        merged += 1;
    }
    func.dfg.apply_substitution(&subst);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_pass;

    #[test]
    fn constant_branch_becomes_jump_and_dead_side_goes() {
        check_pass(
            SimplifyCfg,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 3
                 v2 = iconst 5
                 brif gt.w64 v1, v2, block1, block2
             block1:
                 return v1
             block2:
                 return v2
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 3
                 v2 = iconst 5
                 return v2
             }",
        );
    }

    #[test]
    fn thirty_two_bit_compare_uses_low_halves() {
        // 0x1_0000_0001 > 2 at 64 bits but 1 < 2 at 32 bits.
        check_pass(
            SimplifyCfg,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 0x100000001
                 v2 = iconst 2
                 brif gt.w32 v1, v2, block1, block2
             block1:
                 return v1
             block2:
                 return v2
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 0x100000001
                 v2 = iconst 2
                 return v2
             }",
        );
    }

    #[test]
    fn identical_destinations_and_self_compare_fold() {
        check_pass(
            SimplifyCfg,
            "function %f(i64) {
             block0(v0: i64):
                 brif ge.w64 v0, v0, block1(v0), block2
             block1(v1: i64):
                 brif set.w64 v1, v1, block2, block2
             block2:
                 return v0
             }",
            "function %f(i64) {
             block0(v0: i64):
                 return v0
             }",
        );
    }

    #[test]
    fn set_of_a_value_with_itself_is_not_folded() {
        let text = "function %f(i64) {
             block0(v0: i64):
                 brif set.w64 v0, v0, block1, block2
             block1:
                 return v0
             block2:
                 v1 = iconst 0
                 return v1
             }";
        check_pass(SimplifyCfg, text, text);
    }

    #[test]
    fn jumps_through_empty_blocks_are_threaded_with_arguments() {
        check_pass(
            SimplifyCfg,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 1
                 brif eq.w64 v0, v1, block1(v0), block2
             block1(v2: i64):
                 jump block3(v2, v1)
             block2:
                 jump block3(v1, v0)
             block3(v3: i64, v4: i64):
                 v5 = add.w64 v3, v4
                 return v5
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 1
                 brif eq.w64 v0, v1, block3(v0, v1), block3(v1, v0)
             block3(v3: i64, v4: i64):
                 v5 = add.w64 v3, v4
                 return v5
             }",
        );
    }

    #[test]
    fn a_block_with_one_predecessor_is_merged() {
        check_pass(
            SimplifyCfg,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 1
                 jump block1(v1)
             block1(v2: i64):
                 v3 = add.w64 v0, v2
                 jump block2
             block2:
                 return v3
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 1
                 v3 = add.w64 v0, v1
                 return v3
             }",
        );
    }

    #[test]
    fn a_chain_of_single_predecessor_blocks_becomes_one_block_in_one_sweep() {
        // Each block's predecessor has itself just been merged away: the sweep must follow it
        // to the block its code went to.
        let mut func = ir::parse::parse_function(
            "function %f(i64) {
             block0(v0: i64):
                 jump block1(v0)
             block1(v1: i64):
                 v2 = iconst 1
                 v3 = add.w64 v1, v2
                 jump block2(v3)
             block2(v4: i64):
                 v5 = add.w64 v4, v4
                 jump block3(v5)
             block3(v6: i64):
                 return v6
             }",
        )
        .expect("parses");
        assert_eq!(merge_blocks(&mut func), 3);
        assert_eq!(func.layout.blocks().count(), 1);
        ir::verifier::verify_function(&func).expect("verifies");
    }

    #[test]
    fn loops_stay() {
        let text = "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 0
                 jump block1(v0, v1)
             block1(v2: i64, v3: i64):
                 brif eq.w64 v2, v1, block3, block2
             block2:
                 v4 = iconst 1
                 v5 = rsh.w64 v2, v4
                 v6 = add.w64 v3, v4
                 jump block1(v5, v6)
             block3:
                 return v3
             }";
        check_pass(SimplifyCfg, text, text);
    }

    #[test]
    fn an_empty_infinite_loop_does_not_hang() {
        check_pass(
            SimplifyCfg,
            "function %f(i64) {
             block0(v0: i64):
                 brif eq.w64 v0, v0, block1, block2
             block1:
                 jump block2
             block2:
                 jump block1
             }",
            "function %f(i64) {
             block0(v0: i64):
                 jump block2
             block2:
                 jump block2
             }",
        );
    }
}
