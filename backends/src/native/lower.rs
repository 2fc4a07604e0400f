//! Lowering: nicc IR to Cranelift IR, one IR function to one Cranelift function, into any
//! `cranelift_module::Module` (the JIT module of `sim`, or the object module of
//! [`super::object`]).
//!
//! The IR is already SSA with block parameters, so the translation is direct: each IR block
//! becomes a Cranelift block with the same parameters, each IR value one Cranelift value.
//! Blocks are lowered in reverse postorder so that every definition is lowered before its uses
//! (the IR's layout order need not be a dominance order); unreachable blocks are left out.
//!
//! Arithmetic follows `ir::semantics` exactly, with Cranelift's native operations where they
//! agree with BPF and explicit selects where they do not: division by zero gives 0, modulo by
//! zero leaves the dividend, signed division of the minimum by -1 wraps (Cranelift would
//! trap), 32-bit operations work on the low halves and zero-extend. Shift counts need nothing:
//! Cranelift masks them to the operand width as BPF does.
//!
//! # Memory accesses
//!
//! See [`super::abi`] for pointer values and biases. Every load, store and atomic is lowered
//! by [`FnLower::access`] to one of three shapes:
//!
//! - **unchecked**: `host = addr + bias` and a plain access, where the access is proven to be
//!   in bounds: a stack access whose base is a `stack_addr` of its slot and a global-data
//!   access whose base is a `map_value_addr` of its map (the IR verifier guarantees both stay
//!   inside; invariants 9 and 13), and every packet or stack access that the caller lists in
//!   [`LowerOptions::proven_safe`] (the hook for the range analysis of `passes`);
//! - **inline check**: for the packet (`pkt_meta <= addr`, `addr + size <= pkt_end`), the
//!   current stack frame and the fields of the context, whose bounds are in the context block,
//!   a compare and a branch to the unchecked access, falling back to the runtime;
//! - **value table**: a map value (or a pointer of unknown region, and global data reached
//!   other than through `map_value_addr`) picks the entry of `ctx->value_regions` its region
//!   number names and is inline when its bytes lie within the entry's read or write limit;
//! - **runtime**: a call of `nicc_load`, `nicc_store` or `nicc_atomic`, which checks the access
//!   as the interpreter does and faults with the interpreter's message.
//!
//! A failing inline check never faults by itself: it takes the runtime path, so an access the
//! lifter gave the wrong region, or one into another frame, still does what the interpreter
//! does. Atomics take the inline path only when the host address is aligned.
//!
//! # Memory flags
//!
//! Every load and store names what it touches ([`Mem`]): fields constant for the run are
//! read-only loads Cranelift may hoist and share (the packet bias is loaded once per
//! function, not once per access); the packet bounds and the value table are reloaded only
//! after a call; program memory, the loop budget and the callback bookkeeping are separate
//! alias regions, so a packet store does not invalidate a loaded bound.

use super::abi::{self, offsets, AtomicCode, FRAME_SIZE};
use cranelift_codegen::ir::{
    self as cl, condcodes::IntCC, types, AbiParam, AliasRegionData, AtomicRmwOp, BlockArg,
    InstBuilder, MemFlagsData, Signature,
};
use cranelift_frontend::{FunctionBuilder as ClBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use frontend::Diagnostic;
use ir::instructions::InstructionData as I;
use ir::semantics::{ByteOrder, JmpCond, Width};
use ir::{BinaryOp, Block, FuncRef, Function, Inst, MapRef, MemSize, Region, UnaryOp, Value};
use std::collections::{HashMap, HashSet};

/// How helper calls are linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperLinkage {
    /// One dispatcher, `nicc_helper(ctx, id, r1..r5)` (the JIT engine).
    Dispatcher,
    /// One undefined symbol per helper, `nicc_helper_<name>(ctx, r1..r5)` (objects).
    PerHelper,
    /// `nicc_helper_<name>` for the helpers [`abi::helper_name`] names, the dispatcher for
    /// any other id (the JIT engine, which defines one entry point per named helper, so that
    /// a call goes straight to that helper's code instead of through a switch on the id).
    Named,
}

/// What the lowering may assume and how it links.
#[derive(Clone, Debug)]
pub struct LowerOptions {
    pub helpers: HelperLinkage,
    /// Packet and stack accesses proven in bounds by range analysis, by function and
    /// instruction: they are lowered without a check.
    pub proven_safe: HashSet<(FuncRef, Inst)>,
    /// Cranelift's register allocator (used where the caller builds the ISA from these
    /// options: the JIT engine).
    pub regalloc: Regalloc,
    /// Lookups whose map is known and whose key lies in the caller's stack frame call
    /// [`abi::SYM_MAP_LOOKUP`] with the map's index and the key's offset in the frame,
    /// instead of the helper with two pointer values that the host must decode and check.
    /// Only for hosts that define the callback (the JIT engine); objects never use it.
    pub frame_key_lookups: bool,
}

/// Which of Cranelift's register allocators assigns registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Regalloc {
    /// The backtracking allocator with live-range splitting (Cranelift's default).
    #[default]
    Backtracking,
    /// The single-pass allocator: quick, with more spills and moves. The benchmark's
    /// comparison point for what register allocation is worth.
    SinglePass,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions {
            helpers: HelperLinkage::Dispatcher,
            proven_safe: HashSet::new(),
            regalloc: Regalloc::Backtracking,
            frame_key_lookups: false,
        }
    }
}

/// A map type whose single value global data lives in (`BPF_MAP_TYPE_ARRAY`,
/// `BPF_MAP_TYPE_PERCPU_ARRAY`): `map_value_addr` of these reads the inline table.
fn is_direct_value_map(map_type: u32) -> bool {
    map_type == 2 || map_type == 6
}

/// `BPF_F_RDONLY_PROG`: the program may not write the map.
const BPF_F_RDONLY_PROG: u32 = 1 << 7;

/// What the lowering declared in the module.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// The native function of every IR function, indexed like `Module::functions`.
    pub functions: Vec<FuncId>,
    /// The linkage name of every IR function.
    pub names: Vec<String>,
    /// The imported symbols the code calls, sorted.
    pub imports: Vec<String>,
    /// How many accesses got each shape: (unchecked, inline check, runtime).
    pub access_counts: (usize, usize, usize),
    /// The Cranelift IR of every function, as text, before Cranelift's own optimizations.
    pub clif: Vec<String>,
}

/// The native symbol of a function: `nicc_prog_<name>` for program entries, `nicc_fn_<name>`
/// for subprograms, with every character C does not allow in a name replaced by `_`.
pub fn symbol_name(module: &ir::Module, f: FuncRef) -> String {
    let is_entry = module.programs.iter().any(|p| p.func == f);
    let name = &module.functions[f].name;
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if is_entry {
        format!("nicc_prog_{clean}")
    } else {
        format!(
            "nicc_fn_{clean}_{}",
            cranelift_codegen::entity::EntityRef::index(f)
        )
    }
}

fn module_error(e: impl std::fmt::Display, what: &str) -> Diagnostic {
    Diagnostic::new(format!("native code generation failed ({what}): {e}"))
}

/// The signature of a native function with `n` BPF parameters.
fn function_signature<M: Module>(m: &M, n: usize) -> Signature {
    let mut sig = m.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    for _ in 0..n {
        sig.params.push(AbiParam::new(types::I64));
    }
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// Stack slot offsets within the 512-byte frame, from the top down in slot order: each
/// aligned to 8 bytes when they all fit that way (as clang lays out the BPF stack), packed
/// otherwise. The first slot thus ends at the top, so the lifter's frame slot, addressed at its
/// end as r10, has the interpreter's r10 value; `sim::ir_exec` lays slots out the same way.
fn slot_offsets(func: &Function) -> Result<Vec<u32>, Diagnostic> {
    if let Some(out) = func.stack_slot_offsets(FRAME_SIZE) {
        return Ok(out);
    }
    let total = func.stack_slot_bytes();
    Err(Diagnostic::new(format!(
        "the stack slots of `{}` take {total} bytes, more than the {FRAME_SIZE}-byte BPF frame",
        func.name
    ))
    .program(func.name.clone()))
}

/// Declares and defines every function of `module` in `m`.
pub fn lower_module<M: Module>(
    m: &mut M,
    module: &ir::Module,
    options: &LowerOptions,
) -> Result<Lowered, Diagnostic> {
    if let Err(e) = ir::verifier::verify_module(module) {
        return Err(Diagnostic::new(format!(
            "the IR given to the native backend does not verify: {}",
            e.to_string().trim_end()
        )));
    }
    let mut functions = Vec::new();
    let mut names = Vec::new();
    for (f, func) in module.functions.iter() {
        let name = symbol_name(module, f);
        let is_entry = module.programs.iter().any(|p| p.func == f);
        let sig = function_signature(m, func.params.len());
        let linkage = if is_entry {
            Linkage::Export
        } else {
            Linkage::Local
        };
        let id = m
            .declare_function(&name, linkage, &sig)
            .map_err(|e| module_error(e, &name))?;
        functions.push(id);
        names.push(name);
    }
    let mut imports = HashMap::new();
    let mut counts = (0, 0, 0);
    let mut clif = Vec::new();
    let mut ctx = m.make_context();
    let mut fctx = FunctionBuilderContext::new();
    for (f, func) in module.functions.iter() {
        let idx = cranelift_codegen::entity::EntityRef::index(f);
        ctx.func.signature = function_signature(m, func.params.len());
        ctx.func.name = cl::UserFuncName::user(0, functions[idx].as_u32());
        let slots = slot_offsets(func)?;
        {
            let b = ClBuilder::new(&mut ctx.func, &mut fctx);
            let mut l = FnLower {
                m,
                module,
                options,
                fref: f,
                func,
                b,
                functions: &functions,
                imports: &mut imports,
                refs: HashMap::new(),
                values: HashMap::new(),
                blocks: HashMap::new(),
                ctxp: None,
                frame: None,
                fault_block: None,
                slots,
                rpo_index: HashMap::new(),
                current: None,
                pending_edges: Vec::new(),
                counts: &mut counts,
                companions: HashMap::new(),
                pkt_bounds: None,
            };
            l.lower()?;
            let config = l.m.target_config();
            l.b.finalize(config);
        }
        clif.push(ctx.func.display().to_string());
        m.define_function(functions[idx], &mut ctx).map_err(|e| {
            let detail = match &e {
                cranelift_module::ModuleError::Compilation(c) => format!("{c:?}"),
                other => other.to_string(),
            };
            Diagnostic::new(format!(
                "Cranelift rejected function `{}`: {detail}",
                func.name
            ))
            .program(func.name.clone())
        })?;
        m.clear_context(&mut ctx);
    }
    let mut imports: Vec<String> = imports.into_keys().collect();
    imports.sort();
    Ok(Lowered {
        functions,
        names,
        imports,
        access_counts: counts,
        clif,
    })
}

/// The kind of memory operation being lowered.
#[derive(Clone, Copy)]
enum Op {
    Load {
        signed: bool,
    },
    Store {
        value: cl::Value,
    },
    Atomic {
        code: AtomicCode,
        value: cl::Value,
        expected: cl::Value,
    },
}

/// How one memory access is lowered.
enum Shape {
    /// `host = addr + bias`, no check.
    Unchecked(cl::Value),
    /// `host = addr + bias` when `ok`, the runtime otherwise.
    Checked { ok: cl::Value, bias: cl::Value },
    /// `host = addr + bias` when both conditions hold (tested by two branches, each a
    /// compare and a conditional jump), the runtime otherwise.
    Checked2 {
        first: cl::Value,
        second: cl::Value,
        bias: cl::Value,
    },
    /// A field of the context block, when the base is the context value.
    CtxField(i32),
    /// Always the runtime.
    Runtime,
}

/// Lowers one function.
struct FnLower<'a, 'b, M: Module> {
    m: &'a mut M,
    module: &'a ir::Module,
    options: &'a LowerOptions,
    fref: FuncRef,
    func: &'a Function,
    b: ClBuilder<'b>,
    functions: &'a [FuncId],
    /// Imported callbacks, by symbol, shared by every function.
    imports: &'a mut HashMap<String, FuncId>,
    /// Callbacks and functions already referenced from this function.
    refs: HashMap<String, cl::FuncRef>,
    values: HashMap<Value, cl::Value>,
    blocks: HashMap<Block, cl::Block>,
    ctxp: Option<cl::Value>,
    /// The value of byte 0 of this function's frame, and its bias.
    frame: Option<(cl::Value, cl::Value)>,
    fault_block: Option<cl::Block>,
    slots: Vec<u32>,
    /// Position of each reachable block in reverse postorder, and the block being lowered.
    rpo_index: HashMap<Block, usize>,
    current: Option<Block>,
    /// Back-edge blocks still to fill: (edge block, target, arguments, BPF instruction).
    pending_edges: Vec<(cl::Block, cl::Block, Vec<BlockArg>, u32)>,
    counts: &'a mut (usize, usize, usize),
    /// Pointers into an array value whose host address is known: an IR value that is the
    /// result of a cached array lookup plus a constant maps to the host address of byte 0 of
    /// the value (0 when the lookup did not give one), the constant, and the map.
    companions: HashMap<Value, Companion>,
    /// `ctx->pkt_data`, `pkt_end` and `pkt_meta` as variables: loaded in the entry block and
    /// again after every call (only callbacks move them), so that every packet check and
    /// context load in between uses registers, whatever path led to it.
    pkt_bounds: Option<[cranelift_frontend::Variable; 3]>,
}

/// The host address that goes with a map-value pointer (see [`FnLower::companions`]).
#[derive(Clone, Copy, Debug)]
struct Companion {
    /// Host address of byte 0 of the value, or 0 when unknown.
    host: cl::Value,
    /// The pointer is the lookup result plus this many bytes.
    delta: i64,
    map: MapRef,
}

/// What a memory operation touches, for Cranelift's alias analysis and load motion. Memory
/// the program sees (packet, stack, map values) and each group of context fields that code or
/// host writes are distinct alias regions, so that a packet store does not force the packet
/// bounds to be loaded again and the back-edge budget does not invalidate everything else.
/// Fields the host never changes during a run (see [`abi`]) are read-only and may move: they
/// are loaded once per function, wherever Cranelift finds best.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mem {
    /// Constant for the whole run: `ctx_value`, `pkt_bias`, the device fields, every table
    /// pointer and the contents of the map-handle, global-data, function and frame tables.
    Const,
    /// Written by the host only inside callbacks: the packet bounds, the map-value table.
    Host,
    Depth,
    Fault,
    Insn,
    Budget,
    /// Memory the BPF program addresses.
    Program,
}

impl Mem {
    fn user_id(self) -> u32 {
        match self {
            Mem::Const => 0,
            Mem::Host => 1,
            Mem::Depth => 2,
            Mem::Fault => 3,
            Mem::Insn => 4,
            Mem::Budget => 5,
            Mem::Program => 6,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Mem::Const => "run constants",
            Mem::Host => "host-updated fields",
            Mem::Depth => "ctx depth",
            Mem::Fault => "ctx fault",
            Mem::Insn => "ctx insn",
            Mem::Budget => "ctx budget",
            Mem::Program => "program memory",
        }
    }
}

impl<M: Module> FnLower<'_, '_, M> {
    /// The flags of a memory operation on `what`.
    fn fl(&mut self, what: Mem) -> MemFlagsData {
        let base = MemFlagsData::new().with_notrap();
        if what == Mem::Const {
            return base.with_readonly().with_can_move();
        }
        let region = self.b.func.dfg.alias_regions.insert(AliasRegionData {
            user_id: what.user_id(),
            description: what.description().into(),
        });
        base.with_alias_region(Some(region))
    }

    fn err(&self, inst: Inst, msg: impl Into<String>) -> Diagnostic {
        let loc = self.func.srclocs[inst];
        let mut d = Diagnostic::new(msg).program(self.func.name.clone());
        if !loc.is_none() {
            d = d
                .insn(loc.insn as usize)
                .line(self.module.line(loc).map(|l| frontend::object::LineInfo {
                    insn: loc.insn as usize,
                    file: l.file.clone(),
                    line: l.line,
                    column: l.column,
                    source: l.text.clone(),
                }));
        }
        d
    }

    fn ctxp(&self) -> cl::Value {
        self.ctxp
            .expect("the context parameter is set before any instruction")
    }

    fn val(&self, inst: Inst, v: Value) -> Result<cl::Value, Diagnostic> {
        self.values
            .get(&v)
            .copied()
            .ok_or_else(|| self.err(inst, format!("{v} is used before it is lowered")))
    }

    fn def(&mut self, inst: Inst, v: cl::Value) {
        if let Some(r) = self.func.dfg.inst_result(inst) {
            self.values.insert(r, v);
        }
    }

    /// Reverse postorder of the reachable blocks.
    fn rpo(&self) -> Vec<Block> {
        let Some(entry) = self.func.entry_block() else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let mut post = Vec::new();
        let mut stack = vec![(entry, 0usize)];
        seen.insert(entry);
        while let Some((blk, i)) = stack.pop() {
            let succs = self.func.successors(blk);
            if i < succs.len() {
                stack.push((blk, i + 1));
                let s = succs[i];
                if seen.insert(s) {
                    stack.push((s, 0));
                }
            } else {
                post.push(blk);
            }
        }
        post.reverse();
        post
    }

    fn lower(&mut self) -> Result<(), Diagnostic> {
        let order = self.rpo();
        let Some(&entry) = order.first() else {
            return Err(
                Diagnostic::new(format!("function `{}` has no blocks", self.func.name))
                    .program(self.func.name.clone()),
            );
        };
        for &blk in &order {
            let cb = self.b.create_block();
            self.blocks.insert(blk, cb);
            if blk != entry {
                for &p in self.func.dfg.block_params(blk) {
                    let cp = self.b.append_block_param(cb, types::I64);
                    self.values.insert(p, cp);
                }
            }
        }
        let centry = self.blocks[&entry];
        self.b.append_block_params_for_function_params(centry);
        self.b.switch_to_block(centry);
        let params = self.b.block_params(centry).to_vec();
        self.ctxp = Some(params[0]);
        for (p, cp) in self.func.dfg.block_params(entry).iter().zip(&params[1..]) {
            self.values.insert(*p, *cp);
        }
        if self.uses_frame() {
            self.load_frame();
        }
        if self.uses_packet() {
            let vars = [
                self.b.declare_var(types::I64),
                self.b.declare_var(types::I64),
                self.b.declare_var(types::I64),
            ];
            self.pkt_bounds = Some(vars);
            self.reload_bounds();
        }
        self.rpo_index = order.iter().enumerate().map(|(i, b)| (*b, i)).collect();
        for &blk in &order {
            let cb = self.blocks[&blk];
            if blk != entry {
                self.b.switch_to_block(cb);
            }
            self.current = Some(blk);
            for inst in self.func.layout.block_insts(blk) {
                self.inst(inst)?;
            }
        }
        for (edge, target, args, insn) in std::mem::take(&mut self.pending_edges) {
            self.fill_back_edge(edge, target, &args, insn);
        }
        if let Some(fb) = self.fault_block {
            self.b.switch_to_block(fb);
            let zero = self.b.ins().iconst(types::I64, 0);
            self.b.ins().return_(&[zero]);
        }
        self.b.seal_all_blocks();
        Ok(())
    }

    fn uses_frame(&self) -> bool {
        self.func.insts().any(|i| {
            let d = self.func.dfg.inst(i);
            matches!(d, I::StackAddr { .. })
                || matches!(d.memory_access(), Some((Region::Stack(_), _)))
                || self.options.proven_safe.contains(&(self.fref, i))
        })
    }

    /// True when the function reads the packet bounds: it accesses the packet or loads from
    /// the context.
    fn uses_packet(&self) -> bool {
        self.func.insts().any(|i| {
            matches!(
                self.func.dfg.inst(i).memory_access(),
                Some((Region::Packet | Region::Ctx, _))
            )
        })
    }

    /// (Re)loads the packet bounds into their variables.
    fn reload_bounds(&mut self) {
        let Some(vars) = self.pkt_bounds else {
            return;
        };
        let ctxp = self.ctxp();
        for (var, field) in
            vars.into_iter()
                .zip([offsets::PKT_DATA, offsets::PKT_END, offsets::PKT_META])
        {
            let f = self.fl(Mem::Host);
            let v = self.b.ins().load(types::I64, f, ctxp, field);
            self.b.def_var(var, v);
        }
    }

    /// The current value of a packet bound field (`offsets::PKT_*`), from its variable, or
    /// loaded when the function has none.
    fn bound(&mut self, field: i32) -> cl::Value {
        let index = match field {
            offsets::PKT_DATA => 0,
            offsets::PKT_END => 1,
            _ => 2,
        };
        match self.pkt_bounds {
            Some(vars) => self.b.use_var(vars[index]),
            None => {
                let ctxp = self.ctxp();
                let f = self.fl(Mem::Host);
                self.b.ins().load(types::I64, f, ctxp, field)
            }
        }
    }

    /// Loads this function's frame (`ctx->frames[ctx->depth - 1]`) in the entry block.
    fn load_frame(&mut self) {
        let ctxp = self.ctxp();
        let f = self.fl(Mem::Depth);
        let depth = self.b.ins().load(types::I64, f, ctxp, offsets::DEPTH);
        let idx = self.b.ins().iadd_imm_s(depth, -1);
        let scaled = self.b.ins().ishl_imm_s(idx, 4);
        let desc = self.b.ins().iadd(ctxp, scaled);
        // Read-only but not movable: Cranelift would otherwise treat these loads as pure and
        // repeat them (with the address arithmetic) at every use instead of keeping them in a
        // register from the entry block on.
        let f = MemFlagsData::new().with_notrap().with_readonly();
        let value = self.b.ins().load(types::I64, f, desc, offsets::FRAMES);
        let bias = self.b.ins().load(types::I64, f, desc, offsets::FRAMES + 8);
        self.frame = Some((value, bias));
    }

    fn frame(&mut self) -> (cl::Value, cl::Value) {
        match self.frame {
            Some(f) => f,
            None => {
                // Every function that addresses its frame loads it in its entry block; this is
                // only reached for a function that never does, and then any frame works.
                let zero = self.b.ins().iconst(types::I64, 0);
                (zero, zero)
            }
        }
    }

    /// A reference to an imported callback (declared once per module).
    fn callback(&mut self, name: &str, nargs: usize) -> Result<cl::FuncRef, Diagnostic> {
        if let Some(r) = self.refs.get(name) {
            return Ok(*r);
        }
        let id = match self.imports.get(name) {
            Some(id) => *id,
            None => {
                let mut sig = self.m.make_signature();
                for _ in 0..nargs {
                    sig.params.push(AbiParam::new(types::I64));
                }
                sig.returns.push(AbiParam::new(types::I64));
                let id = self
                    .m
                    .declare_function(name, Linkage::Import, &sig)
                    .map_err(|e| module_error(e, name))?;
                self.imports.insert(name.to_string(), id);
                id
            }
        };
        let r = self.m.declare_func_in_func(id, self.b.func);
        self.refs.insert(name.to_string(), r);
        Ok(r)
    }

    /// The block that returns 0 after a fault; it is filled at the end of the function.
    fn fault_block(&mut self) -> cl::Block {
        if let Some(b) = self.fault_block {
            return b;
        }
        let fb = self.b.create_block();
        self.b.set_cold_block(fb);
        self.fault_block = Some(fb);
        fb
    }

    /// Records the instruction index for a callback, calls it, and leaves through the fault
    /// block if it faulted. Returns the callback's result.
    fn call_checked(&mut self, inst: Inst, callee: cl::FuncRef, args: &[cl::Value]) -> cl::Value {
        let ctxp = self.ctxp();
        let loc = self.func.srclocs[inst];
        let insn = self.b.ins().iconst(types::I64, loc.insn as i64);
        let f = self.fl(Mem::Insn);
        self.b.ins().store(f, insn, ctxp, offsets::INSN);
        let call = self.b.ins().call(callee, args);
        let r = self.b.inst_results(call)[0];
        self.check_fault();
        self.reload_bounds();
        r
    }

    fn check_fault(&mut self) {
        let ctxp = self.ctxp();
        let f = self.fl(Mem::Fault);
        let fault = self.b.ins().load(types::I64, f, ctxp, offsets::FAULT);
        let fb = self.fault_block();
        let cont = self.b.create_block();
        self.b.ins().brif(fault, fb, &[], cont, &[]);
        self.b.switch_to_block(cont);
    }

    fn inst(&mut self, inst: Inst) -> Result<(), Diagnostic> {
        let data = self.func.dfg.inst(inst).clone();
        match data {
            I::Iconst { imm } => {
                let v = self.b.ins().iconst(types::I64, imm);
                self.def(inst, v);
            }
            I::Binary { op, width, args } => {
                let a = self.val(inst, args[0])?;
                let c = self.val(inst, args[1])?;
                let v = self.binary(op, width, a, c);
                self.def(inst, v);
                self.follow_companion(inst, op, width, args);
            }
            I::Unary { op, width, arg } => {
                let a = self.val(inst, arg)?;
                let v = self.unary(op, width, a);
                self.def(inst, v);
            }
            I::Endian { order, bits, arg } => {
                let a = self.val(inst, arg)?;
                let v = self.endian(order, bits, a);
                self.def(inst, v);
            }
            I::Load {
                region,
                size,
                signed,
                base,
                offset,
            } => {
                let base = self.val(inst, base)?;
                let v = self.access(inst, region, size, base, offset, Op::Load { signed })?;
                self.def(inst, v);
            }
            I::Store {
                region,
                size,
                base,
                offset,
                value,
            } => {
                let base = self.val(inst, base)?;
                let value = self.val(inst, value)?;
                self.access(inst, region, size, base, offset, Op::Store { value })?;
            }
            I::Atomic {
                region,
                size,
                op,
                base,
                offset,
                value,
                ..
            } => {
                let base = self.val(inst, base)?;
                let value = self.val(inst, value)?;
                let op = Op::Atomic {
                    code: AtomicCode::of(op),
                    value,
                    expected: value,
                };
                let v = self.access(inst, region, size, base, offset, op)?;
                self.def(inst, v);
            }
            I::CmpXchg {
                region,
                size,
                base,
                offset,
                expected,
                replacement,
            } => {
                let base = self.val(inst, base)?;
                let expected = self.val(inst, expected)?;
                let value = self.val(inst, replacement)?;
                let op = Op::Atomic {
                    code: AtomicCode::CmpXchg,
                    value,
                    expected,
                };
                let v = self.access(inst, region, size, base, offset, op)?;
                self.def(inst, v);
            }
            I::StackAddr { slot, offset } => {
                let (value, _) = self.frame();
                let at = self.slots[cranelift_codegen::entity::EntityRef::index(slot)] as i64
                    + offset as i64;
                let v = self.b.ins().iadd_imm_s(value, at);
                self.def(inst, v);
            }
            I::MapRef { map } => {
                let v = self.table_load(offsets::MAP_HANDLES, map_index(map) * 8);
                self.def(inst, v);
            }
            I::MapValueAddr { map, offset } => {
                let v = if self.global_inline(map) && offset >= 0 && {
                    let d = &self.module.maps[map];
                    (offset as u32) < d.value_size
                } {
                    let base = self.table_load(offsets::GLOBALS, map_index(map) * 32);
                    self.b.ins().iadd_imm_s(base, offset as i64)
                } else {
                    let cb = self.callback(abi::SYM_MAP_VALUE_ADDR, 3)?;
                    let ctxp = self.ctxp();
                    let mv = self.b.ins().iconst(types::I64, map_index(map) as i64);
                    let ov = self.b.ins().iconst(types::I64, offset as i64);
                    self.call_checked(inst, cb, &[ctxp, mv, ov])
                };
                self.def(inst, v);
            }
            I::FuncAddr { func } => {
                let idx = cranelift_codegen::entity::EntityRef::index(func) as i32;
                let v = self.table_load(offsets::FUNC_VALUES, idx * 8);
                self.def(inst, v);
            }
            I::CallHelper { helper, args } if self.cached_lookup_map(helper, &args).is_some() => {
                let (v, host, map) = self.cached_lookup(inst, &args)?;
                self.def(inst, v);
                if let Some(r) = self.func.dfg.inst_result(inst) {
                    self.companions.insert(
                        r,
                        Companion {
                            host,
                            delta: 0,
                            map,
                        },
                    );
                }
            }
            I::CallHelper { helper, args }
                if self.frame_key_lookup_map(helper, &args).is_some() =>
            {
                let v = self.frame_key_lookup(inst, &args)?;
                self.def(inst, v);
            }
            I::CallHelper { helper, args } => {
                let mut vals = Vec::new();
                for a in &args {
                    vals.push(self.val(inst, *a)?);
                }
                let v = self.helper_call(inst, helper, &vals)?;
                self.def(inst, v);
            }
            I::Call { func, args } => {
                let mut vals = vec![self.ctxp()];
                for a in &args {
                    vals.push(self.val(inst, *a)?);
                }
                let enter = self.callback(abi::SYM_ENTER_CALL, 1)?;
                let ctxp = self.ctxp();
                self.call_checked(inst, enter, &[ctxp]);
                let fid = self.functions[cranelift_codegen::entity::EntityRef::index(func)];
                let name = format!("fn{}", fid.as_u32());
                let callee = match self.refs.get(&name) {
                    Some(r) => *r,
                    None => {
                        let r = self.m.declare_func_in_func(fid, self.b.func);
                        self.refs.insert(name, r);
                        r
                    }
                };
                let call = self.b.ins().call(callee, &vals);
                let r = self.b.inst_results(call)[0];
                self.check_fault();
                self.reload_bounds();
                let f = self.fl(Mem::Depth);
                let depth = self.b.ins().load(types::I64, f, ctxp, offsets::DEPTH);
                let depth = self.b.ins().iadd_imm_s(depth, -1);
                self.b.ins().store(f, depth, ctxp, offsets::DEPTH);
                self.def(inst, r);
            }
            I::TailCall { ctx, map, index } => {
                let cv = self.val(inst, ctx)?;
                let iv = self.val(inst, index)?;
                let mv = self.table_load(offsets::MAP_HANDLES, map_index(map) * 8);
                let cb = self.callback(abi::SYM_TAIL_CALL, 4)?;
                let ctxp = self.ctxp();
                let taken = self.call_checked(inst, cb, &[ctxp, cv, mv, iv]);
                let done = self.b.create_block();
                let cont = self.b.create_block();
                self.b.ins().brif(taken, done, &[], cont, &[]);
                self.b.switch_to_block(done);
                let f = self.fl(Mem::Fault);
                let r = self.b.ins().load(types::I64, f, ctxp, offsets::TAIL_RESULT);
                self.b.ins().return_(&[r]);
                self.b.switch_to_block(cont);
            }
            I::Jump { dest } => {
                let (target, args) = self.edge(inst, &dest)?;
                self.b.ins().jump(target, &args);
            }
            I::Brif {
                cond,
                width,
                args,
                dests,
            } => {
                let a = self.val(inst, args[0])?;
                let c = self.val(inst, args[1])?;
                let flag = self.compare(cond, width, a, c);
                let (t, ta) = self.edge(inst, &dests[0])?;
                let (e, ea) = self.edge(inst, &dests[1])?;
                self.b.ins().brif(flag, t, &ta, e, &ea);
            }
            I::Return { value } => {
                let v = self.val(inst, value)?;
                self.b.ins().return_(&[v]);
            }
        }
        Ok(())
    }

    /// The Cranelift destination of a branch edge. A back-edge (to a block not after the
    /// current one in reverse postorder) goes through a new block that takes one unit of loop
    /// budget, or faults with [`abi::FAULT_BUDGET`] when none is left.
    fn edge(
        &mut self,
        inst: Inst,
        dest: &ir::BlockCall,
    ) -> Result<(cl::Block, Vec<BlockArg>), Diagnostic> {
        let target = self.block(inst, dest.block)?;
        let args = self.block_args(inst, &dest.args)?;
        let back = match (self.current, self.rpo_index.get(&dest.block)) {
            (Some(cur), Some(&t)) => self.rpo_index.get(&cur).is_some_and(|&c| t <= c),
            _ => false,
        };
        if !back {
            return Ok((target, args));
        }
        // The edge block is filled at the end of the function, because the current block is
        // not finished yet and Cranelift's builder fills one block at a time.
        let edge = self.b.create_block();
        let insn = self.func.srclocs[inst].insn;
        self.pending_edges.push((edge, target, args, insn));
        Ok((edge, Vec::new()))
    }

    fn fill_back_edge(&mut self, edge: cl::Block, target: cl::Block, args: &[BlockArg], insn: u32) {
        let ctxp = self.ctxp();
        let out = self.b.create_block();
        let take = self.b.create_block();
        self.b.set_cold_block(out);
        self.b.switch_to_block(edge);
        let fb = self.fl(Mem::Budget);
        let budget = self.b.ins().load(types::I64, fb, ctxp, offsets::BUDGET);
        self.b.ins().brif(budget, take, &[], out, &[]);
        self.b.switch_to_block(take);
        let left = self.b.ins().iadd_imm_s(budget, -1);
        self.b.ins().store(fb, left, ctxp, offsets::BUDGET);
        self.b.ins().jump(target, args);
        self.b.switch_to_block(out);
        let code = self.b.ins().iconst(types::I64, abi::FAULT_BUDGET as i64);
        let ff = self.fl(Mem::Fault);
        self.b.ins().store(ff, code, ctxp, offsets::FAULT);
        let at = self.b.ins().iconst(types::I64, insn as i64);
        let fi = self.fl(Mem::Insn);
        self.b.ins().store(fi, at, ctxp, offsets::INSN);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.ins().return_(&[zero]);
    }

    fn block(&self, inst: Inst, b: Block) -> Result<cl::Block, Diagnostic> {
        self.blocks
            .get(&b)
            .copied()
            .ok_or_else(|| self.err(inst, format!("branch to {b}, which is not reachable")))
    }

    fn block_args(&self, inst: Inst, args: &[Value]) -> Result<Vec<BlockArg>, Diagnostic> {
        args.iter()
            .map(|a| self.val(inst, *a).map(BlockArg::Value))
            .collect()
    }

    /// Loads `*(u64 *)(ctx->TABLE + byte_offset)`.
    fn table_load(&mut self, table: i32, byte_offset: i32) -> cl::Value {
        let ctxp = self.ctxp();
        let f = self.fl(Mem::Const);
        let t = self.b.ins().load(types::I64, f, ctxp, table);
        self.b.ins().load(types::I64, f, t, byte_offset)
    }

    /// True when `map_value_addr` of `map` reads the globals table.
    fn global_inline(&self, map: MapRef) -> bool {
        self.module
            .maps
            .get(map)
            .is_some_and(|d| is_direct_value_map(d.map_type))
    }

    /// The array map a `bpf_map_lookup_elem` call may look up in `ctx->lookup_cache`: the
    /// map operand is a `map_ref` of an array (per-CPU or not) with 4-byte keys and few enough
    /// entries, and the function has its frame at hand for the key.
    fn cached_lookup_map(&self, helper: u32, args: &[Value]) -> Option<MapRef> {
        if helper != 1 || args.len() < 2 || self.frame.is_none() {
            return None;
        }
        let Some(I::MapRef { map }) = self.base_def(args[0]).cloned() else {
            return None;
        };
        let d = self.module.maps.get(map)?;
        (is_direct_value_map(d.map_type)
            && d.key_size == 4
            && d.max_entries <= abi::LOOKUP_CACHE_MAX_ENTRIES)
            .then_some(map)
    }

    /// `bpf_map_lookup_elem(array, key)` without a call when it can: the key read inline from
    /// the current frame, NULL for a key past `max_entries`, the cached result for a key the
    /// host has seen; the helper otherwise (a key outside the frame, a null table, a key not
    /// seen yet), which faults or answers exactly as it always does. Returns the pointer value,
    /// the host address of the value that goes with it (0 when the cache did not give one)
    /// and the map.
    fn cached_lookup(
        &mut self,
        inst: Inst,
        args: &[Value],
    ) -> Result<(cl::Value, cl::Value, MapRef), Diagnostic> {
        let map = self
            .cached_lookup_map(1, args)
            .ok_or_else(|| self.err(inst, "not a cacheable lookup"))?;
        let max_entries = self.module.maps[map].max_entries as i64;
        let handle = self.val(inst, args[0])?;
        let key = self.val(inst, args[1])?;
        let ctxp = self.ctxp();
        let (fvalue, fbias) = self.frame();
        let fc = self.fl(Mem::Const);
        let fh = self.fl(Mem::Host);
        let tables = self
            .b
            .ins()
            .load(types::I64, fc, ctxp, offsets::LOOKUP_CACHE);
        let key_off = self.b.ins().isub(key, fvalue);
        let key_ok = self.b.ins().icmp_imm_s(
            IntCC::UnsignedLessThanOrEqual,
            key_off,
            FRAME_SIZE as i64 - 4,
        );
        let have_tables = self.b.ins().icmp_imm_s(IntCC::NotEqual, tables, 0);
        let ok = self.b.ins().band(key_ok, have_tables);
        let with_tables = self.b.create_block();
        let read_key = self.b.create_block();
        let cached = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        let result = self.b.append_block_param(join, types::I64);
        let host = self.b.append_block_param(join, types::I64);
        self.b.set_cold_block(slow);
        self.b.ins().brif(ok, with_tables, &[], slow, &[]);
        self.b.switch_to_block(with_tables);
        // Not hoistable: the table pointer was only just found to be non-null.
        let table = self.b.ins().load(
            types::I64,
            MemFlagsData::new().with_notrap().with_readonly(),
            tables,
            map_index(map) * 8,
        );
        let have_table = self.b.ins().icmp_imm_s(IntCC::NotEqual, table, 0);
        self.b.ins().brif(have_table, read_key, &[], slow, &[]);
        self.b.switch_to_block(read_key);
        let host_key = self.b.ins().iadd(key, fbias);
        let fp = self.fl(Mem::Program);
        let k = self.b.ins().uload32(fp, host_key, 0);
        let in_range = self
            .b
            .ins()
            .icmp_imm_s(IntCC::UnsignedLessThan, k, max_entries);
        let null = self.b.ins().iconst(types::I64, 0);
        self.b.ins().brif(
            in_range,
            cached,
            &[],
            join,
            &[BlockArg::Value(null), BlockArg::Value(null)],
        );
        self.b.switch_to_block(cached);
        // Entry `k` is two words: the pointer value, then the host address of the value.
        let at = self.b.ins().ishl_imm_u(k, 4);
        let entry = self.b.ins().iadd(table, at);
        let v = self.b.ins().load(types::I64, fh, entry, 0);
        let h = self.b.ins().load(types::I64, fh, entry, 8);
        self.b.ins().brif(
            v,
            join,
            &[BlockArg::Value(v), BlockArg::Value(h)],
            slow,
            &[],
        );
        self.b.switch_to_block(slow);
        let r = self.helper_call(inst, 1, &[handle, key])?;
        let unknown = self.b.ins().iconst(types::I64, 0);
        self.b
            .ins()
            .jump(join, &[BlockArg::Value(r), BlockArg::Value(unknown)]);
        self.b.switch_to_block(join);
        Ok((result, host, map))
    }

    /// The map of a `bpf_map_lookup_elem` call that [`FnLower::frame_key_lookup`] lowers: the
    /// options allow it, the map operand is a `map_ref` (so its index is known here), the
    /// lookup is not one of the cached array lookups, the key fits the host's key buffer, and
    /// the function has its frame at hand to find the key in.
    fn frame_key_lookup_map(&self, helper: u32, args: &[Value]) -> Option<MapRef> {
        if !self.options.frame_key_lookups
            || helper != 1
            || args.len() < 2
            || self.frame.is_none()
            || self.cached_lookup_map(helper, args).is_some()
        {
            return None;
        }
        let Some(I::MapRef { map }) = self.base_def(args[0]).cloned() else {
            return None;
        };
        let d = self.module.maps.get(map)?;
        (d.key_size >= 1 && d.key_size <= abi::FRAME_KEY_MAX).then_some(map)
    }

    /// `bpf_map_lookup_elem(map, key)` with the key in the current frame: one compare finds
    /// the key's offset inside the frame, and [`abi::SYM_MAP_LOOKUP`] gets the map's index and
    /// that offset, so the host neither decodes a map pointer nor checks the key's region. A
    /// key anywhere else goes to the helper, which checks it and faults as it always does.
    fn frame_key_lookup(&mut self, inst: Inst, args: &[Value]) -> Result<cl::Value, Diagnostic> {
        let map = self
            .frame_key_lookup_map(1, args)
            .ok_or_else(|| self.err(inst, "not a lookup with its key in the frame"))?;
        let key_size = self.module.maps[map].key_size as i64;
        let handle = self.val(inst, args[0])?;
        let key = self.val(inst, args[1])?;
        let (fvalue, _) = self.frame();
        let key_off = self.b.ins().isub(key, fvalue);
        let in_frame = self.b.ins().icmp_imm_s(
            IntCC::UnsignedLessThanOrEqual,
            key_off,
            FRAME_SIZE as i64 - key_size,
        );
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        let result = self.b.append_block_param(join, types::I64);
        self.b.set_cold_block(slow);
        self.b.ins().brif(in_frame, fast, &[], slow, &[]);
        self.b.switch_to_block(fast);
        let cb = self.callback(abi::SYM_MAP_LOOKUP, 3)?;
        let ctxp = self.ctxp();
        let index = self.b.ins().iconst(types::I64, map_index(map) as i64);
        let r = self.call_checked(inst, cb, &[ctxp, index, key_off]);
        self.b.ins().jump(join, &[BlockArg::Value(r)]);
        self.b.switch_to_block(slow);
        let r = self.helper_call(inst, 1, &[handle, key])?;
        self.b.ins().jump(join, &[BlockArg::Value(r)]);
        self.b.switch_to_block(join);
        Ok(result)
    }

    /// Records that the result of `inst` (an add or subtract of a constant) is a companion
    /// pointer plus a constant, when one of its operands is.
    fn follow_companion(&mut self, inst: Inst, op: BinaryOp, width: Width, args: [Value; 2]) {
        if width != Width::W64 {
            return;
        }
        let constant = |l: &Self, v: Value| match l.base_def(v) {
            Some(I::Iconst { imm }) => Some(*imm),
            _ => None,
        };
        let found = match op {
            BinaryOp::Add => match (self.companions.get(&args[0]), self.companions.get(&args[1])) {
                (Some(c), None) => constant(self, args[1]).map(|k| (*c, k)),
                (None, Some(c)) => constant(self, args[0]).map(|k| (*c, k)),
                _ => None,
            },
            BinaryOp::Sub => self
                .companions
                .get(&args[0])
                .and_then(|c| constant(self, args[1]).map(|k| (*c, k.wrapping_neg()))),
            _ => None,
        };
        let (Some((c, k)), Some(r)) = (found, self.func.dfg.inst_result(inst)) else {
            return;
        };
        if let Some(delta) = c.delta.checked_add(k) {
            self.companions.insert(r, Companion { delta, ..c });
        }
    }

    /// A helper call through the linkage of the options, with unused arguments 0.
    fn helper_call(
        &mut self,
        inst: Inst,
        helper: u32,
        args: &[cl::Value],
    ) -> Result<cl::Value, Diagnostic> {
        let mut vals = args.to_vec();
        while vals.len() < 5 {
            vals.push(self.b.ins().iconst(types::I64, 0));
        }
        let ctxp = self.ctxp();
        let linkage = match self.options.helpers {
            HelperLinkage::Named if abi::helper_name(helper).is_some() => HelperLinkage::PerHelper,
            HelperLinkage::Named => HelperLinkage::Dispatcher,
            other => other,
        };
        Ok(match linkage {
            HelperLinkage::Dispatcher | HelperLinkage::Named => {
                let cb = self.callback(abi::SYM_HELPER, 7)?;
                let id = self.b.ins().iconst(types::I64, helper as i64);
                let mut all = vec![ctxp, id];
                all.extend(vals);
                self.call_checked(inst, cb, &all)
            }
            HelperLinkage::PerHelper => {
                let cb = self.callback(&abi::helper_symbol(helper), 6)?;
                let mut all = vec![ctxp];
                all.extend(vals);
                self.call_checked(inst, cb, &all)
            }
        })
    }

    // ---- Arithmetic ----

    fn narrow(&mut self, width: Width, v: cl::Value) -> cl::Value {
        match width {
            Width::W64 => v,
            Width::W32 => self.b.ins().ireduce(types::I32, v),
        }
    }

    fn widen(&mut self, width: Width, v: cl::Value) -> cl::Value {
        match width {
            Width::W64 => v,
            Width::W32 => self.b.ins().uextend(types::I64, v),
        }
    }

    fn binary(&mut self, op: BinaryOp, width: Width, a: cl::Value, c: cl::Value) -> cl::Value {
        let ty = match width {
            Width::W64 => types::I64,
            Width::W32 => types::I32,
        };
        let a = self.narrow(width, a);
        let c = self.narrow(width, c);
        let r = match op {
            BinaryOp::Add => self.b.ins().iadd(a, c),
            BinaryOp::Sub => self.b.ins().isub(a, c),
            BinaryOp::Mul => self.b.ins().imul(a, c),
            BinaryOp::Or => self.b.ins().bor(a, c),
            BinaryOp::And => self.b.ins().band(a, c),
            BinaryOp::Xor => self.b.ins().bxor(a, c),
            BinaryOp::Lsh => self.b.ins().ishl(a, c),
            BinaryOp::Rsh => self.b.ins().ushr(a, c),
            BinaryOp::Arsh => self.b.ins().sshr(a, c),
            BinaryOp::Div | BinaryOp::Mod => {
                let zero = self.b.ins().icmp_imm_s(IntCC::Equal, c, 0);
                let one = self.b.ins().iconst(ty, 1);
                let safe = self.b.ins().select(zero, one, c);
                if op == BinaryOp::Div {
                    let q = self.b.ins().udiv(a, safe);
                    let z = self.b.ins().iconst(ty, 0);
                    self.b.ins().select(zero, z, q)
                } else {
                    let r = self.b.ins().urem(a, safe);
                    self.b.ins().select(zero, a, r)
                }
            }
            BinaryOp::SDiv | BinaryOp::SMod => {
                let zero = self.b.ins().icmp_imm_s(IntCC::Equal, c, 0);
                let minus_one = self.b.ins().icmp_imm_s(IntCC::Equal, c, -1);
                let either = self.b.ins().bor(zero, minus_one);
                let one = self.b.ins().iconst(ty, 1);
                let safe = self.b.ins().select(either, one, c);
                let z = self.b.ins().iconst(ty, 0);
                if op == BinaryOp::SDiv {
                    let q = self.b.ins().sdiv(a, safe);
                    let neg = self.b.ins().ineg(a);
                    let q = self.b.ins().select(minus_one, neg, q);
                    self.b.ins().select(zero, z, q)
                } else {
                    let r = self.b.ins().srem(a, safe);
                    let r = self.b.ins().select(minus_one, z, r);
                    self.b.ins().select(zero, a, r)
                }
            }
        };
        self.widen(width, r)
    }

    fn unary(&mut self, op: UnaryOp, width: Width, a: cl::Value) -> cl::Value {
        let sx = |l: &mut Self, from: cl::Type, a: cl::Value| {
            let n = l.b.ins().ireduce(from, a);
            match width {
                Width::W64 => l.b.ins().sextend(types::I64, n),
                Width::W32 => {
                    let s = l.b.ins().sextend(types::I32, n);
                    l.b.ins().uextend(types::I64, s)
                }
            }
        };
        match op {
            UnaryOp::Neg => {
                let n = self.narrow(width, a);
                let r = self.b.ins().ineg(n);
                self.widen(width, r)
            }
            UnaryOp::Mov => {
                let n = self.narrow(width, a);
                self.widen(width, n)
            }
            UnaryOp::MovSx8 => sx(self, types::I8, a),
            UnaryOp::MovSx16 => sx(self, types::I16, a),
            UnaryOp::MovSx32 => match width {
                Width::W64 => {
                    let n = self.b.ins().ireduce(types::I32, a);
                    self.b.ins().sextend(types::I64, n)
                }
                // The 32-bit class has no 32-bit sign extension: a plain 32-bit move.
                Width::W32 => {
                    let n = self.b.ins().ireduce(types::I32, a);
                    self.b.ins().uextend(types::I64, n)
                }
            },
        }
    }

    fn endian(&mut self, order: ByteOrder, bits: u8, a: cl::Value) -> cl::Value {
        let ty = match bits {
            16 => types::I16,
            32 => types::I32,
            _ => types::I64,
        };
        let n = if ty == types::I64 {
            a
        } else {
            self.b.ins().ireduce(ty, a)
        };
        let r = match order {
            ByteOrder::ToLe => n,
            ByteOrder::ToBe | ByteOrder::Swap => self.b.ins().bswap(n),
        };
        if ty == types::I64 {
            r
        } else {
            self.b.ins().uextend(types::I64, r)
        }
    }

    fn compare(&mut self, cond: JmpCond, width: Width, a: cl::Value, c: cl::Value) -> cl::Value {
        let a = self.narrow(width, a);
        let c = self.narrow(width, c);
        let cc = match cond {
            JmpCond::Eq => IntCC::Equal,
            JmpCond::Ne => IntCC::NotEqual,
            JmpCond::Gt => IntCC::UnsignedGreaterThan,
            JmpCond::Ge => IntCC::UnsignedGreaterThanOrEqual,
            JmpCond::Lt => IntCC::UnsignedLessThan,
            JmpCond::Le => IntCC::UnsignedLessThanOrEqual,
            JmpCond::Sgt => IntCC::SignedGreaterThan,
            JmpCond::Sge => IntCC::SignedGreaterThanOrEqual,
            JmpCond::Slt => IntCC::SignedLessThan,
            JmpCond::Sle => IntCC::SignedLessThanOrEqual,
            JmpCond::Set => {
                let m = self.b.ins().band(a, c);
                return self.b.ins().icmp_imm_s(IntCC::NotEqual, m, 0);
            }
        };
        self.b.ins().icmp(cc, a, c)
    }

    // ---- Memory ----

    /// The base's defining instruction, if it is an instruction result.
    fn base_def(&self, base: Value) -> Option<&I> {
        self.func
            .dfg
            .value_inst(base)
            .map(|i| self.func.dfg.inst(i))
    }

    fn access(
        &mut self,
        inst: Inst,
        region: Region,
        size: MemSize,
        base: cl::Value,
        offset: i32,
        op: Op,
    ) -> Result<cl::Value, Diagnostic> {
        let ir_base = match self.func.dfg.inst(inst) {
            I::Load { base, .. }
            | I::Store { base, .. }
            | I::Atomic { base, .. }
            | I::CmpXchg { base, .. } => *base,
            _ => return Err(self.err(inst, "not a memory access")),
        };
        let is_write = !matches!(op, Op::Load { .. });
        let proven = self.options.proven_safe.contains(&(self.fref, inst));
        let bytes = size.bytes() as i64;
        let addr = self.b.ins().iadd_imm_s(base, offset as i64);
        let ctxp = self.ctxp();
        if let Some(c) = self.companions.get(&ir_base).copied() {
            let at = c.delta.checked_add(offset as i64);
            let value_size = self
                .module
                .maps
                .get(c.map)
                .map_or(0, |d| d.value_size as i64);
            if let Some(at) = at.filter(|at| *at >= 0 && *at + bytes <= value_size) {
                let v = self.companion_access(inst, c.host, at, addr, size, op)?;
                return Ok(self.sign_extend(op, size, v));
            }
        }
        // Decide the shape: an unconditional host bias, or a check that yields one.
        let base_def = self.base_def(ir_base).cloned();
        let shape = match region {
            Region::Stack(ss) => {
                let (fvalue, fbias) = self.frame();
                let direct = matches!(base_def, Some(I::StackAddr { slot, .. }) if slot == ss);
                if direct || proven {
                    Shape::Unchecked(fbias)
                } else {
                    let off = self.b.ins().isub(addr, fvalue);
                    let ok = self.b.ins().icmp_imm_s(
                        IntCC::UnsignedLessThanOrEqual,
                        off,
                        FRAME_SIZE as i64 - bytes,
                    );
                    Shape::Checked { ok, bias: fbias }
                }
            }
            Region::Packet => {
                let fc = self.fl(Mem::Const);
                let bias = self.b.ins().load(types::I64, fc, ctxp, offsets::PKT_BIAS);
                if proven {
                    Shape::Unchecked(bias)
                } else {
                    let meta = self.bound(offsets::PKT_META);
                    let end = self.bound(offsets::PKT_END);
                    // `meta <= addr <= end - size`, two compares of pointer values: packet
                    // pointers share one region, so their order is that of their offsets,
                    // and `end - size` cannot wrap (`end` is a non-null pointer value far
                    // above any access size), so no `addr` near 2^64 slips through.
                    // Two branches rather than one on the conjunction: each compare then
                    // feeds its jump directly instead of being materialized as a flag.
                    let lower = self
                        .b
                        .ins()
                        .icmp(IntCC::UnsignedGreaterThanOrEqual, addr, meta);
                    let limit = self.b.ins().iadd_imm_s(end, -bytes);
                    let upper = self
                        .b
                        .ins()
                        .icmp(IntCC::UnsignedLessThanOrEqual, addr, limit);
                    Shape::Checked2 {
                        first: lower,
                        second: upper,
                        bias,
                    }
                }
            }
            Region::Global(m) => {
                let direct = matches!(base_def, Some(I::MapValueAddr { map, .. }) if map == m);
                let writable = self
                    .module
                    .maps
                    .get(m)
                    .is_some_and(|d| d.flags & BPF_F_RDONLY_PROG == 0);
                let table_ok = self.global_inline(m)
                    && matches!(base_def, Some(I::MapValueAddr { offset, .. })
                        if offset >= 0 && (offset as u32) < self.module.maps[m].value_size);
                if direct && table_ok && (writable || !is_write) {
                    let fc = self.fl(Mem::Const);
                    let t = self.b.ins().load(types::I64, fc, ctxp, offsets::GLOBALS);
                    let entry = map_index(m) * 32;
                    let bias = self.b.ins().load(types::I64, fc, t, entry + 8);
                    if is_write {
                        // The host decides whether the map is writable (`.rodata` is not).
                        let w = self.b.ins().load(types::I64, fc, t, entry + 16);
                        let ok = self.b.ins().icmp_imm_s(IntCC::NotEqual, w, 0);
                        Shape::Checked { ok, bias }
                    } else {
                        Shape::Unchecked(bias)
                    }
                } else {
                    self.value_table_shape(addr, bytes, is_write)
                }
            }
            Region::Ctx => {
                let field = match offset {
                    0 => Some(offsets::PKT_DATA),
                    4 => Some(offsets::PKT_END),
                    8 => Some(offsets::PKT_META),
                    12 => Some(offsets::INGRESS_IFINDEX),
                    16 => Some(offsets::RX_QUEUE_INDEX),
                    20 => Some(offsets::EGRESS_IFINDEX),
                    _ => None,
                };
                match (field, op, size) {
                    (Some(f), Op::Load { signed: false }, MemSize::U32) => Shape::CtxField(f),
                    _ => Shape::Runtime,
                }
            }
            Region::MapValue(_) | Region::Any => self.value_table_shape(addr, bytes, is_write),
        };
        let result = match shape {
            Shape::Unchecked(bias) => {
                self.counts.0 += 1;
                let host = self.b.ins().iadd(addr, bias);
                if let Op::Atomic { .. } = op {
                    // Atomics need an aligned host address; fall back to the runtime if not.
                    let aligned = self.aligned(host, bytes);
                    self.checked(inst, aligned, host, addr, size, op)?
                } else {
                    self.native_access(host, size, op)
                }
            }
            Shape::Checked { ok, bias } => {
                self.counts.1 += 1;
                let host = self.b.ins().iadd(addr, bias);
                let ok = if let Op::Atomic { .. } = op {
                    let aligned = self.aligned(host, bytes);
                    self.b.ins().band(ok, aligned)
                } else {
                    ok
                };
                self.checked(inst, ok, host, addr, size, op)?
            }
            Shape::CtxField(field) => {
                self.counts.1 += 1;
                let fc = self.fl(Mem::Const);
                let cv = self.b.ins().load(types::I64, fc, ctxp, offsets::CTX_VALUE);
                let ok = self.b.ins().icmp(IntCC::Equal, base, cv);
                let fast = self.b.create_block();
                let slow = self.b.create_block();
                let join = self.b.create_block();
                let r = self.b.append_block_param(join, types::I64);
                self.b.ins().brif(ok, fast, &[], slow, &[]);
                self.b.set_cold_block(slow);
                self.b.switch_to_block(fast);
                let v = if matches!(
                    field,
                    offsets::PKT_DATA | offsets::PKT_END | offsets::PKT_META
                ) {
                    self.bound(field)
                } else {
                    let fc = self.fl(Mem::Const);
                    self.b.ins().load(types::I64, fc, ctxp, field)
                };
                self.b.ins().jump(join, &[BlockArg::Value(v)]);
                self.b.switch_to_block(slow);
                let v = self.runtime_access(inst, addr, size, op)?;
                self.b.ins().jump(join, &[BlockArg::Value(v)]);
                self.b.switch_to_block(join);
                r
            }
            Shape::Checked2 {
                first,
                second,
                bias,
            } => {
                self.counts.1 += 1;
                let host = self.b.ins().iadd(addr, bias);
                let mut oks = vec![first, second];
                if let Op::Atomic { .. } = op {
                    oks.push(self.aligned(host, bytes));
                }
                self.checked_all(inst, &oks, host, addr, size, op)?
            }
            Shape::Runtime => {
                self.counts.2 += 1;
                self.runtime_access(inst, addr, size, op)?
            }
        };
        Ok(self.sign_extend(op, size, result))
    }

    /// A signed load's result sign-extended from its size; anything else as it is.
    fn sign_extend(&mut self, op: Op, size: MemSize, result: cl::Value) -> cl::Value {
        match op {
            Op::Load { signed: true } if size != MemSize::U64 => {
                let ty = mem_type(size);
                let n = self.b.ins().ireduce(ty, result);
                self.b.ins().sextend(types::I64, n)
            }
            _ => result,
        }
    }

    /// An access `at` bytes into an array value whose host address `host` a cached lookup
    /// gave (the bounds were checked against the map's value size when compiling): one
    /// plain access, as the kernel's inlined array lookup gives. When the host address is
    /// unknown (0), the access goes through the value table, and from there to the runtime.
    fn companion_access(
        &mut self,
        inst: Inst,
        host: cl::Value,
        at: i64,
        addr: cl::Value,
        size: MemSize,
        op: Op,
    ) -> Result<cl::Value, Diagnostic> {
        self.counts.0 += 1;
        let bytes = size.bytes() as i64;
        let fast = self.b.create_block();
        let table = self.b.create_block();
        let join = self.b.create_block();
        let r = self.b.append_block_param(join, types::I64);
        self.b.set_cold_block(table);
        self.b.ins().brif(host, fast, &[], table, &[]);
        self.b.switch_to_block(fast);
        let h = self.b.ins().iadd_imm_s(host, at);
        let v = if let Op::Atomic { .. } = op {
            // Atomics need an aligned host address; the runtime takes the others.
            let aligned = self.aligned(h, bytes);
            self.checked(inst, aligned, h, addr, size, op)?
        } else {
            self.native_access(h, size, op)
        };
        self.b.ins().jump(join, &[BlockArg::Value(v)]);
        self.b.switch_to_block(table);
        let (ok, bias) = self.value_table_check(addr, bytes, !matches!(op, Op::Load { .. }));
        let hv = self.b.ins().iadd(addr, bias);
        let ok = if let Op::Atomic { .. } = op {
            let aligned = self.aligned(hv, bytes);
            self.b.ins().band(ok, aligned)
        } else {
            ok
        };
        let v = self.checked(inst, ok, hv, addr, size, op)?;
        self.b.ins().jump(join, &[BlockArg::Value(v)]);
        self.b.switch_to_block(join);
        Ok(r)
    }

    /// A map-value access through `ctx->value_regions`: the region number of the pointer
    /// value picks an entry (entry 0 stands in for one out of range, which the compare then
    /// refuses), and the access is inline when it lies within the entry's limit for its
    /// direction; the bias is `entry.host - (region << 32)`, so that `addr + bias` is the
    /// host address of offset `addr & 0xffff_ffff`.
    fn value_table_shape(&mut self, addr: cl::Value, bytes: i64, is_write: bool) -> Shape {
        let (ok, bias) = self.value_table_check(addr, bytes, is_write);
        Shape::Checked { ok, bias }
    }

    /// The condition and bias of [`FnLower::value_table_shape`].
    fn value_table_check(
        &mut self,
        addr: cl::Value,
        bytes: i64,
        is_write: bool,
    ) -> (cl::Value, cl::Value) {
        let ctxp = self.ctxp();
        let fh = self.fl(Mem::Host);
        let table = self
            .b
            .ins()
            .load(types::I64, fh, ctxp, offsets::VALUE_REGIONS);
        let count = self
            .b
            .ins()
            .load(types::I64, fh, ctxp, offsets::VALUE_REGION_COUNT);
        let region = self.b.ins().ushr_imm_u(addr, 32);
        let index = self
            .b
            .ins()
            .iadd_imm_s(region, -(abi::VALUE_REGION_BASE as i64));
        let in_table = self.b.ins().icmp(IntCC::UnsignedLessThan, index, count);
        let zero = self.b.ins().iconst(types::I64, 0);
        let index = self.b.ins().select(in_table, index, zero);
        let scaled = self.b.ins().ishl_imm_u(index, 4);
        let entry = self.b.ins().iadd(table, scaled);
        let limit_at = if is_write {
            offsets::VALUE_WRITE_LIMIT
        } else {
            offsets::VALUE_READ_LIMIT
        };
        let limit = self.b.ins().uload32(fh, entry, limit_at);
        let host = self
            .b
            .ins()
            .load(types::I64, fh, entry, offsets::VALUE_HOST);
        let offset = self.b.ins().band_imm_u(addr, 0xffff_ffff_i64);
        let end = self.b.ins().iadd_imm_s(offset, bytes);
        let fits = self
            .b
            .ins()
            .icmp(IntCC::UnsignedLessThanOrEqual, end, limit);
        let ok = self.b.ins().band(in_table, fits);
        let region_base = self.b.ins().ishl_imm_u(region, 32);
        let bias = self.b.ins().isub(host, region_base);
        (ok, bias)
    }

    fn aligned(&mut self, host: cl::Value, bytes: i64) -> cl::Value {
        let low = self.b.ins().band_imm_s(host, bytes - 1);
        self.b.ins().icmp_imm_s(IntCC::Equal, low, 0)
    }

    /// `if ok { native access at host } else { runtime access at addr }`, joined.
    fn checked(
        &mut self,
        inst: Inst,
        ok: cl::Value,
        host: cl::Value,
        addr: cl::Value,
        size: MemSize,
        op: Op,
    ) -> Result<cl::Value, Diagnostic> {
        self.checked_all(inst, &[ok], host, addr, size, op)
    }

    /// `if every ok { native access at host } else { runtime access at addr }`, joined; one
    /// branch per condition.
    fn checked_all(
        &mut self,
        inst: Inst,
        oks: &[cl::Value],
        host: cl::Value,
        addr: cl::Value,
        size: MemSize,
        op: Op,
    ) -> Result<cl::Value, Diagnostic> {
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        let r = self.b.append_block_param(join, types::I64);
        self.b.set_cold_block(slow);
        for (i, ok) in oks.iter().enumerate() {
            let next = if i + 1 == oks.len() {
                fast
            } else {
                self.b.create_block()
            };
            self.b.ins().brif(*ok, next, &[], slow, &[]);
            if next != fast {
                self.b.switch_to_block(next);
            }
        }
        self.b.switch_to_block(fast);
        let v = self.native_access(host, size, op);
        self.b.ins().jump(join, &[BlockArg::Value(v)]);
        self.b.switch_to_block(slow);
        let v = self.runtime_access(inst, addr, size, op)?;
        self.b.ins().jump(join, &[BlockArg::Value(v)]);
        self.b.switch_to_block(join);
        Ok(r)
    }

    /// The access itself at a host address; loads zero-extend, stores give 0, atomics give the
    /// old contents zero-extended.
    fn native_access(&mut self, host: cl::Value, size: MemSize, op: Op) -> cl::Value {
        let f = self.fl(Mem::Program);
        match op {
            Op::Load { .. } => match size {
                MemSize::U8 => self.b.ins().uload8(types::I64, f, host, 0),
                MemSize::U16 => self.b.ins().uload16(types::I64, f, host, 0),
                MemSize::U32 => self.b.ins().uload32(f, host, 0),
                MemSize::U64 => self.b.ins().load(types::I64, f, host, 0),
            },
            Op::Store { value } => {
                match size {
                    MemSize::U8 => self.b.ins().istore8(f, value, host, 0),
                    MemSize::U16 => self.b.ins().istore16(f, value, host, 0),
                    MemSize::U32 => self.b.ins().istore32(f, value, host, 0),
                    MemSize::U64 => self.b.ins().store(f, value, host, 0),
                };
                self.b.ins().iconst(types::I64, 0)
            }
            Op::Atomic {
                code,
                value,
                expected,
            } => {
                let ty = mem_type(size);
                let narrow = |l: &mut Self, v: cl::Value| {
                    if ty == types::I64 {
                        v
                    } else {
                        l.b.ins().ireduce(ty, v)
                    }
                };
                let x = narrow(self, value);
                let old = match code {
                    AtomicCode::CmpXchg => {
                        let e = narrow(self, expected);
                        self.b.ins().atomic_cas(f, host, e, x)
                    }
                    _ => {
                        let rmw = match code {
                            AtomicCode::Add => AtomicRmwOp::Add,
                            AtomicCode::Or => AtomicRmwOp::Or,
                            AtomicCode::And => AtomicRmwOp::And,
                            AtomicCode::Xor => AtomicRmwOp::Xor,
                            _ => AtomicRmwOp::Xchg,
                        };
                        self.b.ins().atomic_rmw(ty, f, rmw, host, x)
                    }
                };
                if ty == types::I64 {
                    old
                } else {
                    self.b.ins().uextend(types::I64, old)
                }
            }
        }
    }

    fn runtime_access(
        &mut self,
        inst: Inst,
        addr: cl::Value,
        size: MemSize,
        op: Op,
    ) -> Result<cl::Value, Diagnostic> {
        let ctxp = self.ctxp();
        let sz = self.b.ins().iconst(types::I64, size.bytes() as i64);
        Ok(match op {
            Op::Load { .. } => {
                let cb = self.callback(abi::SYM_LOAD, 3)?;
                self.call_checked(inst, cb, &[ctxp, addr, sz])
            }
            Op::Store { value } => {
                let cb = self.callback(abi::SYM_STORE, 4)?;
                self.call_checked(inst, cb, &[ctxp, addr, sz, value])
            }
            Op::Atomic {
                code,
                value,
                expected,
            } => {
                let cb = self.callback(abi::SYM_ATOMIC, 6)?;
                let c = self.b.ins().iconst(types::I64, code as i64);
                self.call_checked(inst, cb, &[ctxp, addr, sz, c, value, expected])
            }
        })
    }
}

fn mem_type(size: MemSize) -> cl::Type {
    match size {
        MemSize::U8 => types::I8,
        MemSize::U16 => types::I16,
        MemSize::U32 => types::I32,
        MemSize::U64 => types::I64,
    }
}

fn map_index(m: MapRef) -> i32 {
    cranelift_codegen::entity::EntityRef::index(m) as i32
}
