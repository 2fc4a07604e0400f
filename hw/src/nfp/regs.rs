//! The register files of one microengine context as the instruction set names them: the
//! general-purpose A and B banks, transfer registers, next-neighbour registers, local memory
//! reached through the four local-memory address registers, and small immediates.
//!
//! An operand is written once as a typed value ([`Operand`] for sources, [`Dest`] for
//! destinations); which instruction field it fits, and how it is encoded there, is the
//! encoder's business. The banks matter for correctness: an ALU instruction reads one operand
//! through the A port and one through the B port, so two general-purpose registers of the
//! same bank cannot be combined in one instruction (the backend copies one of them first).

use std::fmt;

/// General-purpose registers per bank and context. The NFP has 128 A and 128 B registers per
/// microengine, shared by its contexts; with 4 contexts (the BPF offload's mode) each context
/// owns 32 of each bank (Netronome, NFP-4000 databook summary; Linux `nfp/bpf/jit.c` uses
/// context-relative registers in 4-context mode).
pub const GPRS_PER_BANK: u8 = 32;
/// Read (and, separately, write) transfer registers per context in 4-context mode.
pub const XFER_REGS: u8 = 32;
/// Next-neighbour registers of a microengine.
pub const NN_REGS: u8 = 128;
/// Local-memory address registers per context (`ACTIVE_LM_ADDR_0..3`).
pub const LM_INDEXES: u8 = 4;
/// Largest word offset an unrestricted operand adds to a local-memory address register.
pub const LM_UR_OFFSET_MAX: u8 = 15;
/// Largest word offset a restricted (8-bit) operand adds to a local-memory address register.
pub const LM_RE_OFFSET_MAX: u8 = 7;
/// Bytes of local memory per microengine (1024 words of 32 bits).
pub const LM_BYTES: u32 = 4096;

/// A general-purpose register bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bank {
    A,
    B,
}

impl Bank {
    pub fn other(self) -> Bank {
        match self {
            Bank::A => Bank::B,
            Bank::B => Bank::A,
        }
    }
}

/// A source operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// A general-purpose register of a bank.
    Gpr(Bank, u8),
    /// A read transfer register (`$xfer_n`): where memory reads land.
    Xfer(u8),
    /// A next-neighbour register (`n$reg_n`).
    Nn(u8),
    /// The local-memory word `offset` words past local-memory address register `index`
    /// (`*l$index0[2]`).
    Lm { index: u8, offset: u8 },
    /// An immediate (8 bits in unrestricted fields, 7 or 8 in restricted ones).
    Imm(u8),
    /// No operand (`--`).
    None,
}

/// A destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    /// A general-purpose register of one bank.
    Gpr(Bank, u8),
    /// Register `n` of both banks at once (`WR_AB`), so that either port can read it later.
    Both(u8),
    /// A write transfer register: what memory writes and command arguments are taken from.
    Xfer(u8),
    Nn(u8),
    Lm {
        index: u8,
        offset: u8,
    },
    /// The result is only used for the condition codes (`--`).
    None,
}

impl Operand {
    pub fn a(n: u8) -> Operand {
        Operand::Gpr(Bank::A, n)
    }
    pub fn b(n: u8) -> Operand {
        Operand::Gpr(Bank::B, n)
    }
    /// The bank of a general-purpose register operand.
    pub fn bank(self) -> Option<Bank> {
        match self {
            Operand::Gpr(b, _) => Some(b),
            _ => None,
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Operand::Gpr(Bank::A, n) => write!(f, "a{n}"),
            Operand::Gpr(Bank::B, n) => write!(f, "b{n}"),
            Operand::Xfer(n) => write!(f, "$xfer_{n}"),
            Operand::Nn(n) => write!(f, "n$reg_{n}"),
            Operand::Lm { index, offset } => write!(f, "*l$index{index}[{offset}]"),
            Operand::Imm(v) => write!(f, "{v:#x}"),
            Operand::None => f.write_str("--"),
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Dest::Gpr(Bank::A, n) => write!(f, "a{n}"),
            Dest::Gpr(Bank::B, n) => write!(f, "b{n}"),
            Dest::Both(n) => write!(f, "ab{n}"),
            Dest::Xfer(n) => write!(f, "$xfer_{n}"),
            Dest::Nn(n) => write!(f, "n$reg_{n}"),
            Dest::Lm { index, offset } => write!(f, "*l$index{index}[{offset}]"),
            Dest::None => f.write_str("--"),
        }
    }
}
