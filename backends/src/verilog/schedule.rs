//! Scheduling: places every node of an if-converted block in a pipeline stage for a clock
//! period, under dependency and delay constraints (as XLS does; `check.rs` verifies the
//! result independently).
//!
//! Nodes are placed as soon as possible: a node joins the stage of its latest operand when the
//! chain of combinational delays through that stage still fits the period, and starts the next
//! stage otherwise. One constraint overrides the period: every access to one memory, and every
//! node on a path from a read of it to a write of it, shares one stage (a memory's
//! read-modify-write section). Packets pass that stage one per clock and each sees the writes of
//! the packet before it, so back-to-back packets updating the same map entry give the results
//! of sequential execution with no forwarding logic. A section is placed no earlier than the
//! latest value it takes from outside; because those values can come later in node order than
//! the section's first read, placement repeats until no section moves.

use hw::pipeline::{Block, DelayModel, NodeId, NodeKind};
use std::collections::BTreeSet;

/// The read-modify-write section each node belongs to (an index into the returned list of
/// sections), for every memory; overlapping sections are merged.
pub fn memory_sections(block: &Block) -> (Vec<Option<usize>>, Vec<BTreeSet<NodeId>>) {
    let n = block.nodes.len();
    let mut users: Vec<Vec<NodeId>> = vec![Vec::new(); n];
    for (i, node) in block.nodes.iter().enumerate() {
        for op in node.kind.operands() {
            users[op as usize].push(i as NodeId);
        }
    }
    let mut sections: Vec<BTreeSet<NodeId>> = Vec::new();
    for mem in 0..block.memories.len() as u32 {
        let accesses: Vec<NodeId> = block
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| {
                matches!(node.kind, NodeKind::MemRead { mem: m, .. } | NodeKind::MemWrite { mem: m, .. } if m == mem)
            })
            .map(|(i, _)| i as NodeId)
            .collect();
        if accesses.is_empty() {
            continue;
        }
        let reads: Vec<NodeId> = accesses
            .iter()
            .copied()
            .filter(|&a| matches!(block.node(a).kind, NodeKind::MemRead { .. }))
            .collect();
        let writes: Vec<NodeId> = accesses
            .iter()
            .copied()
            .filter(|&a| matches!(block.node(a).kind, NodeKind::MemWrite { .. }))
            .collect();
        let mut forward = vec![false; n];
        let mut stack = reads.clone();
        while let Some(x) = stack.pop() {
            if !std::mem::replace(&mut forward[x as usize], true) {
                stack.extend(users[x as usize].iter().copied());
            }
        }
        let mut backward = vec![false; n];
        let mut stack = writes.clone();
        while let Some(x) = stack.pop() {
            if !std::mem::replace(&mut backward[x as usize], true) {
                stack.extend(block.node(x).kind.operands());
            }
        }
        let mut section: BTreeSet<NodeId> = accesses.into_iter().collect();
        for i in 0..n {
            if forward[i] && backward[i] {
                section.insert(i as NodeId);
            }
        }
        section.retain(|&x| !block.node(x).kind.is_constant());
        sections.push(section);
    }
    // Merge sections that share a node, until none do.
    let mut merged = true;
    while merged {
        merged = false;
        'outer: for i in 0..sections.len() {
            for j in i + 1..sections.len() {
                if !sections[i].is_disjoint(&sections[j]) {
                    let other = sections.remove(j);
                    sections[i].extend(other);
                    merged = true;
                    break 'outer;
                }
            }
        }
    }
    let mut of = vec![None; n];
    for (k, s) in sections.iter().enumerate() {
        for &x in s {
            of[x as usize] = Some(k);
        }
    }
    (of, sections)
}

/// The stage and the time within it at which each node's result is ready, for a given
/// placement of sections; the period is ignored inside sections.
fn place(
    block: &Block,
    model: &DelayModel,
    period: u32,
    section_of: &[Option<usize>],
    section_stage: &[u32],
) -> Vec<(u32, u32)> {
    let delays = model.node_delays(block);
    let mut at: Vec<(u32, u32)> = vec![(0, 0); block.nodes.len()];
    for (i, node) in block.nodes.iter().enumerate() {
        if node.kind.is_constant() {
            continue;
        }
        let ops: Vec<NodeId> = node
            .kind
            .operands()
            .into_iter()
            .filter(|&o| !block.node(o).kind.is_constant())
            .collect();
        let ready = ops.iter().map(|&o| at[o as usize].0).max().unwrap_or(0);
        let arrival_in = |stage: u32| {
            ops.iter()
                .filter(|&&o| at[o as usize].0 == stage)
                .map(|&o| at[o as usize].1)
                .max()
                .unwrap_or(0)
        };
        let d = delays[i];
        at[i] = match section_of[i] {
            Some(s) => {
                let stage = ready.max(section_stage[s]);
                (stage, arrival_in(stage) + d)
            }
            None => {
                let arrival = arrival_in(ready);
                if arrival == 0 || arrival + d <= period {
                    (ready, arrival + d)
                } else {
                    (ready + 1, d)
                }
            }
        };
    }
    at
}

/// Schedules `block` in place for `period_ps` (the model's period when `None`).
pub fn schedule(block: &mut Block, model: &DelayModel, period_ps: Option<u32>) {
    let period = period_ps.unwrap_or(model.clock_period_ps);
    let (section_of, sections) = memory_sections(block);
    let mut section_stage = vec![0u32; sections.len()];
    let at = loop {
        let at = place(block, model, period, &section_of, &section_stage);
        let mut moved = false;
        for (k, members) in sections.iter().enumerate() {
            let mut want = section_stage[k];
            for &m in members {
                for op in block.node(m).kind.operands() {
                    if section_of[op as usize] != Some(k) && !block.node(op).kind.is_constant() {
                        want = want.max(at[op as usize].0);
                    }
                }
            }
            if want != section_stage[k] {
                section_stage[k] = want;
                moved = true;
            }
        }
        if !moved {
            break at;
        }
    };
    let mut last = 0;
    for (i, node) in block.nodes.iter_mut().enumerate() {
        node.stage = if node.kind.is_constant() { 0 } else { at[i].0 };
        last = last.max(node.stage);
    }
    block.stages = last + 1;
    block.clock_period_ps = period;
}
