//! Functions and modules: the units the IR is built, printed, verified and transformed in.
//!
//! A [`Function`] is a DFG, a layout, stack slots and a source location per instruction. A
//! [`Module`] is what one BPF object becomes: its functions (program entries and the
//! subprograms they call), the maps they reference, which functions are programs, and the
//! table of C source lines that source locations point into. The line table lives in the
//! module so that a [`SrcLoc`] stays two words and `Copy`.

use crate::dfg::DataFlowGraph;
use crate::entities::{Block, FuncRef, Inst, MapRef, StackSlot};
use crate::layout::Layout;
use crate::types::Type;
use cranelift_entity::{PrimaryMap, SecondaryMap};
use std::fmt;

/// Where an instruction came from: the BPF slot index in the linked program, and optionally
/// an index into [`Module::lines`] (the C source line from BTF line info).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SrcLoc {
    /// The BPF slot index, or `u32::MAX` for an instruction with no origin.
    pub insn: u32,
    /// An index into the module's line table.
    pub line: Option<u32>,
}

impl SrcLoc {
    /// The location of an instruction that has no origin in the BPF program.
    pub const NONE: SrcLoc = SrcLoc {
        insn: u32::MAX,
        line: None,
    };

    /// The location of BPF slot `insn`, with no line information.
    pub fn new(insn: u32) -> SrcLoc {
        SrcLoc { insn, line: None }
    }

    /// The location of BPF slot `insn` with line table entry `line`.
    pub fn with_line(insn: u32, line: u32) -> SrcLoc {
        SrcLoc {
            insn,
            line: Some(line),
        }
    }

    pub fn is_none(self) -> bool {
        self.insn == u32::MAX
    }
}

impl Default for SrcLoc {
    fn default() -> SrcLoc {
        SrcLoc::NONE
    }
}

/// Prints `@insn` or `@insn:line` (nothing for [`SrcLoc::NONE`]).
impl fmt::Display for SrcLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return Ok(());
        }
        write!(f, "@{}", self.insn)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        Ok(())
    }
}

/// One entry of the module's line table: a C source line from BTF line info.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LineInfo {
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// The text of the source line.
    pub text: String,
}

/// A stack slot: `size` bytes of the BPF frame, addressed through `stack_addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StackSlotData {
    pub size: u32,
}

/// The largest stack slot: the whole BPF frame of one function.
pub const MAX_STACK_SLOT: u32 = 512;

/// One function in SSA form. All functions return one `i64` (r0); the entry block's
/// parameters are the function's parameters (r1 to r5).
#[derive(Clone, Debug, Default)]
pub struct Function {
    pub name: String,
    /// Parameter types, one per argument register used.
    pub params: Vec<Type>,
    pub dfg: DataFlowGraph,
    pub layout: Layout,
    pub stack_slots: PrimaryMap<StackSlot, StackSlotData>,
    pub srclocs: SecondaryMap<Inst, SrcLoc>,
}

impl Function {
    /// An empty function with the given name and parameter types; it has no blocks yet.
    pub fn new(name: impl Into<String>, params: Vec<Type>) -> Function {
        Function {
            name: name.into(),
            params,
            ..Function::default()
        }
    }

    pub fn create_stack_slot(&mut self, size: u32) -> StackSlot {
        self.stack_slots.push(StackSlotData { size })
    }

    /// The entry block, if the function has any block.
    pub fn entry_block(&self) -> Option<Block> {
        self.layout.entry_block()
    }

    /// The instructions of a block in layout order, with their data.
    pub fn block_insts(&self, block: Block) -> impl Iterator<Item = Inst> + '_ {
        self.layout.block_insts(block)
    }

    /// Every instruction in the layout, block by block.
    pub fn insts(&self) -> impl Iterator<Item = Inst> + '_ {
        self.layout
            .blocks()
            .flat_map(move |b| self.layout.block_insts(b))
    }

    /// Successor blocks of `block`, from its terminator, with duplicates kept.
    pub fn successors(&self, block: Block) -> Vec<Block> {
        match self.layout.last_inst(block) {
            Some(inst) => self
                .dfg
                .inst(inst)
                .branch_destinations()
                .iter()
                .map(|d| d.block)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Places `inst` in no block any more and forgets its source location. Its data stays in
    /// the DFG, so its result, if still used, is reported by the verifier.
    pub fn remove_inst(&mut self, inst: Inst) {
        self.layout.remove_inst(inst);
        self.srclocs[inst] = SrcLoc::NONE;
    }
}

/// Structural equality: two functions are equal when they print the same. Block and value
/// numbers are compared as they are, instruction numbers are not (the text format does not
/// show them), and instructions or values outside the layout are ignored.
impl PartialEq for Function {
    fn eq(&self, other: &Function) -> bool {
        if self.name != other.name
            || self.params != other.params
            || self.stack_slots != other.stack_slots
        {
            return false;
        }
        let (mut ba, mut bb) = (self.layout.blocks(), other.layout.blocks());
        loop {
            match (ba.next(), bb.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) => {
                    if a != b || !self.same_block(other, a) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }
}

impl Function {
    /// Where each stack slot starts in a frame of `frame` bytes: laid out from the top down,
    /// aligned to 8 bytes when everything fits that way (as clang lays out the BPF stack),
    /// packed otherwise; `None` when the slots do not fit at all. Every engine and backend
    /// uses this one layout, so a slot's address is the same wherever the function runs.
    pub fn stack_slot_offsets(&self, frame: u32) -> Option<Vec<u32>> {
        'align: for align in [8u32, 1] {
            let mut top = frame;
            let mut out = Vec::with_capacity(self.stack_slots.len());
            for (_, data) in self.stack_slots.iter() {
                let Some(start) = top.checked_sub(data.size) else {
                    continue 'align;
                };
                let start = start - start % align;
                out.push(start);
                top = start;
            }
            return Some(out);
        }
        None
    }

    /// The bytes all stack slots take together.
    pub fn stack_slot_bytes(&self) -> u64 {
        self.stack_slots.values().map(|s| s.size as u64).sum()
    }
}

impl Function {
    fn same_block(&self, other: &Function, block: Block) -> bool {
        let (pa, pb) = (self.dfg.block_params(block), other.dfg.block_params(block));
        if pa != pb
            || pa
                .iter()
                .any(|&v| self.dfg.value_type(v) != other.dfg.value_type(v))
        {
            return false;
        }
        let (mut ia, mut ib) = (
            self.layout.block_insts(block),
            other.layout.block_insts(block),
        );
        loop {
            match (ia.next(), ib.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) => {
                    let ra = self.dfg.inst_result(a);
                    let rb = other.dfg.inst_result(b);
                    if self.dfg.inst(a) != other.dfg.inst(b)
                        || ra != rb
                        || ra.map(|v| self.dfg.value_type(v)) != rb.map(|v| other.dfg.value_type(v))
                        || self.srclocs[a] != other.srclocs[b]
                    {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }
}

/// A map the module's programs use: its kernel definition and, for global data, its initial
/// contents.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MapDecl {
    pub name: String,
    /// The kernel's `BPF_MAP_TYPE_*` number.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// Initial contents of the single value, for global data maps (`.data`, `.rodata`).
    pub data: Option<Vec<u8>>,
}

impl MapDecl {
    /// A map with no flags and no initial data.
    pub fn new(
        name: impl Into<String>,
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> MapDecl {
        MapDecl {
            name: name.into(),
            map_type,
            key_size,
            value_size,
            max_entries,
            flags: 0,
            data: None,
        }
    }
}

/// A program entry: a function the kernel can run, with its program kind (`xdp`,
/// `socket_filter`, ...), as the section name or BTF says.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProgramEntry {
    pub func: FuncRef,
    pub kind: String,
}

/// Everything lifted from one BPF object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Module {
    pub functions: PrimaryMap<FuncRef, Function>,
    pub maps: PrimaryMap<MapRef, MapDecl>,
    pub programs: Vec<ProgramEntry>,
    pub lines: Vec<LineInfo>,
}

impl Module {
    pub fn new() -> Module {
        Module::default()
    }

    pub fn add_function(&mut self, func: Function) -> FuncRef {
        self.functions.push(func)
    }

    pub fn add_map(&mut self, map: MapDecl) -> MapRef {
        self.maps.push(map)
    }

    /// Marks `func` as a program entry of the given kind.
    pub fn add_program(&mut self, func: FuncRef, kind: impl Into<String>) {
        self.programs.push(ProgramEntry {
            func,
            kind: kind.into(),
        });
    }

    /// Adds a line to the line table and returns its index, for [`SrcLoc::with_line`].
    pub fn add_line(&mut self, line: LineInfo) -> u32 {
        self.lines.push(line);
        (self.lines.len() - 1) as u32
    }

    /// The function with this name, if any.
    pub fn function_by_name(&self, name: &str) -> Option<FuncRef> {
        self.functions
            .iter()
            .find(|(_, f)| f.name == name)
            .map(|(r, _)| r)
    }

    /// The map with this name, if any.
    pub fn map_by_name(&self, name: &str) -> Option<MapRef> {
        self.maps
            .iter()
            .find(|(_, m)| m.name == name)
            .map(|(r, _)| r)
    }

    /// The line table entry of a source location.
    pub fn line(&self, loc: SrcLoc) -> Option<&LineInfo> {
        self.lines.get(loc.line? as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srclocs_print_as_in_the_text_format() {
        assert_eq!(SrcLoc::new(3).to_string(), "@3");
        assert_eq!(SrcLoc::with_line(3, 7).to_string(), "@3:7");
        assert_eq!(SrcLoc::NONE.to_string(), "");
        assert_eq!(SrcLoc::default(), SrcLoc::NONE);
        assert!(std::mem::size_of::<SrcLoc>() <= 12);
    }

    #[test]
    fn module_lookups() {
        let mut m = Module::new();
        let f = m.add_function(Function::new("prog", vec![Type::I64]));
        m.add_program(f, "xdp");
        let map = m.add_map(MapDecl::new("rxcnt", 6, 4, 8, 256));
        let l = m.add_line(LineInfo {
            file: "a.c".into(),
            line: 3,
            column: 1,
            text: "x".into(),
        });
        assert_eq!(m.function_by_name("prog"), Some(f));
        assert_eq!(m.map_by_name("rxcnt"), Some(map));
        assert_eq!(m.line(SrcLoc::with_line(0, l)).unwrap().line, 3);
        assert_eq!(m.line(SrcLoc::new(0)), None);
    }
}
