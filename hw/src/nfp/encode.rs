//! Instruction to 64-bit word: 45 instruction bits laid out as the Linux driver's
//! `nfp_asm.h` lays them out (class bases, field masks, the unrestricted 10-bit and restricted
//! 8-bit operand encodings, the A/B swap bit), and 7 ECC bits above them computed with the
//! driver's seven parity polynomials (`nfp_ustore_calc_ecc_insn` in `nfp_asm.c`).
//!
//! Where the driver's header has no field for something nicc needs, the model adds it inside
//! an existing field and says so: the memory command's 7-bit target/action field carries a
//! [`MemLevel`] and [`MemAction`] pair of nicc's own numbering, its count field the log2 of
//! the access size, and the value 0 of a shift amount means "indirect" ([`INDIRECT_SHIFT`]).
//!
//! Operand placement follows `swreg_to_unrestricted` / `swreg_to_restricted`: the left
//! operand goes to the A field and the right one to the B field, unless the left one is a
//! B-bank register or the right one an A-bank register, in which case they are swapped and
//! the swap bit is set. Two registers of the same bank cannot be placed: that is the bank
//! restriction, reported as [`EncodeError::SameBank`].

use super::insn::*;
use super::regs::*;
use std::fmt;

/// Number of instruction bits below the ECC bits.
pub const INSN_BITS: u32 = 45;
/// Mask of the instruction bits.
pub const INSN_MASK: u64 = (1 << INSN_BITS) - 1;

/// ECC parity polynomials of the microcode store, from `nfp_asm.c` (Linux, Netronome).
pub const ECC_POLYNOMIALS: [u64; 7] = [
    0x0ff8_0000_7fff,
    0x11f8_01ff_801f,
    0x1e38_7e07_81e1,
    0x17cb_8e38_8e22,
    0x1af5_b2c9_3244,
    0x1f56_d552_5488,
    0x0daf_69a4_6910,
];

/// The 7 ECC bits of a 45-bit instruction.
pub fn ecc_of(insn_bits: u64) -> u64 {
    let mut ecc = 0;
    for (i, p) in ECC_POLYNOMIALS.iter().enumerate() {
        ecc |= (((p & insn_bits).count_ones() & 1) as u64) << i;
    }
    ecc
}

// Field masks, named as in `nfp_asm.h`.
pub(crate) mod f {
    pub const BR_BASE: u64 = 0x0d8_0000_0020;
    pub const BR_MASK: u64 = 0x000_0000_001f;
    pub const BR_EV_PIP: u64 = 0x000_0000_0300;
    pub const BR_CSS: u64 = 0x000_0003_c000;
    pub const BR_DEFBR: u64 = 0x000_0030_0000;
    pub const BR_ADDR_LO: u64 = 0x007_ffc0_0000;
    pub const BR_ADDR_HI: u64 = 0x100_0000_0000;
    pub const BR_BIT_BASE: u64 = 0x0d0_0000_0000;
    pub const BR_BIT_BV: u64 = 0x000_0004_0000;
    pub const BBYTE_BASE: u64 = 0x0c8_0000_0000;
    pub const BB_BYTE: u64 = 0x000_0000_0300;
    pub const BB_EQ: u64 = 0x000_0008_0000;
    pub const RE_A_SRC: u64 = 0x000_0000_00ff;
    pub const RE_B_SRC: u64 = 0x000_0003_fc00;
    pub const RE_I8: u64 = 0x000_0004_0000;
    pub const UR_A_SRC: u64 = 0x000_0000_03ff;
    pub const UR_B_SRC: u64 = 0x000_000f_fc00;
    pub const IMMED_IMM: u64 = 0x000_0ff0_0000;
    pub const IMMED_WIDTH: u64 = 0x000_6000_0000;
    pub const IMMED_INV: u64 = 0x000_8000_0000;
    pub const IMMED_SHIFT: u64 = 0x006_0000_0000;
    pub const IMMED_BASE: u64 = 0x0f0_0000_0000;
    pub const SHF_BASE: u64 = 0x080_0000_0000;
    pub const SHF_SC: u64 = 0x000_0000_0300;
    pub const SHF_SW: u64 = 0x000_0008_0000;
    pub const SHF_DST: u64 = 0x000_0ff0_0000;
    pub const SHF_SHIFT: u64 = 0x001_f000_0000;
    pub const SHF_OP: u64 = 0x00e_0000_0000;
    pub const SHF_DST_AB: u64 = 0x010_0000_0000;
    pub const ALU_DST: u64 = 0x000_3ff0_0000;
    pub const ALU_SW: u64 = 0x000_4000_0000;
    pub const ALU_OP: u64 = 0x00f_8000_0000;
    pub const ALU_DST_AB: u64 = 0x010_0000_0000;
    pub const ALU_BASE: u64 = 0x0a0_0000_0000;
    pub const WR_AB: u64 = 0x200_0000_0000;
    pub const SRC_LMEXTN: u64 = 0x400_0000_0000;
    pub const DST_LMEXTN: u64 = 0x800_0000_0000;
    pub const LDF_BASE: u64 = 0x0c0_0000_0000;
    pub const LDF_SC: u64 = 0x000_0000_0300;
    pub const LDF_SW: u64 = 0x000_0008_0000;
    pub const LDF_ZF: u64 = 0x000_0010_0000;
    pub const LDF_BMASK: u64 = 0x000_0f00_0000;
    pub const LDF_SHF: u64 = 0x001_f000_0000;
    pub const CMD_CTX: u64 = 0x000_0000_0300;
    pub const CMD_TOKEN: u64 = 0x000_000c_0000;
    pub const CMD_XFER: u64 = 0x000_01f0_0000;
    pub const CMD_CNT: u64 = 0x000_0e00_0000;
    pub const CMD_SIG: u64 = 0x000_f000_0000;
    pub const CMD_TGT_CMD: u64 = 0x07f_0000_0000;
    pub const CMD_MODE: u64 = 0x1c00_0000_0000;
    pub const LCSR_BASE: u64 = 0x0fc_0000_0000;
    pub const LCSR_WRITE: u64 = 0x000_0020_0000;
    pub const LCSR_ADDR: u64 = 0x001_ffc0_0000;
    pub const CARB_BASE: u64 = 0x0e0_0000_0000;
    pub const BR_ALU_BASE: u64 = 0x0e8_0000_0000;
    pub const MUL_BASE: u64 = 0x0f8_0000_0000;
    pub const MUL_STEP: u64 = 0x000_0070_0000;
    pub const MUL_DST_AB: u64 = 0x000_0080_0000;
    pub const MUL_SW: u64 = 0x000_4000_0000;
    pub const MUL_TYPE: u64 = 0x001_8000_0000;

    pub const UR_XFR: u16 = 0x180;
    pub const UR_LM: u16 = 0x200;
    pub const UR_LM_IDX: u16 = 0x020;
    pub const UR_NN: u16 = 0x280;
    pub const UR_NO_DST: u16 = 0x300;
    pub const UR_IMM: u16 = 0x300;
    pub const RE_NO_DST: u8 = 0x20;
    pub const RE_LM: u8 = 0x50;
    pub const RE_LM_IDX: u8 = 0x08;
    pub const RE_XFR: u8 = 0x80;

    /// Places `v` in the field `mask`.
    pub fn put(mask: u64, v: u64) -> u64 {
        (v << mask.trailing_zeros()) & mask
    }
    /// Reads the field `mask`.
    pub fn get(mask: u64, w: u64) -> u64 {
        (w & mask) >> mask.trailing_zeros()
    }
}

/// Why an instruction cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// Two general-purpose registers of the same bank in one instruction.
    SameBank(String),
    /// An operand kind the field cannot hold (a next-neighbour register in a restricted
    /// field, two immediates, an immediate too large...).
    Operand(String),
    /// A value out of its field's range.
    Range(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::SameBank(m) => write!(f, "bank restriction: {m}"),
            EncodeError::Operand(m) => write!(f, "operand: {m}"),
            EncodeError::Range(m) => write!(f, "out of range: {m}"),
        }
    }
}

impl std::error::Error for EncodeError {}

fn range(what: &str, v: u64, max: u64) -> Result<u64, EncodeError> {
    if v > max {
        Err(EncodeError::Range(format!("{what} is {v}, at most {max}")))
    } else {
        Ok(v)
    }
}

/// Whether an operand may sit in the field of `bank`.
fn fits(op: Operand, bank: Bank) -> bool {
    match op {
        Operand::Gpr(b, _) => b == bank,
        _ => true,
    }
}

/// Places (left, right) into (A field, B field, swapped).
pub(crate) fn place(
    left: Operand,
    right: Operand,
) -> Result<(Operand, Operand, bool), EncodeError> {
    let kind = |o: Operand| std::mem::discriminant(&o);
    let other_kind = |o: Operand| !matches!(o, Operand::Gpr(..) | Operand::None);
    if other_kind(left) && other_kind(right) && kind(left) == kind(right) {
        return Err(EncodeError::Operand(format!(
            "{left} and {right} both need the same register file port"
        )));
    }
    let must_swap = left.bank() == Some(Bank::B) || right.bank() == Some(Bank::A);
    let (a, b, sw) = if must_swap {
        (right, left, true)
    } else {
        (left, right, false)
    };
    if fits(a, Bank::A) && fits(b, Bank::B) {
        Ok((a, b, sw))
    } else {
        Err(EncodeError::SameBank(format!(
            "{left} and {right} are in the same bank; copy one to the other bank first"
        )))
    }
}

/// The unrestricted 10-bit encoding of a source operand and its LM extension bit.
fn ur_src(op: Operand) -> Result<(u64, bool), EncodeError> {
    Ok(match op {
        Operand::Gpr(_, n) => (
            range("register", n as u64, GPRS_PER_BANK as u64 - 1)?,
            false,
        ),
        Operand::Xfer(n) => (
            f::UR_XFR as u64 | range("transfer register", n as u64, XFER_REGS as u64 - 1)?,
            false,
        ),
        Operand::Nn(n) => (
            f::UR_NN as u64 | range("next-neighbour register", n as u64, NN_REGS as u64 - 1)?,
            false,
        ),
        Operand::Lm { index, offset } => {
            range("LM index", index as u64, LM_INDEXES as u64 - 1)?;
            let off = range("LM offset", offset as u64, LM_UR_OFFSET_MAX as u64)?;
            (
                f::UR_LM as u64
                    | if index & 1 == 1 {
                        f::UR_LM_IDX as u64
                    } else {
                        0
                    }
                    | off,
                index >= 2,
            )
        }
        Operand::Imm(v) => (f::UR_IMM as u64 | v as u64, false),
        Operand::None => (0, false),
    })
}

fn ur_dst(d: Dest) -> Result<(u64, bool, bool, bool), EncodeError> {
    // (field, dst_ab, wr_ab, lmextn)
    Ok(match d {
        Dest::Gpr(bank, n) => (
            range("register", n as u64, GPRS_PER_BANK as u64 - 1)?,
            bank == Bank::B,
            false,
            false,
        ),
        Dest::Both(n) => (
            range("register", n as u64, GPRS_PER_BANK as u64 - 1)?,
            false,
            true,
            false,
        ),
        Dest::Xfer(n) => (
            f::UR_XFR as u64 | range("transfer register", n as u64, XFER_REGS as u64 - 1)?,
            false,
            false,
            false,
        ),
        Dest::Nn(n) => (
            f::UR_NN as u64 | range("next-neighbour register", n as u64, NN_REGS as u64 - 1)?,
            false,
            false,
            false,
        ),
        Dest::Lm { index, offset } => {
            range("LM index", index as u64, LM_INDEXES as u64 - 1)?;
            let off = range("LM offset", offset as u64, LM_UR_OFFSET_MAX as u64)?;
            (
                f::UR_LM as u64
                    | if index & 1 == 1 {
                        f::UR_LM_IDX as u64
                    } else {
                        0
                    }
                    | off,
                false,
                false,
                index >= 2,
            )
        }
        Dest::None => (f::UR_NO_DST as u64, false, false, false),
    })
}

/// `RE_REG_IMM_encode` of `nfp_asm.h` for 7 bits.
pub(crate) fn re_imm(x: u8) -> u8 {
    0x20 | (x & 0x1f) | ((x & 0x60) << 1)
}

/// The restricted 8-bit encoding of a source, its LM extension bit and its I8 bit.
fn re_src(op: Operand, has_i8: bool) -> Result<(u64, bool, bool), EncodeError> {
    Ok(match op {
        Operand::Gpr(_, n) => (
            range("register", n as u64, GPRS_PER_BANK as u64 - 1)?,
            false,
            false,
        ),
        Operand::Imm(v) => {
            if v >= 0x80 && !has_i8 {
                return Err(EncodeError::Range(format!(
                    "immediate {v:#x} needs 8 bits; this field holds 7"
                )));
            }
            (re_imm(v & 0x7f) as u64, false, v >= 0x80)
        }
        Operand::Xfer(n) => (
            f::RE_XFR as u64 | range("transfer register", n as u64, XFER_REGS as u64 - 1)?,
            false,
            false,
        ),
        Operand::Lm { index, offset } => {
            range("LM index", index as u64, LM_INDEXES as u64 - 1)?;
            let off = range("LM offset", offset as u64, LM_RE_OFFSET_MAX as u64)?;
            (
                (f::RE_LM | if index & 1 == 1 { f::RE_LM_IDX } else { 0 }) as u64 | off,
                index >= 2,
                false,
            )
        }
        Operand::Nn(_) => {
            return Err(EncodeError::Operand(
                "next-neighbour registers cannot be restricted operands".into(),
            ))
        }
        Operand::None => (0, false, false),
    })
}

fn re_dst(d: Dest) -> Result<(u64, bool, bool, bool), EncodeError> {
    Ok(match d {
        Dest::Gpr(bank, n) => (
            range("register", n as u64, GPRS_PER_BANK as u64 - 1)?,
            bank == Bank::B,
            false,
            false,
        ),
        Dest::Both(n) => (
            range("register", n as u64, GPRS_PER_BANK as u64 - 1)?,
            false,
            true,
            false,
        ),
        Dest::Xfer(n) => (
            f::RE_XFR as u64 | range("transfer register", n as u64, XFER_REGS as u64 - 1)?,
            false,
            false,
            false,
        ),
        Dest::Lm { index, offset } => {
            range("LM index", index as u64, LM_INDEXES as u64 - 1)?;
            let off = range("LM offset", offset as u64, LM_RE_OFFSET_MAX as u64)?;
            (
                (f::RE_LM | if index & 1 == 1 { f::RE_LM_IDX } else { 0 }) as u64 | off,
                false,
                false,
                index >= 2,
            )
        }
        Dest::Nn(_) => {
            return Err(EncodeError::Operand(
                "next-neighbour registers cannot be restricted destinations".into(),
            ))
        }
        Dest::None => (f::RE_NO_DST as u64, false, false, false),
    })
}

fn flag(mask: u64, on: bool) -> u64 {
    if on {
        mask
    } else {
        0
    }
}

fn branch_addr(target: u16, defer: u8) -> Result<u64, EncodeError> {
    let t = range("branch target", target as u64, 0x3fff)?;
    let d = range("defer slots", defer as u64, 3)?;
    Ok(f::put(f::BR_ADDR_LO, t & 0x1fff) | f::put(f::BR_ADDR_HI, t >> 13) | f::put(f::BR_DEFBR, d))
}

/// Places a restricted pair with no swap bit in the instruction: one of the two is an
/// immediate that identifies itself, so a swapped placement decodes unambiguously.
fn re_pair_unswapped(
    src: Operand,
    imm: u8,
    has_i8: bool,
) -> Result<(u64, u64, bool, bool), EncodeError> {
    if matches!(src, Operand::Imm(_) | Operand::None) {
        return Err(EncodeError::Operand(format!(
            "the tested operand must be a register, not {src}"
        )));
    }
    let (a, b, _) = place(src, Operand::Imm(imm))?;
    let (fa, la, ia) = re_src(a, has_i8)?;
    let (fb, lb, ib) = re_src(b, has_i8)?;
    Ok((fa, fb, la || lb, ia || ib))
}

/// Encodes the 45 instruction bits, without ECC.
pub fn encode_bits(insn: &Insn) -> Result<u64, EncodeError> {
    Ok(match *insn {
        Insn::Alu { dst, a, op, b } => {
            if op.unary() && a != Operand::None {
                return Err(EncodeError::Operand(format!(
                    "alu op {} takes no A operand",
                    op.name()
                )));
            }
            if !op.unary() && (a == Operand::None || b == Operand::None) {
                return Err(EncodeError::Operand(format!(
                    "alu op {} needs two operands",
                    op.name()
                )));
            }
            let (fa, fb, sw) = place(a, b)?;
            let (ea, la) = ur_src(fa)?;
            let (eb, lb) = ur_src(fb)?;
            let (ed, dab, wab, dl) = ur_dst(dst)?;
            f::ALU_BASE
                | f::put(f::UR_A_SRC, ea)
                | f::put(f::UR_B_SRC, eb)
                | f::put(f::ALU_DST, ed)
                | flag(f::ALU_SW, sw)
                | f::put(f::ALU_OP, op.code())
                | flag(f::ALU_DST_AB, dab)
                | flag(f::WR_AB, wab)
                | flag(f::SRC_LMEXTN, la || lb)
                | flag(f::DST_LMEXTN, dl)
        }
        Insn::Shf {
            dst,
            a,
            op,
            b,
            sc,
            shift,
        } => {
            range("shift", shift as u64, 31)?;
            if sc == ShiftClass::DoubleRight && op != ShfOp::None {
                return Err(EncodeError::Operand(
                    "a double shift cannot combine with an operation".into(),
                ));
            }
            let reads_a = !matches!(op, ShfOp::None | ShfOp::Ashr) || sc == ShiftClass::DoubleRight;
            if reads_a == (a == Operand::None) {
                return Err(EncodeError::Operand(format!(
                    "this shift {} an A operand",
                    if reads_a { "needs" } else { "takes no" }
                )));
            }
            let (fa, fb, sw) = place(a, b)?;
            let (ea, la, ia) = re_src(fa, true)?;
            let (eb, lb, ib) = re_src(fb, true)?;
            let (ed, dab, wab, dl) = re_dst(dst)?;
            f::SHF_BASE
                | f::put(f::RE_A_SRC, ea)
                | f::put(f::SHF_SC, sc.code())
                | f::put(f::RE_B_SRC, eb)
                | flag(f::RE_I8, ia || ib)
                | flag(f::SHF_SW, sw)
                | f::put(f::SHF_DST, ed)
                | f::put(f::SHF_SHIFT, shift as u64)
                | f::put(f::SHF_OP, op.code())
                | flag(f::SHF_DST_AB, dab)
                | flag(f::WR_AB, wab)
                | flag(f::SRC_LMEXTN, la || lb)
                | flag(f::DST_LMEXTN, dl)
        }
        Insn::LdField {
            dst,
            bmask,
            src,
            sc,
            shift,
            zero,
        } => {
            let (dst, both) = match dst {
                Dest::Gpr(bank, n) => (Operand::Gpr(bank, n), false),
                Dest::Both(n) => (Operand::Gpr(Bank::A, n), true),
                _ => {
                    return Err(EncodeError::Operand(format!(
                        "ld_field writes a general-purpose register, not {dst}"
                    )))
                }
            };
            range("byte mask", bmask as u64, 15)?;
            range("shift", shift as u64, 31)?;
            let (fa, fb, sw) = place(dst, src)?;
            let (ea, la, ia) = re_src(fa, true)?;
            let (eb, lb, ib) = re_src(fb, true)?;
            f::LDF_BASE
                | f::put(f::RE_A_SRC, ea)
                | f::put(f::LDF_SC, sc.code())
                | f::put(f::RE_B_SRC, eb)
                | flag(f::RE_I8, ia || ib)
                | flag(f::LDF_SW, sw)
                | flag(f::LDF_ZF, zero)
                | f::put(f::LDF_BMASK, bmask as u64)
                | f::put(f::LDF_SHF, shift as u64)
                | flag(f::WR_AB, both)
                | flag(f::SRC_LMEXTN, la || lb)
        }
        Insn::Immed {
            dst,
            imm,
            shift,
            width,
            inv,
        } => {
            range("immed shift", shift as u64, 2)?;
            let lo = Operand::Imm(imm as u8);
            let (ed, dab, wab, dl) = ur_dst(dst)?;
            let (ea, eb) = if dab {
                (ur_src(lo)?.0, ed)
            } else {
                (ed, ur_src(lo)?.0)
            };
            f::IMMED_BASE
                | f::put(f::UR_A_SRC, ea)
                | f::put(f::UR_B_SRC, eb)
                | f::put(f::IMMED_IMM, (imm >> 8) as u64)
                | f::put(f::IMMED_WIDTH, width.code())
                | flag(f::IMMED_INV, inv)
                | f::put(f::IMMED_SHIFT, shift as u64)
                | flag(f::WR_AB, wab)
                | flag(f::DST_LMEXTN, dl)
        }
        Insn::Br {
            cond,
            target,
            defer,
        } => {
            let ev = if cond == BrCond::Always { 0 } else { 1 };
            f::BR_BASE
                | f::put(f::BR_MASK, cond.code())
                | f::put(f::BR_EV_PIP, ev)
                | f::put(f::BR_CSS, 2)
                | branch_addr(target, defer)?
        }
        Insn::BrBit {
            src,
            bit,
            set,
            target,
            defer,
        } => {
            range("bit", bit as u64, 31)?;
            let (fa, fb, lm, _) = re_pair_unswapped(src, bit, false)?;
            f::BR_BIT_BASE
                | f::put(f::RE_A_SRC, fa)
                | f::put(f::RE_B_SRC, fb)
                | flag(f::BR_BIT_BV, set)
                | flag(f::SRC_LMEXTN, lm)
                | branch_addr(target, defer)?
        }
        Insn::BrByte {
            src,
            byte,
            value,
            eq,
            target,
            defer,
        } => {
            range("byte", byte as u64, 3)?;
            let (fa, fb, lm, i8) = re_pair_unswapped(src, value, true)?;
            f::BBYTE_BASE
                | f::put(f::RE_A_SRC, fa)
                | f::put(f::BB_BYTE, byte as u64)
                | f::put(f::RE_B_SRC, fb)
                | flag(f::RE_I8, i8)
                | flag(f::BB_EQ, eq)
                | flag(f::SRC_LMEXTN, lm)
                | branch_addr(target, defer)?
        }
        Insn::Cmd {
            level,
            action,
            xfer,
            count,
            a,
            b,
            sig,
            swap,
            mode,
            token,
        } => {
            if !fits(a, Bank::A) || !fits(b, Bank::B) {
                return Err(EncodeError::SameBank(format!(
                    "a command takes its first operand from the A bank and its second from the B bank ({a}, {b})"
                )));
            }
            if matches!(a, Operand::Lm { .. } | Operand::Nn(_))
                || matches!(b, Operand::Lm { .. } | Operand::Nn(_))
            {
                return Err(EncodeError::Operand(
                    "command address operands are registers or immediates".into(),
                ));
            }
            if (action == MemAction::Helper) != (a == Operand::None) {
                return Err(EncodeError::Operand(
                    "a helper call takes no address and a memory command needs one".into(),
                ));
            }
            if matches!(a, Operand::Imm(_)) && matches!(b, Operand::Imm(_)) {
                return Err(EncodeError::Operand("a command takes one immediate".into()));
            }
            let (ea, _, _) = re_src(a, false)?;
            let (eb, _, _) = re_src(b, false)?;
            f::put(f::RE_A_SRC, ea)
                | f::put(f::CMD_CTX, swap.code())
                | f::put(f::RE_B_SRC, eb)
                | f::put(f::CMD_TOKEN, range("token", token as u64, 3)?)
                | f::put(f::CMD_XFER, range("transfer register", xfer as u64, 31)?)
                | f::put(f::CMD_CNT, range("count", count as u64, 7)?)
                | f::put(f::CMD_SIG, range("signal", sig as u64, 15)?)
                | f::put(f::CMD_TGT_CMD, (level.code() << 4) | action.code())
                | f::put(f::CMD_MODE, mode.code())
        }
        Insn::LocalCsrWr { csr, src } => {
            if csr % 4 != 0 {
                return Err(EncodeError::Range(format!(
                    "CSR address {csr:#x} is not a multiple of 4"
                )));
            }
            let (ea, eb) = match src {
                Operand::Gpr(Bank::B, _) => (ur_src(Operand::Imm(0))?.0, ur_src(src)?.0),
                Operand::Lm { .. } | Operand::None => {
                    return Err(EncodeError::Operand(format!(
                        "local_csr_wr takes a register or an immediate, not {src}"
                    )))
                }
                _ => (ur_src(src)?.0, ur_src(Operand::Imm(0))?.0),
            };
            f::LCSR_BASE
                | f::put(f::UR_A_SRC, ea)
                | f::put(f::UR_B_SRC, eb)
                | f::LCSR_WRITE
                | f::put(f::LCSR_ADDR, range("CSR", csr as u64 / 4, 0x7ff)?)
        }
        Insn::CtxArb => f::CARB_BASE,
        Insn::Rtn { src, defer } => {
            if !matches!(src, Operand::Gpr(..)) {
                return Err(EncodeError::Operand(format!(
                    "rtn takes its address from a register, not {src}"
                )));
            }
            // As `emit_rtn` places it: the register in its bank's field, 0 in the other.
            let (a, b, _) = place(src, Operand::Imm(0))?;
            f::BR_ALU_BASE
                | f::put(f::UR_A_SRC, ur_src(a)?.0)
                | f::put(f::UR_B_SRC, ur_src(b)?.0)
                | f::put(f::BR_DEFBR, range("defer slots", defer as u64, 3)?)
        }
        Insn::Mul { step, dst, a, b } => match step {
            MulStep::Start => {
                if dst != Dest::None {
                    return Err(EncodeError::Operand("mul_step start writes nothing".into()));
                }
                let (fa, fb, sw) = place(a, b)?;
                f::MUL_BASE
                    | f::put(f::UR_A_SRC, ur_src(fa)?.0)
                    | f::put(f::UR_B_SRC, ur_src(fb)?.0)
                    | flag(f::MUL_SW, sw)
            }
            MulStep::Step(n) => {
                if !(1..=4).contains(&n) || a != Operand::None || b != Operand::None {
                    return Err(EncodeError::Operand(format!(
                        "mul_step step{n}: steps are 1 to 4 and take no operands"
                    )));
                }
                f::MUL_BASE | f::put(f::MUL_TYPE, 3) | f::put(f::MUL_STEP, n as u64 - 1)
            }
            MulStep::Last | MulStep::Last2 => {
                let code = if step == MulStep::Last { 4 } else { 5 };
                let (ea, eb, dab, wab) = match dst {
                    Dest::Gpr(Bank::A, n) => (ur_dst(Dest::Gpr(Bank::A, n))?.0, 0, false, false),
                    Dest::Gpr(Bank::B, n) => (0, ur_dst(Dest::Gpr(Bank::B, n))?.0, true, false),
                    Dest::Both(n) => (ur_dst(Dest::Both(n))?.0, 0, false, true),
                    _ => {
                        return Err(EncodeError::Operand(format!(
                            "mul_step last writes a general-purpose register, not {dst}"
                        )))
                    }
                };
                f::MUL_BASE
                    | f::put(f::UR_A_SRC, ea)
                    | f::put(f::UR_B_SRC, eb)
                    | f::put(f::MUL_STEP, code)
                    | flag(f::MUL_DST_AB, dab)
                    | f::put(f::MUL_TYPE, 3)
                    | flag(f::WR_AB, wab)
            }
        },
    })
}

/// Encodes an instruction into its 64-bit code-store word: 45 instruction bits and 7 ECC
/// bits.
pub fn encode(insn: &Insn) -> Result<u64, EncodeError> {
    let bits = encode_bits(insn)?;
    Ok(bits | (ecc_of(bits) << INSN_BITS))
}
