//! The data flow graph: what each instruction computes and where each value comes from.
//!
//! The DFG holds definitions only. It knows that `v3` is the result of `inst2` and that
//! `block1` has the parameters `v4, v5`, but not in which order instructions run or which block
//! an instruction sits in; that is [`crate::layout::Layout`]'s job. Keeping the two apart lets
//! passes create an instruction before deciding where it goes, move instructions without
//! touching their operands, and delete an instruction from the layout while the values it
//! defined are still being rewritten.
//!
//! Every value is defined exactly once, by construction: a value is created together with its
//! definition (an instruction result or a block parameter) and the definition is never changed
//! afterwards, except by [`DataFlowGraph::detach_result`], which leaves a value with no
//! definition that the verifier then rejects wherever it is still used.

use crate::entities::{Block, Inst, Value};
use crate::instructions::InstructionData;
use crate::types::Type;
use cranelift_entity::packed_option::PackedOption;
use cranelift_entity::{EntityRef, PrimaryMap, SecondaryMap};

/// Values to be replaced by others, collected while a pass runs and applied at once with
/// [`DataFlowGraph::apply_substitution`]. A replacement may itself be replaced later; lookups
/// follow the chain to its end.
#[derive(Clone, Debug, Default)]
pub struct ValueSubstitution {
    map: SecondaryMap<Value, PackedOption<Value>>,
    len: usize,
}

impl ValueSubstitution {
    pub fn new() -> ValueSubstitution {
        ValueSubstitution::default()
    }

    /// Records that `old` is to be replaced by `new` (or by what `new` is replaced by). A
    /// replacement that would lead back to `old` is ignored, so chains never loop.
    pub fn insert(&mut self, old: Value, new: Value) {
        let new = self.resolve(new);
        if new != old && self.map[old].is_none() {
            self.map[old] = new.into();
            self.len += 1;
        }
    }

    /// What `v` stands for once every recorded replacement is made.
    pub fn resolve(&self, mut v: Value) -> Value {
        while let Some(next) = self.map.get(v).and_then(|p| p.expand()) {
            v = next;
        }
        v
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

/// Where a value is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueDef {
    /// The result of an instruction.
    Result(Inst),
    /// The parameter at this position of a block.
    Param(Block, usize),
    /// No definition: the defining instruction gave the value up, or the value is a gap in the
    /// numbering left by the parser. Using such a value is a verifier error.
    Detached,
}

/// A value's type and definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValueData {
    pub ty: Type,
    pub def: ValueDef,
}

/// What the DFG knows about a block: its parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockData {
    pub params: Vec<Value>,
}

/// Instructions, values and blocks of one function, as definitions.
#[derive(Clone, Debug, Default)]
pub struct DataFlowGraph {
    insts: PrimaryMap<Inst, InstructionData>,
    results: SecondaryMap<Inst, PackedOption<Value>>,
    values: PrimaryMap<Value, ValueData>,
    blocks: PrimaryMap<Block, BlockData>,
}

impl DataFlowGraph {
    pub fn new() -> DataFlowGraph {
        DataFlowGraph::default()
    }

    // ---- Instructions ----

    /// Creates an instruction and, if its opcode defines one, its result value. The instruction
    /// is not placed anywhere yet; insert it with the layout (or use the builder, which does).
    pub fn make_inst(&mut self, data: InstructionData) -> Inst {
        let ty = data.result_type();
        let inst = self.insts.push(data);
        if let Some(ty) = ty {
            let v = self.values.push(ValueData {
                ty,
                def: ValueDef::Result(inst),
            });
            self.results[inst] = v.into();
        }
        inst
    }

    /// Creates an instruction without a result value; the parser attaches results itself.
    pub(crate) fn make_inst_without_result(&mut self, data: InstructionData) -> Inst {
        self.insts.push(data)
    }

    /// Number of instructions ever created (including ones removed from the layout).
    pub fn num_insts(&self) -> usize {
        self.insts.len()
    }

    pub fn inst_is_valid(&self, inst: Inst) -> bool {
        self.insts.is_valid(inst)
    }

    /// The data of an instruction.
    pub fn inst(&self, inst: Inst) -> &InstructionData {
        &self.insts[inst]
    }

    /// The data of an instruction, to rewrite its operands in place. Changing the opcode in a
    /// way that changes whether it has a result is the caller's responsibility: use
    /// [`DataFlowGraph::replace_inst`] for that.
    pub fn inst_mut(&mut self, inst: Inst) -> &mut InstructionData {
        &mut self.insts[inst]
    }

    /// Replaces an instruction's data, keeping its result value (and so every use of it). The
    /// new data must define a result exactly when the old one did; returns the old data.
    ///
    /// # Panics
    /// When the new data changes whether the instruction has a result.
    pub fn replace_inst(&mut self, inst: Inst, data: InstructionData) -> InstructionData {
        assert_eq!(
            data.result_type().is_some(),
            self.results[inst].is_some(),
            "replace_inst must keep whether {inst} has a result"
        );
        std::mem::replace(&mut self.insts[inst], data)
    }

    /// Every instruction ever created, in creation order (including removed ones).
    pub fn insts(&self) -> impl Iterator<Item = (Inst, &InstructionData)> {
        self.insts.iter()
    }

    /// The value an instruction defines, if any.
    pub fn inst_result(&self, inst: Inst) -> Option<Value> {
        self.results[inst].expand()
    }

    /// The value an instruction defines.
    ///
    /// # Panics
    /// When the instruction defines no value.
    pub fn first_result(&self, inst: Inst) -> Value {
        self.inst_result(inst)
            .unwrap_or_else(|| panic!("{inst} defines no value"))
    }

    /// Makes `inst` define the new value `value` of type `ty` at a chosen number. Used by the
    /// parser to keep value numbers as written; the numbers in between become detached values.
    pub(crate) fn attach_result_at(&mut self, inst: Inst, index: usize, ty: Type) -> Value {
        let v = self.value_at(index, ty, ValueDef::Result(inst));
        self.results[inst] = v.into();
        v
    }

    /// Gives up the result of `inst`: the value stays (so stale uses can still be reported) but
    /// no longer has a definition. Useful before turning an instruction into one without a
    /// result.
    pub fn detach_result(&mut self, inst: Inst) -> Option<Value> {
        let v = self.results[inst].take()?;
        self.values[v].def = ValueDef::Detached;
        Some(v)
    }

    // ---- Values ----

    /// Number of values ever created.
    pub fn num_values(&self) -> usize {
        self.values.len()
    }

    pub fn value_is_valid(&self, v: Value) -> bool {
        self.values.is_valid(v)
    }

    pub fn value_type(&self, v: Value) -> Type {
        self.values[v].ty
    }

    pub fn value_def(&self, v: Value) -> ValueDef {
        self.values[v].def
    }

    /// Every value ever created, in creation order.
    pub fn values(&self) -> impl Iterator<Item = (Value, &ValueData)> {
        self.values.iter()
    }

    /// If `v` is the result of an instruction, that instruction.
    pub fn value_inst(&self, v: Value) -> Option<Inst> {
        match self.values[v].def {
            ValueDef::Result(inst) => Some(inst),
            _ => None,
        }
    }

    /// If `v` is the result of an `iconst`, its constant.
    pub fn value_const(&self, v: Value) -> Option<i64> {
        match self.value_inst(v).map(|i| &self.insts[i]) {
            Some(InstructionData::Iconst { imm }) => Some(*imm),
            _ => None,
        }
    }

    /// Rewrites every use of `old` into a use of `new`, in every instruction (including ones
    /// not in the layout) and every branch argument. Returns how many operands changed.
    /// This walks the whole function; BPF functions are small enough that no use lists are
    /// kept.
    pub fn replace_uses(&mut self, old: Value, new: Value) -> usize {
        let mut count = 0;
        for data in self.insts.values_mut() {
            data.map_args(|v| {
                if v == old {
                    count += 1;
                    new
                } else {
                    v
                }
            });
        }
        count
    }

    /// Applies every replacement of `subst` to every operand in one sweep over the
    /// instructions; returns how many operands changed. Passes that replace many values
    /// collect them first: calling [`DataFlowGraph::replace_uses`] once per value costs a sweep
    /// each, which is quadratic on large functions.
    pub fn apply_substitution(&mut self, subst: &ValueSubstitution) -> usize {
        if subst.is_empty() {
            return 0;
        }
        let mut count = 0;
        for data in self.insts.values_mut() {
            data.map_args(|v| {
                let r = subst.resolve(v);
                if r != v {
                    count += 1;
                }
                r
            });
        }
        count
    }

    /// Creates a value at index `index` (filling the numbers below it with detached values)
    /// with the given definition. The slot must not already hold a defined value.
    fn value_at(&mut self, index: usize, ty: Type, def: ValueDef) -> Value {
        while self.values.len() <= index {
            self.values.push(ValueData {
                ty: Type::I64,
                def: ValueDef::Detached,
            });
        }
        let v = Value::new(index);
        debug_assert_eq!(self.values[v].def, ValueDef::Detached);
        self.values[v] = ValueData { ty, def };
        v
    }

    // ---- Blocks ----

    /// Creates a block with no parameters. It is not in the layout yet.
    pub fn make_block(&mut self) -> Block {
        self.blocks.push(BlockData::default())
    }

    /// Creates blocks until `index` exists, so the parser can keep block numbers as written.
    pub(crate) fn ensure_block(&mut self, index: usize) -> Block {
        while self.blocks.len() <= index {
            self.blocks.push(BlockData::default());
        }
        Block::new(index)
    }

    /// Number of blocks ever created.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    pub fn block_is_valid(&self, block: Block) -> bool {
        self.blocks.is_valid(block)
    }

    /// Adds a parameter of type `ty` at the end of the block's parameters.
    pub fn append_block_param(&mut self, block: Block, ty: Type) -> Value {
        let position = self.blocks[block].params.len();
        let v = self.values.push(ValueData {
            ty,
            def: ValueDef::Param(block, position),
        });
        self.blocks[block].params.push(v);
        v
    }

    /// Adds a block parameter at a chosen value number (parser only).
    pub(crate) fn append_block_param_at(&mut self, block: Block, index: usize, ty: Type) -> Value {
        let position = self.blocks[block].params.len();
        let v = self.value_at(index, ty, ValueDef::Param(block, position));
        self.blocks[block].params.push(v);
        v
    }

    /// Removes the parameter at `position` of a block; later parameters move down one place.
    /// The removed value becomes detached. Branches to the block must drop the matching
    /// argument themselves.
    pub fn remove_block_param(&mut self, block: Block, position: usize) -> Value {
        let v = self.blocks[block].params.remove(position);
        self.values[v].def = ValueDef::Detached;
        for (i, &p) in self.blocks[block].params.iter().enumerate().skip(position) {
            self.values[p].def = ValueDef::Param(block, i);
        }
        v
    }

    pub fn block_params(&self, block: Block) -> &[Value] {
        &self.blocks[block].params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instructions::BinaryOp;
    use crate::semantics::Width;

    #[test]
    fn results_and_params_know_their_definitions() {
        let mut dfg = DataFlowGraph::new();
        let b = dfg.make_block();
        let p = dfg.append_block_param(b, Type::I64);
        assert_eq!(dfg.value_def(p), ValueDef::Param(b, 0));
        let c = dfg.make_inst(InstructionData::Iconst { imm: 7 });
        let cv = dfg.first_result(c);
        assert_eq!(dfg.value_def(cv), ValueDef::Result(c));
        assert_eq!(dfg.value_const(cv), Some(7));
        let add = dfg.make_inst(InstructionData::Binary {
            op: BinaryOp::Add,
            width: Width::W64,
            args: [p, cv],
        });
        assert_eq!(dfg.value_type(dfg.first_result(add)), Type::I64);
        let ret = dfg.make_inst(InstructionData::Return { value: p });
        assert_eq!(dfg.inst_result(ret), None);
    }

    #[test]
    fn a_substitution_follows_chains_and_applies_in_one_sweep() {
        let mut dfg = DataFlowGraph::new();
        let b = dfg.make_block();
        let (p, q, r) = (
            dfg.append_block_param(b, Type::I64),
            dfg.append_block_param(b, Type::I64),
            dfg.append_block_param(b, Type::I64),
        );
        let add = dfg.make_inst(InstructionData::Binary {
            op: BinaryOp::Add,
            width: Width::W64,
            args: [p, q],
        });
        let mut subst = ValueSubstitution::new();
        subst.insert(p, q);
        subst.insert(q, r);
        // A replacement leading back to its own value would loop; it is dropped.
        subst.insert(r, p);
        assert_eq!(
            (subst.resolve(p), subst.resolve(q), subst.resolve(r)),
            (r, r, r)
        );
        assert_eq!(subst.len(), 2);
        assert_eq!(dfg.apply_substitution(&subst), 2);
        let InstructionData::Binary { args, .. } = dfg.inst(add) else {
            unreachable!("still an add")
        };
        assert_eq!(*args, [r, r]);
    }

    #[test]
    fn replace_uses_rewrites_every_operand() {
        let mut dfg = DataFlowGraph::new();
        let b = dfg.make_block();
        let p = dfg.append_block_param(b, Type::I64);
        let q = dfg.append_block_param(b, Type::I64);
        let add = dfg.make_inst(InstructionData::Binary {
            op: BinaryOp::Add,
            width: Width::W64,
            args: [p, p],
        });
        assert_eq!(dfg.replace_uses(p, q), 2);
        assert_eq!(dfg.inst(add).args(), vec![q, q]);
    }

    #[test]
    fn removing_a_param_renumbers_the_rest() {
        let mut dfg = DataFlowGraph::new();
        let b = dfg.make_block();
        let p0 = dfg.append_block_param(b, Type::I64);
        let p1 = dfg.append_block_param(b, Type::I32);
        assert_eq!(dfg.remove_block_param(b, 0), p0);
        assert_eq!(dfg.value_def(p0), ValueDef::Detached);
        assert_eq!(dfg.value_def(p1), ValueDef::Param(b, 0));
        assert_eq!(dfg.block_params(b), &[p1]);
    }

    #[test]
    fn values_at_chosen_numbers_fill_gaps_with_detached_values() {
        let mut dfg = DataFlowGraph::new();
        let b = dfg.make_block();
        let v = dfg.append_block_param_at(b, 3, Type::I64);
        assert_eq!(v, Value::new(3));
        assert_eq!(dfg.num_values(), 4);
        assert_eq!(dfg.value_def(Value::new(1)), ValueDef::Detached);
    }
}
