//! Removing moves of a constant into a register that already holds it.
//!
//! Resolving block parameters on edges writes the same constant on every edge that passes it
//! (`r6 = 2` before each of a chain of checks that all give up the same way), and hoisting
//! those moves above their jumps ([`super::hoist_moves`]) puts them one after another on the
//! fall-through path. This pass follows which registers hold which constants along straight
//! code, through the fall-through of conditional jumps (which write nothing), forgetting
//! everything at a label another jump reaches, and deletes a move that would write the value
//! the register already holds.
//!
//! The kernel verifier tracks a register written by a constant move as that exact scalar, so
//! the state it sees after the deleted move is the one it already had.

use super::branches::MachInsn;
use super::peephole::{effects, jump_targets};
use frontend::insn::{Imm64, Insn, Operand, Reg};
use ir::semantics::{AluOp, Width};

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

/// Deletes constant moves whose register already holds the constant.
pub fn optimize(code: Vec<MachInsn>) -> Vec<MachInsn> {
    let joins = jump_targets(&code);
    let mut known: [Option<u64>; 11] = [None; 11];
    let mut out = Vec::with_capacity(code.len());
    for m in code {
        match &m {
            MachInsn::Label(l) if joins.contains(l) => known = [None; 11],
            MachInsn::Ja(_) | MachInsn::Insn(Insn::Exit) => {
                out.push(m);
                known = [None; 11];
                continue;
            }
            _ => {}
        }
        if let Some((dst, v)) = constant_written(&m) {
            let slot = &mut known[dst.0 as usize % 11];
            if *slot == Some(v) {
                continue;
            }
            *slot = Some(v);
            out.push(m);
            continue;
        }
        // A copy of a register with a known constant holds that constant.
        if let MachInsn::Insn(Insn::Alu {
            op: AluOp::Mov,
            width: Width::W64,
            dst,
            src: Operand::Reg(src),
        }) = m
        {
            let v = known[src.0 as usize % 11];
            if v.is_some() && known[dst.0 as usize % 11] == v {
                continue;
            }
            known[dst.0 as usize % 11] = v;
            out.push(m);
            continue;
        }
        let defs = effects(&m).defs;
        for (r, slot) in known.iter_mut().enumerate() {
            if defs & (1 << r) != 0 {
                *slot = None;
            }
        }
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir::semantics::JmpCond;

    fn mov_imm(width: Width, dst: u8, imm: i32) -> MachInsn {
        MachInsn::Insn(Insn::Alu {
            width,
            op: AluOp::Mov,
            dst: Reg(dst),
            src: Operand::Imm(imm),
        })
    }

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
    fn widths_and_joins_are_respected() {
        // mov32 -1 is 0xffff_ffff, not the mov64 -1 that follows it.
        let code = vec![
            mov_imm(Width::W32, 6, -1),
            mov_imm(Width::W64, 6, -1),
            MachInsn::Label(3),
            mov_imm(Width::W64, 6, -1),
            MachInsn::Ja(3),
        ];
        assert_eq!(optimize(code).len(), 5);
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
