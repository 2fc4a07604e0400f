//! Comparing the low 32 bits directly instead of zero-extending them first.
//!
//! A 32-bit value tested against a constant reaches the backend as a 32-bit move (the
//! zero-extension the IR's 32-bit operations imply) followed by a 64-bit conditional jump:
//! `w1 = w0; if r1 != 0 goto L`. BPF's 32-bit jumps compare the low halves themselves, so
//! when the extended register is not read afterwards the pair is one `if w0 != 0 goto L`.
//!
//! The rewrite is exact only where the two comparisons agree for every value: the upper half
//! of the extended register is zero, so a 64-bit comparison with a non-negative immediate
//! (which sign-extends to the same 64 bits) orders and equates exactly as the 32-bit one does
//! for `==`, `!=` and the unsigned conditions; `jset` tests bits, and the upper bits of the
//! extended register are zero whatever the immediate. Signed conditions and negative
//! immediates are left alone. The source of a 32-bit move is a scalar (the verifier refuses
//! one of a pointer), so the 32-bit jump is one the verifier accepts.

use super::branches::MachInsn;
use super::peephole::{bit, live_after};
use frontend::insn::{Insn, Operand};
use ir::semantics::{AluOp, JmpCond, Width};

/// True when `if zext32(x) cond imm` (64-bit) equals `if x cond imm` (32-bit) for every `x`.
fn narrows(cond: JmpCond, imm: i32) -> bool {
    match cond {
        JmpCond::Set => true,
        JmpCond::Eq | JmpCond::Ne | JmpCond::Gt | JmpCond::Ge | JmpCond::Lt | JmpCond::Le => {
            imm >= 0
        }
        JmpCond::Sgt | JmpCond::Sge | JmpCond::Slt | JmpCond::Sle => false,
    }
}

/// Rewrites every such pair; never changes what the code computes.
pub fn optimize(mut code: Vec<MachInsn>) -> Vec<MachInsn> {
    let live = live_after(&code);
    let mut delete = vec![false; code.len()];
    for k in 0..code.len().saturating_sub(1) {
        let MachInsn::Insn(Insn::Alu {
            width: Width::W32,
            op: AluOp::Mov,
            dst: extended,
            src: Operand::Reg(source),
        }) = code[k]
        else {
            continue;
        };
        let MachInsn::Jcc {
            width: Width::W64,
            cond,
            dst,
            src: Operand::Imm(imm),
            target,
        } = code[k + 1]
        else {
            continue;
        };
        if dst != extended || !narrows(cond, imm) || live[k + 1] & bit(extended) != 0 {
            continue;
        }
        code[k + 1] = MachInsn::Jcc {
            width: Width::W32,
            cond,
            dst: source,
            src: Operand::Imm(imm),
            target,
        };
        delete[k] = true;
    }
    code.into_iter()
        .zip(delete)
        .filter(|(_, d)| !d)
        .map(|(m, _)| m)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontend::insn::Reg;

    #[test]
    fn narrowed_conditions_agree_with_semantics() {
        let xs = [
            0u64,
            1,
            7,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_fffe,
            0xffff_ffff,
        ];
        let imms = [0i32, 1, 7, i32::MAX, -1, i32::MIN, -8];
        for cond in ir::instructions::ALL_CONDS {
            for &imm in &imms {
                if !narrows(cond, imm) {
                    continue;
                }
                for &x in &xs {
                    // The high half of the source is garbage the 32-bit move drops.
                    let source = x | 0xdead_beef_0000_0000;
                    let extended = ir::semantics::alu(AluOp::Mov, Width::W32, 0, source);
                    let wide =
                        ir::semantics::compare(cond, Width::W64, extended, imm as i64 as u64);
                    let narrow =
                        ir::semantics::compare(cond, Width::W32, source, imm as i64 as u64);
                    assert_eq!(wide, narrow, "{cond:?} {x:#x} {imm}");
                }
            }
        }
    }

    #[test]
    fn the_pair_becomes_one_jump_only_when_the_extension_dies() {
        let mov32 = MachInsn::Insn(Insn::Alu {
            width: Width::W32,
            op: AluOp::Mov,
            dst: Reg(1),
            src: Operand::Reg(Reg(0)),
        });
        let jne = MachInsn::Jcc {
            width: Width::W64,
            cond: JmpCond::Ne,
            dst: Reg(1),
            src: Operand::Imm(0),
            target: 5,
        };
        let ret = |r: u8| {
            vec![
                MachInsn::Insn(Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Mov,
                    dst: Reg::R0,
                    src: Operand::Reg(Reg(r)),
                }),
                MachInsn::Insn(Insn::Exit),
            ]
        };
        let mut code = vec![mov32.clone(), jne.clone()];
        code.extend(ret(6));
        code.push(MachInsn::Label(5));
        code.extend(ret(6));
        let out = optimize(code.clone());
        assert_eq!(out.len(), code.len() - 1);
        assert!(matches!(
            out[0],
            MachInsn::Jcc {
                width: Width::W32,
                dst: Reg(0),
                ..
            }
        ));
        // r1 is returned on the taken path: the extension stays.
        let mut code = vec![mov32, jne];
        code.extend(ret(6));
        code.push(MachInsn::Label(5));
        code.extend(ret(1));
        assert_eq!(optimize(code.clone()).len(), code.len());
    }
}
