//! Scheduling: places every node of an if-converted block in a pipeline stage for a clock
//! period, under dependency and delay constraints (as XLS does; `check.rs` verifies the
//! result independently).
//!
//! Nodes are placed as soon as possible: a node joins the stage where its latest operand is
//! available when the chain of combinational delays through that stage still fits the period,
//! and starts the next stage otherwise. A memory read's row is registered (block RAM reads
//! synchronously), so its users start in the stage after it, behind the forwarding
//! multiplexer.
//!
//! One constraint overrides the period: every access to one memory, and every node on a path
//! from a read of it to a write of it, forms the memory's read-modify-write section. Its reads
//! share one stage `r` and everything else in it shares stage `r + 1`, where the writes are.
//! Packets pass one per clock; the write of the packet in `r + 1` is forwarded to the read of
//! the packet in `r` when they hit the same row, so back-to-back packets updating one map entry
//! give the results of sequential execution while the read (the address decode of a block
//! RAM) and the modify-write have a stage each. A section is placed no earlier than the latest
//! value it takes from outside; because those values can come later in node order than the
//! section's first read, placement repeats until no section moves.

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

/// The stage in which node `id`, placed in `stage`, can first be used: a memory read's row
/// exists only after the edge that ends its stage.
pub fn available_stage(block: &Block, id: NodeId, stage: u32) -> u32 {
    stage + u32::from(block.node(id).kind.is_registered())
}

/// The stage of a section member relative to the section's read stage: reads in it, everything
/// else (the modify and the writes) in the next; a section with no read is one stage.
fn section_offset(block: &Block, id: NodeId, section_has_read: bool) -> u32 {
    u32::from(section_has_read && !block.node(id).kind.is_registered())
}

/// The stage and the time within it at which each node's result is ready, for a given
/// placement of sections (by their first stage); the period is ignored inside sections.
fn place(
    block: &Block,
    model: &DelayModel,
    period: u32,
    section_of: &[Option<usize>],
    section_stage: &[u32],
    section_has_read: &[bool],
) -> Vec<(u32, u32)> {
    let delays = model.node_delays(block);
    let forward = model.forward_delay();
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
        // Where and when each operand can be used: a registered read comes out of the
        // forwarding multiplexer at the start of the stage after its own.
        let avail = |o: NodeId| {
            let (stage, time) = at[o as usize];
            if block.node(o).kind.is_registered() {
                (stage + 1, forward)
            } else {
                (stage, time)
            }
        };
        let ready = ops.iter().map(|&o| avail(o).0).max().unwrap_or(0);
        let arrival_in = |stage: u32| {
            ops.iter()
                .map(|&o| avail(o))
                .filter(|&(s, _)| s == stage)
                .map(|(_, t)| t)
                .max()
                .unwrap_or(0)
        };
        let d = delays[i];
        at[i] = match section_of[i] {
            Some(s) => {
                let stage = ready.max(
                    section_stage[s] + section_offset(block, i as NodeId, section_has_read[s]),
                );
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
    let section_has_read: Vec<bool> = sections
        .iter()
        .map(|members| members.iter().any(|&m| block.node(m).kind.is_registered()))
        .collect();
    let mut section_stage = vec![0u32; sections.len()];
    let at = loop {
        let at = place(
            block,
            model,
            period,
            &section_of,
            &section_stage,
            &section_has_read,
        );
        let mut moved = false;
        for (k, members) in sections.iter().enumerate() {
            let mut want = section_stage[k];
            for &m in members {
                let offset = section_offset(block, m, section_has_read[k]);
                for op in block.node(m).kind.operands() {
                    if section_of[op as usize] != Some(k) && !block.node(op).kind.is_constant() {
                        let avail = available_stage(block, op, at[op as usize].0);
                        want = want.max(avail.saturating_sub(offset));
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
