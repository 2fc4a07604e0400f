//! The single definition of BPF arithmetic, comparison and byte order.
//!
//! Every engine (the interpreter, constant folding, the rule soundness tests, the hardware
//! simulators) calls these functions instead of re-deriving the rules, so that a corner case
//! such as division by zero or a masked shift count is decided in exactly one place. The rules
//! follow RFC 9669 and the Linux kernel interpreter (`kernel/bpf/core.c`):
//!
//! - 32-bit operations work on the low 32 bits of their operands and zero-extend the result;
//! - unsigned and signed division by zero give 0, modulo by zero leaves the dividend;
//! - signed division of the minimum value by -1 wraps (gives the minimum), its modulo gives 0;
//! - shift counts are masked to the operand width (63 or 31);
//! - immediates are sign-extended from 32 bits before a 64-bit operation.

/// Operand width of an ALU operation, a comparison or a memory access group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Width {
    W32,
    W64,
}

impl Width {
    pub fn bits(self) -> u32 {
        match self {
            Width::W32 => 32,
            Width::W64 => 64,
        }
    }
}

/// A binary or unary ALU operation. `Neg` ignores its source; the `MovSx` forms read only
/// the low 8, 16 or 32 bits of their source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    SDiv,
    Mod,
    SMod,
    Or,
    And,
    Xor,
    Lsh,
    Rsh,
    Arsh,
    Neg,
    Mov,
    MovSx8,
    MovSx16,
    MovSx32,
}

/// A jump condition. Unsigned forms compare as unsigned integers, `S` forms as two's complement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JmpCond {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Sgt,
    Sge,
    Slt,
    Sle,
    /// True when `dst & src` is non-zero.
    Set,
}

/// Which byte-order conversion an `END` instruction performs on a little-endian machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ByteOrder {
    /// `le16/le32/le64`: a truncation (zero extension) on little-endian hosts.
    ToLe,
    /// `be16/be32/be64`: swap, then zero-extend.
    ToBe,
    /// `bswap16/32/64` (ALU64 class, ISA v4): an unconditional swap, then zero-extend.
    Swap,
}

/// Sign-extends the low `bits` bits of `value` to 64 bits.
pub fn sign_extend(value: u64, bits: u32) -> u64 {
    debug_assert!((1..=64).contains(&bits));
    let shift = 64 - bits;
    (((value << shift) as i64) >> shift) as u64
}

/// Keeps the low `bits` bits of `value`.
pub fn truncate(value: u64, bits: u32) -> u64 {
    if bits >= 64 {
        value
    } else {
        value & ((1u64 << bits) - 1)
    }
}

/// Evaluates `dst op src` at the given width and returns the new 64-bit register value.
pub fn alu(op: AluOp, width: Width, dst: u64, src: u64) -> u64 {
    match width {
        Width::W64 => alu64(op, dst, src),
        Width::W32 => alu32(op, dst as u32, src as u32) as u64,
    }
}

fn alu64(op: AluOp, dst: u64, src: u64) -> u64 {
    match op {
        AluOp::Add => dst.wrapping_add(src),
        AluOp::Sub => dst.wrapping_sub(src),
        AluOp::Mul => dst.wrapping_mul(src),
        AluOp::Div => dst.checked_div(src).unwrap_or(0),
        AluOp::SDiv => {
            if src == 0 {
                0
            } else {
                (dst as i64).wrapping_div(src as i64) as u64
            }
        }
        AluOp::Mod => {
            if src == 0 {
                dst
            } else {
                dst % src
            }
        }
        AluOp::SMod => {
            if src == 0 {
                dst
            } else {
                (dst as i64).wrapping_rem(src as i64) as u64
            }
        }
        AluOp::Or => dst | src,
        AluOp::And => dst & src,
        AluOp::Xor => dst ^ src,
        AluOp::Lsh => dst << (src & 63),
        AluOp::Rsh => dst >> (src & 63),
        AluOp::Arsh => ((dst as i64) >> (src & 63)) as u64,
        AluOp::Neg => (dst as i64).wrapping_neg() as u64,
        AluOp::Mov => src,
        AluOp::MovSx8 => sign_extend(src, 8),
        AluOp::MovSx16 => sign_extend(src, 16),
        AluOp::MovSx32 => sign_extend(src, 32),
    }
}

fn alu32(op: AluOp, dst: u32, src: u32) -> u32 {
    match op {
        AluOp::Add => dst.wrapping_add(src),
        AluOp::Sub => dst.wrapping_sub(src),
        AluOp::Mul => dst.wrapping_mul(src),
        AluOp::Div => dst.checked_div(src).unwrap_or(0),
        AluOp::SDiv => {
            if src == 0 {
                0
            } else {
                (dst as i32).wrapping_div(src as i32) as u32
            }
        }
        AluOp::Mod => {
            if src == 0 {
                dst
            } else {
                dst % src
            }
        }
        AluOp::SMod => {
            if src == 0 {
                dst
            } else {
                (dst as i32).wrapping_rem(src as i32) as u32
            }
        }
        AluOp::Or => dst | src,
        AluOp::And => dst & src,
        AluOp::Xor => dst ^ src,
        AluOp::Lsh => dst << (src & 31),
        AluOp::Rsh => dst >> (src & 31),
        AluOp::Arsh => ((dst as i32) >> (src & 31)) as u32,
        AluOp::Neg => (dst as i32).wrapping_neg() as u32,
        AluOp::Mov => src,
        AluOp::MovSx8 => sign_extend(src as u64, 8) as u32,
        AluOp::MovSx16 => sign_extend(src as u64, 16) as u32,
        // The 32-bit class has no 32-bit sign extension; on 32 bits it is a plain move.
        AluOp::MovSx32 => src,
    }
}

/// Evaluates a jump condition on `dst` and `src` at the given width.
pub fn compare(cond: JmpCond, width: Width, dst: u64, src: u64) -> bool {
    let (a, b, sa, sb) = match width {
        Width::W64 => (dst, src, dst as i64, src as i64),
        Width::W32 => (
            dst as u32 as u64,
            src as u32 as u64,
            dst as u32 as i32 as i64,
            src as u32 as i32 as i64,
        ),
    };
    match cond {
        JmpCond::Eq => a == b,
        JmpCond::Ne => a != b,
        JmpCond::Gt => a > b,
        JmpCond::Ge => a >= b,
        JmpCond::Lt => a < b,
        JmpCond::Le => a <= b,
        JmpCond::Sgt => sa > sb,
        JmpCond::Sge => sa >= sb,
        JmpCond::Slt => sa < sb,
        JmpCond::Sle => sa <= sb,
        JmpCond::Set => a & b != 0,
    }
}

/// Applies a byte-order conversion of `bits` (16, 32 or 64) to `value`, as on a little-endian
/// machine, and zero-extends the result.
pub fn byte_order(order: ByteOrder, bits: u32, value: u64) -> u64 {
    let swap = matches!(order, ByteOrder::ToBe | ByteOrder::Swap);
    match bits {
        16 if swap => (value as u16).swap_bytes() as u64,
        16 => value as u16 as u64,
        32 if swap => (value as u32).swap_bytes() as u64,
        32 => value as u32 as u64,
        _ if swap => value.swap_bytes(),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_and_modulo_by_zero_follow_the_kernel() {
        assert_eq!(alu(AluOp::Div, Width::W64, 7, 0), 0);
        assert_eq!(alu(AluOp::SDiv, Width::W64, 7, 0), 0);
        assert_eq!(alu(AluOp::Mod, Width::W64, 7, 0), 7);
        assert_eq!(alu(AluOp::SMod, Width::W32, u64::MAX, 0), 0xffff_ffff);
        assert_eq!(alu(AluOp::Mod, Width::W32, 0x1_0000_0007, 0), 7);
    }

    #[test]
    fn signed_overflow_wraps() {
        let min = i64::MIN as u64;
        assert_eq!(alu(AluOp::SDiv, Width::W64, min, u64::MAX), min);
        assert_eq!(alu(AluOp::SMod, Width::W64, min, u64::MAX), 0);
        assert_eq!(
            alu(AluOp::SMod, Width::W64, (-7i64) as u64, 2),
            (-1i64) as u64
        );
    }

    #[test]
    fn thirty_two_bit_results_are_zero_extended() {
        assert_eq!(alu(AluOp::Add, Width::W32, 0xffff_ffff, 1), 0);
        assert_eq!(alu(AluOp::Arsh, Width::W32, 0x8000_0000, 4), 0xf800_0000);
        assert_eq!(alu(AluOp::MovSx8, Width::W32, 0x80, 0x80), 0xffff_ff80);
        assert_eq!(alu(AluOp::MovSx8, Width::W64, 0, 0x80), u64::MAX - 0x7f);
        assert_eq!(alu(AluOp::Neg, Width::W32, 1, 0), 0xffff_ffff);
    }

    #[test]
    fn shift_counts_are_masked() {
        assert_eq!(alu(AluOp::Lsh, Width::W64, 1, 65), 2);
        assert_eq!(alu(AluOp::Lsh, Width::W32, 1, 33), 2);
        assert_eq!(alu(AluOp::Rsh, Width::W32, 0xffff_ffff_0000_0010, 4), 1);
    }

    #[test]
    fn comparisons_respect_width_and_sign() {
        assert!(compare(JmpCond::Slt, Width::W64, u64::MAX, 0));
        assert!(!compare(JmpCond::Lt, Width::W64, u64::MAX, 0));
        assert!(compare(JmpCond::Eq, Width::W32, 0x1_0000_0001, 1));
        assert!(compare(JmpCond::Sgt, Width::W32, 1, 0xffff_ffff));
        assert!(compare(JmpCond::Set, Width::W64, 6, 2));
    }

    #[test]
    fn byte_orders() {
        assert_eq!(
            byte_order(ByteOrder::ToBe, 16, 0x1122_3344_5566_7788),
            0x8877
        );
        assert_eq!(
            byte_order(ByteOrder::ToLe, 32, 0x1122_3344_5566_7788),
            0x5566_7788
        );
        assert_eq!(
            byte_order(ByteOrder::Swap, 64, 0x1122_3344_5566_7788),
            0x8877_6655_4433_2211
        );
    }
}
