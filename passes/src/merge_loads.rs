//! Merging adjacent narrow loads that are combined into one wider value into one wide load.
//!
//! Clang reads a 16-bit field of a packed header (`eth->h_proto` is at offset 12) as two byte
//! loads joined with a shift and an `or`: `lo = load.u8 p+12; hi = load.u8 p+13;
//! v = or (lsh hi, 8), lo`, four BPF instructions where one `load.u16 p+12` computes the same
//! little-endian value. This pass finds `or` trees whose leaves are unsigned loads of adjacent
//! bytes from one base value, shifted to their byte position, and replaces the root with one
//! load of 2, 4 or 8 bytes when every load and inner operation has no other use.
//!
//! Why it is sound: BPF is little-endian, so the wide load's value is exactly the bytes the
//! tree assembles; the wide load reads the same bytes as the narrow ones, so it faults exactly
//! when one of them would, and it takes the place of the root only when no store, atomic or
//! call lies between the first narrow load and the root, so it reads what they read.
//!
//! Why the kernel verifier still accepts it: only packet, map-value and global-data accesses
//! are merged. The verifier checks their alignment only under `BPF_F_STRICT_ALIGNMENT` or on
//! architectures without efficient unaligned access, and a packet access is checked against
//! the proven range with the same base and end offset as the last byte load. Stack accesses
//! (always strictly aligned for the verifier's slot tracking) and context accesses (which the
//! kernel rewrites field by field) are left alone.

use crate::pass::{Pass, PassContext, PassError};
use ir::instructions::{BinaryOp, InstructionData, Opcode};
use ir::semantics::Width;
use ir::{Block, Function, Inst, MemSize, Module, Region, Value};
use std::collections::HashMap;

/// The `merge-loads` pass.
pub struct MergeLoads;

impl Pass for MergeLoads {
    fn name(&self) -> &'static str {
        "merge-loads"
    }

    fn description(&self) -> &'static str {
        "replace or-trees of shifted adjacent byte loads by one wider little-endian load"
    }

    fn run(&mut self, module: &mut Module, ctx: &mut PassContext) -> Result<bool, PassError> {
        let mut changed = false;
        for func in module.functions.values_mut() {
            let n = merge_loads(func);
            ctx.stats.add(self.name(), "merged", n as u64);
            changed |= n > 0;
        }
        Ok(changed)
    }
}

/// A value that is the bytes `[offset, offset + bytes)` above `base`, read little-endian and
/// shifted left by `shift` bits, built by the instructions `insts` (loads and inner ops).
#[derive(Clone, Debug)]
struct Piece {
    region: Region,
    base: Value,
    offset: i64,
    bytes: u32,
    shift: u32,
    insts: Vec<Inst>,
}

fn mergeable_region(region: Region) -> bool {
    matches!(
        region,
        Region::Packet | Region::MapValue(_) | Region::Global(_)
    )
}

fn mem_bytes(size: MemSize) -> u32 {
    match size {
        MemSize::U8 => 1,
        MemSize::U16 => 2,
        MemSize::U32 => 4,
        MemSize::U64 => 8,
    }
}

/// How many times each value is used as an operand or branch argument.
fn use_counts(func: &Function) -> HashMap<Value, usize> {
    let mut uses = HashMap::new();
    for inst in func.insts() {
        func.dfg
            .inst(inst)
            .for_each_arg(|v| *uses.entry(v).or_insert(0) += 1);
    }
    uses
}

/// The piece `v` is, if it is one built only in `block` from single-use values.
fn piece(func: &Function, uses: &HashMap<Value, usize>, block: Block, v: Value) -> Option<Piece> {
    let inst = func.dfg.value_inst(v)?;
    if func.layout.inst_block(inst) != Some(block) {
        return None;
    }
    match *func.dfg.inst(inst) {
        InstructionData::Load {
            region,
            size,
            signed: false,
            base,
            offset,
        } if mergeable_region(region) => Some(Piece {
            region,
            base,
            offset: offset as i64,
            bytes: mem_bytes(size),
            shift: 0,
            insts: vec![inst],
        }),
        InstructionData::Binary {
            op: BinaryOp::Lsh,
            width,
            args: [x, k],
        } => {
            let k = func.dfg.value_const(k)?;
            let mut p = single_use_piece(func, uses, block, x)?;
            let k = u32::try_from(k).ok().filter(|k| k % 8 == 0)?;
            p.shift += k;
            // The shifted bytes must stay inside the operation's width, where no bit is lost.
            if p.shift + 8 * p.bytes > width.bits() {
                return None;
            }
            p.insts.push(inst);
            Some(p)
        }
        InstructionData::Binary {
            op: BinaryOp::Or,
            width,
            args: [x, y],
        } => {
            let a = single_use_piece(func, uses, block, x)?;
            let b = single_use_piece(func, uses, block, y)?;
            let (lo, hi) = if a.offset <= b.offset { (a, b) } else { (b, a) };
            let adjacent = lo.region == hi.region
                && lo.base == hi.base
                && hi.offset == lo.offset + lo.bytes as i64
                && hi.shift == lo.shift + 8 * lo.bytes;
            let bytes = lo.bytes + hi.bytes;
            if !adjacent || lo.shift + 8 * bytes > width.bits() {
                return None;
            }
            let mut insts = lo.insts;
            insts.extend(hi.insts);
            insts.push(inst);
            Some(Piece {
                region: lo.region,
                base: lo.base,
                offset: lo.offset,
                bytes,
                shift: lo.shift,
                insts,
            })
        }
        _ => None,
    }
}

fn single_use_piece(
    func: &Function,
    uses: &HashMap<Value, usize>,
    block: Block,
    v: Value,
) -> Option<Piece> {
    if uses.get(&v).copied().unwrap_or(0) != 1 {
        return None;
    }
    piece(func, uses, block, v)
}

/// True when an instruction between the first load and the root may change memory.
fn writes_memory(func: &Function, inst: Inst) -> bool {
    !matches!(
        func.dfg.inst(inst).opcode(),
        Opcode::Load
            | Opcode::Iconst
            | Opcode::Binary
            | Opcode::Unary
            | Opcode::Endian
            | Opcode::StackAddr
            | Opcode::MapRef
            | Opcode::MapValueAddr
            | Opcode::FuncAddr
    )
}

/// Merges every tree it can in `func`; returns how many roots became a single load.
pub fn merge_loads(func: &mut Function) -> usize {
    let mut merged = 0;
    let blocks: Vec<Block> = func.layout.blocks().collect();
    for block in blocks {
        let insts: Vec<Inst> = func.layout.block_insts(block).collect();
        let position: HashMap<Inst, usize> =
            insts.iter().enumerate().map(|(k, &i)| (i, k)).collect();
        let mut uses = use_counts(func);
        for &root in &insts {
            if func.layout.inst_block(root) != Some(block) {
                continue;
            }
            let InstructionData::Binary {
                op: BinaryOp::Or,
                width,
                ..
            } = *func.dfg.inst(root)
            else {
                continue;
            };
            let Some(v) = func.dfg.inst_result(root) else {
                continue;
            };
            let Some(p) = piece(func, &uses, block, v) else {
                continue;
            };
            let size = match p.bytes {
                2 => MemSize::U16,
                4 => MemSize::U32,
                8 if width == Width::W64 => MemSize::U64,
                _ => continue,
            };
            let Ok(offset) = i32::try_from(p.offset) else {
                continue;
            };
            if p.shift != 0 {
                continue;
            }
            let first = p
                .insts
                .iter()
                .filter_map(|i| position.get(i))
                .min()
                .copied()
                .unwrap_or(position[&root]);
            if insts[first..position[&root]]
                .iter()
                .any(|&i| writes_memory(func, i))
            {
                continue;
            }
            func.dfg.replace_inst(
                root,
                InstructionData::Load {
                    region: p.region,
                    size,
                    signed: false,
                    base: p.base,
                    offset,
                },
            );
            for &i in &p.insts {
                if i != root {
                    func.remove_inst(i);
                }
            }
            merged += 1;
            uses = use_counts(func);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_pass;

    #[test]
    fn two_bytes_become_one_halfword() {
        check_pass(
            MergeLoads,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = load.packet.u8 v0+12
                 v2 = load.packet.u8 v0+13
                 v3 = iconst 8
                 v4 = lsh.w64 v2, v3
                 v5 = or.w64 v4, v1
                 return v5
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v3 = iconst 8
                 v5 = load.packet.u16 v0+12
                 return v5
             }",
        );
    }

    #[test]
    fn four_bytes_in_any_tree_shape_become_one_word() {
        check_pass(
            MergeLoads,
            "function %f(i64) {
             block0(v0: i64):
                 v1 = load.map_value(?).u8 v0+4
                 v2 = load.map_value(?).u8 v0+5
                 v3 = load.map_value(?).u16 v0+6
                 v4 = iconst 8
                 v5 = iconst 16
                 v6 = lsh.w32 v2, v4
                 v7 = lsh.w32 v3, v5
                 v8 = or.w32 v6, v7
                 v9 = or.w32 v1, v8
                 return v9
             }",
            "function %f(i64) {
             block0(v0: i64):
                 v4 = iconst 8
                 v5 = iconst 16
                 v9 = load.map_value(?).u32 v0+4
                 return v9
             }",
        );
    }

    #[test]
    fn stores_between_signed_loads_other_uses_and_the_stack_block_merging() {
        let text = "function %f(i64) {
             ss0 = stack 8
         block0(v0: i64):
             v1 = load.packet.u8 v0+12
             store.packet.u8 v0+13, v1
             v2 = load.packet.u8 v0+13
             v3 = iconst 8
             v4 = lsh.w64 v2, v3
             v5 = or.w64 v4, v1
             v6 = load.packet.u8 v0+2
             v7 = load.packet.u8 v0+3
             v8 = lsh.w64 v7, v3
             v9 = or.w64 v8, v6
             v10 = add.w64 v9, v6
             v11 = stack_addr ss0+0
             v12 = load.stack(ss0).u8 v11+0
             v13 = load.stack(ss0).u8 v11+1
             v14 = lsh.w64 v13, v3
             v15 = or.w64 v14, v12
             v16 = load.packet.u8 v0+4
             v17 = load.packet.u8 v0+6
             v18 = lsh.w64 v17, v3
             v19 = or.w64 v18, v16
             v20 = add.w64 v5, v10
             v21 = add.w64 v20, v15
             v22 = add.w64 v21, v19
             return v22
         }";
        // Byte 13 is stored between the loads; byte 2 has another use; the stack is strictly
        // aligned; bytes 4 and 6 are not adjacent.
        check_pass(MergeLoads, text, text);
    }

    #[test]
    fn merged_values_equal_the_assembled_bytes() {
        // The wide little-endian load gives what the shifts and ors give, for every byte pair
        // and width, computed with ir::semantics.
        use ir::semantics::{alu, AluOp};
        for lo in [0u64, 1, 0x7f, 0x80, 0xff] {
            for hi in [0u64, 1, 0x7f, 0x80, 0xff] {
                let wide = u16::from_le_bytes([lo as u8, hi as u8]) as u64;
                for width in [Width::W32, Width::W64] {
                    let assembled = alu(AluOp::Or, width, alu(AluOp::Lsh, width, hi, 8), lo);
                    assert_eq!(assembled, wide);
                }
            }
        }
    }
}
