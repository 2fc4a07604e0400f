//! Redundant load and store elimination for the stack, the packet and the context.
//!
//! Within an extended basic block (a block and its chain of single-predecessor successors,
//! walked in reverse postorder), the pass remembers what each known location holds:
//! - a load of a location already loaded, with the same size and extension, reuses the
//!   earlier result;
//! - a load of a location just stored with the same size is replaced by the stored value,
//!   truncated to the access size as the load would (`mov.w32` or an `and` mask);
//! - a store to a stack slot whose address never escapes is removed when a later store in the
//!   same block overwrites all its bytes before anything reads them, or when nothing ever
//!   loads from that slot.
//!
//! Locations are a base plus a constant offset: a `stack_addr` gives its slot and offset; any
//! other base is followed through `add.w64 base, iconst` to its root value. Two accesses with
//! different roots may alias, unless they are in memories that cannot overlap (a stack slot,
//! the packet, the context, map values).
//!
//! What forgets knowledge, conservatively: a store or atomic forgets every location it may
//! overlap; a helper that may move the packet (see [`crate::range::may_change_packet`])
//! forgets all packet and context locations; any helper or call forgets packet locations
//! (it may write through a packet pointer) and stack slots whose address escapes; a `call`
//! or a store through an unknown pointer forgets everything but non-escaping stack slots.

use crate::cfg::{ControlFlowGraph, DominatorTree};
use crate::pass::{Pass, PassContext, PassError};
use crate::range::may_change_packet;
use cranelift_entity::SecondaryMap;
use ir::instructions::{BinaryOp, InstructionData, Region, UnaryOp};
use ir::semantics::Width;
use ir::{Block, FunctionBuilder, Inst, MemSize, Module, StackSlot, Value};
use ir::{Function, Opcode};
use std::collections::{BTreeMap, BTreeSet};

/// The `redundant-mem` pass.
pub struct RedundantMemory;

impl Pass for RedundantMemory {
    fn name(&self) -> &'static str {
        "redundant-mem"
    }

    fn description(&self) -> &'static str {
        "forward stores to loads, reuse repeated loads, and remove dead stores to private stack slots"
    }

    fn run(&mut self, module: &mut Module, ctx: &mut PassContext) -> Result<bool, PassError> {
        let mut changed = false;
        for func in module.functions.values_mut() {
            let r = eliminate_redundant_memory(func);
            ctx.stats
                .add(self.name(), "reused_loads", r.reused_loads as u64);
            ctx.stats
                .add(self.name(), "forwarded_stores", r.forwarded as u64);
            ctx.stats
                .add(self.name(), "dead_stores", r.dead_stores as u64);
            changed |= r.reused_loads + r.forwarded + r.dead_stores > 0;
        }
        Ok(changed)
    }
}

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRewrites {
    pub reused_loads: usize,
    pub forwarded: usize,
    pub dead_stores: usize,
}

/// Which memory a location is in; locations in different memories never overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Space {
    Stack(StackSlot),
    Packet,
    Ctx,
}

/// A location: `root + offset` in a space. Stack locations have no root (the slot is enough).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Loc {
    space: Space,
    root: Option<Value>,
    offset: i64,
}

/// What a remembered location holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Known {
    loc: Loc,
    size: MemSize,
    value: Value,
    /// `Some(signed)` for the result of a load (with its extension), `None` for a stored value
    /// (whose high bytes are not what a load of the location gives).
    loaded: Option<bool>,
}

#[derive(Clone, Debug, Default)]
struct Memory {
    known: Vec<Known>,
}

impl Memory {
    fn forget(&mut self, mut f: impl FnMut(&Loc, MemSize) -> bool) {
        self.known.retain(|k| !f(&k.loc, k.size));
    }
}

/// True when `[a, a+sa)` and `[b, b+sb)` may share a byte.
fn overlaps(a: &Loc, sa: MemSize, b: &Loc, sb: MemSize) -> bool {
    if a.space != b.space {
        return false;
    }
    if a.root != b.root {
        return true;
    }
    a.offset < b.offset + sb.bytes() as i64 && b.offset < a.offset + sa.bytes() as i64
}

/// Follows `add.w64 x, iconst` chains: the root value and the constant added to it.
fn root_and_offset(func: &Function, mut v: Value) -> (Value, i64) {
    let mut total: i64 = 0;
    for _ in 0..16 {
        let Some(inst) = func.dfg.value_inst(v) else {
            break;
        };
        match *func.dfg.inst(inst) {
            InstructionData::Binary {
                op: BinaryOp::Add,
                width: Width::W64,
                args: [a, b],
            } => {
                if let Some(c) = func.dfg.value_const(b) {
                    total = total.wrapping_add(c);
                    v = a;
                } else if let Some(c) = func.dfg.value_const(a) {
                    total = total.wrapping_add(c);
                    v = b;
                } else {
                    break;
                }
            }
            _ => break,
        }
    }
    (v, total)
}

/// The location an access of `region` at `base + offset` touches, if it is one this pass
/// tracks. For a stack access whose base is not a `stack_addr` of its slot, the location is
/// unknown: `Err(slot)` says which slot may be touched.
fn location(
    func: &Function,
    region: Region,
    base: Value,
    offset: i32,
) -> Option<Result<Loc, StackSlot>> {
    let (root, add) = root_and_offset(func, base);
    let offset = add.wrapping_add(offset as i64);
    Some(Ok(match region {
        Region::Stack(ss) => match func.dfg.value_inst(root).map(|i| func.dfg.inst(i)) {
            Some(InstructionData::StackAddr { slot, offset: o }) if *slot == ss => Loc {
                space: Space::Stack(ss),
                root: None,
                offset: offset.wrapping_add(*o as i64),
            },
            _ => return Some(Err(ss)),
        },
        Region::Packet => Loc {
            space: Space::Packet,
            root: Some(root),
            offset,
        },
        Region::Ctx => Loc {
            space: Space::Ctx,
            root: Some(root),
            offset,
        },
        _ => return None,
    }))
}

/// Stack slots whose address is used other than as the base of an access to that slot.
fn escaping_slots(func: &Function) -> BTreeSet<StackSlot> {
    let mut addr_slot: BTreeMap<Value, StackSlot> = BTreeMap::new();
    for inst in func.insts() {
        if let InstructionData::StackAddr { slot, .. } = *func.dfg.inst(inst) {
            if let Some(v) = func.dfg.inst_result(inst) {
                addr_slot.insert(v, slot);
            }
        }
    }
    let mut escaped = BTreeSet::new();
    for inst in func.insts() {
        let data = func.dfg.inst(inst);
        let base_ok = match data {
            InstructionData::Load { region, base, .. }
            | InstructionData::Store { region, base, .. }
            | InstructionData::Atomic { region, base, .. }
            | InstructionData::CmpXchg { region, base, .. } => Some((*region, *base)),
            _ => None,
        };
        let mut skip_base = base_ok.and_then(|(r, b)| match (r, addr_slot.get(&b)) {
            (Region::Stack(ss), Some(s)) if ss == *s => Some(b),
            _ => None,
        });
        data.for_each_arg(|a| {
            if skip_base == Some(a) {
                // One use as the base; the same value as the stored value still escapes.
                skip_base = None;
                return;
            }
            if let Some(s) = addr_slot.get(&a) {
                escaped.insert(*s);
            }
        });
    }
    escaped
}

/// Helpers that write through none of their pointer arguments and leave the packet alone.
const NON_WRITING_HELPERS: &[u32] = &[1, 2, 3, 5, 7, 8];

/// Runs the pass over one function.
pub fn eliminate_redundant_memory(func: &mut Function) -> MemRewrites {
    let mut r = MemRewrites::default();
    let escaped = escaping_slots(func);
    let cfg = ControlFlowGraph::compute(func);
    let dom = DominatorTree::compute(func, &cfg);
    let mut out: SecondaryMap<Block, Option<Memory>> = SecondaryMap::new();
    let rpo = dom.reverse_postorder().to_vec();
    for block in rpo {
        let preds = cfg.predecessors(block);
        let mut mem = match preds {
            [(p, _)] if *p != block => out[*p].clone().unwrap_or_default(),
            _ => Memory::default(),
        };
        let insts: Vec<Inst> = func.layout.block_insts(block).collect();
        for inst in insts {
            step(func, inst, &mut mem, &escaped, &mut r);
        }
        out[block] = Some(mem);
    }
    r.dead_stores += remove_dead_stores(func, &escaped);
    r
}

fn step(
    func: &mut Function,
    inst: Inst,
    mem: &mut Memory,
    escaped: &BTreeSet<StackSlot>,
    r: &mut MemRewrites,
) {
    let data = func.dfg.inst(inst).clone();
    let private = |loc: &Loc| matches!(loc.space, Space::Stack(s) if !escaped.contains(&s));
    match data {
        InstructionData::Load {
            region,
            size,
            signed,
            base,
            offset,
        } => {
            let Some(Ok(loc)) = location(func, region, base, offset) else {
                return;
            };
            let Some(result) = func.dfg.inst_result(inst) else {
                return;
            };
            let hit = mem
                .known
                .iter()
                .rev()
                .find(|k| k.loc == loc && k.size == size)
                .copied();
            match hit {
                Some(Known {
                    value,
                    loaded: Some(s),
                    ..
                }) if s == signed => {
                    func.dfg.replace_uses(result, value);
                    func.remove_inst(inst);
                    r.reused_loads += 1;
                }
                Some(Known {
                    value,
                    loaded: None,
                    ..
                }) if !signed => {
                    let forwarded = truncated(func, inst, value, size);
                    func.dfg.replace_uses(result, forwarded);
                    func.remove_inst(inst);
                    r.forwarded += 1;
                }
                _ => mem.known.push(Known {
                    loc,
                    size,
                    value: result,
                    loaded: Some(signed),
                }),
            }
        }
        InstructionData::Store {
            region,
            size,
            base,
            offset,
            value,
        } => {
            forget_for_write(func, mem, region, base, offset, size, escaped);
            if let Some(Ok(loc)) = location(func, region, base, offset) {
                mem.known.push(Known {
                    loc,
                    size,
                    value,
                    loaded: None,
                });
            }
        }
        InstructionData::Atomic {
            region,
            size,
            base,
            offset,
            ..
        }
        | InstructionData::CmpXchg {
            region,
            size,
            base,
            offset,
            ..
        } => forget_for_write(func, mem, region, base, offset, size, escaped),
        InstructionData::CallHelper { helper, .. } => {
            let moves_packet = may_change_packet(&data);
            let writes = !NON_WRITING_HELPERS.contains(&helper);
            mem.forget(|loc, _| match loc.space {
                Space::Ctx => moves_packet,
                Space::Packet => moves_packet || writes,
                Space::Stack(_) => writes && !private(loc),
            });
        }
        InstructionData::Call { .. } => mem.forget(|loc, _| !private(loc)),
        _ => {
            debug_assert!(!data.opcode().has_side_effects() || data.opcode() == Opcode::TailCall);
        }
    }
}

/// Forgets what a write of `size` bytes at `base + offset` in `region` may overwrite.
fn forget_for_write(
    func: &Function,
    mem: &mut Memory,
    region: Region,
    base: Value,
    offset: i32,
    size: MemSize,
    escaped: &BTreeSet<StackSlot>,
) {
    match location(func, region, base, offset) {
        Some(Ok(loc)) => mem.forget(|k, ks| overlaps(k, ks, &loc, size)),
        Some(Err(slot)) => mem.forget(|k, _| k.space == Space::Stack(slot)),
        // Map values and global data overlap none of the tracked memories; an unknown pointer
        // may point anywhere but into a stack slot whose address never escaped.
        None => match region {
            Region::MapValue(_) | Region::Global(_) => {}
            _ => mem.forget(|k, _| !matches!(k.space, Space::Stack(s) if !escaped.contains(&s))),
        },
    }
}

/// The value a load of `size` bytes gives after a store of `value`: its low bytes,
/// zero-extended. New instructions go right before `at`.
fn truncated(func: &mut Function, at: Inst, value: Value, size: MemSize) -> Value {
    let loc = func.srclocs[at];
    let mut b = FunctionBuilder::new(func);
    b.goto_before(at);
    b.set_srcloc(loc);
    match size {
        MemSize::U64 => value,
        MemSize::U32 => b.unary(UnaryOp::Mov, Width::W32, value),
        MemSize::U16 | MemSize::U8 => {
            let mask = b.iconst(ir::semantics::truncate(u64::MAX, size.bits()) as i64);
            b.binary(BinaryOp::And, Width::W64, value, mask)
        }
    }
}

/// Removes stores to private stack slots that nothing can read: slots never loaded, and
/// stores overwritten later in the same block before any read of their bytes.
fn remove_dead_stores(func: &mut Function, escaped: &BTreeSet<StackSlot>) -> usize {
    // Slots read by a load or an atomic somewhere, or touched at an unknown place.
    let mut read: BTreeSet<StackSlot> = BTreeSet::new();
    for inst in func.insts() {
        let data = func.dfg.inst(inst);
        if let Some((Region::Stack(ss), _)) = data.memory_access() {
            if data.opcode() != Opcode::Store {
                read.insert(ss);
            }
        }
    }
    let mut dead: Vec<Inst> = Vec::new();
    let blocks: Vec<Block> = func.layout.blocks().collect();
    for block in blocks {
        // Stores not yet known to be overwritten, newest last.
        let mut pending: Vec<(Inst, Loc, MemSize)> = Vec::new();
        for inst in func.layout.block_insts(block) {
            let data = func.dfg.inst(inst);
            let Some((Region::Stack(ss), size)) = data.memory_access() else {
                continue;
            };
            if escaped.contains(&ss) {
                continue;
            }
            let (base, offset) = match *data {
                InstructionData::Load { base, offset, .. }
                | InstructionData::Store { base, offset, .. }
                | InstructionData::Atomic { base, offset, .. }
                | InstructionData::CmpXchg { base, offset, .. } => (base, offset),
                _ => continue,
            };
            let loc = match location(func, Region::Stack(ss), base, offset) {
                Some(Ok(loc)) => loc,
                _ => {
                    // An access at an unknown place of the slot may read any pending store.
                    pending.retain(|(_, l, _)| l.space != Space::Stack(ss));
                    continue;
                }
            };
            if data.opcode() == Opcode::Store {
                if !read.contains(&ss) {
                    dead.push(inst);
                    continue;
                }
                // Earlier pending stores entirely covered by this one are dead.
                pending.retain(|(i, l, s)| {
                    let covered = l.space == loc.space
                        && l.offset >= loc.offset
                        && l.offset + s.bytes() as i64 <= loc.offset + size.bytes() as i64;
                    if covered {
                        dead.push(*i);
                    }
                    !covered
                });
                pending.push((inst, loc, size));
            } else {
                pending.retain(|(_, l, s)| !overlaps(l, *s, &loc, size));
            }
        }
    }
    for &inst in &dead {
        func.remove_inst(inst);
    }
    dead.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_pass;

    #[test]
    fn repeated_packet_and_ctx_loads_are_reused() {
        check_pass(
            RedundantMemory,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = load.ctx.u32 v0+0
                 v2 = load.packet.u16 v1+12
                 v3 = iconst 2
                 v4 = add.w64 v1, v3
                 v5 = load.packet.u16 v4+10
                 v6 = load.ctx.u32 v0+0
                 v7 = add.w64 v5, v6
                 return v7
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v1 = load.ctx.u32 v0+0
                 v2 = load.packet.u16 v1+12
                 v3 = iconst 2
                 v4 = add.w64 v1, v3
                 v7 = add.w64 v2, v1
                 return v7
             }",
        );
    }

    #[test]
    fn stores_forward_truncated_and_dead_stores_go() {
        check_pass(
            RedundantMemory,
            "function %f(i64) {
                 ss0 = stack 8
             block0(v0: i64):
                 v1 = stack_addr ss0+0
                 store.stack(ss0).u64 v1+0, v0
                 store.stack(ss0).u32 v1+0, v0
                 v2 = load.stack(ss0).u32 v1+0
                 v3 = load.stack(ss0).u16 v1+4
                 v4 = add.w64 v2, v3
                 return v4
             }",
            "function %f(i64) {
                 ss0 = stack 8
             block0(v0: i64):
                 v1 = stack_addr ss0+0
                 store.stack(ss0).u64 v1+0, v0
                 store.stack(ss0).u32 v1+0, v0
                 v5 = mov.w32 v0
                 v3 = load.stack(ss0).u16 v1+4
                 v4 = add.w64 v5, v3
                 return v4
             }",
        );
    }

    #[test]
    fn overwritten_private_stores_and_never_read_slots_are_removed() {
        check_pass(
            RedundantMemory,
            "function %f(i64) {
                 ss0 = stack 8
                 ss1 = stack 8
             block0(v0: i64):
                 v1 = stack_addr ss0+0
                 v2 = stack_addr ss1+0
                 store.stack(ss1).u64 v2+0, v0
                 store.stack(ss0).u32 v1+0, v0
                 store.stack(ss0).u64 v1+0, v0
                 v3 = call_helper 5()
                 v4 = load.stack(ss0).u8 v1+1
                 return v4
             }",
            "function %f(i64) {
                 ss0 = stack 8
                 ss1 = stack 8
             block0(v0: i64):
                 v1 = stack_addr ss0+0
                 v2 = stack_addr ss1+0
                 store.stack(ss0).u64 v1+0, v0
                 v3 = call_helper 5()
                 v4 = load.stack(ss0).u8 v1+1
                 return v4
             }",
        );
    }

    #[test]
    fn helpers_and_aliasing_stores_keep_loads() {
        // The escaped slot may be written by the helper; the packet may be moved by
        // xdp_adjust_head (44); a store through another root may alias the packet load.
        let text = "function %f(i64, i64) {
                 ss0 = stack 8
             block0(v0: i64, v9: i64):
                 v1 = stack_addr ss0+0
                 v2 = load.stack(ss0).u32 v1+0
                 v3 = call_helper 69(v0, v1)
                 v4 = load.stack(ss0).u32 v1+0
                 v5 = load.ctx.u32 v0+0
                 v6 = load.packet.u8 v5+0
                 store.packet.u8 v9+0, v4
                 v7 = load.packet.u8 v5+0
                 v8 = call_helper 44(v0, v2)
                 v10 = load.ctx.u32 v0+0
                 v11 = add.w64 v6, v7
                 v12 = add.w64 v11, v10
                 return v12
             }";
        check_pass(RedundantMemory, text, text);
    }

    #[test]
    fn knowledge_flows_to_single_successors_only() {
        let text = "function %f(i64) {
             block0(v0: i64):
                 v1 = load.ctx.u32 v0+0
                 brif eq.w64 v1, v1, block1, block2
             block1:
                 jump block2
             block2:
                 v2 = load.ctx.u32 v0+0
                 return v2
             }";
        check_pass(RedundantMemory, text, text);
        check_pass(
            RedundantMemory,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = load.ctx.u32 v0+0
                 jump block1
             block1:
                 v2 = load.ctx.u32 v0+0
                 return v2
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v1 = load.ctx.u32 v0+0
                 jump block1
             block1:
                 return v1
             }",
        );
    }
}
