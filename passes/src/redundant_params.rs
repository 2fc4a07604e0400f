//! Redundant block parameters: a parameter that receives the same value on every incoming
//! edge is that value, so it is replaced by it and removed with its arguments.
//!
//! Lifting gives a block one parameter per register or stack word that is live into it and
//! may differ between predecessors; after branches fold and blocks merge, many of them get the
//! same value from every edge (the packet pointer, `data_end`, a return code set before the
//! first check). Each such parameter costs the BPF backend a register copy on every edge, and
//! it hides from the register allocator that the value is one and the same. This is the
//! "trivial phi" removal of Braun et al. ("Simple and Efficient Construction of Static Single
//! Assignment Form", CC 2013): a parameter whose arguments, ignoring the parameter itself (a
//! loop passing it around unchanged), are all one value `x` is `x`.
//!
//! Two parameters are also the same when every edge passes an `iconst` of one constant, even
//! through different `iconst` instructions: the parameter then becomes an `iconst` at the top
//! of its block, which every backend rematerializes for free.
//!
//! Safety of the replacement: `x` reaches the block on every edge, so its definition dominates
//! every predecessor; it is only used in place of the parameter when its defining block also
//! strictly dominates the parameter's block, which the SSA verifier requires and which holds
//! for every reachable block but the entry (whose parameters are the function's and stay).

use crate::cfg::{ControlFlowGraph, DominatorTree};
use crate::pass::{Pass, PassContext, PassError};
use ir::dfg::{ValueDef, ValueSubstitution};
use ir::instructions::InstructionData;
use ir::{Block, Function, Inst, Module, Value};

/// The `redundant-params` pass.
pub struct RedundantParams;

impl Pass for RedundantParams {
    fn name(&self) -> &'static str {
        "redundant-params"
    }

    fn description(&self) -> &'static str {
        "replace block parameters that receive one value (or one constant) on every edge by it"
    }

    fn run(&mut self, module: &mut Module, ctx: &mut PassContext) -> Result<bool, PassError> {
        let mut changed = false;
        for func in module.functions.values_mut() {
            let n = remove_redundant_params(func);
            ctx.stats.add(self.name(), "removed_params", n as u64);
            changed |= n > 0;
        }
        Ok(changed)
    }
}

/// What a redundant parameter stands for.
enum Replacement {
    Value(Value),
    Const(i64),
}

/// Removes redundant parameters until none is left (removing one can make another redundant,
/// when it was the only differing argument). Returns how many were removed.
pub fn remove_redundant_params(func: &mut Function) -> usize {
    let mut removed = 0;
    loop {
        let cfg = ControlFlowGraph::compute(func);
        let dom = DominatorTree::compute(func, &cfg);
        let entry = func.entry_block();
        let blocks: Vec<Block> = func.layout.blocks().collect();
        let mut round = 0;
        // Replacements are applied once per round: one sweep over the function per removed
        // parameter made this quadratic on large programs. Until then, arguments are read
        // through the substitution.
        let mut subst = ValueSubstitution::new();
        for block in blocks {
            if Some(block) == entry || !dom.is_reachable(block) {
                continue;
            }
            let mut branches: Vec<Inst> = cfg.predecessors(block).iter().map(|p| p.1).collect();
            branches.sort();
            branches.dedup();
            if branches.is_empty() {
                continue;
            }
            let params = func.dfg.block_params(block).to_vec();
            for (pos, &param) in params.iter().enumerate().rev() {
                let Some(replacement) = redundant(func, &dom, &subst, block, pos, param, &branches)
                else {
                    continue;
                };
                let new = match replacement {
                    Replacement::Value(v) => v,
                    Replacement::Const(c) => {
                        let inst = func.dfg.make_inst(InstructionData::Iconst { imm: c });
                        let loc = func
                            .layout
                            .first_inst(block)
                            .map(|i| func.srclocs[i])
                            .unwrap_or(ir::SrcLoc::NONE);
                        match func.layout.first_inst(block) {
                            Some(first) => func.layout.insert_inst_before(inst, first),
                            None => func.layout.append_inst(inst, block),
                        }
                        func.srclocs[inst] = loc;
                        func.dfg.first_result(inst)
                    }
                };
                for &branch in &branches {
                    for dest in func.dfg.inst_mut(branch).branch_destinations_mut() {
                        if dest.block == block && pos < dest.args.len() {
                            dest.args.remove(pos);
                        }
                    }
                }
                func.dfg.remove_block_param(block, pos);
                subst.insert(param, new);
                round += 1;
            }
        }
        func.dfg.apply_substitution(&subst);
        removed += round;
        if round == 0 {
            return removed;
        }
    }
}

/// What the parameter at `pos` of `block` always receives, if it is redundant.
fn redundant(
    func: &Function,
    dom: &DominatorTree,
    subst: &ValueSubstitution,
    block: Block,
    pos: usize,
    param: Value,
    branches: &[Inst],
) -> Option<Replacement> {
    let mut args = Vec::new();
    for &branch in branches {
        for dest in func.dfg.inst(branch).branch_destinations() {
            if dest.block == block {
                args.push(subst.resolve(*dest.args.get(pos)?));
            }
        }
    }
    args.retain(|&a| a != param);
    let first = *args.first()?;
    if args.iter().all(|&a| a == first) {
        let def_block = match func.dfg.value_def(first) {
            ValueDef::Result(inst) => func.layout.inst_block(inst)?,
            ValueDef::Param(b, _) => b,
            ValueDef::Detached => return None,
        };
        return (def_block != block && dom.dominates(def_block, block))
            .then_some(Replacement::Value(first));
    }
    let c = func.dfg.value_const(first)?;
    args.iter()
        .all(|&a| func.dfg.value_const(a) == Some(c))
        .then_some(Replacement::Const(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_pass;

    #[test]
    fn one_value_on_every_edge_replaces_the_parameter() {
        check_pass(
            RedundantParams,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 2
                 brif eq.w64 v0, v1, block1(v0, v1), block2
             block2:
                 v2 = iconst 3
                 jump block1(v0, v2)
             block1(v3: i64, v4: i64):
                 v5 = add.w64 v3, v4
                 return v5
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 2
                 brif eq.w64 v0, v1, block1(v1), block2
             block2:
                 v2 = iconst 3
                 jump block1(v2)
             block1(v4: i64):
                 v5 = add.w64 v0, v4
                 return v5
             }",
        );
    }

    #[test]
    fn equal_constants_become_one_constant_and_loops_pass_themselves() {
        check_pass(
            RedundantParams,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 7
                 brif eq.w64 v0, v1, block1(v1), block2
             block2:
                 v2 = iconst 7
                 jump block1(v2)
             block1(v3: i64):
                 brif eq.w64 v3, v0, block1(v3), block3
             block3:
                 return v3
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 7
                 brif eq.w64 v0, v1, block1, block2
             block2:
                 v2 = iconst 7
                 jump block1
             block1:
                 v4 = iconst 7
                 brif eq.w64 v4, v0, block1, block3
             block3:
                 return v4
             }",
        );
    }

    #[test]
    fn parameters_that_differ_or_are_defined_in_the_loop_stay() {
        let text = "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 0
                 jump block1(v1)
             block1(v2: i64):
                 v3 = iconst 1
                 v4 = add.w64 v2, v3
                 brif eq.w64 v4, v0, block2, block1(v4)
             block2:
                 return v2
             }";
        check_pass(RedundantParams, text, text);
    }
}
