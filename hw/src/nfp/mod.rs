//! The NFP-style microengine instruction set: one definition shared by the NFP backend (which
//! encodes) and the NFP simulator (which decodes and executes).
//!
//! The model follows the Netronome NFP-4000 as far as the Linux `nfp` driver documents it:
//! 64-bit code-store words of 45 instruction bits and 7 ECC bits with the field layout of
//! `nfp_asm.h`, A and B register banks with the bank restriction, transfer, next-neighbour
//! and local-memory operands, branches with defer slots, memory commands that complete with a
//! signal and can swap the context out, and the multiplier's steps. One file per concern:
//! [`regs`] (register files and operands), [`insn`] (the typed instruction and what each one
//! computes), [`encode`] and [`decode`] (words), [`listing`] (assembler text), [`latency`]
//! (timing data from `hw/data/nfp_latency.toml`) and [`abi`] (what the microcode and the
//! simulator agree on besides instructions).

pub mod abi;
pub mod decode;
pub mod encode;
pub mod insn;
pub mod latency;
pub mod listing;
pub mod regs;

pub use decode::{decode, DecodeError};
pub use encode::{encode, EncodeError};
pub use insn::*;
pub use latency::LatencyTable;
pub use listing::{format_insn, program_listing};
pub use regs::{Bank, Dest, Operand};

/// Instructions one microengine's code store holds in the model: 8K words, the control store
/// of an NFP-4000 microengine as Netronome describes it. Programs longer than this are
/// rejected with the excess.
pub const CODE_STORE_WORDS: usize = 8192;
