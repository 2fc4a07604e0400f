//! The schedule checker, kept apart from the scheduler so that a scheduling bug cannot hide
//! itself: given only a scheduled block and a delay model, it recomputes every stage's
//! combinational paths and says which constraints hold.
//!
//! Violations (the schedule is wrong): an operand from a later stage; a memory read used in its
//! own stage (its row is registered); a memory read in more than one stage, written in more
//! than one, or written in a stage other than the one right after its reads (the only write
//! the hardware forwards). Overruns (the schedule is legal but slower than asked): a stage whose
//! longest path exceeds the period, which happens only inside a memory's read-modify-write
//! section or for a single operation slower than the period; they are reported with the memory
//! or operation responsible.

use super::schedule::memory_sections;
use hw::pipeline::{Block, DelayModel, NodeKind};

/// What the checker found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduleReport {
    /// The longest combinational path of each stage, in picoseconds.
    pub stage_delay_ps: Vec<u32>,
    /// Broken constraints: the block must not be used.
    pub violations: Vec<String>,
    /// Stages slower than the period, with the reason.
    pub overruns: Vec<String>,
}

impl ScheduleReport {
    pub fn is_legal(&self) -> bool {
        self.violations.is_empty()
    }

    /// The clock the slowest stage allows, in MHz.
    pub fn fmax_mhz(&self) -> f64 {
        let worst = self
            .stage_delay_ps
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(1);
        1e6 / worst as f64
    }
}

/// Checks `block` against `model` at the block's own clock period.
pub fn check_schedule(block: &Block, model: &DelayModel) -> ScheduleReport {
    let mut report = ScheduleReport {
        stage_delay_ps: vec![0; block.stages as usize],
        ..ScheduleReport::default()
    };
    let period = block.clock_period_ps;
    let (section_of, _) = memory_sections(block);
    let delays = model.node_delays(block);
    let forward = model.forward_delay();
    let mut finish = vec![0u32; block.nodes.len()];
    for (i, node) in block.nodes.iter().enumerate() {
        if node.kind.is_constant() {
            continue;
        }
        if node.stage >= block.stages {
            report.violations.push(format!(
                "n{i} is in stage {} of a {}-stage pipeline",
                node.stage, block.stages
            ));
            continue;
        }
        let mut arrival = 0;
        for op in node.kind.operands() {
            let o = block.node(op);
            if o.kind.is_constant() {
                continue;
            }
            if o.stage > node.stage {
                report.violations.push(format!(
                    "n{i} (stage {}) reads n{op}, which is computed later, in stage {}",
                    node.stage, o.stage
                ));
            } else if o.kind.is_registered() && o.stage == node.stage {
                report.violations.push(format!(
                    "n{i} (stage {}) reads the memory read n{op} of its own stage, whose row is registered at the end of it",
                    node.stage
                ));
            } else if o.kind.is_registered() && o.stage + 1 == node.stage {
                arrival = arrival.max(forward);
            } else if o.stage == node.stage {
                arrival = arrival.max(finish[op as usize]);
            }
        }
        let d = delays[i];
        finish[i] = arrival + d;
        let s = node.stage as usize;
        report.stage_delay_ps[s] = report.stage_delay_ps[s].max(finish[i]);
        if finish[i] > period {
            let why = if section_of[i].is_some() {
                let mem = block
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| section_of[*j] == section_of[i])
                    .find_map(|(_, n)| match n.kind {
                        NodeKind::MemRead { mem, .. } | NodeKind::MemWrite { mem, .. } => {
                            Some(block.memories[mem as usize].name.clone())
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                format!("the read-modify-write of map `{mem}` must finish within one stage")
            } else if arrival == 0 {
                format!("one operation ({:?}) takes {d} ps", node.kind)
            } else {
                report.violations.push(format!(
                    "n{i} in stage {s} finishes at {} ps, past the {period} ps period, and is neither a memory section nor a single operation",
                    finish[i]
                ));
                continue;
            };
            let line = format!("stage {s} takes {} ps > {period} ps: {why}", finish[i]);
            if !report.overruns.contains(&line) {
                report.overruns.push(line);
            }
        }
    }
    for (k, m) in block.memories.iter().enumerate() {
        let stages_of = |want_read: bool| -> std::collections::BTreeSet<u32> {
            block
                .nodes
                .iter()
                .filter(|n| match n.kind {
                    NodeKind::MemRead { mem, .. } => want_read && mem as usize == k,
                    NodeKind::MemWrite { mem, .. } => !want_read && mem as usize == k,
                    _ => false,
                })
                .map(|n| n.stage)
                .collect()
        };
        let (reads, writes) = (stages_of(true), stages_of(false));
        if reads.len() > 1 || writes.len() > 1 {
            report.violations.push(format!(
                "map `{}` is read in stages {reads:?} and written in stages {writes:?}; its reads must share one stage and its writes another",
                m.name
            ));
        } else if let (Some(&r), Some(&w)) = (reads.first(), writes.first()) {
            if w != r + 1 {
                report.violations.push(format!(
                    "map `{}` is read in stage {r} and written in stage {w}; the hardware forwards only a write in the stage right after the read",
                    m.name
                ));
            }
        }
    }
    report
}
