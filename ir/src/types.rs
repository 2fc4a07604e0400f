//! The types of IR values and the sizes of memory accesses.
//!
//! BPF has one kind of register, 64 bits wide, so every value lifted from BPF has type
//! [`Type::I64`]. A 32-bit ALU operation is not a different type: it carries
//! [`Width::W32`] and produces an `I64` whose upper 32 bits are zero, exactly as
//! [`crate::semantics::alu`] computes. Keeping one register type means that every optimization
//! can reason with `ir::semantics` directly and that no extension or truncation instructions
//! are needed to model BPF.
//!
//! The narrower types `I8`, `I16` and `I32` exist for target preparation (a hardware pipeline
//! wants to know that a value fits in a byte); the text format, the parser and the verifier
//! already handle them on block parameters. No instruction produces them yet, so the verifier
//! rejects them wherever an instruction needs a register operand.

use std::fmt;

pub use crate::semantics::Width;

/// The type of an SSA value: an integer of 8, 16, 32 or 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    I8,
    I16,
    I32,
    I64,
}

impl Type {
    /// Every type, narrowest first.
    pub const ALL: [Type; 4] = [Type::I8, Type::I16, Type::I32, Type::I64];

    pub fn bits(self) -> u32 {
        match self {
            Type::I8 => 8,
            Type::I16 => 16,
            Type::I32 => 32,
            Type::I64 => 64,
        }
    }

    pub fn bytes(self) -> u32 {
        self.bits() / 8
    }

    /// The name used by the text format (`i64`).
    pub fn name(self) -> &'static str {
        match self {
            Type::I8 => "i8",
            Type::I16 => "i16",
            Type::I32 => "i32",
            Type::I64 => "i64",
        }
    }

    /// The type with the given text-format name.
    pub fn from_name(name: &str) -> Option<Type> {
        Type::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The size of a memory access: 1, 2, 4 or 8 bytes. Loads zero-extend (or sign-extend when
/// marked `.sx`) into an `I64`; stores write the low bytes of their value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemSize {
    U8,
    U16,
    U32,
    U64,
}

impl MemSize {
    /// Every size, smallest first.
    pub const ALL: [MemSize; 4] = [MemSize::U8, MemSize::U16, MemSize::U32, MemSize::U64];

    pub fn bytes(self) -> u32 {
        match self {
            MemSize::U8 => 1,
            MemSize::U16 => 2,
            MemSize::U32 => 4,
            MemSize::U64 => 8,
        }
    }

    pub fn bits(self) -> u32 {
        self.bytes() * 8
    }

    /// The size of `bytes` bytes, if it is a BPF access size.
    pub fn from_bytes(bytes: u32) -> Option<MemSize> {
        MemSize::ALL.into_iter().find(|s| s.bytes() == bytes)
    }

    /// The name used by the text format (`u32`).
    pub fn name(self) -> &'static str {
        match self {
            MemSize::U8 => "u8",
            MemSize::U16 => "u16",
            MemSize::U32 => "u32",
            MemSize::U64 => "u64",
        }
    }

    pub fn from_name(name: &str) -> Option<MemSize> {
        MemSize::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for MemSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text-format name of an operation width (`w32`, `w64`).
pub fn width_name(width: Width) -> &'static str {
    match width {
        Width::W32 => "w32",
        Width::W64 => "w64",
    }
}

/// The width with the given text-format name.
pub fn width_from_name(name: &str) -> Option<Width> {
    match name {
        "w32" => Some(Width::W32),
        "w64" => Some(Width::W64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Type::ALL {
            assert_eq!(Type::from_name(t.name()), Some(t));
            assert_eq!(t.bytes() * 8, t.bits());
        }
        for s in MemSize::ALL {
            assert_eq!(MemSize::from_name(s.name()), Some(s));
            assert_eq!(MemSize::from_bytes(s.bytes()), Some(s));
        }
        for w in [Width::W32, Width::W64] {
            assert_eq!(width_from_name(width_name(w)), Some(w));
        }
        assert_eq!(Type::from_name("i128"), None);
        assert_eq!(MemSize::from_bytes(3), None);
    }
}
