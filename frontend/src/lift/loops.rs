//! Natural loops of a BPF function and, where possible, their trip counts.
//!
//! Since Linux 5.3 the verifier accepts loops it can prove bounded; clang emits them for
//! `for (i = 0; i < N; i++)` with a constant `N`. Targets without backward branches (hardware
//! pipelines) can only run such a loop unrolled, so the lifter reports every loop: its header,
//! the blocks of its body, and the trip count when the loop is controlled by one register that
//! starts at a constant, moves by a constant step and is compared with a constant.

use super::cfg::{BlockExit, Cfg};
use super::provenance::{step, Env, FunctionProvenance, Prov};
use crate::insn::{Insn, Operand, Reg};
use ir::semantics::{self, AluOp, Width};
use std::collections::BTreeSet;

/// One natural loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopInfo {
    /// The first slot of the loop header (the block every iteration starts in).
    pub header: usize,
    /// The first slots of the blocks of the body (header included), in slot order.
    pub body: Vec<usize>,
    /// The slots of the jumps that go back to the header.
    pub back_edges: Vec<usize>,
    /// How many times the body runs, when the loop is a counted loop with constant bounds.
    pub trip_count: Option<u64>,
}

/// Immediate dominators by the iterative algorithm of Cooper, Harvey and Kennedy.
pub fn dominators(cfg: &Cfg) -> Vec<Option<usize>> {
    let n = cfg.blocks.len();
    let mut order = vec![usize::MAX; n];
    for (i, &b) in cfg.rpo.iter().enumerate() {
        order[b] = i;
    }
    let mut idom: Vec<Option<usize>> = vec![None; n];
    if n == 0 {
        return idom;
    }
    idom[0] = Some(0);
    let mut changed = true;
    while changed {
        changed = false;
        for &b in cfg.rpo.iter().skip(1) {
            let mut new: Option<usize> = None;
            for &p in &cfg.preds[b] {
                if idom[p].is_none() {
                    continue;
                }
                new = Some(match new {
                    None => p,
                    Some(mut a) => {
                        let mut c = p;
                        while a != c {
                            while order[a] > order[c] {
                                a = idom[a].expect("processed");
                            }
                            while order[c] > order[a] {
                                c = idom[c].expect("processed");
                            }
                        }
                        a
                    }
                });
            }
            if new != idom[b] && new.is_some() {
                idom[b] = new;
                changed = true;
            }
        }
    }
    idom
}

fn dominates(idom: &[Option<usize>], a: usize, mut b: usize) -> bool {
    loop {
        if a == b {
            return true;
        }
        match idom[b] {
            Some(p) if p != b => b = p,
            _ => return false,
        }
    }
}

/// Finds the natural loops of a function.
pub fn find_loops(
    cfg: &Cfg,
    insns: &[Insn],
    env: &Env,
    prov: &FunctionProvenance,
) -> Vec<LoopInfo> {
    let idom = dominators(cfg);
    let mut loops = Vec::new();
    let mut headers = BTreeSet::new();
    for &b in &cfg.rpo {
        for s in cfg.blocks[b].successors() {
            if dominates(&idom, s, b) {
                headers.insert(s);
            }
        }
    }
    for h in headers {
        let latches: Vec<usize> = cfg.preds[h]
            .iter()
            .copied()
            .filter(|&p| dominates(&idom, h, p))
            .collect();
        let mut body = BTreeSet::new();
        body.insert(h);
        let mut work = latches.clone();
        while let Some(x) = work.pop() {
            if body.insert(x) {
                work.extend(cfg.preds[x].iter().copied());
            }
        }
        let trip_count = trip_count(cfg, insns, env, prov, h, &body);
        loops.push(LoopInfo {
            header: cfg.blocks[h].start,
            body: body.iter().map(|&b| cfg.blocks[b].start).collect(),
            back_edges: latches.iter().map(|&l| cfg.blocks[l].last).collect(),
            trip_count,
        });
    }
    loops
}

/// The trip count of a loop controlled by one register: the loop has one exit branch that
/// compares the register with a constant, the register changes in the body only by adding a
/// constant, and it holds a constant when the loop is entered. The count is found by running
/// the counter with `ir::semantics` (so 32-bit compares and wrap-around are exact), checking
/// before the step when the exit test is in the header and after it otherwise.
fn trip_count(
    cfg: &Cfg,
    insns: &[Insn],
    env: &Env,
    prov: &FunctionProvenance,
    header: usize,
    body: &BTreeSet<usize>,
) -> Option<u64> {
    let exits: Vec<usize> = body
        .iter()
        .copied()
        .filter(|&b| cfg.blocks[b].successors().iter().any(|s| !body.contains(s)))
        .collect();
    let [exit] = exits[..] else { return None };
    let BlockExit::Branch { taken, .. } = cfg.blocks[exit].exit else {
        return None;
    };
    let Insn::Jmp {
        width,
        cond,
        dst,
        src,
        ..
    } = insns[cfg.blocks[exit].last]
    else {
        return None;
    };
    let Operand::Imm(bound) = src else {
        return None;
    };
    let exits_when_true = !body.contains(&taken);
    // The counter's steps inside the body.
    let mut step_by: Option<(Width, i64)> = None;
    for &b in body {
        for s in cfg.slots(b, insns) {
            match insns[s] {
                Insn::Alu {
                    width: w,
                    op: AluOp::Add,
                    dst: d,
                    src: Operand::Imm(k),
                } if d == dst => {
                    if step_by.is_some() {
                        return None;
                    }
                    step_by = Some((w, k as i64));
                }
                ref other if writes(other, dst) => return None,
                _ => {}
            }
        }
    }
    let (step_width, k) = step_by?;
    // The counter's value on entry: the join over the edges from outside the loop.
    let mut init = Prov::Undef;
    for &p in &cfg.preds[header] {
        if body.contains(&p) {
            continue;
        }
        let mut st = prov.entry[p].clone()?;
        for s in cfg.slots(p, insns) {
            step(&mut st, s, &insns[s], env);
        }
        init = init.join(st.reg(dst));
    }
    let mut x = init.constant()? as u64;
    let check_first = exit == header;
    let leaves =
        |x: u64| semantics::compare(cond, width, x, bound as i64 as u64) == exits_when_true;
    let limit = 1u64 << 24;
    for n in 0..limit {
        if check_first && leaves(x) {
            return Some(n);
        }
        x = semantics::alu(AluOp::Add, step_width, x, k as u64);
        if !check_first && leaves(x) {
            return Some(n + 1);
        }
    }
    None
}

/// True when `insn` may change register `r`.
fn writes(insn: &Insn, r: Reg) -> bool {
    match *insn {
        Insn::Alu { dst, .. } | Insn::Endian { dst, .. } | Insn::Imm64 { dst, .. } => dst == r,
        Insn::Load { dst, .. } => dst == r,
        Insn::Atomic { src, .. } => src == r || r == Reg::R0,
        Insn::Call(_) => r.0 <= 5,
        Insn::LoadAbs { .. } | Insn::LoadInd { .. } => r.0 <= 5,
        _ => false,
    }
}
