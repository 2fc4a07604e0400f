//! One shared `exit` for the constant returns of a function, with `r0` written early.
//!
//! The selector returns a constant through a stub `L: r0 = c; exit` that every edge returning
//! `c` jumps to, so a program with three verdicts has three stubs of two instructions. Clang
//! instead writes `r0` on the way, as early as nothing else needs `r0`, and jumps to one
//! `exit`: a chain of checks that all give up with `XDP_PASS` shares a single `r0 = 2`
//! written before the first of them.
//!
//! For each stub this pass tries that shape: every jump to the stub gets the stub's move
//! placed above it, as high as no instruction between reads or writes `r0` (or writes the
//! register the move copies), no other path enters, and no jump crossed needs `r0` on its
//! target; the jump then goes to the shared `exit`. A conditional jump is rewritten only when
//! its fall-through path does not need `r0`. Moves that meet an identical earlier one are
//! removed by [`super::known_constants`]. The rewrite of a stub is kept only when the whole
//! function gets no longer, because a stub reached by many jumps from far apart costs more
//! moves than it saves.
//!
//! The kernel verifier sees `r0` hold the same scalar at every `exit` as before; writing a
//! constant into a register earlier does not change any other register's state.

use super::branches::{drop_jumps_to_next, drop_unreachable, Label, MachInsn};
use super::known_constants;
use super::peephole::{bit, effects, ends_flow, jump_targets, live_after, RegSet};
use frontend::insn::{Imm64, Insn, Operand, Reg};
use ir::semantics::{AluOp, Width};
use std::collections::HashMap;

/// Rewrites the stubs whose rewrite makes the function shorter. Never changes what it computes.
pub fn optimize(code: Vec<MachInsn>) -> Vec<MachInsn> {
    let mut code = code;
    let mut best = slots(&cleaned(code.clone()));
    let mut shared: Option<Label> = None;
    let mut tried: Vec<Label> = Vec::new();
    // Each round tries the first stub not yet tried; stubs never grow in number.
    for _ in 0..32 {
        let Some((label, mov_at, exit_at)) = next_stub(&code, &tried) else {
            break;
        };
        tried.push(label);
        let (candidate, exit_label) = rewrite_stub(&code, label, mov_at, exit_at, shared);
        let candidate = cleaned(candidate);
        let size = slots(&candidate);
        // Ties are kept: the stub's `exit` then serves the stubs after it, which is where
        // the savings come from.
        if size <= best {
            best = size;
            code = candidate;
            shared = Some(exit_label);
        }
    }
    code
}

/// The clean-up branch resolution and the constant pass would do, so sizes compare fairly.
fn cleaned(code: Vec<MachInsn>) -> Vec<MachInsn> {
    let code = known_constants::optimize(drop_jumps_to_next(drop_unreachable(code)));
    drop_exits_before_exits(code)
}

/// Removes an `exit` that labels alone separate from another `exit`: falling into the second
/// one returns the same `r0`.
fn drop_exits_before_exits(code: Vec<MachInsn>) -> Vec<MachInsn> {
    let is_exit = |m: &MachInsn| matches!(m, MachInsn::Insn(Insn::Exit));
    let keep: Vec<bool> = (0..code.len())
        .map(|k| {
            !is_exit(&code[k])
                || !code[k + 1..]
                    .iter()
                    .find(|m| !matches!(m, MachInsn::Label(_)))
                    .is_some_and(is_exit)
        })
        .collect();
    code.into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(m, _)| m)
        .collect()
}

/// The number of instruction slots the code will take.
fn slots(code: &[MachInsn]) -> usize {
    code.iter().map(MachInsn::slots).sum()
}

/// True for `r0 = c` and `r0 = rX` (a 64-bit copy from another register).
fn is_return_move(m: &MachInsn) -> bool {
    match m {
        MachInsn::Insn(Insn::Alu {
            op: AluOp::Mov,
            dst: Reg::R0,
            src: Operand::Imm(_),
            ..
        }) => true,
        MachInsn::Insn(Insn::Alu {
            op: AluOp::Mov,
            width: Width::W64,
            dst: Reg::R0,
            src: Operand::Reg(r),
        }) => *r != Reg::R0 && *r != Reg::FP,
        MachInsn::Insn(Insn::Imm64 {
            dst: Reg::R0,
            imm: Imm64::Value(_),
        }) => true,
        _ => false,
    }
}

/// The first stub `L: r0 = x; exit` that some jump names and that was not tried yet: its
/// label, the position of its move and of its `exit`.
fn next_stub(code: &[MachInsn], tried: &[Label]) -> Option<(Label, usize, usize)> {
    let targets = jump_targets(code);
    for (k, m) in code.iter().enumerate() {
        let MachInsn::Label(l) = m else { continue };
        if !targets.contains(l) || tried.contains(l) {
            continue;
        }
        let mut j = k + 1;
        while matches!(code.get(j), Some(MachInsn::Label(_))) {
            j += 1;
        }
        if code.get(j).is_some_and(is_return_move)
            && matches!(code.get(j + 1), Some(MachInsn::Insn(Insn::Exit)))
        {
            return Some((*l, j, j + 1));
        }
    }
    None
}

/// The stub's jumps rewritten to place its move early and jump to a shared `exit`: the one
/// labelled `shared`, or the stub's own `exit` given a fresh label. Returns the code and the
/// label of the `exit` used.
fn rewrite_stub(
    code: &[MachInsn],
    stub: Label,
    mov_at: usize,
    exit_at: usize,
    shared: Option<Label>,
) -> (Vec<MachInsn>, Label) {
    let mov = code[mov_at].clone();
    let mut code = code.to_vec();
    let exit_label = match shared {
        Some(l) => l,
        None => {
            let l = super::branches::fresh_label(&code);
            code.insert(exit_at, MachInsn::Label(l));
            l
        }
    };
    let copied: RegSet = match &mov {
        MachInsn::Insn(Insn::Alu {
            src: Operand::Reg(r),
            ..
        }) => bit(*r),
        _ => 0,
    };
    let r0 = bit(Reg::R0);
    let mut skipped = 0usize;
    while let Some(p) = code
        .iter()
        .enumerate()
        .filter(
            |(_, m)| matches!(m, MachInsn::Ja(l) | MachInsn::Jcc { target: l, .. } if *l == stub),
        )
        .map(|(k, _)| k)
        .nth(skipped)
    {
        let after = live_after(&code);
        let before = |k: usize| -> RegSet {
            code.get(k).map_or(0, |m| {
                let e = effects(m);
                (after[k] & !e.defs) | e.uses
            })
        };
        if let MachInsn::Jcc { .. } = code[p] {
            if effects(&code[p]).uses & r0 != 0 || before(p + 1) & r0 != 0 {
                skipped += 1;
                continue;
            }
        }
        let mut label_at: HashMap<Label, usize> = HashMap::new();
        for (k, m) in code.iter().enumerate() {
            if let MachInsn::Label(l) = m {
                label_at.insert(*l, k);
            }
        }
        let targets = jump_targets(&code);
        let mut q = p;
        while q > 0 {
            let m = &code[q - 1];
            if let MachInsn::Label(l) = m {
                if targets.contains(l) {
                    break;
                }
                q -= 1;
                continue;
            }
            if ends_flow(m) {
                break;
            }
            let e = effects(m);
            if e.defs & (r0 | copied) != 0 || (e.uses | e.implicit) & r0 != 0 {
                break;
            }
            if let MachInsn::Jcc { target, .. } = m {
                if label_at.get(target).is_none_or(|&t| before(t) & r0 != 0) {
                    break;
                }
            }
            q -= 1;
        }
        match &mut code[p] {
            MachInsn::Ja(l) | MachInsn::Jcc { target: l, .. } => *l = exit_label,
            _ => {}
        }
        code.insert(q, mov.clone());
    }
    (code, exit_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::testing::{exit, jcc, mov, mov_imm};
    use ir::semantics::JmpCond;

    #[test]
    fn a_chain_of_checks_shares_one_early_move() {
        // if r1 == 1 goto 8; if r1 == 2 goto 8; r2 = 3; if r2 == 3 goto 8; r0 = 1; exit;
        // 8: r0 = 2; exit
        let code = vec![
            jcc(JmpCond::Eq, 1, 1, 8),
            jcc(JmpCond::Eq, 1, 2, 8),
            mov_imm(Width::W64, 2, 3),
            jcc(JmpCond::Eq, 2, 3, 8),
            mov_imm(Width::W64, 0, 1),
            exit(),
            MachInsn::Label(8),
            mov_imm(Width::W64, 0, 2),
            exit(),
        ];
        let out = optimize(code);
        let insns: Vec<_> = out
            .iter()
            .filter(|m| !matches!(m, MachInsn::Label(_)))
            .collect();
        // r0 = 2 once at the top; three jumps to one exit; r0 = 1 falls into it.
        assert_eq!(insns.len(), 7, "{out:?}");
        assert!(matches!(
            insns[0],
            MachInsn::Insn(Insn::Alu {
                dst: Reg::R0,
                src: Operand::Imm(2),
                ..
            })
        ));
        assert_eq!(
            insns
                .iter()
                .filter(|m| matches!(m, MachInsn::Insn(Insn::Exit)))
                .count(),
            1
        );
    }

    #[test]
    fn a_fall_through_that_needs_r0_keeps_its_stub() {
        // r0 is set before the jump and returned on the fall-through: the stub's move may not
        // go above the jump.
        let code = vec![
            mov_imm(Width::W64, 0, 5),
            jcc(JmpCond::Eq, 1, 1, 8),
            exit(),
            MachInsn::Label(8),
            mov_imm(Width::W64, 0, 2),
            exit(),
        ];
        let out = optimize(code.clone());
        assert_eq!(slots(&out), slots(&code), "{out:?}");
    }

    #[test]
    fn a_move_stops_below_a_call_and_below_a_write_of_its_source() {
        let code = vec![
            MachInsn::Insn(Insn::Call(frontend::insn::CallTarget::Helper(7))),
            mov_imm(Width::W64, 6, 4),
            jcc(JmpCond::Eq, 1, 1, 8),
            mov(0, 6),
            exit(),
            MachInsn::Label(8),
            mov(0, 6),
            exit(),
        ];
        let (rewritten, _) = rewrite_stub(&code, 8, 6, 7, None);
        // The copy of r6 goes right after `r6 = 4`, not above it or the call.
        assert!(matches!(
            rewritten[2],
            MachInsn::Insn(Insn::Alu {
                dst: Reg::R0,
                src: Operand::Reg(Reg(6)),
                ..
            })
        ));
    }
}
