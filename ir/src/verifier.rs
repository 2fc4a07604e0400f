//! The IR verifier: the invariants every pass may assume and must preserve.
//!
//! Every pass leaves verifiable IR, and tests run the verifier after each one, so a pass that
//! breaks the IR is caught where it breaks it, not three passes later. The verifier never
//! panics, even on IR that no builder would produce (dangling entity numbers, a corrupt
//! layout), and it reports every violation it finds, each naming the function and the
//! instruction, block or other entity at fault.
//!
//! # Invariants of a function ([`verify_function`])
//!
//! 1. **Entry.** The function has at least one block; the first block in the layout is the
//!    entry block, its parameters match the function's parameters in number and type, and no
//!    branch targets it.
//! 2. **Layout.** Every block and instruction in the layout exists in the DFG; no block appears
//!    twice in the block order and no instruction is in two blocks (or twice in one).
//! 3. **Terminators.** Every block in the layout is non-empty and ends in exactly one
//!    terminator (`jump`, `brif`, `return`); terminators appear nowhere else.
//! 4. **Definitions.** Every value is defined once: the result of an instruction records that
//!    instruction as its definition and has the type the opcode gives it, a block parameter
//!    records its block and position, and no value is a parameter twice. An instruction has a
//!    result exactly when its opcode defines one.
//! 5. **Dominance.** Every operand (branch arguments included) is a value that exists, is
//!    defined by an instruction in the layout or is a parameter of a block in the layout, and
//!    whose definition dominates the use: a parameter of block B dominates B and the blocks B
//!    dominates; an instruction result dominates the later instructions of its block and the
//!    blocks its block strictly dominates. Uses in unreachable blocks need only a definition
//!    earlier in the same block or in another block.
//! 6. **Branches.** Every branch destination is a block in the layout, and the branch passes
//!    exactly as many arguments as the block has parameters, each of the parameter's type.
//! 7. **Operand types.** Every operand of every instruction is an `i64` (a BPF register).
//! 8. **Operations.** Byte swaps are 16, 32 or 64 bits; `movsx32` is 64-bit only (the 32-bit
//!    class has no such instruction); sign-extending loads are narrower than 64 bits; atomic
//!    operations and `cmpxchg` access 32 or 64 bits and never the packet or the context (the
//!    kernel rejects both); `xchg` always fetches; helper and function calls pass at most five
//!    arguments.
//! 9. **Stack slots.** Every stack slot named (by `stack_addr` or a `stack(ssN)` region) is
//!    declared, and slots are 1 to 512 bytes. `stack_addr` points into its slot (one past the
//!    end is allowed, as a frame pointer is); a `stack(ssN)` access whose base is a
//!    `stack_addr` uses the same slot and stays inside it.
//!
//! # Invariants of a module ([`verify_module`])
//!
//! 10. Every function satisfies the invariants above, and function names are unique.
//! 11. **References.** Every map (`map_ref`, `map_value_addr`, `tail_call`, `map_value(mapN)`
//!     and `global(mapN)` regions) and every function (`call`, `func_addr`) named exists.
//! 12. **Calls.** A `call` passes as many arguments as the callee has parameters; `tail_call`
//!     names a program array map (`BPF_MAP_TYPE_PROG_ARRAY`, type 3).
//! 13. **Global data.** A `global(mapN)` access whose base is a `map_value_addr` of the same
//!     map stays inside the map's value; `map_value_addr` points into the value (or one past
//!     it); initial data, when present, is exactly one value long.
//! 14. **Programs.** Every program entry names an existing function, with a non-empty kind, and
//!     no function is listed twice.
//! 15. **Source lines.** Every source location's line index is in the module's line table.

use crate::dfg::ValueDef;
use crate::entities::{Block, FuncRef, Inst, MapRef, StackSlot, Value};
use crate::function::{Function, Module, MAX_STACK_SLOT};
use crate::instructions::{AtomicOp, InstructionData, Region, UnaryOp};
use crate::semantics::Width;
use crate::types::{MemSize, Type};
use crate::write::inst_to_string;
use cranelift_entity::SecondaryMap;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The most arguments a BPF call passes (r1 to r5).
pub const MAX_CALL_ARGS: usize = 5;

/// The kernel's `BPF_MAP_TYPE_PROG_ARRAY`, the map a tail call indexes.
pub const MAP_TYPE_PROG_ARRAY: u32 = 3;

/// What a verifier error is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    Function,
    Block(Block),
    Inst(Inst),
    Value(Value),
    StackSlot(StackSlot),
    Map(MapRef),
    /// A program entry, by its position in [`Module::programs`].
    Program(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Function => f.write_str("function"),
            Location::Block(b) => write!(f, "{b}"),
            Location::Inst(i) => write!(f, "{i}"),
            Location::Value(v) => write!(f, "{v}"),
            Location::StackSlot(s) => write!(f, "{s}"),
            Location::Map(m) => write!(f, "{m}"),
            Location::Program(i) => write!(f, "program entry {i}"),
        }
    }
}

/// One violated invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierError {
    /// The function's name, or `None` for a module-level error.
    pub function: Option<String>,
    pub location: Location,
    /// The offending instruction as text, when the error is about an instruction.
    pub inst_text: Option<String>,
    pub message: String,
}

impl fmt::Display for VerifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.function {
            write!(f, "function %{name}: ")?;
        }
        write!(f, "{}", self.location)?;
        if let Some(text) = &self.inst_text {
            write!(f, " ({text})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every violation found, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifierErrors(pub Vec<VerifierError>);

impl VerifierErrors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &VerifierError> {
        self.0.iter()
    }
}

impl fmt::Display for VerifierErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for VerifierErrors {}

/// Checks invariants 1 to 9 of one function.
pub fn verify_function(func: &Function) -> Result<(), VerifierErrors> {
    let mut v = FunctionVerifier::new(func);
    v.run();
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(VerifierErrors(v.errors))
    }
}

/// Checks every invariant of a module and of each of its functions.
pub fn verify_module(module: &Module) -> Result<(), VerifierErrors> {
    let mut errors = Vec::new();
    let mut names: HashMap<&str, FuncRef> = HashMap::new();
    for (fref, func) in module.functions.iter() {
        if let Err(e) = verify_function(func) {
            errors.extend(e.0);
        }
        if let Some(first) = names.insert(&func.name, fref) {
            errors.push(VerifierError {
                function: Some(func.name.clone()),
                location: Location::Function,
                inst_text: None,
                message: format!("{fref} has the same name as {first}"),
            });
        }
        verify_module_refs(module, func, &mut errors);
    }
    for (m, decl) in module.maps.iter() {
        if let Some(data) = &decl.data {
            if data.len() != decl.value_size as usize {
                errors.push(module_error(
                    Location::Map(m),
                    format!(
                        "initial data is {} bytes but the value is {} bytes",
                        data.len(),
                        decl.value_size
                    ),
                ));
            }
        }
    }
    let mut entries = HashSet::new();
    for (i, p) in module.programs.iter().enumerate() {
        if !module.functions.is_valid(p.func) {
            errors.push(module_error(
                Location::Program(i),
                format!("{} does not exist", p.func),
            ));
        }
        if p.kind.is_empty() {
            errors.push(module_error(
                Location::Program(i),
                "empty program kind".into(),
            ));
        }
        if !entries.insert(p.func) {
            errors.push(module_error(
                Location::Program(i),
                format!("{} is listed as a program twice", p.func),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(VerifierErrors(errors))
    }
}

fn module_error(location: Location, message: String) -> VerifierError {
    VerifierError {
        function: None,
        location,
        inst_text: None,
        message,
    }
}

/// Invariants 11 to 15 for the instructions of one function.
fn verify_module_refs(module: &Module, func: &Function, errors: &mut Vec<VerifierError>) {
    let mut err = |inst: Inst, message: String| {
        errors.push(VerifierError {
            function: Some(func.name.clone()),
            location: Location::Inst(inst),
            inst_text: Some(inst_to_string(func, inst)),
            message,
        })
    };
    for inst in layout_insts(func) {
        let data = func.dfg.inst(inst);
        for m in data.maps() {
            if !module.maps.is_valid(m) {
                err(inst, format!("{m} does not exist"));
            }
        }
        if let Some(f) = data.func_ref() {
            if !module.functions.is_valid(f) {
                err(inst, format!("{f} does not exist"));
            }
        }
        match data {
            InstructionData::Call { func: callee, args } if module.functions.is_valid(*callee) => {
                let want = module.functions[*callee].params.len();
                if args.len() != want {
                    err(
                        inst,
                        format!("{callee} takes {want} arguments, {} given", args.len()),
                    );
                }
            }
            InstructionData::TailCall { map, .. }
                if module.maps.is_valid(*map)
                    && module.maps[*map].map_type != MAP_TYPE_PROG_ARRAY =>
            {
                err(inst, format!("{map} is not a program array"));
            }
            InstructionData::MapValueAddr { map, offset } if module.maps.is_valid(*map) => {
                let size = module.maps[*map].value_size as i64;
                if !(0..=size).contains(&(*offset as i64)) {
                    err(
                        inst,
                        format!("offset {offset} is outside the {size}-byte value of {map}"),
                    );
                }
            }
            _ => {}
        }
        if let (Some((Region::Global(m), size)), Some(base)) =
            (data.memory_access(), mem_base(data))
        {
            if module.maps.is_valid(m) && func.dfg.value_is_valid(base) {
                if let Some(InstructionData::MapValueAddr {
                    map: bm,
                    offset: boff,
                }) = func.dfg.value_inst(base).map(|i| func.dfg.inst(i))
                {
                    let start = *boff as i64 + mem_offset(data) as i64;
                    let value_size = module.maps[m].value_size as i64;
                    if *bm != m {
                        err(
                            inst,
                            format!("global({m}) access through an address of {bm}"),
                        );
                    } else if start < 0 || start + size.bytes() as i64 > value_size {
                        err(
                            inst,
                            format!(
                                "access of {} bytes at {start} is outside the {value_size}-byte value of {m}",
                                size.bytes()
                            ),
                        );
                    }
                }
            }
        }
        if let Some(line) = func.srclocs[inst].line {
            if line as usize >= module.lines.len() {
                err(
                    inst,
                    format!(
                        "source line {line} is not in the line table ({} lines)",
                        module.lines.len()
                    ),
                );
            }
        }
    }
}

/// The instructions of the layout, stopping at any corruption (which the function verifier
/// reports), so that module checks never loop or index out of range.
fn layout_insts(func: &Function) -> Vec<Inst> {
    let mut seen_blocks = HashSet::new();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for block in func.layout.blocks() {
        if !seen_blocks.insert(block) {
            break;
        }
        for inst in func.layout.block_insts(block) {
            if !seen.insert(inst) || !func.dfg.inst_is_valid(inst) {
                break;
            }
            out.push(inst);
        }
    }
    out
}

fn mem_base(data: &InstructionData) -> Option<Value> {
    match *data {
        InstructionData::Load { base, .. }
        | InstructionData::Store { base, .. }
        | InstructionData::Atomic { base, .. }
        | InstructionData::CmpXchg { base, .. } => Some(base),
        _ => None,
    }
}

fn mem_offset(data: &InstructionData) -> i32 {
    match *data {
        InstructionData::Load { offset, .. }
        | InstructionData::Store { offset, .. }
        | InstructionData::Atomic { offset, .. }
        | InstructionData::CmpXchg { offset, .. } => offset,
        _ => 0,
    }
}

struct FunctionVerifier<'a> {
    func: &'a Function,
    errors: Vec<VerifierError>,
    /// Blocks in layout order, each once.
    blocks: Vec<Block>,
    /// Instructions of each block, in order, each instruction once.
    block_insts: HashMap<Block, Vec<Inst>>,
    /// Position of each instruction in its block.
    inst_pos: SecondaryMap<Inst, u32>,
    inst_block: HashMap<Inst, Block>,
    /// Immediate dominators of reachable blocks (the entry maps to itself).
    idom: HashMap<Block, Block>,
}

impl<'a> FunctionVerifier<'a> {
    fn new(func: &'a Function) -> FunctionVerifier<'a> {
        FunctionVerifier {
            func,
            errors: Vec::new(),
            blocks: Vec::new(),
            block_insts: HashMap::new(),
            inst_pos: SecondaryMap::new(),
            inst_block: HashMap::new(),
            idom: HashMap::new(),
        }
    }

    fn error(&mut self, location: Location, message: impl Into<String>) {
        let inst_text = match location {
            Location::Inst(i) if self.func.dfg.inst_is_valid(i) => {
                Some(inst_to_string(self.func, i))
            }
            _ => None,
        };
        self.errors.push(VerifierError {
            function: Some(self.func.name.clone()),
            location,
            inst_text,
            message: message.into(),
        });
    }

    fn run(&mut self) {
        self.check_stack_slots();
        if !self.check_layout() {
            return;
        }
        self.check_entry();
        self.check_definitions();
        self.compute_dominators();
        let blocks = self.blocks.clone();
        for block in blocks {
            let insts = self.block_insts[&block].clone();
            for (i, &inst) in insts.iter().enumerate() {
                self.check_terminator_position(block, inst, i + 1 == insts.len());
                self.check_operands(block, inst);
                self.check_branches(inst);
                self.check_operation(inst);
            }
        }
    }

    fn check_stack_slots(&mut self) {
        for (ss, data) in self.func.stack_slots.iter() {
            if data.size == 0 || data.size > MAX_STACK_SLOT {
                self.error(
                    Location::StackSlot(ss),
                    format!("size {} is not between 1 and {MAX_STACK_SLOT}", data.size),
                );
            }
        }
    }

    /// Invariant 2 (and the emptiness part of 3); returns false when the layout is too broken
    /// to check anything else.
    fn check_layout(&mut self) -> bool {
        let func = self.func;
        let mut ok = true;
        let mut seen_blocks = HashSet::new();
        for block in func.layout.blocks() {
            if !seen_blocks.insert(block) {
                self.error(Location::Block(block), "block appears twice in the layout");
                return false;
            }
            if !func.dfg.block_is_valid(block) {
                self.error(
                    Location::Block(block),
                    "block is in the layout but not in the DFG",
                );
                ok = false;
                continue;
            }
            self.blocks.push(block);
            let mut insts = Vec::new();
            for inst in func.layout.block_insts(block) {
                if let Some(first) = self.inst_block.get(&inst).copied() {
                    self.error(
                        Location::Inst(inst),
                        format!("instruction appears in {first} and again in {block}"),
                    );
                    ok = false;
                    break;
                }
                if !func.dfg.inst_is_valid(inst) {
                    self.error(
                        Location::Inst(inst),
                        "instruction is in the layout but not in the DFG",
                    );
                    ok = false;
                    break;
                }
                if func.layout.inst_block(inst) != Some(block) {
                    self.error(
                        Location::Inst(inst),
                        format!("instruction is listed in {block} but records another block"),
                    );
                }
                self.inst_block.insert(inst, block);
                self.inst_pos[inst] = insts.len() as u32;
                insts.push(inst);
            }
            if insts.is_empty() {
                self.error(
                    Location::Block(block),
                    "block is empty (it needs a terminator)",
                );
            }
            self.block_insts.insert(block, insts);
        }
        if self.blocks.is_empty() && ok {
            self.error(Location::Function, "function has no blocks");
            return false;
        }
        ok
    }

    fn check_entry(&mut self) {
        let entry = self.blocks[0];
        let func = self.func;
        let params = func.dfg.block_params(entry);
        let types: Vec<Type> = params
            .iter()
            .map(|&v| {
                if func.dfg.value_is_valid(v) {
                    func.dfg.value_type(v)
                } else {
                    Type::I64
                }
            })
            .collect();
        if types != func.params {
            let want: Vec<String> = func.params.iter().map(|t| t.to_string()).collect();
            let got: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            self.error(
                Location::Block(entry),
                format!(
                    "entry block parameters ({}) do not match the function parameters ({})",
                    got.join(", "),
                    want.join(", ")
                ),
            );
        }
    }

    /// Invariant 4.
    fn check_definitions(&mut self) {
        let func = self.func;
        let mut seen_params = HashSet::new();
        for &block in &self.blocks.clone() {
            for (i, &v) in func.dfg.block_params(block).iter().enumerate() {
                if !func.dfg.value_is_valid(v) {
                    self.error(
                        Location::Block(block),
                        format!("parameter {v} does not exist"),
                    );
                    continue;
                }
                if !seen_params.insert(v) {
                    self.error(Location::Value(v), "value is a block parameter twice");
                }
                if func.dfg.value_def(v) != ValueDef::Param(block, i) {
                    self.error(
                        Location::Value(v),
                        format!(
                            "parameter {i} of {block} records its definition as {:?}",
                            func.dfg.value_def(v)
                        ),
                    );
                }
            }
            for &inst in &self.block_insts[&block].clone() {
                let data = func.dfg.inst(inst);
                match (data.result_type(), func.dfg.inst_result(inst)) {
                    (Some(_), None) => {
                        self.error(Location::Inst(inst), "instruction must define a value")
                    }
                    (None, Some(v)) => self.error(
                        Location::Inst(inst),
                        format!("instruction defines no value, but {v} is attached"),
                    ),
                    (Some(ty), Some(v)) => {
                        if !func.dfg.value_is_valid(v) {
                            self.error(Location::Inst(inst), format!("result {v} does not exist"));
                        } else {
                            if func.dfg.value_def(v) != ValueDef::Result(inst) {
                                self.error(
                                    Location::Inst(inst),
                                    format!(
                                        "result {v} records its definition as {:?}",
                                        func.dfg.value_def(v)
                                    ),
                                );
                            }
                            if func.dfg.value_type(v) != ty {
                                self.error(
                                    Location::Inst(inst),
                                    format!(
                                        "result {v} has type {} but the instruction gives {ty}",
                                        func.dfg.value_type(v)
                                    ),
                                );
                            }
                        }
                    }
                    (None, None) => {}
                }
            }
        }
    }

    fn successors(&self, block: Block) -> Vec<Block> {
        let Some(&last) = self.block_insts.get(&block).and_then(|i| i.last()) else {
            return Vec::new();
        };
        self.func
            .dfg
            .inst(last)
            .branch_destinations()
            .iter()
            .map(|d| d.block)
            .filter(|b| self.block_insts.contains_key(b))
            .collect()
    }

    /// The iterative dominator algorithm of Cooper, Harvey and Kennedy over reverse postorder.
    fn compute_dominators(&mut self) {
        let entry = self.blocks[0];
        // Reverse postorder by an explicit-stack depth-first search.
        let mut postorder = Vec::new();
        let mut visited = HashSet::new();
        let mut stack = vec![(entry, 0usize)];
        visited.insert(entry);
        while let Some((b, i)) = stack.pop() {
            let succs = self.successors(b);
            if i < succs.len() {
                stack.push((b, i + 1));
                let s = succs[i];
                if visited.insert(s) {
                    stack.push((s, 0));
                }
            } else {
                postorder.push(b);
            }
        }
        let rpo: Vec<Block> = postorder.iter().rev().copied().collect();
        let order: HashMap<Block, usize> = rpo.iter().enumerate().map(|(i, &b)| (b, i)).collect();
        let mut preds: HashMap<Block, Vec<Block>> = HashMap::new();
        for &b in &rpo {
            for s in self.successors(b) {
                preds.entry(s).or_default().push(b);
            }
        }
        let mut idom: HashMap<Block, Block> = HashMap::new();
        idom.insert(entry, entry);
        let mut changed = true;
        while changed {
            changed = false;
            for &b in rpo.iter().skip(1) {
                let mut new_idom: Option<Block> = None;
                for &p in preds.get(&b).map(|v| v.as_slice()).unwrap_or(&[]) {
                    if !idom.contains_key(&p) {
                        continue;
                    }
                    new_idom = Some(match new_idom {
                        None => p,
                        Some(cur) => {
                            let (mut x, mut y) = (p, cur);
                            while x != y {
                                while order[&x] > order[&y] {
                                    x = idom[&x];
                                }
                                while order[&y] > order[&x] {
                                    y = idom[&y];
                                }
                            }
                            x
                        }
                    });
                }
                if let Some(n) = new_idom {
                    if idom.get(&b) != Some(&n) {
                        idom.insert(b, n);
                        changed = true;
                    }
                }
            }
        }
        self.idom = idom;
    }

    fn is_reachable(&self, block: Block) -> bool {
        self.idom.contains_key(&block)
    }

    /// True when `a` dominates `b` (every block dominates itself). Unreachable blocks are
    /// dominated by every block.
    fn dominates(&self, a: Block, b: Block) -> bool {
        if !self.is_reachable(b) {
            return true;
        }
        let mut x = b;
        loop {
            if x == a {
                return true;
            }
            match self.idom.get(&x) {
                Some(&up) if up != x => x = up,
                _ => return false,
            }
        }
    }

    fn check_terminator_position(&mut self, block: Block, inst: Inst, last: bool) {
        let is_term = self.func.dfg.inst(inst).is_terminator();
        if last && !is_term {
            self.error(
                Location::Block(block),
                format!("block does not end in a terminator ({inst} is last)"),
            );
        } else if !last && is_term {
            self.error(Location::Inst(inst), "terminator in the middle of a block");
        }
    }

    /// Invariants 5 and 7.
    fn check_operands(&mut self, block: Block, inst: Inst) {
        let func = self.func;
        for v in func.dfg.inst(inst).args() {
            if !func.dfg.value_is_valid(v) {
                self.error(Location::Inst(inst), format!("operand {v} does not exist"));
                continue;
            }
            if func.dfg.value_type(v) != Type::I64 {
                self.error(
                    Location::Inst(inst),
                    format!("operand {v} has type {}, not i64", func.dfg.value_type(v)),
                );
            }
            match func.dfg.value_def(v) {
                ValueDef::Detached => self.error(
                    Location::Inst(inst),
                    format!("operand {v} has no definition"),
                ),
                ValueDef::Param(b, _) => {
                    if !self.block_insts.contains_key(&b) {
                        self.error(
                            Location::Inst(inst),
                            format!(
                                "operand {v} is a parameter of {b}, which is not in the layout"
                            ),
                        );
                    } else if !self.dominates(b, block) {
                        self.error(
                            Location::Inst(inst),
                            format!("operand {v} (parameter of {b}) does not dominate this use"),
                        );
                    }
                }
                ValueDef::Result(def) => match self.inst_block.get(&def).copied() {
                    None => self.error(
                        Location::Inst(inst),
                        format!("operand {v} is defined by {def}, which is not in the layout"),
                    ),
                    Some(def_block) => {
                        let ok = if def_block == block {
                            self.inst_pos[def] < self.inst_pos[inst]
                        } else {
                            self.dominates(def_block, block)
                        };
                        if !ok {
                            self.error(
                                Location::Inst(inst),
                                format!("operand {v} (defined by {def} in {def_block}) does not dominate this use"),
                            );
                        }
                    }
                },
            }
        }
    }

    /// Invariant 6 and the entry part of invariant 1.
    fn check_branches(&mut self, inst: Inst) {
        let func = self.func;
        let entry = self.blocks[0];
        for dest in func.dfg.inst(inst).branch_destinations() {
            let b = dest.block;
            if !self.block_insts.contains_key(&b) {
                self.error(
                    Location::Inst(inst),
                    format!("destination {b} is not in the layout"),
                );
                continue;
            }
            if b == entry {
                self.error(
                    Location::Inst(inst),
                    format!("branch to the entry block {b}"),
                );
            }
            let params = func.dfg.block_params(b);
            if params.len() != dest.args.len() {
                self.error(
                    Location::Inst(inst),
                    format!(
                        "{b} takes {} arguments, {} given",
                        params.len(),
                        dest.args.len()
                    ),
                );
                continue;
            }
            for (&p, &a) in params.iter().zip(&dest.args) {
                if func.dfg.value_is_valid(p)
                    && func.dfg.value_is_valid(a)
                    && func.dfg.value_type(p) != func.dfg.value_type(a)
                {
                    self.error(
                        Location::Inst(inst),
                        format!(
                            "argument {a} has type {} but parameter {p} of {b} has type {}",
                            func.dfg.value_type(a),
                            func.dfg.value_type(p)
                        ),
                    );
                }
            }
        }
    }

    /// Invariants 8 and 9.
    fn check_operation(&mut self, inst: Inst) {
        let func = self.func;
        let data = func.dfg.inst(inst);
        if let Some(ss) = data.stack_slot() {
            if !func.stack_slots.is_valid(ss) {
                self.error(
                    Location::Inst(inst),
                    format!("stack slot {ss} is not declared"),
                );
            }
        }
        match data {
            InstructionData::Endian { bits, .. } if !matches!(bits, 16 | 32 | 64) => {
                self.error(Location::Inst(inst), format!("byte swap of {bits} bits"));
            }
            InstructionData::Unary {
                op: UnaryOp::MovSx32,
                width: Width::W32,
                ..
            } => self.error(
                Location::Inst(inst),
                "movsx32 exists only at 64 bits (use mov.w32)",
            ),
            InstructionData::Load {
                signed: true,
                size: MemSize::U64,
                ..
            } => self.error(Location::Inst(inst), "sign-extending load of 64 bits"),
            InstructionData::Atomic { op, fetch, .. } if *op == AtomicOp::Xchg && !fetch => self
                .error(
                    Location::Inst(inst),
                    "xchg always fetches: write xchg.fetch",
                ),
            InstructionData::CallHelper { args, .. } | InstructionData::Call { args, .. }
                if args.len() > MAX_CALL_ARGS =>
            {
                self.error(
                    Location::Inst(inst),
                    format!("{} call arguments (at most {MAX_CALL_ARGS})", args.len()),
                )
            }
            InstructionData::StackAddr { slot, offset } if func.stack_slots.is_valid(*slot) => {
                let size = func.stack_slots[*slot].size as i64;
                if !(0..=size).contains(&(*offset as i64)) {
                    self.error(
                        Location::Inst(inst),
                        format!("offset {offset} is outside the {size}-byte slot {slot}"),
                    );
                }
            }
            _ => {}
        }
        if matches!(
            data,
            InstructionData::Atomic { .. } | InstructionData::CmpXchg { .. }
        ) {
            if let Some((region, size)) = data.memory_access() {
                if !matches!(size, MemSize::U32 | MemSize::U64) {
                    self.error(
                        Location::Inst(inst),
                        format!("atomic access of {} bits (only 32 or 64)", size.bits()),
                    );
                }
                if matches!(region, Region::Packet | Region::Ctx) {
                    self.error(Location::Inst(inst), format!("atomic access to {region}"));
                }
            }
        }
        if let (Some((Region::Stack(ss), size)), Some(base)) =
            (data.memory_access(), mem_base(data))
        {
            if func.dfg.value_is_valid(base) && func.stack_slots.is_valid(ss) {
                if let Some(InstructionData::StackAddr {
                    slot: bs,
                    offset: boff,
                }) = func.dfg.value_inst(base).map(|i| func.dfg.inst(i))
                {
                    let start = *boff as i64 + mem_offset(data) as i64;
                    let slot_size = func.stack_slots[ss].size as i64;
                    if *bs != ss {
                        self.error(
                            Location::Inst(inst),
                            format!("stack({ss}) access through an address of {bs}"),
                        );
                    } else if start < 0 || start + size.bytes() as i64 > slot_size {
                        self.error(
                            Location::Inst(inst),
                            format!(
                                "access of {} bytes at {start} is outside the {slot_size}-byte slot {ss}",
                                size.bytes()
                            ),
                        );
                    }
                }
            }
        }
    }
}
