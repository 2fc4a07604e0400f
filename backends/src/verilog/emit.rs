//! A scheduled pipeline block as a Verilog module (through the syntax tree of `vast.rs`).
//!
//! The module implements the block's timing contract (`hw::pipeline::block`) literally: one
//! wire `nK` per node, one register `rB_nK` per pipeline register the block lists, a valid bit
//! `vB` per boundary, a global `advance` that stalls everything when the output is held, and
//! one `reg` array per memory, read synchronously in the memory's read stage (a block RAM's
//! output register, with the write of the next stage forwarded into it when the rows match)
//! and written at the rising edge by the stage after it. Memories are
//! also reachable through a control port (`ctl_*`: select a memory and a row, read the row
//! a cycle later, write it at the rising edge) that the shell exposes over AXI4-Lite and the
//! testbench uses to seed and read maps. A control write stalls the pipeline for its cycle
//! (`advance` is low), so it takes effect between two packets and never collides with a
//! pipeline write.
//!
//! Every operation's expression is written to give exactly what `ir::semantics` (through the
//! simulator) computes, including the corner cases: division by zero, shift amounts masked to
//! the operation width, reads past the end of a byte array giving zero, writes past it dropped.

use super::vast::{BinOp, Dir, Expr, Item, Module, Port, Stmt, UnOp};
use hw::pipeline::{Block, Input, Logic, NodeId, NodeKind, Output, Shape};
use ir::semantics::{AluOp, ByteOrder, JmpCond, Width};

/// Bits needed to index `n` things (at least 1).
fn index_bits(n: u64) -> u32 {
    (64 - n.saturating_sub(1).leading_zeros()).max(1)
}

/// The name of the port carrying input `i`.
pub fn input_port(i: Input) -> String {
    format!("in_{}", i.name())
}

/// The name of the port carrying output `o`.
pub fn output_port(o: Output) -> String {
    format!("out_{}", o.name())
}

/// The width of an input port.
pub fn input_width(block: &Block, i: Input) -> u32 {
    match i {
        Input::Window => block.window_bytes * 8,
        Input::Length => 16,
        Input::IngressIfindex | Input::RxQueue => 32,
    }
}

/// The width of an output port.
pub fn output_width(block: &Block, o: Output) -> u32 {
    block.output_shape(o).bits()
}

/// Bits of the control port's memory select and row.
pub const CTL_MEM_BITS: u32 = 8;
pub const CTL_ROW_BITS: u32 = 32;

/// The module name of a block's core.
pub fn core_name(block: &Block) -> String {
    format!("{}_pipeline", block.name)
}

struct Emitter<'a> {
    block: &'a Block,
    /// `hw::pipeline::significant_bits` of every node: operations are printed as narrow as
    /// their operands allow.
    sig: Vec<u32>,
    items: Vec<Item>,
    temps: usize,
}

impl<'a> Emitter<'a> {
    /// A name for node `x` as read from stage `stage`.
    fn operand(&self, x: NodeId, stage: u32) -> Expr {
        let node = self.block.node(x);
        match node.kind {
            NodeKind::Const(v) => Expr::lit(node.shape.bits(), v),
            NodeKind::Zeros => Expr::lit(node.shape.bits(), 0),
            _ if node.stage == stage => Expr::ident(format!("n{x}")),
            _ => Expr::ident(format!("r{stage}_n{x}")),
        }
    }

    /// A named wire holding `e` (width `width`), so that it can be sliced.
    fn temp(&mut self, width: u32, e: Expr) -> String {
        let name = format!("t{}", self.temps);
        self.temps += 1;
        self.items.push(Item::Wire {
            name: name.clone(),
            width,
        });
        self.items.push(Item::Assign(Expr::ident(name.clone()), e));
        name
    }

    /// Operand `x` as a named 64-bit vector (zero-extended), for slicing.
    fn named64(&mut self, x: NodeId, stage: u32) -> String {
        let e = self.operand(x, stage);
        let w = self.block.node(x).shape.bits();
        match e {
            Expr::Ident(n) if w == 64 => n,
            e => {
                let e = if w < 64 {
                    Expr::Concat(vec![Expr::lit(64 - w, 0), e])
                } else {
                    e
                };
                self.temp(64, e)
            }
        }
    }

    /// Operand `x` as a named vector of its own width.
    fn named(&mut self, x: NodeId, stage: u32) -> String {
        let e = self.operand(x, stage);
        match e {
            Expr::Ident(n) => n,
            e => {
                let w = self.block.node(x).shape.bits();
                self.temp(w, e)
            }
        }
    }

    fn zext64(bits: u32, e: Expr) -> Expr {
        if bits >= 64 {
            e
        } else {
            Expr::Concat(vec![Expr::lit(64 - bits, 0), e])
        }
    }

    /// The significant bits of `x`, at most `cap` and at least 1.
    fn bits(&self, x: NodeId, cap: u32) -> u32 {
        self.sig
            .get(x as usize)
            .copied()
            .unwrap_or(64)
            .clamp(1, cap.max(1))
    }

    /// `x < limit` as read from stage `s`, compared on as few bits as `x` and `limit` need
    /// (a constant 1 when `x` can never reach `limit`).
    fn below(&mut self, x: NodeId, s: u32, limit: u64) -> Expr {
        let k = self.bits(x, 64);
        if k < 64 && (1u64 << k) <= limit {
            return Expr::lit(1, 1);
        }
        let k = k.max(64 - limit.leading_zeros()).min(64);
        let xn = self.named64(x, s);
        Expr::bin(BinOp::Lt, Expr::slice(xn, k - 1, 0), Expr::lit(k, limit))
    }

    fn sext64(name: &str, bits: u32) -> Expr {
        if bits >= 64 {
            return Expr::ident(name);
        }
        Expr::Concat(vec![
            Expr::repeat(64 - bits, Expr::slice(name, bits - 1, bits - 1)),
            Expr::slice(name, bits - 1, 0),
        ])
    }

    fn alu(
        &mut self,
        id: NodeId,
        op: AluOp,
        width: Width,
        a: NodeId,
        b: NodeId,
        stage: u32,
    ) -> Expr {
        let an = self.named64(a, stage);
        let bn = self.named64(b, stage);
        let (w, shift_bits) = match width {
            Width::W64 => (64, 6),
            Width::W32 => (32, 5),
        };
        // Narrow carry chains: an add or multiply whose result fits `r < w` bits is computed on
        // `r` bits; a subtraction of `k`-bit operands on `k + 1` bits, its borrow replicated
        // into the upper bits (the wrapped result).
        let r = self.bits(id, w);
        let (ka, kb) = (self.bits(a, w), self.bits(b, w));
        let narrow = match op {
            AluOp::Add | AluOp::Mul if r < w => {
                let t = self.temp(
                    r,
                    Expr::bin(
                        if op == AluOp::Add {
                            BinOp::Add
                        } else {
                            BinOp::Mul
                        },
                        Expr::slice(an.clone(), r - 1, 0),
                        Expr::slice(bn.clone(), r - 1, 0),
                    ),
                );
                Some(Self::zext64(r, Expr::ident(t)))
            }
            AluOp::Sub if ka.max(kb) + 1 < w => {
                let k = ka.max(kb);
                let d = self.temp(
                    k + 1,
                    Expr::bin(
                        BinOp::Sub,
                        Expr::Concat(vec![Expr::lit(1, 0), Expr::slice(an.clone(), k - 1, 0)]),
                        Expr::Concat(vec![Expr::lit(1, 0), Expr::slice(bn.clone(), k - 1, 0)]),
                    ),
                );
                let wrapped = Expr::Concat(vec![
                    Expr::repeat(w - k - 1, Expr::slice(d.clone(), k, k)),
                    Expr::ident(d),
                ]);
                if w == 64 {
                    Some(wrapped)
                } else {
                    Some(Self::zext64(w, wrapped))
                }
            }
            _ => None,
        };
        if let Some(e) = narrow {
            return e;
        }
        let x = || Expr::slice(an.clone(), w - 1, 0);
        let y = || Expr::slice(bn.clone(), w - 1, 0);
        let sh = || Expr::slice(bn.clone(), shift_bits - 1, 0);
        let zero = || Expr::lit(w, 0);
        let b_is_zero = || Expr::bin(BinOp::Eq, y(), zero());
        let body = match op {
            AluOp::Add => Expr::bin(BinOp::Add, x(), y()),
            AluOp::Sub => Expr::bin(BinOp::Sub, x(), y()),
            AluOp::Mul => Expr::bin(BinOp::Mul, x(), y()),
            AluOp::Div => Expr::cond(b_is_zero(), zero(), Expr::bin(BinOp::Div, x(), y())),
            AluOp::Mod => Expr::cond(b_is_zero(), x(), Expr::bin(BinOp::Mod, x(), y())),
            AluOp::SDiv => Expr::cond(
                b_is_zero(),
                zero(),
                Expr::bin(BinOp::Div, Expr::signed(x()), Expr::signed(y())),
            ),
            AluOp::SMod => Expr::cond(
                b_is_zero(),
                x(),
                Expr::bin(BinOp::Mod, Expr::signed(x()), Expr::signed(y())),
            ),
            AluOp::Or => Expr::bin(BinOp::Or, x(), y()),
            AluOp::And => Expr::bin(BinOp::And, x(), y()),
            AluOp::Xor => Expr::bin(BinOp::Xor, x(), y()),
            AluOp::Lsh => Expr::bin(BinOp::Shl, x(), sh()),
            AluOp::Rsh => Expr::bin(BinOp::Shr, x(), sh()),
            AluOp::Arsh => Expr::bin(BinOp::Ashr, Expr::signed(x()), sh()),
            AluOp::Neg => Expr::bin(BinOp::Sub, zero(), x()),
            AluOp::Mov => y(),
            AluOp::MovSx8 | AluOp::MovSx16 | AluOp::MovSx32 => {
                let from = match op {
                    AluOp::MovSx8 => 8,
                    AluOp::MovSx16 => 16,
                    _ => 32,
                };
                if from >= w {
                    y()
                } else {
                    Expr::Concat(vec![
                        Expr::repeat(w - from, Expr::slice(bn.clone(), from - 1, from - 1)),
                        Expr::slice(bn.clone(), from - 1, 0),
                    ])
                }
            }
        };
        if w == 64 {
            body
        } else {
            // A named 32-bit wire keeps the operation self-determined at 32 bits.
            let t = self.temp(32, body);
            Self::zext64(32, Expr::ident(t))
        }
    }

    fn node_expr(&mut self, id: NodeId) -> Option<Expr> {
        let node = self.block.node(id).clone();
        let s = node.stage;
        Some(match node.kind {
            NodeKind::Const(_) | NodeKind::Zeros | NodeKind::MemWrite { .. } => return None,
            NodeKind::Input(i) => Expr::ident(input_port(i)),
            NodeKind::Alu { op, width, a, b } => self.alu(id, op, width, a, b, s),
            NodeKind::Endian { order, bits, a } => {
                let an = self.named64(a, s);
                let bits = bits as u32;
                let swap = matches!(order, ByteOrder::ToBe | ByteOrder::Swap);
                let e = if swap {
                    Expr::Concat(
                        (0..bits / 8)
                            .map(|k| Expr::slice(an.clone(), 8 * k + 7, 8 * k))
                            .collect(),
                    )
                } else {
                    Expr::slice(an, bits - 1, 0)
                };
                Self::zext64(bits, e)
            }
            NodeKind::Cmp { cond, width, a, b } => {
                let an = self.named64(a, s);
                let bn = self.named64(b, s);
                // Compared on the bits either operand can set; when those are fewer than the
                // width, both operands are non-negative and signed order is unsigned order.
                let full = width.bits();
                let w = self.bits(a, full).max(self.bits(b, full));
                let x = Expr::slice(an, w - 1, 0);
                let y = Expr::slice(bn, w - 1, 0);
                let (sx, sy) = if w < full {
                    (x.clone(), y.clone())
                } else {
                    (Expr::signed(x.clone()), Expr::signed(y.clone()))
                };
                match cond {
                    JmpCond::Eq => Expr::bin(BinOp::Eq, x, y),
                    JmpCond::Ne => Expr::bin(BinOp::Ne, x, y),
                    JmpCond::Gt => Expr::bin(BinOp::Gt, x, y),
                    JmpCond::Ge => Expr::bin(BinOp::Ge, x, y),
                    JmpCond::Lt => Expr::bin(BinOp::Lt, x, y),
                    JmpCond::Le => Expr::bin(BinOp::Le, x, y),
                    JmpCond::Sgt => Expr::bin(BinOp::Gt, sx, sy),
                    JmpCond::Sge => Expr::bin(BinOp::Ge, sx, sy),
                    JmpCond::Slt => Expr::bin(BinOp::Lt, sx, sy),
                    JmpCond::Sle => Expr::bin(BinOp::Le, sx, sy),
                    JmpCond::Set => {
                        Expr::bin(BinOp::Ne, Expr::bin(BinOp::And, x, y), Expr::lit(w, 0))
                    }
                }
            }
            NodeKind::Logic { op, a, b } => Expr::bin(
                match op {
                    Logic::And => BinOp::And,
                    Logic::Or => BinOp::Or,
                },
                self.operand(a, s),
                self.operand(b, s),
            ),
            NodeKind::Not(a) => Expr::Unary(UnOp::Not, Box::new(self.operand(a, s))),
            NodeKind::Mux {
                sel,
                if_true,
                if_false,
            } => Expr::cond(
                self.operand(sel, s),
                self.operand(if_true, s),
                self.operand(if_false, s),
            ),
            NodeKind::ReadBytes {
                array,
                offset,
                size,
                signed,
            } => self.read_bytes(array, offset, size as u32, signed, s),
            NodeKind::WriteBytes {
                array,
                offset,
                size,
                value,
                enable,
            } => self.write_bytes(array, offset, size as u32, value, enable, s),
            NodeKind::Slice { array, offset } => {
                let arr = self.named(array, s);
                let len = self.block.node(id).shape.bits();
                Expr::slice(arr, 8 * offset + len - 1, 8 * offset)
            }
            NodeKind::Splice {
                array,
                offset,
                part,
            } => {
                let n = self.block.node(array).shape.bits();
                let len = self.block.node(part).shape.bits();
                let arr = self.named(array, s);
                let mut parts = Vec::new();
                if 8 * offset + len < n {
                    parts.push(Expr::slice(arr.clone(), n - 1, 8 * offset + len));
                }
                parts.push(self.operand(part, s));
                if offset > 0 {
                    parts.push(Expr::slice(arr, 8 * offset - 1, 0));
                }
                Expr::Concat(parts)
            }
            // A memory read has no wire in its own stage: its row is registered at the end of
            // the stage (`registered_read`) and nothing in the stage uses it.
            NodeKind::MemRead { .. } => return None,
        })
    }

    /// The synchronous read `id` of memory `mem` at row `row` in stage `s`, as block RAM reads,
    /// with the forwarding that makes it see the write the next stage makes at the same edge:
    /// the row register `rdK_q` (a block RAM's output register), whether the row exists, and
    /// whether and what the memory's write in stage `s + 1` wrote to the same row. Returns the
    /// register statements (clocked under `advance`); the row's value from stage `s + 1` on is
    /// the wire `r{s+1}_nK` this also declares.
    fn registered_read(&mut self, id: NodeId, mem: u32, row: NodeId, s: u32) -> Vec<Stmt> {
        let Some(m) = self.block.memories.get(mem as usize).cloned() else {
            return Vec::new();
        };
        let width = m.row_bytes * 8;
        let bits = index_bits(m.rows as u64);
        let q = format!("rd{id}_q");
        let ok = format!("rd{id}_ok");
        let hit = format!("rd{id}_hit");
        let fwd = format!("rd{id}_fwd");
        self.items.push(Item::Comment(format!(
            "n{id}: row of memory {mem} read in stage {s}, registered, with stage {}'s write forwarded",
            s + 1
        )));
        let rn = self.named64(row, s);
        let in_range = self.below(row, s, m.rows as u64);
        // The writes of the next stage, in the priority the memory's write logic gives them.
        let mut hits = Vec::new();
        for (_, node) in self.block.memory_writes(mem) {
            let NodeKind::MemWrite {
                row: wrow,
                data,
                enable,
                ..
            } = node.kind
            else {
                continue;
            };
            let ws = node.stage;
            let write_valid = if ws == 0 {
                Expr::ident("in_valid")
            } else {
                Expr::ident(format!("v{ws}"))
            };
            let wn = self.named64(wrow, ws);
            let same_row = Expr::bin(
                BinOp::Eq,
                Expr::slice(wn, bits - 1, 0),
                Expr::slice(rn.clone(), bits - 1, 0),
            );
            let cond = Expr::bin(
                BinOp::LogicAnd,
                Expr::bin(
                    BinOp::LogicAnd,
                    Expr::bin(BinOp::LogicAnd, write_valid, self.operand(enable, ws)),
                    self.below(wrow, ws, m.rows as u64),
                ),
                Expr::bin(BinOp::LogicAnd, same_row, in_range.clone()),
            );
            hits.push((cond, self.operand(data, ws)));
        }
        let mut any_hit = Expr::lit(1, 0);
        let mut data = Expr::lit(width, 0);
        for (cond, d) in hits.into_iter().rev() {
            any_hit = Expr::bin(BinOp::LogicOr, cond.clone(), any_hit);
            data = Expr::cond(cond, d, data);
        }
        let value = Expr::cond(
            Expr::ident(hit.clone()),
            Expr::ident(fwd.clone()),
            Expr::cond(
                Expr::ident(ok.clone()),
                Expr::ident(q.clone()),
                Expr::lit(width, 0),
            ),
        );
        self.items.push(Item::Assign(
            Expr::ident(format!("r{}_n{id}", s + 1)),
            value,
        ));
        vec![
            Stmt::NonBlocking(
                Expr::ident(q),
                Expr::Index {
                    name: format!("mem{mem}"),
                    index: Box::new(Expr::slice(rn, bits - 1, 0)),
                },
            ),
            Stmt::NonBlocking(Expr::ident(ok), in_range),
            Stmt::NonBlocking(Expr::ident(hit), any_hit),
            Stmt::NonBlocking(Expr::ident(fwd), data),
        ]
    }

    fn read_bytes(
        &mut self,
        array: NodeId,
        offset: NodeId,
        size: u32,
        signed: bool,
        s: u32,
    ) -> Expr {
        let n = match self.block.node(array).shape {
            Shape::Bytes(n) => n,
            _ => 0,
        };
        let arr = self.named(array, s);
        let raw = match self.block.node(offset).kind {
            NodeKind::Const(o) => {
                if o >= n as u64 {
                    Expr::lit(size * 8, 0)
                } else {
                    let o = o as u32;
                    let have = size.min(n - o);
                    let part = Expr::slice(arr, 8 * (o + have) - 1, 8 * o);
                    if have < size {
                        Expr::Concat(vec![Expr::lit(8 * (size - have), 0), part])
                    } else {
                        part
                    }
                }
            }
            _ => {
                // Pad the array with `size` zero bytes so a select near its end reads zeros.
                let padded = self.temp(
                    8 * (n + size),
                    Expr::Concat(vec![Expr::lit(8 * size, 0), Expr::ident(arr)]),
                );
                let on = self.named64(offset, s);
                let bits = index_bits(n as u64);
                let base =
                    Expr::Concat(vec![Expr::slice(on.clone(), bits - 1, 0), Expr::lit(3, 0)]);
                Expr::cond(
                    self.below(offset, s, n as u64),
                    Expr::PartSelect {
                        name: padded,
                        base: Box::new(base),
                        width: 8 * size,
                    },
                    Expr::lit(8 * size, 0),
                )
            }
        };
        let t = self.temp(8 * size, raw);
        if signed {
            Self::sext64(&t, 8 * size)
        } else {
            Self::zext64(8 * size, Expr::ident(t))
        }
    }

    fn write_bytes(
        &mut self,
        array: NodeId,
        offset: NodeId,
        size: u32,
        value: NodeId,
        enable: NodeId,
        s: u32,
    ) -> Expr {
        let n = match self.block.node(array).shape {
            Shape::Bytes(n) => n,
            _ => 0,
        };
        let arr = self.named(array, s);
        let vn = self.named64(value, s);
        let en = self.operand(enable, s);
        let written = match self.block.node(offset).kind {
            NodeKind::Const(o) => {
                if o >= n as u64 {
                    return Expr::ident(arr);
                }
                let o = o as u32;
                let have = size.min(n - o);
                let mut parts = Vec::new();
                if o + have < n {
                    parts.push(Expr::slice(arr.clone(), 8 * n - 1, 8 * (o + have)));
                }
                parts.push(Expr::slice(vn, 8 * have - 1, 0));
                if o > 0 {
                    parts.push(Expr::slice(arr.clone(), 8 * o - 1, 0));
                }
                Expr::Concat(parts)
            }
            _ => {
                let on = self.named64(offset, s);
                let bits = index_bits(n as u64);
                let shift =
                    Expr::Concat(vec![Expr::slice(on.clone(), bits - 1, 0), Expr::lit(3, 0)]);
                let width = 8 * n;
                let fit = |e: Expr, w: u32| {
                    if w < width {
                        Expr::Concat(vec![Expr::lit(width - w, 0), e])
                    } else {
                        e
                    }
                };
                let w = 8 * size.min(n);
                let mask = self.temp(
                    width,
                    Expr::bin(
                        BinOp::Shl,
                        fit(Expr::repeat(w, Expr::lit(1, 1)), w),
                        shift.clone(),
                    ),
                );
                let data = self.temp(
                    width,
                    Expr::bin(BinOp::Shl, fit(Expr::slice(vn, w - 1, 0), w), shift),
                );
                let merged = Expr::bin(
                    BinOp::Or,
                    Expr::bin(
                        BinOp::And,
                        Expr::ident(arr.clone()),
                        Expr::bit_not(Expr::ident(mask.clone())),
                    ),
                    Expr::bin(BinOp::And, Expr::ident(data), Expr::ident(mask)),
                );
                Expr::cond(
                    self.below(offset, s, n as u64),
                    merged,
                    Expr::ident(arr.clone()),
                )
            }
        };
        Expr::cond(en, written, Expr::ident(arr))
    }
}

/// The core module of a scheduled block.
pub fn core_module(block: &Block) -> Module {
    let stages = block.stages;
    let mut ports = vec![
        Port {
            dir: Dir::Input,
            name: "clk".into(),
            width: 1u32.into(),
        },
        Port {
            dir: Dir::Input,
            name: "rst".into(),
            width: 1u32.into(),
        },
        Port {
            dir: Dir::Input,
            name: "in_valid".into(),
            width: 1u32.into(),
        },
        Port {
            dir: Dir::Output,
            name: "in_ready".into(),
            width: 1u32.into(),
        },
    ];
    for i in Input::ALL {
        ports.push(Port {
            dir: Dir::Input,
            name: input_port(i),
            width: input_width(block, i).into(),
        });
    }
    ports.push(Port {
        dir: Dir::Output,
        name: "out_valid".into(),
        width: 1u32.into(),
    });
    ports.push(Port {
        dir: Dir::Input,
        name: "out_ready".into(),
        width: 1u32.into(),
    });
    for o in Output::ALL {
        ports.push(Port {
            dir: Dir::Output,
            name: output_port(o),
            width: output_width(block, o).into(),
        });
    }
    let row_bits = block.max_row_bytes() * 8;
    ports.extend([
        Port {
            dir: Dir::Input,
            name: "ctl_mem".into(),
            width: CTL_MEM_BITS.into(),
        },
        Port {
            dir: Dir::Input,
            name: "ctl_row".into(),
            width: CTL_ROW_BITS.into(),
        },
        Port {
            dir: Dir::Input,
            name: "ctl_we".into(),
            width: 1u32.into(),
        },
        Port {
            dir: Dir::Input,
            name: "ctl_wdata".into(),
            width: row_bits.into(),
        },
        Port {
            dir: Dir::Output,
            name: "ctl_rdata".into(),
            width: row_bits.into(),
        },
    ]);
    let mut e = Emitter {
        block,
        sig: hw::pipeline::significant_bits(block),
        items: Vec::new(),
        temps: 0,
    };
    e.items.push(Item::Comment(format!(
        "{} stages; a packet leaves {} cycles after it enters unless the output stalls",
        stages, stages
    )));
    for (k, m) in block.memories.iter().enumerate() {
        e.items.push(Item::Comment(format!(
            "memory {k}: map `{}`, {} rows of {} bytes",
            m.name, m.rows, m.row_bytes
        )));
        e.items.push(Item::Memory {
            name: format!("mem{k}"),
            width: m.row_bytes * 8,
            depth: m.rows.max(1),
        });
        // Maps start out zero, as the runtime creates them; an FPGA configures the memory so.
        e.items.push(Item::ZeroMemory {
            name: format!("mem{k}"),
            depth: m.rows.max(1),
        });
    }
    for b in 1..=stages {
        e.items.push(Item::Reg {
            name: format!("v{b}"),
            width: 1,
        });
    }
    // A memory read's first register is the forwarding wire `registered_read` declares.
    let regs: Vec<_> = block
        .registers()
        .into_iter()
        .filter(|r| {
            let n = block.node(r.node);
            !(n.kind.is_registered() && r.boundary == n.stage + 1)
        })
        .collect();
    for r in &regs {
        e.items.push(Item::Reg {
            name: format!("r{}_n{}", r.boundary, r.node),
            width: block.node(r.node).shape.bits(),
        });
    }
    // The registers of every memory read (`registered_read`) and the wire its users read.
    for (id, node) in block.nodes.iter().enumerate() {
        if !node.kind.is_registered() {
            continue;
        }
        let width = node.shape.bits();
        for (name, w) in [("q", width), ("ok", 1), ("hit", 1), ("fwd", width)] {
            e.items.push(Item::Reg {
                name: format!("rd{id}_{name}"),
                width: w,
            });
        }
        e.items.push(Item::Wire {
            name: format!("r{}_n{id}", node.stage + 1),
            width,
        });
    }
    e.items.push(Item::Wire {
        name: "advance".into(),
        width: 1,
    });
    // A control-port write holds the whole pipeline for its cycle, so that it lands between
    // two packets' read-modify-writes and no pipeline write can collide with it.
    e.items.push(Item::Assign(
        Expr::ident("advance"),
        Expr::bin(
            BinOp::And,
            Expr::bin(
                BinOp::Or,
                Expr::ident("out_ready"),
                Expr::bit_not(Expr::ident(format!("v{stages}"))),
            ),
            Expr::bit_not(Expr::ident("ctl_we")),
        ),
    ));
    e.items.push(Item::Assign(
        Expr::ident("in_ready"),
        Expr::ident("advance"),
    ));
    e.items.push(Item::Assign(
        Expr::ident("out_valid"),
        Expr::ident(format!("v{stages}")),
    ));
    for s in 0..stages {
        e.items.push(Item::Comment(format!("stage {s}")));
        for id in 0..block.nodes.len() as NodeId {
            if block.node(id).stage != s {
                continue;
            }
            if let Some(expr) = e.node_expr(id) {
                let w = block.node(id).shape.bits();
                e.items.push(Item::Wire {
                    name: format!("n{id}"),
                    width: w,
                });
                e.items
                    .push(Item::Assign(Expr::ident(format!("n{id}")), expr));
            }
        }
    }
    let mut read_registers = Vec::new();
    for id in 0..block.nodes.len() as NodeId {
        let node = block.node(id);
        if let NodeKind::MemRead { mem, row } = node.kind {
            read_registers.extend(e.registered_read(id, mem, row, node.stage));
        }
    }
    for o in Output::ALL {
        if let Some(&x) = block.outputs.get(&o) {
            let v = e.operand(x, stages);
            e.items.push(Item::Assign(Expr::ident(output_port(o)), v));
        }
    }
    // Control-port reads are synchronous, like the pipeline's: each memory's row register
    // `ctlK_q` reads the selected row at every edge (a block RAM port of its own), and the
    // memory select and range check are registered beside it, so `ctl_rdata` shows the row
    // selected one cycle earlier.
    let mut rdata = Expr::lit(row_bits, 0);
    let mut ctl_reads = Vec::new();
    for (k, m) in block.memories.iter().enumerate().rev() {
        let bits = index_bits(m.rows as u64);
        let width = m.row_bytes * 8;
        let (q, ok) = (format!("ctl{k}_q"), format!("ctl{k}_ok"));
        e.items.push(Item::Reg {
            name: q.clone(),
            width,
        });
        e.items.push(Item::Reg {
            name: ok.clone(),
            width: 1,
        });
        ctl_reads.push(Stmt::NonBlocking(
            Expr::ident(q.clone()),
            Expr::Index {
                name: format!("mem{k}"),
                index: Box::new(Expr::slice("ctl_row", bits - 1, 0)),
            },
        ));
        ctl_reads.push(Stmt::NonBlocking(
            Expr::ident(ok.clone()),
            Expr::bin(
                BinOp::LogicAnd,
                Expr::bin(
                    BinOp::Eq,
                    Expr::ident("ctl_mem"),
                    Expr::lit(CTL_MEM_BITS, k as u64),
                ),
                Expr::bin(
                    BinOp::Lt,
                    Expr::ident("ctl_row"),
                    Expr::lit(CTL_ROW_BITS, m.rows as u64),
                ),
            ),
        ));
        let word = if width < row_bits {
            Expr::Concat(vec![Expr::lit(row_bits - width, 0), Expr::ident(q)])
        } else {
            Expr::ident(q)
        };
        rdata = Expr::cond(Expr::ident(ok), word, rdata);
    }
    e.items.push(Item::Assign(Expr::ident("ctl_rdata"), rdata));
    // The clocked part: valid bits, pipeline registers, memory writes.
    let mut body = ctl_reads;
    let mut valid = vec![];
    for b in 1..=stages {
        let from = if b == 1 {
            Expr::ident("in_valid")
        } else {
            Expr::ident(format!("v{}", b - 1))
        };
        valid.push(Stmt::NonBlocking(Expr::ident(format!("v{b}")), from));
    }
    body.push(Stmt::If(
        Expr::ident("rst"),
        (1..=stages)
            .map(|b| Stmt::NonBlocking(Expr::ident(format!("v{b}")), Expr::lit(1, 0)))
            .collect(),
        vec![Stmt::If(Expr::ident("advance"), valid, vec![])],
    ));
    let mut moves = vec![];
    for r in &regs {
        let src = if r.boundary == block.node(r.node).stage + 1 {
            Expr::ident(format!("n{}", r.node))
        } else {
            Expr::ident(format!("r{}_n{}", r.boundary - 1, r.node))
        };
        moves.push(Stmt::NonBlocking(
            Expr::ident(format!("r{}_n{}", r.boundary, r.node)),
            src,
        ));
    }
    moves.extend(read_registers);
    if !moves.is_empty() {
        body.push(Stmt::If(Expr::ident("advance"), moves, vec![]));
    }
    // Each memory has one write port, as a block RAM has: the pipeline's writes (all in one
    // stage; the first in node order wins, as the forwarding in `registered_read` assumes) and
    // then the control port's, multiplexed onto one enable, row and data.
    for (k, m) in block.memories.iter().enumerate() {
        let bits = index_bits(m.rows as u64);
        let width = m.row_bytes * 8;
        let ctl_hit = Expr::bin(
            BinOp::LogicAnd,
            Expr::bin(
                BinOp::LogicAnd,
                Expr::ident("ctl_we"),
                Expr::bin(
                    BinOp::Eq,
                    Expr::ident("ctl_mem"),
                    Expr::lit(CTL_MEM_BITS, k as u64),
                ),
            ),
            Expr::bin(
                BinOp::Lt,
                Expr::ident("ctl_row"),
                Expr::lit(CTL_ROW_BITS, m.rows as u64),
            ),
        );
        let mut enable = ctl_hit;
        let mut row = Expr::slice("ctl_row", bits - 1, 0);
        let mut data = Expr::slice("ctl_wdata", width - 1, 0);
        let writes: Vec<_> = block
            .memory_writes(k as u32)
            .map(|(_, n)| n.clone())
            .collect();
        for node in writes.into_iter().rev() {
            let NodeKind::MemWrite {
                row: wrow,
                data: wdata,
                enable: wen,
                ..
            } = node.kind
            else {
                continue;
            };
            let s = node.stage;
            let valid = if s == 0 {
                Expr::ident("in_valid")
            } else {
                Expr::ident(format!("v{s}"))
            };
            let rn = e.named64(wrow, s);
            let cond = Expr::bin(
                BinOp::LogicAnd,
                Expr::bin(
                    BinOp::LogicAnd,
                    Expr::bin(BinOp::LogicAnd, Expr::ident("advance"), valid),
                    e.operand(wen, s),
                ),
                e.below(wrow, s, m.rows as u64),
            );
            let c = e.temp(1, cond);
            enable = Expr::bin(BinOp::LogicOr, Expr::ident(c.clone()), enable);
            row = Expr::cond(Expr::ident(c.clone()), Expr::slice(rn, bits - 1, 0), row);
            data = Expr::cond(Expr::ident(c), e.operand(wdata, s), data);
        }
        let (we, wrow, wdata) = (
            format!("mem{k}_we"),
            format!("mem{k}_wrow"),
            format!("mem{k}_wdata"),
        );
        for (name, w, value) in [(&we, 1, enable), (&wrow, bits, row), (&wdata, width, data)] {
            e.items.push(Item::Wire {
                name: name.clone(),
                width: w,
            });
            e.items.push(Item::Assign(Expr::ident(name.clone()), value));
        }
        body.push(Stmt::If(
            Expr::ident(we),
            vec![Stmt::NonBlocking(
                Expr::Index {
                    name: format!("mem{k}"),
                    index: Box::new(Expr::ident(wrow)),
                },
                Expr::ident(wdata),
            )],
            vec![],
        ));
    }
    let mut items = e.items;
    items.push(Item::AlwaysPosedge {
        clock: "clk".into(),
        body,
    });
    Module {
        name: core_name(block),
        params: vec![],
        doc: vec![
            format!(
                "Packet pipeline of program `{}`, generated by nicc.",
                block.name
            ),
            format!(
                "{} stages at a {} ps clock; window of {} bytes; {} map memories.",
                block.stages,
                block.clock_period_ps,
                block.window_bytes,
                block.memories.len()
            ),
        ],
        ports,
        items,
    }
}

/// The stage whose logic feeds the register the core names `name` (as Yosys keeps the name:
/// `r3_n17`, `v3`, `rd17_q`, `mem0[5]`), or `None` for a name the core does not give a
/// pipeline register. Register `rB_nK` and valid bit `vB` hold what stage `B - 1` computed;
/// a memory read's registers belong to the read's stage; a memory word to the stage that
/// writes it.
pub fn register_stage(block: &Block, name: &str) -> Option<u32> {
    let number = |s: &str| s.parse::<u32>().ok();
    if let Some(rest) = name.strip_prefix("mem") {
        let k = number(rest.split('[').next()?)?;
        return block
            .memory_writes(k)
            .map(|(_, n)| n.stage)
            .next()
            .or_else(|| {
                block.nodes.iter().find_map(|n| match n.kind {
                    NodeKind::MemRead { mem, .. } if mem == k => Some(n.stage),
                    _ => None,
                })
            });
    }
    if let Some(rest) = name.strip_prefix("rd") {
        let k = number(rest.split('_').next()?)?;
        return block.nodes.get(k as usize).map(|n| n.stage);
    }
    if let Some(rest) = name.strip_prefix('v') {
        return number(rest)?.checked_sub(1);
    }
    if let Some(rest) = name.strip_prefix('r') {
        let (b, node) = rest.split_once("_n")?;
        number(node)?;
        return number(b)?.checked_sub(1);
    }
    None
}

/// The LUT levels of each stage measured on a netlist of the core: the deepest path into any
/// register the stage feeds (`register_stage`).
pub fn stage_lut_levels(
    block: &Block,
    depths: &hw::tools::netlist_depth::RegisterDepths,
) -> Vec<u32> {
    let mut levels = vec![0; block.stages as usize];
    for (name, &d) in &depths.by_register {
        if let Some(slot) = register_stage(block, name).and_then(|s| levels.get_mut(s as usize)) {
            *slot = (*slot).max(d);
        }
    }
    levels
}
