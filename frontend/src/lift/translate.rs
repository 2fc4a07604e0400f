//! The instruction-by-instruction translation of a program's functions into IR.
//!
//! The analyses have decided everything that needs the whole function (blocks, provenance,
//! promoted stack pieces, block parameters); this file walks each function's blocks in reverse
//! postorder, keeps the SSA value of every variable, and emits one or a few IR instructions
//! per BPF instruction, each carrying the BPF slot and C line it came from.

use super::cfg::{self, BlockExit, Cfg};
use super::helpers::{self, helper_args, HelperArgs};
use super::provenance::{self, Env, FunctionProvenance, Prov, State};
use super::ssa::{self, Effect, VarSet};
use super::stack::{self, StackLayout};
use super::{ProgCtx, SrcLocs};
use crate::insn::{self, CallTarget, Imm64, Insn, Operand, Reg, Size};
use crate::Diagnostic;
use cranelift_entity::EntityRef;
use ir::builder::FunctionBuilder;
use ir::function::Function;
use ir::instructions::{AtomicOp, BinaryOp, Region, UnaryOp};
use ir::semantics::{self, AluOp, Width};
use ir::types::{MemSize, Type};
use ir::{Block, FuncRef, MapRef, StackSlot, Value};
use std::collections::HashMap;

/// The number of register variables (r0 to r9); promoted stack pieces follow.
const NREGS: usize = 10;

fn mem_size(size: Size) -> MemSize {
    match size {
        Size::B => MemSize::U8,
        Size::H => MemSize::U16,
        Size::W => MemSize::U32,
        Size::DW => MemSize::U64,
    }
}

fn bits(size: Size) -> u32 {
    size.bytes() as u32 * 8
}

/// What the analyses found about one function.
struct FunctionPlan<'c> {
    start: usize,
    cfg: &'c Cfg,
    prov: FunctionProvenance,
    layout: StackLayout,
    /// How many of r1 to r5 the function reads as parameters.
    nparams: usize,
}

/// Everything shared by the functions of one program.
struct ProgramPlan<'a, 'c> {
    ctx: &'a ProgCtx<'a>,
    srclocs: &'a SrcLocs,
    functions: Vec<FunctionPlan<'c>>,
    /// First slot of each function -> its index (and local `FuncRef`).
    func_index: HashMap<usize, usize>,
    returns: HashMap<usize, Prov>,
}

impl ProgramPlan<'_, '_> {
    fn env(&self) -> Env<'_> {
        Env {
            kind: self.ctx.prog.kind,
            maps: &self.ctx.obj.maps,
            returns: &self.returns,
        }
    }

    fn callee(&self, slot: usize, off: i32) -> Result<usize, Diagnostic> {
        let target = slot as i64 + 1 + off as i64;
        usize::try_from(target)
            .ok()
            .and_then(|t| self.func_index.get(&t).copied())
            .ok_or_else(|| {
                self.ctx.error(
                    slot,
                    format!("call or function address of instruction {target}, which starts no function of the program"),
                )
            })
    }
}

/// How many registers a helper call passes, and whether an unset one is an error.
fn helper_arity(id: i32) -> (usize, bool) {
    match helper_args(id) {
        HelperArgs::Fixed(n) => (n as usize, true),
        HelperArgs::Variadic => (5, false),
        HelperArgs::Unknown => (5, false),
    }
}

/// The variables instruction `insn` reads and writes, given the function's stack layout and
/// the provenance before it.
fn effect(
    insn: &Insn,
    st: &State,
    layout: &StackLayout,
    nparams_of: &dyn Fn(usize) -> usize,
    slot: usize,
) -> Effect {
    let r = |r: Reg| r.0 as usize;
    let promoted = |base: Reg, off: i16, size: Size| match st.reg(base) {
        Prov::Stack(Some(c)) => layout
            .var(c + off as i64, size.bytes() as u32)
            .map(|v| NREGS + v),
        _ => None,
    };
    let mut e = Effect::default();
    let regs = |e: &mut Vec<usize>, rs: &[Reg]| {
        for x in rs {
            if x.0 < 10 {
                e.push(r(*x));
            }
        }
    };
    match *insn {
        Insn::Alu { op, dst, src, .. } => {
            let moves = matches!(
                op,
                AluOp::Mov | AluOp::MovSx8 | AluOp::MovSx16 | AluOp::MovSx32
            );
            if !moves {
                regs(&mut e.uses, &[dst]);
            }
            if let (Operand::Reg(s), true) = (src, op != AluOp::Neg) {
                regs(&mut e.uses, &[s]);
            }
            regs(&mut e.defs, &[dst]);
        }
        Insn::Endian { dst, .. } => {
            regs(&mut e.uses, &[dst]);
            regs(&mut e.defs, &[dst]);
        }
        Insn::Imm64 { dst, .. } => regs(&mut e.defs, &[dst]),
        Insn::Load {
            size,
            dst,
            src,
            off,
            ..
        } => {
            match promoted(src, off, size) {
                Some(v) => e.uses.push(v),
                None => regs(&mut e.uses, &[src]),
            }
            regs(&mut e.defs, &[dst]);
        }
        Insn::StoreImm { size, dst, off, .. } => match promoted(dst, off, size) {
            Some(v) => e.defs.push(v),
            None => regs(&mut e.uses, &[dst]),
        },
        Insn::StoreReg {
            size,
            dst,
            src,
            off,
        } => match promoted(dst, off, size) {
            Some(v) => {
                regs(&mut e.uses, &[src]);
                e.defs.push(v);
            }
            None => regs(&mut e.uses, &[dst, src]),
        },
        Insn::Atomic {
            op,
            fetch,
            dst,
            src,
            ..
        } => {
            regs(&mut e.uses, &[dst, src]);
            if op == insn::AtomicOp::CmpXchg {
                e.uses.push(0);
                e.defs.push(0);
            } else if fetch || op == insn::AtomicOp::Xchg {
                regs(&mut e.defs, &[src]);
            }
        }
        Insn::Jmp { dst, src, .. } => {
            regs(&mut e.uses, &[dst]);
            if let Operand::Reg(s) = src {
                regs(&mut e.uses, &[s]);
            }
        }
        Insn::Exit => e.uses.push(0),
        Insn::Call(target) => {
            let n = match target {
                CallTarget::Helper(helpers::TAIL_CALL) => {
                    // A failed tail call leaves r0 as it was.
                    e.uses.extend([0, 1, 3]);
                    0
                }
                CallTarget::Helper(id) => helper_arity(id).0,
                CallTarget::Local(off) => {
                    let t = slot as i64 + 1 + off as i64;
                    usize::try_from(t).map(nparams_of).unwrap_or(5)
                }
                CallTarget::Kfunc(_) | CallTarget::Register(_) => 5,
            };
            e.uses.extend(1..=n);
            e.defs.push(0);
            e.kills.extend(1..=5);
        }
        Insn::LoadAbs { .. } | Insn::LoadInd { .. } => {
            // Rejected when translated; r6 holds the context these read implicitly.
            e.uses.push(6);
            e.defs.push(0);
            e.kills.extend(1..=5);
        }
        Insn::Ja { .. } | Insn::Imm64Tail => {}
    }
    e
}

/// Liveness of r1 to r5 at each function's entry decides how many parameters it takes;
/// callers depend on callees, so this repeats until no count grows.
fn parameter_counts(plan: &mut ProgramPlan) {
    let insns = &plan.ctx.insns;
    for _round in 0..8 {
        let counts: HashMap<usize, usize> = plan
            .functions
            .iter()
            .map(|f| (f.start, f.nparams))
            .collect();
        let env = plan.env();
        let mut new_counts = Vec::new();
        for (i, f) in plan.functions.iter().enumerate() {
            let bp = block_params_of(f, insns, &env, &|s| counts.get(&s).copied().unwrap_or(5));
            let live = (1..=5)
                .rev()
                .find(|&r| bp.live_in_entry.contains(r))
                .unwrap_or(0);
            // The program entry always takes its context in r1.
            new_counts.push(if i == 0 { 1 } else { live });
        }
        let mut changed = false;
        for (f, n) in plan.functions.iter_mut().zip(new_counts) {
            if n > f.nparams {
                f.nparams = n;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

fn block_params_of(
    f: &FunctionPlan,
    insns: &[Insn],
    env: &Env,
    nparams_of: &dyn Fn(usize) -> usize,
) -> ssa::BlockParams {
    let nvars = NREGS + f.layout.promoted.len();
    // Provenance before every slot, for the effect of memory instructions.
    let mut states: HashMap<usize, State> = HashMap::new();
    f.prov.replay(f.cfg, insns, env, |slot, _, st| {
        states.insert(slot, st.clone());
    });
    let mut entry_set = VarSet::new(nvars);
    for r in 1..=f.nparams.max(1) {
        entry_set.insert(r);
    }
    let cfg = f.cfg;
    ssa::block_params(
        cfg,
        nvars,
        &|b| cfg.slots(b, insns).collect(),
        &|slot| match states.get(&slot) {
            Some(st) => effect(&insns[slot], st, &f.layout, nparams_of, slot),
            None => Effect::default(),
        },
        &entry_set,
    )
}

/// Lifts every function of the program; index 0 is the entry, and `FuncRef`s between them
/// are their indices in the returned vector.
pub fn lift_program_functions(
    ctx: &ProgCtx,
    srclocs: &SrcLocs,
    names: &[String],
) -> Result<Vec<Function>, Diagnostic> {
    let prog = ctx.prog;
    if prog.functions.is_empty() {
        return Err(ctx.error(0, "program has no functions"));
    }
    let mut cfgs = Vec::new();
    for f in &prog.functions {
        cfgs.push(cfg::build(ctx, f.start, f.start + f.len)?);
    }
    let starts: Vec<(usize, &Cfg)> = prog
        .functions
        .iter()
        .zip(&cfgs)
        .map(|(f, c)| (f.start, c))
        .collect();
    let (provs, returns) =
        provenance::analyze_program(&starts, &ctx.insns, prog.kind, &ctx.obj.maps);
    let mut plan = ProgramPlan {
        ctx,
        srclocs,
        functions: Vec::new(),
        func_index: prog
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.start, i))
            .collect(),
        returns,
    };
    for ((start, cfg), prov) in starts.iter().zip(provs) {
        let layout = stack::layout(cfg, &ctx.insns, &plan.env(), &prov);
        plan.functions.push(FunctionPlan {
            start: *start,
            cfg,
            prov,
            layout,
            nparams: 0,
        });
    }
    parameter_counts(&mut plan);
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate().take(plan.functions.len()) {
        out.push(FunctionLifter::lift(&plan, i, name)?);
    }
    Ok(out)
}

/// The translation state of one function.
struct FunctionLifter<'p, 'a, 'c> {
    plan: &'p ProgramPlan<'a, 'c>,
    f: &'p FunctionPlan<'c>,
    params: ssa::BlockParams,
    blocks: Vec<Option<Block>>,
    /// Variable values at the end of each lifted block.
    exit_values: Vec<Option<Vec<Option<Value>>>>,
    frame: Option<(StackSlot, Value)>,
    entry_block: Block,
}

impl<'p, 'a, 'c> FunctionLifter<'p, 'a, 'c> {
    fn lift(
        plan: &'p ProgramPlan<'a, 'c>,
        index: usize,
        name: &str,
    ) -> Result<Function, Diagnostic> {
        let f = &plan.functions[index];
        let insns = &plan.ctx.insns;
        let counts: HashMap<usize, usize> = plan
            .functions
            .iter()
            .map(|f| (f.start, f.nparams))
            .collect();
        let env = plan.env();
        let params = block_params_of(f, insns, &env, &|s| counts.get(&s).copied().unwrap_or(5));
        let nparams = if index == 0 { 1 } else { f.nparams };
        let mut func = Function::new(name, vec![Type::I64; nparams]);
        let mut b = FunctionBuilder::new(&mut func);
        let entry_block = b.create_block();
        b.switch_to_block(entry_block);
        let entry_params = b.append_entry_params(entry_block);
        // Blocks go into the layout in slot order, which reads like the BPF listing.
        let cfg = f.cfg;
        let mut blocks = vec![None; cfg.blocks.len()];
        for (i, blk) in blocks.iter_mut().enumerate() {
            if !cfg.reachable[i] {
                continue;
            }
            if i == 0 && !params.merges[0] {
                *blk = Some(entry_block);
            } else {
                let nb = b.create_block();
                b.func.layout.append_block(nb);
                *blk = Some(nb);
            }
        }
        let mut lifter = FunctionLifter {
            plan,
            f,
            params,
            blocks,
            exit_values: vec![None; cfg.blocks.len()],
            frame: None,
            entry_block,
        };
        let loc = plan.srclocs.at(f.start);
        b.set_srcloc(loc);
        if f.layout.frame_size > 0 {
            lifter.frame_pointer(&mut b);
        }
        // The values on entry: the parameters in r1 upwards.
        let nvars = NREGS + f.layout.promoted.len();
        let mut entry_vals = vec![None; nvars];
        for (i, v) in entry_params.iter().enumerate() {
            entry_vals[i + 1] = Some(*v);
        }
        if lifter.params.merges[0] {
            // Some jump returns to the first instruction: the entry block only jumps there.
            let target = lifter.blocks[0].expect("block 0 is reachable");
            let args = lifter.args_for(&mut b, 0, &entry_vals, f.start);
            b.jump(target, &args);
        }
        for &blk in &cfg.rpo {
            lifter.lift_block(&mut b, blk, &entry_vals)?;
        }
        Ok(func)
    }

    /// The value of r10: the address one past the end of the function's memory slot, made
    /// once at the top of the entry block.
    fn frame_pointer(&mut self, b: &mut FunctionBuilder) -> Value {
        if let Some((_, v)) = self.frame {
            return v;
        }
        let size = self.f.layout.frame_size.max(8);
        let slot = b.create_stack_slot(size);
        let saved_loc = b.srcloc();
        let saved_pos = b.position();
        b.set_srcloc(self.plan.srclocs.at(self.f.start));
        match b.func.layout.first_inst(self.entry_block) {
            Some(first) => b.goto_before(first),
            None => b.switch_to_block(self.entry_block),
        }
        let v = b.stack_addr(slot, size as i32);
        match saved_pos {
            ir::builder::Position::End(blk) => b.switch_to_block(blk),
            ir::builder::Position::Before(i) => b.goto_before(i),
            ir::builder::Position::Nowhere => {}
        }
        b.set_srcloc(saved_loc);
        self.frame = Some((slot, v));
        v
    }

    /// Arguments for a branch to block `target`: the current values of its parameters, with
    /// a placeholder zero for a variable this path never set.
    fn args_for(
        &self,
        b: &mut FunctionBuilder,
        target: usize,
        vals: &[Option<Value>],
        _slot: usize,
    ) -> Vec<Value> {
        self.params.params[target]
            .iter()
            .map(|&v| match vals[v] {
                Some(x) => x,
                None => b.iconst(0),
            })
            .collect()
    }

    fn region(&mut self, b: &mut FunctionBuilder, p: Prov) -> Region {
        match p {
            Prov::Packet | Prov::PacketEnd => Region::Packet,
            Prov::Ctx(_) => Region::Ctx,
            Prov::Stack(_) => {
                self.frame_pointer(b);
                Region::Stack(self.frame.expect("frame made").0)
            }
            Prov::MapValue(m) => Region::MapValue(
                m.filter(|&m| (m as usize) < self.plan.ctx.obj.maps.len())
                    .map(|m| MapRef::new(m as usize)),
            ),
            Prov::Global(m, _) if (m as usize) < self.plan.ctx.obj.maps.len() => {
                Region::Global(MapRef::new(m as usize))
            }
            _ => Region::Any,
        }
    }

    fn lift_block(
        &mut self,
        b: &mut FunctionBuilder,
        blk: usize,
        entry_vals: &[Option<Value>],
    ) -> Result<(), Diagnostic> {
        let cfg = self.f.cfg;
        let ir_block = self.blocks[blk].expect("reachable blocks have IR blocks");
        b.switch_to_block(ir_block);
        let nvars = NREGS + self.f.layout.promoted.len();
        let mut vals: Vec<Option<Value>> = if self.params.merges[blk] {
            let mut v = vec![None; nvars];
            for &var in &self.params.params[blk].clone() {
                v[var] = Some(b.append_block_param(ir_block, Type::I64));
            }
            v
        } else if blk == 0 {
            entry_vals.to_vec()
        } else {
            let pred = cfg.preds[blk][0];
            self.exit_values[pred]
                .clone()
                .expect("a single predecessor comes first in reverse postorder")
        };
        let mut state = self.f.prov.entry[blk]
            .clone()
            .expect("reachable blocks have a provenance state");
        let env = self.plan.env();
        let insns = &self.plan.ctx.insns;
        for slot in cfg.slots(blk, insns) {
            b.set_srcloc(self.plan.srclocs.at(slot));
            let insn = insns[slot];
            self.translate(b, slot, &insn, &state, &mut vals)?;
            provenance::step(&mut state, slot, &insn, &env);
        }
        // The terminator.
        let block = &cfg.blocks[blk];
        b.set_srcloc(self.plan.srclocs.at(block.last));
        match block.exit {
            BlockExit::Fallthrough(s) | BlockExit::Jump(s) => {
                let args = self.args_for(b, s, &vals, block.last);
                let target = self.blocks[s].expect("successor is reachable");
                b.jump(target, &args);
            }
            BlockExit::Branch { taken, not_taken } => {
                let Insn::Jmp {
                    width,
                    cond,
                    dst,
                    src,
                    ..
                } = insns[block.last]
                else {
                    return Err(self
                        .plan
                        .ctx
                        .error(block.last, "internal: branch without a jump"));
                };
                let a = self.read(b, block.last, dst, &vals)?;
                let c = self.operand(b, block.last, src, &vals)?;
                let targs = self.args_for(b, taken, &vals, block.last);
                let fargs = self.args_for(b, not_taken, &vals, block.last);
                let t = self.blocks[taken].expect("successor is reachable");
                let fl = self.blocks[not_taken].expect("successor is reachable");
                b.brif(cond, width, a, c, t, &targs, fl, &fargs);
            }
            BlockExit::Return => {
                let r0 = self.read(b, block.last, Reg::R0, &vals)?;
                b.ret(r0);
            }
            BlockExit::FallOff => {
                return Err(self
                    .plan
                    .ctx
                    .error(block.last, "execution falls off the end of the function"));
            }
        }
        self.exit_values[blk] = Some(vals);
        Ok(())
    }

    /// The value of register `r`, which must be set on some path to `slot`.
    fn read(
        &mut self,
        b: &mut FunctionBuilder,
        slot: usize,
        r: Reg,
        vals: &[Option<Value>],
    ) -> Result<Value, Diagnostic> {
        if r == Reg::FP {
            return Ok(self.frame_pointer(b));
        }
        vals.get(r.0 as usize).copied().flatten().ok_or_else(|| {
            self.plan
                .ctx
                .error(slot, format!("{r} is read here but no path to this instruction sets it"))
                .help("the kernel verifier rejects reads of unset registers (and of r1-r5 after a call)")
        })
    }

    /// The value of register `r`, or zero when no path sets it (for registers passed
    /// implicitly, which the callee may not read).
    fn read_soft(&mut self, b: &mut FunctionBuilder, r: Reg, vals: &[Option<Value>]) -> Value {
        if r == Reg::FP {
            return self.frame_pointer(b);
        }
        match vals.get(r.0 as usize).copied().flatten() {
            Some(v) => v,
            None => b.iconst(0),
        }
    }

    fn operand(
        &mut self,
        b: &mut FunctionBuilder,
        slot: usize,
        src: Operand,
        vals: &[Option<Value>],
    ) -> Result<Value, Diagnostic> {
        match src {
            Operand::Reg(r) => self.read(b, slot, r, vals),
            Operand::Imm(i) => Ok(b.iconst(i as i64)),
        }
    }

    fn write(
        &self,
        slot: usize,
        r: Reg,
        v: Value,
        vals: &mut [Option<Value>],
    ) -> Result<(), Diagnostic> {
        if r.0 >= 10 {
            return Err(self.plan.ctx.error(slot, format!("{r} is read-only")));
        }
        vals[r.0 as usize] = Some(v);
        Ok(())
    }

    /// The promoted variable of an access through `base + off`, if any.
    /// A memory access through a frame pointer at a known offset must stay inside the
    /// 512-byte frame: the kernel verifier refuses anything else, and the IR has no memory
    /// there to give it.
    fn check_frame_access(
        &self,
        slot: usize,
        st: &State,
        base: Reg,
        off: i16,
        size: Size,
    ) -> Result<(), Diagnostic> {
        let Prov::Stack(Some(c)) = st.reg(base) else {
            return Ok(());
        };
        let at = c + off as i64;
        let frame = ir::function::MAX_STACK_SLOT as i64;
        if at >= -frame && at + size.bytes() as i64 <= 0 {
            return Ok(());
        }
        Err(self
            .plan
            .ctx
            .error(
                slot,
                format!(
                    "{}-byte stack access at r10{at:+} is outside the {frame}-byte frame",
                    size.bytes()
                ),
            )
            .help("the kernel verifier refuses it too (invalid stack access); fix the offset"))
    }

    fn promoted(&self, st: &State, base: Reg, off: i16, size: Size) -> Option<usize> {
        match st.reg(base) {
            Prov::Stack(Some(c)) => self
                .f
                .layout
                .var(c + off as i64, size.bytes() as u32)
                .map(|v| NREGS + v),
            _ => None,
        }
    }

    fn map_ref(&self, slot: usize, index: i32) -> Result<MapRef, Diagnostic> {
        usize::try_from(index)
            .ok()
            .filter(|&i| i < self.plan.ctx.obj.maps.len())
            .map(MapRef::new)
            .ok_or_else(|| {
                self.plan.ctx.error(
                    slot,
                    format!(
                        "lddw refers to map {index}, but the object has {} maps",
                        self.plan.ctx.obj.maps.len()
                    ),
                )
            })
    }

    fn translate(
        &mut self,
        b: &mut FunctionBuilder,
        slot: usize,
        insn: &Insn,
        st: &State,
        vals: &mut [Option<Value>],
    ) -> Result<(), Diagnostic> {
        let ctx = self.plan.ctx;
        match *insn {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let v = match (op, src) {
                    (AluOp::Mov, Operand::Imm(i)) => {
                        b.iconst(semantics::alu(AluOp::Mov, width, 0, i as i64 as u64) as i64)
                    }
                    (AluOp::Mov, Operand::Reg(s)) if width == Width::W64 => {
                        self.read(b, slot, s, vals)?
                    }
                    (AluOp::Mov | AluOp::MovSx8 | AluOp::MovSx16 | AluOp::MovSx32, _) => {
                        let s = self.operand(b, slot, src, vals)?;
                        let u = UnaryOp::from_alu_op(op).expect("moves are unary");
                        b.unary(u, width, s)
                    }
                    (AluOp::Neg, _) => {
                        let d = self.read(b, slot, dst, vals)?;
                        b.unary(UnaryOp::Neg, width, d)
                    }
                    _ => {
                        let d = self.read(b, slot, dst, vals)?;
                        let s = self.operand(b, slot, src, vals)?;
                        let bop = BinaryOp::from_alu_op(op).ok_or_else(|| {
                            ctx.error(slot, format!("ALU operation {op:?} has no IR form"))
                        })?;
                        b.binary(bop, width, d, s)
                    }
                };
                self.write(slot, dst, v, vals)?;
            }
            Insn::Endian { order, bits, dst } => {
                let d = self.read(b, slot, dst, vals)?;
                let v = b.endian(order, bits as u8, d);
                self.write(slot, dst, v, vals)?;
            }
            Insn::Imm64 { dst, imm } => {
                let v = match imm {
                    Imm64::Value(x) => b.iconst(x as i64),
                    Imm64::MapFd(m) | Imm64::MapIdx(m) => {
                        let m = self.map_ref(slot, m)?;
                        b.map_ref(m)
                    }
                    Imm64::MapValue { fd: m, offset } | Imm64::MapIdxValue { index: m, offset } => {
                        let m = self.map_ref(slot, m)?;
                        let off = i32::try_from(offset).map_err(|_| {
                            ctx.error(slot, format!("map value offset {offset} is too large"))
                        })?;
                        b.map_value_addr(m, off)
                    }
                    Imm64::Func(off) => {
                        let callee = self.plan.callee(slot, off)?;
                        b.func_addr(FuncRef::new(callee))
                    }
                    Imm64::BtfId { id, .. } => {
                        return Err(ctx
                            .error(slot, format!("lddw of kernel variable (BTF id {id}) is not supported by the lifter"))
                            .help("only maps, map values, functions and constants can be loaded with lddw"))
                    }
                };
                self.write(slot, dst, v, vals)?;
            }
            Insn::Imm64Tail => {}
            Insn::LoadAbs { .. } | Insn::LoadInd { .. } => {
                return Err(ctx
                    .error(slot, "legacy packet load (LD_ABS/LD_IND) has no IR form")
                    .help("these instructions are legal only in socket filters; rewrite the load with bpf_skb_load_bytes or direct packet access"));
            }
            Insn::Load {
                size,
                signed,
                dst,
                src,
                off,
            } => {
                self.check_frame_access(slot, st, src, off, size)?;
                let v = match self.promoted(st, src, off, size) {
                    Some(var) => {
                        let x = match vals[var] {
                            Some(x) => x,
                            None => b.iconst(0),
                        };
                        if signed && size != Size::DW {
                            let op = match size {
                                Size::B => UnaryOp::MovSx8,
                                Size::H => UnaryOp::MovSx16,
                                _ => UnaryOp::MovSx32,
                            };
                            b.unary(op, Width::W64, x)
                        } else {
                            x
                        }
                    }
                    None => {
                        let base = self.read(b, slot, src, vals)?;
                        let region = self.region(b, st.reg(src));
                        b.load(region, mem_size(size), signed, base, off as i32)
                    }
                };
                self.write(slot, dst, v, vals)?;
            }
            Insn::StoreImm {
                size,
                dst,
                off,
                imm,
            } => match self
                .check_frame_access(slot, st, dst, off, size)
                .map(|()| self.promoted(st, dst, off, size))?
            {
                Some(var) => {
                    let c = semantics::truncate(imm as i64 as u64, bits(size));
                    vals[var] = Some(b.iconst(c as i64));
                }
                None => {
                    let base = self.read(b, slot, dst, vals)?;
                    let region = self.region(b, st.reg(dst));
                    let c = b.iconst(imm as i64);
                    b.store(region, mem_size(size), base, off as i32, c);
                }
            },
            Insn::StoreReg {
                size,
                dst,
                src,
                off,
            } => {
                self.check_frame_access(slot, st, dst, off, size)?;
                let v = self.read(b, slot, src, vals)?;
                match self.promoted(st, dst, off, size) {
                    Some(var) => {
                        // The piece holds what memory would: the low bytes of the value.
                        let stored = match size {
                            Size::DW => v,
                            Size::W => b.unary(UnaryOp::Mov, Width::W32, v),
                            Size::H | Size::B => {
                                let mask =
                                    b.iconst(semantics::truncate(u64::MAX, bits(size)) as i64);
                                b.binary(BinaryOp::And, Width::W64, v, mask)
                            }
                        };
                        vals[var] = Some(stored);
                    }
                    None => {
                        let base = self.read(b, slot, dst, vals)?;
                        let region = self.region(b, st.reg(dst));
                        b.store(region, mem_size(size), base, off as i32, v);
                    }
                }
            }
            Insn::Atomic {
                size,
                op,
                fetch,
                dst,
                src,
                off,
            } => {
                self.check_frame_access(slot, st, dst, off, size)?;
                let base = self.read(b, slot, dst, vals)?;
                let value = self.read(b, slot, src, vals)?;
                let region = self.region(b, st.reg(dst));
                let ms = mem_size(size);
                let irop = match op {
                    insn::AtomicOp::Add => AtomicOp::Add,
                    insn::AtomicOp::Or => AtomicOp::Or,
                    insn::AtomicOp::And => AtomicOp::And,
                    insn::AtomicOp::Xor => AtomicOp::Xor,
                    insn::AtomicOp::Xchg => AtomicOp::Xchg,
                    insn::AtomicOp::CmpXchg => {
                        let expected = self.read(b, slot, Reg::R0, vals)?;
                        let old = b.cmpxchg(region, ms, base, off as i32, expected, value);
                        vals[0] = Some(old);
                        return Ok(());
                    }
                };
                let fetch = fetch || irop == AtomicOp::Xchg;
                if let Some(old) = b.atomic(region, ms, irop, fetch, base, off as i32, value) {
                    self.write(slot, src, old, vals)?;
                }
            }
            Insn::Ja { .. } | Insn::Jmp { .. } | Insn::Exit => {}
            Insn::Call(target) => {
                let r0 = match target {
                    CallTarget::Helper(helpers::TAIL_CALL) => {
                        let ctxv = self.read(b, slot, Reg::R1, vals)?;
                        let map = match st.regs[2] {
                            Prov::MapPtr(m) => {
                                let map = self.map_ref(slot, m as i32)?;
                                let def = &ctx.obj.maps[map.index()];
                                if def.map_type != crate::object::MapType::ProgArray {
                                    return Err(ctx.error(
                                        slot,
                                        format!(
                                            "tail call through map `{}`, which is a {:?} map, not a program array",
                                            def.name, def.map_type
                                        ),
                                    ).help("bpf_tail_call needs a BPF_MAP_TYPE_PROG_ARRAY map; the kernel verifier refuses this call"));
                                }
                                map
                            }
                            other => {
                                return Err(ctx.error(
                                    slot,
                                    format!("tail call through r2, which does not hold a known program array map (it holds {other:?})"),
                                ))
                            }
                        };
                        let index = self.read(b, slot, Reg(3), vals)?;
                        b.tail_call(ctxv, map, index);
                        // When the tail call fails, execution continues with r0 unchanged.
                        self.read_soft(b, Reg::R0, vals)
                    }
                    CallTarget::Helper(id) => {
                        let (n, strict) = helper_arity(id);
                        let mut args = Vec::with_capacity(n);
                        let declared = match helper_args(id) {
                            HelperArgs::Variadic => 2,
                            _ => 0,
                        };
                        let last_set = if strict {
                            n
                        } else {
                            (1..=n)
                                .rev()
                                .find(|&r| vals[r].is_some())
                                .unwrap_or(0)
                                .max(declared)
                        };
                        for r in 1..=last_set {
                            let reg = Reg(r as u8);
                            args.push(if strict || r <= declared {
                                self.read(b, slot, reg, vals).map_err(|d| {
                                    let name = format!("helper {id}");
                                    Diagnostic {
                                        message: format!("{name} takes {reg} as an argument, but {}", d.message),
                                        ..d
                                    }
                                })?
                            } else {
                                self.read_soft(b, reg, vals)
                            });
                        }
                        b.call_helper(id as u32, &args)
                    }
                    CallTarget::Local(off) => {
                        let callee = self.plan.callee(slot, off)?;
                        let n = self.plan.functions[callee].nparams;
                        let args: Vec<Value> = (1..=n)
                            .map(|r| self.read_soft(b, Reg(r as u8), vals))
                            .collect();
                        b.call(FuncRef::new(callee), &args)
                    }
                    CallTarget::Kfunc(id) => {
                        return Err(ctx
                            .error(slot, format!("call of kernel function (kfunc, BTF id {id}) is not supported by the lifter")))
                    }
                    CallTarget::Register(r) => {
                        return Err(ctx.error(
                            slot,
                            format!("indirect call through {r} (callx) is not supported by the lifter"),
                        ))
                    }
                };
                vals[0] = Some(r0);
                for v in vals.iter_mut().take(6).skip(1) {
                    *v = None;
                }
            }
        }
        Ok(())
    }
}
