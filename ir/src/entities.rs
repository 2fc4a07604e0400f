//! Typed indices for everything the IR names.
//!
//! A function's instructions, values and blocks live in tables (`PrimaryMap`s from
//! `cranelift-entity`) and refer to each other by small `u32` indices instead of pointers. A
//! distinct type per table means a `Value` can never be used where a `Block` was meant, and the
//! `Display` prefix given to `entity_impl!` is exactly the prefix the text format uses
//! (`v3`, `block2`, `ss0`, `fn1`, `map0`), so printer and parser cannot disagree about names.
//! `entity_impl!` also makes `Debug` print the same name, so `{:?}` of a value reads `v3`.

use cranelift_entity::entity_impl;

/// A basic block of a function. Blocks take parameters instead of phi nodes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block(u32);
entity_impl!(Block, "block");

/// An SSA value: either the result of an instruction or a block parameter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value(u32);
entity_impl!(Value, "v");

/// An instruction. Instructions are not named in the text format (their result value is), but
/// the verifier and diagnostics name them as `inst7`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Inst(u32);
entity_impl!(Inst, "inst");

/// A stack slot of a function: a piece of the BPF frame with a fixed size.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackSlot(u32);
entity_impl!(StackSlot, "ss");

/// A function of a module (a program entry or a subprogram).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FuncRef(u32);
entity_impl!(FuncRef, "fn");

/// A map declared by a module (including the maps that hold global data).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapRef(u32);
entity_impl!(MapRef, "map");

#[cfg(test)]
mod tests {
    use super::*;
    use cranelift_entity::EntityRef;

    #[test]
    fn display_prefixes_are_the_text_format_prefixes() {
        assert_eq!(Block::new(2).to_string(), "block2");
        assert_eq!(Value::new(3).to_string(), "v3");
        assert_eq!(Inst::new(7).to_string(), "inst7");
        assert_eq!(StackSlot::new(0).to_string(), "ss0");
        assert_eq!(FuncRef::new(1).to_string(), "fn1");
        assert_eq!(MapRef::new(4).to_string(), "map4");
        assert_eq!(format!("{:?}", Value::new(5)), "v5");
    }
}
