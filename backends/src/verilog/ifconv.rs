//! If-conversion: one program's SSA function (acyclic, calls inlined) becomes predicated
//! dataflow, the unscheduled nodes of a `hw::pipeline::Block`.
//!
//! Blocks are visited in reverse post-order. Each block gets a one-bit predicate (the OR of
//! its incoming edges' predicates, the entry's is 1); block parameters become multiplexers over
//! the incoming edges; a `return` contributes its value under its block's predicate. Memory is
//! state that flows in the same order: the packet window, every stack slot and every map row
//! read by a lookup are byte arrays, and each store rewrites its array under its block's
//! predicate. Visiting blocks in topological order makes that exact: two blocks on one path are
//! visited in path order, and a store in a block off the taken path is disabled.
//!
//! Pointers are lowered by provenance, which the IR's regions and the lifter's typing give
//! statically: a packet pointer is its offset from `data` (so `data_end` is the length), a
//! stack pointer its offset in its slot, a map value pointer `site_tag(site) + offset` in the
//! row its lookup read (0 when the lookup missed, so null checks still compare with 0).

use super::Rejection;
use hw::pipeline::hash_table::{key_chunks, HashLayout};
use hw::pipeline::{
    Block, Input, Logic, Memory, MemoryKind, Node, NodeId, NodeKind, Output, RedirectMap, Shape,
    REDIRECT_IFINDEX, REDIRECT_MAP, REDIRECT_NONE,
};
use ir::semantics::{AluOp, JmpCond, Width};
use ir::{FuncRef, InstructionData, MapRef, Module, Region, StackSlot, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The scalar a non-null map value pointer of the first site holds at offset 0 of its value;
/// site `s` has `(s + 1)` times this ([`site_tag`]), so a pointer merged from several lookups
/// says by its upper half which row it points into.
pub const MAP_VALUE_TAG: u64 = 1 << 32;

/// The value a pointer to offset 0 of the row of site `site` holds.
pub fn site_tag(site: usize) -> u64 {
    MAP_VALUE_TAG.wrapping_mul(site as u64 + 1)
}

/// `BPF_MAP_TYPE_ARRAY` and `BPF_MAP_TYPE_PERCPU_ARRAY`: the map kinds held as memories.
const MAP_TYPE_ARRAY: u32 = 2;
const MAP_TYPE_PERCPU_ARRAY: u32 = 6;
/// `BPF_MAP_TYPE_HASH`, `_PERCPU_HASH`, `_LRU_HASH` and `_LRU_PERCPU_HASH`: held as hash
/// memories with parallel probing (`hw::pipeline::hash_table`), per-CPU ones as plain maps of
/// the runtime's CPU.
const MAP_TYPE_HASH: u32 = 1;
const MAP_TYPE_PERCPU_HASH: u32 = 5;
const MAP_TYPE_LRU_HASH: u32 = 9;
const MAP_TYPE_LRU_PERCPU_HASH: u32 = 10;
/// `BPF_MAP_TYPE_DEVMAP`, `BPF_MAP_TYPE_CPUMAP` and `BPF_MAP_TYPE_XSKMAP`: the redirect maps,
/// held as memories whose rows carry a presence byte.
const MAP_TYPE_DEVMAP: u32 = 14;
const MAP_TYPE_CPUMAP: u32 = 16;
const MAP_TYPE_XSKMAP: u32 = 17;
/// `BPF_F_BROADCAST` and `BPF_F_EXCLUDE_INGRESS` of `bpf_redirect_map`.
const BPF_F_BROADCAST: u64 = 1 << 3;
const BPF_F_EXCLUDE_INGRESS: u64 = 1 << 4;
const XDP_ABORTED: u64 = 0;
const XDP_REDIRECT: u64 = 4;

/// One helper call that sets (or clears) the packet's redirect target: under `enable`, the
/// target becomes `kind`, `key` and `value`.
struct RedirectEvent {
    enable: NodeId,
    kind: NodeId,
    key: NodeId,
    value: Option<NodeId>,
}

/// Options of the lowering.
#[derive(Clone, Debug)]
pub struct IfConvOptions {
    /// The largest packet window (bytes from the start of the packet) the pipeline may carry.
    pub max_window_bytes: u32,
}

impl Default for IfConvOptions {
    fn default() -> Self {
        IfConvOptions {
            max_window_bytes: 256,
        }
    }
}

/// What a lowered value points into, known statically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prov {
    Scalar,
    Ctx,
    Packet,
    Stack(StackSlot),
    /// A value of the row read by lookup site `n`.
    MapValue(usize),
    /// A value of the row of one of several sites (`Lowerer::choices[n]`), merged from
    /// different lookups; the pointer's upper half says which.
    MapValues(usize),
    MapHandle(MapRef),
    /// One of several maps (`Lowerer::handle_choices[n]`), or null.
    MapHandles(usize),
}

#[derive(Clone, Copy, Debug)]
struct Lv {
    node: NodeId,
    prov: Prov,
}

/// A place where a map row enters the pipeline: a lookup, or global data.
struct Site {
    mem: u32,
    row: NodeId,
    /// For a hash lookup: the bucket row as read and each way's hit bit, so the value (the
    /// site's state) goes back into the way it came from.
    bucket: Option<(NodeId, Vec<NodeId>, HashLayout)>,
    /// The row is valid (the lookup hit) and the lookup's block ran.
    live: NodeId,
    state: NodeId,
    written: bool,
    insn: u32,
}

struct Lowerer<'a> {
    module: &'a Module,
    func: &'a ir::Function,
    nodes: Vec<Node>,
    interned: HashMap<(NodeKind, Shape), NodeId>,
    values: HashMap<Value, Lv>,
    window: NodeId,
    window_family: HashSet<NodeId>,
    stacks: BTreeMap<StackSlot, NodeId>,
    sites: Vec<Site>,
    global_sites: HashMap<MapRef, usize>,
    /// The site of the clock and of the random state, once a helper reads them.
    register_sites: HashMap<&'static str, usize>,
    memories: Vec<Memory>,
    memory_of_map: HashMap<MapRef, u32>,
    returns: Vec<(NodeId, NodeId)>,
    incoming: HashMap<ir::Block, Vec<(NodeId, Vec<Lv>)>>,
    packet_accesses: Vec<(NodeId, u32, u32)>,
    insn: u32,
    one: NodeId,
    zero: NodeId,
    redirects: Vec<RedirectEvent>,
    redirect_map: Option<(RedirectMap, u32)>,
    /// The site sets of [`Prov::MapValues`] pointers, each sorted.
    choices: Vec<Vec<usize>>,
    /// The map sets of [`Prov::MapHandles`] handles, each sorted.
    handle_choices: Vec<Vec<MapRef>>,
}

/// Lowers entry function `func` of `module` (maps indexed as in the object) into an
/// unscheduled block: every node in stage 0 and `stages == 1`.
pub fn if_convert(
    module: &Module,
    func: FuncRef,
    name: &str,
    options: &IfConvOptions,
) -> Result<Block, Rejection> {
    let f = module
        .functions
        .get(func)
        .ok_or_else(|| Rejection::new(u32::MAX, "the program's function is not in the module"))?;
    let order = reverse_post_order(f)?;
    let mut l = Lowerer {
        module,
        func: f,
        nodes: Vec::new(),
        interned: HashMap::new(),
        values: HashMap::new(),
        window: 0,
        window_family: HashSet::new(),
        stacks: BTreeMap::new(),
        sites: Vec::new(),
        global_sites: HashMap::new(),
        register_sites: HashMap::new(),
        memories: Vec::new(),
        memory_of_map: HashMap::new(),
        returns: Vec::new(),
        incoming: HashMap::new(),
        packet_accesses: Vec::new(),
        insn: u32::MAX,
        one: 0,
        zero: 0,
        redirects: Vec::new(),
        redirect_map: None,
        choices: Vec::new(),
        handle_choices: Vec::new(),
    };
    l.one = l.konst(1, 1);
    l.zero = l.konst(0, 64);
    l.window = l.add(
        NodeKind::Input(Input::Window),
        Shape::Bytes(options.max_window_bytes),
    );
    l.window_family.insert(l.window);
    for (i, b) in order.iter().enumerate() {
        let pred = if i == 0 {
            for (k, &p) in f.dfg.block_params(*b).iter().enumerate() {
                let lv = if k == 0 {
                    Lv {
                        node: l.zero,
                        prov: Prov::Ctx,
                    }
                } else {
                    Lv {
                        node: l.zero,
                        prov: Prov::Scalar,
                    }
                };
                l.values.insert(p, lv);
            }
            l.one
        } else {
            let Some(edges) = l.incoming.remove(b) else {
                continue;
            };
            l.merge_params(*b, edges)?
        };
        for inst in f.block_insts(*b) {
            l.insn = f.srclocs[inst].insn;
            l.lower_inst(inst, pred)?;
        }
    }
    l.finish(name, options)
}

/// The blocks reachable from the entry in reverse post-order; a back edge (a loop that was not
/// unrolled) is a rejection.
fn reverse_post_order(f: &ir::Function) -> Result<Vec<ir::Block>, Rejection> {
    let entry = f
        .entry_block()
        .ok_or_else(|| Rejection::new(u32::MAX, "the function has no blocks"))?;
    let mut post = Vec::new();
    let mut state: HashMap<ir::Block, u8> = HashMap::new();
    let mut stack = vec![(entry, 0usize)];
    state.insert(entry, 1);
    while let Some((b, i)) = stack.pop() {
        let succs = f.successors(b);
        if i < succs.len() {
            stack.push((b, i + 1));
            let s = succs[i];
            match state.get(&s) {
                None => {
                    state.insert(s, 1);
                    stack.push((s, 0));
                }
                Some(1) => {
                    let insn = f
                        .layout
                        .last_inst(b)
                        .map(|i| f.srclocs[i].insn)
                        .unwrap_or(u32::MAX);
                    return Err(Rejection::new(
                        insn,
                        format!("a loop remains ({b} jumps back to {s}); only loops that can be fully unrolled fit a pipeline"),
                    ));
                }
                _ => {}
            }
        } else {
            state.insert(b, 2);
            post.push(b);
        }
    }
    post.reverse();
    Ok(post)
}

impl<'a> Lowerer<'a> {
    fn reject<T>(&self, message: impl Into<String>) -> Result<T, Rejection> {
        Err(Rejection::new(self.insn, message))
    }

    /// Adds a node, sharing identical pure nodes (constants, operations on the same operands).
    fn add(&mut self, kind: NodeKind, shape: Shape) -> NodeId {
        let shareable = !matches!(kind, NodeKind::MemWrite { .. } | NodeKind::MemRead { .. });
        if shareable {
            if let Some(&id) = self.interned.get(&(kind.clone(), shape)) {
                return id;
            }
        }
        let id = self.nodes.len() as NodeId;
        self.nodes.push(Node {
            kind: kind.clone(),
            shape,
            stage: 0,
            insn: self.insn,
        });
        if shareable {
            self.interned.insert((kind, shape), id);
        }
        id
    }

    fn konst(&mut self, value: u64, bits: u32) -> NodeId {
        self.add(NodeKind::Const(value), Shape::Bits(bits))
    }

    fn const_of(&self, n: NodeId) -> Option<u64> {
        match self.nodes[n as usize].kind {
            NodeKind::Const(c) => Some(c),
            _ => None,
        }
    }

    fn alu(&mut self, op: AluOp, width: Width, a: NodeId, b: NodeId) -> NodeId {
        if let (Some(x), Some(y)) = (self.const_of(a), self.const_of(b)) {
            return self.konst(ir::semantics::alu(op, width, x, y), 64);
        }
        self.add(NodeKind::Alu { op, width, a, b }, Shape::Bits(64))
    }

    fn zext64(&mut self, n: NodeId) -> NodeId {
        self.alu(AluOp::Mov, Width::W64, n, n)
    }

    fn and(&mut self, a: NodeId, b: NodeId) -> NodeId {
        match (self.const_of(a), self.const_of(b)) {
            (Some(0), _) | (_, Some(0)) => self.konst(0, 1),
            (Some(_), _) => b,
            (_, Some(_)) => a,
            _ if a == b => a,
            _ => self.add(
                NodeKind::Logic {
                    op: Logic::And,
                    a,
                    b,
                },
                Shape::Bits(1),
            ),
        }
    }

    fn or(&mut self, a: NodeId, b: NodeId) -> NodeId {
        match (self.const_of(a), self.const_of(b)) {
            (Some(1), _) | (_, Some(1)) => self.one,
            (Some(_), _) => b,
            (_, Some(_)) => a,
            _ if a == b => a,
            _ => self.add(
                NodeKind::Logic {
                    op: Logic::Or,
                    a,
                    b,
                },
                Shape::Bits(1),
            ),
        }
    }

    fn not(&mut self, a: NodeId) -> NodeId {
        match self.const_of(a) {
            Some(c) => self.konst(u64::from(c == 0), 1),
            None => self.add(NodeKind::Not(a), Shape::Bits(1)),
        }
    }

    fn mux(&mut self, sel: NodeId, t: NodeId, f: NodeId) -> NodeId {
        if t == f {
            return t;
        }
        match self.const_of(sel) {
            Some(0) => f,
            Some(_) => t,
            None => {
                let shape = self.nodes[t as usize].shape;
                self.add(
                    NodeKind::Mux {
                        sel,
                        if_true: t,
                        if_false: f,
                    },
                    shape,
                )
            }
        }
    }

    fn value(&self, v: Value) -> Result<Lv, Rejection> {
        self.values.get(&v).copied().ok_or_else(|| {
            Rejection::new(
                self.insn,
                format!("{v} is used on a path where it has no definition"),
            )
        })
    }

    fn record_edge(&mut self, dest: &ir::BlockCall, pred: NodeId) -> Result<(), Rejection> {
        let args = dest
            .args
            .iter()
            .map(|&a| self.value(a))
            .collect::<Result<Vec<_>, _>>()?;
        self.incoming
            .entry(dest.block)
            .or_default()
            .push((pred, args));
        Ok(())
    }

    /// The predicate of block `b` and its parameters, multiplexed over the incoming edges.
    fn merge_params(
        &mut self,
        b: ir::Block,
        edges: Vec<(NodeId, Vec<Lv>)>,
    ) -> Result<NodeId, Rejection> {
        let mut pred = self.konst(0, 1);
        for (p, _) in &edges {
            pred = self.or(pred, *p);
        }
        let params = self.func.dfg.block_params(b).to_vec();
        for (k, param) in params.iter().enumerate() {
            let (last_pred, last_args) = &edges[edges.len() - 1];
            let _ = last_pred;
            let mut acc = last_args[k];
            for (p, args) in edges.iter().rev().skip(1) {
                let lv = args[k];
                let prov = self.merge_prov(lv, acc).ok_or_else(|| {
                    Rejection::new(
                        self.insn,
                        format!(
                            "{param} of {b} merges pointers of different kinds ({:?} and {:?})",
                            lv.prov, acc.prov
                        ),
                    )
                })?;
                acc = Lv {
                    node: self.mux(*p, lv.node, acc.node),
                    prov,
                };
            }
            self.values.insert(*param, acc);
        }
        Ok(pred)
    }

    fn stack_state(&mut self, slot: StackSlot) -> NodeId {
        if let Some(&n) = self.stacks.get(&slot) {
            return n;
        }
        let size = self.func.stack_slots[slot].size.max(1);
        let n = self.add(NodeKind::Zeros, Shape::Bytes(size));
        self.stacks.insert(slot, n);
        n
    }

    fn memory_for(&mut self, map: MapRef) -> Result<u32, Rejection> {
        if let Some(&m) = self.memory_of_map.get(&map) {
            return Ok(m);
        }
        let Some(decl) = self.module.maps.get(map) else {
            return self.reject(format!("{map} is not declared in the module"));
        };
        if matches!(
            decl.map_type,
            MAP_TYPE_HASH | MAP_TYPE_PERCPU_HASH | MAP_TYPE_LRU_HASH | MAP_TYPE_LRU_PERCPU_HASH
        ) {
            let layout = HashLayout::for_lookups(decl.max_entries, decl.key_size, decl.value_size)
                .map_err(|why| {
                    Rejection::new(
                        self.insn,
                        format!(
                            "hash map `{}` does not fit an on-chip memory: {why}",
                            decl.name
                        ),
                    )
                })?;
            let m = self.memories.len() as u32;
            self.memories.push(Memory {
                name: decl.name.clone(),
                map_index: map.as_u32() as usize,
                rows: layout.buckets,
                row_bytes: layout.row_bytes(),
                presence: false,
                kind: MemoryKind::Hash(layout),
            });
            self.memory_of_map.insert(map, m);
            return Ok(m);
        }
        if !matches!(decl.map_type, MAP_TYPE_ARRAY | MAP_TYPE_PERCPU_ARRAY) {
            return self.reject(format!(
                "map `{}` has type {}; array, per-CPU array, hash, per-CPU hash and LRU hash maps are held as on-chip memories, this type not yet",
                decl.name, decl.map_type
            ));
        }
        if decl.max_entries > 1 << 16 || decl.value_size == 0 || decl.value_size > 256 {
            return self.reject(format!(
                "map `{}` ({} entries of {} bytes) is larger than the on-chip memories this backend builds (at most 65536 rows of 256 bytes)",
                decl.name, decl.max_entries, decl.value_size
            ));
        }
        let m = self.memories.len() as u32;
        self.memories.push(Memory {
            name: decl.name.clone(),
            map_index: map.as_u32() as usize,
            rows: decl.max_entries,
            row_bytes: decl.value_size,
            presence: false,
            kind: MemoryKind::Array,
        });
        self.memory_of_map.insert(map, m);
        Ok(m)
    }

    /// The byte array `ptr` points into and the offset in it of `ptr + offset`.
    fn target(
        &mut self,
        region: Region,
        ptr: Lv,
        offset: i32,
        size: u32,
    ) -> Result<(Target, NodeId), Rejection> {
        let k = self.konst(offset as i64 as u64, 64);
        match (region, ptr.prov) {
            (Region::Packet, Prov::Packet) => {
                let at = self.alu(AluOp::Add, Width::W64, ptr.node, k);
                self.packet_accesses.push((at, size, self.insn));
                Ok((Target::Window, at))
            }
            (Region::Stack(s), Prov::Stack(p)) if s == p => {
                let at = self.alu(AluOp::Add, Width::W64, ptr.node, k);
                Ok((Target::Stack(s), at))
            }
            (Region::MapValue(_) | Region::Global(_), Prov::MapValue(site)) => {
                let k = self.konst((offset as i64 as u64).wrapping_sub(site_tag(site)), 64);
                let at = self.alu(AluOp::Add, Width::W64, ptr.node, k);
                Ok((Target::Site(site), at))
            }
            (r, p) => self.reject(format!(
                "a {size}-byte access to region {r} through a pointer of kind {p:?} is not supported by the pipeline backend"
            )),
        }
    }

    fn array_of(&mut self, t: Target) -> NodeId {
        match t {
            Target::Window => self.window,
            Target::Stack(s) => self.stack_state(s),
            Target::Site(i) => self.sites[i].state,
        }
    }

    fn set_array(&mut self, t: Target, n: NodeId) {
        match t {
            Target::Window => {
                self.window_family.insert(n);
                self.window = n;
            }
            Target::Stack(s) => {
                self.stacks.insert(s, n);
            }
            Target::Site(i) => {
                self.sites[i].state = n;
                self.sites[i].written = true;
            }
        }
    }

    fn read(&mut self, t: Target, at: NodeId, size: u8, signed: bool) -> NodeId {
        let array = self.array_of(t);
        self.add(
            NodeKind::ReadBytes {
                array,
                offset: at,
                size,
                signed,
            },
            Shape::Bits(64),
        )
    }

    fn write(&mut self, t: Target, at: NodeId, size: u8, value: NodeId, enable: NodeId) {
        let array = self.array_of(t);
        let shape = self.nodes[array as usize].shape;
        let n = self.add(
            NodeKind::WriteBytes {
                array,
                offset: at,
                size,
                value,
                enable,
            },
            shape,
        );
        self.set_array(t, n);
    }

    fn lower_inst(&mut self, inst: ir::Inst, pred: NodeId) -> Result<(), Rejection> {
        let data = self.func.dfg.inst(inst).clone();
        let result = self.func.dfg.inst_result(inst);
        let lv = match data {
            InstructionData::Iconst { imm } => Some(Lv {
                node: self.konst(imm as u64, 64),
                prov: Prov::Scalar,
            }),
            InstructionData::Binary { op, width, args } => {
                let (a, b) = (self.value(args[0])?, self.value(args[1])?);
                let prov = match (a.prov, b.prov, op) {
                    (Prov::Scalar, Prov::Scalar, _) => Prov::Scalar,
                    (p, Prov::Scalar, ir::BinaryOp::Add | ir::BinaryOp::Sub)
                    | (Prov::Scalar, p, ir::BinaryOp::Add)
                        if width == Width::W64 =>
                    {
                        p
                    }
                    (Prov::Packet, Prov::Packet, ir::BinaryOp::Sub) => Prov::Scalar,
                    (pa, pb, _) => {
                        return self.reject(format!(
                            "{}.{} of a {pa:?} and a {pb:?} value is pointer arithmetic the pipeline cannot represent",
                            op.name(),
                            ir::types::width_name(width)
                        ))
                    }
                };
                Some(Lv {
                    node: self.alu(op.alu_op(), width, a.node, b.node),
                    prov,
                })
            }
            InstructionData::Unary { op, width, arg } => {
                let a = self.scalar(arg)?;
                let node = match op {
                    ir::UnaryOp::Neg => self.alu(AluOp::Neg, width, a, a),
                    _ => self.alu(op.alu_op(), width, a, a),
                };
                Some(Lv {
                    node,
                    prov: Prov::Scalar,
                })
            }
            InstructionData::Endian { order, bits, arg } => {
                let a = self.scalar(arg)?;
                let node = match self.const_of(a) {
                    Some(c) => self.konst(ir::semantics::byte_order(order, bits as u32, c), 64),
                    None => self.add(NodeKind::Endian { order, bits, a }, Shape::Bits(64)),
                };
                Some(Lv {
                    node,
                    prov: Prov::Scalar,
                })
            }
            InstructionData::Load {
                region,
                size,
                signed,
                base,
                offset,
            } => {
                let ptr = self.value(base)?;
                if region == Region::Ctx || ptr.prov == Prov::Ctx {
                    Some(self.ctx_load(ptr, offset, size.bytes())?)
                } else {
                    let targets = self.targets(region, ptr, offset, size.bytes())?;
                    Some(Lv {
                        node: self.read_any(&targets, size.bytes() as u8, signed),
                        prov: Prov::Scalar,
                    })
                }
            }
            InstructionData::Store {
                region,
                size,
                base,
                offset,
                value,
            } => {
                let ptr = self.value(base)?;
                let v = self.value(value)?;
                if v.prov != Prov::Scalar {
                    return self.reject(format!(
                        "storing a {:?} pointer to memory is not supported by the pipeline backend",
                        v.prov
                    ));
                }
                let targets = self.targets(region, ptr, offset, size.bytes())?;
                self.write_any(&targets, size.bytes() as u8, v.node, pred);
                None
            }
            InstructionData::Atomic {
                region,
                size,
                op,
                fetch,
                base,
                offset,
                value,
            } => {
                let ptr = self.value(base)?;
                let v = self.scalar(value)?;
                let targets = self.targets(region, ptr, offset, size.bytes())?;
                let old = self.read_any(&targets, size.bytes() as u8, false);
                let new = match op {
                    ir::AtomicOp::Add => self.alu(AluOp::Add, Width::W64, old, v),
                    ir::AtomicOp::Or => self.alu(AluOp::Or, Width::W64, old, v),
                    ir::AtomicOp::And => self.alu(AluOp::And, Width::W64, old, v),
                    ir::AtomicOp::Xor => self.alu(AluOp::Xor, Width::W64, old, v),
                    ir::AtomicOp::Xchg => v,
                };
                self.write_any(&targets, size.bytes() as u8, new, pred);
                fetch.then_some(Lv {
                    node: old,
                    prov: Prov::Scalar,
                })
            }
            InstructionData::CmpXchg { .. } => {
                return self.reject("cmpxchg is not supported by the pipeline backend yet")
            }
            InstructionData::StackAddr { slot, offset } => Some(Lv {
                node: self.konst(offset as i64 as u64, 64),
                prov: Prov::Stack(slot),
            }),
            InstructionData::MapRef { map } => Some(Lv {
                node: self.konst(map_handle_value(map), 64),
                prov: Prov::MapHandle(map),
            }),
            InstructionData::MapValueAddr { map, offset } => {
                let site = self.global_site(map)?;
                Some(Lv {
                    node: self.konst(site_tag(site).wrapping_add(offset as i64 as u64), 64),
                    prov: Prov::MapValue(site),
                })
            }
            InstructionData::FuncAddr { .. } => {
                return self.reject("callback helpers (bpf_loop and friends) do not fit a pipeline")
            }
            InstructionData::CallHelper { helper, args } => Some(self.helper(helper, &args, pred)?),
            InstructionData::Call { .. } => {
                return self
                    .reject("a bpf-to-bpf call remains; the pipeline backend needs calls inlined")
            }
            InstructionData::TailCall { .. } => {
                return self.reject("tail calls do not fit a single pipeline")
            }
            InstructionData::Jump { dest } => {
                self.record_edge(&dest, pred)?;
                None
            }
            InstructionData::Brif {
                cond,
                width,
                args,
                dests,
            } => {
                let (a, b) = (self.value(args[0])?, self.value(args[1])?);
                let comparable = a.prov == b.prov
                    || ((is_map_value(a.prov) || is_map_handle(a.prov)) && b.prov == Prov::Scalar)
                    || (a.prov == Prov::Scalar && (is_map_value(b.prov) || is_map_handle(b.prov)));
                if !comparable {
                    return self.reject(format!(
                        "comparing a {:?} with a {:?} value is not supported by the pipeline backend",
                        a.prov, b.prov
                    ));
                }
                let c = match (self.const_of(a.node), self.const_of(b.node)) {
                    (Some(x), Some(y)) => {
                        self.konst(u64::from(ir::semantics::compare(cond, width, x, y)), 1)
                    }
                    _ => self.add(
                        NodeKind::Cmp {
                            cond,
                            width,
                            a: a.node,
                            b: b.node,
                        },
                        Shape::Bits(1),
                    ),
                };
                let t = self.and(pred, c);
                let nc = self.not(c);
                let f = self.and(pred, nc);
                self.record_edge(&dests[0], t)?;
                self.record_edge(&dests[1], f)?;
                None
            }
            InstructionData::Return { value } => {
                let v = self.value(value)?;
                self.returns.push((pred, v.node));
                None
            }
        };
        if let (Some(r), Some(lv)) = (result, lv) {
            self.values.insert(r, lv);
        }
        Ok(())
    }

    fn scalar(&mut self, v: Value) -> Result<NodeId, Rejection> {
        let lv = self.value(v)?;
        if lv.prov != Prov::Scalar {
            return self.reject(format!("{v} is a {:?} pointer used as a number", lv.prov));
        }
        Ok(lv.node)
    }

    fn ctx_load(&mut self, ptr: Lv, offset: i32, bytes: u32) -> Result<Lv, Rejection> {
        let base = self.const_of(ptr.node).unwrap_or(u64::MAX);
        if ptr.prov != Prov::Ctx || base != 0 || bytes != 4 {
            return self.reject(
                "only 4-byte loads of struct xdp_md fields at constant offsets are supported",
            );
        }
        let scalar = |l: &mut Self, n: NodeId| Lv {
            node: l.zext64(n),
            prov: Prov::Scalar,
        };
        Ok(match offset {
            0 | 8 => Lv {
                node: self.zero,
                prov: Prov::Packet,
            },
            4 => {
                let len = self.add(NodeKind::Input(Input::Length), Shape::Bits(16));
                Lv {
                    node: self.zext64(len),
                    prov: Prov::Packet,
                }
            }
            12 => {
                let n = self.add(NodeKind::Input(Input::IngressIfindex), Shape::Bits(32));
                scalar(self, n)
            }
            16 => {
                let n = self.add(NodeKind::Input(Input::RxQueue), Shape::Bits(32));
                scalar(self, n)
            }
            20 => Lv {
                node: self.zero,
                prov: Prov::Scalar,
            },
            _ => return self.reject(format!("no struct xdp_md field at offset {offset}")),
        })
    }

    fn global_site(&mut self, map: MapRef) -> Result<usize, Rejection> {
        if let Some(&s) = self.global_sites.get(&map) {
            return Ok(s);
        }
        let mem = self.memory_for(map)?;
        let row = self.zero;
        let state = self.add(
            NodeKind::MemRead { mem, row },
            Shape::Bytes(self.memories[mem as usize].row_bytes),
        );
        let s = self.sites.len();
        self.sites.push(Site {
            mem,
            row,
            bucket: None,
            live: self.one,
            state,
            written: false,
            insn: self.insn,
        });
        self.global_sites.insert(map, s);
        Ok(s)
    }

    /// The site of a state register the runtime keeps beside the maps (the clock, the random
    /// state): a one-row memory of `bytes` bytes, read once per packet and written back in
    /// the next stage, so packets see each other's updates in arrival order as the
    /// interpreter's sequential runs do.
    fn register_site(&mut self, name: &'static str, kind: MemoryKind, bytes: u32) -> usize {
        if let Some(&s) = self.register_sites.get(name) {
            return s;
        }
        let mem = self.memories.len() as u32;
        self.memories.push(Memory {
            name: name.to_string(),
            map_index: usize::MAX,
            rows: 1,
            row_bytes: bytes,
            presence: false,
            kind,
        });
        let row = self.zero;
        let state = self.add(NodeKind::MemRead { mem, row }, Shape::Bytes(bytes));
        let s = self.sites.len();
        self.sites.push(Site {
            mem,
            row,
            bucket: None,
            live: self.one,
            state,
            written: false,
            insn: self.insn,
        });
        self.register_sites.insert(name, s);
        s
    }

    /// `bpf_ktime_get_ns` and the other clocks: the runtime's clock (row bytes 0..8) advances
    /// by its step (bytes 8..16, set by the control plane like the clock) at every read, so
    /// the pipeline keeps both in a register and returns exactly the interpreter's sequence.
    fn clock_read(&mut self, pred: NodeId) -> NodeId {
        let s = self.register_site("ktime", MemoryKind::Clock, 16);
        let (at0, at8) = (self.konst(0, 64), self.konst(8, 64));
        let now = self.read(Target::Site(s), at0, 8, false);
        let step = self.read(Target::Site(s), at8, 8, false);
        let next = self.alu(AluOp::Add, Width::W64, now, step);
        self.write(Target::Site(s), at0, 8, next, pred);
        now
    }

    /// `bpf_get_prandom_u32`: the runtime's SplitMix64 (`sim::runtime::Runtime::next_random`)
    /// as gates: the state advances by the golden-ratio increment, and the returned word is
    /// the low 32 bits of the mixed state.
    fn random_read(&mut self, pred: NodeId) -> NodeId {
        let s = self.register_site("prandom", MemoryKind::Random, 8);
        let at0 = self.konst(0, 64);
        let state = self.read(Target::Site(s), at0, 8, false);
        let golden = self.konst(0x9e37_79b9_7f4a_7c15, 64);
        let next = self.alu(AluOp::Add, Width::W64, state, golden);
        self.write(Target::Site(s), at0, 8, next, pred);
        let mut z = next;
        for (shift, mul) in [(30, 0xbf58_476d_1ce4_e5b9u64), (27, 0x94d0_49bb_1331_11eb)] {
            let k = self.konst(shift, 64);
            let hi = self.alu(AluOp::Rsh, Width::W64, z, k);
            let x = self.alu(AluOp::Xor, Width::W64, z, hi);
            let m = self.konst(mul, 64);
            z = self.alu(AluOp::Mul, Width::W64, x, m);
        }
        let k = self.konst(31, 64);
        let hi = self.alu(AluOp::Rsh, Width::W64, z, k);
        let x = self.alu(AluOp::Xor, Width::W64, z, hi);
        self.alu(AluOp::Mov, Width::W32, x, x)
    }

    /// `csum_partial` of the `size` bytes `ptr` points to (the runtime's definition): the
    /// 16-bit little-endian words and `seed` summed in 64 bits, then the upper half folded in
    /// twice, which is exact for the at most 512 bytes `bpf_csum_diff` takes.
    fn csum_partial(&mut self, ptr: Lv, size: u32, seed: NodeId) -> Result<NodeId, Rejection> {
        let region = match ptr.prov {
            Prov::Packet => Region::Packet,
            Prov::Stack(slot) => Region::Stack(slot),
            p => {
                return self.reject(format!(
                    "bpf_csum_diff over a buffer behind a {p:?} pointer; the pipeline sums packet and stack bytes"
                ))
            }
        };
        let mut sum = seed;
        for k in 0..size / 2 {
            let targets = self.targets(region, ptr, (2 * k) as i32, 2)?;
            let word = self.read_any(&targets, 2, false);
            sum = self.alu(AluOp::Add, Width::W64, sum, word);
        }
        Ok(self.fold32(sum))
    }

    /// A 64-bit sum below 2^33 folded to 32 bits with end-around carry: twice suffices.
    fn fold32(&mut self, mut sum: NodeId) -> NodeId {
        let (k32, low) = (self.konst(32, 64), self.konst(0xffff_ffff, 64));
        for _ in 0..2 {
            let hi = self.alu(AluOp::Rsh, Width::W64, sum, k32);
            let lo = self.alu(AluOp::And, Width::W64, sum, low);
            sum = self.alu(AluOp::Add, Width::W64, lo, hi);
        }
        sum
    }

    /// `bpf_csum_diff` as the runtime defines it (`sim::runtime::helpers::csum_diff`, checked
    /// against the kernel): the checksum of `to` plus the complement of that of `from`,
    /// seeded, folded to 16 bits. The sizes must be constants, so the buffers are fixed sets
    /// of bytes summed by an adder tree.
    fn csum_diff(&mut self, args: &[Value]) -> Result<NodeId, Rejection> {
        let from = self.value(args[0])?;
        let to = self.value(args[2])?;
        let (from_size, to_size, seed) = (
            self.scalar(args[1])?,
            self.scalar(args[3])?,
            self.scalar(args[4])?,
        );
        let (Some(from_size), Some(to_size)) = (self.const_of(from_size), self.const_of(to_size))
        else {
            return self.reject("bpf_csum_diff with buffer sizes that are not constants; the pipeline sums a fixed set of bytes");
        };
        let (from_size, to_size) = (from_size as u32, to_size as u32);
        if (from_size | to_size) & 3 != 0 || from_size as u64 + to_size as u64 > 512 {
            return Ok(self.konst(ir::semantics::alu(AluOp::Neg, Width::W64, 22, 22), 64));
        }
        let mask = self.konst(0xffff_ffff, 64);
        let seed = self.alu(AluOp::And, Width::W64, seed, mask);
        let not32 = |l: &mut Self, x: NodeId| l.alu(AluOp::Xor, Width::W64, x, mask);
        let sum = match (from_size, to_size) {
            (0, 0) => return Ok(seed),
            (0, _) => self.csum_partial(to, to_size, seed)?,
            (_, 0) => {
                let s = not32(self, seed);
                let p = self.csum_partial(from, from_size, s)?;
                not32(self, p)
            }
            _ => {
                let t = self.csum_partial(to, to_size, seed)?;
                let zero = self.zero;
                let f = self.csum_partial(from, from_size, zero)?;
                let nf = not32(self, f);
                let s = self.alu(AluOp::Add, Width::W64, t, nf);
                let k32 = self.konst(32, 64);
                let hi = self.alu(AluOp::Rsh, Width::W64, s, k32);
                let lo = self.alu(AluOp::And, Width::W64, s, mask);
                let s = self.alu(AluOp::Add, Width::W64, lo, hi);
                self.alu(AluOp::And, Width::W64, s, mask)
            }
        };
        // fold16: the halves added twice.
        let (k16, m16) = (self.konst(16, 64), self.konst(0xffff, 64));
        let mut x = sum;
        for _ in 0..2 {
            let hi = self.alu(AluOp::Rsh, Width::W64, x, k16);
            let lo = self.alu(AluOp::And, Width::W64, x, m16);
            x = self.alu(AluOp::Add, Width::W64, lo, hi);
        }
        Ok(x)
    }

    fn helper(&mut self, helper: u32, args: &[Value], pred: NodeId) -> Result<Lv, Rejection> {
        match helper {
            // bpf_ktime_get_ns, bpf_ktime_get_boot_ns, bpf_ktime_get_coarse_ns,
            // bpf_ktime_get_tai_ns: one clock in the runtime.
            5 | 125 | 160 | 208 => Ok(Lv {
                node: self.clock_read(pred),
                prov: Prov::Scalar,
            }),
            // bpf_get_prandom_u32
            7 => Ok(Lv {
                node: self.random_read(pred),
                prov: Prov::Scalar,
            }),
            // bpf_csum_diff(from, from_size, to, to_size, seed)
            28 => {
                if args.len() < 5 {
                    return self.reject("bpf_csum_diff needs five arguments");
                }
                Ok(Lv {
                    node: self.csum_diff(args)?,
                    prov: Prov::Scalar,
                })
            }
            // bpf_map_lookup_elem(map, key)
            1 => {
                let (Some(&m), Some(&k)) = (args.first(), args.get(1)) else {
                    return self.reject("bpf_map_lookup_elem needs two arguments");
                };
                let handle = self.value(m)?;
                let maps = match handle.prov {
                    Prov::MapHandle(map) => vec![(map, self.one)],
                    Prov::MapHandles(c) => {
                        // The map is chosen at run time: each candidate is looked up under
                        // the condition that the handle names it, and the value pointer says
                        // which lookup it came from.
                        let candidates = self.handle_choices[c].clone();
                        let mut out = Vec::new();
                        for map in candidates {
                            let id = self.konst(map_handle_value(map), 64);
                            let sel = self.add(
                                NodeKind::Cmp {
                                    cond: JmpCond::Eq,
                                    width: Width::W64,
                                    a: handle.node,
                                    b: id,
                                },
                                Shape::Bits(1),
                            );
                            out.push((map, sel));
                        }
                        out
                    }
                    p => {
                        return self.reject(format!(
                            "bpf_map_lookup_elem on a {p:?} value rather than a map"
                        ))
                    }
                };
                let key_ptr = self.value(k)?;
                let (t, at) = match key_ptr.prov {
                    Prov::Stack(s) => (Target::Stack(s), key_ptr.node),
                    Prov::MapValue(site) => {
                        let kk = self.konst(0u64.wrapping_sub(site_tag(site)), 64);
                        (
                            Target::Site(site),
                            self.alu(AluOp::Add, Width::W64, key_ptr.node, kk),
                        )
                    }
                    p => {
                        return self
                            .reject(format!("a map key behind a {p:?} pointer is not supported"))
                    }
                };
                let mut ptr = self.zero;
                let mut sites = Vec::new();
                for &(map, sel) in maps.iter().rev() {
                    let p = self.and(pred, sel);
                    let lv = self.lookup_one(map, t, at, p)?;
                    ptr = self.mux(sel, lv.node, ptr);
                    sites.extend(self.sites_of(lv.prov));
                }
                let prov = match sites.as_slice() {
                    [one] => Prov::MapValue(*one),
                    _ => self.choice_of(sites),
                };
                Ok(Lv { node: ptr, prov })
            }
            // bpf_map_update_elem and bpf_map_delete_elem
            2 | 3 => {
                let name = if helper == 2 {
                    "bpf_map_update_elem"
                } else {
                    "bpf_map_delete_elem"
                };
                let map = match args.first().map(|&m| self.value(m)).transpose()? {
                    Some(Lv {
                        prov: Prov::MapHandle(map),
                        ..
                    }) => map,
                    _ => return self.reject(format!("{name} on a value that is not a map")),
                };
                let decl = &self.module.maps[map];
                let why = if matches!(decl.map_type, MAP_TYPE_LRU_HASH | MAP_TYPE_LRU_PERCPU_HASH) {
                    "an insert into an LRU hash evicts as the kernel's LRU lists decide (per-CPU free lists, active and inactive rotation), which the pipeline's memories do not replicate"
                } else {
                    "the pipeline's maps are changed from the data path only through the value a lookup returned; inserting and deleting keys are for the control plane"
                };
                self.reject(format!("{name} on map `{}`: {why}", decl.name))
            }
            // bpf_redirect(ifindex, flags)
            23 => {
                let (Some(&i), Some(&f)) = (args.first(), args.get(1)) else {
                    return self.reject("bpf_redirect needs two arguments");
                };
                let (ifindex, flags) = (self.scalar(i)?, self.scalar(f)?);
                let zero = self.zero;
                let ok = match self.const_of(flags) {
                    Some(c) => self.konst(u64::from(c == 0), 1),
                    None => self.add(
                        NodeKind::Cmp {
                            cond: JmpCond::Eq,
                            width: Width::W64,
                            a: flags,
                            b: zero,
                        },
                        Shape::Bits(1),
                    ),
                };
                let enable = self.and(pred, ok);
                let kind = self.konst(REDIRECT_IFINDEX, 64);
                let key = self.alu(AluOp::Mov, Width::W32, ifindex, ifindex);
                self.redirects.push(RedirectEvent {
                    enable,
                    kind,
                    key,
                    value: None,
                });
                let (r, a) = (self.konst(XDP_REDIRECT, 64), self.konst(XDP_ABORTED, 64));
                Ok(Lv {
                    node: self.mux(ok, r, a),
                    prov: Prov::Scalar,
                })
            }
            // bpf_redirect_map(map, key, flags)
            51 => {
                let (Some(&m), Some(&k), Some(&f)) = (args.first(), args.get(1), args.get(2))
                else {
                    return self.reject("bpf_redirect_map needs three arguments");
                };
                let map = match self.value(m)?.prov {
                    Prov::MapHandle(map) => map,
                    p => {
                        return self.reject(format!(
                            "bpf_redirect_map on a {p:?} value rather than a map"
                        ))
                    }
                };
                let key = self.scalar(k)?;
                let f = self.scalar(f)?;
                let Some(flags) = self.const_of(f) else {
                    return self.reject("bpf_redirect_map with flags that are not a constant");
                };
                let decl = &self.module.maps[map];
                let (name, map_type, value_size, rows) = (
                    decl.name.clone(),
                    decl.map_type,
                    decl.value_size,
                    decl.max_entries,
                );
                let flag_mask = match map_type {
                    MAP_TYPE_DEVMAP => BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS,
                    MAP_TYPE_CPUMAP | MAP_TYPE_XSKMAP => 0,
                    t => {
                        return self.reject(format!(
                            "bpf_redirect_map into map `{name}` of type {t}; device, CPU and XSK array maps are supported"
                        ))
                    }
                };
                if flags & !(3 | flag_mask) != 0 {
                    return Ok(Lv {
                        node: self.konst(XDP_ABORTED, 64),
                        prov: Prov::Scalar,
                    });
                }
                if flags & BPF_F_BROADCAST != 0 {
                    return self.reject("bpf_redirect_map with BPF_F_BROADCAST (multicast to every device) is not supported by the pipeline backend");
                }
                if rows > 1 << 16 || value_size == 0 || value_size > 64 {
                    return self.reject(format!(
                        "redirect map `{name}` is too large for an on-chip memory"
                    ));
                }
                let mem = match &self.redirect_map {
                    Some((r, mem)) if r.map_index == map.as_u32() as usize && r.flags == flags => *mem,
                    Some(_) => {
                        return self.reject("more than one redirect map (or flags) in one program; the pipeline has one redirect port")
                    }
                    None => {
                        let mem = self.memories.len() as u32;
                        self.memories.push(Memory {
                            name: name.clone(),
                            map_index: map.as_u32() as usize,
                            rows,
                            row_bytes: value_size + 1,
                            presence: true,
                            kind: MemoryKind::Array,
                        });
                        self.redirect_map = Some((
                            RedirectMap {
                                name,
                                map_index: map.as_u32() as usize,
                                flags,
                            },
                            mem,
                        ));
                        mem
                    }
                };
                let key = self.alu(AluOp::Mov, Width::W32, key, key);
                let row = self.add(
                    NodeKind::MemRead { mem, row: key },
                    Shape::Bytes(value_size + 1),
                );
                let at = self.konst(value_size as u64, 64);
                let present = self.add(
                    NodeKind::ReadBytes {
                        array: row,
                        offset: at,
                        size: 1,
                        signed: false,
                    },
                    Shape::Bits(64),
                );
                let zero = self.zero;
                let found = self.add(
                    NodeKind::Cmp {
                        cond: JmpCond::Ne,
                        width: Width::W64,
                        a: present,
                        b: zero,
                    },
                    Shape::Bits(1),
                );
                let (to_map, none) = (self.konst(REDIRECT_MAP, 64), self.konst(REDIRECT_NONE, 64));
                let kind = self.mux(found, to_map, none);
                self.redirects.push(RedirectEvent {
                    enable: pred,
                    kind,
                    key,
                    value: Some(row),
                });
                let (r, miss) = (self.konst(XDP_REDIRECT, 64), self.konst(flags & 3, 64));
                Ok(Lv {
                    node: self.mux(found, r, miss),
                    prov: Prov::Scalar,
                })
            }
            _ => self.reject(format!(
                "helper #{helper} is not supported by the pipeline backend yet"
            )),
        }
    }

    /// `bpf_map_lookup_elem` of the key at `at` in `key_target` in one map, under `pred`.
    fn lookup_one(
        &mut self,
        map: MapRef,
        key_target: Target,
        at: NodeId,
        pred: NodeId,
    ) -> Result<Lv, Rejection> {
        let mem = self.memory_for(map)?;
        if let MemoryKind::Hash(layout) = self.memories[mem as usize].kind {
            return Ok(self.hash_lookup(mem, layout, key_target, at, pred));
        }
        let key = self.read(key_target, at, 4, false);
        let rows = self.memories[mem as usize].rows as u64;
        let limit = self.konst(rows, 64);
        let hit = self.add(
            NodeKind::Cmp {
                cond: JmpCond::Lt,
                width: Width::W64,
                a: key,
                b: limit,
            },
            Shape::Bits(1),
        );
        let state = self.add(
            NodeKind::MemRead { mem, row: key },
            Shape::Bytes(self.memories[mem as usize].row_bytes),
        );
        let live = self.and(pred, hit);
        let s = self.sites.len();
        self.sites.push(Site {
            mem,
            row: key,
            bucket: None,
            live,
            state,
            written: false,
            insn: self.insn,
        });
        let tag = self.konst(site_tag(s), 64);
        Ok(Lv {
            node: self.mux(hit, tag, self.zero),
            prov: Prov::MapValue(s),
        })
    }

    /// `bpf_map_lookup_elem` on a hash memory: the key's bucket is read in one stage, and the
    /// next compares the key with every way's at once. The site's state is the value of the
    /// first valid way whose key matches (ways hold distinct keys, so there is at most one),
    /// selected by constant part-selects and multiplexers, so the program's accesses to it
    /// are at constant offsets as in an array row; the write puts it back into that way. The
    /// value pointer is null when no way matches.
    fn hash_lookup(
        &mut self,
        mem: u32,
        layout: HashLayout,
        key_target: Target,
        key_at: NodeId,
        pred: NodeId,
    ) -> Lv {
        let chunks: Vec<(NodeId, u32, u32)> = key_chunks(layout.key_bytes)
            .into_iter()
            .map(|(off, n)| {
                let k = self.konst(off as u64, 64);
                let at = self.alu(AluOp::Add, Width::W64, key_at, k);
                (self.read(key_target, at, n as u8, false), off, n)
            })
            .collect();
        let row = if layout.buckets <= 1 {
            self.zero
        } else {
            // `hw::pipeline::hash_table::bucket_of`, gate for gate: the chunks' XOR, its
            // 16-bit quarters XORed, masked to the bucket count.
            let mut x = chunks[0].0;
            for &(c, _, _) in &chunks[1..] {
                x = self.alu(AluOp::Xor, Width::W64, x, c);
            }
            let (k32, k16) = (self.konst(32, 64), self.konst(16, 64));
            let hi = self.alu(AluOp::Rsh, Width::W64, x, k32);
            let y = self.alu(AluOp::Xor, Width::W64, x, hi);
            let hi = self.alu(AluOp::Rsh, Width::W64, y, k16);
            let z = self.alu(AluOp::Xor, Width::W64, y, hi);
            let mask = self.konst(layout.buckets as u64 - 1, 64);
            self.alu(AluOp::And, Width::W64, z, mask)
        };
        let bucket = self.add(
            NodeKind::MemRead { mem, row },
            Shape::Bytes(layout.row_bytes()),
        );
        let zero = self.zero;
        let mut hits = Vec::new();
        for way in 0..layout.ways {
            let at = self.konst(layout.valid_offset(way) as u64, 64);
            let flag = self.add(
                NodeKind::ReadBytes {
                    array: bucket,
                    offset: at,
                    size: 1,
                    signed: false,
                },
                Shape::Bits(64),
            );
            let mut hit = self.add(
                NodeKind::Cmp {
                    cond: JmpCond::Ne,
                    width: Width::W64,
                    a: flag,
                    b: zero,
                },
                Shape::Bits(1),
            );
            for &(key, off, n) in &chunks {
                let at = self.konst((layout.key_offset(way) + off) as u64, 64);
                let stored = self.add(
                    NodeKind::ReadBytes {
                        array: bucket,
                        offset: at,
                        size: n as u8,
                        signed: false,
                    },
                    Shape::Bits(64),
                );
                let same = self.add(
                    NodeKind::Cmp {
                        cond: JmpCond::Eq,
                        width: Width::W64,
                        a: stored,
                        b: key,
                    },
                    Shape::Bits(1),
                );
                hit = self.and(hit, same);
            }
            hits.push(hit);
        }
        let value_shape = Shape::Bytes(layout.value_bytes);
        let slice = |l: &mut Self, way: u32| {
            l.add(
                NodeKind::Slice {
                    array: bucket,
                    offset: layout.value_offset(way),
                },
                value_shape,
            )
        };
        let last = layout.ways - 1;
        let mut value = slice(self, last);
        let mut found = hits[last as usize];
        for way in (0..last).rev() {
            let v = slice(self, way);
            value = self.mux(hits[way as usize], v, value);
            found = self.or(found, hits[way as usize]);
        }
        let live = self.and(pred, found);
        let s = self.sites.len();
        self.sites.push(Site {
            mem,
            row,
            bucket: Some((bucket, hits, layout)),
            live,
            state: value,
            written: false,
            insn: self.insn,
        });
        let tag = self.konst(site_tag(s), 64);
        Lv {
            node: self.mux(found, tag, zero),
            prov: Prov::MapValue(s),
        }
    }

    /// The sites a map value pointer may point into.
    fn sites_of(&self, p: Prov) -> Vec<usize> {
        match p {
            Prov::MapValue(s) => vec![s],
            Prov::MapValues(c) => self.choices[c].clone(),
            _ => Vec::new(),
        }
    }

    /// The [`Prov::MapValues`] of a set of sites.
    fn choice_of(&mut self, mut set: Vec<usize>) -> Prov {
        set.sort_unstable();
        set.dedup();
        let c = match self.choices.iter().position(|x| *x == set) {
            Some(c) => c,
            None => {
                self.choices.push(set);
                self.choices.len() - 1
            }
        };
        Prov::MapValues(c)
    }

    /// The maps a map handle may name.
    fn maps_of(&self, p: Prov) -> Vec<MapRef> {
        match p {
            Prov::MapHandle(m) => vec![m],
            Prov::MapHandles(c) => self.handle_choices[c].clone(),
            _ => Vec::new(),
        }
    }

    /// What a block parameter merging `a` and `b` points to: the same kind, a map value
    /// pointer or map handle or null, map values of several lookups, or one of several maps.
    fn merge_prov(&mut self, a: Lv, b: Lv) -> Option<Prov> {
        if a.prov == b.prov {
            return Some(a.prov);
        }
        let is_zero = |l: &Self, lv: Lv| lv.prov == Prov::Scalar && l.const_of(lv.node) == Some(0);
        let maybe_null = |p: Prov| is_map_value(p) || is_map_handle(p);
        match (a.prov, b.prov) {
            (p, Prov::Scalar) if maybe_null(p) && is_zero(self, b) => Some(p),
            (Prov::Scalar, p) if maybe_null(p) && is_zero(self, a) => Some(p),
            (p, q) if is_map_value(p) && is_map_value(q) => {
                let mut set = self.sites_of(p);
                set.extend(self.sites_of(q));
                Some(self.choice_of(set))
            }
            (p, q) if is_map_handle(p) && is_map_handle(q) => {
                let mut set = self.maps_of(p);
                set.extend(self.maps_of(q));
                set.sort_unstable();
                set.dedup();
                let c = match self.handle_choices.iter().position(|x| *x == set) {
                    Some(c) => c,
                    None => {
                        self.handle_choices.push(set);
                        self.handle_choices.len() - 1
                    }
                };
                Some(Prov::MapHandles(c))
            }
            _ => None,
        }
    }

    /// Where an access through `ptr` may land: one target when the pointer's kind says where,
    /// else one per site it may point into, each with the bit that says the pointer is into
    /// that site (its upper half is the site's tag).
    fn targets(
        &mut self,
        region: Region,
        ptr: Lv,
        offset: i32,
        size: u32,
    ) -> Result<Vec<(Target, NodeId, NodeId)>, Rejection> {
        let Prov::MapValues(_) = ptr.prov else {
            let (t, at) = self.target(region, ptr, offset, size)?;
            return Ok(vec![(t, at, self.one)]);
        };
        let k32 = self.konst(32, 64);
        let upper = self.alu(AluOp::Rsh, Width::W64, ptr.node, k32);
        let mut out = Vec::new();
        for site in self.sites_of(ptr.prov) {
            let one = Lv {
                node: ptr.node,
                prov: Prov::MapValue(site),
            };
            let (t, at) = self.target(region, one, offset, size)?;
            let tag = self.konst(site as u64 + 1, 64);
            let sel = self.add(
                NodeKind::Cmp {
                    cond: JmpCond::Eq,
                    width: Width::W64,
                    a: upper,
                    b: tag,
                },
                Shape::Bits(1),
            );
            out.push((t, at, sel));
        }
        Ok(out)
    }

    /// A load through every target, the one the pointer selects winning.
    fn read_any(&mut self, targets: &[(Target, NodeId, NodeId)], size: u8, signed: bool) -> NodeId {
        let mut value = self.zero;
        for &(t, at, sel) in targets.iter().rev() {
            let v = self.read(t, at, size, signed);
            value = self.mux(sel, v, value);
        }
        value
    }

    /// A store through every target, each enabled where the pointer selects it.
    fn write_any(
        &mut self,
        targets: &[(Target, NodeId, NodeId)],
        size: u8,
        value: NodeId,
        pred: NodeId,
    ) {
        for &(t, at, sel) in targets {
            let enable = self.and(pred, sel);
            self.write(t, at, size, value, enable);
        }
    }

    fn finish(mut self, name: &str, options: &IfConvOptions) -> Result<Block, Rejection> {
        // A map row written back while another lookup of the same map read its own copy would
        // lose one of the updates, so a written map may have one site only.
        for (i, s) in self.sites.iter().enumerate() {
            if !s.written {
                continue;
            }
            if let Some(other) = self
                .sites
                .iter()
                .enumerate()
                .find(|(j, o)| *j != i && o.mem == s.mem)
            {
                return Err(Rejection::new(
                    other.1.insn,
                    format!(
                        "map `{}` is written through one lookup and read by another; the pipeline holds one row per map and packet",
                        self.memories[s.mem as usize].name
                    ),
                ));
            }
        }
        let writes: Vec<_> = self
            .sites
            .iter()
            .filter(|s| s.written)
            .map(|s| (s.mem, s.row, s.state, s.live, s.insn, s.bucket.clone()))
            .collect();
        for (mem, row, state, enable, insn, bucket) in writes {
            self.insn = insn;
            // A hash value goes back into the way it was found in; the other ways keep theirs.
            let data = match bucket {
                None => state,
                Some((bucket, hits, layout)) => {
                    let shape = Shape::Bytes(layout.row_bytes());
                    let mut data = bucket;
                    for way in (0..layout.ways).rev() {
                        let spliced = self.add(
                            NodeKind::Splice {
                                array: bucket,
                                offset: layout.value_offset(way),
                                part: state,
                            },
                            shape,
                        );
                        data = self.mux(hits[way as usize], spliced, data);
                    }
                    data
                }
            };
            self.add(
                NodeKind::MemWrite {
                    mem,
                    row,
                    data,
                    enable,
                },
                Shape::Effect,
            );
        }
        self.insn = u32::MAX;
        let Some(&(_, last)) = self.returns.last() else {
            return Err(Rejection::new(u32::MAX, "the program never returns"));
        };
        let mut retval = last;
        let rets = self.returns.clone();
        for (p, v) in rets.iter().rev().skip(1) {
            retval = self.mux(*p, *v, retval);
        }
        let len = self.add(NodeKind::Input(Input::Length), Shape::Bits(16));
        // The window needs to hold every byte any packet access may touch.
        let mut window = 8u32;
        for &(at, size, insn) in &self.packet_accesses {
            match upper_bound(&self.nodes, at) {
                Some(b) if b.saturating_add(size as u64) <= options.max_window_bytes as u64 => {
                    window = window.max(b as u32 + size)
                }
                Some(b) => {
                    return Err(Rejection::new(
                        insn,
                        format!(
                            "a packet access reaches byte {}; the pipeline carries at most the first {} bytes",
                            b + size as u64,
                            options.max_window_bytes
                        ),
                    ))
                }
                None => {
                    return Err(Rejection::new(
                        insn,
                        "a packet access at an offset with no static upper bound (range analysis found none); the pipeline carries a fixed window of the packet head",
                    ))
                }
            }
        }
        let window = window.div_ceil(8) * 8;
        for id in &self.window_family {
            self.nodes[*id as usize].shape = Shape::Bytes(window);
        }
        // The redirect target: the last redirecting helper call on the taken path wins.
        let value_bytes = self
            .redirect_map
            .as_ref()
            .map_or(1, |(_, mem)| self.memories[*mem as usize].row_bytes);
        let mut kind = self.konst(REDIRECT_NONE, 64);
        let mut key = self.zero;
        let mut value = self.add(NodeKind::Zeros, Shape::Bytes(value_bytes));
        let events = std::mem::take(&mut self.redirects);
        for ev in events {
            kind = self.mux(ev.enable, ev.kind, kind);
            key = self.mux(ev.enable, ev.key, key);
            if let Some(v) = ev.value {
                value = self.mux(ev.enable, v, value);
            }
        }
        let mut outputs = BTreeMap::new();
        outputs.insert(Output::Retval, retval);
        outputs.insert(Output::Window, self.window);
        outputs.insert(Output::Length, len);
        outputs.insert(Output::RedirectKind, kind);
        outputs.insert(Output::RedirectKey, key);
        outputs.insert(Output::RedirectValue, value);
        Ok(Block {
            name: name.to_string(),
            window_bytes: window,
            stages: 1,
            clock_period_ps: 0,
            nodes: self.nodes,
            memories: self.memories,
            outputs,
            redirect_map: self.redirect_map.map(|(r, _)| r),
            redirect_value_bytes: value_bytes,
        })
    }
}

#[derive(Clone, Copy)]
enum Target {
    Window,
    Stack(StackSlot),
    Site(usize),
}

fn is_map_value(p: Prov) -> bool {
    matches!(p, Prov::MapValue(_) | Prov::MapValues(_))
}

fn is_map_handle(p: Prov) -> bool {
    matches!(p, Prov::MapHandle(_) | Prov::MapHandles(_))
}

/// The scalar a map handle holds: the map's index plus one, so that no handle is null.
fn map_handle_value(map: MapRef) -> u64 {
    map.as_u32() as u64 + 1
}

/// The largest value node `n` can take, when a simple walk over its definition bounds it.
pub fn upper_bound(nodes: &[Node], n: NodeId) -> Option<u64> {
    let node = nodes.get(n as usize)?;
    let c = |m: NodeId| match nodes.get(m as usize).map(|x| &x.kind) {
        Some(NodeKind::Const(v)) => Some(*v),
        _ => None,
    };
    match &node.kind {
        NodeKind::Const(v) => Some(*v),
        NodeKind::Cmp { .. } | NodeKind::Logic { .. } | NodeKind::Not(_) => Some(1),
        NodeKind::Input(Input::Length) => Some(u16::MAX as u64),
        NodeKind::Input(_) => Some(u32::MAX as u64),
        NodeKind::ReadBytes { size, signed, .. } => {
            (!signed).then(|| ir::semantics::truncate(u64::MAX, *size as u32 * 8))
        }
        NodeKind::Mux {
            if_true, if_false, ..
        } => Some(upper_bound(nodes, *if_true)?.max(upper_bound(nodes, *if_false)?)),
        NodeKind::Endian { bits, .. } => Some(ir::semantics::truncate(u64::MAX, *bits as u32)),
        NodeKind::Alu { op, width, a, b } => {
            let cap = if *width == Width::W32 {
                u32::MAX as u64
            } else {
                u64::MAX
            };
            let r = match op {
                AluOp::Mov => upper_bound(nodes, *b),
                AluOp::And => match (upper_bound(nodes, *a), upper_bound(nodes, *b)) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                },
                AluOp::Add => {
                    let (x, y) = (upper_bound(nodes, *a)?, upper_bound(nodes, *b)?);
                    x.checked_add(y).filter(|s| *s <= cap)
                }
                AluOp::Or | AluOp::Xor => {
                    let m = upper_bound(nodes, *a)?.max(upper_bound(nodes, *b)?);
                    Some(if m == 0 {
                        0
                    } else {
                        u64::MAX >> m.leading_zeros()
                    })
                }
                AluOp::Lsh => {
                    let (x, k) = (upper_bound(nodes, *a)?, c(*b)? & 63);
                    x.checked_shl(k as u32).filter(|v| v >> k == x && *v <= cap)
                }
                AluOp::Rsh => Some(upper_bound(nodes, *a)? >> (c(*b)? & 63)),
                AluOp::Mul => {
                    let (x, y) = (upper_bound(nodes, *a)?, upper_bound(nodes, *b)?);
                    x.checked_mul(y).filter(|s| *s <= cap)
                }
                AluOp::Div => upper_bound(nodes, *a),
                AluOp::Mod => upper_bound(nodes, *a),
                _ => None,
            };
            r.map(|v| v.min(cap))
        }
        _ => None,
    }
}
