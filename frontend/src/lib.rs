//! The frontend reads what clang builds: BPF ELF objects (programs, subprograms, maps, global
//! data, relocations, BTF line info), decodes instructions once into typed form, and provides the
//! text forms of the ISA (an llvm-objdump-style disassembler and an assembler for the
//! conformance `-- asm` syntax).
//!
//! Architecture Invariant: `insn` is the only place in nicc that reads raw opcode bits.

pub mod asm;
pub mod btf;
pub mod conformance;
pub mod diag;
pub mod disasm;
pub mod elf;
pub mod insn;
pub mod lift;
pub mod mapdata;
pub mod object;

pub use diag::Diagnostic;
pub use object::Object;
