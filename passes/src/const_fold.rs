//! Constant folding without the e-graph: an operation whose operands are all constants becomes
//! an `iconst` of its result.
//!
//! The e-graph optimizer folds constants too, as an analysis; this pass exists so that the
//! cheap pipelines and the passes that run before the e-graph (CFG simplification folds
//! branches on constants, range analysis starts from them) see constants early. Every result is
//! computed by `ir::semantics` through the operation's `eval`, never re-derived here.

use crate::pass::{Pass, PassContext, PassError};
use ir::instructions::InstructionData;
use ir::semantics;
use ir::{Function, Module};

/// The `const-fold` pass.
pub struct ConstantFolding;

impl Pass for ConstantFolding {
    fn name(&self) -> &'static str {
        "const-fold"
    }

    fn description(&self) -> &'static str {
        "replace operations on constants by their result, computed with ir::semantics"
    }

    fn run(&mut self, module: &mut Module, ctx: &mut PassContext) -> Result<bool, PassError> {
        let mut changed = false;
        for func in module.functions.values_mut() {
            let n = fold_constants(func);
            ctx.stats.add(self.name(), "folded", n as u64);
            changed |= n > 0;
        }
        Ok(changed)
    }
}

/// Folds every foldable instruction of `func`, in layout order so that chains fold in one run
/// (definitions come before uses in a block, and blocks are visited in layout order, which
/// may leave a chain spanning blocks for the next run). Returns how many were folded.
pub fn fold_constants(func: &mut Function) -> usize {
    let mut folded = 0;
    let insts: Vec<_> = func.insts().collect();
    for inst in insts {
        let c = |v| func.dfg.value_const(v).map(|c| c as u64);
        let value = match *func.dfg.inst(inst) {
            InstructionData::Binary { op, width, args } => match (c(args[0]), c(args[1])) {
                (Some(a), Some(b)) => Some(op.eval(width, a, b)),
                _ => None,
            },
            InstructionData::Unary { op, width, arg } => c(arg).map(|a| op.eval(width, a)),
            InstructionData::Endian { order, bits, arg } => {
                c(arg).map(|a| semantics::byte_order(order, bits as u32, a))
            }
            _ => None,
        };
        if let Some(v) = value {
            func.dfg
                .replace_inst(inst, InstructionData::Iconst { imm: v as i64 });
            folded += 1;
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_pass;

    #[test]
    fn chains_fold_with_bpf_semantics() {
        check_pass(
            ConstantFolding,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 0xffffffff
                 v2 = iconst 1
                 v3 = add.w32 v1, v2
                 v4 = iconst 0
                 v5 = div.w64 v2, v4
                 v6 = mod.w64 v1, v4
                 v7 = be16 v1
                 v8 = neg.w64 v2
                 v9 = add.w64 v0, v3
                 return v9
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v1 = iconst 0xffffffff
                 v2 = iconst 1
                 v3 = iconst 0
                 v4 = iconst 0
                 v5 = iconst 0
                 v6 = iconst 0xffffffff
                 v7 = iconst 0xffff
                 v8 = iconst -1
                 v9 = add.w64 v0, v3
                 return v9
             }",
        );
    }
}
