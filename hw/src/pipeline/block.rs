//! The pipeline block: the one description of a packet pipeline that both the Verilog printer
//! (`backends::verilog`) and the cycle-accurate simulator (`sim::pipeline`) read, so that what
//! is printed and what is simulated cannot drift apart.
//!
//! A block is a list of [`Node`]s in dependency order (every operand has a smaller id), each
//! placed in a stage. A node computes combinationally from nodes of its own stage and from
//! pipeline registers holding values of earlier stages; [`Block::registers`] derives those
//! registers, one per value and stage boundary it crosses, so neither consumer invents its own.
//! Constants belong to no stage and are never registered.
//!
//! The timing contract every consumer implements:
//! - Stage `s` reads the pipeline registers of boundary `s` (boundary 0 is the input ports);
//!   boundary `stages` is the output register.
//! - `advance = out_ready || !valid[stages]`; `in_ready = advance`. On a rising edge with
//!   `advance`, every boundary `k >= 1` takes the values (and valid bit) of stage `k - 1`, and
//!   every memory write whose stage is valid happens. Without `advance` nothing changes: the
//!   pipeline stalls as a whole. The Verilog core also holds `advance` low in a cycle where its
//!   control port writes a memory (`ctl_we`), so a control write lands between two packets;
//!   the simulator has no control port and the testbenches write only before traffic starts.
//! - A packet enters at the edge where `in_valid && in_ready` and leaves at the edge where
//!   `out_valid && out_ready`; with no stall it leaves `stages` cycles later.
//! - Memories are read synchronously, as block RAM is: every read of a memory is in one stage
//!   `r`, its row is registered at the end of `r`, and every write of that memory is in stage
//!   `r + 1`. The registered row is the memory after that edge's writes (the hardware forwards
//!   the write of stage `r + 1` when it hits the row being read), so packets see each other's
//!   updates in arrival order although a read-modify-write spans two stages. A memory that is
//!   only written has its writes in one stage.
//!
//! Values are either bit vectors of 1 to 64 bits ([`Shape::Bits`]) or byte arrays
//! ([`Shape::Bytes`], byte `i` in bits `8i..8i+8`): the packet window, stack slots and map
//! rows travel through the pipeline as byte arrays. What each [`NodeKind`] computes is written
//! on the variant; arithmetic is [`ir::semantics`].

use ir::semantics::{AluOp, ByteOrder, JmpCond, Width};
use std::collections::BTreeMap;

/// The index of a node in [`Block::nodes`].
pub type NodeId = u32;

/// What a node produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A bit vector of 1 to 64 bits, held zero-extended in a `u64`.
    Bits(u32),
    /// A byte array of the given length.
    Bytes(u32),
    /// Nothing: a memory write, which only has an effect.
    Effect,
}

impl Shape {
    /// The width in bits when printed as a Verilog vector (0 for an effect).
    pub fn bits(self) -> u32 {
        match self {
            Shape::Bits(b) => b,
            Shape::Bytes(n) => n * 8,
            Shape::Effect => 0,
        }
    }
}

/// An input port of the pipeline, sampled in stage 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// The first [`Block::window_bytes`] bytes of the packet, zero past its end.
    Window,
    /// The packet length in bytes (16 bits).
    Length,
    /// `xdp_md.ingress_ifindex` (32 bits).
    IngressIfindex,
    /// `xdp_md.rx_queue_index` (32 bits).
    RxQueue,
}

impl Input {
    pub const ALL: [Input; 4] = [
        Input::Window,
        Input::Length,
        Input::IngressIfindex,
        Input::RxQueue,
    ];

    /// The port name (without the `in_` prefix).
    pub fn name(self) -> &'static str {
        match self {
            Input::Window => "window",
            Input::Length => "len",
            Input::IngressIfindex => "ingress_ifindex",
            Input::RxQueue => "rx_queue",
        }
    }
}

/// An output port, registered at the last boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Output {
    /// The program's return value (`r0`, 64 bits); its low 32 bits are the XDP verdict.
    Retval,
    /// The packet window after the program's stores.
    Window,
    /// The packet length after the program (16 bits).
    Length,
    /// Where the packet is redirected, meaningful when the verdict is `XDP_REDIRECT`:
    /// [`REDIRECT_NONE`], [`REDIRECT_IFINDEX`] (`bpf_redirect`) or [`REDIRECT_MAP`]
    /// (`bpf_redirect_map` into [`Block::redirect_map`]).
    RedirectKind,
    /// The interface index or the map key of the redirect (a 32-bit value).
    RedirectKey,
    /// The map entry the redirect found (the devmap or cpumap value), as a byte array of
    /// [`Block::redirect_value_bytes`] bytes.
    RedirectValue,
}

/// No redirect was recorded.
pub const REDIRECT_NONE: u64 = 0;
/// `bpf_redirect(ifindex, 0)`.
pub const REDIRECT_IFINDEX: u64 = 1;
/// `bpf_redirect_map(map, key, flags)`.
pub const REDIRECT_MAP: u64 = 2;

impl Output {
    pub const ALL: [Output; 6] = [
        Output::Retval,
        Output::Window,
        Output::Length,
        Output::RedirectKind,
        Output::RedirectKey,
        Output::RedirectValue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Output::Retval => "retval",
            Output::Window => "window",
            Output::Length => "len",
            Output::RedirectKind => "redirect_kind",
            Output::RedirectKey => "redirect_key",
            Output::RedirectValue => "redirect_value",
        }
    }
}

/// The map `bpf_redirect_map` redirects into (one per program).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectMap {
    pub name: String,
    /// The map's index in the object.
    pub map_index: usize,
    /// The `flags` argument, a constant.
    pub flags: u64,
}

/// A one-bit logic operation on predicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Logic {
    And,
    Or,
}

/// What a node computes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// An input port.
    Input(Input),
    /// A constant of the node's width.
    Const(u64),
    /// An all-zero byte array of the node's length (a stack slot before any store).
    Zeros,
    /// `ir::semantics::alu(op, width, a, b)` on 64-bit operands (unary operations read the
    /// operand BPF reads: `neg` its destination `a`, the moves their source `b`).
    Alu {
        op: AluOp,
        width: Width,
        a: NodeId,
        b: NodeId,
    },
    /// `ir::semantics::byte_order(order, bits, a)`.
    Endian {
        order: ByteOrder,
        bits: u8,
        a: NodeId,
    },
    /// `ir::semantics::compare(cond, width, a, b)` as one bit.
    Cmp {
        cond: JmpCond,
        width: Width,
        a: NodeId,
        b: NodeId,
    },
    /// A one-bit `a op b`.
    Logic { op: Logic, a: NodeId, b: NodeId },
    /// The one-bit complement of `a`.
    Not(NodeId),
    /// `sel ? if_true : if_false`; the operands have the node's shape.
    Mux {
        sel: NodeId,
        if_true: NodeId,
        if_false: NodeId,
    },
    /// `size` bytes of byte array `array` at byte `offset`, little-endian, zero-extended to
    /// 64 bits (sign-extended when `signed`). Bytes past the end of the array read as zero.
    ReadBytes {
        array: NodeId,
        offset: NodeId,
        size: u8,
        signed: bool,
    },
    /// Byte array `array` with the low `size` bytes of `value` written little-endian at byte
    /// `offset` when `enable` is 1; bytes that would fall past the end are dropped.
    WriteBytes {
        array: NodeId,
        offset: NodeId,
        size: u8,
        value: NodeId,
        enable: NodeId,
    },
    /// The bytes `offset .. offset + n` of byte array `array`, where the node's shape is
    /// `Bytes(n)` (the range lies inside the array): wiring, as a constant part-select is.
    Slice { array: NodeId, offset: u32 },
    /// Byte array `array` with the bytes of byte array `part` in place of its bytes from
    /// `offset` on (the part lies inside the array): wiring too.
    Splice {
        array: NodeId,
        offset: u32,
        part: NodeId,
    },
    /// Row `row` of memory `mem` (zero past the last row), read synchronously as block RAM
    /// reads: the row address is presented in the node's stage and the row is registered at
    /// the end of it, so the value exists only from the next stage on (no node of the read's
    /// own stage may use it). The registered row is the memory as it stands after that edge's
    /// writes: the hardware forwards the write of the stage after the read, which is where the
    /// memory's writes are (see [`Block`]'s timing contract).
    MemRead { mem: u32, row: NodeId },
    /// Writes byte array `data` to row `row` of memory `mem` at the rising edge, when `enable`
    /// is 1, the node's stage holds a valid packet and the pipeline advances.
    MemWrite {
        mem: u32,
        row: NodeId,
        data: NodeId,
        enable: NodeId,
    },
}

impl NodeKind {
    /// The operands, in a fixed order.
    pub fn operands(&self) -> Vec<NodeId> {
        match *self {
            NodeKind::Input(_) | NodeKind::Const(_) | NodeKind::Zeros => Vec::new(),
            NodeKind::Alu { a, b, .. }
            | NodeKind::Cmp { a, b, .. }
            | NodeKind::Logic { a, b, .. } => {
                vec![a, b]
            }
            NodeKind::Endian { a, .. } | NodeKind::Not(a) => vec![a],
            NodeKind::Mux {
                sel,
                if_true,
                if_false,
            } => vec![sel, if_true, if_false],
            NodeKind::ReadBytes { array, offset, .. } => vec![array, offset],
            NodeKind::WriteBytes {
                array,
                offset,
                value,
                enable,
                ..
            } => vec![array, offset, value, enable],
            NodeKind::Slice { array, .. } => vec![array],
            NodeKind::Splice { array, part, .. } => vec![array, part],
            NodeKind::MemRead { row, .. } => vec![row],
            NodeKind::MemWrite {
                row, data, enable, ..
            } => vec![row, data, enable],
        }
    }

    /// True for nodes that belong to no stage: they are wired wherever they are used.
    pub fn is_constant(&self) -> bool {
        matches!(self, NodeKind::Const(_) | NodeKind::Zeros)
    }

    /// True for nodes whose value is registered at the end of their stage and used only from
    /// the next stage on: memory reads.
    pub fn is_registered(&self) -> bool {
        matches!(self, NodeKind::MemRead { .. })
    }
}

/// One node: what it computes, what it produces, and the stage it is computed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub shape: Shape,
    pub stage: u32,
    /// The BPF instruction the node came from, for reports (`u32::MAX` when none).
    pub insn: u32,
}

/// How a memory's rows hold what the runtime keeps, so the control plane and simulators can
/// load it and read it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryKind {
    /// An array-like map: row `i` is entry `i`'s value (with a presence byte when
    /// [`Memory::presence`]).
    Array,
    /// A hash map: each row is a bucket of ways (`super::hash_table`).
    Hash(super::hash_table::HashLayout),
    /// The runtime's clock, which `bpf_ktime_get_ns` reads: one 8-byte row.
    Clock,
    /// The runtime's random-number state, which `bpf_get_prandom_u32` advances: one 8-byte
    /// row.
    Random,
}

/// Where a memory's contents come from, so the control plane and simulators can load it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Memory {
    /// The map's name in the object (for the clock and random state, a name of our own).
    pub name: String,
    /// The map's index in the object (`frontend::Object::maps`); `usize::MAX` for the clock
    /// and random state, which are no map.
    pub map_index: usize,
    pub rows: u32,
    /// Bytes per row: the map's value, then one presence byte when [`Memory::presence`].
    pub row_bytes: u32,
    /// Rows carry a last byte that is 1 when the entry exists (device and CPU maps, whose
    /// entries can be absent rather than zero).
    pub presence: bool,
    pub kind: MemoryKind,
}

/// A pipeline register: the value of `node` held at boundary `boundary`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Register {
    pub node: NodeId,
    pub boundary: u32,
}

/// The pipeline block of one program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// A Verilog identifier naming the program.
    pub name: String,
    /// Bytes of the packet head the pipeline carries (the rest waits in a FIFO beside it).
    pub window_bytes: u32,
    /// Number of stages; the output register is boundary `stages`.
    pub stages: u32,
    /// Target clock period in picoseconds the schedule was made for.
    pub clock_period_ps: u32,
    pub nodes: Vec<Node>,
    pub memories: Vec<Memory>,
    /// The node driving each output port.
    pub outputs: BTreeMap<Output, NodeId>,
    /// The map `bpf_redirect_map` uses, if the program calls it.
    pub redirect_map: Option<RedirectMap>,
    /// Bytes of the [`Output::RedirectValue`] port (at least 1).
    pub redirect_value_bytes: u32,
}

impl Block {
    /// The shape of output port `o`.
    pub fn output_shape(&self, o: Output) -> Shape {
        match o {
            Output::Retval => Shape::Bits(64),
            Output::Window => Shape::Bytes(self.window_bytes),
            Output::Length => Shape::Bits(16),
            Output::RedirectKind => Shape::Bits(64),
            Output::RedirectKey => Shape::Bits(64),
            Output::RedirectValue => Shape::Bytes(self.redirect_value_bytes),
        }
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// The last stage each node is read in (by a node or, as `stages`, by an output port).
    pub fn last_uses(&self) -> Vec<Option<u32>> {
        let mut last: Vec<Option<u32>> = vec![None; self.nodes.len()];
        let mut note = |id: NodeId, stage: u32| {
            let slot = &mut last[id as usize];
            *slot = Some(slot.map_or(stage, |s: u32| s.max(stage)));
        };
        for node in &self.nodes {
            for op in node.kind.operands() {
                note(op, node.stage);
            }
        }
        for &id in self.outputs.values() {
            note(id, self.stages);
        }
        last
    }

    /// Every pipeline register, ordered by boundary then node: a value computed in stage `s`
    /// and read in stage `t > s` is held at boundaries `s + 1 ..= t`. Constants are never
    /// registered.
    pub fn registers(&self) -> Vec<Register> {
        let last = self.last_uses();
        let mut regs = Vec::new();
        for (id, node) in self.nodes.iter().enumerate() {
            if node.kind.is_constant() {
                continue;
            }
            if let Some(t) = last[id] {
                for boundary in node.stage + 1..=t {
                    regs.push(Register {
                        node: id as NodeId,
                        boundary,
                    });
                }
            }
        }
        regs.sort();
        regs
    }

    /// The memory write nodes, by memory.
    pub fn memory_writes(&self, mem: u32) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(move |(i, n)| match n.kind {
                NodeKind::MemWrite { mem: m, .. } if m == mem => Some((i as NodeId, n)),
                _ => None,
            })
    }

    /// The widest memory row in bytes (at least 1), the width of the control-plane data port.
    pub fn max_row_bytes(&self) -> u32 {
        self.memories
            .iter()
            .map(|m| m.row_bytes)
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// Total pipeline register bits, for reports.
    pub fn register_bits(&self) -> u64 {
        self.registers()
            .iter()
            .map(|r| self.node(r.node).shape.bits() as u64)
            .sum()
    }
}
