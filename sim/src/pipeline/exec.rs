//! The cycle-accurate executor of a pipeline block: each call to [`PipelineSim::step`] is one
//! clock cycle of the timing contract in `hw::pipeline::block`, computing every node of every
//! stage from the input ports and the pipeline registers, then (when the pipeline advances)
//! writing memories and moving the registers, as the emitted Verilog does at the rising edge.
//! Operations are computed with `ir::semantics`, the one definition of BPF arithmetic.

use hw::pipeline::{Block, Input, Logic, NodeId, NodeKind, Output, Shape};
use std::collections::HashMap;

/// A value on a wire or in a register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Bits(u64),
    Bytes(Vec<u8>),
}

impl Val {
    fn bits(&self) -> u64 {
        match self {
            Val::Bits(v) => *v,
            Val::Bytes(_) => 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Val::Bytes(b) => b,
            Val::Bits(_) => &[],
        }
    }
}

/// One packet offered to the pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketIn {
    /// Cycles to wait after the previous packet was accepted before offering this one.
    pub gap: u32,
    /// The first `window_bytes` bytes of the packet (zero past its end).
    pub window: Vec<u8>,
    pub len: u16,
    pub ingress_ifindex: u32,
    pub rx_queue: u32,
}

/// One packet leaving the pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketOut {
    /// The cycle at whose rising edge the packet left.
    pub cycle: u64,
    pub retval: u64,
    pub len: u16,
    pub window: Vec<u8>,
    /// `hw::pipeline::REDIRECT_*`.
    pub redirect_kind: u64,
    pub redirect_key: u64,
    pub redirect_value: Vec<u8>,
}

/// What one cycle did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// The offered packet was accepted at this cycle's edge.
    pub accepted: bool,
    /// A packet left at this cycle's edge.
    pub output: Option<PacketOut>,
}

/// The state of a pipeline between clock edges.
#[derive(Clone, Debug)]
pub struct PipelineSim<'b> {
    pub block: &'b Block,
    /// Pipeline registers by (boundary, node).
    regs: HashMap<(u32, NodeId), Val>,
    /// `valid[b]` for boundaries 1..=stages (index 0 unused).
    valid: Vec<bool>,
    /// Memory contents, row by row.
    pub memories: Vec<Vec<Vec<u8>>>,
    /// Completed cycles.
    pub cycle: u64,
    /// Every wire's value in the last cycle, for waveforms.
    pub last_values: Vec<Option<Val>>,
}

fn read_le(bytes: &[u8], at: u64, size: u8) -> u64 {
    let mut v = 0u64;
    for k in 0..size as u64 {
        let b = at
            .checked_add(k)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| bytes.get(i))
            .copied()
            .unwrap_or(0);
        v |= (b as u64) << (8 * k);
    }
    v
}

impl<'b> PipelineSim<'b> {
    /// A pipeline after reset: empty, memories zero.
    pub fn new(block: &'b Block) -> PipelineSim<'b> {
        PipelineSim {
            block,
            regs: HashMap::new(),
            valid: vec![false; block.stages as usize + 1],
            memories: block
                .memories
                .iter()
                .map(|m| vec![vec![0u8; m.row_bytes as usize]; m.rows as usize])
                .collect(),
            cycle: 0,
            last_values: Vec::new(),
        }
    }

    fn constant(&self, id: NodeId) -> Option<Val> {
        let n = self.block.node(id);
        match n.kind {
            NodeKind::Const(v) => Some(Val::Bits(v)),
            NodeKind::Zeros => Some(Val::Bytes(vec![0; (n.shape.bits() / 8) as usize])),
            _ => None,
        }
    }

    fn operand(&self, values: &[Option<Val>], x: NodeId, stage: u32) -> Val {
        if let Some(c) = self.constant(x) {
            return c;
        }
        let n = self.block.node(x);
        let v = if n.stage == stage {
            values[x as usize].clone()
        } else {
            self.regs.get(&(stage, x)).cloned()
        };
        // A register not written yet holds what Verilog's would before any packet: zeros.
        v.unwrap_or_else(|| match n.shape {
            Shape::Bytes(len) => Val::Bytes(vec![0; len as usize]),
            _ => Val::Bits(0),
        })
    }

    fn eval(&self, values: &[Option<Val>], id: NodeId, input: Option<&PacketIn>) -> Option<Val> {
        let node = self.block.node(id);
        let s = node.stage;
        let op = |x: NodeId| self.operand(values, x, s);
        Some(match &node.kind {
            NodeKind::Const(_) | NodeKind::Zeros | NodeKind::MemWrite { .. } => return None,
            NodeKind::Input(i) => match (i, input) {
                (Input::Window, Some(p)) => {
                    let mut w = p.window.clone();
                    w.resize(self.block.window_bytes as usize, 0);
                    Val::Bytes(w)
                }
                (Input::Window, None) => Val::Bytes(vec![0; self.block.window_bytes as usize]),
                (Input::Length, p) => Val::Bits(p.map_or(0, |p| p.len as u64)),
                (Input::IngressIfindex, p) => Val::Bits(p.map_or(0, |p| p.ingress_ifindex as u64)),
                (Input::RxQueue, p) => Val::Bits(p.map_or(0, |p| p.rx_queue as u64)),
            },
            NodeKind::Alu { op: o, width, a, b } => {
                Val::Bits(ir::semantics::alu(*o, *width, op(*a).bits(), op(*b).bits()))
            }
            NodeKind::Endian { order, bits, a } => Val::Bits(ir::semantics::byte_order(
                *order,
                *bits as u32,
                op(*a).bits(),
            )),
            NodeKind::Cmp { cond, width, a, b } => Val::Bits(u64::from(ir::semantics::compare(
                *cond,
                *width,
                op(*a).bits(),
                op(*b).bits(),
            ))),
            NodeKind::Logic { op: l, a, b } => {
                let (x, y) = (op(*a).bits() & 1, op(*b).bits() & 1);
                Val::Bits(match l {
                    Logic::And => x & y,
                    Logic::Or => x | y,
                })
            }
            NodeKind::Not(a) => Val::Bits((op(*a).bits() & 1) ^ 1),
            NodeKind::Mux {
                sel,
                if_true,
                if_false,
            } => {
                if op(*sel).bits() & 1 == 1 {
                    op(*if_true)
                } else {
                    op(*if_false)
                }
            }
            NodeKind::ReadBytes {
                array,
                offset,
                size,
                signed,
            } => {
                let v = read_le(op(*array).bytes(), op(*offset).bits(), *size);
                Val::Bits(if *signed {
                    ir::semantics::sign_extend(v, *size as u32 * 8)
                } else {
                    v
                })
            }
            NodeKind::WriteBytes {
                array,
                offset,
                size,
                value,
                enable,
            } => {
                let mut bytes = op(*array).bytes().to_vec();
                if op(*enable).bits() & 1 == 1 {
                    let (at, v) = (op(*offset).bits(), op(*value).bits());
                    for k in 0..*size as u64 {
                        if let Some(i) = at.checked_add(k).and_then(|i| usize::try_from(i).ok()) {
                            if let Some(b) = bytes.get_mut(i) {
                                *b = (v >> (8 * k)) as u8;
                            }
                        }
                    }
                }
                Val::Bytes(bytes)
            }
            NodeKind::Slice { array, offset } => {
                let len = (node.shape.bits() / 8) as usize;
                let bytes = op(*array);
                let src = bytes.bytes();
                Val::Bytes(
                    (0..len)
                        .map(|k| src.get(*offset as usize + k).copied().unwrap_or(0))
                        .collect(),
                )
            }
            NodeKind::Splice {
                array,
                offset,
                part,
            } => {
                let mut bytes = op(*array).bytes().to_vec();
                for (k, b) in op(*part).bytes().iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(*offset as usize + k) {
                        *slot = *b;
                    }
                }
                Val::Bytes(bytes)
            }
            // The row as the memory holds it before this edge; nothing reads it in this stage
            // (the block's validator makes sure), and waveforms show the address's row.
            NodeKind::MemRead { mem, row } => Val::Bytes(self.memory_row(*mem, op(*row).bits())),
        })
    }

    /// Row `row` of memory `mem` as it stands, zero past the last row.
    fn memory_row(&self, mem: u32, row: u64) -> Vec<u8> {
        let bytes = self
            .block
            .memories
            .get(mem as usize)
            .map_or(0, |m| m.row_bytes as usize);
        usize::try_from(row)
            .ok()
            .and_then(|r| self.memories.get(mem as usize)?.get(r))
            .cloned()
            .unwrap_or_else(|| vec![0; bytes])
    }

    fn valid_of_stage(&self, stage: u32, input: Option<&PacketIn>) -> bool {
        if stage == 0 {
            input.is_some()
        } else {
            self.valid[stage as usize]
        }
    }

    /// One clock cycle: `input` is offered (`in_valid`) and `out_ready` is as given.
    pub fn step(&mut self, input: Option<&PacketIn>, out_ready: bool) -> Step {
        let block = self.block;
        let stages = block.stages;
        let mut values: Vec<Option<Val>> = vec![None; block.nodes.len()];
        for id in 0..block.nodes.len() as NodeId {
            values[id as usize] = self.eval(&values, id, input);
        }
        let out_valid = self.valid[stages as usize];
        let advance = out_ready || !out_valid;
        let mut step = Step {
            accepted: input.is_some() && advance,
            output: None,
        };
        if out_valid && out_ready {
            let get = |o: Output| {
                block
                    .outputs
                    .get(&o)
                    .map(|&x| self.operand(&values, x, stages))
                    .unwrap_or(Val::Bits(0))
            };
            step.output = Some(PacketOut {
                cycle: self.cycle,
                retval: get(Output::Retval).bits(),
                len: get(Output::Length).bits() as u16,
                window: get(Output::Window).bytes().to_vec(),
                redirect_kind: get(Output::RedirectKind).bits(),
                redirect_key: get(Output::RedirectKey).bits(),
                redirect_value: get(Output::RedirectValue).bytes().to_vec(),
            });
        }
        if advance {
            for node in &block.nodes {
                if let NodeKind::MemWrite {
                    mem,
                    row,
                    data,
                    enable,
                } = node.kind
                {
                    let s = node.stage;
                    if !self.valid_of_stage(s, input)
                        || self.operand(&values, enable, s).bits() & 1 == 0
                    {
                        continue;
                    }
                    let r = self.operand(&values, row, s).bits();
                    let d = self.operand(&values, data, s);
                    if let Some(slot) = usize::try_from(r)
                        .ok()
                        .and_then(|r| self.memories[mem as usize].get_mut(r))
                    {
                        *slot = d.bytes().to_vec();
                    }
                }
            }
            let mut regs = HashMap::new();
            for r in block.registers() {
                let node = block.node(r.node);
                // A memory read registers its row at the end of its stage, after this edge's
                // writes: what the Verilog's forwarding of the next stage's write gives.
                let v = match node.kind {
                    NodeKind::MemRead { mem, row } if r.boundary == node.stage + 1 => {
                        let at = self.operand(&values, row, node.stage).bits();
                        Val::Bytes(self.memory_row(mem, at))
                    }
                    _ => self.operand(&values, r.node, r.boundary - 1),
                };
                regs.insert((r.boundary, r.node), v);
            }
            self.regs = regs;
            for b in (1..=stages as usize).rev() {
                self.valid[b] = if b == 1 {
                    input.is_some()
                } else {
                    self.valid[b - 1]
                };
            }
        }
        self.last_values = values;
        self.cycle += 1;
        step
    }

    /// The value register `(boundary, node)` holds, for waveforms.
    pub fn register(&self, boundary: u32, node: NodeId) -> Option<&Val> {
        self.regs.get(&(boundary, node))
    }

    /// The valid bit of boundary `b` (1..=stages).
    pub fn valid(&self, b: u32) -> bool {
        self.valid.get(b as usize).copied().unwrap_or(false)
    }
}

/// What a run of packets through a pipeline gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunResult {
    /// The cycle each packet was accepted at, by packet index.
    pub entries: Vec<u64>,
    /// Packets in the order they left (a pipeline keeps order, so packet `i` is `outputs[i]`).
    pub outputs: Vec<PacketOut>,
    pub cycles: u64,
}

/// Drives `packets` through a pipeline exactly as the generated testbench does: packet `i`
/// is offered from `gap` cycles after packet `i - 1` was accepted, `out_ready` follows
/// `ready` (then stays 1), and the run ends when every packet has left. `observe` sees the
/// state after every cycle (for waveforms).
pub fn drive(
    sim: &mut PipelineSim,
    packets: &[PacketIn],
    ready: &[bool],
    observe: &mut dyn FnMut(&PipelineSim, Option<&PacketIn>, bool),
) -> RunResult {
    let mut result = RunResult::default();
    let (mut next, mut left) = (0usize, 0usize);
    let mut earliest = packets.first().map_or(0, |p| p.gap as u64);
    let limit = 1_000_000u64 + 64 * packets.len() as u64;
    let start = sim.cycle;
    while (next < packets.len() || left < packets.len()) && sim.cycle - start < limit {
        let c = sim.cycle - start;
        let offer = (next < packets.len() && c >= earliest).then(|| &packets[next]);
        let out_ready = ready.get(c as usize).copied().unwrap_or(true);
        let step = sim.step(offer, out_ready);
        observe(sim, offer, out_ready);
        if step.accepted {
            result.entries.push(c);
            next += 1;
            if let Some(p) = packets.get(next) {
                earliest = c + 1 + p.gap as u64;
            }
        }
        if let Some(mut out) = step.output {
            out.cycle -= start;
            result.outputs.push(out);
            left += 1;
        }
    }
    result.cycles = sim.cycle - start;
    result
}
