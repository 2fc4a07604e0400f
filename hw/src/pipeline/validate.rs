//! Structural checks of a pipeline block, run before anything prints or simulates it: operands
//! come before their users and from no later stage (and, for memory reads, from an earlier
//! stage: their row is registered), shapes fit the operations, every memory is read in one
//! stage and written in the next (which, with the forwarding the hardware does, is what makes
//! back-to-back packets see each other's writes in program order), and every output port is
//! driven with the right shape.

use super::block::{Block, NodeKind, Output, Shape};

/// Every violation found, as sentences; empty when the block is well formed.
pub fn validate(block: &Block) -> Vec<String> {
    let mut errors = Vec::new();
    let mut read_stage: Vec<Option<u32>> = vec![None; block.memories.len()];
    let mut write_stage: Vec<Option<u32>> = vec![None; block.memories.len()];
    for (i, node) in block.nodes.iter().enumerate() {
        let id = i as u32;
        let what = format!("node n{id} ({:?})", node.kind);
        if node.stage >= block.stages.max(1) && !node.kind.is_constant() {
            errors.push(format!(
                "{what} is in stage {} of a {}-stage block",
                node.stage, block.stages
            ));
        }
        for op in node.kind.operands() {
            if op >= id {
                errors.push(format!("{what} uses n{op}, which does not come before it"));
                continue;
            }
            let o = block.node(op);
            if !o.kind.is_constant() && o.stage > node.stage {
                errors.push(format!(
                    "{what} in stage {} uses n{op} of the later stage {}",
                    node.stage, o.stage
                ));
            } else if o.kind.is_registered() && o.stage == node.stage {
                errors.push(format!(
                    "{what} in stage {} uses the memory read n{op} of its own stage; a read's row is registered and exists only from the next stage",
                    node.stage
                ));
            }
        }
        if errors.len() > 50 {
            break;
        }
        let shape_of = |n: u32| block.nodes.get(n as usize).map(|n| n.shape);
        let is_bit = |n: u32| shape_of(n) == Some(Shape::Bits(1));
        let is_bytes = |n: u32| matches!(shape_of(n), Some(Shape::Bytes(_)));
        let is_scalar = |n: u32| matches!(shape_of(n), Some(Shape::Bits(_)));
        let ok = match &node.kind {
            NodeKind::Input(_) | NodeKind::Const(_) => {
                matches!(node.shape, Shape::Bits(1..=64)) || matches!(node.shape, Shape::Bytes(_))
            }
            NodeKind::Zeros => matches!(node.shape, Shape::Bytes(_)),
            NodeKind::Alu { a, b, .. } => {
                node.shape == Shape::Bits(64) && is_scalar(*a) && is_scalar(*b)
            }
            NodeKind::Endian { a, bits, .. } => {
                node.shape == Shape::Bits(64) && is_scalar(*a) && matches!(bits, 16 | 32 | 64)
            }
            NodeKind::Cmp { a, b, .. } => {
                node.shape == Shape::Bits(1) && is_scalar(*a) && is_scalar(*b)
            }
            NodeKind::Logic { a, b, .. } => {
                node.shape == Shape::Bits(1) && is_bit(*a) && is_bit(*b)
            }
            NodeKind::Not(a) => node.shape == Shape::Bits(1) && is_bit(*a),
            NodeKind::Mux {
                sel,
                if_true,
                if_false,
            } => {
                is_bit(*sel)
                    && shape_of(*if_true) == Some(node.shape)
                    && shape_of(*if_false) == Some(node.shape)
            }
            NodeKind::ReadBytes {
                array,
                offset,
                size,
                ..
            } => {
                node.shape == Shape::Bits(64)
                    && is_bytes(*array)
                    && is_scalar(*offset)
                    && matches!(size, 1 | 2 | 4 | 8)
            }
            NodeKind::WriteBytes {
                array,
                offset,
                size,
                value,
                enable,
            } => {
                shape_of(*array) == Some(node.shape)
                    && is_bytes(*array)
                    && is_scalar(*offset)
                    && is_scalar(*value)
                    && is_bit(*enable)
                    && matches!(size, 1 | 2 | 4 | 8)
            }
            NodeKind::Slice { array, offset } => match (shape_of(*array), node.shape) {
                (Some(Shape::Bytes(n)), Shape::Bytes(len)) => {
                    len > 0 && offset.checked_add(len).is_some_and(|end| end <= n)
                }
                _ => false,
            },
            NodeKind::Splice {
                array,
                offset,
                part,
            } => match (shape_of(*array), shape_of(*part)) {
                (Some(Shape::Bytes(n)), Some(Shape::Bytes(len))) => {
                    node.shape == Shape::Bytes(n)
                        && len > 0
                        && offset.checked_add(len).is_some_and(|end| end <= n)
                }
                _ => false,
            },
            NodeKind::MemRead { mem, row } => match block.memories.get(*mem as usize) {
                Some(m) => node.shape == Shape::Bytes(m.row_bytes) && is_scalar(*row),
                None => false,
            },
            NodeKind::MemWrite {
                mem,
                row,
                data,
                enable,
            } => match block.memories.get(*mem as usize) {
                Some(m) => {
                    node.shape == Shape::Effect
                        && is_scalar(*row)
                        && shape_of(*data) == Some(Shape::Bytes(m.row_bytes))
                        && is_bit(*enable)
                }
                None => false,
            },
        };
        if !ok {
            errors.push(format!(
                "{what} has shape {:?} that does not fit its operands",
                node.shape
            ));
        }
        let (mem, slots, kind) = match node.kind {
            NodeKind::MemRead { mem, .. } => (mem, &mut read_stage, "read"),
            NodeKind::MemWrite { mem, .. } => (mem, &mut write_stage, "written"),
            _ => continue,
        };
        if let Some(slot) = slots.get_mut(mem as usize) {
            match *slot {
                None => *slot = Some(node.stage),
                Some(s) if s != node.stage => errors.push(format!(
                    "memory `{}` is {kind} in stages {s} and {}; all its reads must share one stage, and all its writes the next",
                    block.memories[mem as usize].name, node.stage
                )),
                Some(_) => {}
            }
        }
    }
    for (k, m) in block.memories.iter().enumerate() {
        if let (Some(r), Some(w)) = (read_stage[k], write_stage[k]) {
            if w != r + 1 {
                errors.push(format!(
                    "memory `{}` is read in stage {r} and written in stage {w}; its writes must be in the stage right after its reads, the one the hardware forwards from",
                    m.name
                ));
            }
        }
    }
    for port in Output::ALL {
        let want = block.output_shape(port);
        match block.outputs.get(&port) {
            None => errors.push(format!("output `{}` is not driven", port.name())),
            Some(&n) => match block.nodes.get(n as usize) {
                Some(node) if node.shape == want => {}
                _ => errors.push(format!(
                    "output `{}` is driven by n{n}, which is not a {want:?}",
                    port.name()
                )),
            },
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::block::{Input, Memory, MemoryKind, Node};
    use ir::semantics::{AluOp, Width};

    /// A counter: read row `in_len` of a one-row memory in stage `read`, add one, write it
    /// back in stage `write`; the sum is used in stage `use_stage`.
    fn counter(read: u32, write: u32, use_stage: u32) -> Block {
        let node = |kind, shape, stage| Node {
            kind,
            shape,
            stage,
            insn: u32::MAX,
        };
        let nodes = vec![
            node(NodeKind::Input(Input::Length), Shape::Bits(16), 0),
            node(NodeKind::Const(0), Shape::Bits(64), 0),
            node(NodeKind::Const(1), Shape::Bits(1), 0),
            node(NodeKind::MemRead { mem: 0, row: 0 }, Shape::Bytes(8), read),
            node(
                NodeKind::ReadBytes {
                    array: 3,
                    offset: 1,
                    size: 8,
                    signed: false,
                },
                Shape::Bits(64),
                use_stage,
            ),
            node(
                NodeKind::MemWrite {
                    mem: 0,
                    row: 0,
                    data: 3,
                    enable: 2,
                },
                Shape::Effect,
                write,
            ),
            node(
                NodeKind::Alu {
                    op: AluOp::Mov,
                    width: Width::W64,
                    a: 4,
                    b: 4,
                },
                Shape::Bits(64),
                use_stage,
            ),
            node(NodeKind::Input(Input::Window), Shape::Bytes(4), 0),
            node(NodeKind::Const(0), Shape::Bits(64), 0),
        ];
        let mut outputs = std::collections::BTreeMap::new();
        outputs.insert(Output::Retval, 6);
        outputs.insert(Output::Window, 7);
        outputs.insert(Output::RedirectKind, 8);
        outputs.insert(Output::RedirectKey, 8);
        let mut block = Block {
            name: "t".into(),
            window_bytes: 4,
            stages: 3,
            clock_period_ps: 4,
            nodes,
            memories: vec![Memory {
                name: "counters".into(),
                map_index: 0,
                rows: 1,
                row_bytes: 8,
                presence: false,
                kind: MemoryKind::Array,
            }],
            outputs,
            redirect_map: None,
            redirect_value_bytes: 1,
        };
        block.nodes.push(Node {
            kind: NodeKind::Input(Input::Length),
            shape: Shape::Bits(16),
            stage: 0,
            insn: u32::MAX,
        });
        block.outputs.insert(Output::Length, 9);
        block.nodes.push(Node {
            kind: NodeKind::Zeros,
            shape: Shape::Bytes(1),
            stage: 0,
            insn: u32::MAX,
        });
        block.outputs.insert(Output::RedirectValue, 10);
        block
    }

    #[test]
    fn a_read_used_from_the_next_stage_and_written_there_is_well_formed() {
        assert_eq!(validate(&counter(0, 1, 1)), Vec::<String>::new());
    }

    #[test]
    fn a_read_used_in_its_own_stage_is_refused() {
        let errors = validate(&counter(1, 2, 1));
        assert!(
            errors.iter().any(|e| e.contains("of its own stage")),
            "{errors:?}"
        );
    }

    #[test]
    fn a_write_not_right_after_the_read_is_refused() {
        let errors = validate(&counter(0, 2, 1));
        assert!(
            errors.iter().any(|e| e.contains("right after its reads")),
            "{errors:?}"
        );
    }
}
