//! Removing moves of a constant into a register that already holds it.
//!
//! Resolving block parameters on edges writes the same constant on every edge that passes it
//! (`r6 = 2` before each of a chain of checks that all give up the same way), and hoisting
//! those moves above their jumps ([`super::hoist_moves`]) puts them one after another on the
//! fall-through path. This pass follows which registers hold which constants by forward
//! dataflow over the code's own jumps (a register is known at a join only when every way in
//! brings the same constant), and deletes a move that would write the value the register
//! already holds.
//!
//! The kernel verifier tracks a register written by a constant move as that exact scalar, so
//! the state it sees after the deleted move is the one it already had. A 64-bit test against
//! zero also tells the pass (and the verifier) that the register is zero on one edge.

use super::branches::{Label, MachInsn};
use super::peephole::effects;
use frontend::insn::{Imm64, Insn, Operand, Reg};
use ir::semantics::{AluOp, JmpCond, Width};
use std::collections::HashMap;

/// The 64-bit value a move of a constant writes, if `m` is one.
fn constant_written(m: &MachInsn) -> Option<(Reg, u64)> {
    match *m {
        MachInsn::Insn(Insn::Alu {
            op: AluOp::Mov,
            width,
            dst,
            src: Operand::Imm(imm),
        }) => Some((
            dst,
            match width {
                Width::W64 => imm as i64 as u64,
                Width::W32 => imm as u32 as u64,
            },
        )),
        MachInsn::Insn(Insn::Imm64 {
            dst,
            imm: Imm64::Value(v),
        }) => Some((dst, v)),
        _ => None,
    }
}

/// Which constant each register `r0`-`r10` holds, where known.
type Known = [Option<u64>; 11];

/// `state` after `m`: a constant move records its value, a copy passes its source's value on,
/// any other write forgets.
fn transfer(m: &MachInsn, state: &mut Known) {
    if let Some((dst, v)) = constant_written(m) {
        state[dst.0 as usize % 11] = Some(v);
        return;
    }
    if let MachInsn::Insn(Insn::Alu {
        op: AluOp::Mov,
        width: Width::W64,
        dst,
        src: Operand::Reg(src),
    }) = *m
    {
        state[dst.0 as usize % 11] = state[src.0 as usize % 11];
        return;
    }
    let defs = effects(m).defs;
    for (r, slot) in state.iter_mut().enumerate() {
        if defs & (1 << r) != 0 {
            *slot = None;
        }
    }
}

/// The states after `m` on its taken edge and on its fall-through. A 64-bit test of a
/// register against zero tells that the register is zero where the test says so: for a
/// scalar the verifier learns the same, and a pointer that may be NULL becomes the scalar
/// zero on its NULL branch (`mark_ptr_or_null_reg` in the kernel's verifier). Tests against
/// other constants teach nothing here, because a pointer compared with them stays a pointer.
fn after_zero_test(m: &MachInsn, state: &Known) -> (Known, Known) {
    let (mut taken, mut fall) = (*state, *state);
    if let MachInsn::Jcc {
        width: Width::W64,
        cond,
        dst,
        src: Operand::Imm(0),
        ..
    } = *m
    {
        match cond {
            JmpCond::Eq => taken[dst.0 as usize % 11] = Some(0),
            JmpCond::Ne => fall[dst.0 as usize % 11] = Some(0),
            _ => {}
        }
    }
    (taken, fall)
}

/// The constants known on entry to each instruction, by forward dataflow over the code's own
/// control flow: a register is known at a join only when every way in brings the same value.
/// `None` marks code no path reaches (yet).
fn known_before(code: &[MachInsn]) -> Vec<Option<Known>> {
    let n = code.len();
    let mut label_at: HashMap<Label, usize> = HashMap::new();
    for (k, m) in code.iter().enumerate() {
        if let MachInsn::Label(l) = m {
            label_at.insert(*l, k);
        }
    }
    let mut before: Vec<Option<Known>> = vec![None; n];
    if n == 0 {
        return before;
    }
    before[0] = Some([None; 11]);
    let meet = |slot: &mut Option<Known>, incoming: &Known| -> bool {
        match slot {
            None => {
                *slot = Some(*incoming);
                true
            }
            Some(have) => {
                let mut changed = false;
                for (h, i) in have.iter_mut().zip(incoming) {
                    if h.is_some() && h != i {
                        *h = None;
                        changed = true;
                    }
                }
                changed
            }
        }
    };
    let mut changed = true;
    while changed {
        changed = false;
        for k in 0..n {
            let Some(mut state) = before[k] else { continue };
            transfer(&code[k], &mut state);
            let falls = !matches!(code[k], MachInsn::Ja(_) | MachInsn::Insn(Insn::Exit));
            let (taken, fall) = after_zero_test(&code[k], &state);
            if falls && k + 1 < n {
                changed |= meet(&mut before[k + 1], &fall);
            }
            if let MachInsn::Ja(l) | MachInsn::Jcc { target: l, .. } = code[k] {
                if let Some(&t) = label_at.get(&l) {
                    changed |= meet(&mut before[t], &taken);
                }
            }
        }
    }
    before
}

/// Deletes constant moves (and copies) whose destination already holds the value on every
/// path that reaches them.
pub fn optimize(code: Vec<MachInsn>) -> Vec<MachInsn> {
    let before = known_before(&code);
    let redundant = |k: usize, m: &MachInsn| -> bool {
        let Some(state) = &before[k] else {
            return false;
        };
        if let Some((dst, v)) = constant_written(m) {
            return state[dst.0 as usize % 11] == Some(v);
        }
        match *m {
            MachInsn::Insn(Insn::Alu {
                op: AluOp::Mov,
                width: Width::W64,
                dst,
                src: Operand::Reg(src),
            }) => {
                let v = state[src.0 as usize % 11];
                v.is_some() && state[dst.0 as usize % 11] == v
            }
            _ => false,
        }
    };
    let keep: Vec<bool> = code
        .iter()
        .enumerate()
        .map(|(k, m)| !redundant(k, m))
        .collect();
    code.into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(m, _)| m)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::testing::mov_imm;

    fn jcc(target: u32) -> MachInsn {
        MachInsn::Jcc {
            width: Width::W64,
            cond: JmpCond::Gt,
            dst: Reg(1),
            src: Operand::Reg(Reg(2)),
            target,
        }
    }

    #[test]
    fn a_repeated_constant_through_fall_through_goes() {
        let code = vec![
            mov_imm(Width::W64, 6, 2),
            jcc(7),
            mov_imm(Width::W64, 6, 2),
            jcc(7),
            MachInsn::Label(7),
        ];
        assert_eq!(optimize(code).len(), 4);
    }

    #[test]
    fn a_zero_test_makes_its_register_known_zero_where_it_says_so() {
        // if r1 == 0 goto 5; r1 = 1; goto 6; 5: r1 = 0; 6: exit. The move of zero after the
        // taken test goes; the 32-bit test teaches nothing about the upper half.
        let zero_test = |width, cond| MachInsn::Jcc {
            width,
            cond,
            dst: Reg(1),
            src: Operand::Imm(0),
            target: 5,
        };
        let code = |width, cond| {
            vec![
                zero_test(width, cond),
                mov_imm(Width::W64, 1, 1),
                MachInsn::Ja(6),
                MachInsn::Label(5),
                mov_imm(Width::W64, 1, 0),
                MachInsn::Label(6),
                MachInsn::Insn(Insn::Exit),
            ]
        };
        assert_eq!(optimize(code(Width::W64, JmpCond::Eq)).len(), 6);
        assert_eq!(optimize(code(Width::W32, JmpCond::Eq)).len(), 7);
        assert_eq!(optimize(code(Width::W64, JmpCond::Ne)).len(), 7);
        // On the fall-through of `!= 0` the register is zero.
        let fall = vec![
            zero_test(Width::W64, JmpCond::Ne),
            mov_imm(Width::W64, 1, 0),
            MachInsn::Label(5),
            MachInsn::Insn(Insn::Exit),
        ];
        assert_eq!(optimize(fall).len(), 3);
    }

    #[test]
    fn widths_are_respected() {
        // mov32 -1 is 0xffff_ffff, not the mov64 -1 that follows it.
        let code = vec![mov_imm(Width::W32, 6, -1), mov_imm(Width::W64, 6, -1)];
        assert_eq!(optimize(code).len(), 2);
    }

    #[test]
    fn a_join_knows_only_what_every_way_in_brings() {
        // Both ways into label 3 bring r6 = 2 and r7 = something different.
        let same = vec![
            mov_imm(Width::W64, 6, 2),
            mov_imm(Width::W64, 7, 1),
            jcc(3),
            mov_imm(Width::W64, 7, 9),
            MachInsn::Label(3),
            mov_imm(Width::W64, 6, 2),
            mov_imm(Width::W64, 7, 1),
            MachInsn::Insn(Insn::Exit),
        ];
        let out = optimize(same);
        assert_eq!(out.len(), 7, "{out:?}");
        assert!(matches!(
            out[5],
            MachInsn::Insn(Insn::Alu {
                dst: Reg(7),
                src: Operand::Imm(1),
                ..
            })
        ));
        // A loop back edge that changes r6 makes it unknown at the loop head.
        let looped = vec![
            mov_imm(Width::W64, 6, 2),
            MachInsn::Label(3),
            mov_imm(Width::W64, 6, 2),
            MachInsn::Insn(Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst: Reg(6),
                src: Operand::Imm(1),
            }),
            jcc(3),
            MachInsn::Insn(Insn::Exit),
        ];
        assert_eq!(optimize(looped.clone()).len(), looped.len());
    }

    #[test]
    fn a_write_by_another_instruction_forgets_the_constant() {
        let code = vec![
            mov_imm(Width::W64, 6, 2),
            MachInsn::Insn(Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst: Reg(6),
                src: Operand::Imm(1),
            }),
            mov_imm(Width::W64, 6, 2),
            MachInsn::Call(ir::FuncRef::from_u32(0)),
            mov_imm(Width::W64, 6, 2),
            mov_imm(Width::W64, 1, 2),
            MachInsn::Call(ir::FuncRef::from_u32(0)),
            mov_imm(Width::W64, 1, 2),
        ];
        // r6 survives the call (callee-saved), r1 does not.
        assert_eq!(optimize(code).len(), 7);
    }
}
