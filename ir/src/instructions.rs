//! What an instruction is: [`InstructionData`], its operands, and the enums that name
//! operations.
//!
//! Every instruction has at most one result, so the result is not part of the instruction data:
//! the [`crate::dfg::DataFlowGraph`] attaches it. Operations reuse the vocabulary of
//! [`crate::semantics`] (`Width`, `JmpCond`, `ByteOrder`) so that there is one meaning per
//! name; [`BinaryOp`] and [`UnaryOp`] are the subsets of `AluOp` that make sense in SSA form
//! (`mov` at 64 bits is value reuse and has no instruction).
//!
//! Deviation from the design sketch: `mov.w32` is kept as a unary operation, because a 32-bit
//! move zero-extends its source and is therefore not value reuse. Lifting `w1 = w2` to
//! `mov.w32` keeps a one-to-one mapping that backends can emit as a single instruction.
//!
//! Variable-length operand lists (call arguments, branch arguments) are plain `Vec`s rather
//! than a pooled list as in Cranelift: BPF programs are small, and owning vectors keep the
//! data easy to match, compare and clone for every pass and the e-graph.

use crate::entities::{Block, FuncRef, MapRef, StackSlot, Value};
use crate::semantics::{self, AluOp, ByteOrder, JmpCond, Width};
use crate::types::{MemSize, Type};
use std::fmt;

/// A binary ALU operation: `dst = dst op src` of BPF with both operands as SSA values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    SDiv,
    Mod,
    SMod,
    Or,
    And,
    Xor,
    Lsh,
    Rsh,
    Arsh,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 13] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::SDiv,
        BinaryOp::Mod,
        BinaryOp::SMod,
        BinaryOp::Or,
        BinaryOp::And,
        BinaryOp::Xor,
        BinaryOp::Lsh,
        BinaryOp::Rsh,
        BinaryOp::Arsh,
    ];

    /// The `semantics` operation this stands for.
    pub fn alu_op(self) -> AluOp {
        match self {
            BinaryOp::Add => AluOp::Add,
            BinaryOp::Sub => AluOp::Sub,
            BinaryOp::Mul => AluOp::Mul,
            BinaryOp::Div => AluOp::Div,
            BinaryOp::SDiv => AluOp::SDiv,
            BinaryOp::Mod => AluOp::Mod,
            BinaryOp::SMod => AluOp::SMod,
            BinaryOp::Or => AluOp::Or,
            BinaryOp::And => AluOp::And,
            BinaryOp::Xor => AluOp::Xor,
            BinaryOp::Lsh => AluOp::Lsh,
            BinaryOp::Rsh => AluOp::Rsh,
            BinaryOp::Arsh => AluOp::Arsh,
        }
    }

    /// The binary operation for a `semantics` operation, if it is binary.
    pub fn from_alu_op(op: AluOp) -> Option<BinaryOp> {
        BinaryOp::ALL.into_iter().find(|b| b.alu_op() == op)
    }

    /// Computes the operation with [`semantics::alu`]; kept here only as a shorthand.
    pub fn eval(self, width: Width, a: u64, b: u64) -> u64 {
        semantics::alu(self.alu_op(), width, a, b)
    }

    /// True when `a op b == b op a` for all operands.
    pub fn is_commutative(self) -> bool {
        matches!(
            self,
            BinaryOp::Add | BinaryOp::Mul | BinaryOp::Or | BinaryOp::And | BinaryOp::Xor
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::SDiv => "sdiv",
            BinaryOp::Mod => "mod",
            BinaryOp::SMod => "smod",
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Xor => "xor",
            BinaryOp::Lsh => "lsh",
            BinaryOp::Rsh => "rsh",
            BinaryOp::Arsh => "arsh",
        }
    }

    pub fn from_name(name: &str) -> Option<BinaryOp> {
        BinaryOp::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// A unary ALU operation. `Mov` exists only for its 32-bit form, which zero-extends; a 64-bit
/// `mov` is accepted (it is the identity) but lifting never produces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnaryOp {
    Neg,
    Mov,
    MovSx8,
    MovSx16,
    MovSx32,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 5] = [
        UnaryOp::Neg,
        UnaryOp::Mov,
        UnaryOp::MovSx8,
        UnaryOp::MovSx16,
        UnaryOp::MovSx32,
    ];

    pub fn alu_op(self) -> AluOp {
        match self {
            UnaryOp::Neg => AluOp::Neg,
            UnaryOp::Mov => AluOp::Mov,
            UnaryOp::MovSx8 => AluOp::MovSx8,
            UnaryOp::MovSx16 => AluOp::MovSx16,
            UnaryOp::MovSx32 => AluOp::MovSx32,
        }
    }

    pub fn from_alu_op(op: AluOp) -> Option<UnaryOp> {
        UnaryOp::ALL.into_iter().find(|u| u.alu_op() == op)
    }

    /// Computes the operation with [`semantics::alu`]. `neg` reads its destination operand,
    /// the moves read their source operand, so the argument goes where BPF reads it.
    pub fn eval(self, width: Width, x: u64) -> u64 {
        match self {
            UnaryOp::Neg => semantics::alu(AluOp::Neg, width, x, 0),
            _ => semantics::alu(self.alu_op(), width, 0, x),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Mov => "mov",
            UnaryOp::MovSx8 => "movsx8",
            UnaryOp::MovSx16 => "movsx16",
            UnaryOp::MovSx32 => "movsx32",
        }
    }

    pub fn from_name(name: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.into_iter().find(|u| u.name() == name)
    }
}

/// The text-format name of a jump condition (`eq`, `sgt`, `set`, ...).
pub fn cond_name(cond: JmpCond) -> &'static str {
    match cond {
        JmpCond::Eq => "eq",
        JmpCond::Ne => "ne",
        JmpCond::Gt => "gt",
        JmpCond::Ge => "ge",
        JmpCond::Lt => "lt",
        JmpCond::Le => "le",
        JmpCond::Sgt => "sgt",
        JmpCond::Sge => "sge",
        JmpCond::Slt => "slt",
        JmpCond::Sle => "sle",
        JmpCond::Set => "set",
    }
}

/// Every jump condition, in a fixed order.
pub const ALL_CONDS: [JmpCond; 11] = [
    JmpCond::Eq,
    JmpCond::Ne,
    JmpCond::Gt,
    JmpCond::Ge,
    JmpCond::Lt,
    JmpCond::Le,
    JmpCond::Sgt,
    JmpCond::Sge,
    JmpCond::Slt,
    JmpCond::Sle,
    JmpCond::Set,
];

pub fn cond_from_name(name: &str) -> Option<JmpCond> {
    ALL_CONDS.into_iter().find(|c| cond_name(*c) == name)
}

/// The text-format name of a byte-order conversion, as llvm-objdump spells it (`be16`,
/// `le32`, `bswap64`). `bits` must be 16, 32 or 64.
pub fn endian_name(order: ByteOrder, bits: u8) -> Option<&'static str> {
    Some(match (order, bits) {
        (ByteOrder::ToLe, 16) => "le16",
        (ByteOrder::ToLe, 32) => "le32",
        (ByteOrder::ToLe, 64) => "le64",
        (ByteOrder::ToBe, 16) => "be16",
        (ByteOrder::ToBe, 32) => "be32",
        (ByteOrder::ToBe, 64) => "be64",
        (ByteOrder::Swap, 16) => "bswap16",
        (ByteOrder::Swap, 32) => "bswap32",
        (ByteOrder::Swap, 64) => "bswap64",
        _ => return None,
    })
}

pub fn endian_from_name(name: &str) -> Option<(ByteOrder, u8)> {
    [ByteOrder::ToLe, ByteOrder::ToBe, ByteOrder::Swap]
        .into_iter()
        .flat_map(|o| [16u8, 32, 64].map(|b| (o, b)))
        .find(|&(o, b)| endian_name(o, b) == Some(name))
}

/// The read-modify-write operation of an `atomic` instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AtomicOp {
    Add,
    Or,
    And,
    Xor,
    /// Exchange; it always fetches.
    Xchg,
}

impl AtomicOp {
    pub const ALL: [AtomicOp; 5] = [
        AtomicOp::Add,
        AtomicOp::Or,
        AtomicOp::And,
        AtomicOp::Xor,
        AtomicOp::Xchg,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AtomicOp::Add => "add",
            AtomicOp::Or => "or",
            AtomicOp::And => "and",
            AtomicOp::Xor => "xor",
            AtomicOp::Xchg => "xchg",
        }
    }

    pub fn from_name(name: &str) -> Option<AtomicOp> {
        AtomicOp::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The new memory contents for `old op value` at the access size (`xchg` stores `value`).
    /// The arithmetic is [`semantics::alu`] at 64 bits, truncated to the access size.
    pub fn apply(self, size: MemSize, old: u64, value: u64) -> u64 {
        let new = match self {
            AtomicOp::Add => semantics::alu(AluOp::Add, Width::W64, old, value),
            AtomicOp::Or => semantics::alu(AluOp::Or, Width::W64, old, value),
            AtomicOp::And => semantics::alu(AluOp::And, Width::W64, old, value),
            AtomicOp::Xor => semantics::alu(AluOp::Xor, Width::W64, old, value),
            AtomicOp::Xchg => value,
        };
        semantics::truncate(new, size.bits())
    }
}

/// Where a memory access points. The region is what the lifter knows about the pointer's
/// provenance (the kernel verifier's pointer type); it lets passes and backends tell apart
/// accesses that cannot alias and lets hardware targets route each access to its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// Packet data, between `xdp_md.data` and `xdp_md.data_end`.
    Packet,
    /// The program context (`struct xdp_md` for XDP).
    Ctx,
    /// A stack slot of the current function.
    Stack(StackSlot),
    /// The value of a map element returned by a lookup; `None` when the map is unknown.
    MapValue(Option<MapRef>),
    /// Global data (`.data`, `.rodata`, `.bss`), held as the single value of an array map.
    Global(MapRef),
    /// Unknown provenance, for example memory reached through a pointer given to a subprogram.
    Any,
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Region::Packet => f.write_str("packet"),
            Region::Ctx => f.write_str("ctx"),
            Region::Stack(ss) => write!(f, "stack({ss})"),
            Region::MapValue(Some(m)) => write!(f, "map_value({m})"),
            Region::MapValue(None) => f.write_str("map_value(?)"),
            Region::Global(m) => write!(f, "global({m})"),
            Region::Any => f.write_str("any"),
        }
    }
}

/// A branch destination: a block and the arguments bound to its parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockCall {
    pub block: Block,
    pub args: Vec<Value>,
}

impl BlockCall {
    pub fn new(block: Block, args: Vec<Value>) -> BlockCall {
        BlockCall { block, args }
    }
}

/// A coarse classification of instructions, one per [`InstructionData`] variant, for code that
/// needs to ask "what kind of instruction" without destructuring it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Opcode {
    Iconst,
    Binary,
    Unary,
    Endian,
    Load,
    Store,
    Atomic,
    CmpXchg,
    StackAddr,
    MapRef,
    MapValueAddr,
    FuncAddr,
    CallHelper,
    Call,
    TailCall,
    Jump,
    Brif,
    Return,
}

impl Opcode {
    /// True for instructions that end a block (`jump`, `brif`, `return`).
    pub fn is_terminator(self) -> bool {
        matches!(self, Opcode::Jump | Opcode::Brif | Opcode::Return)
    }

    /// True for branches, whose destinations take block arguments.
    pub fn is_branch(self) -> bool {
        matches!(self, Opcode::Jump | Opcode::Brif)
    }

    /// True when the instruction computes its result from its operands alone: it touches no
    /// memory, calls nothing and cannot fail, so it can be removed when its result is unused,
    /// duplicated, or moved anywhere its operands are available. These are the instructions
    /// that may enter an e-graph.
    pub fn is_pure(self) -> bool {
        matches!(
            self,
            Opcode::Iconst
                | Opcode::Binary
                | Opcode::Unary
                | Opcode::Endian
                | Opcode::StackAddr
                | Opcode::MapRef
                | Opcode::MapValueAddr
                | Opcode::FuncAddr
        )
    }

    /// True when the instruction may read memory.
    pub fn reads_memory(self) -> bool {
        matches!(
            self,
            Opcode::Load
                | Opcode::Atomic
                | Opcode::CmpXchg
                | Opcode::CallHelper
                | Opcode::Call
                | Opcode::TailCall
        )
    }

    /// True when the instruction may write memory or has another effect visible outside the
    /// function (a call, a tail call).
    pub fn has_side_effects(self) -> bool {
        matches!(
            self,
            Opcode::Store
                | Opcode::Atomic
                | Opcode::CmpXchg
                | Opcode::CallHelper
                | Opcode::Call
                | Opcode::TailCall
        )
    }
}

/// The contents of one instruction. Operand order and meaning:
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InstructionData {
    /// `v = iconst IMM`: a 64-bit constant.
    Iconst { imm: i64 },
    /// `v = OP.W a, b`: `semantics::alu(op, width, a, b)`.
    Binary {
        op: BinaryOp,
        width: Width,
        args: [Value; 2],
    },
    /// `v = OP.W a`: see [`UnaryOp::eval`].
    Unary {
        op: UnaryOp,
        width: Width,
        arg: Value,
    },
    /// `v = be16 a` and friends: `semantics::byte_order(order, bits, a)`.
    Endian {
        order: ByteOrder,
        bits: u8,
        arg: Value,
    },
    /// `v = load.REGION.SIZE[.sx] base+offset`: reads `size` bytes, zero- or sign-extends.
    Load {
        region: Region,
        size: MemSize,
        signed: bool,
        base: Value,
        offset: i32,
    },
    /// `store.REGION.SIZE base+offset, value`: writes the low `size` bytes of `value`.
    Store {
        region: Region,
        size: MemSize,
        base: Value,
        offset: i32,
        value: Value,
    },
    /// `[v =] atomic.REGION.SIZE OP[.fetch] base+offset, value`: a read-modify-write; with
    /// `fetch` the result is the old memory contents, zero-extended.
    Atomic {
        region: Region,
        size: MemSize,
        op: AtomicOp,
        fetch: bool,
        base: Value,
        offset: i32,
        value: Value,
    },
    /// `v = cmpxchg.REGION.SIZE base+offset, expected, replacement`: stores `replacement` when
    /// memory equals `expected` (at the access size); the result is the old contents.
    CmpXchg {
        region: Region,
        size: MemSize,
        base: Value,
        offset: i32,
        expected: Value,
        replacement: Value,
    },
    /// `v = stack_addr ssN+offset`: the address of a byte of a stack slot. Stack loads and
    /// stores use such an address as their base.
    StackAddr { slot: StackSlot, offset: i32 },
    /// `v = map_ref mapN`: the map pointer that `lddw rX, map` loads (helpers take it).
    MapRef { map: MapRef },
    /// `v = map_value_addr mapN+offset`: the address of a byte of a map's value, the way
    /// global data is addressed.
    MapValueAddr { map: MapRef, offset: i32 },
    /// `v = func_addr fnN`: the address of a subprogram, passed to callback helpers such as
    /// `bpf_loop`.
    FuncAddr { func: FuncRef },
    /// `v = call_helper ID(args)`: calls helper `ID`; the result is what it returns in r0.
    /// A helper changes no SSA value; what it does to memory is a side effect.
    CallHelper { helper: u32, args: Vec<Value> },
    /// `v = call fnN(args)`: a bpf-to-bpf call; the result is the callee's return value.
    Call { func: FuncRef, args: Vec<Value> },
    /// `tail_call ctx, mapN, index`: jumps to the program at `index` of a program array; when
    /// that fails (no entry, too many tail calls) execution falls through to the next
    /// instruction, so this is not a terminator.
    TailCall {
        ctx: Value,
        map: MapRef,
        index: Value,
    },
    /// `jump blockN(args)`.
    Jump { dest: BlockCall },
    /// `brif COND.W a, b, blockT(args), blockF(args)`: goes to `dests[0]` when
    /// `semantics::compare(cond, width, a, b)`, else to `dests[1]`.
    Brif {
        cond: JmpCond,
        width: Width,
        args: [Value; 2],
        dests: [BlockCall; 2],
    },
    /// `return v`: leaves the function (the program, for an entry) with `v` in r0.
    Return { value: Value },
}

impl InstructionData {
    pub fn opcode(&self) -> Opcode {
        match self {
            InstructionData::Iconst { .. } => Opcode::Iconst,
            InstructionData::Binary { .. } => Opcode::Binary,
            InstructionData::Unary { .. } => Opcode::Unary,
            InstructionData::Endian { .. } => Opcode::Endian,
            InstructionData::Load { .. } => Opcode::Load,
            InstructionData::Store { .. } => Opcode::Store,
            InstructionData::Atomic { .. } => Opcode::Atomic,
            InstructionData::CmpXchg { .. } => Opcode::CmpXchg,
            InstructionData::StackAddr { .. } => Opcode::StackAddr,
            InstructionData::MapRef { .. } => Opcode::MapRef,
            InstructionData::MapValueAddr { .. } => Opcode::MapValueAddr,
            InstructionData::FuncAddr { .. } => Opcode::FuncAddr,
            InstructionData::CallHelper { .. } => Opcode::CallHelper,
            InstructionData::Call { .. } => Opcode::Call,
            InstructionData::TailCall { .. } => Opcode::TailCall,
            InstructionData::Jump { .. } => Opcode::Jump,
            InstructionData::Brif { .. } => Opcode::Brif,
            InstructionData::Return { .. } => Opcode::Return,
        }
    }

    pub fn is_terminator(&self) -> bool {
        self.opcode().is_terminator()
    }

    /// The type of the result this instruction defines, or `None` if it defines no value.
    /// Every result is a BPF register, so every result type is `I64`.
    pub fn result_type(&self) -> Option<Type> {
        match self {
            InstructionData::Store { .. }
            | InstructionData::TailCall { .. }
            | InstructionData::Jump { .. }
            | InstructionData::Brif { .. }
            | InstructionData::Return { .. } => None,
            InstructionData::Atomic { fetch, .. } => fetch.then_some(Type::I64),
            _ => Some(Type::I64),
        }
    }

    /// The memory region and access size, for loads, stores and atomics.
    pub fn memory_access(&self) -> Option<(Region, MemSize)> {
        match *self {
            InstructionData::Load { region, size, .. }
            | InstructionData::Store { region, size, .. }
            | InstructionData::Atomic { region, size, .. }
            | InstructionData::CmpXchg { region, size, .. } => Some((region, size)),
            _ => None,
        }
    }

    /// Calls `f` on every value operand, branch arguments included, in text order.
    pub fn for_each_arg(&self, mut f: impl FnMut(Value)) {
        let mut g = |v: &Value| f(*v);
        self.visit(&mut g);
    }

    /// Replaces every value operand (branch arguments included) by `f(operand)`.
    pub fn map_args(&mut self, mut f: impl FnMut(Value) -> Value) {
        match self {
            InstructionData::Iconst { .. }
            | InstructionData::StackAddr { .. }
            | InstructionData::MapRef { .. }
            | InstructionData::MapValueAddr { .. }
            | InstructionData::FuncAddr { .. } => {}
            InstructionData::Binary { args, .. } => args.iter_mut().for_each(|a| *a = f(*a)),
            InstructionData::Unary { arg, .. } | InstructionData::Endian { arg, .. } => {
                *arg = f(*arg)
            }
            InstructionData::Load { base, .. } => *base = f(*base),
            InstructionData::Store { base, value, .. }
            | InstructionData::Atomic { base, value, .. } => {
                *base = f(*base);
                *value = f(*value);
            }
            InstructionData::CmpXchg {
                base,
                expected,
                replacement,
                ..
            } => {
                *base = f(*base);
                *expected = f(*expected);
                *replacement = f(*replacement);
            }
            InstructionData::CallHelper { args, .. } | InstructionData::Call { args, .. } => {
                args.iter_mut().for_each(|a| *a = f(*a))
            }
            InstructionData::TailCall { ctx, index, .. } => {
                *ctx = f(*ctx);
                *index = f(*index);
            }
            InstructionData::Jump { dest } => dest.args.iter_mut().for_each(|a| *a = f(*a)),
            InstructionData::Brif { args, dests, .. } => {
                args.iter_mut().for_each(|a| *a = f(*a));
                for d in dests.iter_mut() {
                    d.args.iter_mut().for_each(|a| *a = f(*a));
                }
            }
            InstructionData::Return { value } => *value = f(*value),
        }
    }

    fn visit(&self, f: &mut impl FnMut(&Value)) {
        match self {
            InstructionData::Iconst { .. }
            | InstructionData::StackAddr { .. }
            | InstructionData::MapRef { .. }
            | InstructionData::MapValueAddr { .. }
            | InstructionData::FuncAddr { .. } => {}
            InstructionData::Binary { args, .. } => args.iter().for_each(f),
            InstructionData::Unary { arg, .. } | InstructionData::Endian { arg, .. } => f(arg),
            InstructionData::Load { base, .. } => f(base),
            InstructionData::Store { base, value, .. }
            | InstructionData::Atomic { base, value, .. } => {
                f(base);
                f(value);
            }
            InstructionData::CmpXchg {
                base,
                expected,
                replacement,
                ..
            } => {
                f(base);
                f(expected);
                f(replacement);
            }
            InstructionData::CallHelper { args, .. } | InstructionData::Call { args, .. } => {
                args.iter().for_each(f)
            }
            InstructionData::TailCall { ctx, index, .. } => {
                f(ctx);
                f(index);
            }
            InstructionData::Jump { dest } => dest.args.iter().for_each(f),
            InstructionData::Brif { args, dests, .. } => {
                args.iter().for_each(&mut *f);
                for d in dests {
                    d.args.iter().for_each(&mut *f);
                }
            }
            InstructionData::Return { value } => f(value),
        }
    }

    /// Every value operand, branch arguments included, in text order.
    pub fn args(&self) -> Vec<Value> {
        let mut out = Vec::new();
        self.for_each_arg(|v| out.push(v));
        out
    }

    /// The branch destinations: one for `jump`, two for `brif` (taken first), none otherwise.
    pub fn branch_destinations(&self) -> &[BlockCall] {
        match self {
            InstructionData::Jump { dest } => std::slice::from_ref(dest),
            InstructionData::Brif { dests, .. } => dests,
            _ => &[],
        }
    }

    pub fn branch_destinations_mut(&mut self) -> &mut [BlockCall] {
        match self {
            InstructionData::Jump { dest } => std::slice::from_mut(dest),
            InstructionData::Brif { dests, .. } => dests,
            _ => &mut [],
        }
    }

    /// The stack slot this instruction names (in `stack_addr` or a `stack(ssN)` region).
    pub fn stack_slot(&self) -> Option<StackSlot> {
        match self {
            InstructionData::StackAddr { slot, .. } => Some(*slot),
            _ => match self.memory_access() {
                Some((Region::Stack(ss), _)) => Some(ss),
                _ => None,
            },
        }
    }

    /// Every map this instruction names, in text order.
    pub fn maps(&self) -> Vec<MapRef> {
        let mut out = Vec::new();
        if let Some((Region::MapValue(Some(m)) | Region::Global(m), _)) = self.memory_access() {
            out.push(m);
        }
        match self {
            InstructionData::MapRef { map }
            | InstructionData::MapValueAddr { map, .. }
            | InstructionData::TailCall { map, .. } => out.push(*map),
            _ => {}
        }
        out
    }

    /// The function this instruction names (`call`, `func_addr`).
    pub fn func_ref(&self) -> Option<FuncRef> {
        match self {
            InstructionData::Call { func, .. } | InstructionData::FuncAddr { func } => Some(*func),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cranelift_entity::EntityRef;

    #[test]
    fn op_names_round_trip_and_match_semantics() {
        for op in BinaryOp::ALL {
            assert_eq!(BinaryOp::from_name(op.name()), Some(op));
            assert_eq!(BinaryOp::from_alu_op(op.alu_op()), Some(op));
        }
        for op in UnaryOp::ALL {
            assert_eq!(UnaryOp::from_name(op.name()), Some(op));
            assert_eq!(UnaryOp::from_alu_op(op.alu_op()), Some(op));
        }
        for c in ALL_CONDS {
            assert_eq!(cond_from_name(cond_name(c)), Some(c));
        }
        for a in AtomicOp::ALL {
            assert_eq!(AtomicOp::from_name(a.name()), Some(a));
        }
        assert_eq!(endian_from_name("be16"), Some((ByteOrder::ToBe, 16)));
        assert_eq!(endian_from_name("bswap64"), Some((ByteOrder::Swap, 64)));
        assert_eq!(endian_name(ByteOrder::ToLe, 8), None);
    }

    #[test]
    fn eval_delegates_to_semantics() {
        assert_eq!(BinaryOp::Add.eval(Width::W32, 0xffff_ffff, 1), 0);
        assert_eq!(BinaryOp::Div.eval(Width::W64, 7, 0), 0);
        assert_eq!(UnaryOp::Neg.eval(Width::W64, 1), u64::MAX);
        assert_eq!(UnaryOp::Mov.eval(Width::W32, u64::MAX), 0xffff_ffff);
        assert_eq!(UnaryOp::MovSx8.eval(Width::W64, 0x80), u64::MAX - 0x7f);
        assert_eq!(AtomicOp::Add.apply(MemSize::U32, 0xffff_ffff, 2), 1);
    }

    #[test]
    fn operands_are_visited_and_mapped_in_text_order() {
        let v = |n| Value::new(n);
        let mut brif = InstructionData::Brif {
            cond: JmpCond::Gt,
            width: Width::W64,
            args: [v(1), v(2)],
            dests: [
                BlockCall::new(Block::new(1), vec![v(3)]),
                BlockCall::new(Block::new(2), vec![v(4), v(5)]),
            ],
        };
        assert_eq!(brif.args(), vec![v(1), v(2), v(3), v(4), v(5)]);
        brif.map_args(|x| Value::new(x.index() + 10));
        assert_eq!(brif.args(), vec![v(11), v(12), v(13), v(14), v(15)]);
        assert_eq!(brif.branch_destinations().len(), 2);
        assert!(brif.is_terminator());
        assert_eq!(brif.result_type(), None);
    }

    #[test]
    fn regions_display_as_in_the_text_format() {
        assert_eq!(Region::Stack(StackSlot::new(2)).to_string(), "stack(ss2)");
        assert_eq!(Region::MapValue(None).to_string(), "map_value(?)");
        assert_eq!(Region::Global(MapRef::new(1)).to_string(), "global(map1)");
    }
}
