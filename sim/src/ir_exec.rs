//! The IR executor: runs the functions of an [`ir::Module`] on the same runtime as the bytecode
//! interpreter, so that lifting and every optimization pass can be checked by execution.
//!
//! Nothing here defines what an operation computes: arithmetic, comparisons, byte swaps and
//! atomic updates come from `ir::semantics` (through [`ir::BinaryOp::eval`],
//! [`ir::UnaryOp::eval`] and [`ir::AtomicOp::apply`]), and memory, maps, helpers and the XDP
//! frame are the runtime's ([`crate::runtime`]). The executor only walks blocks and binds
//! values, so when it and the interpreter disagree on a program, the lifter or a pass changed
//! the program's meaning.
//!
//! What the executor adds is a check of the IR's memory regions: every load, store and atomic
//! carries the lifter's claim about where its pointer points ([`ir::Region`]), and the
//! executor compares that claim with the runtime region of the address actually accessed. A
//! wrong claim is a fault, so a differential run over the corpus also validates provenance
//! inference.
//!
//! Mappings between the module and the runtime, since the IR has no BPF slots or object:
//!
//! - Maps: module map `mapN` is the runtime map of the same name (the runtime is built from the
//!   object the module was lifted from). A module map the runtime does not have is an error
//!   before the run starts.
//! - Stack: every function activation gets its own 512-byte frame (`REGION_STACK + depth`, as
//!   the interpreter's frames), and the function's stack slots are laid out in it from the
//!   top down in slot order, each aligned to 8 bytes when they all fit that way and packed
//!   otherwise. A `stack(ssN)` access must fall inside slot `ssN` of the current frame.
//! - Tail calls: a program array holds program indices (into `Object::programs`); index `p`
//!   runs `module.programs[p].func`. A module lifted with the whole object lists its programs
//!   in object order, so the two agree; for a module holding fewer programs, a tail call to a
//!   program it lacks is a fault, as the interpreter faults on an invalid target. The target
//!   runs in the caller's frame, as the kernel reuses the frame, and its return value is the
//!   return value of the function that made the tail call.
//! - Function addresses (`func_addr fnN`): `REGION_FUNC + N`. The interpreter uses the BPF slot
//!   of the function instead; no helper the runtime models consumes such an address.
//! - Memory mode ([`run_ir_with_memory`]): the conformance buffer stands for both the context
//!   and the data it holds, so `ctx` and `packet` accesses may reach it.
//!
//! Counting: the instruction budget ([`crate::runtime::RuntimeConfig::insn_budget`]) counts IR
//! instructions, terminators included, and `XdpOutcome::insns_executed` reports that count;
//! it is not comparable with the interpreter's count of BPF instructions.

// The workspace-wide error type `Diagnostic` is returned by value, as every stage does.
#![allow(clippy::result_large_err)]

use crate::runtime::helpers::{self, HelperOutcome};
use crate::runtime::memory::{
    make_addr, split_addr, Fault, Region as MemRegion, MAX_CALL_FRAMES, REGION_FUNC, REGION_MEM,
    REGION_STACK, STACK_SIZE,
};
use crate::runtime::{ExecState, Runtime, RuntimeConfig, XdpInput, XdpOutcome};
use cranelift_entity::EntityRef;
use frontend::Diagnostic;
use ir::semantics::{compare, sign_extend, truncate};
use ir::{Block, FuncRef, Function, Inst, InstructionData, MapRef, Module, Region, Type, Value};

/// The helper id of `bpf_tail_call`, which the `tail_call` instruction stands for.
const HELPER_TAIL_CALL: i32 = 12;

/// Runs function `entry` of `module` as an XDP program on one packet, like
/// [`crate::interp::run_xdp`] runs the bytecode it was lifted from.
pub fn run_xdp_ir(
    module: &Module,
    entry: FuncRef,
    rt: &mut Runtime,
    input: &XdpInput,
) -> Result<XdpOutcome, Diagnostic> {
    let name = function_name(module, entry);
    let object = rt.object_name().to_string();
    let with_place = |d: Diagnostic| {
        let d = d.program(name.clone());
        if object.is_empty() {
            d
        } else {
            d.object(object.clone())
        }
    };
    if module.functions.get(entry).is_none() {
        return Err(with_place(Diagnostic::new(format!(
            "function {entry} does not exist (the module has {} functions)",
            module.functions.len()
        ))));
    }
    if let Some(p) = module.programs.iter().find(|p| p.func == entry) {
        let kind = p.kind.to_ascii_lowercase();
        if !(kind.starts_with("xdp") || kind.is_empty() || kind == "unknown") {
            return Err(with_place(Diagnostic::new(format!(
                "function `{name}` is a {} program, not an XDP program",
                p.kind
            ))));
        }
    }
    let st = ExecState::for_xdp(input).map_err(|m| with_place(Diagnostic::new(m)))?;
    let mut ex = Executor::new(module, rt, st, Mode::Xdp).map_err(with_place)?;
    let r0 = ex.run_entry(entry, ExecState::ctx_pointer(), 0)?;
    let executed = ex.executed;
    Ok(ex.st.finish_xdp(r0, executed))
}

/// Runs function `entry` of `module` in conformance mode: its first parameter points to `mem`
/// (or is 0 when `mem` is empty), its second is the length; returns the function's result.
/// Changes the function makes to `mem` are kept.
pub fn run_ir_with_memory(
    module: &Module,
    entry: FuncRef,
    mem: &mut [u8],
) -> Result<u64, Diagnostic> {
    let mut rt = Runtime::empty(RuntimeConfig::default());
    run_ir_with_memory_in(&mut rt, module, entry, mem)
}

/// [`run_ir_with_memory`] on a given runtime (for its clock, PRNG, maps and trace output).
pub fn run_ir_with_memory_in(
    rt: &mut Runtime,
    module: &Module,
    entry: FuncRef,
    mem: &mut [u8],
) -> Result<u64, Diagnostic> {
    if module.functions.get(entry).is_none() {
        return Err(Diagnostic::new(format!(
            "function {entry} does not exist (the module has {} functions)",
            module.functions.len()
        )));
    }
    let st = ExecState::new(None, mem.to_vec());
    let name = function_name(module, entry);
    let mut ex =
        Executor::new(module, rt, st, Mode::Memory).map_err(|d| d.program(name.clone()))?;
    let r1 = if mem.is_empty() {
        0
    } else {
        make_addr(REGION_MEM, 0)
    };
    let r0 = ex.run_entry(entry, r1, mem.len() as u64)?;
    mem.copy_from_slice(&ex.st.mem);
    Ok(r0)
}

fn function_name(module: &Module, func: FuncRef) -> String {
    module
        .functions
        .get(func)
        .map(|f| f.name.clone())
        .unwrap_or_else(|| func.to_string())
}

/// Which kind of run this is, for the region check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Xdp,
    Memory,
}

/// Where each stack slot of a function starts in its frame, or why the slots do not fit.
type SlotLayout = Result<Vec<u32>, String>;

/// A fault and the instruction it happened at.
struct Located {
    fault: Fault,
    func: FuncRef,
    inst: Option<Inst>,
}

struct Executor<'a> {
    module: &'a Module,
    rt: &'a mut Runtime,
    st: ExecState,
    mode: Mode,
    /// The runtime map index of every module map.
    maps: Vec<usize>,
    /// The slot layout of every function, by function index.
    slots: Vec<SlotLayout>,
    /// The program entry that started the run (or was tail-called last), for diagnostics.
    program: FuncRef,
    executed: u64,
    budget: u64,
}

/// Lays out a function's stack slots in its 512-byte frame from the top down: aligned to 8
/// bytes when everything fits that way (as clang lays out the BPF stack), packed otherwise.
fn layout_slots(func: &Function) -> SlotLayout {
    if let Some(starts) = func.stack_slot_offsets(STACK_SIZE as u32) {
        return Ok(starts);
    }
    let total = func.stack_slot_bytes();
    Err(format!(
        "the stack slots of `{}` take {total} bytes, more than the {STACK_SIZE}-byte frame",
        func.name
    ))
}

impl<'a> Executor<'a> {
    fn new(
        module: &'a Module,
        rt: &'a mut Runtime,
        st: ExecState,
        mode: Mode,
    ) -> Result<Executor<'a>, Diagnostic> {
        let mut maps = Vec::with_capacity(module.maps.len());
        for (m, decl) in module.maps.iter() {
            let runtime_maps = rt.maps();
            // The same index with the same name is the usual case; otherwise search by name.
            let found = runtime_maps
                .get(m.index())
                .filter(|s| s.def.name == decl.name)
                .map(|_| m.index())
                .or_else(|| runtime_maps.iter().position(|s| s.def.name == decl.name));
            match found {
                Some(i) => maps.push(i),
                None => {
                    return Err(Diagnostic::new(format!(
                        "module map {m} `{}` is not a map of the runtime's object",
                        decl.name
                    ))
                    .help("create the runtime from the object the module was lifted from"))
                }
            }
        }
        let budget = rt.config.insn_budget;
        Ok(Executor {
            module,
            rt,
            st,
            mode,
            maps,
            slots: module.functions.values().map(layout_slots).collect(),
            program: FuncRef::new(0),
            executed: 0,
            budget,
        })
    }

    /// Runs the entry function with r1 and r2 set (the other argument registers are 0, as in
    /// the interpreter), turning a fault into a diagnostic.
    fn run_entry(&mut self, entry: FuncRef, r1: u64, r2: u64) -> Result<u64, Diagnostic> {
        self.program = entry;
        let args = [r1, r2, 0, 0, 0];
        let n = self.module.functions[entry].params.len();
        if n > args.len() {
            return Err(self.diagnostic(Located {
                fault: Fault::new(format!(
                    "an entry function takes at most 5 parameters, `{}` takes {n}",
                    self.module.functions[entry].name
                )),
                func: entry,
                inst: None,
            }));
        }
        self.call_function(entry, &args[..n], 0)
            .map_err(|l| self.diagnostic(l))
    }

    fn diagnostic(&self, at: Located) -> Diagnostic {
        let func = self.module.functions.get(at.func);
        let program = function_name(self.module, self.program);
        let mut message = at.fault.message;
        if let Some(f) = func.filter(|_| at.func != self.program) {
            message = format!("{message} (in function `{}`)", f.name);
        }
        let mut d = Diagnostic::new(message).program(program);
        if !self.rt.object_name().is_empty() {
            d = d.object(self.rt.object_name().to_string());
        }
        if let (Some(f), Some(inst)) = (func, at.inst) {
            let loc = f.srclocs[inst];
            if !loc.is_none() {
                d = d.insn(loc.insn as usize);
                d = d.line(self.module.line(loc).map(|l| frontend::object::LineInfo {
                    insn: loc.insn as usize,
                    file: l.file.clone(),
                    line: l.line,
                    column: l.column,
                    source: l.text.clone(),
                }));
            }
        }
        match at.fault.help {
            Some(h) => d.help(h),
            None => d,
        }
    }

    /// Runs `func` with `args` in call frame `depth` and returns its result. A successful tail
    /// call replaces the function and keeps the frame.
    fn call_function(&mut self, func: FuncRef, args: &[u64], depth: usize) -> Result<u64, Located> {
        let module = self.module;
        let mut func_ref = func;
        let mut args = args.to_vec();
        'function: loop {
            let at = |fault: Fault, inst: Option<Inst>| Located {
                fault,
                func: func_ref,
                inst,
            };
            let Some(f) = module.functions.get(func_ref) else {
                return Err(at(
                    Fault::new(format!("call of function {func_ref}, which does not exist")),
                    None,
                ));
            };
            if args.len() != f.params.len() {
                return Err(at(
                    Fault::new(format!(
                        "`{}` takes {} arguments but was given {}",
                        f.name,
                        f.params.len(),
                        args.len()
                    )),
                    None,
                ));
            }
            let Some(entry) = f.entry_block() else {
                return Err(at(Fault::new(format!("`{}` has no blocks", f.name)), None));
            };
            let mut values: Vec<Option<u64>> = vec![None; f.dfg.num_values()];
            let mut block = entry;
            let mut incoming = args.clone();
            loop {
                bind_params(f, block, &incoming, &mut values).map_err(|e| at(e, None))?;
                let mut next: Option<(Block, Vec<u64>)> = None;
                for inst in f.layout.block_insts(block) {
                    self.executed += 1;
                    if self.executed > self.budget {
                        return Err(at(
                            Fault::new(format!(
                                "instruction budget of {} exceeded (an endless loop?)",
                                self.budget
                            ))
                            .help(
                                "raise RuntimeConfig::insn_budget if the program really needs more",
                            ),
                            Some(inst),
                        ));
                    }
                    match self.step(f, func_ref, depth, inst, &values) {
                        Ok(Effect::Value(v)) => set_result(f, inst, v, &mut values),
                        Ok(Effect::None) => {}
                        Ok(Effect::Branch(b, a)) => {
                            next = Some((b, a));
                            break;
                        }
                        Ok(Effect::Return(v)) => return Ok(v),
                        Ok(Effect::TailCall(target, ctx)) => {
                            self.program = target;
                            let n = module.functions.get(target).map_or(0, |t| t.params.len());
                            let mut a = vec![0u64; n];
                            if let Some(first) = a.first_mut() {
                                *first = ctx;
                            }
                            func_ref = target;
                            args = a;
                            continue 'function;
                        }
                        Err(Step::Located(l)) => return Err(l),
                        Err(Step::Fault(f)) => return Err(at(f, Some(inst))),
                    }
                }
                match next {
                    Some((b, a)) => {
                        block = b;
                        incoming = a;
                    }
                    None => {
                        return Err(at(
                            Fault::new(format!(
                                "{block} of `{}` ends without a terminator",
                                f.name
                            )),
                            f.layout.last_inst(block),
                        ))
                    }
                }
            }
        }
    }

    /// Executes one instruction.
    fn step(
        &mut self,
        f: &Function,
        func: FuncRef,
        depth: usize,
        inst: Inst,
        values: &[Option<u64>],
    ) -> Result<Effect, Step> {
        let val = |v: Value| -> Result<u64, Fault> { value(f, values, v) };
        Ok(match f.dfg.inst(inst) {
            InstructionData::Iconst { imm } => Effect::Value(*imm as u64),
            InstructionData::Binary { op, width, args } => {
                Effect::Value(op.eval(*width, val(args[0])?, val(args[1])?))
            }
            InstructionData::Unary { op, width, arg } => Effect::Value(op.eval(*width, val(*arg)?)),
            InstructionData::Endian { order, bits, arg } => {
                if !matches!(bits, 16 | 32 | 64) {
                    return Err(Fault::new(format!(
                        "byte-order conversion of {bits} bits (only 16, 32 and 64 exist)"
                    ))
                    .into());
                }
                Effect::Value(ir::semantics::byte_order(*order, *bits as u32, val(*arg)?))
            }
            InstructionData::Load {
                region,
                size,
                signed,
                base,
                offset,
            } => {
                let addr = address(val(*base)?, *offset);
                let n = size.bytes() as usize;
                self.check_region(f, func, *region, addr, n, depth)?;
                let mut v = self.rt.load(&mut self.st, addr, n)?;
                if *signed {
                    v = sign_extend(v, size.bits());
                }
                Effect::Value(v)
            }
            InstructionData::Store {
                region,
                size,
                base,
                offset,
                value,
            } => {
                let addr = address(val(*base)?, *offset);
                let n = size.bytes() as usize;
                self.check_region(f, func, *region, addr, n, depth)?;
                let v = val(*value)?;
                self.rt.store(&mut self.st, addr, n, v)?;
                Effect::None
            }
            InstructionData::Atomic {
                region,
                size,
                op,
                fetch: _,
                base,
                offset,
                value,
            } => {
                let addr = address(val(*base)?, *offset);
                let n = size.bytes() as usize;
                self.check_region(f, func, *region, addr, n, depth)?;
                let operand = val(*value)?;
                let old = self.rt.load_for_update(&mut self.st, addr, n)?;
                let new = op.apply(*size, old, operand);
                self.rt.store(&mut self.st, addr, n, new)?;
                // Without `fetch` the instruction has no result and `set_result` ignores this.
                Effect::Value(old)
            }
            InstructionData::CmpXchg {
                region,
                size,
                base,
                offset,
                expected,
                replacement,
            } => {
                let addr = address(val(*base)?, *offset);
                let n = size.bytes() as usize;
                self.check_region(f, func, *region, addr, n, depth)?;
                let (expected, replacement) = (val(*expected)?, val(*replacement)?);
                let old = self.rt.load_for_update(&mut self.st, addr, n)?;
                if truncate(expected, size.bits()) == old {
                    let new = truncate(replacement, size.bits());
                    self.rt.store(&mut self.st, addr, n, new)?;
                }
                Effect::Value(old)
            }
            InstructionData::StackAddr { slot, offset } => {
                let start = self.slot_start(f, func, *slot)?;
                let base = make_addr(REGION_STACK + depth as u32, start);
                Effect::Value(base.wrapping_add(*offset as i64 as u64))
            }
            InstructionData::MapRef { map } => {
                let m = self.runtime_map(*map)?;
                Effect::Value(self.rt.map_handle(m as i64)?)
            }
            InstructionData::MapValueAddr { map, offset } => {
                let m = self.runtime_map(*map)?;
                let Ok(offset) = u32::try_from(*offset) else {
                    return Err(Fault::new(format!(
                        "map_value_addr {map}{offset}: a negative offset into a map value"
                    ))
                    .into());
                };
                Effect::Value(self.rt.map_value_address(m as i64, offset)?)
            }
            InstructionData::FuncAddr { func } => {
                if self.module.functions.get(*func).is_none() {
                    return Err(
                        Fault::new(format!("func_addr of {func}, which does not exist")).into(),
                    );
                }
                Effect::Value(make_addr(REGION_FUNC + func.index() as u32, 0))
            }
            InstructionData::CallHelper { helper, args } => {
                if args.len() > 5 {
                    return Err(Fault::new(format!(
                        "helper call with {} arguments (helpers take at most 5)",
                        args.len()
                    ))
                    .into());
                }
                let mut regs = [0u64; 5];
                for (r, a) in regs.iter_mut().zip(args) {
                    *r = val(*a)?;
                }
                let Ok(id) = i32::try_from(*helper) else {
                    return Err(Fault::new(format!("helper id {helper} is out of range")).into());
                };
                match helpers::call(self.rt, &mut self.st, id, regs)? {
                    HelperOutcome::Return(v) => Effect::Value(v),
                    // A failed tail call leaves r0 as the verifier's unknown scalar; 0 is as
                    // good a value as any other.
                    HelperOutcome::TailCallFailed => Effect::Value(0),
                    HelperOutcome::TailCall(p) => Effect::TailCall(self.tail_target(p)?, regs[0]),
                }
            }
            InstructionData::Call { func: callee, args } => {
                let mut a = Vec::with_capacity(args.len());
                for v in args {
                    a.push(val(*v)?);
                }
                let d = depth + 1;
                if d >= MAX_CALL_FRAMES {
                    return Err(Fault::new(format!(
                        "bpf-to-bpf call nesting exceeds {MAX_CALL_FRAMES} frames"
                    ))
                    .into());
                }
                let saved_program = self.program;
                self.st.depth = d + 1;
                self.st.stacks[d].fill(0);
                let r = self.call_function(*callee, &a, d).map_err(Step::Located)?;
                self.st.depth = depth + 1;
                self.program = saved_program;
                Effect::Value(r)
            }
            InstructionData::TailCall { ctx, map, index } => {
                let m = self.runtime_map(*map)?;
                let ctx = val(*ctx)?;
                let regs = [ctx, self.rt.map_handle(m as i64)?, val(*index)?, 0, 0];
                match helpers::call(self.rt, &mut self.st, HELPER_TAIL_CALL, regs)? {
                    HelperOutcome::TailCall(p) => Effect::TailCall(self.tail_target(p)?, ctx),
                    HelperOutcome::TailCallFailed | HelperOutcome::Return(_) => Effect::None,
                }
            }
            InstructionData::Jump { dest } => {
                let mut a = Vec::with_capacity(dest.args.len());
                for v in &dest.args {
                    a.push(val(*v)?);
                }
                Effect::Branch(dest.block, a)
            }
            InstructionData::Brif {
                cond,
                width,
                args,
                dests,
            } => {
                let taken = compare(*cond, *width, val(args[0])?, val(args[1])?);
                let dest = &dests[if taken { 0 } else { 1 }];
                let mut a = Vec::with_capacity(dest.args.len());
                for v in &dest.args {
                    a.push(val(*v)?);
                }
                Effect::Branch(dest.block, a)
            }
            InstructionData::Return { value } => Effect::Return(val(*value)?),
        })
    }

    fn runtime_map(&self, map: MapRef) -> Result<usize, Fault> {
        self.maps.get(map.index()).copied().ok_or_else(|| {
            Fault::new(format!(
                "{map} is not a map of the module (it declares {})",
                self.maps.len()
            ))
        })
    }

    fn tail_target(&self, program: usize) -> Result<FuncRef, Fault> {
        self.module
            .programs
            .get(program)
            .map(|p| p.func)
            .ok_or_else(|| {
                Fault::new(format!(
                    "tail call target program {program} is not in the module (it has {} programs)",
                    self.module.programs.len()
                ))
            })
    }

    fn slot_start(&self, f: &Function, func: FuncRef, slot: ir::StackSlot) -> Result<u32, Fault> {
        let layout = match self.slots.get(func.index()) {
            Some(Ok(l)) => l,
            Some(Err(why)) => return Err(Fault::new(why.clone())),
            None => return Err(Fault::new(format!("{func} does not exist"))),
        };
        layout.get(slot.index()).copied().ok_or_else(|| {
            Fault::new(format!(
                "{slot} is not a stack slot of `{}` (it has {})",
                f.name,
                layout.len()
            ))
        })
    }

    /// Checks the lifter's region claim against the region of the address accessed.
    fn check_region(
        &self,
        f: &Function,
        func: FuncRef,
        claim: Region,
        addr: u64,
        len: usize,
        depth: usize,
    ) -> Result<(), Fault> {
        let (rid, off) = split_addr(addr);
        let actual = MemRegion::of(rid);
        let map_of_value = |n: usize| self.rt.value_region(n).map(|(m, _, _)| m);
        let claimed_map = |m: MapRef| self.maps.get(m.index()).copied();
        let ok = match (claim, actual) {
            (Region::Any, _) => true,
            (Region::Packet, MemRegion::Packet) | (Region::Ctx, MemRegion::Ctx) => true,
            (Region::Packet | Region::Ctx, MemRegion::Mem) => self.mode == Mode::Memory,
            (Region::Stack(slot), MemRegion::Stack(d)) => {
                let start = self.slot_start(f, func, slot).ok();
                let size = f.stack_slots.get(slot).map(|s| s.size as u64);
                match (start, size) {
                    (Some(start), Some(size)) if d == depth => {
                        let (lo, hi) = (start as u64, start as u64 + size);
                        off as u64 >= lo && off as u64 + len as u64 <= hi
                    }
                    _ => false,
                }
            }
            (Region::MapValue(None), MemRegion::MapValue(_) | MemRegion::Ringbuf(_)) => true,
            (Region::MapValue(Some(m)), MemRegion::MapValue(n))
            | (Region::Global(m), MemRegion::MapValue(n)) => {
                claimed_map(m).is_some() && map_of_value(n) == claimed_map(m)
            }
            (Region::MapValue(Some(m)), MemRegion::Ringbuf(n)) => {
                claimed_map(m).is_some() && self.st.ringbuf.get(n).map(|r| r.map) == claimed_map(m)
            }
            _ => false,
        };
        if ok {
            return Ok(());
        }
        Err(Fault::new(format!(
            "region mismatch: the access of {len} byte{} at {addr:#x} is annotated `{claim}` but reaches {}",
            if len == 1 { "" } else { "s" },
            self.describe(actual, off, depth)
        ))
        .help("the lifter's (or a pass's) pointer provenance for this access is wrong"))
    }

    /// A readable name for the runtime region an address falls in.
    fn describe(&self, region: MemRegion, off: u32, depth: usize) -> String {
        match region {
            MemRegion::Ctx => "the context".to_string(),
            MemRegion::Packet => "the packet buffer".to_string(),
            MemRegion::Mem => "the memory buffer".to_string(),
            MemRegion::Stack(d) if d == depth => {
                format!("offset {off} of the current stack frame")
            }
            MemRegion::Stack(d) => format!("the stack of call frame {d} (the current is {depth})"),
            MemRegion::MapHandle(m) => format!("the handle of map {m}"),
            MemRegion::Ringbuf(n) => format!("ring buffer record {n}"),
            MemRegion::Func(n) => format!("the address of function {n}"),
            MemRegion::MapValue(n) => match self.rt.value_region(n) {
                Some((m, _, _)) => format!(
                    "a value of map `{}`",
                    self.rt.maps().get(m).map_or("?", |s| s.def.name.as_str())
                ),
                None => "an unknown map value".to_string(),
            },
            MemRegion::Invalid => "no memory region".to_string(),
        }
    }
}

/// What executing one instruction did.
enum Effect {
    /// Defined the instruction's result (ignored when it has none).
    Value(u64),
    None,
    Branch(Block, Vec<u64>),
    Return(u64),
    /// A successful tail call: run this program entry with this context instead.
    TailCall(FuncRef, u64),
}

/// Why an instruction did not complete: a fault here, or one already located in a callee.
enum Step {
    Fault(Fault),
    Located(Located),
}

impl From<Fault> for Step {
    fn from(f: Fault) -> Step {
        Step::Fault(f)
    }
}

/// The address `base + offset`, with the 64-bit wrapping arithmetic of a BPF access.
fn address(base: u64, offset: i32) -> u64 {
    base.wrapping_add(offset as i64 as u64)
}

fn value(f: &Function, values: &[Option<u64>], v: Value) -> Result<u64, Fault> {
    match values.get(v.index()) {
        Some(Some(x)) => Ok(*x),
        Some(None) => Err(Fault::new(format!(
            "{v} is used before it is defined on this path through `{}`",
            f.name
        ))),
        None => Err(Fault::new(format!("{v} is not a value of `{}`", f.name))),
    }
}

fn set_result(f: &Function, inst: Inst, v: u64, values: &mut [Option<u64>]) {
    if let Some(r) = f.dfg.inst_result(inst) {
        if let Some(slot) = values.get_mut(r.index()) {
            *slot = Some(v);
        }
    }
}

/// Binds a block's parameters to the incoming arguments, all at once (the arguments were
/// evaluated before any parameter changed, which makes the assignment parallel). A parameter
/// of a narrower type than `i64` keeps the low bits of its argument.
fn bind_params(
    f: &Function,
    block: Block,
    args: &[u64],
    values: &mut [Option<u64>],
) -> Result<(), Fault> {
    if !f.dfg.block_is_valid(block) || !f.layout.is_block_inserted(block) {
        return Err(Fault::new(format!(
            "branch to {block}, which is not a block of `{}`",
            f.name
        )));
    }
    let params = f.dfg.block_params(block);
    if params.len() != args.len() {
        return Err(Fault::new(format!(
            "{block} of `{}` takes {} arguments but was given {}",
            f.name,
            params.len(),
            args.len()
        )));
    }
    for (&p, &a) in params.iter().zip(args) {
        let bits = match f.dfg.value_type(p) {
            Type::I64 => 64,
            t => t.bits(),
        };
        if let Some(slot) = values.get_mut(p.index()) {
            *slot = Some(truncate(a, bits));
        }
    }
    Ok(())
}
