//! Instruction selection: IR instructions to BPF instructions, given a register allocation.
//!
//! Every IR instruction maps to the BPF instruction that computes it, plus the moves, spill
//! loads and stores, and rematerializations the allocation asks for. The selector never
//! reorders instructions or changes how a pointer is computed: pointer arithmetic stays on a
//! register holding the pointer (a 64-bit `mov` copies a pointer together with its type in the
//! verifier), comparisons keep their operands (a packet pointer against `data_end`), and a
//! helper's result is copied from `r0` once, so its NULL check still applies to it.
//!
//! Block parameters are resolved on edges: a `jump` does its moves before jumping; a `brif`
//! does the false edge's moves after the conditional jump and sends the true edge, when it has
//! moves, through a trampoline placed at the end of the function. Moves are sequentialized as
//! a parallel copy, with `r0` breaking cycles.

use super::branches::{Label, MachInsn};
use super::layout::LinearOrder;
use super::regalloc::{Allocation, Loc, Remat};
use frontend::insn::{AtomicOp as BpfAtomic, CallTarget, Imm64, Insn, Operand, Reg, Size};
use ir::semantics::{AluOp, JmpCond, Width};
use ir::{
    AtomicOp, BinaryOp, Block, BlockCall, Function, Inst, InstructionData, MemSize, UnaryOp, Value,
};
use std::collections::{HashMap, HashSet};

/// Why selection failed, at which instruction.
pub struct SelectError {
    pub message: String,
    pub inst: Option<Inst>,
}

/// The `bpf_tail_call` helper id.
const HELPER_TAIL_CALL: i32 = 12;

/// Selects the code of one function.
pub fn select(
    func: &Function,
    order: &LinearOrder,
    alloc: &Allocation,
) -> Result<Vec<MachInsn>, SelectError> {
    let mut s = Selector {
        func,
        order,
        alloc,
        out: Vec::new(),
        deferred: Vec::new(),
        return_stubs: HashMap::new(),
        next_label: func.dfg.num_blocks() as Label,
        occupancy: occupancy(func, order, alloc),
    };
    s.run()?;
    let mut out = s.out;
    out.extend(s.deferred);
    Ok(out)
}

/// For every instruction number, the registers held by values live at it (early or late).
fn occupancy(func: &Function, order: &LinearOrder, alloc: &Allocation) -> Vec<HashSet<Reg>> {
    let total = order.number.len();
    let _ = func;
    let mut occ = vec![HashSet::new(); total];
    for (v, loc) in &alloc.locs {
        let (Loc::Reg(r), Some(segments)) = (loc, alloc.intervals.get(v)) else {
            continue;
        };
        for &(s, e) in segments {
            let lo = (s / 2) as usize;
            let hi = ((e / 2) as usize).min(total.saturating_sub(1));
            for set in occ.iter_mut().take(hi + 1).skip(lo) {
                set.insert(*r);
            }
        }
    }
    occ
}

struct Selector<'a> {
    func: &'a Function,
    order: &'a LinearOrder,
    alloc: &'a Allocation,
    out: Vec<MachInsn>,
    /// Trampolines for `brif` true edges with moves, emitted after the function body.
    deferred: Vec<MachInsn>,
    /// The label of the shared `r0 = c; exit` stub for each constant `c` an edge returns.
    return_stubs: HashMap<i64, Label>,
    next_label: Label,
    occupancy: Vec<HashSet<Reg>>,
}

/// The source of one move of a parallel copy.
type Move = (Loc, Loc);

fn label_of(b: Block) -> Label {
    b.as_u32()
}

fn size_of(size: MemSize) -> Size {
    match size {
        MemSize::U8 => Size::B,
        MemSize::U16 => Size::H,
        MemSize::U32 => Size::W,
        MemSize::U64 => Size::DW,
    }
}

fn mov(dst: Reg, src: Reg) -> MachInsn {
    MachInsn::Insn(Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src: Operand::Reg(src),
    })
}

fn spill_store(off: i16, src: Reg) -> MachInsn {
    MachInsn::Insn(Insn::StoreReg {
        size: Size::DW,
        dst: Reg::FP,
        src,
        off,
    })
}

fn spill_load(dst: Reg, off: i16) -> MachInsn {
    MachInsn::Insn(Insn::Load {
        size: Size::DW,
        signed: false,
        dst,
        src: Reg::FP,
        off,
    })
}

/// The condition with its operands swapped: `a cond b` equals `b swap(cond) a`.
fn swap_cond(c: JmpCond) -> JmpCond {
    match c {
        JmpCond::Gt => JmpCond::Lt,
        JmpCond::Lt => JmpCond::Gt,
        JmpCond::Ge => JmpCond::Le,
        JmpCond::Le => JmpCond::Ge,
        JmpCond::Sgt => JmpCond::Slt,
        JmpCond::Slt => JmpCond::Sgt,
        JmpCond::Sge => JmpCond::Sle,
        JmpCond::Sle => JmpCond::Sge,
        other => other,
    }
}

/// The negated condition, when BPF has one (`jset` has none). The one definition the
/// selector and the machine-code clean-ups ([`super::hoist_moves`], [`super::shared_edges`])
/// share.
pub(super) fn invert_cond(c: JmpCond) -> Option<JmpCond> {
    Some(match c {
        JmpCond::Eq => JmpCond::Ne,
        JmpCond::Ne => JmpCond::Eq,
        JmpCond::Gt => JmpCond::Le,
        JmpCond::Le => JmpCond::Gt,
        JmpCond::Ge => JmpCond::Lt,
        JmpCond::Lt => JmpCond::Ge,
        JmpCond::Sgt => JmpCond::Sle,
        JmpCond::Sle => JmpCond::Sgt,
        JmpCond::Sge => JmpCond::Slt,
        JmpCond::Slt => JmpCond::Sge,
        JmpCond::Set => return None,
    })
}

/// The shortest instruction writing the 64-bit constant `c` into `dst`: a sign-extending
/// 64-bit move, a zero-extending 32-bit move for constants in `[2^31, 2^32)` (one slot
/// instead of the two of `lddw`), or `lddw`.
fn move_constant(dst: Reg, c: i64) -> MachInsn {
    match (i32::try_from(c), u32::try_from(c)) {
        (Ok(imm), _) => MachInsn::Insn(Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst,
            src: Operand::Imm(imm),
        }),
        (Err(_), Ok(low)) => MachInsn::Insn(Insn::Alu {
            width: Width::W32,
            op: AluOp::Mov,
            dst,
            src: Operand::Imm(low as i32),
        }),
        (Err(_), Err(_)) => MachInsn::Insn(Insn::Imm64 {
            dst,
            imm: Imm64::Value(c as u64),
        }),
    }
}

/// The immediate encoding `c` as the second operand of an operation at `width`, if one
/// exists: 64-bit operations sign-extend the 32-bit immediate, 32-bit ones use its bits.
fn imm_for(width: Width, c: i64) -> Option<i32> {
    match width {
        Width::W64 => i32::try_from(c).ok(),
        Width::W32 => Some(c as u32 as i32),
    }
}

impl<'a> Selector<'a> {
    fn err(&self, inst: Inst, message: impl Into<String>) -> SelectError {
        SelectError {
            message: message.into(),
            inst: Some(inst),
        }
    }

    fn loc(&self, v: Value) -> Loc {
        // Every used value has a location; an unused one computes into the scratch register.
        self.alloc
            .locs
            .get(&v)
            .copied()
            .unwrap_or(Loc::Reg(Reg::R0))
    }

    fn emit(&mut self, m: MachInsn) {
        self.out.push(m);
    }

    fn fresh_label(&mut self) -> Label {
        self.next_label += 1;
        self.next_label
    }

    /// Puts the value of `remat` into `dst`.
    fn materialize(&self, out: &mut Vec<MachInsn>, remat: Remat, dst: Reg) {
        match remat {
            Remat::Const(c) => out.push(move_constant(dst, c)),
            Remat::MapRef(map) => out.push(MachInsn::LoadMap { dst, map }),
            Remat::MapValue(map, offset) => out.push(MachInsn::LoadMapValue {
                dst,
                map,
                offset: offset as u32,
            }),
            Remat::Func(func) => out.push(MachInsn::LoadFunc { dst, func }),
            Remat::Stack(slot, offset) => {
                let at = self.alloc.frame.slots.get(&slot).copied().unwrap_or(0) + offset;
                out.push(mov(dst, Reg::FP));
                if at != 0 {
                    out.push(MachInsn::Insn(Insn::Alu {
                        width: Width::W64,
                        op: AluOp::Add,
                        dst,
                        src: Operand::Imm(at),
                    }));
                }
            }
        }
    }

    /// Copies the value at `src` into register `dst` (nothing when it is already there).
    fn load_into(&mut self, dst: Reg, src: Loc) {
        let mut buf = Vec::new();
        self.load_into_buf(&mut buf, dst, src);
        self.out.extend(buf);
    }

    fn load_into_buf(&self, out: &mut Vec<MachInsn>, dst: Reg, src: Loc) {
        match src {
            Loc::Reg(r) if r == dst => {}
            Loc::Reg(r) => out.push(mov(dst, r)),
            Loc::Spill(off) => out.push(spill_load(dst, off)),
            Loc::Remat(remat) => self.materialize(out, remat, dst),
        }
    }

    /// A register holding `v`: its own, or `temp` after loading it there.
    fn use_reg(&mut self, v: Value, temp: Reg) -> Reg {
        match self.loc(v) {
            Loc::Reg(r) => r,
            other => {
                self.load_into(temp, other);
                temp
            }
        }
    }

    /// The register instruction `i` computes `v` into: its own, or a scratch register when
    /// it is spilled or unused.
    fn def_reg(&self, i: Inst, v: Option<Value>) -> Result<Reg, SelectError> {
        match v.and_then(|v| self.alloc.locs.get(&v)) {
            Some(Loc::Reg(r)) => Ok(*r),
            _ => self.scratch(i, &[]),
        }
    }

    /// Stores a result computed in `reg` to its spill slot, if it has one.
    fn finish_def(&mut self, v: Option<Value>, reg: Reg) {
        if let Some(Loc::Spill(off)) = v.map(|v| self.loc(v)) {
            self.emit(spill_store(off, reg));
        }
    }

    /// A scratch register free at instruction `inst` and not in `avoid`: `r0` when no value
    /// holds it there (always, unless the allocator gave `r0` to values), else the lowest
    /// free one of `r1`-`r9`.
    fn scratch(&self, inst: Inst, avoid: &[Reg]) -> Result<Reg, SelectError> {
        let n = self.order.number[&inst] as usize;
        (0..=9)
            .map(Reg)
            .find(|r| !self.occupancy[n].contains(r) && !avoid.contains(r))
            .ok_or_else(|| {
                self.err(
                    inst,
                    "no scratch register is free for an operand that lives on the stack (all of r0-r9 hold live values)",
                )
            })
    }

    /// The registers values hold at instruction `inst`.
    fn busy_at(&self, inst: Inst) -> HashSet<Reg> {
        self.occupancy[self.order.number[&inst] as usize].clone()
    }

    fn run(&mut self) -> Result<(), SelectError> {
        let blocks = self.order.blocks.clone();
        // Prologue: the function's parameters arrive in r1-r5.
        if let Some(&entry) = blocks.first() {
            let params = self.func.dfg.block_params(entry).to_vec();
            let moves: Vec<Move> = params
                .iter()
                .enumerate()
                .filter(|(_, p)| !self.alloc.unused.contains(p))
                .map(|(k, &p)| (self.loc(p), Loc::Reg(Reg(k as u8 + 1))))
                .collect();
            // Values held at the first instruction are the ones the moves must not disturb.
            let busy = self.occupancy.first().cloned().unwrap_or_default();
            let mut buf = Vec::new();
            self.parallel_move(&mut buf, moves, &busy)
                .map_err(|message| SelectError {
                    message,
                    inst: None,
                })?;
            self.out.extend(buf);
        }
        for (k, &b) in blocks.iter().enumerate() {
            self.emit(MachInsn::Label(label_of(b)));
            let next = blocks.get(k + 1).copied();
            for &i in &self.order.insts[&b].clone() {
                self.inst(i, next)?;
            }
        }
        Ok(())
    }

    fn inst(&mut self, i: Inst, next: Option<Block>) -> Result<(), SelectError> {
        let dfg = &self.func.dfg;
        let data = dfg.inst(i).clone();
        let result = dfg.inst_result(i);
        let dead = result.is_some_and(|r| self.alloc.unused.contains(&r));
        match data {
            InstructionData::Iconst { .. }
            | InstructionData::MapRef { .. }
            | InstructionData::MapValueAddr { .. }
            | InstructionData::StackAddr { .. }
            | InstructionData::FuncAddr { .. } => {}
            InstructionData::Binary { .. }
            | InstructionData::Unary { .. }
            | InstructionData::Endian { .. }
            | InstructionData::Load { .. }
                if dead => {}
            InstructionData::Binary {
                op: BinaryOp::Add,
                width: Width::W64,
                args: [a, b],
            } if matches!(
                (self.loc(a), self.loc(b)),
                (Loc::Remat(Remat::Stack(..)), Loc::Remat(Remat::Const(c))) if i32::try_from(c).is_ok()
            ) =>
            {
                // A stack address plus a constant is another stack address: `r10` plus one
                // immediate, as clang writes it.
                if let (Loc::Remat(Remat::Stack(slot, off)), Loc::Remat(Remat::Const(c))) =
                    (self.loc(a), self.loc(b))
                {
                    let rd = self.def_reg(i, result)?;
                    let mut buf = Vec::new();
                    self.materialize(&mut buf, Remat::Stack(slot, off.wrapping_add(c as i32)), rd);
                    self.out.extend(buf);
                    self.finish_def(result, rd);
                }
            }
            InstructionData::Binary { op, width, args } => {
                let rd = self.def_reg(i, result)?;
                let [a, b] = args;
                let src = match self.loc(b) {
                    Loc::Remat(Remat::Const(c)) if self.imm_ok(op, width, c) => {
                        Operand::Imm(self.shift_imm(op, width, c))
                    }
                    Loc::Reg(r) => Operand::Reg(r),
                    other => {
                        let t = self.scratch(i, &[rd])?;
                        self.load_into(t, other);
                        Operand::Reg(t)
                    }
                };
                let la = self.loc(a);
                self.load_into(rd, la);
                self.emit(MachInsn::Insn(Insn::Alu {
                    width,
                    op: op.alu_op(),
                    dst: rd,
                    src,
                }));
                self.finish_def(result, rd);
            }
            InstructionData::Unary { op, width, arg } => {
                let rd = self.def_reg(i, result)?;
                match (op, self.loc(arg)) {
                    (UnaryOp::Neg, la) => {
                        self.load_into(rd, la);
                        self.emit(MachInsn::Insn(Insn::Alu {
                            width,
                            op: AluOp::Neg,
                            dst: rd,
                            src: Operand::Imm(0),
                        }));
                    }
                    (UnaryOp::Mov, Loc::Remat(Remat::Const(c))) => match imm_for(width, c) {
                        Some(imm) => self.emit(MachInsn::Insn(Insn::Alu {
                            width,
                            op: AluOp::Mov,
                            dst: rd,
                            src: Operand::Imm(imm),
                        })),
                        None => {
                            self.load_into(rd, Loc::Remat(Remat::Const(c)));
                            self.emit(MachInsn::Insn(Insn::Alu {
                                width,
                                op: AluOp::Mov,
                                dst: rd,
                                src: Operand::Reg(rd),
                            }));
                        }
                    },
                    (_, la) => {
                        let ra = match la {
                            Loc::Reg(r) => r,
                            other => {
                                self.load_into(rd, other);
                                rd
                            }
                        };
                        self.emit(MachInsn::Insn(Insn::Alu {
                            width,
                            op: op.alu_op(),
                            dst: rd,
                            src: Operand::Reg(ra),
                        }));
                    }
                }
                self.finish_def(result, rd);
            }
            InstructionData::Endian { order, bits, arg } => {
                let rd = self.def_reg(i, result)?;
                let la = self.loc(arg);
                self.load_into(rd, la);
                self.emit(MachInsn::Insn(Insn::Endian {
                    order,
                    bits: bits as u32,
                    dst: rd,
                }));
                self.finish_def(result, rd);
            }
            InstructionData::Load {
                size,
                signed,
                base,
                offset,
                ..
            } => {
                let rd = self.def_reg(i, result)?;
                let (src, off) = self.address(i, base, offset, rd)?;
                self.emit(MachInsn::Insn(Insn::Load {
                    size: size_of(size),
                    signed,
                    dst: rd,
                    src,
                    off,
                }));
                self.finish_def(result, rd);
            }
            InstructionData::Store {
                region,
                size,
                base,
                offset,
                value,
            } => {
                let base_temp = self.scratch(i, &[])?;
                let (dst, off) = self.address(i, base, offset, base_temp)?;
                let imm = match self.loc(value) {
                    Loc::Remat(Remat::Const(c)) if region != ir::Region::Ctx => match size {
                        MemSize::U64 => i32::try_from(c).ok(),
                        _ => Some(c as i32),
                    },
                    _ => None,
                };
                match imm {
                    Some(imm) => self.emit(MachInsn::Insn(Insn::StoreImm {
                        size: size_of(size),
                        dst,
                        off,
                        imm,
                    })),
                    None => {
                        let t = self.scratch(i, &[dst])?;
                        let src = self.use_reg(value, t);
                        self.emit(MachInsn::Insn(Insn::StoreReg {
                            size: size_of(size),
                            dst,
                            src,
                            off,
                        }));
                    }
                }
            }
            InstructionData::Atomic {
                size,
                op,
                fetch,
                base,
                offset,
                value,
                ..
            } => {
                let size = self.atomic_size(i, size)?;
                let fetch = fetch || op == AtomicOp::Xchg;
                let result_used = result.is_some() && !dead;
                let src = if fetch {
                    let rs = if result_used {
                        self.def_reg(i, result)?
                    } else {
                        self.scratch(i, &[])?
                    };
                    let lv = self.loc(value);
                    self.load_into(rs, lv);
                    rs
                } else {
                    let t = self.scratch(i, &[])?;
                    self.use_reg(value, t)
                };
                let temp = self.scratch(i, &[src])?;
                let (dst, off) = self.address(i, base, offset, temp)?;
                let op = match op {
                    AtomicOp::Add => BpfAtomic::Add,
                    AtomicOp::Or => BpfAtomic::Or,
                    AtomicOp::And => BpfAtomic::And,
                    AtomicOp::Xor => BpfAtomic::Xor,
                    AtomicOp::Xchg => BpfAtomic::Xchg,
                };
                self.emit(MachInsn::Insn(Insn::Atomic {
                    size,
                    op,
                    fetch,
                    dst,
                    src,
                    off,
                }));
                if result_used {
                    self.finish_def(result, src);
                }
            }
            InstructionData::CmpXchg {
                size,
                base,
                offset,
                expected,
                replacement,
                ..
            } => {
                let size = self.atomic_size(i, size)?;
                // `cmpxchg` reads and writes `r0` itself; the allocator keeps values out of
                // `r0` around it, and this check keeps that promise visible.
                if self.busy_at(i).contains(&Reg::R0) {
                    return Err(self.err(i, "a value sits in r0 where cmpxchg needs it"));
                }
                let le = self.loc(expected);
                self.load_into(Reg::R0, le);
                let repl = match self.loc(replacement) {
                    Loc::Reg(r) => r,
                    other => {
                        let t = self.scratch(i, &[Reg::R0])?;
                        self.load_into(t, other);
                        t
                    }
                };
                let temp = match self.loc(base) {
                    Loc::Reg(r) => r,
                    Loc::Remat(Remat::Stack(..)) => Reg::FP,
                    _ => self.scratch(i, &[repl, Reg::R0])?,
                };
                let (dst, off) = self.address(i, base, offset, temp)?;
                self.emit(MachInsn::Insn(Insn::Atomic {
                    size,
                    op: BpfAtomic::CmpXchg,
                    fetch: true,
                    dst,
                    src: repl,
                    off,
                }));
                if !dead {
                    if let Some(r) = result {
                        let l = self.loc(r);
                        match l {
                            Loc::Reg(rd) => self.emit(mov(rd, Reg::R0)),
                            Loc::Spill(off) => self.emit(spill_store(off, Reg::R0)),
                            Loc::Remat(_) => {}
                        }
                    }
                }
            }
            InstructionData::CallHelper { helper, ref args } => {
                self.call_args(i, args)?;
                self.emit(MachInsn::Insn(Insn::Call(CallTarget::Helper(
                    helper as i32,
                ))));
                self.call_result(result, dead);
            }
            InstructionData::Call { func, ref args } => {
                self.call_args(i, args)?;
                self.emit(MachInsn::Call(func));
                self.call_result(result, dead);
            }
            InstructionData::TailCall { ctx, map, index } => {
                let moves = vec![
                    (Loc::Reg(Reg(1)), self.loc(ctx)),
                    (Loc::Reg(Reg(2)), Loc::Remat(Remat::MapRef(map))),
                    (Loc::Reg(Reg(3)), self.loc(index)),
                ];
                let mut buf = Vec::new();
                let busy = self.busy_at(i);
                self.parallel_move(&mut buf, moves, &busy)
                    .map_err(|m| self.err(i, m))?;
                self.out.extend(buf);
                self.emit(MachInsn::Insn(Insn::Call(CallTarget::Helper(
                    HELPER_TAIL_CALL,
                ))));
            }
            InstructionData::Jump { ref dest } => match self.edge_code(i, dest, next)? {
                Some(code) => self.out.extend(code),
                None => self.emit(MachInsn::Ja(label_of(dest.block))),
            },
            InstructionData::Brif {
                cond,
                width,
                args,
                ref dests,
            } => self.brif(i, cond, width, args, dests, next)?,
            InstructionData::Return { value } => {
                let l = self.loc(value);
                self.load_into(Reg::R0, l);
                self.emit(MachInsn::Insn(Insn::Exit));
            }
        }
        Ok(())
    }

    fn imm_ok(&self, op: BinaryOp, width: Width, c: i64) -> bool {
        let divides = matches!(
            op,
            BinaryOp::Div | BinaryOp::SDiv | BinaryOp::Mod | BinaryOp::SMod
        );
        // The verifier rejects a division by an immediate zero; a register divisor of zero is
        // well defined, so keep the register form there.
        imm_for(width, c).is_some_and(|imm| !(divides && imm == 0))
    }

    /// The immediate of an operation; shift counts are masked as `ir::semantics` masks them,
    /// because the verifier rejects an immediate shift count of the operation's width or more.
    fn shift_imm(&self, op: BinaryOp, width: Width, c: i64) -> i32 {
        match op {
            BinaryOp::Lsh | BinaryOp::Rsh | BinaryOp::Arsh => {
                (c as u64 & (width.bits() as u64 - 1)) as i32
            }
            _ => imm_for(width, c).unwrap_or(0),
        }
    }

    fn atomic_size(&self, i: Inst, size: MemSize) -> Result<Size, SelectError> {
        match size {
            MemSize::U32 => Ok(Size::W),
            MemSize::U64 => Ok(Size::DW),
            other => Err(self.err(
                i,
                format!("atomic operations exist for 32 and 64 bits only, not {other}"),
            )),
        }
    }

    /// The base register and offset of a memory access. A stack-slot address folds into an
    /// `r10`-relative access; any other base not in a register is loaded into `temp`.
    fn address(
        &mut self,
        i: Inst,
        base: Value,
        offset: i32,
        temp: Reg,
    ) -> Result<(Reg, i16), SelectError> {
        let (reg, total) = match self.loc(base) {
            Loc::Remat(Remat::Stack(slot, off)) => {
                let at = self.alloc.frame.slots.get(&slot).copied().unwrap_or(0) as i64;
                (Reg::FP, at + off as i64 + offset as i64)
            }
            Loc::Reg(r) => (r, offset as i64),
            other => {
                self.load_into(temp, other);
                (temp, offset as i64)
            }
        };
        let off = i16::try_from(total).map_err(|_| {
            self.err(
                i,
                format!(
                    "memory offset {total} does not fit the 16-bit offset of BPF loads and stores"
                ),
            )
        })?;
        Ok((reg, off))
    }

    fn call_args(&mut self, i: Inst, args: &[Value]) -> Result<(), SelectError> {
        if args.len() > 5 {
            return Err(self.err(
                i,
                format!(
                    "a call passes {} arguments; BPF passes at most 5 (r1-r5)",
                    args.len()
                ),
            ));
        }
        let moves = args
            .iter()
            .enumerate()
            .map(|(k, &a)| (Loc::Reg(Reg(k as u8 + 1)), self.loc(a)))
            .collect();
        let mut buf = Vec::new();
        let busy = self.busy_at(i);
        self.parallel_move(&mut buf, moves, &busy)
            .map_err(|m| self.err(i, m))?;
        self.out.extend(buf);
        Ok(())
    }

    fn call_result(&mut self, result: Option<Value>, dead: bool) {
        if dead {
            return;
        }
        match result.map(|r| self.loc(r)) {
            Some(Loc::Reg(rd)) if rd != Reg::R0 => self.emit(mov(rd, Reg::R0)),
            Some(Loc::Spill(off)) => self.emit(spill_store(off, Reg::R0)),
            _ => {}
        }
    }

    fn edge_moves(&self, dest: &BlockCall) -> Vec<Move> {
        let params = self.func.dfg.block_params(dest.block);
        dest.args
            .iter()
            .zip(params)
            .filter(|(_, p)| !self.alloc.unused.contains(p))
            .map(|(&a, &p)| (self.loc(p), self.loc(a)))
            .filter(|(d, s)| d != s)
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn brif(
        &mut self,
        i: Inst,
        cond: JmpCond,
        width: Width,
        args: [Value; 2],
        dests: &[BlockCall; 2],
        next: Option<Block>,
    ) -> Result<(), SelectError> {
        let (mut a, mut b, mut cond) = (args[0], args[1], cond);
        let is_const = |s: &Self, v: Value| matches!(s.loc(v), Loc::Remat(Remat::Const(_)));
        if is_const(self, a) && !is_const(self, b) {
            std::mem::swap(&mut a, &mut b);
            cond = swap_cond(cond);
        }
        let t_a = self.scratch(i, &[])?;
        let src = match self.loc(b) {
            Loc::Remat(Remat::Const(c)) if imm_for(width, c).is_some() => {
                Operand::Imm(imm_for(width, c).unwrap_or(0))
            }
            Loc::Reg(r) => Operand::Reg(r),
            other => {
                let t = self.scratch(i, &[t_a])?;
                self.load_into(t, other);
                Operand::Reg(t)
            }
        };
        let dst = self.use_reg(a, t_a);
        let true_code = self.edge_code(i, &dests[0], None)?;
        let false_code = self.edge_code(i, &dests[1], next)?;
        let (t_block, f_block) = (dests[0].block, dests[1].block);
        let inverted = invert_cond(cond);
        // Edges that are nothing but a jump (to their block or to a shared return stub) need
        // no code of their own: one conditional jump, and a jump for the other edge unless it
        // falls through.
        let plain_target = |code: &Option<Vec<MachInsn>>, block: Block| match code.as_deref() {
            None => Some(label_of(block)),
            Some([MachInsn::Ja(l)]) => Some(*l),
            _ => None,
        };
        if let (Some(lt), Some(lf)) = (
            plain_target(&true_code, t_block),
            plain_target(&false_code, f_block),
        ) {
            let next_label = next.map(label_of);
            match inverted {
                Some(inv) if next_label == Some(lt) && lt != lf => {
                    self.emit(MachInsn::Jcc {
                        width,
                        cond: inv,
                        dst,
                        src,
                        target: lf,
                    });
                }
                _ => {
                    self.emit(MachInsn::Jcc {
                        width,
                        cond,
                        dst,
                        src,
                        target: lt,
                    });
                    self.emit(MachInsn::Ja(lf));
                }
            }
            return Ok(());
        }
        match (true_code, false_code, inverted) {
            // When the true edge falls through to the next block, jump on the negated
            // condition.
            (None, None, Some(inv)) if next == Some(t_block) && t_block != f_block => {
                self.emit(MachInsn::Jcc {
                    width,
                    cond: inv,
                    dst,
                    src,
                    target: label_of(f_block),
                });
            }
            // Only the true edge has code: jump on the negated condition to the false block
            // and put the true edge's code right here, saving a trampoline.
            (Some(code), None, Some(inv)) => {
                self.emit(MachInsn::Jcc {
                    width,
                    cond: inv,
                    dst,
                    src,
                    target: label_of(f_block),
                });
                self.out.extend(code);
            }
            (true_code, false_code, _) => {
                let target = match true_code {
                    None => label_of(t_block),
                    Some(code) => {
                        let l = self.fresh_label();
                        self.deferred.push(MachInsn::Label(l));
                        self.deferred.extend(code);
                        l
                    }
                };
                self.emit(MachInsn::Jcc {
                    width,
                    cond,
                    dst,
                    src,
                    target,
                });
                match false_code {
                    Some(code) => self.out.extend(code),
                    None => self.emit(MachInsn::Ja(label_of(f_block))),
                }
            }
        }
        Ok(())
    }

    /// The code an edge needs, or `None` when it is a plain jump to its block. An edge with
    /// moves into a block that only returns (and is not laid out next) returns directly, as
    /// clang duplicates `exit`; any other edge does its parallel moves and jumps.
    fn edge_code(
        &mut self,
        i: Inst,
        dest: &BlockCall,
        next: Option<Block>,
    ) -> Result<Option<Vec<MachInsn>>, SelectError> {
        let moves = self.edge_moves(dest);
        if moves.is_empty() {
            return Ok(None);
        }
        let mut code = Vec::new();
        // Returning a constant: jump to the one stub that returns it, as clang shares one
        // `exit` among every path returning the same code.
        if let Some(Loc::Remat(Remat::Const(c))) = self.returned_value(dest).map(|v| self.loc(v)) {
            let label = match self.return_stubs.get(&c) {
                Some(&l) => l,
                None => {
                    let l = self.fresh_label();
                    let mut stub = vec![MachInsn::Label(l)];
                    self.materialize(&mut stub, Remat::Const(c), Reg::R0);
                    stub.push(MachInsn::Insn(Insn::Exit));
                    self.deferred.extend(stub);
                    self.return_stubs.insert(c, l);
                    l
                }
            };
            return Ok(Some(vec![MachInsn::Ja(label)]));
        }
        // Returning directly costs at most what the moves and the jump cost, and may leave the
        // shared return block with no predecessor at all.
        if let Some(value) = self.returned_value(dest) {
            if next != Some(dest.block) {
                self.load_into_buf(&mut code, Reg::R0, self.loc(value));
                code.push(MachInsn::Insn(Insn::Exit));
                return Ok(Some(code));
            }
        }
        let busy = self.busy_at(i);
        self.parallel_move(&mut code, moves, &busy)
            .map_err(|m| self.err(i, m))?;
        code.push(MachInsn::Ja(label_of(dest.block)));
        Ok(Some(code))
    }

    /// When `dest.block` is nothing but `return v`, the value the edge returns.
    fn returned_value(&self, dest: &BlockCall) -> Option<Value> {
        let insts = self.order.insts.get(&dest.block)?;
        let [only] = insts.as_slice() else {
            return None;
        };
        let InstructionData::Return { value } = *self.func.dfg.inst(*only) else {
            return None;
        };
        let params = self.func.dfg.block_params(dest.block);
        Some(match params.iter().position(|&p| p == value) {
            Some(k) => *dest.args.get(k)?,
            None => value,
        })
    }

    /// Emits the moves `dst <- src` as if they happened at once. Destinations are registers
    /// or spill slots, and spill slots are never shared, so a slot written here is never read
    /// here: stack destinations go first, then register destinations in an order that reads
    /// every register before overwriting it, breaking cycles through a scratch register: one
    /// that no move reads or writes and no value in `busy` (those live around the moves)
    /// holds, `r0` whenever it is free.
    fn parallel_move(
        &self,
        out: &mut Vec<MachInsn>,
        moves: Vec<Move>,
        busy: &HashSet<Reg>,
    ) -> Result<(), String> {
        let mut pending: Vec<Move> = moves.into_iter().filter(|(d, s)| d != s).collect();
        let involved = |r: Reg| {
            pending
                .iter()
                .any(|(d, s)| *d == Loc::Reg(r) || *s == Loc::Reg(r))
        };
        let temp = (0..=9)
            .map(Reg)
            .find(|&r| !busy.contains(&r) && !involved(r));
        let need_temp = || {
            temp.ok_or_else(|| {
                "no register is free to break a cycle of register moves or to stage a spill"
                    .to_string()
            })
        };
        for (d, s) in pending.iter().filter(|(d, _)| matches!(d, Loc::Spill(_))) {
            if let Loc::Spill(off) = d {
                let r = match s {
                    Loc::Reg(r) => *r,
                    other => {
                        let t = need_temp()?;
                        self.load_into_buf(out, t, *other);
                        t
                    }
                };
                out.push(spill_store(*off, r));
            }
        }
        pending.retain(|(d, _)| matches!(d, Loc::Reg(_)));
        while !pending.is_empty() {
            let ready = pending
                .iter()
                .position(|(d, _)| !pending.iter().any(|(_, s)| s == d));
            match ready {
                Some(k) => {
                    let (d, s) = pending.remove(k);
                    if let Loc::Reg(dr) = d {
                        self.load_into_buf(out, dr, s);
                    }
                }
                None => {
                    // Every destination is still read by another move: a cycle of registers.
                    let t = need_temp()?;
                    let (d, _) = pending[0];
                    if let Loc::Reg(dr) = d {
                        out.push(mov(t, dr));
                    }
                    for m in pending.iter_mut() {
                        if m.1 == d {
                            m.1 = Loc::Reg(t);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Register classes never change a value's meaning; this keeps the module self-checking.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swapped_and_inverted_conditions_agree_with_semantics() {
        let samples = [0u64, 1, 2, 0x7fff_ffff, 0x8000_0000, u64::MAX, u64::MAX - 1];
        for cond in ir::instructions::ALL_CONDS {
            for width in [Width::W32, Width::W64] {
                for &x in &samples {
                    for &y in &samples {
                        let c = ir::semantics::compare(cond, width, x, y);
                        assert_eq!(ir::semantics::compare(swap_cond(cond), width, y, x), c);
                        if let Some(inv) = invert_cond(cond) {
                            assert_eq!(ir::semantics::compare(inv, width, x, y), !c);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn materialized_constants_hold_their_value() {
        // Every form `materialize` picks writes the constant's 64 bits, per ir::semantics.
        for c in [
            0i64,
            -1,
            i32::MAX as i64,
            i32::MIN as i64,
            1 << 31,
            u32::MAX as i64,
            1 << 32,
            i64::MIN,
        ] {
            // The engines sign-extend an ALU immediate to 64 bits before the operation.
            let written = match move_constant(Reg::R1, c) {
                MachInsn::Insn(Insn::Alu {
                    width,
                    op: AluOp::Mov,
                    src: Operand::Imm(imm),
                    ..
                }) => ir::semantics::alu(AluOp::Mov, width, 0, imm as i64 as u64),
                MachInsn::Insn(Insn::Imm64 {
                    imm: Imm64::Value(v),
                    ..
                }) => v,
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(written, c as u64, "{c}");
        }
    }

    #[test]
    fn immediates_keep_their_meaning() {
        for c in [
            0i64,
            1,
            -1,
            i32::MAX as i64,
            i32::MIN as i64,
            1 << 40,
            u32::MAX as i64,
        ] {
            for width in [Width::W32, Width::W64] {
                if let Some(imm) = imm_for(width, c) {
                    // The engines sign-extend the immediate for 64-bit operations.
                    let as_operand = imm as i64 as u64;
                    assert_eq!(
                        ir::semantics::alu(AluOp::Add, width, 5, as_operand),
                        ir::semantics::alu(AluOp::Add, width, 5, c as u64)
                    );
                }
            }
        }
    }
}
