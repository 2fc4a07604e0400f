//! The nicc intermediate representation: SSA form with block parameters, lifted from BPF and
//! consumed by every optimization and backend.
//!
//! - [`semantics`]: the single definition of BPF arithmetic, comparison and byte order.
//! - [`entities`]: typed indices (`v3`, `block2`, `inst7`, `ss0`, `fn1`, `map0`).
//! - [`types`]: value types (`i8` to `i64`) and memory access sizes.
//! - [`instructions`]: [`instructions::InstructionData`], memory regions, operation enums.
//! - [`dfg`]: definitions (instructions, values, block parameters).
//! - [`layout`]: the order of blocks and instructions, kept apart from definitions.
//! - [`function`]: [`function::Function`], [`function::Module`], source locations, maps.
//! - [`builder`]: [`builder::FunctionBuilder`], a cursor to create and insert instructions.
//! - [`write`] and [`parse`]: the text format, which round-trips.
//! - [`verifier`]: the IR invariants, checked after every pass.
//!
//! Architecture Invariant: this crate depends on no other crate of the workspace and knows
//! nothing of ELF, egg, targets or I/O.

pub mod builder;
pub mod dfg;
pub mod entities;
pub mod function;
pub mod instructions;
pub mod layout;
pub mod parse;
pub mod semantics;
pub mod types;
pub mod verifier;
pub mod write;

pub use builder::FunctionBuilder;
pub use dfg::{DataFlowGraph, ValueDef};
pub use entities::{Block, FuncRef, Inst, MapRef, StackSlot, Value};
pub use function::{Function, LineInfo, MapDecl, Module, ProgramEntry, SrcLoc, StackSlotData};
pub use instructions::{AtomicOp, BinaryOp, BlockCall, InstructionData, Opcode, Region, UnaryOp};
pub use layout::Layout;
pub use types::{MemSize, Type};
