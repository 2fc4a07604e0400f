//! Dead-code elimination: removes pure instructions whose results nothing needs, and block
//! parameters whose values nothing needs (with the branch arguments that fed them).
//!
//! Liveness is computed backwards from the roots: every operand of an instruction that must
//! stay (memory accesses, calls, the condition of a `brif`, `return`) is live; a live result of
//! a pure instruction makes its operands live; a live block parameter makes the matching
//! argument of every branch into the block live. Everything else is dead, even when it feeds
//! itself around a loop through block parameters, which a use count alone would miss.
//!
//! Only pure instructions ([`ir::instructions::Opcode::is_pure`]) are removed. Loads stay even
//! when unused: removing one is sound only if it cannot fault, and that depends on the kernel
//! verifier having accepted the program, which this pass does not assume.

use crate::cfg::ControlFlowGraph;
use crate::pass::{Pass, PassContext, PassError};
use cranelift_entity::SecondaryMap;
use ir::dfg::ValueDef;
use ir::instructions::InstructionData;
use ir::{Function, Module, Value};

/// The `dce` pass.
pub struct DeadCodeElimination;

impl Pass for DeadCodeElimination {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn description(&self) -> &'static str {
        "remove pure instructions and block parameters whose values are never needed"
    }

    fn run(&mut self, module: &mut Module, ctx: &mut PassContext) -> Result<bool, PassError> {
        let mut changed = false;
        for func in module.functions.values_mut() {
            let removed = eliminate_dead_code(func);
            ctx.stats
                .add(self.name(), "removed_insts", removed.insts as u64);
            ctx.stats
                .add(self.name(), "removed_params", removed.params as u64);
            changed |= removed.insts + removed.params > 0;
        }
        Ok(changed)
    }
}

/// How much one run removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub insts: usize,
    pub params: usize,
}

/// Removes dead pure instructions and dead block parameters of `func`.
pub fn eliminate_dead_code(func: &mut Function) -> Removed {
    let cfg = ControlFlowGraph::compute(func);
    let live = compute_liveness(func, &cfg);
    let mut removed = Removed::default();

    // Dead block parameters, last position first so earlier positions stay valid. The entry
    // block's parameters are the function's and must stay.
    let entry = func.entry_block();
    let blocks: Vec<_> = func.layout.blocks().collect();
    for &block in &blocks {
        if Some(block) == entry {
            continue;
        }
        let params = func.dfg.block_params(block).to_vec();
        for (pos, param) in params.iter().enumerate().rev() {
            if live[*param] {
                continue;
            }
            // A `brif` whose two edges go to this block is listed twice among its
            // predecessors, but its arguments must lose the position once per edge.
            let mut branches: Vec<_> = cfg.predecessors(block).iter().map(|p| p.1).collect();
            branches.sort();
            branches.dedup();
            for branch in branches {
                for dest in func.dfg.inst_mut(branch).branch_destinations_mut() {
                    if dest.block == block && pos < dest.args.len() {
                        dest.args.remove(pos);
                    }
                }
            }
            func.dfg.remove_block_param(block, pos);
            removed.params += 1;
        }
    }

    // Dead pure instructions.
    for &block in &blocks {
        let insts: Vec<_> = func.layout.block_insts(block).collect();
        for inst in insts {
            if !func.dfg.inst(inst).opcode().is_pure() {
                continue;
            }
            let dead = match func.dfg.inst_result(inst) {
                Some(v) => !live[v],
                None => true,
            };
            if dead {
                func.remove_inst(inst);
                removed.insts += 1;
            }
        }
    }
    removed
}

/// Which values some effect, branch condition or return needs.
pub fn compute_liveness(func: &Function, cfg: &ControlFlowGraph) -> SecondaryMap<Value, bool> {
    let mut live: SecondaryMap<Value, bool> = SecondaryMap::new();
    let mut worklist: Vec<Value> = Vec::new();
    let mark = |v: Value, live: &mut SecondaryMap<Value, bool>, wl: &mut Vec<Value>| {
        if !live[v] {
            live[v] = true;
            wl.push(v);
        }
    };
    for inst in func.insts() {
        let data = func.dfg.inst(inst);
        if data.opcode().is_pure() {
            continue;
        }
        match data {
            // Branch arguments are live only through the parameters they feed.
            InstructionData::Jump { .. } => {}
            InstructionData::Brif { args, .. } => {
                for &a in args {
                    mark(a, &mut live, &mut worklist);
                }
            }
            _ => data.for_each_arg(|a| mark(a, &mut live, &mut worklist)),
        }
    }
    while let Some(v) = worklist.pop() {
        if !func.dfg.value_is_valid(v) {
            continue;
        }
        match func.dfg.value_def(v) {
            ValueDef::Result(inst) => {
                let data = func.dfg.inst(inst);
                if data.opcode().is_pure() {
                    data.for_each_arg(|a| mark(a, &mut live, &mut worklist));
                }
            }
            ValueDef::Param(block, pos) => {
                for &(_, branch) in cfg.predecessors(block) {
                    for dest in func.dfg.inst(branch).branch_destinations() {
                        if dest.block == block {
                            if let Some(&a) = dest.args.get(pos) {
                                mark(a, &mut live, &mut worklist);
                            }
                        }
                    }
                }
            }
            ValueDef::Detached => {}
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_pass;

    #[test]
    fn unused_pure_chains_go_effects_stay() {
        check_pass(
            DeadCodeElimination,
            "function %f(i64) {
                 ss0 = stack 8
             block0(v0: i64):
                 v1 = iconst 1
                 v2 = add.w64 v0, v1
                 v3 = mul.w64 v2, v2
                 v4 = load.ctx.u32 v0+0
                 v5 = stack_addr ss0+0
                 store.stack(ss0).u64 v5+0, v1
                 v6 = call_helper 5()
                 return v1
             }",
            "function %f(i64) {
                 ss0 = stack 8
             block0(v0: i64):
                 v1 = iconst 1
                 v4 = load.ctx.u32 v0+0
                 v5 = stack_addr ss0+0
                 store.stack(ss0).u64 v5+0, v1
                 v6 = call_helper 5()
                 return v1
             }",
        );
    }

    #[test]
    fn loop_carried_values_nobody_reads_are_removed() {
        check_pass(
            DeadCodeElimination,
            "function %f(i64) {
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
                 return v2
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 0
                 jump block1(v0)
             block1(v2: i64):
                 brif eq.w64 v2, v1, block3, block2
             block2:
                 v4 = iconst 1
                 v5 = rsh.w64 v2, v4
                 jump block1(v5)
             block3:
                 return v2
             }",
        );
    }

    #[test]
    fn entry_parameters_and_live_parameters_stay() {
        let text = "function %f(i64, i64) {
             block0(v0: i64, v1: i64):
                 brif eq.w64 v0, v0, block1(v0, v0), block1(v0, v0)
             block1(v2: i64, v3: i64):
                 brif eq.w64 v2, v3, block2, block2
             block2:
                 return v0
             }";
        check_pass(DeadCodeElimination, text, text);
    }

    #[test]
    fn a_brif_with_both_edges_to_one_block_loses_a_dead_argument_once_per_edge() {
        // block1 is listed twice among the predecessors' branches; the live second argument
        // must survive on both edges.
        check_pass(
            DeadCodeElimination,
            "function %f(i64, i64) {
             block0(v0: i64, v1: i64):
                 brif eq.w64 v0, v1, block1(v0, v1), block1(v0, v1)
             block1(v2: i64, v3: i64):
                 return v3
             }",
            "function %f(i64, i64) {
             block0(v0: i64, v1: i64):
                 brif eq.w64 v0, v1, block1(v1), block1(v1)
             block1(v3: i64):
                 return v3
             }",
        );
    }
}
