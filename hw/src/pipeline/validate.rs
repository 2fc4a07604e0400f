//! Structural checks of a pipeline block, run before anything prints or simulates it: operands
//! come before their users and from no later stage, shapes fit the operations, every memory is
//! read and written in one stage only (which is what makes back-to-back packets see each
//! other's writes in program order), and every output port is driven with the right shape.

use super::block::{Block, NodeKind, Output, Shape};

/// Every violation found, as sentences; empty when the block is well formed.
pub fn validate(block: &Block) -> Vec<String> {
    let mut errors = Vec::new();
    let mut mem_stage: Vec<Option<u32>> = vec![None; block.memories.len()];
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
        if let NodeKind::MemRead { mem, .. } | NodeKind::MemWrite { mem, .. } = node.kind {
            if let Some(slot) = mem_stage.get_mut(mem as usize) {
                match *slot {
                    None => *slot = Some(node.stage),
                    Some(s) if s != node.stage => errors.push(format!(
                        "memory `{}` is accessed in stages {s} and {}; all its accesses must share one stage so back-to-back packets see each other's writes",
                        block.memories[mem as usize].name, node.stage
                    )),
                    Some(_) => {}
                }
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
