//! The one BPF instruction decoder (and its inverse, the encoder).
//!
//! This is the only place in nicc where raw opcode bytes are read: everything after it matches
//! on [`Insn`]. It covers RFC 9669 (all conformance groups, including the legacy packet loads)
//! plus what clang `-mcpu=v4` emits: signed division and modulo, sign-extending moves and
//! loads, unconditional byte swaps, `gotol` and every atomic operation.
//!
//! Decoding is as strict as the kernel verifier: a field that the encoding leaves unused must be
//! zero, and an unknown opcode is an error naming the opcode. A 64-bit immediate load takes two
//! slots; its second slot decodes as [`Insn::Imm64Tail`] so that slot indices stay the ones the
//! kernel, llvm-objdump and jump offsets use.
//!
//! Bit layout of one slot (little-endian):
//!
//! ```text
//! byte 0      byte 1            bytes 2-3       bytes 4-7
//! opcode      src:4 | dst:4     offset (i16)    immediate (i32)
//! opcode = operation:4 | source:1 | class:3   (ALU, ALU64, JMP, JMP32)
//! opcode = mode:3 | size:2 | class:3          (LD, LDX, ST, STX)
//! ```

use ir::semantics::{AluOp, ByteOrder, JmpCond, Width};
use std::fmt;

/// Size of one instruction slot in bytes.
pub const SLOT: usize = 8;

/// A BPF register, r0 to r10.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub u8);

impl Reg {
    pub const R0: Reg = Reg(0);
    pub const R1: Reg = Reg(1);
    pub const FP: Reg = Reg(10);
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Access size of a load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub fn bytes(self) -> usize {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }
    fn from_bits(bits: u8) -> Size {
        match bits & 0x18 {
            0x00 => Size::W,
            0x08 => Size::H,
            0x10 => Size::B,
            _ => Size::DW,
        }
    }
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }
}

/// The second operand of an ALU or jump instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    Reg(Reg),
    /// The 32-bit immediate, as encoded; engines sign-extend it for 64-bit operations.
    Imm(i32),
}

/// The read-modify-write operation of an atomic instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    Add,
    Or,
    And,
    Xor,
    /// Always fetches: `src = xchg(mem, src)`.
    Xchg,
    /// Always fetches: compares `r0` with memory, stores `src` on equality, `r0` gets the old value.
    CmpXchg,
}

/// What a 64-bit immediate load (`lddw`) produces, from the pseudo value in its source field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Imm64 {
    /// src 0: a plain 64-bit constant.
    Value(u64),
    /// src 1 (`BPF_PSEUDO_MAP_FD`): the map whose descriptor is the immediate.
    MapFd(i32),
    /// src 2 (`BPF_PSEUDO_MAP_VALUE`): an address `offset` bytes into the value of a map.
    MapValue { fd: i32, offset: u32 },
    /// src 3 (`BPF_PSEUDO_BTF_ID`): the address of a kernel variable by BTF id.
    BtfId { id: i32, extra: u32 },
    /// src 4 (`BPF_PSEUDO_FUNC`): the address of a subprogram, relative like a call offset.
    Func(i32),
    /// src 5 (`BPF_PSEUDO_MAP_IDX`): the map at this index of the program's map table.
    MapIdx(i32),
    /// src 6 (`BPF_PSEUDO_MAP_IDX_VALUE`): an address into the value of the map at this index.
    MapIdxValue { index: i32, offset: u32 },
}

/// The target of a call instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallTarget {
    /// A helper function by its static id (src 0).
    Helper(i32),
    /// A bpf-to-bpf call (src 1): the callee starts at `pc + 1 + offset`.
    Local(i32),
    /// A kernel function by BTF id (src 2).
    Kfunc(i32),
    /// `callx`: a helper whose id is held in a register (conformance suite, clang `callx`).
    Register(Reg),
}

/// One decoded instruction. `Imm64` takes two slots; the second is `Imm64Tail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Insn {
    /// `dst = dst op src` (or a move / negation) at the given width.
    Alu {
        width: Width,
        op: AluOp,
        dst: Reg,
        src: Operand,
    },
    /// Byte-order conversion of the low `bits` (16, 32 or 64) of `dst`.
    Endian {
        order: ByteOrder,
        bits: u32,
        dst: Reg,
    },
    /// `dst = imm64` (with map and function pseudo forms).
    Imm64 {
        dst: Reg,
        imm: Imm64,
    },
    /// The second slot of an `Imm64`; never executed.
    Imm64Tail,
    /// Legacy packet load: `r0 = ntoh(skb[imm])`.
    LoadAbs {
        size: Size,
        imm: i32,
    },
    /// Legacy packet load: `r0 = ntoh(skb[src + imm])`.
    LoadInd {
        size: Size,
        src: Reg,
        imm: i32,
    },
    /// `dst = *(size *)(src + off)`, sign-extended when `signed` (ISA v4 `ldxs*`).
    Load {
        size: Size,
        signed: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `*(size *)(dst + off) = imm`.
    StoreImm {
        size: Size,
        dst: Reg,
        off: i16,
        imm: i32,
    },
    /// `*(size *)(dst + off) = src`.
    StoreReg {
        size: Size,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// An atomic read-modify-write of a word or double word at `dst + off`.
    Atomic {
        size: Size,
        op: AtomicOp,
        fetch: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// Unconditional jump; `off` counts slots from the next instruction. `long` marks the
    /// JMP32-class `gotol` form, whose offset sits in the 32-bit immediate.
    Ja {
        off: i32,
        long: bool,
    },
    /// Conditional jump on `dst cond src` at the given width.
    Jmp {
        width: Width,
        cond: JmpCond,
        dst: Reg,
        src: Operand,
        off: i16,
    },
    Call(CallTarget),
    Exit,
}

/// Raw fields of one instruction slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RawInsn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl RawInsn {
    pub fn from_bytes(b: &[u8; SLOT]) -> RawInsn {
        RawInsn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    pub fn to_bytes(self) -> [u8; SLOT] {
        let mut b = [0u8; SLOT];
        b[0] = self.code;
        b[1] = (self.dst & 0x0f) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    /// The slot as the 64-bit little-endian word the conformance `-- raw` sections print.
    pub fn to_word(self) -> u64 {
        u64::from_le_bytes(self.to_bytes())
    }

    pub fn from_word(word: u64) -> RawInsn {
        RawInsn::from_bytes(&word.to_le_bytes())
    }
}

/// Splits a byte buffer into slots; a trailing partial slot is an error.
pub fn slots(bytes: &[u8]) -> Result<Vec<RawInsn>, DecodeError> {
    if !bytes.len().is_multiple_of(SLOT) {
        return Err(DecodeError {
            index: bytes.len() / SLOT,
            kind: DecodeErrorKind::Truncated { len: bytes.len() },
        });
    }
    Ok(bytes
        .chunks_exact(SLOT)
        .map(|c| RawInsn::from_bytes(c.try_into().expect("chunk of SLOT bytes")))
        .collect())
}

/// Why a slot could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("code size {len} is not a multiple of 8 bytes")]
    Truncated { len: usize },
    #[error("unknown opcode {code:#04x}")]
    UnknownOpcode { code: u8 },
    #[error("register r{reg} does not exist (registers are r0 to r10)")]
    BadRegister { reg: u8 },
    #[error("opcode {code:#04x} must have a zero {field} field, found {value}")]
    ReservedField {
        code: u8,
        field: &'static str,
        value: i64,
    },
    #[error("opcode {code:#04x} has an invalid {field} value {value}")]
    BadField {
        code: u8,
        field: &'static str,
        value: i64,
    },
    #[error("64-bit immediate load is missing its second slot")]
    MissingImm64Tail,
    #[error(
        "second slot of a 64-bit immediate load must have a zero opcode, registers and offset"
    )]
    BadImm64Tail,
}

/// A decoding error at a slot index.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instruction {index}: {kind}")]
pub struct DecodeError {
    pub index: usize,
    pub kind: DecodeErrorKind,
}

impl DecodeErrorKind {
    /// What a user can do about the error, for the `help:` line of a diagnostic.
    pub fn help(&self) -> &'static str {
        match self {
            DecodeErrorKind::Truncated { .. } => {
                "a code section holds whole 8-byte instructions; the object is truncated or \
                 damaged, rebuild it"
            }
            DecodeErrorKind::UnknownOpcode { .. } => {
                "the opcode is not in the BPF instruction set (RFC 9669); rebuild with clang \
                 -target bpf, or fix the hand-written bytecode"
            }
            DecodeErrorKind::BadRegister { .. } => {
                "BPF has eleven registers, r0 to r10; the instruction is damaged"
            }
            DecodeErrorKind::ReservedField { .. } => {
                "the kernel refuses instructions whose unused fields are not zero; clear the \
                 field (clang never sets it)"
            }
            DecodeErrorKind::BadField { .. } => {
                "the field selects no operation the BPF instruction set defines (RFC 9669); \
                 fix the instruction"
            }
            DecodeErrorKind::MissingImm64Tail | DecodeErrorKind::BadImm64Tail => {
                "a 64-bit immediate load takes two slots, the second holding only the upper 32 \
                 bits of the immediate; the code is truncated or damaged"
            }
        }
    }
}

const CLASS_LD: u8 = 0x00;
const CLASS_LDX: u8 = 0x01;
const CLASS_ST: u8 = 0x02;
const CLASS_STX: u8 = 0x03;
const CLASS_ALU: u8 = 0x04;
const CLASS_JMP: u8 = 0x05;
const CLASS_JMP32: u8 = 0x06;
const CLASS_ALU64: u8 = 0x07;

const MODE_IMM: u8 = 0x00;
const MODE_ABS: u8 = 0x20;
const MODE_IND: u8 = 0x40;
const MODE_MEM: u8 = 0x60;
const MODE_MEMSX: u8 = 0x80;
const MODE_ATOMIC: u8 = 0xc0;

const SRC_X: u8 = 0x08;

const ATOMIC_FETCH: i32 = 0x01;
const ATOMIC_XCHG: i32 = 0xe0 | ATOMIC_FETCH;
const ATOMIC_CMPXCHG: i32 = 0xf0 | ATOMIC_FETCH;

/// Decodes a whole program, slot by slot.
pub fn decode_all(raw: &[RawInsn]) -> Result<Vec<Insn>, DecodeError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let insn = decode(raw, i)?;
        out.push(insn);
        if let Insn::Imm64 { .. } = insn {
            out.push(Insn::Imm64Tail);
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok(out)
}

/// Decodes the instruction that starts at slot `index` (reading the next slot for `lddw`).
pub fn decode(raw: &[RawInsn], index: usize) -> Result<Insn, DecodeError> {
    let r = raw[index];
    let err = |kind| DecodeError { index, kind };
    let reserved = |field: &'static str, value: i64| {
        Err(err(DecodeErrorKind::ReservedField {
            code: r.code,
            field,
            value,
        }))
    };
    let bad = |field: &'static str, value: i64| {
        Err(err(DecodeErrorKind::BadField {
            code: r.code,
            field,
            value,
        }))
    };
    let unknown = || Err(err(DecodeErrorKind::UnknownOpcode { code: r.code }));
    let reg = |n: u8| -> Result<Reg, DecodeError> {
        if n <= 10 {
            Ok(Reg(n))
        } else {
            Err(err(DecodeErrorKind::BadRegister { reg: n }))
        }
    };
    let class = r.code & 0x07;
    match class {
        CLASS_ALU | CLASS_ALU64 => {
            let width = if class == CLASS_ALU64 {
                Width::W64
            } else {
                Width::W32
            };
            let dst = reg(r.dst)?;
            let x = r.code & SRC_X != 0;
            let opbits = r.code & 0xf0;
            if opbits == 0xd0 {
                // END: the source bit selects to-le/to-be in the ALU class; in ALU64 only the
                // unconditional swap (source bit clear) exists.
                let order = match (class, x) {
                    (CLASS_ALU, false) => ByteOrder::ToLe,
                    (CLASS_ALU, true) => ByteOrder::ToBe,
                    (_, false) => ByteOrder::Swap,
                    (_, true) => return unknown(),
                };
                if r.src != 0 {
                    return reserved("source register", r.src as i64);
                }
                if r.off != 0 {
                    return reserved("offset", r.off as i64);
                }
                if !matches!(r.imm, 16 | 32 | 64) {
                    return bad("immediate (byte-swap width)", r.imm as i64);
                }
                return Ok(Insn::Endian {
                    order,
                    bits: r.imm as u32,
                    dst,
                });
            }
            let op = match (opbits, r.off) {
                (0x00, 0) => AluOp::Add,
                (0x10, 0) => AluOp::Sub,
                (0x20, 0) => AluOp::Mul,
                (0x30, 0) => AluOp::Div,
                (0x30, 1) => AluOp::SDiv,
                (0x40, 0) => AluOp::Or,
                (0x50, 0) => AluOp::And,
                (0x60, 0) => AluOp::Lsh,
                (0x70, 0) => AluOp::Rsh,
                (0x80, 0) => AluOp::Neg,
                (0x90, 0) => AluOp::Mod,
                (0x90, 1) => AluOp::SMod,
                (0xa0, 0) => AluOp::Xor,
                (0xb0, 0) => AluOp::Mov,
                (0xb0, 8) if x => AluOp::MovSx8,
                (0xb0, 16) if x => AluOp::MovSx16,
                (0xb0, 32) if x && class == CLASS_ALU64 => AluOp::MovSx32,
                (0xc0, 0) => AluOp::Arsh,
                (0xe0 | 0xf0, _) => return unknown(),
                (_, off) => return reserved("offset", off as i64),
            };
            let src = if op == AluOp::Neg {
                if x {
                    return unknown();
                }
                if r.src != 0 {
                    return reserved("source register", r.src as i64);
                }
                if r.imm != 0 {
                    return reserved("immediate", r.imm as i64);
                }
                Operand::Imm(0)
            } else if x {
                if r.imm != 0 {
                    return reserved("immediate", r.imm as i64);
                }
                Operand::Reg(reg(r.src)?)
            } else {
                if r.src != 0 {
                    return reserved("source register", r.src as i64);
                }
                Operand::Imm(r.imm)
            };
            Ok(Insn::Alu {
                width,
                op,
                dst,
                src,
            })
        }
        CLASS_JMP | CLASS_JMP32 => {
            let width = if class == CLASS_JMP {
                Width::W64
            } else {
                Width::W32
            };
            let x = r.code & SRC_X != 0;
            let opbits = r.code & 0xf0;
            match opbits {
                0x00 => {
                    // JA: `goto +off` in the JMP class, `gotol +imm` in the JMP32 class.
                    if x || r.src != 0 {
                        return reserved("source register", r.src as i64);
                    }
                    if r.dst != 0 {
                        return reserved("destination register", r.dst as i64);
                    }
                    if class == CLASS_JMP {
                        if r.imm != 0 {
                            return reserved("immediate", r.imm as i64);
                        }
                        Ok(Insn::Ja {
                            off: r.off as i32,
                            long: false,
                        })
                    } else {
                        if r.off != 0 {
                            return reserved("offset", r.off as i64);
                        }
                        Ok(Insn::Ja {
                            off: r.imm,
                            long: true,
                        })
                    }
                }
                0x80 => {
                    if class != CLASS_JMP {
                        return unknown();
                    }
                    if r.off != 0 {
                        return reserved("offset", r.off as i64);
                    }
                    if x {
                        // callx: LLVM puts the register in the immediate, the bpf_conformance
                        // assembler in the source field, older tools in the destination field.
                        // Accept any one of them, but never two that disagree.
                        let fields = [r.dst as i64, r.src as i64, r.imm as i64];
                        let named: Vec<i64> = fields.into_iter().filter(|&v| v != 0).collect();
                        let n = match named.as_slice() {
                            [] => 0,
                            [only] if (0..=10).contains(only) => *only as u8,
                            [other] => return bad("callx register", *other),
                            _ => return bad("callx register (set in two fields)", r.imm as i64),
                        };
                        return Ok(Insn::Call(CallTarget::Register(reg(n)?)));
                    }
                    if r.dst != 0 {
                        return reserved("destination register", r.dst as i64);
                    }
                    let target = match r.src {
                        0 => CallTarget::Helper(r.imm),
                        1 => CallTarget::Local(r.imm),
                        2 => CallTarget::Kfunc(r.imm),
                        s => return bad("call kind (source register)", s as i64),
                    };
                    Ok(Insn::Call(target))
                }
                0x90 => {
                    if class != CLASS_JMP || x {
                        return unknown();
                    }
                    if r.dst != 0 {
                        return reserved("destination register", r.dst as i64);
                    }
                    if r.src != 0 {
                        return reserved("source register", r.src as i64);
                    }
                    if r.off != 0 {
                        return reserved("offset", r.off as i64);
                    }
                    if r.imm != 0 {
                        return reserved("immediate", r.imm as i64);
                    }
                    Ok(Insn::Exit)
                }
                _ => {
                    let cond = match opbits {
                        0x10 => JmpCond::Eq,
                        0x20 => JmpCond::Gt,
                        0x30 => JmpCond::Ge,
                        0x40 => JmpCond::Set,
                        0x50 => JmpCond::Ne,
                        0x60 => JmpCond::Sgt,
                        0x70 => JmpCond::Sge,
                        0xa0 => JmpCond::Lt,
                        0xb0 => JmpCond::Le,
                        0xc0 => JmpCond::Slt,
                        0xd0 => JmpCond::Sle,
                        _ => return unknown(),
                    };
                    let dst = reg(r.dst)?;
                    let src = if x {
                        if r.imm != 0 {
                            return reserved("immediate", r.imm as i64);
                        }
                        Operand::Reg(reg(r.src)?)
                    } else {
                        if r.src != 0 {
                            return reserved("source register", r.src as i64);
                        }
                        Operand::Imm(r.imm)
                    };
                    Ok(Insn::Jmp {
                        width,
                        cond,
                        dst,
                        src,
                        off: r.off,
                    })
                }
            }
        }
        CLASS_LD => {
            let mode = r.code & 0xe0;
            let size = Size::from_bits(r.code);
            match mode {
                MODE_IMM if size == Size::DW => {
                    let dst = reg(r.dst)?;
                    if r.off != 0 {
                        return reserved("offset", r.off as i64);
                    }
                    let Some(next) = raw.get(index + 1) else {
                        return Err(err(DecodeErrorKind::MissingImm64Tail));
                    };
                    if next.code != 0 || next.dst != 0 || next.src != 0 || next.off != 0 {
                        return Err(DecodeError {
                            index: index + 1,
                            kind: DecodeErrorKind::BadImm64Tail,
                        });
                    }
                    let lo = r.imm as u32;
                    let hi = next.imm as u32;
                    let imm = match r.src {
                        0 => Imm64::Value(((hi as u64) << 32) | lo as u64),
                        1 | 4 | 5 if hi != 0 => {
                            return Err(DecodeError {
                                index: index + 1,
                                kind: DecodeErrorKind::BadImm64Tail,
                            })
                        }
                        1 => Imm64::MapFd(r.imm),
                        2 => Imm64::MapValue {
                            fd: r.imm,
                            offset: hi,
                        },
                        3 => Imm64::BtfId {
                            id: r.imm,
                            extra: hi,
                        },
                        4 => Imm64::Func(r.imm),
                        5 => Imm64::MapIdx(r.imm),
                        6 => Imm64::MapIdxValue {
                            index: r.imm,
                            offset: hi,
                        },
                        s => return bad("lddw pseudo kind (source register)", s as i64),
                    };
                    Ok(Insn::Imm64 { dst, imm })
                }
                MODE_ABS | MODE_IND if size != Size::DW => {
                    if r.dst != 0 {
                        return reserved("destination register", r.dst as i64);
                    }
                    if r.off != 0 {
                        return reserved("offset", r.off as i64);
                    }
                    if mode == MODE_ABS {
                        if r.src != 0 {
                            return reserved("source register", r.src as i64);
                        }
                        Ok(Insn::LoadAbs { size, imm: r.imm })
                    } else {
                        Ok(Insn::LoadInd {
                            size,
                            src: reg(r.src)?,
                            imm: r.imm,
                        })
                    }
                }
                _ => unknown(),
            }
        }
        CLASS_LDX => {
            let mode = r.code & 0xe0;
            let size = Size::from_bits(r.code);
            let signed = match mode {
                MODE_MEM => false,
                MODE_MEMSX if size != Size::DW => true,
                _ => return unknown(),
            };
            if r.imm != 0 {
                return reserved("immediate", r.imm as i64);
            }
            Ok(Insn::Load {
                size,
                signed,
                dst: reg(r.dst)?,
                src: reg(r.src)?,
                off: r.off,
            })
        }
        CLASS_ST => {
            if r.code & 0xe0 != MODE_MEM {
                return unknown();
            }
            if r.src != 0 {
                return reserved("source register", r.src as i64);
            }
            Ok(Insn::StoreImm {
                size: Size::from_bits(r.code),
                dst: reg(r.dst)?,
                off: r.off,
                imm: r.imm,
            })
        }
        CLASS_STX => {
            let size = Size::from_bits(r.code);
            match r.code & 0xe0 {
                MODE_MEM => {
                    if r.imm != 0 {
                        return reserved("immediate", r.imm as i64);
                    }
                    Ok(Insn::StoreReg {
                        size,
                        dst: reg(r.dst)?,
                        src: reg(r.src)?,
                        off: r.off,
                    })
                }
                MODE_ATOMIC if matches!(size, Size::W | Size::DW) => {
                    let (op, fetch) = match r.imm {
                        ATOMIC_XCHG => (AtomicOp::Xchg, true),
                        ATOMIC_CMPXCHG => (AtomicOp::CmpXchg, true),
                        imm => {
                            let op = match imm & !ATOMIC_FETCH {
                                0x00 => AtomicOp::Add,
                                0x40 => AtomicOp::Or,
                                0x50 => AtomicOp::And,
                                0xa0 => AtomicOp::Xor,
                                _ => return bad("atomic operation (immediate)", imm as i64),
                            };
                            (op, imm & ATOMIC_FETCH != 0)
                        }
                    };
                    Ok(Insn::Atomic {
                        size,
                        op,
                        fetch,
                        dst: reg(r.dst)?,
                        src: reg(r.src)?,
                        off: r.off,
                    })
                }
                _ => unknown(),
            }
        }
        _ => unreachable!("class is three bits"),
    }
}

fn alu_opbits(op: AluOp) -> (u8, i16) {
    match op {
        AluOp::Add => (0x00, 0),
        AluOp::Sub => (0x10, 0),
        AluOp::Mul => (0x20, 0),
        AluOp::Div => (0x30, 0),
        AluOp::SDiv => (0x30, 1),
        AluOp::Or => (0x40, 0),
        AluOp::And => (0x50, 0),
        AluOp::Lsh => (0x60, 0),
        AluOp::Rsh => (0x70, 0),
        AluOp::Neg => (0x80, 0),
        AluOp::Mod => (0x90, 0),
        AluOp::SMod => (0x90, 1),
        AluOp::Xor => (0xa0, 0),
        AluOp::Mov => (0xb0, 0),
        AluOp::MovSx8 => (0xb0, 8),
        AluOp::MovSx16 => (0xb0, 16),
        AluOp::MovSx32 => (0xb0, 32),
        AluOp::Arsh => (0xc0, 0),
    }
}

fn jmp_opbits(cond: JmpCond) -> u8 {
    match cond {
        JmpCond::Eq => 0x10,
        JmpCond::Gt => 0x20,
        JmpCond::Ge => 0x30,
        JmpCond::Set => 0x40,
        JmpCond::Ne => 0x50,
        JmpCond::Sgt => 0x60,
        JmpCond::Sge => 0x70,
        JmpCond::Lt => 0xa0,
        JmpCond::Le => 0xb0,
        JmpCond::Slt => 0xc0,
        JmpCond::Sle => 0xd0,
    }
}

/// Encodes one instruction into its slots (two for `Imm64`, none for `Imm64Tail`).
pub fn encode(insn: &Insn) -> Vec<RawInsn> {
    let one = |code: u8, dst: u8, src: u8, off: i16, imm: i32| {
        vec![RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        }]
    };
    match *insn {
        Insn::Alu {
            width,
            op,
            dst,
            src,
        } => {
            let class = if width == Width::W64 {
                CLASS_ALU64
            } else {
                CLASS_ALU
            };
            let (opbits, off) = alu_opbits(op);
            match src {
                Operand::Reg(s) => one(opbits | SRC_X | class, dst.0, s.0, off, 0),
                Operand::Imm(imm) => one(opbits | class, dst.0, 0, off, imm),
            }
        }
        Insn::Endian { order, bits, dst } => {
            let code = match order {
                ByteOrder::ToLe => 0xd0 | CLASS_ALU,
                ByteOrder::ToBe => 0xd0 | SRC_X | CLASS_ALU,
                ByteOrder::Swap => 0xd0 | CLASS_ALU64,
            };
            one(code, dst.0, 0, 0, bits as i32)
        }
        Insn::Imm64 { dst, imm } => {
            let (src, lo, hi) = match imm {
                Imm64::Value(v) => (0, v as u32 as i32, (v >> 32) as u32 as i32),
                Imm64::MapFd(fd) => (1, fd, 0),
                Imm64::MapValue { fd, offset } => (2, fd, offset as i32),
                Imm64::BtfId { id, extra } => (3, id, extra as i32),
                Imm64::Func(off) => (4, off, 0),
                Imm64::MapIdx(i) => (5, i, 0),
                Imm64::MapIdxValue { index, offset } => (6, index, offset as i32),
            };
            vec![
                RawInsn {
                    code: CLASS_LD | MODE_IMM | Size::DW.bits(),
                    dst: dst.0,
                    src,
                    off: 0,
                    imm: lo,
                },
                RawInsn {
                    imm: hi,
                    ..RawInsn::default()
                },
            ]
        }
        Insn::Imm64Tail => vec![],
        Insn::LoadAbs { size, imm } => one(CLASS_LD | MODE_ABS | size.bits(), 0, 0, 0, imm),
        Insn::LoadInd { size, src, imm } => {
            one(CLASS_LD | MODE_IND | size.bits(), 0, src.0, 0, imm)
        }
        Insn::Load {
            size,
            signed,
            dst,
            src,
            off,
        } => {
            let mode = if signed { MODE_MEMSX } else { MODE_MEM };
            one(CLASS_LDX | mode | size.bits(), dst.0, src.0, off, 0)
        }
        Insn::StoreImm {
            size,
            dst,
            off,
            imm,
        } => one(CLASS_ST | MODE_MEM | size.bits(), dst.0, 0, off, imm),
        Insn::StoreReg {
            size,
            dst,
            src,
            off,
        } => one(CLASS_STX | MODE_MEM | size.bits(), dst.0, src.0, off, 0),
        Insn::Atomic {
            size,
            op,
            fetch,
            dst,
            src,
            off,
        } => {
            let imm = match op {
                AtomicOp::Add => 0x00,
                AtomicOp::Or => 0x40,
                AtomicOp::And => 0x50,
                AtomicOp::Xor => 0xa0,
                AtomicOp::Xchg => ATOMIC_XCHG,
                AtomicOp::CmpXchg => ATOMIC_CMPXCHG,
            } | if fetch { ATOMIC_FETCH } else { 0 };
            one(
                CLASS_STX | MODE_ATOMIC | size.bits(),
                dst.0,
                src.0,
                off,
                imm,
            )
        }
        Insn::Ja { off, long } => match i16::try_from(off) {
            Ok(short) if !long => one(CLASS_JMP, 0, 0, short, 0),
            _ => one(CLASS_JMP32, 0, 0, 0, off),
        },
        Insn::Jmp {
            width,
            cond,
            dst,
            src,
            off,
        } => {
            let class = if width == Width::W64 {
                CLASS_JMP
            } else {
                CLASS_JMP32
            };
            match src {
                Operand::Reg(s) => one(jmp_opbits(cond) | SRC_X | class, dst.0, s.0, off, 0),
                Operand::Imm(imm) => one(jmp_opbits(cond) | class, dst.0, 0, off, imm),
            }
        }
        Insn::Call(target) => match target {
            CallTarget::Helper(id) => one(0x80 | CLASS_JMP, 0, 0, 0, id),
            CallTarget::Local(off) => one(0x80 | CLASS_JMP, 0, 1, 0, off),
            CallTarget::Kfunc(id) => one(0x80 | CLASS_JMP, 0, 2, 0, id),
            CallTarget::Register(r) => one(0x80 | SRC_X | CLASS_JMP, 0, 0, 0, r.0 as i32),
        },
        Insn::Exit => one(0x90 | CLASS_JMP, 0, 0, 0, 0),
    }
}

/// Encodes a decoded program back into slots.
pub fn encode_all(insns: &[Insn]) -> Vec<RawInsn> {
    insns.iter().flat_map(encode).collect()
}

/// Serializes slots to bytes, as they appear in an ELF section or a `bpf()` call.
pub fn to_bytes(raw: &[RawInsn]) -> Vec<u8> {
    raw.iter().flat_map(|r| r.to_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every opcode byte with zeroed fields (and the fields each form needs) must either decode
    /// and re-encode to the same slot, or be rejected; no input may panic.
    #[test]
    fn every_opcode_round_trips_or_is_rejected() {
        let mut accepted = 0;
        for code in 0..=255u8 {
            for (dst, src, off, imm) in [
                (1, 2, 0, 0),
                (1, 0, 0, 7),
                (1, 2, 1, 0),
                (1, 2, 8, 0),
                (0, 0, 0, 16),
                (1, 2, 3, 0x01),
                (1, 2, 3, 0xf1),
                (0, 0, 5, 0),
                (0, 1, 0, 5),
            ] {
                let raw = [
                    RawInsn {
                        code,
                        dst,
                        src,
                        off,
                        imm,
                    },
                    RawInsn::default(),
                ];
                if let Ok(insn) = decode(&raw, 0) {
                    accepted += 1;
                    let back = encode(&insn);
                    assert_eq!(back[0].code, code, "{insn:?}");
                    assert_eq!(decode(&back, 0).unwrap(), insn);
                }
            }
        }
        assert!(accepted > 150, "only {accepted} forms decoded");
    }

    #[test]
    fn unused_fields_must_be_zero() {
        // add64 r0, 1 with offset 1 (conformance negative test unused-add64_imm-offset).
        let raw = [RawInsn::from_word(0x0000_0001_0001_0007)];
        assert!(matches!(
            decode(&raw, 0),
            Err(DecodeError {
                kind: DecodeErrorKind::ReservedField { .. },
                ..
            })
        ));
    }

    #[test]
    fn lddw_joins_two_slots() {
        let raw = [
            RawInsn::from_word(0x5566_7788_0000_0018),
            RawInsn::from_word(0x1122_3344_0000_0000),
        ];
        assert_eq!(
            decode_all(&raw).unwrap(),
            vec![
                Insn::Imm64 {
                    dst: Reg(0),
                    imm: Imm64::Value(0x1122_3344_5566_7788)
                },
                Insn::Imm64Tail
            ]
        );
        assert_eq!(encode_all(&decode_all(&raw).unwrap()), raw.to_vec());
    }
}
