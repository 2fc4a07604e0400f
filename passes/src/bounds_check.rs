//! Packet bounds-check elimination, and the table of packet accesses proven in bounds.
//!
//! A `brif` that compares `data + K` with `data_end` is folded when range analysis already
//! knows `data_end - data` well enough to decide it, because a dominating check proved it.
//! Only constant offsets from `data` are folded: the kernel verifier tracks the proven range
//! per packet pointer from exactly such checks (`find_good_pkt_pointers`), so a removed check
//! was already redundant for the kernel too and re-emitted BPF stays acceptable. Checks of
//! pointers with variable offsets are left alone, since the kernel may need them.
//!
//! After folding, every packet load, store and atomic is classified: in bounds when its whole
//! byte range `[off + offset, off + offset + size)` lies inside the proven length on every
//! path reaching it. The classification goes to
//! [`crate::pass::AnalysisResults::packet_accesses`], where the native and hardware backends
//! look up which accesses need no run-time check. [`classify_packet_accesses`] computes the same
//! table for any function, for a backend that wants it for IR it holds.

use crate::pass::{Pass, PassContext, PassError};
use crate::range::{self, Fact, RangeAnalysis};
use ir::instructions::{InstructionData, Region};
use ir::semantics::JmpCond;
use ir::{Function, Inst, Module};
use std::collections::BTreeMap;

/// The `bounds-check` pass.
pub struct BoundsCheckElimination;

impl Pass for BoundsCheckElimination {
    fn name(&self) -> &'static str {
        "bounds-check"
    }

    fn description(&self) -> &'static str {
        "fold packet bounds checks a dominating check already decides; record which packet accesses are proven in bounds"
    }

    fn run(&mut self, module: &mut Module, ctx: &mut PassContext) -> Result<bool, PassError> {
        let mut changed = false;
        let mut table = BTreeMap::new();
        let refs: Vec<_> = module.functions.keys().collect();
        for fref in refs {
            let xdp = range::is_xdp_entry(module, fref);
            let func = &mut module.functions[fref];
            let folded = fold_redundant_checks(func, xdp);
            changed |= folded > 0;
            ctx.stats.add(self.name(), "folded_checks", folded as u64);
            let accesses = classify_packet_accesses(func, xdp);
            let proven = accesses.values().filter(|p| **p).count();
            ctx.stats.add(self.name(), "proven_accesses", proven as u64);
            ctx.stats.add(
                self.name(),
                "unproven_accesses",
                (accesses.len() - proven) as u64,
            );
            table.insert(fref, accesses);
        }
        ctx.analyses.packet_accesses = Some(table);
        Ok(changed)
    }

    fn preserves_analyses(&self) -> bool {
        true
    }
}

/// The direction a packet check always takes given what range analysis knows before it:
/// `Some(true)` when it always branches to its first destination.
pub fn decided_check(ra: &RangeAnalysis, func: &Function, inst: Inst) -> Option<bool> {
    let InstructionData::Brif {
        cond,
        width: ir::semantics::Width::W64,
        args: [a, b],
        ..
    } = *func.dfg.inst(inst)
    else {
        return None;
    };
    let state = ra.state_before(inst)?;
    let (ptr, end, cond) = match (ra.fact(a), ra.fact(b)) {
        (Fact::Packet { .. }, Fact::PacketEnd) => (a, b, cond),
        (Fact::PacketEnd, Fact::Packet { .. }) => (b, a, range::swap(cond)?),
        _ => return None,
    };
    let Fact::Packet { base, lo, hi } = ra.fact(ptr) else {
        return None;
    };
    if lo != hi || !state.valid.contains(&base) || !state.valid.contains(&end) {
        return None;
    }
    let len = state.proven_len(base);
    // With `data_end - data >= len`: `data + K <= data_end` is certain when K <= len, and
    // `data + K < data_end` when K < len.
    let (le, lt) = (lo <= len, lo < len);
    match cond {
        JmpCond::Gt if le => Some(false),
        JmpCond::Le if le => Some(true),
        JmpCond::Ge | JmpCond::Eq if lt => Some(false),
        JmpCond::Lt | JmpCond::Ne if lt => Some(true),
        _ => None,
    }
}

/// Folds every decided packet check of `func`. Returns how many were folded.
pub fn fold_redundant_checks(func: &mut Function, xdp_entry: bool) -> usize {
    if !xdp_entry {
        return 0;
    }
    let ra = RangeAnalysis::compute(func, xdp_entry);
    let mut decided = Vec::new();
    for inst in func.insts() {
        if let Some(taken) = decided_check(&ra, func, inst) {
            decided.push((inst, taken));
        }
    }
    for &(inst, taken) in &decided {
        let dest = func.dfg.inst(inst).branch_destinations()[if taken { 0 } else { 1 }].clone();
        func.dfg.replace_inst(inst, InstructionData::Jump { dest });
    }
    decided.len()
}

/// Every packet access of `func` in the layout, and whether it is proven in bounds.
pub fn classify_packet_accesses(func: &Function, xdp_entry: bool) -> BTreeMap<Inst, bool> {
    let ra = RangeAnalysis::compute(func, xdp_entry);
    let mut out = BTreeMap::new();
    for inst in func.insts() {
        let data = func.dfg.inst(inst);
        let Some((Region::Packet, size)) = data.memory_access() else {
            continue;
        };
        let (base, offset) = match *data {
            InstructionData::Load { base, offset, .. }
            | InstructionData::Store { base, offset, .. }
            | InstructionData::Atomic { base, offset, .. }
            | InstructionData::CmpXchg { base, offset, .. } => (base, offset as i64),
            _ => continue,
        };
        let proven = match (ra.fact(base), ra.state_before(inst)) {
            (Fact::Packet { base: d, lo, hi }, Some(state)) if state.valid.contains(&d) => {
                let first = lo as i64 + offset;
                let end = hi as i64 + offset + size.bytes() as i64;
                first >= 0 && end <= state.proven_len(d) as i64
            }
            _ => false,
        };
        out.insert(inst, proven);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_pass, parse_verified};

    const HEADER: &str = "program fn0 \"xdp\"\n";

    #[test]
    fn a_weaker_check_after_a_stronger_one_is_folded() {
        let input = format!(
            "{HEADER}
            function fn0 %f(i64) {{
            block0(v0: i64):
                v1 = load.ctx.u32 v0+0
                v2 = load.ctx.u32 v0+4
                v3 = iconst 34
                v4 = add.w64 v1, v3
                brif gt.w64 v4, v2, block3, block1
            block1:
                v5 = load.packet.u16 v1+12
                v6 = iconst 14
                v7 = add.w64 v1, v6
                brif lt.w64 v2, v7, block3, block2
            block2:
                v8 = load.packet.u8 v1+33
                return v8
            block3:
                v9 = iconst 1
                return v9
            }}"
        );
        let expected = input.replace("brif lt.w64 v2, v7, block3, block2", "jump block2");
        let ctx = check_pass(BoundsCheckElimination, &input, &expected);
        assert_eq!(ctx.stats.get("bounds-check.folded_checks"), 1);
        assert_eq!(ctx.stats.get("bounds-check.proven_accesses"), 2);
    }

    #[test]
    fn a_stronger_check_after_a_weaker_one_stays() {
        let input = format!(
            "{HEADER}
            function fn0 %f(i64) {{
            block0(v0: i64):
                v1 = load.ctx.u32 v0+0
                v2 = load.ctx.u32 v0+4
                v3 = iconst 14
                v4 = add.w64 v1, v3
                brif gt.w64 v4, v2, block3, block1
            block1:
                v5 = iconst 15
                v6 = add.w64 v1, v5
                brif gt.w64 v6, v2, block3, block2
            block2:
                v8 = load.packet.u8 v1+14
                v10 = load.packet.u8 v1+15
                return v8
            block3:
                v9 = iconst 1
                return v9
            }}"
        );
        let ctx = check_pass(BoundsCheckElimination, &input, &input);
        // The byte at 14 is proven by the second check, the byte at 15 is not.
        assert_eq!(ctx.stats.get("bounds-check.proven_accesses"), 1);
        assert_eq!(ctx.stats.get("bounds-check.unproven_accesses"), 1);
    }

    #[test]
    fn packet_changing_helpers_forget_proofs() {
        let input = format!(
            "{HEADER}
            function fn0 %f(i64) {{
            block0(v0: i64):
                v1 = load.ctx.u32 v0+0
                v2 = load.ctx.u32 v0+4
                v3 = iconst 14
                v4 = add.w64 v1, v3
                brif gt.w64 v4, v2, block3, block1
            block1:
                v5 = iconst -4
                v6 = call_helper 65(v0, v5)
                brif gt.w64 v4, v2, block3, block2
            block2:
                v8 = load.packet.u8 v1+0
                return v8
            block3:
                v9 = iconst 1
                return v9
            }}"
        );
        let ctx = check_pass(BoundsCheckElimination, &input, &input);
        assert_eq!(ctx.stats.get("bounds-check.unproven_accesses"), 1);
    }

    #[test]
    fn variable_offsets_are_proven_through_their_range() {
        // v7 = data + (ihl & 15) * 4, checked against data_end with 20 more bytes.
        let input = format!(
            "{HEADER}
            function fn0 %f(i64) {{
            block0(v0: i64):
                v1 = load.ctx.u32 v0+0
                v2 = load.ctx.u32 v0+4
                v3 = iconst 1
                v4 = add.w64 v1, v3
                brif gt.w64 v4, v2, block3, block1
            block1:
                v5 = load.packet.u8 v1+0
                v10 = iconst 15
                v11 = and.w64 v5, v10
                v12 = iconst 2
                v13 = lsh.w64 v11, v12
                v7 = add.w64 v1, v13
                v14 = iconst 80
                v15 = add.w64 v1, v14
                brif gt.w64 v15, v2, block3, block2
            block2:
                v8 = load.packet.u32 v7+16
                return v8
            block3:
                v9 = iconst 1
                return v9
            }}"
        );
        let module = parse_verified(&input);
        let func = &module.functions[ir::FuncRef::from_u32(0)];
        let table = classify_packet_accesses(func, true);
        // 60 + 16 + 4 = 80 bytes at most, and 80 are proven.
        assert_eq!(table.values().filter(|p| **p).count(), 2, "{table:?}");
    }

    #[test]
    fn non_xdp_functions_are_left_alone() {
        let input = "function %f(i64) {
            block0(v0: i64):
                v1 = load.ctx.u32 v0+0
                v2 = load.ctx.u32 v0+4
                brif gt.w64 v1, v2, block1, block1
            block1:
                v3 = load.packet.u8 v1+0
                return v3
            }";
        let ctx = check_pass(BoundsCheckElimination, input, input);
        assert_eq!(ctx.stats.get("bounds-check.unproven_accesses"), 1);
    }
}
