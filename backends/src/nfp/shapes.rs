//! Which 32-bit halves of each 64-bit IR value need a register.
//!
//! Microengine registers are 32 bits wide, so a BPF value is a pair of halves. Most halves
//! are known at compile time: the high half of every 32-bit result is 0, a small load's high
//! half is 0, and the high half of a pointer is its region word (the runtime's pointers are
//! `region << 32 | offset`, see `hw::nfp::abi`). This analysis finds, for every value, each
//! half as a constant or as "needs a register", so that the backend spends registers and
//! instructions only on halves that vary: that is what lets 64-bit BPF code run at about one
//! microengine instruction per BPF instruction instead of the two or more of a pair-for-every-
//! register translation.
//!
//! Block parameters are solved optimistically (a half is a constant until two different
//! values flow into it) and iterated to a fixed point.
//!
//! The range analysis of `passes::range` narrows further: a 64-bit scalar whose unsigned
//! interval ends below 2^32 (a header field shifted into place, an offset that a bounds check
//! limited) has a high half of 0, so it takes one register instead of a pair and the 64-bit
//! arithmetic on it loses its carry chain. The interval holds wherever the value is defined
//! (SSA values never change), so the narrowing is sound on every path.
//!
//! One assumption goes beyond the IR: adding a scalar whose high half is 0 to a pointer keeps
//! the pointer's region word (no carry out of the offset). The kernel verifier bounds the
//! offsets added to packet, stack and map-value pointers far below 2^32, so this holds for
//! every program it accepts; the simulator checks every access against the region it names,
//! so a program that broke the assumption would fault rather than touch the wrong memory.

use hw::nfp::abi::{REGION_CTX, REGION_MAP, REGION_PACKET, REGION_STACK};
use ir::instructions::InstructionData as I;
use ir::semantics::{self, Width};
use ir::{BinaryOp, Block, Function, Region, UnaryOp, Value};
use passes::range::{Fact, RangeAnalysis};
use std::collections::HashMap;

/// One 32-bit half of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    /// Not known yet (only during the fixed-point iteration).
    Bottom,
    Const(u32),
    Reg,
}

impl Half {
    fn join(self, other: Half) -> Half {
        match (self, other) {
            (Half::Bottom, x) | (x, Half::Bottom) => x,
            (Half::Const(a), Half::Const(b)) if a == b => Half::Const(a),
            _ => Half::Reg,
        }
    }
    pub fn constant(self) -> Option<u32> {
        match self {
            Half::Const(c) => Some(c),
            _ => None,
        }
    }
}

/// Both halves of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub lo: Half,
    pub hi: Half,
}

impl Shape {
    pub fn of_const(v: u64) -> Shape {
        Shape {
            lo: Half::Const(v as u32),
            hi: Half::Const((v >> 32) as u32),
        }
    }
    fn reg32() -> Shape {
        Shape {
            lo: Half::Reg,
            hi: Half::Const(0),
        }
    }
    fn reg64() -> Shape {
        Shape {
            lo: Half::Reg,
            hi: Half::Reg,
        }
    }
    const BOTTOM: Shape = Shape {
        lo: Half::Bottom,
        hi: Half::Bottom,
    };
    pub fn constant(self) -> Option<u64> {
        Some(((self.hi.constant()? as u64) << 32) | self.lo.constant()? as u64)
    }
    fn has_bottom(self) -> bool {
        self.lo == Half::Bottom || self.hi == Half::Bottom
    }
}

/// How the program's parameters arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// An XDP program: r1 is the context pointer.
    Xdp,
    /// Conformance mode: r1 points to a memory buffer (or is 0), r2 is its length.
    Memory,
}

/// The shape of every value of a function.
pub fn analyze(
    func: &Function,
    rpo: &[Block],
    entry: EntryKind,
    slot_offsets: &[u32],
    ranges: &RangeAnalysis,
    map_regions: &[Option<u32>],
) -> HashMap<Value, Shape> {
    // A scalar the range analysis bounds below 2^32 has a zero high half.
    let narrow = |v: Value, s: Shape| -> Shape {
        let fits = matches!(ranges.fact(v), Fact::Scalar(i) if i.umax <= u32::MAX as u64);
        if fits && s.hi == Half::Reg {
            Shape {
                lo: s.lo,
                hi: Half::Const(0),
            }
        } else {
            s
        }
    };
    let mut shapes: HashMap<Value, Shape> = HashMap::new();
    if let Some(eb) = func.entry_block() {
        for (i, p) in func.dfg.block_params(eb).iter().enumerate() {
            let s = match (entry, i) {
                (EntryKind::Xdp, 0) => Shape {
                    lo: Half::Const(0),
                    hi: Half::Const(REGION_CTX),
                },
                (EntryKind::Memory, 0) => Shape::reg64(),
                _ => Shape::reg32(),
            };
            shapes.insert(*p, s);
        }
    }
    for _round in 0..64 {
        let mut changed = false;
        for &b in rpo {
            for inst in func.block_insts(b) {
                let data = func.dfg.inst(inst);
                if let Some(r) = func.dfg.inst_result(inst) {
                    let s = narrow(
                        r,
                        shape_of(func, data, &shapes, slot_offsets, entry, map_regions),
                    );
                    if shapes.get(&r) != Some(&s) {
                        shapes.insert(r, s);
                        changed = true;
                    }
                }
                for dest in data.branch_destinations() {
                    let params = func.dfg.block_params(dest.block);
                    for (p, a) in params.iter().zip(&dest.args) {
                        let incoming = shapes.get(a).copied().unwrap_or(Shape::BOTTOM);
                        let old = shapes.get(p).copied().unwrap_or(Shape::BOTTOM);
                        let new = narrow(
                            *p,
                            Shape {
                                lo: old.lo.join(incoming.lo),
                                hi: old.hi.join(incoming.hi),
                            },
                        );
                        if new != old {
                            shapes.insert(*p, new);
                            changed = true;
                        }
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    // Whatever stayed unknown is unreachable or never received a value: give it registers.
    for (v, s) in shapes.iter_mut() {
        if s.lo == Half::Bottom {
            s.lo = Half::Reg;
        }
        if s.hi == Half::Bottom {
            s.hi = Half::Reg;
        }
        *s = narrow(*v, *s);
    }
    shapes
}

fn shape_of(
    func: &Function,
    data: &I,
    shapes: &HashMap<Value, Shape>,
    slot_offsets: &[u32],
    entry: EntryKind,
    map_regions: &[Option<u32>],
) -> Shape {
    let get = |v: &Value| shapes.get(v).copied().unwrap_or(Shape::BOTTOM);
    let args = data.args();
    if data.opcode().is_pure() && !args.is_empty() && args.iter().any(|a| get(a).has_bottom()) {
        return Shape::BOTTOM;
    }
    match *data {
        I::Iconst { imm } => Shape::of_const(imm as u64),
        I::StackAddr { slot, offset } => {
            let base = slot_offsets
                .get(cranelift_codegen::entity::EntityRef::index(slot))
                .copied()
                .unwrap_or(0);
            Shape {
                lo: Half::Const(base.wrapping_add(offset as u32)),
                hi: Half::Const(REGION_STACK),
            }
        }
        I::MapRef { map } => Shape {
            lo: Half::Const(0),
            hi: Half::Const(REGION_MAP + cranelift_codegen::entity::EntityRef::index(map) as u32),
        },
        // A map in chip memory has a fixed region word and its (only) value at offset 0 of
        // the image, so the address is a constant; otherwise the loader relocates the region.
        I::MapValueAddr { map, offset } => Shape {
            lo: Half::Const(offset as u32),
            hi: match map_regions
                .get(cranelift_codegen::entity::EntityRef::index(map))
                .copied()
                .flatten()
            {
                Some(region) => Half::Const(region),
                None => Half::Reg,
            },
        },
        I::Binary { op, width, args } => {
            let (x, y) = (get(&args[0]), get(&args[1]));
            if let (Some(a), Some(b)) = (x.constant(), y.constant()) {
                return Shape::of_const(op.eval(width, a, b));
            }
            if width == Width::W32 {
                return Shape::reg32();
            }
            binary64(op, x, y)
        }
        I::Unary { op, width, arg } => {
            let x = get(&arg);
            if let Some(a) = x.constant() {
                return Shape::of_const(op.eval(width, a));
            }
            match (op, width) {
                (UnaryOp::Mov, Width::W64) => x,
                (UnaryOp::Mov, Width::W32) => Shape {
                    lo: x.lo,
                    hi: Half::Const(0),
                },
                (_, Width::W32) => Shape::reg32(),
                _ => Shape::reg64(),
            }
        }
        I::Endian { order, bits, arg } => {
            let x = get(&arg);
            if let Some(a) = x.constant() {
                return Shape::of_const(semantics::byte_order(order, bits as u32, a));
            }
            if bits == 64 {
                if order == semantics::ByteOrder::ToLe {
                    x
                } else {
                    Shape::reg64()
                }
            } else {
                Shape::reg32()
            }
        }
        I::Load {
            region,
            size,
            signed,
            offset,
            ..
        } => {
            if region == Region::Ctx && entry == EntryKind::Xdp {
                return match offset {
                    0 | 4 | 8 => Shape {
                        lo: Half::Reg,
                        hi: Half::Const(REGION_PACKET),
                    },
                    _ => Shape::reg32(),
                };
            }
            if size.bytes() == 8 || signed {
                Shape::reg64()
            } else {
                Shape::reg32()
            }
        }
        // Helpers whose result is a 32-bit number by their definition: get_prandom_u32,
        // get_smp_processor_id, get_numa_node_id, and redirect and redirect_map, which answer
        // with an XDP action (`sim::runtime::helpers` returns these and nothing else).
        I::CallHelper {
            helper: 7 | 8 | 23 | 42 | 51,
            ..
        } => Shape::reg32(),
        I::Atomic { size, .. } | I::CmpXchg { size, .. } => {
            if size.bytes() == 8 {
                Shape::reg64()
            } else {
                Shape::reg32()
            }
        }
        _ => {
            let _ = func;
            Shape::reg64()
        }
    }
}

fn binary64(op: BinaryOp, x: Shape, y: Shape) -> Shape {
    let pointer = |s: Shape| matches!(s.hi, Half::Const(c) if c != 0);
    let zero_hi = |s: Shape| s.hi == Half::Const(0);
    let shift = y.constant().map(|k| (k & 63) as u32);
    match op {
        BinaryOp::Add if pointer(x) && zero_hi(y) => Shape {
            lo: Half::Reg,
            hi: x.hi,
        },
        BinaryOp::Add if pointer(y) && zero_hi(x) => Shape {
            lo: Half::Reg,
            hi: y.hi,
        },
        BinaryOp::Sub if pointer(x) && zero_hi(y) => Shape {
            lo: Half::Reg,
            hi: x.hi,
        },
        BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => {
            let hi = match (x.hi, y.hi) {
                (Half::Const(0), _) | (_, Half::Const(0)) if op == BinaryOp::And => Half::Const(0),
                (Half::Const(a), Half::Const(b)) => {
                    Half::Const(semantics::alu(op.alu_op(), Width::W64, a as u64, b as u64) as u32)
                }
                _ => Half::Reg,
            };
            Shape { lo: Half::Reg, hi }
        }
        BinaryOp::Lsh => match shift {
            Some(0) => x,
            Some(k) if k >= 32 => Shape {
                lo: Half::Const(0),
                hi: Half::Reg,
            },
            _ => Shape::reg64(),
        },
        BinaryOp::Rsh => match shift {
            Some(0) => x,
            Some(k) if k >= 32 => Shape::reg32(),
            Some(k) => Shape {
                lo: Half::Reg,
                hi: match x.hi {
                    Half::Const(c) => Half::Const(c >> k),
                    _ => Half::Reg,
                },
            },
            None => Shape::reg64(),
        },
        BinaryOp::Arsh => match shift {
            Some(0) => x,
            Some(k) if k < 32 && zero_hi(x) => Shape::reg32(),
            _ => Shape::reg64(),
        },
        _ => Shape::reg64(),
    }
}
