//! The typed microengine instruction: one enum the backend builds, the encoder packs into a
//! 64-bit word, the decoder unpacks and the simulator executes. Every variant's doc states
//! what it computes, so the simulator and the backend read the same definition.
//!
//! Condition codes (Z, N, C, V) are set by every ALU instruction from its 32-bit result:
//! Z when it is zero, N from bit 31, C the carry out of additions and *no borrow* out of
//! subtractions (so after `a - b`, C is set when `a >= b` unsigned), V the signed overflow of
//! additions and subtractions; logical operations clear C and V. Shift, `ld_field`, `immed`
//! and commands leave the condition codes alone. This is the convention the Linux JIT's
//! compare table assumes (`BR_BHS` for `JGE` after `dst - src`).

use super::regs::{Dest, Operand};

/// ALU operations with their `OP_ALU_OP` codes from `nfp_asm.h`. `a` is the left operand and
/// `b` the right one in the text form `alu[dst, a, op, b]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    /// `dst = b` (the `B` pass-through; `a` must be `--`).
    PassB,
    /// `dst = a + b`.
    Add,
    /// `dst = !b` (`a` must be `--`).
    Not,
    /// `dst = a + b + C` where only a 2-bit carry chain is kept; unused by nicc but decoded.
    Add2b,
    /// `dst = a & b`.
    And,
    /// `dst = !a & b`.
    AndNotA,
    /// `dst = a - b - (1 - C)`: the high half of a wide subtraction.
    SubC,
    /// `dst = a & !b`.
    AndNotB,
    /// `dst = a + b + C`: the high half of a wide addition.
    AddC,
    /// `dst = a | b`.
    Or,
    /// `dst = a - b`.
    Sub,
    /// `dst = a ^ b`.
    Xor,
}

impl AluOp {
    pub const ALL: [AluOp; 12] = [
        AluOp::PassB,
        AluOp::Add,
        AluOp::Not,
        AluOp::Add2b,
        AluOp::And,
        AluOp::AndNotA,
        AluOp::SubC,
        AluOp::AndNotB,
        AluOp::AddC,
        AluOp::Or,
        AluOp::Sub,
        AluOp::Xor,
    ];

    pub fn code(self) -> u64 {
        match self {
            AluOp::PassB => 0x00,
            AluOp::Add => 0x01,
            AluOp::Not => 0x04,
            AluOp::Add2b => 0x05,
            AluOp::And => 0x08,
            AluOp::AndNotA => 0x0c,
            AluOp::SubC => 0x0d,
            AluOp::AndNotB => 0x10,
            AluOp::AddC => 0x11,
            AluOp::Or => 0x14,
            AluOp::Sub => 0x15,
            AluOp::Xor => 0x18,
        }
    }

    pub fn from_code(c: u64) -> Option<AluOp> {
        AluOp::ALL.into_iter().find(|o| o.code() == c)
    }

    /// True when the operation ignores its `a` operand.
    pub fn unary(self) -> bool {
        matches!(self, AluOp::PassB | AluOp::Not)
    }

    pub fn name(self) -> &'static str {
        match self {
            AluOp::PassB => "B",
            AluOp::Add => "+",
            AluOp::Not => "~B",
            AluOp::Add2b => "+16",
            AluOp::And => "AND",
            AluOp::AndNotA => "~AND",
            AluOp::SubC => "-carry",
            AluOp::AndNotB => "AND~",
            AluOp::AddC => "+carry",
            AluOp::Or => "OR",
            AluOp::Sub => "-",
            AluOp::Xor => "XOR",
        }
    }
}

/// The operation of a shift instruction with the `OP_SHF_OP` codes of `nfp_asm.h`: the
/// shifted `b` operand is combined with `a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShfOp {
    /// `dst = shifted(b)`.
    None,
    /// `dst = a & shifted(b)`.
    And,
    /// `dst = a | shifted(b)`.
    Or,
    /// `dst = shifted(b)` where a right shift is arithmetic (copies bit 31).
    Ashr,
}

impl ShfOp {
    pub fn code(self) -> u64 {
        match self {
            ShfOp::None => 0,
            ShfOp::And => 2,
            ShfOp::Or => 5,
            ShfOp::Ashr => 6,
        }
    }
    pub fn from_code(c: u64) -> Option<ShfOp> {
        [ShfOp::None, ShfOp::And, ShfOp::Or, ShfOp::Ashr]
            .into_iter()
            .find(|o| o.code() == c)
    }
}

/// How a shift moves its `b` operand (`OP_SHF_SC`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShiftClass {
    /// Rotate right.
    RightRotate,
    /// Shift right (logical, or arithmetic with [`ShfOp::Ashr`]).
    Right,
    /// Shift left.
    Left,
    /// Double shift right: the 64-bit `a:b` (a high) shifted right, low 32 bits kept.
    DoubleRight,
}

impl ShiftClass {
    pub fn code(self) -> u64 {
        match self {
            ShiftClass::RightRotate => 0,
            ShiftClass::Right => 1,
            ShiftClass::Left => 2,
            ShiftClass::DoubleRight => 3,
        }
    }
    pub fn from_code(c: u64) -> ShiftClass {
        match c & 3 {
            0 => ShiftClass::RightRotate,
            1 => ShiftClass::Right,
            2 => ShiftClass::Left,
            _ => ShiftClass::DoubleRight,
        }
    }
}

/// The shift amount of a shift or `ld_field`: a constant 1 to 31, or [`INDIRECT_SHIFT`].
pub type ShiftAmount = u8;

/// The shift amount field value that takes the amount from the low 5 bits of the previous
/// ALU instruction's `b` operand (the NFP's indirect shift), encoded as 0: a constant shift
/// by 0 is a plain move and never needs a shift instruction.
pub const INDIRECT_SHIFT: ShiftAmount = 0;

/// What `immed` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImmedWidth {
    /// The whole register: `dst = imm << (8 * shift)` (inverted with `inv`).
    All,
    /// One byte at byte position `shift`, the rest kept.
    Byte,
    /// One 16-bit half at byte position `shift` (0 or 2), the rest kept.
    Word,
}

impl ImmedWidth {
    pub fn code(self) -> u64 {
        match self {
            ImmedWidth::All => 0,
            ImmedWidth::Byte => 1,
            ImmedWidth::Word => 2,
        }
    }
    pub fn from_code(c: u64) -> Option<ImmedWidth> {
        match c {
            0 => Some(ImmedWidth::All),
            1 => Some(ImmedWidth::Byte),
            2 => Some(ImmedWidth::Word),
            _ => None,
        }
    }
}

/// Branch conditions on the condition codes (`enum br_mask` of `nfp_asm.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BrCond {
    /// Z set.
    Eq,
    /// Z clear.
    Ne,
    /// N set.
    Mi,
    /// C set: unsigned higher or same after a subtraction.
    Hs,
    /// C clear: unsigned lower.
    Lo,
    /// N == V: signed greater or equal.
    Ge,
    /// N != V: signed less.
    Lt,
    /// Always.
    Always,
}

impl BrCond {
    pub const ALL: [BrCond; 8] = [
        BrCond::Eq,
        BrCond::Ne,
        BrCond::Mi,
        BrCond::Hs,
        BrCond::Lo,
        BrCond::Ge,
        BrCond::Lt,
        BrCond::Always,
    ];
    pub fn code(self) -> u64 {
        match self {
            BrCond::Eq => 0x00,
            BrCond::Ne => 0x01,
            BrCond::Mi => 0x02,
            BrCond::Hs => 0x04,
            BrCond::Lo => 0x05,
            BrCond::Ge => 0x08,
            BrCond::Lt => 0x09,
            BrCond::Always => 0x18,
        }
    }
    pub fn from_code(c: u64) -> Option<BrCond> {
        BrCond::ALL.into_iter().find(|b| b.code() == c)
    }
    pub fn name(self) -> &'static str {
        match self {
            BrCond::Eq => "beq",
            BrCond::Ne => "bne",
            BrCond::Mi => "bmi",
            BrCond::Hs => "bhs",
            BrCond::Lo => "blo",
            BrCond::Ge => "bge",
            BrCond::Lt => "blt",
            BrCond::Always => "br",
        }
    }
}

/// The memory a command goes to. The chip's levels, from the fastest: the engine's own local
/// memory, the cluster local scratch, the cluster target memory (where packets are), the
/// internal and external memory units, and the lookup engine of the memory unit, which serves
/// map operations and helpers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemLevel {
    Lm,
    Cls,
    Ctm,
    Imem,
    Emem,
    Lookup,
}

impl MemLevel {
    pub const ALL: [MemLevel; 6] = [
        MemLevel::Lm,
        MemLevel::Cls,
        MemLevel::Ctm,
        MemLevel::Imem,
        MemLevel::Emem,
        MemLevel::Lookup,
    ];
    pub fn code(self) -> u64 {
        MemLevel::ALL.iter().position(|l| *l == self).unwrap_or(0) as u64
    }
    pub fn from_code(c: u64) -> Option<MemLevel> {
        MemLevel::ALL.get(c as usize).copied()
    }
    /// The name the latency data file and the listing use.
    pub fn name(self) -> &'static str {
        match self {
            MemLevel::Lm => "lm",
            MemLevel::Cls => "cls",
            MemLevel::Ctm => "ctm",
            MemLevel::Imem => "imem",
            MemLevel::Emem => "emem",
            MemLevel::Lookup => "lookup",
        }
    }
}

/// What a command does at its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemAction {
    /// Reads `1 << count` bytes (1 to 64) into read transfer registers `xfer..`,
    /// little-endian, 4 bytes per register, the first register holding bytes 0 to 3
    /// zero-extended. Up to 64 bytes per command, as the NFP's memory units move data in
    /// 8-byte units up to a 64-byte burst.
    Read,
    /// Writes the low `1 << count` bytes (1 to 64) of write transfer registers `xfer..`.
    Write,
    /// Atomic read-modify-write of `1 << count` bytes with the operand in write transfer
    /// registers `xfer, xfer+1`; the old contents come back in read transfer registers
    /// `xfer, xfer+1`. `CmpXchg` takes the expected value in write registers `xfer+2, xfer+3`.
    AtomicAdd,
    AtomicOr,
    AtomicAnd,
    AtomicXor,
    AtomicXchg,
    CmpXchg,
    /// A helper call served by the lookup engine: the helper id is the `b` operand immediate
    /// plus 128 times the token field; `count` 64-bit arguments are in write transfer registers
    /// `xfer..` (low word first); the 64-bit result comes back in read transfer registers
    /// `xfer, xfer+1`.
    Helper,
}

impl MemAction {
    pub const ALL: [MemAction; 9] = [
        MemAction::Read,
        MemAction::Write,
        MemAction::AtomicAdd,
        MemAction::AtomicOr,
        MemAction::AtomicAnd,
        MemAction::AtomicXor,
        MemAction::AtomicXchg,
        MemAction::CmpXchg,
        MemAction::Helper,
    ];
    pub fn code(self) -> u64 {
        MemAction::ALL.iter().position(|a| *a == self).unwrap_or(0) as u64
    }
    pub fn from_code(c: u64) -> Option<MemAction> {
        MemAction::ALL.get(c as usize).copied()
    }
    pub fn name(self) -> &'static str {
        match self {
            MemAction::Read => "read_le",
            MemAction::Write => "write_le",
            MemAction::AtomicAdd => "atomic_add",
            MemAction::AtomicOr => "atomic_or",
            MemAction::AtomicAnd => "atomic_and",
            MemAction::AtomicXor => "atomic_xor",
            MemAction::AtomicXchg => "atomic_xchg",
            MemAction::CmpXchg => "cmpxchg",
            MemAction::Helper => "helper",
        }
    }
}

/// Whether the issuing context sleeps until the command's completion signal (`enum
/// cmd_ctx_swap`): with a swap the context gives the engine to another context and resumes
/// when the signal arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtxSwap {
    Swap,
    SwapDefer1,
    SwapDefer2,
    NoSwap,
}

impl CtxSwap {
    pub fn code(self) -> u64 {
        match self {
            CtxSwap::Swap => 0,
            CtxSwap::SwapDefer1 => 1,
            CtxSwap::SwapDefer2 => 2,
            CtxSwap::NoSwap => 3,
        }
    }
    pub fn from_code(c: u64) -> CtxSwap {
        match c & 3 {
            0 => CtxSwap::Swap,
            1 => CtxSwap::SwapDefer1,
            2 => CtxSwap::SwapDefer2,
            _ => CtxSwap::NoSwap,
        }
    }
}

/// How a command forms its address (`enum cmd_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrMode {
    /// 40-bit mode, A high: operand `a` holds the region word (the high 32 bits of a nicc
    /// pointer) and `b` the offset.
    Region,
    /// 32-bit mode: the region is implied by the memory level (the packet for CTM, this
    /// context's stack for LM) and the offset is `a + b`.
    Implied,
}

impl AddrMode {
    pub fn code(self) -> u64 {
        match self {
            AddrMode::Region => 0,
            AddrMode::Implied => 4,
        }
    }
    pub fn from_code(c: u64) -> Option<AddrMode> {
        match c {
            0 => Some(AddrMode::Region),
            4 => Some(AddrMode::Implied),
            _ => None,
        }
    }
}

/// A step of the multiplier (`enum mul_step` with the 32x32 type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MulStep {
    /// Latches `a` and `b` as the factors.
    Start,
    /// One of the four partial-product steps of a 32x32 multiplication (1 to 4).
    Step(u8),
    /// Writes the low 32 bits of the product.
    Last,
    /// Writes the high 32 bits of the product.
    Last2,
}

/// One microengine instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Insn {
    /// `alu[dst, a, op, b]`: 32-bit operation, sets the condition codes.
    Alu {
        dst: Dest,
        a: Operand,
        op: AluOp,
        b: Operand,
    },
    /// `alu_shf[dst, a, op, b, sc shift]`: shifts `b` by `shift` (or indirectly, see
    /// [`INDIRECT_SHIFT`]) and combines it with `a`. For [`ShiftClass::DoubleRight`] the
    /// shifted quantity is `a:b` and `op` must be [`ShfOp::None`].
    Shf {
        dst: Dest,
        a: Operand,
        op: ShfOp,
        b: Operand,
        sc: ShiftClass,
        shift: ShiftAmount,
    },
    /// `ld_field[dst, bmask, src, sc shift]`: the bytes of `dst` selected by the 4-bit `bmask`
    /// (bit 0 = byte 0, the least significant) take the bytes of `src` shifted by `shift`;
    /// with `zero` the other bytes become 0 (`ld_field_w_clr`). `dst` is a general-purpose
    /// register (of one bank, or of both with [`Dest::Both`]), read and written. A shift of 0
    /// is no shift here (there is no indirect form).
    LdField {
        dst: Dest,
        bmask: u8,
        src: Operand,
        sc: ShiftClass,
        shift: ShiftAmount,
        zero: bool,
    },
    /// `immed[dst, imm, <<8*shift]`, see [`ImmedWidth`].
    Immed {
        dst: Dest,
        imm: u16,
        shift: u8,
        width: ImmedWidth,
        inv: bool,
    },
    /// `bcond[target], defer[n]`: the `defer` instructions after the branch execute whether or
    /// not it is taken.
    Br {
        cond: BrCond,
        target: u16,
        defer: u8,
    },
    /// `br_bset[src, bit, target]` / `br_bclr`: branches when bit `bit` of `src` is set (or
    /// clear).
    BrBit {
        src: Operand,
        bit: u8,
        set: bool,
        target: u16,
        defer: u8,
    },
    /// `br=byte[src, byte, value, target]` / `br!=byte`: compares byte `byte` of `src` with an
    /// 8-bit immediate.
    BrByte {
        src: Operand,
        byte: u8,
        value: u8,
        eq: bool,
        target: u16,
        defer: u8,
    },
    /// A memory command: `level[action, $xfer_n, a, b, count], sig_done[sig], ctx_swap`.
    Cmd {
        level: MemLevel,
        action: MemAction,
        xfer: u8,
        count: u8,
        a: Operand,
        b: Operand,
        sig: u8,
        swap: CtxSwap,
        mode: AddrMode,
        token: u8,
    },
    /// `local_csr_wr[csr, src]`: writes a local control and status register, such as a
    /// local-memory address register (effective three instructions later on the NFP; the
    /// model makes it effective at once and the backend leaves three instructions in between).
    LocalCsrWr { csr: u16, src: Operand },
    /// `ctx_arb[voluntary]`: gives the engine to the next ready context.
    CtxArb,
    /// `rtn[src]`: branches to the code address in the low 14 bits of the register `src`,
    /// after `defer` defer slots: the return from a routine, whose caller loaded its return
    /// address with `immed` (the Linux JIT's `emit_rtn`, a `br_alu` with `OP_BR_ALU_BASE`
    /// of `nfp_asm.h`).
    Rtn { src: Operand, defer: u8 },
    /// `mul_step[a, b]` (start and steps) or `mul_step[dst, --]` (last steps).
    Mul {
        step: MulStep,
        dst: Dest,
        a: Operand,
        b: Operand,
    },
}

/// Local CSR numbers of the four active local-memory address registers (`nfp_asm.h`).
pub const CSR_ACT_LM_ADDR: [u16; 4] = [0x64, 0x6c, 0x94, 0x9c];
/// Local CSR of the engine's pseudo-random number generator (`nfp_asm.h`).
pub const CSR_PSEUDO_RND_NUM: u16 = 0x148;

/// The branch target that ends a packet: a branch here hands the packet back to the
/// dispatcher with the verdict in the return registers ([`RET_LO`], [`RET_HI`]). It lies past
/// every code store.
pub const EXIT_TARGET: u16 = 0x3fff;
/// The branch target that stops a packet with a fault because a tail call chose a program
/// that is not in the code store (it did not compile for the NFP target, so it was not
/// linked): the program's index is in register [`RET_LO`]. A silent fall-through would give
/// a different verdict than the kernel, which runs that program. It lies past every code
/// store, beside [`EXIT_TARGET`].
pub const TAIL_CALL_FAULT_TARGET: u16 = 0x3ffe;

/// The branch target that stops a packet with a fault because a map helper was called with
/// a handle that names none of the maps the compiler found could reach the call (a NULL map
/// pointer, which the kernel's verifier never lets through but an unverified object can
/// contain). The interpreter faults on such a call too, so the NFP model must not guess a map.
pub const MAP_HANDLE_FAULT_TARGET: u16 = 0x3ffd;

/// True for the targets that are not code-store addresses ([`EXIT_TARGET`],
/// [`TAIL_CALL_FAULT_TARGET`], [`MAP_HANDLE_FAULT_TARGET`]), which linking leaves where they
/// are.
pub fn is_fixed_target(t: u16) -> bool {
    t == EXIT_TARGET || t == TAIL_CALL_FAULT_TARGET || t == MAP_HANDLE_FAULT_TARGET
}
/// The register (in both banks) that holds the low word of the program's return value at
/// [`EXIT_TARGET`].
pub const RET_LO: u8 = 0;
/// The register (in both banks) that holds the high word of the return value.
pub const RET_HI: u8 = 1;

impl Insn {
    /// The branch target, for the instructions that have one.
    pub fn target(&self) -> Option<u16> {
        match *self {
            Insn::Br { target, .. } | Insn::BrBit { target, .. } | Insn::BrByte { target, .. } => {
                Some(target)
            }
            _ => None,
        }
    }

    /// Replaces the branch target of a branch (after layout, when labels become addresses).
    pub fn set_target(&mut self, to: u16) {
        match self {
            Insn::Br { target, .. } | Insn::BrBit { target, .. } | Insn::BrByte { target, .. } => {
                *target = to
            }
            _ => {}
        }
    }

    /// The defer slots of a branch.
    pub fn defer(&self) -> u8 {
        match *self {
            Insn::Br { defer, .. }
            | Insn::BrBit { defer, .. }
            | Insn::BrByte { defer, .. }
            | Insn::Rtn { defer, .. } => defer,
            _ => 0,
        }
    }
}
