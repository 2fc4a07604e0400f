//! Helpers the unit tests of the machine-code clean-ups share: short constructors for the
//! instructions they are written with, and a small interpreter of unresolved code, so a test
//! can check that a clean-up left what the code computes unchanged instead of only counting
//! instructions.
//!
//! The interpreter runs moves, ALU operations, byte swaps, jumps, loads and stores relative to
//! `r10` (a 512-byte stack) and `exit`; it computes through `ir::semantics`, as every engine
//! of the project does. Anything else ends the run with an error naming the instruction.

use super::branches::{Label, MachInsn};
use frontend::insn::{Insn, Operand, Reg, Size};
use ir::semantics::{AluOp, JmpCond, Width};
use std::collections::HashMap;

/// `dst = imm` at the given width.
pub fn mov_imm(width: Width, dst: u8, imm: i32) -> MachInsn {
    alu(width, AluOp::Mov, dst, Operand::Imm(imm))
}

/// `dst = src`, 64-bit.
pub fn mov(dst: u8, src: u8) -> MachInsn {
    alu(Width::W64, AluOp::Mov, dst, Operand::Reg(Reg(src)))
}

/// `dst op= src` at the given width.
pub fn alu(width: Width, op: AluOp, dst: u8, src: Operand) -> MachInsn {
    MachInsn::Insn(Insn::Alu {
        width,
        op,
        dst: Reg(dst),
        src,
    })
}

/// `if dst cond imm goto target`, 64-bit.
pub fn jcc(cond: JmpCond, dst: u8, imm: i32, target: Label) -> MachInsn {
    MachInsn::Jcc {
        width: Width::W64,
        cond,
        dst: Reg(dst),
        src: Operand::Imm(imm),
        target,
    }
}

/// `*(size *)(r10 + off) = imm`.
pub fn store_imm(size: Size, off: i16, imm: i32) -> MachInsn {
    MachInsn::Insn(Insn::StoreImm {
        size,
        dst: Reg::FP,
        off,
        imm,
    })
}

/// `*(size *)(r10 + off) = src`.
pub fn store_reg(size: Size, off: i16, src: u8) -> MachInsn {
    MachInsn::Insn(Insn::StoreReg {
        size,
        dst: Reg::FP,
        src: Reg(src),
        off,
    })
}

/// `dst = *(size *)(r10 + off)`.
pub fn load(size: Size, dst: u8, off: i16) -> MachInsn {
    MachInsn::Insn(Insn::Load {
        size,
        signed: false,
        dst: Reg(dst),
        src: Reg::FP,
        off,
    })
}

pub fn exit() -> MachInsn {
    MachInsn::Insn(Insn::Exit)
}

/// `r0 = reg; exit`.
pub fn exit_with(reg: u8) -> Vec<MachInsn> {
    vec![mov(0, reg), exit()]
}

/// Instructions, not counting labels (an `lddw` counts once).
pub fn insn_count(code: &[MachInsn]) -> usize {
    code.iter()
        .filter(|m| !matches!(m, MachInsn::Label(_)))
        .count()
}

/// The machine state at `exit`: registers `r0`-`r9` and the stack's bytes (the byte at
/// `r10 - 512` first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Final {
    pub regs: [u64; 10],
    pub stack: Vec<u8>,
}

const STACK: usize = 512;

/// Runs `code` from its first instruction with `r1`-`r5` set from `args` and every other
/// register and stack byte zero, for at most 10,000 instructions.
pub fn run(code: &[MachInsn], args: [u64; 5]) -> Result<Final, String> {
    let labels: HashMap<Label, usize> = code
        .iter()
        .enumerate()
        .filter_map(|(k, m)| match m {
            MachInsn::Label(l) => Some((*l, k)),
            _ => None,
        })
        .collect();
    let at = |l: &Label| labels.get(l).copied().ok_or(format!("no label {l}"));
    let mut regs = [0u64; 11];
    regs[1..6].copy_from_slice(&args);
    regs[10] = STACK as u64;
    let mut stack = vec![0u8; STACK];
    let operand = |regs: &[u64; 11], src: &Operand| match src {
        Operand::Reg(r) => regs[r.0 as usize],
        Operand::Imm(i) => *i as i64 as u64,
    };
    let address = |regs: &[u64; 11], base: &Reg, off: i16, size: Size| {
        if *base != Reg::FP {
            return Err(format!(
                "only r10-relative memory is simulated, not {base:?}"
            ));
        }
        let bytes = size.bytes();
        let a = regs[10] as i64 + i64::from(off);
        if a < 0 || a as usize + bytes > STACK {
            return Err(format!("stack access out of range at r10{off:+}"));
        }
        Ok(a as usize..a as usize + bytes)
    };
    let mut pc = 0;
    for _ in 0..10_000 {
        let Some(m) = code.get(pc) else {
            return Err("ran past the end".to_string());
        };
        pc += 1;
        match m {
            MachInsn::Label(_) => {}
            MachInsn::Ja(l) => pc = at(l)?,
            MachInsn::Jcc {
                width,
                cond,
                dst,
                src,
                target,
            } => {
                let b = operand(&regs, src);
                if ir::semantics::compare(*cond, *width, regs[dst.0 as usize], b) {
                    pc = at(target)?;
                }
            }
            MachInsn::Insn(Insn::Alu {
                width,
                op,
                dst,
                src,
            }) => {
                let b = operand(&regs, src);
                regs[dst.0 as usize] = ir::semantics::alu(*op, *width, regs[dst.0 as usize], b);
            }
            MachInsn::Insn(Insn::Endian { order, bits, dst }) => {
                regs[dst.0 as usize] =
                    ir::semantics::byte_order(*order, *bits, regs[dst.0 as usize]);
            }
            MachInsn::Insn(Insn::StoreImm {
                size,
                dst,
                off,
                imm,
            }) => {
                let range = address(&regs, dst, *off, *size)?;
                let bytes = (*imm as i64).to_le_bytes();
                let n = range.len();
                stack[range].copy_from_slice(&bytes[..n]);
            }
            MachInsn::Insn(Insn::StoreReg {
                size,
                dst,
                src,
                off,
            }) => {
                let range = address(&regs, dst, *off, *size)?;
                let bytes = regs[src.0 as usize].to_le_bytes();
                let n = range.len();
                stack[range].copy_from_slice(&bytes[..n]);
            }
            MachInsn::Insn(Insn::Load {
                size,
                signed: false,
                dst,
                src,
                off,
            }) => {
                let range = address(&regs, src, *off, *size)?;
                let mut bytes = [0u8; 8];
                let n = range.len();
                bytes[..n].copy_from_slice(&stack[range]);
                regs[dst.0 as usize] = u64::from_le_bytes(bytes);
            }
            MachInsn::Insn(Insn::Exit) => {
                let mut out = [0u64; 10];
                out.copy_from_slice(&regs[..10]);
                return Ok(Final { regs: out, stack });
            }
            other => return Err(format!("not simulated: {other:?}")),
        }
    }
    Err("no exit within 10,000 instructions".to_string())
}
