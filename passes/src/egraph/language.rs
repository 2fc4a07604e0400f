//! The BPF language the e-graph works on.
//!
//! Only pure dataflow enters the e-graph: constants, the ALU operations of BPF at 32 and 64
//! bits, the unary operations (negation, zero extension through `mov.w32`, sign extension) and
//! byte-order conversions. A block's `brif` condition enters too, as a comparison node
//! (`gt.w64 a b`, 1 when the branch is taken) that may sit under `not` (the same branch with
//! its destinations swapped); these two kinds of node exist only as branch conditions and
//! never become instructions of their own. Everything else a block computes (loads, helper results, block
//! parameters, values from other blocks) appears as an opaque leaf named by its IR value
//! (`v12`), so the e-graph can reason about `v12 + 0` without knowing what `v12` is.
//!
//! Operator names are the IR text format's names (`add.w64`, `movsx8.w32`, `be16`), so a rule
//! reads like the IR it rewrites. [`NodeOp`] is the bridge back to the IR vocabulary: every
//! node maps to exactly one `ir` operation, and [`eval_node`] evaluates that operation with
//! `ir::semantics` and nothing else.

use egg::{define_language, Id};
use ir::semantics::{self, ByteOrder, JmpCond, Width};
use ir::{BinaryOp, UnaryOp, Value};
use std::fmt;
use std::str::FromStr;

/// An IR value used as an opaque e-graph leaf; written `v12` like the IR text format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueLeaf(pub Value);

impl fmt::Display for ValueLeaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for ValueLeaf {
    type Err = String;

    fn from_str(s: &str) -> Result<ValueLeaf, String> {
        let digits = s
            .strip_prefix('v')
            .ok_or_else(|| format!("`{s}` is not a value name"))?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{s}` is not a value name"));
        }
        let n: u32 = digits
            .parse()
            .map_err(|_| format!("`{s}` is out of range"))?;
        Ok(ValueLeaf(Value::from_u32(n)))
    }
}

define_language! {
    /// A node of the BPF e-graph. See the module documentation.
    pub enum BpfLang {
        "add.w32" = Add32([Id; 2]),
        "add.w64" = Add64([Id; 2]),
        "sub.w32" = Sub32([Id; 2]),
        "sub.w64" = Sub64([Id; 2]),
        "mul.w32" = Mul32([Id; 2]),
        "mul.w64" = Mul64([Id; 2]),
        "div.w32" = Div32([Id; 2]),
        "div.w64" = Div64([Id; 2]),
        "sdiv.w32" = SDiv32([Id; 2]),
        "sdiv.w64" = SDiv64([Id; 2]),
        "mod.w32" = Mod32([Id; 2]),
        "mod.w64" = Mod64([Id; 2]),
        "smod.w32" = SMod32([Id; 2]),
        "smod.w64" = SMod64([Id; 2]),
        "or.w32" = Or32([Id; 2]),
        "or.w64" = Or64([Id; 2]),
        "and.w32" = And32([Id; 2]),
        "and.w64" = And64([Id; 2]),
        "xor.w32" = Xor32([Id; 2]),
        "xor.w64" = Xor64([Id; 2]),
        "lsh.w32" = Lsh32([Id; 2]),
        "lsh.w64" = Lsh64([Id; 2]),
        "rsh.w32" = Rsh32([Id; 2]),
        "rsh.w64" = Rsh64([Id; 2]),
        "arsh.w32" = Arsh32([Id; 2]),
        "arsh.w64" = Arsh64([Id; 2]),
        "neg.w32" = Neg32(Id),
        "neg.w64" = Neg64(Id),
        "mov.w32" = Zext32(Id),
        "movsx8.w32" = MovSx8W32(Id),
        "movsx8.w64" = MovSx8W64(Id),
        "movsx16.w32" = MovSx16W32(Id),
        "movsx16.w64" = MovSx16W64(Id),
        "movsx32.w64" = MovSx32W64(Id),
        "le16" = Le16(Id),
        "le32" = Le32(Id),
        "be16" = Be16(Id),
        "be32" = Be32(Id),
        "be64" = Be64(Id),
        "bswap16" = Bswap16(Id),
        "bswap32" = Bswap32(Id),
        "bswap64" = Bswap64(Id),
        "eq.w32" = Eq32([Id; 2]),
        "eq.w64" = Eq64([Id; 2]),
        "ne.w32" = Ne32([Id; 2]),
        "ne.w64" = Ne64([Id; 2]),
        "gt.w32" = Gt32([Id; 2]),
        "gt.w64" = Gt64([Id; 2]),
        "ge.w32" = Ge32([Id; 2]),
        "ge.w64" = Ge64([Id; 2]),
        "lt.w32" = Lt32([Id; 2]),
        "lt.w64" = Lt64([Id; 2]),
        "le.w32" = Le32Cmp([Id; 2]),
        "le.w64" = Le64Cmp([Id; 2]),
        "sgt.w32" = Sgt32([Id; 2]),
        "sgt.w64" = Sgt64([Id; 2]),
        "sge.w32" = Sge32([Id; 2]),
        "sge.w64" = Sge64([Id; 2]),
        "slt.w32" = Slt32([Id; 2]),
        "slt.w64" = Slt64([Id; 2]),
        "sle.w32" = Sle32([Id; 2]),
        "sle.w64" = Sle64([Id; 2]),
        "set.w32" = Set32([Id; 2]),
        "set.w64" = Set64([Id; 2]),
        "not" = Not(Id),
        Const(i64),
        Leaf(ValueLeaf),
    }
}

/// What a node computes, in the IR's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeOp {
    Binary(BinaryOp, Width),
    Unary(UnaryOp, Width),
    /// A byte-order conversion of 16, 32 or 64 bits.
    Endian(ByteOrder, u8),
    /// A branch condition: 1 when `brif cond.width a, b` takes its first destination.
    Compare(JmpCond, Width),
    /// The negation of a branch condition (1 for 0, 0 for 1): the branch with its
    /// destinations swapped.
    Not,
    Const(i64),
    Leaf(Value),
}

/// Lists every operator node once, so that the mapping to [`NodeOp`] and back cannot disagree.
macro_rules! operator_table {
    ($callback:ident) => {
        $callback! {
            binary: [
                (Add32, Add, W32), (Add64, Add, W64), (Sub32, Sub, W32), (Sub64, Sub, W64),
                (Mul32, Mul, W32), (Mul64, Mul, W64), (Div32, Div, W32), (Div64, Div, W64),
                (SDiv32, SDiv, W32), (SDiv64, SDiv, W64), (Mod32, Mod, W32), (Mod64, Mod, W64),
                (SMod32, SMod, W32), (SMod64, SMod, W64), (Or32, Or, W32), (Or64, Or, W64),
                (And32, And, W32), (And64, And, W64), (Xor32, Xor, W32), (Xor64, Xor, W64),
                (Lsh32, Lsh, W32), (Lsh64, Lsh, W64), (Rsh32, Rsh, W32), (Rsh64, Rsh, W64),
                (Arsh32, Arsh, W32), (Arsh64, Arsh, W64),
            ],
            unary: [
                (Neg32, Neg, W32), (Neg64, Neg, W64), (Zext32, Mov, W32),
                (MovSx8W32, MovSx8, W32), (MovSx8W64, MovSx8, W64),
                (MovSx16W32, MovSx16, W32), (MovSx16W64, MovSx16, W64),
                (MovSx32W64, MovSx32, W64),
            ],
            endian: [
                (Le16, ToLe, 16), (Le32, ToLe, 32), (Be16, ToBe, 16), (Be32, ToBe, 32),
                (Be64, ToBe, 64), (Bswap16, Swap, 16), (Bswap32, Swap, 32), (Bswap64, Swap, 64),
            ],
            compare: [
                (Eq32, Eq, W32), (Eq64, Eq, W64), (Ne32, Ne, W32), (Ne64, Ne, W64),
                (Gt32, Gt, W32), (Gt64, Gt, W64), (Ge32, Ge, W32), (Ge64, Ge, W64),
                (Lt32, Lt, W32), (Lt64, Lt, W64), (Le32Cmp, Le, W32), (Le64Cmp, Le, W64),
                (Sgt32, Sgt, W32), (Sgt64, Sgt, W64), (Sge32, Sge, W32), (Sge64, Sge, W64),
                (Slt32, Slt, W32), (Slt64, Slt, W64), (Sle32, Sle, W32), (Sle64, Sle, W64),
                (Set32, Set, W32), (Set64, Set, W64),
            ],
        }
    };
}

macro_rules! impl_node_mapping {
    (
        binary: [$(($bv:ident, $bop:ident, $bw:ident)),* $(,)?],
        unary: [$(($uv:ident, $uop:ident, $uw:ident)),* $(,)?],
        endian: [$(($ev:ident, $eo:ident, $eb:literal)),* $(,)?],
        compare: [$(($cv:ident, $cc:ident, $cw:ident)),* $(,)?],
    ) => {
        impl BpfLang {
            /// The IR operation this node stands for.
            pub fn op(&self) -> NodeOp {
                match self {
                    $(BpfLang::$bv(_) => NodeOp::Binary(BinaryOp::$bop, Width::$bw),)*
                    $(BpfLang::$uv(_) => NodeOp::Unary(UnaryOp::$uop, Width::$uw),)*
                    $(BpfLang::$ev(_) => NodeOp::Endian(ByteOrder::$eo, $eb),)*
                    $(BpfLang::$cv(_) => NodeOp::Compare(JmpCond::$cc, Width::$cw),)*
                    BpfLang::Not(_) => NodeOp::Not,
                    BpfLang::Const(c) => NodeOp::Const(*c),
                    BpfLang::Leaf(l) => NodeOp::Leaf(l.0),
                }
            }

            /// The node for a binary IR operation.
            pub fn binary(op: BinaryOp, width: Width, args: [Id; 2]) -> BpfLang {
                match (op, width) {
                    $((BinaryOp::$bop, Width::$bw) => BpfLang::$bv(args),)*
                }
            }

            /// The node for a unary IR operation, or `None` for the ones that are not nodes:
            /// `mov.w64` is value reuse and `movsx32.w32` does not exist.
            pub fn unary(op: UnaryOp, width: Width, arg: Id) -> Option<BpfLang> {
                match (op, width) {
                    $((UnaryOp::$uop, Width::$uw) => Some(BpfLang::$uv(arg)),)*
                    _ => None,
                }
            }

            /// The node for a byte-order conversion, or `None` for `le64` (the identity on a
            /// little-endian machine) and for widths BPF does not have.
            pub fn endian(order: ByteOrder, bits: u8, arg: Id) -> Option<BpfLang> {
                match (order, bits) {
                    $((ByteOrder::$eo, $eb) => Some(BpfLang::$ev(arg)),)*
                    _ => None,
                }
            }

            /// The node for the condition of `brif cond.width a, b`.
            pub fn compare(cond: JmpCond, width: Width, args: [Id; 2]) -> BpfLang {
                match (cond, width) {
                    $((JmpCond::$cc, Width::$cw) => BpfLang::$cv(args),)*
                }
            }
        }
    };
}

operator_table!(impl_node_mapping);

/// Evaluates one node on the values of its children with `ir::semantics`. Leaves have no
/// value of their own and give `None`, as does a node given the wrong number of arguments.
pub fn eval_node(op: NodeOp, args: &[u64]) -> Option<u64> {
    match (op, args) {
        (NodeOp::Binary(op, width), &[a, b]) => Some(semantics::alu(op.alu_op(), width, a, b)),
        (NodeOp::Unary(op, width), &[a]) => Some(op.eval(width, a)),
        (NodeOp::Endian(order, bits), &[a]) => Some(semantics::byte_order(order, bits as u32, a)),
        (NodeOp::Compare(cond, width), &[a, b]) => {
            Some(u64::from(semantics::compare(cond, width, a, b)))
        }
        (NodeOp::Not, &[a]) => Some(u64::from(a == 0)),
        (NodeOp::Const(c), &[]) => Some(c as u64),
        _ => None,
    }
}

/// Every operator node with placeholder children, for tests and cost tables that must cover
/// the whole language.
pub fn all_operator_nodes() -> Vec<BpfLang> {
    let id = Id::from(0usize);
    let mut out: Vec<BpfLang> = Vec::new();
    for width in [Width::W32, Width::W64] {
        for op in BinaryOp::ALL {
            out.push(BpfLang::binary(op, width, [id, id]));
        }
        for op in UnaryOp::ALL {
            out.extend(BpfLang::unary(op, width, id));
        }
    }
    for order in [ByteOrder::ToLe, ByteOrder::ToBe, ByteOrder::Swap] {
        for bits in [16, 32, 64] {
            out.extend(BpfLang::endian(order, bits, id));
        }
    }
    out
}

/// Every comparison node with placeholder children, and `not`: the nodes that stand only for
/// branch conditions.
pub fn all_condition_nodes() -> Vec<BpfLang> {
    let id = Id::from(0usize);
    let mut out: Vec<BpfLang> = Vec::new();
    for width in [Width::W32, Width::W64] {
        for cond in ir::instructions::ALL_CONDS {
            out.push(BpfLang::compare(cond, width, [id, id]));
        }
    }
    out.push(BpfLang::Not(id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use egg::{FromOp, Language};

    #[test]
    fn every_operator_maps_to_the_ir_and_back() {
        let nodes = all_operator_nodes();
        // 26 binary, 8 unary (no mov.w64, no movsx32.w32), 8 byte-order nodes (no le64).
        assert_eq!(nodes.len(), 42);
        for node in nodes {
            let back = match node.op() {
                NodeOp::Binary(op, w) => {
                    BpfLang::binary(op, w, [Id::from(0usize), Id::from(0usize)])
                }
                NodeOp::Unary(op, w) => BpfLang::unary(op, w, Id::from(0usize)).unwrap(),
                NodeOp::Endian(o, b) => BpfLang::endian(o, b, Id::from(0usize)).unwrap(),
                other => panic!("operator node mapped to {other:?}"),
            };
            assert_eq!(back, node);
        }
    }

    #[test]
    fn operator_names_are_the_ir_text_names() {
        for node in all_operator_nodes() {
            let expected = match node.op() {
                NodeOp::Binary(op, w) => format!("{}.{}", op.name(), ir::types::width_name(w)),
                NodeOp::Unary(op, w) => format!("{}.{}", op.name(), ir::types::width_name(w)),
                NodeOp::Endian(o, b) => ir::instructions::endian_name(o, b).unwrap().to_string(),
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(node.to_string(), expected);
            let parsed = BpfLang::from_op(&expected, node.children().to_vec()).unwrap();
            assert_eq!(parsed, node);
        }
    }

    #[test]
    fn condition_names_are_the_ir_text_names() {
        let nodes = all_condition_nodes();
        assert_eq!(nodes.len(), 23);
        for node in nodes {
            let expected = match node.op() {
                NodeOp::Compare(c, w) => {
                    let back = BpfLang::compare(c, w, [Id::from(0usize), Id::from(0usize)]);
                    assert_eq!(back, node);
                    format!(
                        "{}.{}",
                        ir::instructions::cond_name(c),
                        ir::types::width_name(w)
                    )
                }
                NodeOp::Not => "not".to_string(),
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(node.to_string(), expected);
            assert_eq!(
                BpfLang::from_op(&expected, node.children().to_vec()).unwrap(),
                node
            );
        }
        let gt32 = BpfLang::compare(JmpCond::Gt, Width::W32, [0.into(), 0.into()]).op();
        // 0x1_0000_0001 > 2 at 64 bits, but 1 < 2 at 32.
        assert_eq!(eval_node(gt32, &[0x1_0000_0001, 2]), Some(0));
        assert_eq!(eval_node(NodeOp::Not, &[0]), Some(1));
        assert_eq!(eval_node(NodeOp::Not, &[1]), Some(0));
    }

    #[test]
    fn constants_and_leaves_parse() {
        assert_eq!(BpfLang::from_op("-5", vec![]).unwrap(), BpfLang::Const(-5));
        assert_eq!(
            BpfLang::from_op("v17", vec![]).unwrap(),
            BpfLang::Leaf(ValueLeaf(Value::from_u32(17)))
        );
        assert!(BpfLang::from_op("w17", vec![]).is_err());
        assert!("v".parse::<ValueLeaf>().is_err());
        assert!("v99999999999".parse::<ValueLeaf>().is_err());
    }

    #[test]
    fn evaluation_is_ir_semantics() {
        let add32 = BpfLang::binary(BinaryOp::Add, Width::W32, [0.into(), 0.into()]).op();
        assert_eq!(eval_node(add32, &[0xffff_ffff, 1]), Some(0));
        let be16 = NodeOp::Endian(ByteOrder::ToBe, 16);
        assert_eq!(eval_node(be16, &[0x1234]), Some(0x3412));
        assert_eq!(eval_node(NodeOp::Const(-1), &[]), Some(u64::MAX));
        assert_eq!(eval_node(add32, &[1]), None);
        assert_eq!(eval_node(NodeOp::Leaf(Value::from_u32(0)), &[]), None);
    }
}
