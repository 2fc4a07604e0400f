//! Merging immediate stores to the stack into fewer, wider ones.
//!
//! Programs zero or fill stack buffers (map keys, event records) field by field, and the
//! selector stores each constant field with its own `*(size *)(r10 + off) = imm`. Two zero
//! `u32` fields at `r10 - 8` and `r10 - 4` are one zero `u64` store; two `u16` fields are one
//! `u32` store whatever their values. This pass rewrites each group of such stores that no
//! other path can enter into the fewest aligned stores of the same bytes.
//!
//! A group is a run of immediate stores relative to `r10`, possibly interleaved with
//! instructions that touch no memory and do not jump (register arithmetic and moves, which a
//! store can move across); any load, other store, call, jump or jump target ends it. Within the
//! group later stores win over earlier ones on the bytes they share, so a store overwritten
//! before anything can read it disappears as well. The bytes are then covered from the lowest
//! address with the widest store that is aligned (the kernel verifier insists on aligned stack
//! accesses) and whose bytes are all written by the group; a `u64` store must have a value its
//! sign-extended 32-bit immediate can express. The group is rewritten, at the place of its first
//! store, only when that takes fewer instructions.
//!
//! The verifier sees the same bytes initialized with the same values; an 8-byte aligned store
//! of a constant even lets it know the slot's value exactly.

use super::branches::MachInsn;
use super::peephole::jump_targets;
use frontend::insn::{Insn, Reg, Size};
use std::collections::{BTreeMap, HashSet};

/// Rewrites every group of stack stores that fewer stores can replace.
pub fn optimize(code: Vec<MachInsn>) -> Vec<MachInsn> {
    let targets = jump_targets(&code);
    let mut out: Vec<MachInsn> = Vec::with_capacity(code.len());
    let mut k = 0;
    while k < code.len() {
        if stack_store(&code[k]).is_none() {
            out.push(code[k].clone());
            k += 1;
            continue;
        }
        // The group: stores from k on, across instructions a store may move over.
        let mut stores: Vec<usize> = Vec::new();
        let mut end = k;
        while end < code.len() {
            let m = &code[end];
            if stack_store(m).is_some() {
                stores.push(end);
            } else if !movable_across(m, &targets) {
                break;
            }
            end += 1;
        }
        // Trailing non-stores are not part of the group.
        let last = stores.last().copied().unwrap_or(k);
        let merged = cover(stores.iter().filter_map(|&s| stack_store(&code[s])));
        match merged {
            Some(merged) if merged.len() < stores.len() => {
                out.extend(merged);
                let in_group: HashSet<usize> = stores.iter().copied().collect();
                out.extend(
                    (k..=last)
                        .filter(|p| !in_group.contains(p))
                        .map(|p| code[p].clone()),
                );
            }
            _ => out.extend(code[k..=last].iter().cloned()),
        }
        k = last + 1;
    }
    out
}

/// `(size, offset, immediate)` of an immediate store relative to `r10`.
fn stack_store(m: &MachInsn) -> Option<(Size, i16, i32)> {
    match m {
        MachInsn::Insn(Insn::StoreImm {
            size,
            dst: Reg::FP,
            off,
            imm,
        }) => Some((*size, *off, *imm)),
        _ => None,
    }
}

/// True for instructions a stack store can move across: they neither touch memory nor change
/// control flow, and a label is passed only when no jump names it.
fn movable_across(m: &MachInsn, targets: &HashSet<u32>) -> bool {
    match m {
        MachInsn::Label(l) => !targets.contains(l),
        MachInsn::LoadMap { .. } | MachInsn::LoadMapValue { .. } | MachInsn::LoadFunc { .. } => {
            true
        }
        MachInsn::Insn(Insn::Alu { .. } | Insn::Endian { .. } | Insn::Imm64 { .. }) => true,
        _ => false,
    }
}

/// The fewest aligned stores that write the bytes the given stores leave behind (in order, a
/// later store winning), or `None` when the stores write nothing.
fn cover(stores: impl Iterator<Item = (Size, i16, i32)>) -> Option<Vec<MachInsn>> {
    let mut bytes: BTreeMap<i32, u8> = BTreeMap::new();
    for (size, off, imm) in stores {
        let value = (imm as i64).to_le_bytes();
        for (b, byte) in value.iter().enumerate().take(size.bytes()) {
            bytes.insert(i32::from(off) + b as i32, *byte);
        }
    }
    let mut out = Vec::new();
    let mut at = *bytes.keys().next()?;
    let end = *bytes.keys().next_back()? + 1;
    while at < end {
        if !bytes.contains_key(&at) {
            at += 1;
            continue;
        }
        let (size, imm) = [Size::DW, Size::W, Size::H, Size::B]
            .into_iter()
            .find_map(|size| widest_fit(&bytes, at, size).map(|imm| (size, imm)))?;
        out.push(MachInsn::Insn(Insn::StoreImm {
            size,
            dst: Reg::FP,
            off: i16::try_from(at).ok()?,
            imm,
        }));
        at += size.bytes() as i32;
    }
    Some(out)
}

/// The immediate of a `size` store at `at` that writes exactly the known bytes there, when the
/// store is aligned, every byte it writes is known, and its immediate can express them.
fn widest_fit(bytes: &BTreeMap<i32, u8>, at: i32, size: Size) -> Option<i32> {
    let n = size.bytes() as i32;
    if at.rem_euclid(n) != 0 {
        return None;
    }
    let mut value = [0u8; 8];
    for b in 0..n {
        value[b as usize] = *bytes.get(&(at + b))?;
    }
    let value = u64::from_le_bytes(value);
    match size {
        // The immediate is sign-extended to 64 bits.
        Size::DW => i32::try_from(value as i64).ok(),
        // Only the low bytes of the immediate are stored.
        _ => Some(value as u32 as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::testing::{exit, insn_count, mov_imm, run, store_imm};
    use ir::semantics::Width;

    fn same_effect(a: &[MachInsn], b: &[MachInsn]) {
        assert_eq!(run(a, [0; 5]), run(b, [0; 5]), "{a:?}\n{b:?}");
    }

    #[test]
    fn two_zero_words_are_one_double_word() {
        let code = vec![store_imm(Size::W, -4, 0), store_imm(Size::W, -8, 0), exit()];
        let out = optimize(code.clone());
        assert_eq!(insn_count(&out), 2, "{out:?}");
        assert!(matches!(
            out[0],
            MachInsn::Insn(Insn::StoreImm {
                size: Size::DW,
                off: -8,
                imm: 0,
                ..
            })
        ));
        same_effect(&code, &out);
    }

    #[test]
    fn a_double_word_needs_a_sign_extendable_value() {
        // 1500000 in the upper word: no 32-bit immediate sign-extends to that.
        let code = vec![
            store_imm(Size::W, -4, 1_500_000),
            store_imm(Size::W, -8, 40),
            exit(),
        ];
        assert_eq!(insn_count(&optimize(code.clone())), 3);
        // -1 in both words is -1 sign-extended.
        let code = vec![
            store_imm(Size::W, -8, -1),
            store_imm(Size::W, -4, -1),
            exit(),
        ];
        let out = optimize(code.clone());
        assert_eq!(insn_count(&out), 2, "{out:?}");
        same_effect(&code, &out);
    }

    #[test]
    fn half_words_merge_across_register_moves_and_overwrites_go() {
        let code = vec![
            store_imm(Size::H, -6, 0x1234),
            mov_imm(Width::W64, 1, 7),
            store_imm(Size::H, -8, 0x5678),
            store_imm(Size::W, -4, 9),
            store_imm(Size::W, -4, 10),
            exit(),
        ];
        let out = optimize(code.clone());
        // One u32 for the half words, one u32 for the overwritten word, the move, exit; the
        // upper word (10) cannot join the lower one (0x12345678) in a sign-extended immediate.
        assert_eq!(insn_count(&out), 4, "{out:?}");
        same_effect(&code, &out);
    }

    #[test]
    fn misaligned_or_interrupted_stores_stay() {
        // A u32 at -6 would be misaligned.
        let code = vec![store_imm(Size::H, -6, 1), store_imm(Size::H, -4, 2), exit()];
        assert_eq!(insn_count(&optimize(code.clone())), 3);
        // A jump target between the stores: another path enters there.
        let code = vec![
            crate::bpf::testing::jcc(ir::semantics::JmpCond::Eq, 1, 0, 5),
            store_imm(Size::W, -4, 0),
            MachInsn::Label(5),
            store_imm(Size::W, -8, 0),
            exit(),
        ];
        let out = optimize(code.clone());
        assert_eq!(insn_count(&out), insn_count(&code));
        for r1 in [0, 1] {
            assert_eq!(run(&code, [r1, 0, 0, 0, 0]), run(&out, [r1, 0, 0, 0, 0]));
        }
    }
}
