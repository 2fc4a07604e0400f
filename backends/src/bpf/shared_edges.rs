//! One shared copy of identical edge code.
//!
//! Block parameters are resolved on edges, so a chain of checks that all give up the same way
//! (`if (a) goto fail; if (b) goto fail;` with `fail` receiving `-1`) repeats the same code
//! on every failing edge: `if !a goto next; w7 = -1; goto join; next:` three instructions
//! per check. Clang writes such a value once. This pass finds straight-line runs of
//! instructions ending in `ja L` that occur more than once with the same instructions and
//! the same `L`, puts one copy `S: run; ja L` at the end of the function and sends every
//! occurrence there:
//!
//! - `if c goto M; run; ja L; M:` becomes `if !c goto S` (the run was the fall-through
//!   edge; the jump over it goes);
//! - `if c goto T` where only that jump reaches `T: run; ja L` becomes `if c goto S`;
//! - any other `run; ja L` becomes `ja S`.
//!
//! A group is rewritten only when that saves instructions, counting the shared copy. Every
//! path executes the same instructions in the same order as before, so values are unchanged;
//! the kernel verifier walks the shared copy once per path that reaches it, with that path's
//! register states, exactly as it walked the copies.

use super::branches::{Label, MachInsn};
use super::isel::invert_cond;
use super::peephole::{jump_targets, sole_entry_labels};
use frontend::insn::Insn;
use std::collections::HashMap;

/// Runs longer than this are not compared (edge code is a handful of moves).
const MAX_RUN: usize = 8;

/// How an occurrence reaches its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `code[jcc]` jumps over the run, which is its fall-through edge.
    FallThrough { jcc: usize },
    /// `code[jcc]` is the only way into the run, a trampoline.
    Trampoline { jcc: usize },
    /// Anything else: the run and its `ja` become one `ja`.
    Plain,
}

/// One `run; ja L` in the code: the run is `code[start..ja]`.
#[derive(Clone, Copy, Debug)]
struct Occurrence {
    start: usize,
    ja: usize,
    shape: Shape,
}

/// Shares identical edge code while that makes the function shorter. Never changes what the
/// code computes.
pub fn optimize(mut code: Vec<MachInsn>) -> Vec<MachInsn> {
    for _ in 0..32 {
        match share_once(&code) {
            Some(next) if total(&next) < total(&code) => code = next,
            _ => break,
        }
    }
    code
}

/// True for instructions that run straight through and may move into a shared copy.
fn is_straight(m: &MachInsn) -> bool {
    match m {
        MachInsn::Label(_) | MachInsn::Ja(_) | MachInsn::Jcc { .. } => false,
        MachInsn::Insn(i) => !matches!(
            i,
            Insn::Exit | Insn::Ja { .. } | Insn::Jmp { .. } | Insn::Imm64Tail
        ),
        MachInsn::Call(_)
        | MachInsn::LoadMap { .. }
        | MachInsn::LoadMapValue { .. }
        | MachInsn::LoadFunc { .. } => true,
    }
}

fn total(code: &[MachInsn]) -> usize {
    code.iter().map(MachInsn::slots).sum()
}

/// Every `run; ja L` with a non-empty run, with how it is reached.
fn occurrences(code: &[MachInsn]) -> Vec<Occurrence> {
    let sole_entry = sole_entry_labels(code);
    let targets = jump_targets(code);
    let mut out = Vec::new();
    for (ja, m) in code.iter().enumerate() {
        let MachInsn::Ja(_) = m else { continue };
        let mut start = ja;
        while start > 0 && ja - start < MAX_RUN && is_straight(&code[start - 1]) {
            start -= 1;
        }
        if start == ja || (start > 0 && is_straight(&code[start - 1])) {
            continue;
        }
        // The labels right before the run, and the instruction before them.
        let mut p = start;
        while p > 0 && matches!(code[p - 1], MachInsn::Label(_)) {
            p -= 1;
        }
        let referenced: Vec<Label> = code[p..start]
            .iter()
            .filter_map(|m| match m {
                MachInsn::Label(l) if targets.contains(l) => Some(*l),
                _ => None,
            })
            .collect();
        let shape = match (referenced.as_slice(), p.checked_sub(1).map(|q| &code[q])) {
            // Reached only by falling through from a conditional jump over it to the labels
            // right after its `ja`.
            ([], Some(MachInsn::Jcc { cond, target, .. })) if p == start => {
                let lands = code[ja + 1..]
                    .iter()
                    .take_while(|m| matches!(m, MachInsn::Label(_)))
                    .any(|m| matches!(m, MachInsn::Label(l) if l == target));
                if lands && invert_cond(*cond).is_some() {
                    Shape::FallThrough { jcc: p - 1 }
                } else {
                    Shape::Plain
                }
            }
            ([t], _) if sole_entry.contains_key(t) => {
                match code
                    .iter()
                    .position(|m| matches!(m, MachInsn::Jcc { target, .. } if target == t))
                {
                    Some(jcc) => Shape::Trampoline { jcc },
                    None => Shape::Plain,
                }
            }
            _ => Shape::Plain,
        };
        out.push(Occurrence { start, ja, shape });
    }
    out
}

/// Rewrites the most profitable group of identical runs, if one saves anything.
fn share_once(code: &[MachInsn]) -> Option<Vec<MachInsn>> {
    let mut groups: HashMap<String, Vec<Occurrence>> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for o in occurrences(code) {
        let key = format!("{:?}", &code[o.start..=o.ja]);
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(o);
    }
    let mut best: Option<(usize, &Vec<Occurrence>)> = None;
    for key in &order {
        let group = &groups[key];
        if group.len() < 2 {
            continue;
        }
        let first = group[0];
        let run: usize = code[first.start..first.ja]
            .iter()
            .map(MachInsn::slots)
            .sum();
        let saved: usize = group
            .iter()
            .map(|o| match o.shape {
                Shape::FallThrough { .. } | Shape::Trampoline { .. } => run + 1,
                Shape::Plain => run,
            })
            .sum();
        let cost = run + 1;
        if saved > cost && best.is_none_or(|(s, _)| saved - cost > s) {
            best = Some((saved - cost, group));
        }
    }
    let (_, group) = best?;
    let label = super::branches::fresh_label(code);
    let first = group[0];
    let mut shared = vec![MachInsn::Label(label)];
    shared.extend_from_slice(&code[first.start..=first.ja]);
    // Edits by position, applied from the end so earlier positions stay valid.
    let mut edits: Vec<(usize, usize, Vec<MachInsn>)> = Vec::new();
    for o in group {
        match o.shape {
            Shape::FallThrough { jcc } => {
                let MachInsn::Jcc {
                    width,
                    cond,
                    dst,
                    src,
                    ..
                } = code[jcc]
                else {
                    return None;
                };
                let inverse = invert_cond(cond)?;
                edits.push((
                    jcc,
                    o.ja,
                    vec![MachInsn::Jcc {
                        width,
                        cond: inverse,
                        dst,
                        src,
                        target: label,
                    }],
                ));
            }
            Shape::Trampoline { jcc } => {
                let mut retargeted = code[jcc].clone();
                if let MachInsn::Jcc { target, .. } = &mut retargeted {
                    *target = label;
                }
                edits.push((jcc, jcc, vec![retargeted]));
            }
            Shape::Plain => edits.push((o.start, o.ja, vec![MachInsn::Ja(label)])),
        }
    }
    // A jump can be both the one over one run and the only way into the next; such an
    // occurrence keeps its code.
    edits.sort_by_key(|e| e.0);
    let mut kept: Vec<(usize, usize, Vec<MachInsn>)> = Vec::new();
    for e in edits {
        if kept.last().is_none_or(|last| last.1 < e.0) {
            kept.push(e);
        }
    }
    let mut edits = kept;
    edits.reverse();
    let mut out = code.to_vec();
    for (from, to, with) in edits {
        out.splice(from..=to, with);
    }
    out.extend(shared);
    // Trampolines nothing reaches any more go.
    Some(super::branches::drop_unreachable(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::testing::{jcc, mov_imm, run};
    use ir::semantics::{JmpCond, Width};

    fn count(code: &[MachInsn]) -> usize {
        total(code)
    }

    #[test]
    fn repeated_failure_edges_share_one_copy() {
        // if r1 == 1 goto 1; w7 = -1; goto 9; 1: if r2 == 2 goto 2; w7 = -1; goto 9;
        // 2: if r3 == 3 goto 3; w7 = -1; goto 9; 3: w7 = 5; 9: exit
        let code = vec![
            jcc(JmpCond::Eq, 1, 1, 1),
            mov_imm(Width::W32, 7, -1),
            MachInsn::Ja(9),
            MachInsn::Label(1),
            jcc(JmpCond::Eq, 2, 2, 2),
            mov_imm(Width::W32, 7, -1),
            MachInsn::Ja(9),
            MachInsn::Label(2),
            jcc(JmpCond::Eq, 3, 3, 3),
            mov_imm(Width::W32, 7, -1),
            MachInsn::Ja(9),
            MachInsn::Label(3),
            mov_imm(Width::W32, 7, 5),
            MachInsn::Label(9),
            MachInsn::Insn(Insn::Exit),
        ];
        let out = optimize(code.clone());
        // Three jumps, the shared move and its jump, the last move and exit.
        assert_eq!(count(&out), 7, "{out:?}");
        assert!(count(&out) < count(&code));
        for a in 0..2u64 {
            for b in 0..2u64 {
                for c in 0..2u64 {
                    let args = [a, 2 * b, 3 * c, 0, 0];
                    assert_eq!(run(&out, args), run(&code, args), "{args:?}");
                }
            }
        }
    }

    #[test]
    fn different_runs_or_targets_stay_apart() {
        let code = vec![
            jcc(JmpCond::Eq, 1, 1, 1),
            mov_imm(Width::W32, 7, -1),
            MachInsn::Ja(9),
            MachInsn::Label(1),
            jcc(JmpCond::Eq, 2, 2, 2),
            mov_imm(Width::W32, 7, -2),
            MachInsn::Ja(9),
            MachInsn::Label(2),
            mov_imm(Width::W32, 7, 5),
            MachInsn::Label(9),
            MachInsn::Insn(Insn::Exit),
        ];
        let out = optimize(code.clone());
        assert_eq!(count(&out), count(&code));
    }
}
