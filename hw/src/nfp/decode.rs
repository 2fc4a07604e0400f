//! 64-bit word to instruction, the exact inverse of [`super::encode`]: the ECC bits are
//! checked, the class is found from the base bits of `nfp_asm.h`, the fields are read back,
//! and the result is encoded again and compared with the word, so that a word decodes only
//! if it is the one canonical encoding of its instruction (stray bits are errors, not
//! ignored).

use super::encode::{ecc_of, encode_bits, f, INSN_BITS, INSN_MASK};
use super::insn::*;
use super::regs::*;
use std::fmt;

/// Why a word is not an instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub word: u64,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "word {:#018x}: {}", self.word, self.message)
    }
}

impl std::error::Error for DecodeError {}

fn bit(w: u64, n: u32) -> bool {
    (w >> n) & 1 == 1
}

/// An unrestricted source field of bank `bank`.
fn ur_src(v: u64, bank: Bank, lmextn: bool) -> Option<Operand> {
    let v = v as u16;
    Some(match v {
        0x000..=0x07f => Operand::Gpr(bank, v as u8),
        0x180..=0x1ff => Operand::Xfer((v & 0x7f) as u8),
        0x200..=0x27f => {
            if v & 0x050 != 0 {
                return None;
            }
            Operand::Lm {
                index: u8::from(v & f::UR_LM_IDX != 0) | (u8::from(lmextn) << 1),
                offset: (v & 0xf) as u8,
            }
        }
        0x280..=0x2ff => Operand::Nn((v & 0x7f) as u8),
        0x300..=0x3ff => Operand::Imm((v & 0xff) as u8),
        _ => return None,
    })
}

fn ur_dst(v: u64, dst_ab: bool, wr_ab: bool, lmextn: bool) -> Option<Dest> {
    let v = v as u16;
    Some(match v {
        0x000..=0x07f if wr_ab => Dest::Both(v as u8),
        0x000..=0x07f => Dest::Gpr(if dst_ab { Bank::B } else { Bank::A }, v as u8),
        f::UR_NO_DST => Dest::None,
        _ => match ur_src(v as u64, Bank::A, lmextn)? {
            Operand::Xfer(n) => Dest::Xfer(n),
            Operand::Nn(n) => Dest::Nn(n),
            Operand::Lm { index, offset } => Dest::Lm { index, offset },
            _ => return None,
        },
    })
}

/// A restricted source field of bank `bank`.
fn re_src(v: u64, bank: Bank, lmextn: bool, i8: bool) -> Option<Operand> {
    let v = v as u8;
    Some(if v & 0x20 != 0 {
        let x = (v & 0x1f) | ((v >> 1) & 0x60);
        Operand::Imm(x | if i8 { 0x80 } else { 0 })
    } else if v < 0x20 {
        Operand::Gpr(bank, v)
    } else if v & 0xf0 == f::RE_LM {
        Operand::Lm {
            index: u8::from(v & f::RE_LM_IDX != 0) | (u8::from(lmextn) << 1),
            offset: v & 7,
        }
    } else if v & 0xe0 == f::RE_XFR {
        Operand::Xfer(v & 0x1f)
    } else {
        return None;
    })
}

fn re_dst(v: u64, dst_ab: bool, wr_ab: bool, lmextn: bool) -> Option<Dest> {
    if v as u8 == f::RE_NO_DST {
        return Some(Dest::None);
    }
    Some(match re_src(v, Bank::A, lmextn, false)? {
        Operand::Gpr(_, n) if wr_ab => Dest::Both(n),
        Operand::Gpr(_, n) => Dest::Gpr(if dst_ab { Bank::B } else { Bank::A }, n),
        Operand::Xfer(n) => Dest::Xfer(n),
        Operand::Lm { index, offset } => Dest::Lm { index, offset },
        _ => return None,
    })
}

fn unswap(a: Operand, b: Operand, sw: bool) -> (Operand, Operand) {
    if sw {
        (b, a)
    } else {
        (a, b)
    }
}

/// Splits an (A field, B field) pair of which one is an immediate into (register, imm).
fn imm_pair(a: Operand, b: Operand) -> Option<(Operand, u8)> {
    match (a, b) {
        (src, Operand::Imm(v)) if !matches!(src, Operand::Imm(_)) => Some((src, v)),
        (Operand::Imm(v), src) if !matches!(src, Operand::Imm(_)) => Some((src, v)),
        _ => None,
    }
}

fn branch_target(w: u64) -> (u16, u8) {
    let t = f::get(f::BR_ADDR_LO, w) | (f::get(f::BR_ADDR_HI, w) << 13);
    (t as u16, f::get(f::BR_DEFBR, w) as u8)
}

fn decode_bits(w: u64) -> Option<Insn> {
    let src_lx = w & f::SRC_LMEXTN != 0;
    let dst_lx = w & f::DST_LMEXTN != 0;
    let wr_ab = w & f::WR_AB != 0;
    if !bit(w, 39) {
        let a = re_src(f::get(f::RE_A_SRC, w), Bank::A, false, false)?;
        let b = re_src(f::get(f::RE_B_SRC, w), Bank::B, false, false)?;
        let tgt = f::get(f::CMD_TGT_CMD, w);
        let action = MemAction::from_code(tgt & 0xf)?;
        // A helper call has no address: its A field is unused.
        let a = if action == MemAction::Helper {
            Operand::None
        } else {
            a
        };
        return Some(Insn::Cmd {
            level: MemLevel::from_code(tgt >> 4)?,
            action,
            xfer: f::get(f::CMD_XFER, w) as u8,
            count: f::get(f::CMD_CNT, w) as u8,
            a,
            b,
            sig: f::get(f::CMD_SIG, w) as u8,
            swap: CtxSwap::from_code(f::get(f::CMD_CTX, w)),
            mode: AddrMode::from_code(f::get(f::CMD_MODE, w))?,
            token: f::get(f::CMD_TOKEN, w) as u8,
        });
    }
    let class = (bit(w, 38), bit(w, 37), bit(w, 36), bit(w, 35));
    Some(match class {
        (false, false, _, _) => {
            let i8 = w & f::RE_I8 != 0;
            let fa = re_src(f::get(f::RE_A_SRC, w), Bank::A, src_lx, i8)?;
            let fb = re_src(f::get(f::RE_B_SRC, w), Bank::B, src_lx, i8)?;
            let sw = w & f::SHF_SW != 0;
            let (mut a, mut b) = unswap(fa, fb, sw);
            let op = ShfOp::from_code(f::get(f::SHF_OP, w))?;
            let sc = ShiftClass::from_code(f::get(f::SHF_SC, w));
            if matches!(op, ShfOp::None | ShfOp::Ashr) && sc != ShiftClass::DoubleRight {
                // Only the shifted operand is read; the other field holds 0.
                b = if sw { fa } else { fb };
                a = Operand::None;
            }
            Insn::Shf {
                dst: re_dst(f::get(f::SHF_DST, w), w & f::SHF_DST_AB != 0, wr_ab, dst_lx)?,
                a,
                op,
                b,
                sc,
                shift: f::get(f::SHF_SHIFT, w) as u8,
            }
        }
        (false, true, _, _) => {
            let op = AluOp::from_code(f::get(f::ALU_OP, w))?;
            let fa = ur_src(f::get(f::UR_A_SRC, w), Bank::A, src_lx)?;
            let fb = ur_src(f::get(f::UR_B_SRC, w), Bank::B, src_lx)?;
            let (mut a, mut b) = unswap(fa, fb, w & f::ALU_SW != 0);
            if op.unary() {
                // The unused operand is encoded as 0; the used one sits where its bank puts it.
                if w & f::ALU_SW != 0 {
                    b = fa;
                }
                a = Operand::None;
            }
            Insn::Alu {
                dst: ur_dst(f::get(f::ALU_DST, w), w & f::ALU_DST_AB != 0, wr_ab, dst_lx)?,
                a,
                op,
                b,
            }
        }
        (true, false, false, false) => {
            let i8 = w & f::RE_I8 != 0;
            let fa = re_src(f::get(f::RE_A_SRC, w), Bank::A, src_lx, i8)?;
            let fb = re_src(f::get(f::RE_B_SRC, w), Bank::B, src_lx, i8)?;
            let (dst, src) = unswap(fa, fb, w & f::LDF_SW != 0);
            let dst = match dst {
                Operand::Gpr(_, n) if wr_ab => Dest::Both(n),
                Operand::Gpr(bank, n) => Dest::Gpr(bank, n),
                _ => return None,
            };
            Insn::LdField {
                dst,
                bmask: f::get(f::LDF_BMASK, w) as u8,
                src,
                sc: ShiftClass::from_code(f::get(f::LDF_SC, w)),
                shift: f::get(f::LDF_SHF, w) as u8,
                zero: w & f::LDF_ZF != 0,
            }
        }
        (true, false, false, true) => {
            let i8 = w & f::RE_I8 != 0;
            let fa = re_src(f::get(f::RE_A_SRC, w), Bank::A, src_lx, i8)?;
            let fb = re_src(f::get(f::RE_B_SRC, w), Bank::B, src_lx, i8)?;
            let (src, value) = imm_pair(fa, fb)?;
            let (target, defer) = branch_target(w);
            Insn::BrByte {
                src,
                byte: f::get(f::BB_BYTE, w) as u8,
                value,
                eq: w & f::BB_EQ != 0,
                target,
                defer,
            }
        }
        (true, false, true, false) => {
            let fa = re_src(f::get(f::RE_A_SRC, w), Bank::A, src_lx, false)?;
            let fb = re_src(f::get(f::RE_B_SRC, w), Bank::B, src_lx, false)?;
            let (src, bitno) = imm_pair(fa, fb)?;
            let (target, defer) = branch_target(w);
            Insn::BrBit {
                src,
                bit: bitno,
                set: w & f::BR_BIT_BV != 0,
                target,
                defer,
            }
        }
        (true, false, true, true) => {
            let (target, defer) = branch_target(w);
            Insn::Br {
                cond: BrCond::from_code(f::get(f::BR_MASK, w))?,
                target,
                defer,
            }
        }
        (true, true, false, false) => Insn::CtxArb,
        (true, true, false, true) => {
            let fa = ur_src(f::get(f::UR_A_SRC, w), Bank::A, false)?;
            let fb = ur_src(f::get(f::UR_B_SRC, w), Bank::B, false)?;
            let src = match (fa, fb) {
                (Operand::Gpr(..), Operand::Imm(0)) => fa,
                (Operand::Imm(0), Operand::Gpr(..)) => fb,
                _ => return None,
            };
            Insn::Rtn {
                src,
                defer: f::get(f::BR_DEFBR, w) as u8,
            }
        }
        (true, true, true, false) => {
            let fa = f::get(f::UR_A_SRC, w);
            let fb = f::get(f::UR_B_SRC, w);
            let is_imm = |v: u64| (0x300..=0x3ff).contains(&v);
            let (dst_field, lo, dab) = if is_imm(fb) {
                (fa, fb, false)
            } else {
                (fb, fa, true)
            };
            let dst = ur_dst(dst_field, dab, wr_ab, dst_lx)?;
            Insn::Immed {
                dst,
                imm: (lo as u16 & 0xff) | ((f::get(f::IMMED_IMM, w) as u16) << 8),
                shift: f::get(f::IMMED_SHIFT, w) as u8,
                width: ImmedWidth::from_code(f::get(f::IMMED_WIDTH, w))?,
                inv: w & f::IMMED_INV != 0,
            }
        }
        (true, true, true, true) => {
            if bit(w, 34) {
                let fa = f::get(f::UR_A_SRC, w);
                let fb = f::get(f::UR_B_SRC, w);
                let src = if fb == 0x300 {
                    ur_src(fa, Bank::A, false)?
                } else {
                    ur_src(fb, Bank::B, false)?
                };
                Insn::LocalCsrWr {
                    csr: (f::get(f::LCSR_ADDR, w) * 4) as u16,
                    src,
                }
            } else {
                let ty = f::get(f::MUL_TYPE, w);
                let step = f::get(f::MUL_STEP, w);
                let fa = f::get(f::UR_A_SRC, w);
                let fb = f::get(f::UR_B_SRC, w);
                match (ty, step) {
                    (0, _) => {
                        let (a, b) = unswap(
                            ur_src(fa, Bank::A, false)?,
                            ur_src(fb, Bank::B, false)?,
                            w & f::MUL_SW != 0,
                        );
                        Insn::Mul {
                            step: MulStep::Start,
                            dst: Dest::None,
                            a,
                            b,
                        }
                    }
                    (3, 0..=3) => Insn::Mul {
                        step: MulStep::Step(step as u8 + 1),
                        dst: Dest::None,
                        a: Operand::None,
                        b: Operand::None,
                    },
                    (3, 4 | 5) => {
                        let dab = w & f::MUL_DST_AB != 0;
                        let dst = ur_dst(if dab { fb } else { fa }, dab, wr_ab, false)?;
                        Insn::Mul {
                            step: if step == 4 {
                                MulStep::Last
                            } else {
                                MulStep::Last2
                            },
                            dst,
                            a: Operand::None,
                            b: Operand::None,
                        }
                    }
                    _ => return None,
                }
            }
        }
    })
}

/// Decodes one code-store word.
pub fn decode(word: u64) -> Result<Insn, DecodeError> {
    let err = |m: &str| DecodeError {
        word,
        message: m.to_string(),
    };
    if word >> (INSN_BITS + 7) != 0 {
        return Err(err("bits above the ECC field are set"));
    }
    let bits = word & INSN_MASK;
    if ecc_of(bits) != word >> INSN_BITS {
        return Err(err("ECC mismatch: the word is corrupt"));
    }
    let insn = decode_bits(bits).ok_or_else(|| err("not an instruction of the model"))?;
    match encode_bits(&insn) {
        Ok(again) if again == bits => Ok(insn),
        _ => Err(err(
            "fields outside the instruction's canonical encoding are set",
        )),
    }
}
