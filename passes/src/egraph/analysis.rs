//! Constant folding and known-zero upper bits, as an egg [`Analysis`].
//!
//! Every e-class carries [`ClassFacts`]: its constant value when all of its operands are
//! constants, and an upper bound on how many low bits of its value can be non-zero. The
//! constant is computed by [`eval_node`], which calls `ir::semantics`, so constant folding
//! cannot disagree with the interpreter on a corner case (division by zero, shift masking,
//! 32-bit wrap-around). [`Analysis::modify`] adds the constant as a node of its class, which
//! is what lets rules with constant operands fire and lets extraction pick the constant.
//!
//! The bit bound lets rules drop zero extensions and masks that cannot change a value, such
//! as `mov.w32` applied to a `u32` load or `and 0xff` applied to a byte. Leaves get their
//! bound from what the optimizer knows about the IR value (a zero-extending load of `n`
//! bytes), through [`BpfAnalysis::leaf_bits`].
//!
//! When two classes with different constants merge, a rule was unsound; rather than panic,
//! the analysis counts the conflict and the optimizer leaves that block unchanged.

use super::language::{eval_node, BpfLang, NodeOp};
use egg::{Analysis, DidMerge, EGraph, Id, Language};
use ir::{BinaryOp, UnaryOp, Value};
use std::collections::HashMap;

/// The e-graph type the optimizer uses.
pub type BpfEGraph = EGraph<BpfLang, BpfAnalysis>;

/// What is known about every value of an e-class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassFacts {
    /// The value, when it is a constant.
    pub constant: Option<u64>,
    /// Every value of the class is below `2^bits` (64 means nothing is known).
    pub bits: u32,
}

impl ClassFacts {
    /// The facts of a constant.
    pub fn of_constant(c: u64) -> ClassFacts {
        ClassFacts {
            constant: Some(c),
            bits: significant_bits(c),
        }
    }
}

/// The number of low bits needed to write `c` (0 for zero).
pub fn significant_bits(c: u64) -> u32 {
    64 - c.leading_zeros()
}

/// The analysis state: facts about leaves, and how many constant conflicts were seen.
#[derive(Clone, Debug, Default)]
pub struct BpfAnalysis {
    /// Bit bounds of leaf values known from their definition (a `u16` load has 16).
    pub leaf_bits: HashMap<Value, u32>,
    /// Merges of classes with different constants: a sign of an unsound rule.
    pub conflicts: u32,
}

/// Computes the facts of a node from the facts of its children. This is the whole analysis,
/// kept free of the e-graph so tests can check it against evaluation directly.
pub fn node_facts(node: &BpfLang, child: impl Fn(Id) -> ClassFacts, leaf_bits: u32) -> ClassFacts {
    let op = node.op();
    let kids: Vec<ClassFacts> = node.children().iter().map(|&c| child(c)).collect();
    let constants: Option<Vec<u64>> = kids.iter().map(|k| k.constant).collect();
    if let Some(values) = constants {
        if let Some(value) = eval_node(op, &values) {
            return ClassFacts::of_constant(value);
        }
    }
    let bits = match op {
        NodeOp::Const(c) => significant_bits(c as u64),
        NodeOp::Leaf(_) => leaf_bits.min(64),
        NodeOp::Binary(op, width) => {
            let (a, b) = (kids[0], kids[1]);
            let limit = width.bits();
            let bound = match op {
                BinaryOp::And => a.bits.min(b.bits),
                BinaryOp::Or | BinaryOp::Xor => a.bits.max(b.bits),
                BinaryOp::Add => a.bits.max(b.bits) + 1,
                BinaryOp::Mul => a.bits + b.bits,
                // An unsigned quotient or remainder is never above the dividend (a remainder
                // by zero is the dividend itself).
                BinaryOp::Div | BinaryOp::Mod => a.bits,
                BinaryOp::Rsh => match b.constant {
                    Some(count) => a.bits.saturating_sub((count % limit as u64) as u32),
                    None => a.bits,
                },
                _ => limit,
            };
            // A 32-bit operation reads only the low 32 bits of its operands, so a bound above
            // 32 on an operand says nothing; the result is zero-extended in any case.
            bound.min(limit)
        }
        NodeOp::Unary(op, width) => match (op, width) {
            (UnaryOp::Mov, _) => kids[0].bits.min(32),
            (_, w) => w.bits(),
        },
        // A branch condition is 0 or 1.
        NodeOp::Compare(..) | NodeOp::Not => 1,
        NodeOp::Endian(_, bits) => (bits as u32).min(match op {
            NodeOp::Endian(ir::semantics::ByteOrder::ToLe, _) => kids[0].bits,
            _ => 64,
        }),
    };
    ClassFacts {
        constant: None,
        bits: bits.min(64),
    }
}

impl Analysis<BpfLang> for BpfAnalysis {
    type Data = ClassFacts;

    fn make(egraph: &mut BpfEGraph, enode: &BpfLang, _id: Id) -> ClassFacts {
        let leaf_bits = match enode {
            BpfLang::Leaf(l) => egraph.analysis.leaf_bits.get(&l.0).copied().unwrap_or(64),
            _ => 64,
        };
        node_facts(enode, |c| egraph[c].data, leaf_bits)
    }

    fn merge(&mut self, to: &mut ClassFacts, from: ClassFacts) -> DidMerge {
        let mut changed_to = false;
        let mut changed_from = false;
        match (to.constant, from.constant) {
            (None, Some(c)) => {
                to.constant = Some(c);
                changed_to = true;
            }
            (Some(_), None) => changed_from = true,
            (Some(a), Some(b)) if a != b => {
                self.conflicts += 1;
                changed_from = true;
            }
            _ => {}
        }
        if from.bits < to.bits {
            to.bits = from.bits;
            changed_to = true;
        } else if to.bits < from.bits {
            changed_from = true;
        }
        DidMerge(changed_to, changed_from)
    }

    fn modify(egraph: &mut BpfEGraph, id: Id) {
        if let Some(c) = egraph[id].data.constant {
            let constant = egraph.add(BpfLang::Const(c as i64));
            egraph.union(id, constant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egraph::language::all_operator_nodes;
    use egg::RecExpr;
    use proptest::prelude::*;

    fn egraph_of(text: &str) -> (BpfEGraph, Id) {
        let expr: RecExpr<BpfLang> = text.parse().unwrap();
        let mut egraph = BpfEGraph::default();
        let id = egraph.add_expr(&expr);
        egraph.rebuild();
        (egraph, id)
    }

    #[test]
    fn constants_fold_with_ir_semantics() {
        let cases = [
            ("(add.w32 4294967295 1)", 0u64),
            ("(div.w64 7 0)", 0),
            ("(mod.w64 7 0)", 7),
            ("(sdiv.w64 -9223372036854775808 -1)", i64::MIN as u64),
            ("(lsh.w64 1 65)", 2),
            ("(arsh.w32 2147483648 4)", 0xf800_0000),
            ("(be16 4660)", 0x3412),
            ("(movsx8.w64 128)", u64::MAX - 0x7f),
            ("(neg.w32 1)", 0xffff_ffff),
        ];
        for (text, expected) in cases {
            let (egraph, id) = egraph_of(text);
            assert_eq!(egraph[id].data.constant, Some(expected), "{text}");
            // modify() put the constant into the class, so extraction can choose it.
            assert!(egraph[id].nodes.contains(&BpfLang::Const(expected as i64)));
        }
    }

    #[test]
    fn leaves_are_not_constants_and_carry_their_bits() {
        let mut egraph = BpfEGraph::default();
        egraph.analysis.leaf_bits.insert(Value::from_u32(3), 16);
        let expr: RecExpr<BpfLang> = "(and.w64 v3 (add.w64 v4 1))".parse().unwrap();
        let id = egraph.add_expr(&expr);
        egraph.rebuild();
        assert_eq!(
            egraph[id].data,
            ClassFacts {
                constant: None,
                bits: 16
            }
        );
        let (egraph, id) = egraph_of("(mov.w32 v9)");
        assert_eq!(egraph[id].data.bits, 32);
        let (egraph, id) = egraph_of("(rsh.w64 (mov.w32 v9) 24)");
        assert_eq!(egraph[id].data.bits, 8);
    }

    #[test]
    fn conflicting_constants_are_counted_not_fatal() {
        let (mut egraph, id) = egraph_of("(add.w64 1 1)");
        let three = egraph.add(BpfLang::Const(3));
        egraph.union(id, three);
        egraph.rebuild();
        assert_eq!(egraph.analysis.conflicts, 1);
    }

    fn interesting_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            (0u32..64).prop_map(|k| 1u64 << k),
            (0u32..64).prop_map(|k| (1u64 << k).wrapping_sub(1)),
            0u64..300,
            (0u32..64, any::<u64>()).prop_map(|(k, v)| v >> k),
        ]
    }

    proptest! {
        /// For every operator, on random operands (some known constant, some not), the
        /// facts computed by the analysis hold for the value `ir::semantics` computes.
        #[test]
        fn facts_hold_for_every_operator(
            a in interesting_u64(),
            b in interesting_u64(),
            a_known in any::<bool>(),
            b_known in any::<bool>(),
            a_slack in 0u32..8,
            b_slack in 0u32..8,
        ) {
            let values = [a, b];
            let facts = [
                if a_known { ClassFacts::of_constant(a) } else {
                    ClassFacts { constant: None, bits: (significant_bits(a) + a_slack).min(64) }
                },
                if b_known { ClassFacts::of_constant(b) } else {
                    ClassFacts { constant: None, bits: (significant_bits(b) + b_slack).min(64) }
                },
            ];
            for node in all_operator_nodes() {
                let n = node.children().len();
                let node = node.map_children(|_| Id::from(0usize));
                let mut i = 0;
                let node = node.map_children(|_| { i += 1; Id::from(i - 1) });
                let got = node_facts(&node, |c| facts[usize::from(c)], 64);
                let value = eval_node(node.op(), &values[..n]).unwrap();
                prop_assert!(significant_bits(value) <= got.bits,
                    "{node}: {value:#x} exceeds {} bits", got.bits);
                if let Some(c) = got.constant {
                    prop_assert_eq!(c, value);
                }
            }
        }
    }
}
