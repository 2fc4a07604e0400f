//! A cursor for building and editing functions.
//!
//! Lifting and every pass create instructions "here": at the end of the block being filled, or
//! right before an instruction being rewritten. [`FunctionBuilder`] keeps that position and the
//! current source location, so that each creation is one call that makes the instruction,
//! places it in the layout, records its location and returns its result.
//!
//! ```
//! use ir::builder::FunctionBuilder;
//! use ir::function::{Function, SrcLoc};
//! use ir::instructions::{BinaryOp, Region};
//! use ir::semantics::{JmpCond, Width};
//! use ir::types::{MemSize, Type};
//!
//! let mut func = Function::new("xdp_prog", vec![Type::I64]);
//! let mut b = FunctionBuilder::new(&mut func);
//! let entry = b.create_block();
//! let pass = b.create_block();
//! b.switch_to_block(entry);
//! let ctx = b.append_entry_params(entry)[0];
//! b.set_srcloc(SrcLoc::new(0));
//! let data = b.load(Region::Ctx, MemSize::U32, false, ctx, 0);
//! let end = b.load(Region::Ctx, MemSize::U32, false, ctx, 4);
//! let fourteen = b.iconst(14);
//! let hdr_end = b.binary(BinaryOp::Add, Width::W64, data, fourteen);
//! let drop = b.iconst(1);
//! b.brif(JmpCond::Gt, Width::W64, hdr_end, end, pass, &[], pass, &[]);
//! b.switch_to_block(pass);
//! b.ret(drop);
//! assert!(ir::verifier::verify_function(&func).is_ok());
//! ```

use crate::entities::{Block, FuncRef, Inst, MapRef, StackSlot, Value};
use crate::function::{Function, SrcLoc};
use crate::instructions::{AtomicOp, BinaryOp, BlockCall, InstructionData, Region, UnaryOp};
use crate::semantics::{ByteOrder, JmpCond, Width};
use crate::types::{MemSize, Type};

/// Where the next instruction goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// Nowhere: creating an instruction panics until the cursor is placed.
    Nowhere,
    /// Right before this instruction (which stays the insertion point, so consecutive
    /// insertions come out in order).
    Before(Inst),
    /// At the end of this block.
    End(Block),
}

/// Builds or edits one function at a cursor position.
pub struct FunctionBuilder<'f> {
    /// The function being built; everything in it is public for direct inspection.
    pub func: &'f mut Function,
    position: Position,
    srcloc: SrcLoc,
}

impl<'f> FunctionBuilder<'f> {
    pub fn new(func: &'f mut Function) -> FunctionBuilder<'f> {
        FunctionBuilder {
            func,
            position: Position::Nowhere,
            srcloc: SrcLoc::NONE,
        }
    }

    // ---- Blocks and positions ----

    /// Creates a block outside the layout; [`FunctionBuilder::switch_to_block`] places it.
    pub fn create_block(&mut self) -> Block {
        self.func.dfg.make_block()
    }

    /// Adds a parameter to a block.
    pub fn append_block_param(&mut self, block: Block, ty: Type) -> Value {
        self.func.dfg.append_block_param(block, ty)
    }

    /// Gives `block` one parameter per function parameter, as the entry block needs, and
    /// returns them.
    pub fn append_entry_params(&mut self, block: Block) -> Vec<Value> {
        let params = self.func.params.clone();
        params
            .into_iter()
            .map(|ty| self.func.dfg.append_block_param(block, ty))
            .collect()
    }

    pub fn block_params(&self, block: Block) -> &[Value] {
        self.func.dfg.block_params(block)
    }

    /// Moves the cursor to the end of `block`, appending the block to the layout first if it is
    /// not there yet (the first block appended is the entry block).
    pub fn switch_to_block(&mut self, block: Block) {
        if !self.func.layout.is_block_inserted(block) {
            self.func.layout.append_block(block);
        }
        self.position = Position::End(block);
    }

    /// Places a new block right after `after` in the layout and moves the cursor to its end.
    pub fn insert_block_after(&mut self, block: Block, after: Block) {
        self.func.layout.insert_block_after(block, after);
        self.position = Position::End(block);
    }

    /// Moves the cursor so the next instruction goes right before `inst`.
    pub fn goto_before(&mut self, inst: Inst) {
        self.position = Position::Before(inst);
    }

    /// Moves the cursor so the next instruction goes right after `inst`.
    pub fn goto_after(&mut self, inst: Inst) {
        self.position = match self.func.layout.next_inst(inst) {
            Some(next) => Position::Before(next),
            None => Position::End(
                self.func
                    .layout
                    .inst_block(inst)
                    .unwrap_or_else(|| panic!("{inst} is not in the layout")),
            ),
        };
    }

    pub fn position(&self) -> Position {
        self.position
    }

    /// The block the cursor is in.
    pub fn current_block(&self) -> Option<Block> {
        match self.position {
            Position::Nowhere => None,
            Position::Before(inst) => self.func.layout.inst_block(inst),
            Position::End(block) => Some(block),
        }
    }

    /// True when the cursor's block already ends in a terminator.
    pub fn is_filled(&self) -> bool {
        self.current_block()
            .and_then(|b| self.func.layout.last_inst(b))
            .is_some_and(|i| self.func.dfg.inst(i).is_terminator())
    }

    /// Sets the source location given to every instruction created from now on.
    pub fn set_srcloc(&mut self, loc: SrcLoc) {
        self.srcloc = loc;
    }

    pub fn srcloc(&self) -> SrcLoc {
        self.srcloc
    }

    pub fn create_stack_slot(&mut self, size: u32) -> StackSlot {
        self.func.create_stack_slot(size)
    }

    // ---- Instructions ----

    /// Creates an instruction from its data at the cursor, with the current source location.
    ///
    /// # Panics
    /// When the cursor is nowhere.
    pub fn ins(&mut self, data: InstructionData) -> Inst {
        let inst = self.func.dfg.make_inst(data);
        match self.position {
            Position::Nowhere => panic!("FunctionBuilder: no block selected"),
            Position::Before(at) => self.func.layout.insert_inst_before(inst, at),
            Position::End(block) => self.func.layout.append_inst(inst, block),
        }
        self.func.srclocs[inst] = self.srcloc;
        inst
    }

    fn ins_value(&mut self, data: InstructionData) -> Value {
        let inst = self.ins(data);
        self.func.dfg.first_result(inst)
    }

    pub fn iconst(&mut self, imm: i64) -> Value {
        self.ins_value(InstructionData::Iconst { imm })
    }

    pub fn binary(&mut self, op: BinaryOp, width: Width, a: Value, b: Value) -> Value {
        self.ins_value(InstructionData::Binary {
            op,
            width,
            args: [a, b],
        })
    }

    pub fn unary(&mut self, op: UnaryOp, width: Width, arg: Value) -> Value {
        self.ins_value(InstructionData::Unary { op, width, arg })
    }

    /// A byte-order conversion of `bits` (16, 32 or 64) bits.
    pub fn endian(&mut self, order: ByteOrder, bits: u8, arg: Value) -> Value {
        self.ins_value(InstructionData::Endian { order, bits, arg })
    }

    pub fn load(
        &mut self,
        region: Region,
        size: MemSize,
        signed: bool,
        base: Value,
        offset: i32,
    ) -> Value {
        self.ins_value(InstructionData::Load {
            region,
            size,
            signed,
            base,
            offset,
        })
    }

    pub fn store(
        &mut self,
        region: Region,
        size: MemSize,
        base: Value,
        offset: i32,
        value: Value,
    ) -> Inst {
        self.ins(InstructionData::Store {
            region,
            size,
            base,
            offset,
            value,
        })
    }

    /// An atomic read-modify-write; returns the old contents when `fetch` is set.
    #[allow(clippy::too_many_arguments)]
    pub fn atomic(
        &mut self,
        region: Region,
        size: MemSize,
        op: AtomicOp,
        fetch: bool,
        base: Value,
        offset: i32,
        value: Value,
    ) -> Option<Value> {
        let inst = self.ins(InstructionData::Atomic {
            region,
            size,
            op,
            fetch,
            base,
            offset,
            value,
        });
        self.func.dfg.inst_result(inst)
    }

    pub fn cmpxchg(
        &mut self,
        region: Region,
        size: MemSize,
        base: Value,
        offset: i32,
        expected: Value,
        replacement: Value,
    ) -> Value {
        self.ins_value(InstructionData::CmpXchg {
            region,
            size,
            base,
            offset,
            expected,
            replacement,
        })
    }

    pub fn stack_addr(&mut self, slot: StackSlot, offset: i32) -> Value {
        self.ins_value(InstructionData::StackAddr { slot, offset })
    }

    pub fn map_ref(&mut self, map: MapRef) -> Value {
        self.ins_value(InstructionData::MapRef { map })
    }

    pub fn map_value_addr(&mut self, map: MapRef, offset: i32) -> Value {
        self.ins_value(InstructionData::MapValueAddr { map, offset })
    }

    pub fn func_addr(&mut self, func: FuncRef) -> Value {
        self.ins_value(InstructionData::FuncAddr { func })
    }

    pub fn call_helper(&mut self, helper: u32, args: &[Value]) -> Value {
        self.ins_value(InstructionData::CallHelper {
            helper,
            args: args.to_vec(),
        })
    }

    pub fn call(&mut self, func: FuncRef, args: &[Value]) -> Value {
        self.ins_value(InstructionData::Call {
            func,
            args: args.to_vec(),
        })
    }

    pub fn tail_call(&mut self, ctx: Value, map: MapRef, index: Value) -> Inst {
        self.ins(InstructionData::TailCall { ctx, map, index })
    }

    pub fn jump(&mut self, block: Block, args: &[Value]) -> Inst {
        self.ins(InstructionData::Jump {
            dest: BlockCall::new(block, args.to_vec()),
        })
    }

    /// `brif cond.width a, b, then_block(then_args), else_block(else_args)`.
    #[allow(clippy::too_many_arguments)]
    pub fn brif(
        &mut self,
        cond: JmpCond,
        width: Width,
        a: Value,
        b: Value,
        then_block: Block,
        then_args: &[Value],
        else_block: Block,
        else_args: &[Value],
    ) -> Inst {
        self.ins(InstructionData::Brif {
            cond,
            width,
            args: [a, b],
            dests: [
                BlockCall::new(then_block, then_args.to_vec()),
                BlockCall::new(else_block, else_args.to_vec()),
            ],
        })
    }

    pub fn ret(&mut self, value: Value) -> Inst {
        self.ins(InstructionData::Return { value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_go_where_the_cursor_is() {
        let mut func = Function::new("f", vec![Type::I64]);
        let mut b = FunctionBuilder::new(&mut func);
        let entry = b.create_block();
        b.switch_to_block(entry);
        let p = b.append_entry_params(entry)[0];
        b.set_srcloc(SrcLoc::new(5));
        let one = b.iconst(1);
        let ret = b.ret(one);
        assert!(b.is_filled());
        b.goto_before(ret);
        b.set_srcloc(SrcLoc::new(6));
        let sum = b.binary(BinaryOp::Add, Width::W64, p, one);
        let twice = b.binary(BinaryOp::Add, Width::W64, sum, sum);
        assert_eq!(b.current_block(), Some(entry));
        let sum_inst = b.func.dfg.value_inst(sum).unwrap();
        b.goto_after(sum_inst);
        let neg = b.unary(UnaryOp::Neg, Width::W64, sum);
        let insts: Vec<_> = func.layout.block_insts(entry).collect();
        let results: Vec<_> = insts.iter().map(|&i| func.dfg.inst_result(i)).collect();
        assert_eq!(
            results,
            vec![Some(one), Some(sum), Some(neg), Some(twice), None]
        );
        assert_eq!(func.srclocs[insts[0]], SrcLoc::new(5));
        assert_eq!(func.srclocs[insts[1]], SrcLoc::new(6));
    }

    #[test]
    #[should_panic(expected = "no block selected")]
    fn building_nowhere_panics() {
        let mut func = Function::new("f", vec![]);
        FunctionBuilder::new(&mut func).iconst(1);
    }
}
