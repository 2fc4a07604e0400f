//! Instruction selection: one IR function, with its shapes and registers decided, to
//! microengine instructions with symbolic branch targets.
//!
//! Each IR instruction expands to a short sequence; the comments at each expansion give the
//! idiom. The pieces of the model this relies on:
//!
//! - **Values** are pairs of 32-bit halves, each a constant or a register (`WR_AB`, both
//!   banks), see [`super::shapes`] and [`super::regalloc`]. 64-bit additions and subtractions
//!   chain the carry (`+carry`, `-carry`); 64-bit compares subtract the low halves and
//!   subtract-with-carry the high halves, then branch on the flags (the Linux JIT's table).
//! - **Packet** accesses are CTM commands in the implied 32-bit mode (`a + b` is the offset in
//!   the frame) through transfer registers, swapping the context out until the data is there.
//! - **Stack** words at constant offsets in the top 256 bytes are local-memory operands
//!   (`*l$indexN[k]`, four address registers each covering 64 bytes, set up in the prologue);
//!   other stack accesses are LM commands.
//! - **Maps and helpers** are commands to the lookup engine with the arguments in write
//!   transfer registers; map values are read and written with commands to the memory the map
//!   is placed in, in the 40-bit mode with the pointer's region word as the high part.
//! - **The exit** is a branch to [`EXIT_TARGET`] with the return value in registers 0 and 1,
//!   moved there in the branch's defer slots.
//! - **Tail calls** ask the lookup engine which program to continue in and branch to that
//!   program's first word (the programs are linked by [`super::link`]).
//! - **Routines** (loops inside one instruction's expansion, with [`Target::Here`] labels):
//!   division and modulo by a register, 32- and 64-bit; shifts of 64-bit values by a register
//!   branch on bit 5 of the amount. Registers 0 and 1 are free inside an expansion (they only
//!   matter at the exit), so routines use them beside the four scratch registers.

use super::regalloc::{Allocation, SCRATCH};
use super::shapes::{EntryKind, Half, Shape};
use frontend::Diagnostic;
use hw::nfp::abi::{
    REGION_MAP, REGION_PACKET, REGION_STACK, STACK_SIZE, XFER_FIRST_FREE, XFER_META,
};
use hw::nfp::insn::*;
use hw::nfp::regs::{Bank, Dest, Operand};
use ir::instructions::InstructionData as I;
use ir::semantics::{JmpCond, Width};
use ir::{BinaryOp, Block, BlockCall, Function, Inst, MemSize, Region, UnaryOp, Value};
use std::collections::HashMap;

mod map_ops;

/// A branch target before layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Block(Block),
    Stub(usize),
    Exit,
    /// [`TAIL_CALL_FAULT_TARGET`]: a tail call chose a program that is not linked.
    TailCallFault,
    /// [`MAP_HANDLE_FAULT_TARGET`]: a map helper's handle is none of the maps that can reach it.
    MapHandleFault,
    /// The entry of another program of the object (a tail call), by program index.
    Program(usize),
    /// An item of the selector's own list (a label inside one instruction's expansion, such
    /// as the loop of the division routine).
    Here(usize),
    /// The first word of a map routine ([`map_ops`]), by its index in the selector's list.
    Routine(usize),
}

/// One emitted instruction with its symbolic target and where it came from.
#[derive(Clone, Debug)]
pub struct Item {
    pub insn: Insn,
    pub target: Option<Target>,
    /// BPF instruction index of the IR instruction it implements (`u32::MAX` for none).
    pub bpf: u32,
    pub comment: String,
    /// For an `immed` that the loader patches: (map, which 16-bit half of the region word).
    pub reloc: Option<(usize, u8)>,
    /// For an `immed` that loads a code address (a routine's return address): the target
    /// whose address layout puts in its immediate.
    pub code_address: Option<Target>,
}

/// A 32-bit half as the expansions see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum S {
    R(u8),
    C(u32),
    /// A read transfer register still holding a loaded value (see [`Selector::foldable`]).
    X(u8),
}

/// The transfer registers commands use (after the packet metadata).
const X: u8 = XFER_FIRST_FREE;
/// Read transfer register holding the LM byte address of stack byte 256 of this context.
pub const XFER_LM_BASE: u8 = XFER_META + 6;
/// Stack bytes covered by local-memory operands: `[LM_WINDOW_START, 512)`.
const LM_WINDOW_START: u32 = 256;

pub struct Selector<'a> {
    func: &'a Function,
    shapes: &'a HashMap<Value, Shape>,
    alloc: &'a Allocation,
    /// Memory level of each map of the module.
    map_levels: &'a [MemLevel],
    /// Map type of each map of the module.
    map_types: &'a [u32],
    pub items: Vec<Item>,
    pub stubs: Vec<(Vec<Item>, Block)>,
    pub lm_used: [bool; 4],
    bpf: u32,
    scratch_next: usize,
    /// How many times each value is an operand (of instructions and branch arguments).
    uses: HashMap<Value, usize>,
    /// Loaded values every use of which comes before the next memory command or helper call
    /// of their block, so they can be read from the transfer registers the load filled.
    foldable: std::collections::HashSet<Value>,
    /// Loaded values that live in transfer registers (first register of the pair).
    in_xfer: HashMap<Value, u8>,
    /// The object's programs a tail call may land in (linked into the same code store).
    pub tail_targets: Vec<usize>,
    name: String,
    /// How the program was entered: in memory mode `ctx` accesses are plain memory.
    pub entry: EntryKind,
    /// The chip-memory layout of each map of the module, for the maps whose operations are
    /// microcode ([`map_ops`]).
    pub layouts: Vec<Option<hw::nfp::abi::MapLayout>>,
    /// `max_entries` of each map of the module.
    pub map_entries: Vec<u32>,
    /// Value size of each map of the module.
    pub map_value_sizes: Vec<u32>,
    /// Key size of each map of the module.
    pub map_key_sizes: Vec<u32>,
    /// The map routines the program calls, and where each starts once emitted.
    pub routines: Vec<(map_ops::RoutineKey, Option<usize>)>,
    /// The instructions of the block being selected before the current one, for looking back
    /// at what the block stored (see `map_ops::stored_stack_const`).
    earlier_in_block: Vec<Inst>,
}

fn alu_of(op: BinaryOp) -> Option<AluOp> {
    Some(match op {
        BinaryOp::Add => AluOp::Add,
        BinaryOp::Sub => AluOp::Sub,
        BinaryOp::And => AluOp::And,
        BinaryOp::Or => AluOp::Or,
        BinaryOp::Xor => AluOp::Xor,
        _ => return None,
    })
}

/// True when the expansion of `data` may issue a memory command or a helper call, and so
/// overwrite the read transfer registers.
fn may_overwrite_xfer(data: &I) -> bool {
    matches!(
        data,
        I::Load { .. }
            | I::Store { .. }
            | I::Atomic { .. }
            | I::CmpXchg { .. }
            | I::CallHelper { .. }
            | I::TailCall { .. }
            | I::Call { .. }
    )
}

/// Loads whose value is read only in its own block, before the next instruction that may
/// overwrite the transfer registers (uses by that instruction itself come before its
/// command, so they count).
fn foldable_loads(
    func: &Function,
    uses: &HashMap<Value, usize>,
) -> std::collections::HashSet<Value> {
    let mut out = std::collections::HashSet::new();
    for b in func.layout.blocks() {
        let insts: Vec<Inst> = func.block_insts(b).collect();
        for (k, &inst) in insts.iter().enumerate() {
            let I::Load { signed: false, .. } = func.dfg.inst(inst) else {
                continue;
            };
            let Some(r) = func.dfg.inst_result(inst) else {
                continue;
            };
            let mut seen = 0;
            for &later in &insts[k + 1..] {
                let data = func.dfg.inst(later);
                let mut used = false;
                data.for_each_arg(|a| used |= a == r);
                // Map operations in chip memory read keys into the transfer registers before
                // they read their other arguments, so a value they take must be in a register.
                if used && matches!(data, I::CallHelper { helper: 1..=3, .. }) {
                    seen = 0;
                    break;
                }
                data.for_each_arg(|a| seen += usize::from(a == r));
                if may_overwrite_xfer(data) {
                    break;
                }
            }
            if seen > 0 && uses.get(&r).copied() == Some(seen) {
                out.insert(r);
            }
        }
    }
    out
}

/// The kernel's helper id of `bpf_tail_call`.
pub const TAIL_CALL_HELPER: u32 = 12;

/// The byte-enable mask of `c` when every byte of `c` is 0x00 or 0xff.
fn byte_mask(c: u32) -> Option<u8> {
    let mut m = 0u8;
    for i in 0..4 {
        match (c >> (8 * i)) & 0xff {
            0xff => m |= 1 << i,
            0 => {}
            _ => return None,
        }
    }
    Some(m)
}

/// Helpers the lookup engine serves, by kernel id.
pub fn helper_supported(id: u32) -> bool {
    matches!(
        id,
        1 | 2 | 3 | 5 | 6 | 7 | 8 | 23 | 25 | 28 | 44 | 51 | 54 | 65 | 125 | 160 | 195
    )
}

impl<'a> Selector<'a> {
    pub fn new(
        func: &'a Function,
        shapes: &'a HashMap<Value, Shape>,
        alloc: &'a Allocation,
        map_levels: &'a [MemLevel],
        map_types: &'a [u32],
    ) -> Selector<'a> {
        let mut uses: HashMap<Value, usize> = HashMap::new();
        for inst in func.insts() {
            func.dfg
                .inst(inst)
                .for_each_arg(|a| *uses.entry(a).or_default() += 1);
        }
        let foldable = foldable_loads(func, &uses);
        Selector {
            uses,
            foldable,
            in_xfer: HashMap::new(),
            tail_targets: Vec::new(),
            func,
            shapes,
            alloc,
            map_levels,
            map_types,
            items: Vec::new(),
            stubs: Vec::new(),
            lm_used: [false; 4],
            bpf: u32::MAX,
            scratch_next: 0,
            name: func.name.clone(),
            entry: EntryKind::Xdp,
            layouts: Vec::new(),
            map_entries: Vec::new(),
            map_value_sizes: Vec::new(),
            map_key_sizes: Vec::new(),
            routines: Vec::new(),
            earlier_in_block: Vec::new(),
        }
    }

    fn err(&self, msg: impl Into<String>) -> Diagnostic {
        let d = Diagnostic::new(msg).program(self.name.clone());
        if self.bpf != u32::MAX {
            d.insn(self.bpf as usize)
        } else {
            d
        }
    }

    fn push(&mut self, insn: Insn) {
        self.items.push(Item {
            insn,
            target: None,
            bpf: self.bpf,
            comment: String::new(),
            reloc: None,
            code_address: None,
        });
    }

    fn push_branch(&mut self, insn: Insn, target: Target) {
        self.items.push(Item {
            insn,
            target: Some(target),
            bpf: self.bpf,
            comment: String::new(),
            reloc: None,
            code_address: None,
        });
    }

    fn scratch(&mut self) -> Result<u8, Diagnostic> {
        let r = SCRATCH.get(self.scratch_next).copied().ok_or_else(|| {
            self.err("internal: an expansion needed more than four scratch registers")
        })?;
        self.scratch_next += 1;
        Ok(r)
    }

    fn shape(&self, v: Value) -> Shape {
        self.shapes.get(&v).copied().unwrap_or(Shape {
            lo: Half::Reg,
            hi: Half::Reg,
        })
    }

    fn half(&self, v: Value, hi: bool) -> Result<S, Diagnostic> {
        let s = self.shape(v);
        if let (Some(&x), Half::Reg) = (self.in_xfer.get(&v), if hi { s.hi } else { s.lo }) {
            return Ok(S::X(x + u8::from(hi)));
        }
        match if hi { s.hi } else { s.lo } {
            Half::Const(c) => Ok(S::C(c)),
            _ => {
                let map = if hi { &self.alloc.hi } else { &self.alloc.lo };
                map.get(&v)
                    .map(|r| S::R(*r))
                    .ok_or_else(|| self.err(format!("internal: {v} has no register")))
            }
        }
    }

    fn lo(&self, v: Value) -> Result<S, Diagnostic> {
        self.half(v, false)
    }
    fn hi(&self, v: Value) -> Result<S, Diagnostic> {
        self.half(v, true)
    }

    /// The register of a result half, or `None` when the half is a constant.
    fn dst(&self, v: Value, hi: bool) -> Option<u8> {
        let s = self.shape(v);
        if matches!(if hi { s.hi } else { s.lo }, Half::Const(_)) {
            return None;
        }
        if hi {
            self.alloc.hi.get(&v).copied()
        } else {
            self.alloc.lo.get(&v).copied()
        }
    }

    /// `dst = c` in one or two `immed` instructions (which leave the condition codes alone).
    fn imm32(&mut self, dst: Dest, c: u32) {
        let immed = |imm: u32, shift: u8, width: ImmedWidth, inv: bool| Insn::Immed {
            dst,
            imm: imm as u16,
            shift,
            width,
            inv,
        };
        if c <= 0xffff {
            self.push(immed(c, 0, ImmedWidth::All, false));
        } else if c & 0xffff == 0 {
            self.push(immed(c >> 16, 2, ImmedWidth::All, false));
        } else if c & 0xff == 0 && c >> 8 <= 0xffff {
            self.push(immed(c >> 8, 1, ImmedWidth::All, false));
        } else if !c <= 0xffff {
            self.push(immed(!c, 0, ImmedWidth::All, true));
        } else {
            self.push(immed(c & 0xffff, 0, ImmedWidth::All, false));
            self.push(immed(c >> 16, 2, ImmedWidth::Word, false));
        }
    }

    /// A half in a register (materializing a constant into scratch).
    fn in_reg(&mut self, s: S) -> Result<u8, Diagnostic> {
        match s {
            S::R(r) => Ok(r),
            S::X(_) => {
                let r = self.scratch()?;
                self.mov(Dest::Both(r), s)?;
                Ok(r)
            }
            S::C(c) => {
                let r = self.scratch()?;
                self.imm32(Dest::Both(r), c);
                Ok(r)
            }
        }
    }

    /// A register operand for a half: its register, its transfer register, or a scratch
    /// register holding the constant.
    fn reg_operand(&mut self, s: S, bank: Bank) -> Result<Operand, Diagnostic> {
        match s {
            S::X(x) => Ok(Operand::Xfer(x)),
            _ => Ok(Operand::Gpr(bank, self.in_reg(s)?)),
        }
    }

    /// Register operands for an A and a B port; both cannot be transfer registers, so the
    /// second is copied to scratch then.
    fn reg_operands(&mut self, a: S, b: S) -> Result<(Operand, Operand), Diagnostic> {
        let b = match (a, b) {
            (S::X(_), S::X(_)) => S::R(self.in_reg(b)?),
            _ => b,
        };
        Ok((self.reg_operand(a, Bank::A)?, self.reg_operand(b, Bank::B)?))
    }

    /// The operand for a half read through `bank`'s port; constants up to 0xff are
    /// immediates when `imm_ok`.
    fn operand(&mut self, s: S, bank: Bank, imm_ok: bool) -> Result<Operand, Diagnostic> {
        match s {
            S::R(r) => Ok(Operand::Gpr(bank, r)),
            S::X(x) => Ok(Operand::Xfer(x)),
            S::C(c) if c <= 0xff && imm_ok => Ok(Operand::Imm(c as u8)),
            S::C(_) => Ok(Operand::Gpr(bank, self.in_reg(s)?)),
        }
    }

    /// `alu[dst, a, op, b]` with constants placed as immediates or materialized.
    fn alu(&mut self, dst: Dest, a: S, op: AluOp, b: S) -> Result<(), Diagnostic> {
        let a_imm = matches!(a, S::C(c) if c <= 0xff);
        // Both operands cannot come from the transfer registers.
        let b = match (a, b) {
            (S::X(_), S::X(_)) => S::R(self.in_reg(b)?),
            _ => b,
        };
        let oa = self.operand(a, Bank::A, true)?;
        let ob = self.operand(b, Bank::B, !a_imm)?;
        self.push(Insn::Alu {
            dst,
            a: oa,
            op,
            b: ob,
        });
        Ok(())
    }

    /// `dst = src` for one half.
    fn mov(&mut self, dst: Dest, src: S) -> Result<(), Diagnostic> {
        match src {
            S::R(r) if dst == Dest::Both(r) => Ok(()),
            S::C(c) if c > 0xff => {
                self.imm32(dst, c);
                Ok(())
            }
            _ => {
                let b = self.operand(src, Bank::B, true)?;
                self.push(Insn::Alu {
                    dst,
                    a: Operand::None,
                    op: AluOp::PassB,
                    b,
                });
                Ok(())
            }
        }
    }

    fn shf(
        &mut self,
        dst: Dest,
        b: S,
        op: ShfOp,
        sc: ShiftClass,
        k: u32,
    ) -> Result<(), Diagnostic> {
        // A shift amount of 0 encodes an indirect shift, so shifting by nothing is a move.
        if k == 0 && op == ShfOp::None {
            return self.mov(dst, b);
        }
        let b = self.reg_operand(b, Bank::B)?;
        self.push(Insn::Shf {
            dst,
            a: Operand::None,
            op,
            b,
            sc,
            shift: k as u8,
        });
        Ok(())
    }

    /// `dst = (hi:lo) >> k` (low 32 bits), 1 <= k <= 31.
    fn dbl(&mut self, dst: Dest, hi: S, lo: S, k: u32) -> Result<(), Diagnostic> {
        if hi == S::C(0) {
            // Nothing comes in from a zero high half: a plain shift of the low half.
            return self.shf(dst, lo, ShfOp::None, ShiftClass::Right, k);
        }
        let (a, b) = self.reg_operands(hi, lo)?;
        self.push(Insn::Shf {
            dst,
            a,
            op: ShfOp::None,
            b,
            sc: ShiftClass::DoubleRight,
            shift: k as u8,
        });
        Ok(())
    }

    fn ld_field(
        &mut self,
        dst: u8,
        bmask: u8,
        src: S,
        sc: ShiftClass,
        shift: u8,
        zero: bool,
    ) -> Result<(), Diagnostic> {
        let src = self.reg_operand(src, Bank::B)?;
        self.push(Insn::LdField {
            dst: Dest::Both(dst),
            bmask,
            src,
            sc,
            shift,
            zero,
        });
        Ok(())
    }

    fn swap32(&mut self, dst: u8, src: S) -> Result<(), Diagnostic> {
        // Rotating right by 8 puts bytes 0 and 2 right; rotating left by 8 (right by 24)
        // supplies bytes 1 and 3.
        self.ld_field(dst, 0b1111, src, ShiftClass::RightRotate, 8, true)?;
        self.ld_field(dst, 0b0101, src, ShiftClass::RightRotate, 24, false)
    }

    fn mul32(&mut self, a: S, b: S, lo: Option<Dest>, hi: Option<Dest>) -> Result<(), Diagnostic> {
        let (oa, ob) = self.reg_operands(a, b)?;
        self.push(Insn::Mul {
            step: MulStep::Start,
            dst: Dest::None,
            a: oa,
            b: ob,
        });
        for n in 1..=4 {
            self.push(Insn::Mul {
                step: MulStep::Step(n),
                dst: Dest::None,
                a: Operand::None,
                b: Operand::None,
            });
        }
        for (step, d) in [(MulStep::Last, lo), (MulStep::Last2, hi)] {
            if let Some(d) = d {
                self.push(Insn::Mul {
                    step,
                    dst: d,
                    a: Operand::None,
                    b: Operand::None,
                });
            }
        }
        Ok(())
    }

    /// Emits the parallel moves that bind `call`'s arguments to its block's parameters.
    fn block_moves(&mut self, call: &BlockCall) -> Result<(), Diagnostic> {
        let mut moves: Vec<(u8, S)> = Vec::new();
        let params = self.func.dfg.block_params(call.block).to_vec();
        for (p, a) in params.iter().zip(&call.args) {
            for hi in [false, true] {
                if let Some(d) = self.dst(*p, hi) {
                    let s = self.half(*a, hi)?;
                    if s != S::R(d) {
                        moves.push((d, s));
                    }
                }
            }
        }
        while !moves.is_empty() {
            let ready = moves
                .iter()
                .position(|&(d, _)| !moves.iter().any(|&(_, s)| s == S::R(d)));
            match ready {
                Some(i) => {
                    let (d, s) = moves.remove(i);
                    self.mov(Dest::Both(d), s)?;
                }
                None => {
                    // A cycle: park one source in scratch and read it from there.
                    let (_, s) = moves[0];
                    let t = self.scratch()?;
                    self.mov(Dest::Both(t), s)?;
                    for m in moves.iter_mut() {
                        if m.1 == s {
                            m.1 = S::R(t);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The moves of `call` and an unconditional branch to its block, with up to three of the
    /// moves in the branch's defer slots (they execute while the branch resolves, so the taken
    /// branch costs no shadow cycles for them).
    /// With `share`, a jump whose moves a stub already holds becomes a branch to that stub.
    fn jump_with_moves(&mut self, call: &BlockCall, share: bool) -> Result<(), Diagnostic> {
        let start = self.items.len();
        self.block_moves(call)?;
        let moves: Vec<Item> = self.items.drain(start..).collect();
        let deferrable = moves.len() <= 3
            && moves.iter().all(|m| {
                m.target.is_none()
                    && matches!(
                        m.insn,
                        Insn::Alu { .. } | Insn::Immed { .. } | Insn::LdField { .. }
                    )
            });
        let defer = if deferrable { moves.len() as u8 } else { 0 };
        let start = self.items.len();
        if defer == 0 {
            self.items.extend(moves.iter().cloned());
        }
        self.push_branch(
            Insn::Br {
                cond: BrCond::Always,
                target: 0,
                defer,
            },
            Target::Block(call.block),
        );
        if defer > 0 {
            self.items.extend(moves.iter().cloned());
        }
        // When a stub already holds exactly these moves and this jump, branch to it instead.
        if share && !moves.is_empty() {
            if let Some(k) = self.stub_like(&self.items[start..]) {
                self.items.truncate(start);
                self.push_branch(
                    Insn::Br {
                        cond: BrCond::Always,
                        target: 0,
                        defer: 0,
                    },
                    Target::Stub(k),
                );
            }
        }
        Ok(())
    }

    /// The stub whose items are `items` (same instructions and targets), if there is one.
    fn stub_like(&self, items: &[Item]) -> Option<usize> {
        self.stubs.iter().position(|(s, _)| {
            s.len() == items.len()
                && s.iter()
                    .zip(items)
                    .all(|(x, y)| x.insn == y.insn && x.target == y.target && x.reloc == y.reloc)
        })
    }

    fn has_moves(&self, call: &BlockCall) -> bool {
        let params = self.func.dfg.block_params(call.block);
        params.iter().zip(&call.args).any(|(p, a)| {
            [false, true].into_iter().any(|hi| {
                self.dst(*p, hi)
                    .is_some_and(|d| self.half(*a, hi).ok() != Some(S::R(d)))
            })
        })
    }

    /// Recognizes `v = load [p]; w = v + y; store [p] = w` where nothing else reads `v` or `w`:
    /// a counter update, which one memory add command performs in place (the value never
    /// visits the engine). Returns the base, offset, size, region and addend.
    fn read_add_write(
        &self,
        insts: &[Inst],
    ) -> Option<(Value, i32, MemSize, Region, Value, usize)> {
        // Constants emit no code, so they may sit between the three instructions; the last
        // element is how many instructions after the load the pattern covers.
        let mut picked: Vec<(usize, &Inst)> = Vec::new();
        for (k, inst) in insts.iter().enumerate() {
            if k > 0 && matches!(self.func.dfg.inst(*inst), I::Iconst { .. }) {
                continue;
            }
            picked.push((k, inst));
            if picked.len() == 3 {
                break;
            }
        }
        let [(_, load), (_, add), (last, store)] = picked[..] else {
            return None;
        };
        let I::Load {
            region,
            size,
            signed: false,
            base,
            offset,
        } = *self.func.dfg.inst(*load)
        else {
            return None;
        };
        if !matches!(size, MemSize::U32 | MemSize::U64)
            || !matches!(region, Region::MapValue(_) | Region::Global(_))
        {
            return None;
        }
        let loaded = self.func.dfg.inst_result(*load)?;
        let I::Binary {
            op: BinaryOp::Add,
            width,
            args,
        } = *self.func.dfg.inst(*add)
        else {
            return None;
        };
        if size == MemSize::U64 && width != Width::W64 {
            return None;
        }
        let sum = self.func.dfg.inst_result(*add)?;
        let addend = match args {
            [a, y] if a == loaded && y != loaded => y,
            [y, a] if a == loaded && y != loaded => y,
            _ => return None,
        };
        let I::Store {
            region: r2,
            size: s2,
            base: b2,
            offset: o2,
            value,
        } = *self.func.dfg.inst(*store)
        else {
            return None;
        };
        let once = |v: Value| self.uses.get(&v).copied() == Some(1);
        (r2 == region
            && s2 == size
            && b2 == base
            && o2 == offset
            && value == sum
            && once(loaded)
            && once(sum))
        .then_some((base, offset, size, region, addend, last))
    }

    /// Selects one block; `next` is the block laid out after it.
    pub fn block(&mut self, b: Block, next: Option<Block>) -> Result<(), Diagnostic> {
        let insts: Vec<Inst> = self.func.block_insts(b).collect();
        let mut skip = 0;
        for (k, &inst) in insts.iter().enumerate() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            self.scratch_next = 0;
            let loc = self.func.srclocs[inst];
            self.bpf = loc.insn;
            let start = self.items.len();
            if let Some((base, offset, size, region, addend, last)) =
                self.read_add_write(&insts[k..])
            {
                let (al, ah) = (self.lo(addend)?, self.hi(addend)?);
                self.mov(Dest::Xfer(X), al)?;
                if size == MemSize::U64 {
                    self.mov(Dest::Xfer(X + 1), ah)?;
                }
                self.command_at(region, size, base, offset, MemAction::AtomicAdd)?;
                if let Some(first) = self.items.get_mut(start) {
                    first.comment = "load+add+store".into();
                }
                skip = last;
                continue;
            }
            self.earlier_in_block.clear();
            self.earlier_in_block.extend_from_slice(&insts[..k]);
            self.inst(inst, next)?;
            if let Some(first) = self.items.get_mut(start) {
                first.comment = format!("{:?}", self.func.dfg.inst(inst).opcode()).to_lowercase();
            }
        }
        Ok(())
    }

    fn inst(&mut self, inst: Inst, next: Option<Block>) -> Result<(), Diagnostic> {
        let data = self.func.dfg.inst(inst).clone();
        let result = self.func.dfg.inst_result(inst);
        if let Some(r) = result {
            if data.opcode().is_pure() && self.shape(r).constant().is_some() {
                return Ok(());
            }
        }
        match data {
            I::Iconst { .. } | I::StackAddr { .. } | I::MapRef { .. } => Ok(()),
            I::MapValueAddr { map, .. } => {
                let r = result.ok_or_else(|| self.err("internal: no result"))?;
                let m = cranelift_codegen::entity::EntityRef::index(map);
                if let Some(d) = self.dst(r, true) {
                    for half in 0..2u8 {
                        self.items.push(Item {
                            insn: Insn::Immed {
                                dst: Dest::Both(d),
                                imm: 0,
                                shift: 2 * half,
                                width: if half == 0 {
                                    ImmedWidth::All
                                } else {
                                    ImmedWidth::Word
                                },
                                inv: false,
                            },
                            target: None,
                            bpf: self.bpf,
                            comment: String::new(),
                            reloc: Some((m, half)),
                            code_address: None,
                        });
                    }
                }
                if let Some(d) = self.dst(r, false) {
                    let off = self.lo(r)?;
                    self.mov(Dest::Both(d), off)?;
                }
                Ok(())
            }
            I::FuncAddr { .. } => Err(self.err(
                "function addresses (callbacks such as bpf_loop) are not supported on the NFP target",
            )),
            I::Binary { op, width, args } => {
                let r = result.ok_or_else(|| self.err("internal: no result"))?;
                self.binary(r, op, width, args[0], args[1])
            }
            I::Unary { op, width, arg } => {
                let r = result.ok_or_else(|| self.err("internal: no result"))?;
                self.unary(r, op, width, arg)
            }
            I::Endian { order, bits, arg } => {
                let r = result.ok_or_else(|| self.err("internal: no result"))?;
                let swap = matches!(
                    order,
                    ir::semantics::ByteOrder::ToBe | ir::semantics::ByteOrder::Swap
                );
                let (xl, xh) = (self.lo(arg)?, self.hi(arg)?);
                let dl = self.dst(r, false);
                let dh = self.dst(r, true);
                match (bits, swap) {
                    (16, false) => {
                        if let Some(d) = dl {
                            self.ld_field(d, 0b0011, xl, ShiftClass::Right, 0, true)?;
                        }
                    }
                    (32, false) => {
                        if let Some(d) = dl {
                            self.mov(Dest::Both(d), xl)?;
                        }
                    }
                    (16, true) => {
                        if let Some(d) = dl {
                            self.ld_field(d, 0b0001, xl, ShiftClass::Right, 8, true)?;
                            self.ld_field(d, 0b0010, xl, ShiftClass::Left, 8, false)?;
                        }
                    }
                    (32, true) => {
                        if let Some(d) = dl {
                            self.swap32(d, xl)?;
                        }
                    }
                    (_, false) => {
                        if let Some(d) = dl {
                            self.mov(Dest::Both(d), xl)?;
                        }
                        if let Some(d) = dh {
                            self.mov(Dest::Both(d), xh)?;
                        }
                    }
                    (_, true) => {
                        if let Some(d) = dl {
                            self.swap32(d, xh)?;
                        }
                        if let Some(d) = dh {
                            self.swap32(d, xl)?;
                        }
                    }
                }
                Ok(())
            }
            I::Load {
                region,
                size,
                signed,
                base,
                offset,
            } => {
                let r = result.ok_or_else(|| self.err("internal: no result"))?;
                self.load(r, region, size, signed, base, offset)
            }
            I::Store {
                region,
                size,
                base,
                offset,
                value,
            } => self.store(region, size, base, offset, value),
            I::Atomic {
                region,
                size,
                op,
                fetch,
                base,
                offset,
                value,
            } => {
                let action = match op {
                    ir::AtomicOp::Add => MemAction::AtomicAdd,
                    ir::AtomicOp::Or => MemAction::AtomicOr,
                    ir::AtomicOp::And => MemAction::AtomicAnd,
                    ir::AtomicOp::Xor => MemAction::AtomicXor,
                    ir::AtomicOp::Xchg => MemAction::AtomicXchg,
                };
                let (vl, vh) = (self.lo(value)?, self.hi(value)?);
                self.mov(Dest::Xfer(X), vl)?;
                self.mov(Dest::Xfer(X + 1), vh)?;
                self.command_at(region, size, base, offset, action)?;
                if fetch {
                    if let Some(r) = result {
                        self.load_from_xfer(r, size, false)?;
                    }
                }
                Ok(())
            }
            I::CmpXchg {
                region,
                size,
                base,
                offset,
                expected,
                replacement,
            } => {
                let (rl, rh) = (self.lo(replacement)?, self.hi(replacement)?);
                let (el, eh) = (self.lo(expected)?, self.hi(expected)?);
                self.mov(Dest::Xfer(X), rl)?;
                self.mov(Dest::Xfer(X + 1), rh)?;
                self.mov(Dest::Xfer(X + 2), el)?;
                self.mov(Dest::Xfer(X + 3), eh)?;
                self.command_at(region, size, base, offset, MemAction::CmpXchg)?;
                if let Some(r) = result {
                    self.load_from_xfer(r, size, false)?;
                }
                Ok(())
            }
            I::CallHelper { helper, args } => {
                // An unsupported helper is refused as such before asking what its map
                // arguments are, which would only explain the refusal less well.
                if !helper_supported(helper) {
                    return Err(self.err(format!(
                        "helper {} ({}) is not available on the NFP target",
                        helper,
                        crate::native::abi::helper_name(helper).unwrap_or("unknown")
                    ))
                    .help("the NFP target serves map operations, get_prandom_u32, ktime, csum_diff, adjust_head/tail/meta, redirect, redirect_map, perf_event_output and trace_printk"));
                }
                if self.chip_map_helper(helper, &args, result)? {
                    return Ok(());
                }
                self.helper(helper, &args)?;
                if let Some(r) = result {
                    self.load_from_xfer(r, MemSize::U64, false)?;
                }
                Ok(())
            }
            I::TailCall { ctx, map, index } => self.tail_call(ctx, map, index),
            I::Call { .. } => Err(self.err(
                "bpf-to-bpf calls must be inlined for the NFP target (compile with calls inlined)",
            )),
            I::Jump { dest } => {
                if Some(dest.block) != next {
                    self.jump_with_moves(&dest, true)
                } else {
                    self.block_moves(&dest)
                }
            }
            I::Brif {
                cond,
                width,
                args,
                dests,
            } => self.brif(cond, width, args[0], args[1], &dests, next),
            I::Return { value } => {
                let (l, h) = (self.lo(value)?, self.hi(value)?);
                let start = self.items.len();
                self.mov(Dest::Both(RET_LO), l)?;
                self.mov(Dest::Both(RET_HI), h)?;
                let moves: Vec<Item> = self.items.drain(start..).collect();
                let defer = if moves.len() <= 3 { moves.len() as u8 } else { 0 };
                if defer == 0 {
                    self.items.extend(moves.iter().cloned());
                }
                self.push_branch(
                    Insn::Br {
                        cond: BrCond::Always,
                        target: 0,
                        defer,
                    },
                    Target::Exit,
                );
                if defer > 0 {
                    self.items.extend(moves);
                }
                Ok(())
            }
        }
    }

    fn binary(
        &mut self,
        r: Value,
        op: BinaryOp,
        width: Width,
        x: Value,
        y: Value,
    ) -> Result<(), Diagnostic> {
        let (xl, xh, yl, yh) = (self.lo(x)?, self.hi(x)?, self.lo(y)?, self.hi(y)?);
        let dl = self.dst(r, false).map(Dest::Both);
        let dh = self.dst(r, true).map(Dest::Both);
        let w64 = width == Width::W64;
        if let Some(aop) = alu_of(op) {
            if let (AluOp::And, Some(Dest::Both(d)), S::C(c)) = (aop, dl, yl) {
                // A mask of whole bytes is one `ld_field` that keeps those bytes and zeroes
                // the rest, where an ALU instruction would first need the mask in a register.
                if let Some(bmask) = byte_mask(c).filter(|_| c > 0xff) {
                    self.ld_field(d, bmask, xl, ShiftClass::Right, 0, true)?;
                    if let (true, Some(dh)) = (w64, dh) {
                        self.alu(dh, xh, AluOp::And, yh)?;
                    }
                    return Ok(());
                }
            }
            let dl = dl.unwrap_or(Dest::None);
            self.alu(dl, xl, aop, yl)?;
            if w64 {
                if let Some(dh) = dh {
                    let hop = match aop {
                        AluOp::Add => AluOp::AddC,
                        AluOp::Sub => AluOp::SubC,
                        o => o,
                    };
                    self.alu(dh, xh, hop, yh)?;
                }
            }
            return Ok(());
        }
        match op {
            BinaryOp::Lsh | BinaryOp::Rsh | BinaryOp::Arsh => {
                let S::C(k) = yl else {
                    return self.variable_shift(op, w64, (xl, xh), yl, dl, dh);
                };
                if !w64 {
                    let k = k & 31;
                    let Some(dl) = dl else { return Ok(()) };
                    if k == 0 {
                        return self.mov(dl, xl);
                    }
                    let (sop, sc) = match op {
                        BinaryOp::Lsh => (ShfOp::None, ShiftClass::Left),
                        BinaryOp::Rsh => (ShfOp::None, ShiftClass::Right),
                        _ => (ShfOp::Ashr, ShiftClass::Right),
                    };
                    return self.shf(dl, xl, sop, sc, k);
                }
                let k = k & 63;
                match op {
                    BinaryOp::Lsh => {
                        if k >= 32 {
                            if let Some(dh) = dh {
                                if k == 32 {
                                    self.mov(dh, xl)?;
                                } else {
                                    self.shf(dh, xl, ShfOp::None, ShiftClass::Left, k - 32)?;
                                }
                            }
                        } else {
                            if let Some(dh) = dh {
                                self.dbl(dh, xh, xl, 32 - k)?;
                            }
                            if let Some(dl) = dl {
                                self.shf(dl, xl, ShfOp::None, ShiftClass::Left, k)?;
                            }
                        }
                    }
                    BinaryOp::Rsh => {
                        if k >= 32 {
                            if let Some(dl) = dl {
                                if k == 32 {
                                    self.mov(dl, xh)?;
                                } else {
                                    self.shf(dl, xh, ShfOp::None, ShiftClass::Right, k - 32)?;
                                }
                            }
                        } else {
                            if let Some(dl) = dl {
                                self.dbl(dl, xh, xl, k)?;
                            }
                            if let Some(dh) = dh {
                                self.shf(dh, xh, ShfOp::None, ShiftClass::Right, k)?;
                            }
                        }
                    }
                    _ => {
                        if k >= 32 {
                            if let Some(dl) = dl {
                                if k == 32 {
                                    self.mov(dl, xh)?;
                                } else {
                                    self.shf(dl, xh, ShfOp::Ashr, ShiftClass::Right, k - 32)?;
                                }
                            }
                            if let Some(dh) = dh {
                                self.shf(dh, xh, ShfOp::Ashr, ShiftClass::Right, 31)?;
                            }
                        } else {
                            if let Some(dl) = dl {
                                self.dbl(dl, xh, xl, k)?;
                            }
                            if let Some(dh) = dh {
                                self.shf(dh, xh, ShfOp::Ashr, ShiftClass::Right, k)?;
                            }
                        }
                    }
                }
                Ok(())
            }
            BinaryOp::Mul => {
                if !w64 {
                    return self.mul32(xl, yl, dl, None);
                }
                if (xh == S::C(0) && yh == S::C(0)) || dh.is_none() {
                    // The low half of the product depends only on the low halves.
                    return self.mul32(xl, yl, dl, dh);
                }
                // (xh*2^32 + xl)(yh*2^32 + yl) mod 2^64: the cross products' low halves add
                // to the high half of xl*yl.
                let t = self.scratch()?;
                self.mul32(xl, yh, Some(Dest::Both(t)), None)?;
                let u = self.scratch()?;
                self.mul32(xh, yl, Some(Dest::Both(u)), None)?;
                self.alu(Dest::Both(t), S::R(t), AluOp::Add, S::R(u))?;
                self.mul32(xl, yl, dl, Some(Dest::Both(u)))?;
                if let Some(dh) = dh {
                    self.alu(dh, S::R(t), AluOp::Add, S::R(u))?;
                }
                Ok(())
            }
            BinaryOp::Div | BinaryOp::Mod => {
                // Division by a power of two is a shift, modulo a mask; any other divisor
                // (the kernel's NFP JIT takes only constants) runs the shift-subtract routine.
                let narrow = !w64 || (xh == S::C(0) && yh == S::C(0));
                let pow2 = match (yl, yh) {
                    (S::C(c), S::C(h)) if !w64 || h == 0 => {
                        Some(c as u64).filter(|c| c.is_power_of_two())
                    }
                    _ => None,
                };
                let Some(c) = pow2 else {
                    if narrow {
                        if let Some(dh) = dh {
                            self.mov(dh, S::C(0))?;
                        }
                        return self.divide32(xl, yl, op == BinaryOp::Mod, dl);
                    }
                    return self.divide64((xl, xh), (yl, yh), op == BinaryOp::Mod, (dl, dh));
                };
                let k = c.trailing_zeros();
                if op == BinaryOp::Div {
                    if k == 0 {
                        if let Some(dl) = dl {
                            self.mov(dl, xl)?;
                        }
                        if let Some(dh) = dh {
                            self.mov(dh, xh)?;
                        }
                        return Ok(());
                    }
                    if let Some(dl) = dl {
                        if w64 {
                            self.dbl(dl, xh, xl, k)?;
                        } else {
                            self.shf(dl, xl, ShfOp::None, ShiftClass::Right, k)?;
                        }
                    }
                    if let Some(dh) = dh {
                        self.shf(dh, xh, ShfOp::None, ShiftClass::Right, k)?;
                    }
                } else {
                    if let Some(dl) = dl {
                        self.alu(dl, xl, AluOp::And, S::C((c - 1) as u32))?;
                    }
                    if let Some(dh) = dh {
                        self.mov(dh, S::C(0))?;
                    }
                }
                Ok(())
            }
            BinaryOp::SDiv | BinaryOp::SMod => {
                let want_mod = op == BinaryOp::SMod;
                if !w64 {
                    return self.sdivide32(xl, yl, want_mod, dl);
                }
                // Operands below 2^32 are non-negative, so the unsigned routine is exact.
                if xh == S::C(0) && yh == S::C(0) {
                    if let Some(dh) = dh {
                        self.mov(dh, S::C(0))?;
                    }
                    return self.divide32(xl, yl, want_mod, dl);
                }
                Err(self.err(format!(
                    "64-bit {} of values that may be negative is not supported on the NFP target (the 32-bit form is, and the 64-bit form of values below 2^32)",
                    op.name()
                )))
            }
            _ => Err(self.err(format!("{} is not supported on the NFP target", op.name()))),
        }
    }

    /// A branch to a label inside the current expansion, patched by [`Self::bind`].
    fn branch_here(&mut self, insn: Insn) -> usize {
        self.push_branch(insn, Target::Here(usize::MAX));
        self.items.len() - 1
    }

    /// Points the branches `from` at the next item to be emitted.
    fn bind(&mut self, from: &[usize]) {
        let here = self.items.len();
        for &i in from {
            if let Some(item) = self.items.get_mut(i) {
                item.target = Some(Target::Here(here));
            }
        }
    }

    /// Unsigned 32-bit division or modulo by any divisor: the restoring shift-subtract loop,
    /// one quotient bit per iteration (32 iterations), with BPF's rules for a zero divisor
    /// (the quotient is 0, the remainder the dividend; see `ir::semantics`). The remainder
    /// can reach 2^32 after its shift when it was at least 2^31 before; that case always
    /// subtracts, decided by testing bit 31 before the shift (the shifts sit in the branch's
    /// defer slots, so they happen on both paths).
    fn divide32(
        &mut self,
        x: S,
        y: S,
        want_mod: bool,
        dst: Option<Dest>,
    ) -> Result<(), Diagnostic> {
        let Some(d) = dst else { return Ok(()) };
        let y = match y {
            S::R(r) => r,
            S::X(_) => {
                self.mov(Dest::Both(RET_LO), y)?;
                RET_LO
            }
            S::C(c) => {
                self.imm32(Dest::Both(RET_LO), c);
                RET_LO
            }
        };
        let (xr, rem, quo, cnt) = (
            self.scratch()?,
            self.scratch()?,
            self.scratch()?,
            self.scratch()?,
        );
        let br = |cond: BrCond, defer: u8| Insn::Br {
            cond,
            target: 0,
            defer,
        };
        let gpr = |bank: Bank, r: u8| Operand::Gpr(bank, r);
        self.mov(Dest::None, S::R(y))?;
        let to_zero = self.branch_here(br(BrCond::Eq, 0));
        self.mov(Dest::Both(xr), x)?;
        self.imm32(Dest::Both(rem), 0);
        self.imm32(Dest::Both(quo), 0);
        self.imm32(Dest::Both(cnt), 32);
        let top = self.items.len();
        let to_sub = self.branch_here(Insn::BrBit {
            src: gpr(Bank::A, rem),
            bit: 31,
            set: true,
            target: 0,
            defer: 3,
        });
        self.dbl(Dest::Both(rem), S::R(rem), S::R(xr), 31)?;
        self.shf(Dest::Both(xr), S::R(xr), ShfOp::None, ShiftClass::Left, 1)?;
        self.shf(Dest::Both(quo), S::R(quo), ShfOp::None, ShiftClass::Left, 1)?;
        self.alu(Dest::None, S::R(rem), AluOp::Sub, S::R(y))?;
        let to_skip = self.branch_here(br(BrCond::Lo, 0));
        self.bind(&[to_sub]);
        self.alu(Dest::Both(rem), S::R(rem), AluOp::Sub, S::R(y))?;
        self.alu(Dest::Both(quo), S::R(quo), AluOp::Or, S::C(1))?;
        self.bind(&[to_skip]);
        self.alu(Dest::Both(cnt), S::R(cnt), AluOp::Sub, S::C(1))?;
        self.push_branch(br(BrCond::Ne, 0), Target::Here(top));
        let to_done = self.branch_here(br(BrCond::Always, 1));
        self.mov(d, S::R(if want_mod { rem } else { quo }))?;
        self.bind(&[to_zero]);
        self.mov(d, if want_mod { x } else { S::C(0) })?;
        self.bind(&[to_done]);
        Ok(())
    }

    /// `|x|` of a 32-bit half into register `r`: a constant folded, else a move that sets
    /// the condition codes and a negation when the sign bit was set.
    fn abs32(&mut self, r: u8, x: S) -> Result<(), Diagnostic> {
        if let S::C(c) = x {
            self.imm32(Dest::Both(r), (c as i32).unsigned_abs());
            return Ok(());
        }
        self.alu(Dest::Both(r), S::C(0), AluOp::Or, x)?;
        let to_positive = self.branch_here(Insn::Br {
            cond: BrCond::Ge,
            target: 0,
            defer: 0,
        });
        self.alu(Dest::Both(r), S::C(0), AluOp::Sub, S::R(r))?;
        self.bind(&[to_positive]);
        Ok(())
    }

    /// Signed 32-bit division or modulo (BPF_SDIV, BPF_SMOD of ISA v4): the unsigned
    /// routine on the magnitudes, then the sign of the quotient (the operands' signs differ)
    /// or of the remainder (the dividend's) applied with `(r ^ s) - s` where `s` is 0 or all
    /// ones. This gives `ir::semantics`' results on every edge: a zero divisor (quotient 0,
    /// remainder the dividend, whose magnitude gets its sign back) and `INT_MIN / -1`
    /// (the magnitude 2^31 read back as `INT_MIN`, remainder 0). The signs wait in
    /// next-neighbour registers 0 and 1, which nothing else uses, because the routine takes
    /// every scratch register.
    fn sdivide32(
        &mut self,
        x: S,
        y: S,
        want_mod: bool,
        dst: Option<Dest>,
    ) -> Result<(), Diagnostic> {
        let Some(Dest::Both(d)) = dst else {
            return Ok(());
        };
        self.alu(Dest::Nn(0), x, AluOp::Xor, y)?;
        self.mov(Dest::Nn(1), x)?;
        self.abs32(RET_HI, x)?;
        self.abs32(RET_LO, y)?;
        // Constants the moves above put in scratch are dead: the routine may have them all.
        self.scratch_next = 0;
        self.divide32(S::R(RET_HI), S::R(RET_LO), want_mod, Some(Dest::Both(d)))?;
        self.push(Insn::Alu {
            dst: Dest::Both(RET_LO),
            a: Operand::None,
            op: AluOp::PassB,
            b: Operand::Nn(u8::from(want_mod)),
        });
        self.shf(
            Dest::Both(RET_LO),
            S::R(RET_LO),
            ShfOp::Ashr,
            ShiftClass::Right,
            31,
        )?;
        self.alu(Dest::Both(d), S::R(d), AluOp::Xor, S::R(RET_LO))?;
        self.alu(Dest::Both(d), S::R(d), AluOp::Sub, S::R(RET_LO))
    }

    /// Unsigned 64-bit division or modulo: the loop of [`Self::divide32`] on register pairs
    /// (64 iterations; the dividend shifts into the remainder a bit at a time). Registers:
    /// the four scratch registers hold the dividend and the remainder (or the quotient), the
    /// result's own pair holds the quotient (or the remainder), the return registers hold the
    /// counter and a divisor half that is neither a register nor an 8-bit constant.
    fn divide64(
        &mut self,
        (xl, xh): (S, S),
        (yl, yh): (S, S),
        want_mod: bool,
        (dl, dh): (Option<Dest>, Option<Dest>),
    ) -> Result<(), Diagnostic> {
        let (Some(Dest::Both(rl)), Some(Dest::Both(rh))) = (dl, dh) else {
            return Err(self.err(
                "64-bit division or modulo whose result has a constant half is not supported on the NFP target",
            ));
        };
        let mut ret_lo_free = true;
        let mut divisor = |sel: &mut Self, y: S| -> Result<S, Diagnostic> {
            match y {
                S::R(_) | S::X(_) => Ok(y),
                S::C(c) if c <= 0xff => Ok(y),
                S::C(c) if ret_lo_free => {
                    ret_lo_free = false;
                    sel.imm32(Dest::Both(RET_LO), c);
                    Ok(S::R(RET_LO))
                }
                S::C(_) => Err(sel.err(
                    "64-bit division by a constant whose halves both exceed 8 bits is not supported on the NFP target",
                )),
            }
        };
        let (yl, yh) = (divisor(self, yl)?, divisor(self, yh)?);
        let (x_lo, x_hi) = (self.scratch()?, self.scratch()?);
        let (t_lo, t_hi) = (self.scratch()?, self.scratch()?);
        // The remainder in the result pair for modulo, the quotient there for division.
        let ((r_lo, r_hi), (q_lo, q_hi)) = if want_mod {
            ((rl, rh), (t_lo, t_hi))
        } else {
            ((t_lo, t_hi), (rl, rh))
        };
        let cnt = RET_HI;
        let br = |cond: BrCond, defer: u8| Insn::Br {
            cond,
            target: 0,
            defer,
        };
        self.alu(Dest::None, yl, AluOp::Or, yh)?;
        let to_zero = self.branch_here(br(BrCond::Eq, 0));
        self.mov(Dest::Both(x_lo), xl)?;
        self.mov(Dest::Both(x_hi), xh)?;
        for r in [r_lo, r_hi, q_lo, q_hi] {
            self.imm32(Dest::Both(r), 0);
        }
        self.imm32(Dest::Both(cnt), 64);
        let top = self.items.len();
        let to_big = self.branch_here(Insn::BrBit {
            src: Operand::Gpr(Bank::A, r_hi),
            bit: 31,
            set: true,
            target: 0,
            defer: 3,
        });
        self.dbl(Dest::Both(r_hi), S::R(r_hi), S::R(r_lo), 31)?;
        self.dbl(Dest::Both(r_lo), S::R(r_lo), S::R(x_hi), 31)?;
        self.dbl(Dest::Both(x_hi), S::R(x_hi), S::R(x_lo), 31)?;
        let shift_rest = |sel: &mut Self| -> Result<(), Diagnostic> {
            sel.shf(
                Dest::Both(x_lo),
                S::R(x_lo),
                ShfOp::None,
                ShiftClass::Left,
                1,
            )?;
            sel.dbl(Dest::Both(q_hi), S::R(q_hi), S::R(q_lo), 31)?;
            sel.shf(
                Dest::Both(q_lo),
                S::R(q_lo),
                ShfOp::None,
                ShiftClass::Left,
                1,
            )
        };
        shift_rest(self)?;
        self.alu(Dest::None, S::R(r_lo), AluOp::Sub, yl)?;
        self.alu(Dest::None, S::R(r_hi), AluOp::SubC, yh)?;
        let to_skip = self.branch_here(br(BrCond::Lo, 0));
        let to_sub = self.branch_here(br(BrCond::Always, 0));
        self.bind(&[to_big]);
        shift_rest(self)?;
        self.bind(&[to_sub]);
        self.alu(Dest::Both(r_lo), S::R(r_lo), AluOp::Sub, yl)?;
        self.alu(Dest::Both(r_hi), S::R(r_hi), AluOp::SubC, yh)?;
        self.alu(Dest::Both(q_lo), S::R(q_lo), AluOp::Or, S::C(1))?;
        self.bind(&[to_skip]);
        self.alu(Dest::Both(cnt), S::R(cnt), AluOp::Sub, S::C(1))?;
        self.push_branch(br(BrCond::Ne, 0), Target::Here(top));
        let to_done = self.branch_here(br(BrCond::Always, 0));
        self.bind(&[to_zero]);
        // A zero divisor: the quotient is 0, the remainder the dividend.
        if want_mod {
            self.mov(Dest::Both(rl), xl)?;
            self.mov(Dest::Both(rh), xh)?;
        } else {
            self.imm32(Dest::Both(rl), 0);
            self.imm32(Dest::Both(rh), 0);
        }
        self.bind(&[to_done]);
        Ok(())
    }

    fn variable_shift(
        &mut self,
        op: BinaryOp,
        w64: bool,
        (xl, xh): (S, S),
        yl: S,
        dl: Option<Dest>,
        dh: Option<Dest>,
    ) -> Result<(), Diagnostic> {
        if w64 {
            return self.variable_shift64(op, xl, xh, yl, dl, dh);
        }
        let _ = dh;
        let Some(dl) = dl else { return Ok(()) };
        // The indirect shift takes its amount from the previous ALU instruction's B operand.
        let amount = self.operand(yl, Bank::B, true)?;
        let x = Operand::Gpr(Bank::B, self.in_reg(xl)?);
        self.push(Insn::Alu {
            dst: Dest::None,
            a: Operand::None,
            op: AluOp::PassB,
            b: amount,
        });
        let (sop, sc) = match op {
            BinaryOp::Lsh => (ShfOp::None, ShiftClass::Left),
            BinaryOp::Rsh => (ShfOp::None, ShiftClass::Right),
            _ => (ShfOp::Ashr, ShiftClass::Right),
        };
        self.push(Insn::Shf {
            dst: dl,
            a: Operand::None,
            op: sop,
            b: x,
            sc,
            shift: INDIRECT_SHIFT,
        });
        Ok(())
    }

    /// `dst = x op (n & 63)` for a 64-bit `x` and an amount in a register: bit 5 of the
    /// amount picks between shifting across the halves (amounts 0 to 31, a double shift for
    /// the half that takes bits from the other) and moving one half into the other (32 to
    /// 63). Indirect shifts take their amount, modulo 32, from the B operand of the ALU
    /// instruction before them.
    fn variable_shift64(
        &mut self,
        op: BinaryOp,
        xl: S,
        xh: S,
        n: S,
        dl: Option<Dest>,
        dh: Option<Dest>,
    ) -> Result<(), Diagnostic> {
        // The amount goes to the return register (free inside an expansion) so that the
        // four scratch registers suffice even when every operand needs copying.
        let n = match n {
            S::R(r) => r,
            _ => {
                self.mov(Dest::Both(RET_LO), n)?;
                RET_LO
            }
        };
        let lo = self.in_reg(xl)?;
        let hi = self.in_reg(xh)?;
        let t = self.scratch()?;
        let u = self.scratch()?;
        let (dl, dh) = (dl.unwrap_or(Dest::None), dh.unwrap_or(Dest::None));
        let amount = |sel: &mut Self, r: u8| {
            sel.push(Insn::Alu {
                dst: Dest::None,
                a: Operand::None,
                op: AluOp::PassB,
                b: Operand::Gpr(Bank::B, r),
            })
        };
        let shift = |sel: &mut Self, dst: Dest, a: Operand, b: u8, op: ShfOp, sc: ShiftClass| {
            sel.push(Insn::Shf {
                dst,
                a,
                op,
                b: Operand::Gpr(Bank::B, b),
                sc,
                shift: INDIRECT_SHIFT,
            })
        };
        let to_big = self.branch_here(Insn::BrBit {
            src: Operand::Gpr(Bank::A, n),
            bit: 5,
            set: true,
            target: 0,
            defer: 0,
        });
        let arith = if op == BinaryOp::Arsh {
            ShfOp::Ashr
        } else {
            ShfOp::None
        };
        match op {
            BinaryOp::Lsh => {
                // hi' = (hi << n) | ((lo >> 1) >> (31 - n)), which is right for n = 0 too.
                self.shf(Dest::Both(t), S::R(lo), ShfOp::None, ShiftClass::Right, 1)?;
                self.alu(Dest::Both(u), S::C(31), AluOp::Sub, S::R(n))?;
                amount(self, u);
                shift(
                    self,
                    Dest::Both(t),
                    Operand::None,
                    t,
                    ShfOp::None,
                    ShiftClass::Right,
                );
                amount(self, n);
                shift(
                    self,
                    Dest::Both(u),
                    Operand::None,
                    hi,
                    ShfOp::None,
                    ShiftClass::Left,
                );
                shift(self, dl, Operand::None, lo, ShfOp::None, ShiftClass::Left);
                self.alu(dh, S::R(u), AluOp::Or, S::R(t))?;
            }
            _ => {
                amount(self, n);
                shift(
                    self,
                    dl,
                    Operand::Gpr(Bank::A, hi),
                    lo,
                    ShfOp::None,
                    ShiftClass::DoubleRight,
                );
                shift(self, dh, Operand::None, hi, arith, ShiftClass::Right);
            }
        }
        let to_done = self.branch_here(Insn::Br {
            cond: BrCond::Always,
            target: 0,
            defer: 0,
        });
        self.bind(&[to_big]);
        amount(self, n);
        match op {
            BinaryOp::Lsh => {
                shift(self, dh, Operand::None, lo, ShfOp::None, ShiftClass::Left);
                self.mov(dl, S::C(0))?;
            }
            BinaryOp::Rsh => {
                shift(self, dl, Operand::None, hi, ShfOp::None, ShiftClass::Right);
                self.mov(dh, S::C(0))?;
            }
            _ => {
                shift(self, dl, Operand::None, hi, ShfOp::Ashr, ShiftClass::Right);
                self.shf(dh, S::R(hi), ShfOp::Ashr, ShiftClass::Right, 31)?;
            }
        }
        self.bind(&[to_done]);
        Ok(())
    }

    fn unary(&mut self, r: Value, op: UnaryOp, width: Width, x: Value) -> Result<(), Diagnostic> {
        let (xl, xh) = (self.lo(x)?, self.hi(x)?);
        let dl = self.dst(r, false).map(Dest::Both);
        let dh = self.dst(r, true).map(Dest::Both);
        let w64 = width == Width::W64;
        match op {
            UnaryOp::Mov => {
                if let Some(dl) = dl {
                    self.mov(dl, xl)?;
                }
                if let Some(dh) = dh {
                    self.mov(dh, xh)?;
                }
            }
            UnaryOp::Neg => {
                self.alu(dl.unwrap_or(Dest::None), S::C(0), AluOp::Sub, xl)?;
                if let (true, Some(dh)) = (w64, dh) {
                    self.alu(dh, S::C(0), AluOp::SubC, xh)?;
                }
            }
            UnaryOp::MovSx8 | UnaryOp::MovSx16 | UnaryOp::MovSx32 => {
                let bits = match op {
                    UnaryOp::MovSx8 => 8,
                    UnaryOp::MovSx16 => 16,
                    _ => 32,
                };
                let Some(Dest::Both(l)) = dl else {
                    return Ok(());
                };
                if bits == 32 {
                    self.mov(Dest::Both(l), xl)?;
                } else {
                    let t = self.scratch()?;
                    self.shf(Dest::Both(t), xl, ShfOp::None, ShiftClass::Left, 32 - bits)?;
                    self.shf(
                        Dest::Both(l),
                        S::R(t),
                        ShfOp::Ashr,
                        ShiftClass::Right,
                        32 - bits,
                    )?;
                }
                if let Some(dh) = dh {
                    self.shf(dh, S::R(l), ShfOp::Ashr, ShiftClass::Right, 31)?;
                }
            }
        }
        Ok(())
    }

    /// The memory level of an access in `region`.
    fn level(&self, region: Region) -> MemLevel {
        match region {
            Region::Packet => MemLevel::Ctm,
            Region::Stack(_) => MemLevel::Lm,
            Region::MapValue(Some(m)) | Region::Global(m) => self
                .map_levels
                .get(cranelift_codegen::entity::EntityRef::index(m))
                .copied()
                .unwrap_or(MemLevel::Emem),
            _ => MemLevel::Emem,
        }
    }

    /// The local-memory operand of the stack word at byte `off`, if it has one.
    fn lm_word(&mut self, off: u32) -> Option<Operand> {
        if !off.is_multiple_of(4) || !(LM_WINDOW_START..STACK_SIZE).contains(&off) {
            return None;
        }
        let rel = off - LM_WINDOW_START;
        let index = 3 - (rel / 64) as u8;
        self.lm_used[index as usize] = true;
        Some(Operand::Lm {
            index,
            offset: ((rel % 64) / 4) as u8,
        })
    }

    /// The constant stack offset of `base + offset`, when the base is a stack address.
    fn stack_const(&self, base: Value, offset: i32) -> Option<u32> {
        let s = self.shape(base);
        match (s.hi, s.lo) {
            (Half::Const(REGION_STACK), Half::Const(lo)) => Some(lo.wrapping_add(offset as u32)),
            _ => None,
        }
    }

    /// Issues a command at `base + offset` with the data already in transfer register `X`.
    fn command_at(
        &mut self,
        region: Region,
        size: MemSize,
        base: Value,
        offset: i32,
        action: MemAction,
    ) -> Result<(), Diagnostic> {
        let count = size.bytes().trailing_zeros() as u8;
        let (bl, bh) = (self.lo(base)?, self.hi(base)?);
        let level = self.level(region);
        let (a, b, mode, level) = if bh == S::C(REGION_PACKET) {
            let a = Operand::Gpr(Bank::A, self.in_reg(bl)?);
            let b = if (0..=0x7f).contains(&offset) {
                Operand::Imm(offset as u8)
            } else {
                let t = self.scratch()?;
                self.imm32(Dest::Both(t), offset as u32);
                Operand::Gpr(Bank::B, t)
            };
            (a, b, AddrMode::Implied, MemLevel::Ctm)
        } else if let Some(off) = self.stack_const(base, offset) {
            let t = self.scratch()?;
            self.imm32(Dest::Both(t), off);
            (
                Operand::Gpr(Bank::A, t),
                Operand::Imm(0),
                AddrMode::Implied,
                MemLevel::Lm,
            )
        } else {
            let a = match bh {
                S::C(c) if c <= 0x7f => Operand::Imm(c as u8),
                _ => Operand::Gpr(Bank::A, self.in_reg(bh)?),
            };
            let b = if offset == 0 {
                Operand::Gpr(Bank::B, self.in_reg(bl)?)
            } else {
                let t = self.scratch()?;
                self.alu(Dest::Both(t), bl, AluOp::Add, S::C(offset as u32))?;
                Operand::Gpr(Bank::B, t)
            };
            let level = if matches!(bh, S::C(REGION_STACK)) {
                MemLevel::Lm
            } else {
                level
            };
            (a, b, AddrMode::Region, level)
        };
        self.push(Insn::Cmd {
            level,
            action,
            xfer: X,
            count,
            a,
            b,
            sig: 1,
            swap: CtxSwap::Swap,
            mode,
            token: 0,
        });
        Ok(())
    }

    /// Moves a loaded value of `size` from read transfer registers `X..` into `r`.
    fn load_from_xfer(&mut self, r: Value, size: MemSize, signed: bool) -> Result<(), Diagnostic> {
        let dl = self.dst(r, false);
        let dh = self.dst(r, true);
        let bytes = size.bytes();
        if !signed {
            if let Some(d) = dl {
                self.push(Insn::Alu {
                    dst: Dest::Both(d),
                    a: Operand::None,
                    op: AluOp::PassB,
                    b: Operand::Xfer(X),
                });
            }
            if let Some(d) = dh {
                self.push(Insn::Alu {
                    dst: Dest::Both(d),
                    a: Operand::None,
                    op: AluOp::PassB,
                    b: if bytes == 8 {
                        Operand::Xfer(X + 1)
                    } else {
                        Operand::Imm(0)
                    },
                });
            }
            return Ok(());
        }
        let Some(d) = dl else { return Ok(()) };
        if bytes < 4 {
            let k = 32 - 8 * bytes;
            self.push(Insn::Shf {
                dst: Dest::Both(d),
                a: Operand::None,
                op: ShfOp::None,
                b: Operand::Xfer(X),
                sc: ShiftClass::Left,
                shift: k as u8,
            });
            self.shf(Dest::Both(d), S::R(d), ShfOp::Ashr, ShiftClass::Right, k)?;
        } else {
            self.push(Insn::Alu {
                dst: Dest::Both(d),
                a: Operand::None,
                op: AluOp::PassB,
                b: Operand::Xfer(X),
            });
        }
        if let Some(h) = dh {
            if bytes == 8 {
                self.push(Insn::Alu {
                    dst: Dest::Both(h),
                    a: Operand::None,
                    op: AluOp::PassB,
                    b: Operand::Xfer(X + 1),
                });
            } else {
                self.shf(Dest::Both(h), S::R(d), ShfOp::Ashr, ShiftClass::Right, 31)?;
            }
        }
        Ok(())
    }

    fn load(
        &mut self,
        r: Value,
        region: Region,
        size: MemSize,
        signed: bool,
        base: Value,
        offset: i32,
    ) -> Result<(), Diagnostic> {
        if region == Region::Ctx && self.entry == EntryKind::Xdp {
            if offset % 4 != 0 || !(0..24).contains(&offset) || size != MemSize::U32 {
                return Err(self.err(format!(
                    "context load of {} bytes at offset {offset}: struct xdp_md has 4-byte fields at offsets 0 to 20",
                    size.bytes()
                )));
            }
            if let Some(d) = self.dst(r, false) {
                self.push(Insn::Alu {
                    dst: Dest::Both(d),
                    a: Operand::None,
                    op: AluOp::PassB,
                    b: Operand::Xfer(XFER_META + (offset / 4) as u8),
                });
            }
            return Ok(());
        }
        if !signed {
            if let Some(off) = self.stack_const(base, offset) {
                let words = if size == MemSize::U64 { 2 } else { 1 };
                if size.bytes() >= 4 {
                    let ops: Vec<Option<Operand>> =
                        (0..words).map(|w| self.lm_word(off + 4 * w)).collect();
                    if ops.iter().all(|o| o.is_some()) {
                        for (w, o) in ops.into_iter().enumerate() {
                            if let (Some(d), Some(o)) = (self.dst(r, w == 1), o) {
                                self.push(Insn::Alu {
                                    dst: Dest::Both(d),
                                    a: Operand::None,
                                    op: AluOp::PassB,
                                    b: o,
                                });
                            }
                        }
                        return Ok(());
                    }
                }
            }
        }
        self.command_at(region, size, base, offset, MemAction::Read)?;
        if !signed && self.foldable.contains(&r) {
            // Every use reads the transfer registers before the next command overwrites
            // them: no move into a general-purpose register.
            self.in_xfer.insert(r, X);
            return Ok(());
        }
        self.load_from_xfer(r, size, signed)
    }

    fn store(
        &mut self,
        region: Region,
        size: MemSize,
        base: Value,
        offset: i32,
        value: Value,
    ) -> Result<(), Diagnostic> {
        let (vl, vh) = (self.lo(value)?, self.hi(value)?);
        if let Some(off) = self.stack_const(base, offset) {
            if size.bytes() >= 4 {
                let words = if size == MemSize::U64 { 2 } else { 1 };
                let ops: Vec<Option<Operand>> =
                    (0..words).map(|w| self.lm_word(off + 4 * w)).collect();
                if ops.iter().all(|o| o.is_some()) {
                    for (w, o) in ops.into_iter().enumerate() {
                        if let Some(Operand::Lm { index, offset }) = o {
                            let src = if w == 0 { vl } else { vh };
                            self.mov(Dest::Lm { index, offset }, src)?;
                        }
                    }
                    return Ok(());
                }
            }
        }
        self.mov(Dest::Xfer(X), vl)?;
        if size == MemSize::U64 {
            self.mov(Dest::Xfer(X + 1), vh)?;
        }
        self.command_at(region, size, base, offset, MemAction::Write)
    }

    fn helper(&mut self, id: u32, args: &[Value]) -> Result<(), Diagnostic> {
        for (i, a) in args.iter().enumerate().take(5) {
            let (l, h) = (self.lo(*a)?, self.hi(*a)?);
            self.mov(Dest::Xfer(X + 2 * i as u8), l)?;
            self.mov(Dest::Xfer(X + 2 * i as u8 + 1), h)?;
        }
        let _ = self.map_types;
        self.push(Insn::Cmd {
            level: MemLevel::Lookup,
            action: MemAction::Helper,
            xfer: X,
            count: args.len().min(5) as u8,
            a: Operand::None,
            b: Operand::Imm((id & 0x7f) as u8),
            sig: 1,
            swap: CtxSwap::Swap,
            mode: AddrMode::Region,
            token: (id >> 7) as u8,
        });
        Ok(())
    }

    /// `bpf_tail_call`: the lookup engine checks the program array and the tail-call limit
    /// and answers with the object program index to continue in (all ones when the call
    /// fails); a compare-and-branch per linked program jumps to that program's first word.
    /// A failed call falls through, as in BPF; any other answer is a program that did not
    /// compile and so is not in the code store, and the packet stops with a fault that names
    /// it rather than fall through to a verdict the kernel would not give.
    fn tail_call(&mut self, ctx: Value, map: ir::MapRef, index: Value) -> Result<(), Diagnostic> {
        let m = cranelift_codegen::entity::EntityRef::index(map) as u32;
        let halves = [
            self.lo(ctx)?,
            self.hi(ctx)?,
            S::C(0),
            S::C(REGION_MAP + m),
            self.lo(index)?,
            self.hi(index)?,
        ];
        for (i, h) in halves.into_iter().enumerate() {
            self.mov(Dest::Xfer(X + i as u8), h)?;
        }
        self.push(Insn::Cmd {
            level: MemLevel::Lookup,
            action: MemAction::Helper,
            xfer: X,
            count: 3,
            a: Operand::None,
            b: Operand::Imm(TAIL_CALL_HELPER as u8),
            sig: 1,
            swap: CtxSwap::Swap,
            mode: AddrMode::Region,
            token: 0,
        });
        for p in self.tail_targets.clone() {
            self.alu(Dest::None, S::X(X), AluOp::Sub, S::C(p as u32))?;
            self.push_branch(
                Insn::Br {
                    cond: BrCond::Eq,
                    target: 0,
                    defer: 0,
                },
                Target::Program(p),
            );
        }
        // All ones plus one is zero: the call failed and execution falls through.
        self.alu(Dest::None, S::X(X), AluOp::Add, S::C(1))?;
        let to_fall_through = self.branch_here(Insn::Br {
            cond: BrCond::Eq,
            target: 0,
            defer: 0,
        });
        self.push_branch(
            Insn::Br {
                cond: BrCond::Always,
                target: 0,
                defer: 1,
            },
            Target::TailCallFault,
        );
        self.mov(Dest::Both(RET_LO), S::X(X))?;
        self.bind(&[to_fall_through]);
        Ok(())
    }

    fn brif(
        &mut self,
        cond: JmpCond,
        width: Width,
        x: Value,
        y: Value,
        dests: &[BlockCall; 2],
        next: Option<Block>,
    ) -> Result<(), Diagnostic> {
        let (xl, xh, yl, yh) = (self.lo(x)?, self.hi(x)?, self.lo(y)?, self.hi(y)?);
        let narrow = width == Width::W32 || matches!((xh, yh), (S::C(a), S::C(b)) if a == b);
        let signed_narrow_64 = width == Width::W64;
        let taken = if self.has_moves(&dests[0]) {
            self.stubs.push((Vec::new(), dests[0].block));
            Target::Stub(self.stubs.len() - 1)
        } else {
            Target::Block(dests[0].block)
        };
        let br = |cond: BrCond| Insn::Br {
            cond,
            target: 0,
            defer: 0,
        };
        match cond {
            JmpCond::Eq | JmpCond::Ne => {
                let bc = if cond == JmpCond::Eq {
                    BrCond::Eq
                } else {
                    BrCond::Ne
                };
                if narrow {
                    self.alu(Dest::None, xl, AluOp::Sub, yl)?;
                } else if yl == S::C(0) && yh == S::C(0) {
                    // A test against zero (a null check) is the OR of the halves.
                    self.alu(Dest::None, xl, AluOp::Or, xh)?;
                } else if xh == S::C(0) || yh == S::C(0) {
                    // One high half is zero: the other must be zero too, so OR it in.
                    let other = if xh == S::C(0) { yh } else { xh };
                    let t = self.scratch()?;
                    self.alu(Dest::Both(t), xl, AluOp::Xor, yl)?;
                    self.alu(Dest::None, S::R(t), AluOp::Or, other)?;
                } else {
                    let t = self.scratch()?;
                    let u = self.scratch()?;
                    self.alu(Dest::Both(t), xl, AluOp::Xor, yl)?;
                    self.alu(Dest::Both(u), xh, AluOp::Xor, yh)?;
                    self.alu(Dest::None, S::R(t), AluOp::Or, S::R(u))?;
                }
                self.push_branch(br(bc), taken);
            }
            JmpCond::Set => match (narrow, yl) {
                (true, S::C(c)) if c.is_power_of_two() => {
                    let src = Operand::Gpr(Bank::A, self.in_reg(xl)?);
                    self.push_branch(
                        Insn::BrBit {
                            src,
                            bit: c.trailing_zeros() as u8,
                            set: true,
                            target: 0,
                            defer: 0,
                        },
                        taken,
                    );
                }
                (true, _) => {
                    self.alu(Dest::None, xl, AluOp::And, yl)?;
                    self.push_branch(br(BrCond::Ne), taken);
                }
                (false, _) => {
                    let t = self.scratch()?;
                    let u = self.scratch()?;
                    self.alu(Dest::Both(t), xl, AluOp::And, yl)?;
                    self.alu(Dest::Both(u), xh, AluOp::And, yh)?;
                    self.alu(Dest::None, S::R(t), AluOp::Or, S::R(u))?;
                    self.push_branch(br(BrCond::Ne), taken);
                }
            },
            _ => {
                // (swap operands, condition) after `left - right`, as in the Linux JIT.
                let (swap, mut bc) = match cond {
                    JmpCond::Gt => (true, BrCond::Lo),
                    JmpCond::Ge => (false, BrCond::Hs),
                    JmpCond::Lt => (false, BrCond::Lo),
                    JmpCond::Le => (true, BrCond::Hs),
                    JmpCond::Sgt => (true, BrCond::Lt),
                    JmpCond::Sge => (false, BrCond::Ge),
                    JmpCond::Slt => (false, BrCond::Lt),
                    _ => (true, BrCond::Ge),
                };
                let (ll, lh, rl, rh) = if swap {
                    (yl, yh, xl, xh)
                } else {
                    (xl, xh, yl, yh)
                };
                if narrow && signed_narrow_64 {
                    // Equal constant high halves: the order is the unsigned order of the low.
                    bc = match bc {
                        BrCond::Lt => BrCond::Lo,
                        BrCond::Ge => BrCond::Hs,
                        o => o,
                    };
                }
                self.alu(Dest::None, ll, AluOp::Sub, rl)?;
                if !narrow {
                    self.alu(Dest::None, lh, AluOp::SubC, rh)?;
                }
                self.push_branch(br(bc), taken);
            }
        }
        if let Target::Stub(k) = taken {
            let branch = self.items.len() - 1;
            let start = self.items.len();
            self.scratch_next = 0;
            self.jump_with_moves(&dests[0], false)?;
            let stub: Vec<Item> = self.items.drain(start..).collect();
            // Many edges carry the same moves to the same block (every early `return
            // XDP_PASS` sets the return value and jumps to the exit block): such edges share
            // one stub.
            match self.stub_like(&stub).filter(|e| *e < k) {
                Some(existing) => {
                    self.stubs.pop();
                    self.items[branch].target = Some(Target::Stub(existing));
                }
                None => self.stubs[k].0 = stub,
            }
        }
        self.scratch_next = 0;
        if Some(dests[1].block) != next {
            self.jump_with_moves(&dests[1], true)
        } else {
            self.block_moves(&dests[1])
        }
    }

    /// The prologue: parameters from the dispatcher's transfer registers and the
    /// local-memory address registers of the stack window.
    pub fn prologue(&mut self, entry: EntryKind) -> Result<Vec<Item>, Diagnostic> {
        let start = self.items.len();
        self.bpf = u32::MAX;
        self.scratch_next = 0;
        if entry == EntryKind::Memory {
            if let Some(eb) = self.func.entry_block() {
                let params = self.func.dfg.block_params(eb).to_vec();
                for (i, p) in params.iter().enumerate().take(2) {
                    if let Some(d) = self.dst(*p, false) {
                        self.push(Insn::Alu {
                            dst: Dest::Both(d),
                            a: Operand::None,
                            op: AluOp::PassB,
                            b: Operand::Xfer(XFER_META + if i == 0 { 0 } else { 2 }),
                        });
                    }
                    if let (0, Some(d)) = (i, self.dst(*p, true)) {
                        self.push(Insn::Alu {
                            dst: Dest::Both(d),
                            a: Operand::None,
                            op: AluOp::PassB,
                            b: Operand::Xfer(XFER_META + 1),
                        });
                    }
                }
            }
        }
        let used = self.lm_used;
        for (i, u) in used.iter().enumerate() {
            if *u {
                let t = SCRATCH[0];
                self.push(Insn::Alu {
                    dst: Dest::Both(t),
                    a: Operand::Xfer(XFER_LM_BASE),
                    op: AluOp::Add,
                    b: Operand::Imm((192 - 64 * i) as u8),
                });
                self.push(Insn::LocalCsrWr {
                    csr: CSR_ACT_LM_ADDR[i],
                    src: Operand::Gpr(Bank::A, t),
                });
            }
        }
        let out: Vec<Item> = self.items.drain(start..).collect();
        Ok(out)
    }
}
