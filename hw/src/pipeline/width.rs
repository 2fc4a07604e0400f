//! Significant bits: for every node of a block, a bound `k` such that the node's value is below
//! `2^k` on every packet. BPF computes everything on 64 bits, but most values in a packet
//! program are bytes, halfwords, lengths and small counters; an adder or comparator only needs
//! the bits that can be non-zero, and a narrow carry chain is what keeps a stage shallow. The
//! Verilog printer narrows operations with it and the delay model prices them by it, while the
//! simulator keeps computing `ir::semantics` on full 64-bit values, so the differential tests
//! check every narrowing the printer makes.
//!
//! The bounds are conservative: an operation whose result can wrap (a subtraction, a negation,
//! a signed shift of a value with its sign bit possibly set) gets its full width.

use super::block::{Block, Input, NodeKind, Shape};
use ir::semantics::{AluOp, Width};

/// Bits of `v` up to its highest set bit (0 for 0).
fn bits_of(v: u64) -> u32 {
    64 - v.leading_zeros()
}

/// The significant bits of every node, indexed by node id; byte arrays and effects get their
/// shape's width.
pub fn significant_bits(block: &Block) -> Vec<u32> {
    let mut sig: Vec<u32> = Vec::with_capacity(block.nodes.len());
    for node in &block.nodes {
        let full = node.shape.bits();
        let get = |sig: &Vec<u32>, id: u32| sig.get(id as usize).copied().unwrap_or(64);
        let konst = |id: u32| match block.nodes.get(id as usize).map(|n| &n.kind) {
            Some(NodeKind::Const(v)) => Some(*v),
            _ => None,
        };
        let k = match (&node.kind, node.shape) {
            (_, Shape::Bytes(_)) | (_, Shape::Effect) => full,
            (NodeKind::Input(i), _) => match i {
                Input::Length => 16,
                Input::IngressIfindex | Input::RxQueue => 32,
                Input::Window => full,
            },
            (NodeKind::Const(v), _) => bits_of(*v),
            (NodeKind::Zeros, _) => 0,
            (NodeKind::Alu { op, width, a, b }, _) => {
                let cap = match width {
                    Width::W64 => 64,
                    Width::W32 => 32,
                };
                let wa = get(&sig, *a).min(cap);
                let wb = get(&sig, *b).min(cap);
                let shift = konst(*b).map(|c| (c % cap as u64) as u32);
                match op {
                    AluOp::Add => (wa.max(wb) + 1).min(cap),
                    AluOp::Mul => (wa + wb).min(cap),
                    AluOp::Div | AluOp::Mod => wa,
                    AluOp::And => wa.min(wb),
                    AluOp::Or | AluOp::Xor => wa.max(wb),
                    AluOp::Lsh => match shift {
                        Some(c) => (wa + c).min(cap),
                        None => cap,
                    },
                    AluOp::Rsh => match shift {
                        Some(c) => wa.saturating_sub(c),
                        None => wa,
                    },
                    // An arithmetic shift of a value whose sign bit is clear is a logical one.
                    AluOp::Arsh if wa < cap => match shift {
                        Some(c) => wa.saturating_sub(c),
                        None => wa,
                    },
                    AluOp::Mov => wb,
                    AluOp::MovSx8 if wb < 8 => wb,
                    AluOp::MovSx16 if wb < 16 => wb,
                    AluOp::MovSx32 if wb < 32 => wb,
                    AluOp::Sub
                    | AluOp::Neg
                    | AluOp::SDiv
                    | AluOp::SMod
                    | AluOp::Arsh
                    | AluOp::MovSx8
                    | AluOp::MovSx16
                    | AluOp::MovSx32 => cap,
                }
            }
            // `to_le` on this little-endian model only truncates; a swap moves bytes up.
            (NodeKind::Endian { order, bits, a }, _) => match order {
                ir::semantics::ByteOrder::ToLe => get(&sig, *a).min(*bits as u32),
                _ => *bits as u32,
            },
            (NodeKind::Cmp { .. }, _) | (NodeKind::Logic { .. }, _) | (NodeKind::Not(_), _) => 1,
            (
                NodeKind::Mux {
                    if_true, if_false, ..
                },
                _,
            ) => get(&sig, *if_true).max(get(&sig, *if_false)),
            (NodeKind::ReadBytes { size, signed, .. }, _) => {
                if *signed {
                    64
                } else {
                    8 * *size as u32
                }
            }
            _ => full,
        };
        sig.push(k.min(full.max(1)).min(64));
    }
    sig
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::block::Node;
    use std::collections::BTreeMap;

    fn node(kind: NodeKind, shape: Shape) -> Node {
        Node {
            kind,
            shape,
            stage: 0,
            insn: u32::MAX,
        }
    }

    #[test]
    fn bytes_and_lengths_stay_narrow_and_wrapping_operations_do_not() {
        let b64 = Shape::Bits(64);
        let nodes = vec![
            node(NodeKind::Input(Input::Window), Shape::Bytes(16)),
            node(NodeKind::Const(2), b64),
            node(
                NodeKind::ReadBytes {
                    array: 0,
                    offset: 1,
                    size: 1,
                    signed: false,
                },
                b64,
            ),
            node(NodeKind::Input(Input::Length), Shape::Bits(16)),
            node(
                NodeKind::Alu {
                    op: AluOp::Add,
                    width: Width::W64,
                    a: 2,
                    b: 3,
                },
                b64,
            ),
            node(
                NodeKind::Alu {
                    op: AluOp::Sub,
                    width: Width::W32,
                    a: 2,
                    b: 3,
                },
                b64,
            ),
            node(
                NodeKind::Alu {
                    op: AluOp::Lsh,
                    width: Width::W64,
                    a: 2,
                    b: 1,
                },
                b64,
            ),
        ];
        let block = Block {
            name: "t".into(),
            window_bytes: 16,
            stages: 1,
            clock_period_ps: 1,
            nodes,
            memories: vec![],
            outputs: BTreeMap::new(),
            redirect_map: None,
            redirect_value_bytes: 1,
        };
        let sig = significant_bits(&block);
        assert_eq!(&sig[1..], &[2, 8, 16, 17, 32, 10]);
    }
}
