//! Hoisting the moves of one outgoing path above a conditional jump.
//!
//! Block parameters are resolved on edges, so an edge that sets a parameter costs its moves
//! plus a `ja` (or a trampoline reached by the conditional jump that ends in a `ja`). Clang
//! instead writes the parameter's register before the conditional jump whenever the other
//! path does not need that register: `r6 = 2; if r1 > r2 goto L` rather than
//! `if r1 <= r2 goto M; r6 = 2; goto L; M:`. This pass does the same on the selected code:
//!
//! - **Fall-through moves.** `if c goto L1; M; ja L2; L1:` becomes `M; if !c goto L2; L1:`
//!   when the moves `M` write no register the jump reads or the code at `L1` needs.
//! - **Trampolines.** `if c goto T; ...` where only that jump reaches `T: M; ja L2` becomes
//!   `M; if c goto L2; ...` when `M` writes no register the jump reads or the fall-through
//!   path needs; the trampoline is left unreachable and branch resolution drops it. A
//!   trampoline may also fall through into `L2` instead of jumping there: that is the second
//!   arm of a diamond, `if c goto T; M1; ja L2; T: M; L2:`, which becomes
//!   `M; if c goto L2; M1; L2:`. This matters where the jump cannot be inverted (`jset`),
//!   so the fall-through rule cannot apply.
//!
//! Either way one `ja` goes. Only moves are hoisted (register copies, immediates, 64-bit
//! constants, map and function addresses): they cannot fault, and a 64-bit register copy
//! shares the verifier's identity of its source, so a NULL or bounds check by the jump still
//! applies to the copy. Arithmetic is never hoisted, because the verifier refuses arithmetic
//! on a pointer that may still be NULL before its check. The registers written are dead on the
//! path that did not take them (checked with liveness over the code), so values on every path
//! are unchanged; the verifier's view of a dead register does not matter to it.

use super::branches::{Label, MachInsn};
use super::isel::invert_cond;
use super::peephole::{effects, live_after, sole_entry_labels, RegSet};
use frontend::insn::{Insn, Operand};
use ir::semantics::{AluOp, Width};
use std::collections::HashMap;

/// The most moves hoisted above one jump: a parallel copy is rarely longer, and hoisting
/// more would only lengthen the path that did not need them.
const MAX_MOVES: usize = 4;

/// Hoists moves until no jump allows more. Never changes what the code computes.
pub fn optimize(mut code: Vec<MachInsn>) -> Vec<MachInsn> {
    for _ in 0..64 {
        match hoist_once(&code) {
            Some(next) => code = next,
            None => break,
        }
    }
    code
}

/// True for the instructions this pass may move above a jump: they only write their
/// destination from registers or constants and cannot fault.
fn is_move(m: &MachInsn) -> bool {
    match m {
        MachInsn::LoadMap { .. } | MachInsn::LoadMapValue { .. } | MachInsn::LoadFunc { .. } => {
            true
        }
        MachInsn::Insn(Insn::Imm64 { .. }) => true,
        MachInsn::Insn(Insn::Alu {
            op: AluOp::Mov,
            width,
            src,
            ..
        }) => matches!(src, Operand::Imm(_)) || *width == Width::W64,
        _ => false,
    }
}

/// Registers live on entry to each instruction.
fn live_before(code: &[MachInsn], after: &[RegSet]) -> Vec<RegSet> {
    code.iter()
        .zip(after)
        .map(|(m, &a)| {
            let e = effects(m);
            (a & !e.defs) | e.uses
        })
        .collect()
}

/// The moves starting at `from` up to a `ja`, with the `ja`'s position and target; no label
/// may sit among them (another path could enter there).
fn moves_then_jump(code: &[MachInsn], from: usize) -> Option<(usize, Label)> {
    let mut j = from;
    while j < code.len() && j - from <= MAX_MOVES {
        match &code[j] {
            MachInsn::Ja(l) => return Some((j, *l)).filter(|_| j > from),
            m if is_move(m) => j += 1,
            _ => return None,
        }
    }
    None
}

/// The moves starting at `from` up to a `ja` or up to a label they fall through into, with the
/// position and the label where control continues; at least one move.
fn moves_then_continue(code: &[MachInsn], from: usize) -> Option<(usize, Label)> {
    let mut j = from;
    while j < code.len() && j - from <= MAX_MOVES {
        match &code[j] {
            MachInsn::Ja(l) | MachInsn::Label(l) => return Some((j, *l)).filter(|_| j > from),
            m if is_move(m) => j += 1,
            _ => return None,
        }
    }
    None
}

/// Registers the instructions write.
fn writes(code: &[MachInsn]) -> RegSet {
    code.iter().fold(0, |acc, m| acc | effects(m).defs)
}

/// Performs the first hoist the code allows, returning the new code.
fn hoist_once(code: &[MachInsn]) -> Option<Vec<MachInsn>> {
    let after = live_after(code);
    let before = live_before(code, &after);
    let mut label_at: HashMap<Label, usize> = HashMap::new();
    for (k, m) in code.iter().enumerate() {
        if let MachInsn::Label(l) = m {
            label_at.insert(*l, k);
        }
    }
    let sole_entry = sole_entry_labels(code);
    for (k, m) in code.iter().enumerate() {
        let MachInsn::Jcc {
            width,
            cond,
            dst,
            src,
            target,
        } = *m
        else {
            continue;
        };
        let jump_reads = effects(m).uses;
        // Fall-through moves ending in a jump over the taken target.
        if let (Some(inv), Some((ja_at, dest))) = (invert_cond(cond), moves_then_jump(code, k + 1))
        {
            let mut t = ja_at + 1;
            let mut lands = false;
            while let Some(MachInsn::Label(l)) = code.get(t) {
                lands |= *l == target;
                t += 1;
            }
            let moves = &code[k + 1..ja_at];
            let w = writes(moves);
            let target_live = label_at.get(&target).map_or(!0, |&p| before[p]);
            if lands && dest != target && w & (jump_reads | target_live) == 0 {
                let mut out = code[..k].to_vec();
                out.extend_from_slice(moves);
                out.push(MachInsn::Jcc {
                    width,
                    cond: inv,
                    dst,
                    src,
                    target: dest,
                });
                out.extend_from_slice(&code[ja_at + 1..]);
                return Some(out);
            }
        }
        // A trampoline only this jump reaches; what follows its moves (a `ja`, or the label it
        // falls into) stays in place and becomes unreachable with it.
        if let Some(&t) = sole_entry.get(&target) {
            if let Some((ja_at, dest)) = moves_then_continue(code, t + 1) {
                let moves = &code[t + 1..ja_at];
                let w = writes(moves);
                let fall_live = before.get(k + 1).copied().unwrap_or(0);
                if dest != target && w & (jump_reads | fall_live) == 0 {
                    let mut out = code[..k].to_vec();
                    out.extend_from_slice(moves);
                    out.push(MachInsn::Jcc {
                        width,
                        cond,
                        dst,
                        src,
                        target: dest,
                    });
                    out.extend_from_slice(&code[k + 1..]);
                    return Some(out);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::testing::{exit_with, jcc, mov_imm};
    use frontend::insn::Reg;
    use ir::semantics::JmpCond;

    #[test]
    fn fall_through_moves_go_above_the_jump() {
        // if r1 == 0 goto 1; r6 = 2; goto 2; 1: r6 = r1; 2: r0 = r6; exit
        let mut code = vec![
            jcc(JmpCond::Eq, 1, 0, 1),
            mov_imm(Width::W64, 6, 2),
            MachInsn::Ja(2),
            MachInsn::Label(1),
            MachInsn::Insn(Insn::Alu {
                width: Width::W64,
                op: AluOp::Mov,
                dst: Reg(6),
                src: Operand::Reg(Reg(1)),
            }),
            MachInsn::Label(2),
        ];
        code.extend(exit_with(6));
        let out = optimize(code);
        assert_eq!(out.len(), 7, "{out:?}");
        assert!(matches!(
            out[0],
            MachInsn::Insn(Insn::Alu { dst: Reg(6), .. })
        ));
        assert!(matches!(
            out[1],
            MachInsn::Jcc {
                cond: JmpCond::Ne,
                target: 2,
                ..
            }
        ));
    }

    #[test]
    fn moves_stay_when_the_other_path_reads_their_register() {
        // if r1 == 0 goto 1; r6 = 2; goto 2; 1: r0 = r6; exit; 2: r0 = r6; exit
        let mut code = vec![
            jcc(JmpCond::Eq, 1, 0, 1),
            mov_imm(Width::W64, 6, 2),
            MachInsn::Ja(2),
            MachInsn::Label(1),
        ];
        code.extend(exit_with(6));
        code.push(MachInsn::Label(2));
        code.extend(exit_with(6));
        let out = optimize(code.clone());
        assert_eq!(out.len(), code.len());
    }

    #[test]
    fn moves_stay_when_the_jump_reads_their_register() {
        let mut code = vec![
            jcc(JmpCond::Eq, 6, 0, 1),
            mov_imm(Width::W64, 6, 2),
            MachInsn::Ja(2),
            MachInsn::Label(1),
            mov_imm(Width::W64, 6, 3),
            MachInsn::Label(2),
        ];
        code.extend(exit_with(6));
        let out = optimize(code.clone());
        assert_eq!(out.len(), code.len());
    }

    #[test]
    fn trampolines_are_hoisted_and_left_unreachable() {
        // if r1 > 5 goto 9; r6 = 1; 2: r0 = r6; exit; 9: r6 = 7; goto 2
        let mut code = vec![
            jcc(JmpCond::Gt, 1, 5, 9),
            mov_imm(Width::W64, 6, 1),
            MachInsn::Label(2),
        ];
        code.extend(exit_with(6));
        code.extend([
            MachInsn::Label(9),
            mov_imm(Width::W64, 6, 7),
            MachInsn::Ja(2),
        ]);
        let out = optimize(code);
        // r6 = 1 is written on the fall-through path, after the jump: r6 is dead there, so
        // r6 = 7 may go first.
        assert!(matches!(
            out[0],
            MachInsn::Insn(Insn::Alu { dst: Reg(6), .. })
        ));
        assert!(matches!(out[1], MachInsn::Jcc { target: 2, .. }));
        let live = super::super::branches::drop_unreachable(out);
        let insns = live
            .iter()
            .filter(|m| !matches!(m, MachInsn::Label(_)))
            .count();
        // r6 = 7, the jump, r6 = 1, r0 = r6, exit: the trampoline's `ja` is gone.
        assert_eq!(insns, 5, "{live:?}");
    }

    #[test]
    fn the_second_arm_of_a_diamond_is_hoisted_above_a_jset() {
        // if r1 & 8 goto 9; r6 = 1; goto 2; 9: r6 = 7; 2: r0 = r6; exit
        let mut code = vec![
            jcc(JmpCond::Set, 1, 8, 9),
            mov_imm(Width::W64, 6, 1),
            MachInsn::Ja(2),
            MachInsn::Label(9),
            mov_imm(Width::W64, 6, 7),
            MachInsn::Label(2),
        ];
        code.extend(exit_with(6));
        let out = super::super::branches::drop_unreachable(optimize(code));
        let insns: Vec<&MachInsn> = out
            .iter()
            .filter(|m| !matches!(m, MachInsn::Label(_)))
            .collect();
        // r6 = 7; if r1 & 8 goto 2; r6 = 1; goto 2 (to the next instruction); r0 = r6; exit.
        assert!(matches!(
            insns[0],
            MachInsn::Insn(Insn::Alu {
                dst: Reg(6),
                src: Operand::Imm(7),
                ..
            })
        ));
        assert!(matches!(
            insns[1],
            MachInsn::Jcc {
                cond: JmpCond::Set,
                target: 2,
                ..
            }
        ));
        assert_eq!(
            super::super::branches::resolve(out)
                .map(|c| c.insns.len())
                .ok(),
            Some(5)
        );
    }
}
