//! The nicc intermediate representation. For now it holds `semantics`, the one definition of
//! BPF arithmetic that every engine shares; the SSA IR itself arrives with the IR issue.
//!
//! Architecture Invariant: this crate depends on no other crate of the workspace and knows
//! nothing of ELF, egg, targets or I/O.

pub mod semantics;
