//! A final clean-up over the selected BPF code of one function, before labels become offsets.
//!
//! The register allocator decides per SSA value and the selector per IR instruction, so the
//! code they produce copies registers that need no copy: a helper's result moved out of `r0`
//! only to be tested and dereferenced, a value computed in one register and moved into the one
//! its block parameter or `r0` wants, a copy of a pointer used as a base once. This pass
//! removes such copies with three rewrites, driven by register liveness over the machine code:
//!
//! 1. **Dead definitions.** An instruction without side effects whose destination is dead
//!    afterwards goes (this includes copies made dead by the rewrites below).
//! 2. **Forward copy propagation.** After `rD = rS` (a 64-bit copy), explicit reads of `rD`
//!    read `rS` instead, along the straight-line code that follows (through conditional jumps,
//!    not past a label another edge may reach) until either register is written or `rD` is
//!    read implicitly (a call's arguments, `exit`'s `r0`). The copy then often dies.
//! 3. **Backward coalescing.** For `rY = rX` where `rX` dies, the straight-line chain that
//!    computed `rX` (from an instruction that writes it without reading it) computes into `rY`
//!    directly when `rY` is untouched along the chain; the copy goes.
//!
//! Why the kernel verifier still accepts the result: a 64-bit copy gives both registers the
//! same verifier state and identity, so reading either is the same to it (a NULL or bounds
//! check on one applies to both); no instruction changes kind, width or order, and memory
//! accesses keep their base value and offset. Every rewrite is checked against liveness, so
//! values are unchanged on every path; the corpus tests run the result in the kernel.

use super::branches::{Label, MachInsn};
use frontend::insn::{AtomicOp, Insn, Operand, Reg};
use ir::semantics::{AluOp, Width};
use std::collections::HashMap;

/// A set of registers `r0`-`r10`, one bit each.
pub(super) type RegSet = u16;

pub(super) const fn bit(r: Reg) -> RegSet {
    1 << r.0
}

/// `r1`-`r5`: the argument registers a call reads and clobbers with `r0`.
const ARGS: RegSet = 0b11_1110;
/// `r0`-`r5`: what a call writes.
const CLOBBERED: RegSet = 0b11_1111;

/// How an instruction touches registers: explicit operands can be renamed, implicit ones
/// (call arguments, `exit`'s `r0`, `cmpxchg`'s `r0`) cannot.
#[derive(Clone, Copy, Default)]
pub(super) struct Effects {
    pub(super) uses: RegSet,
    pub(super) defs: RegSet,
    pub(super) implicit: RegSet,
    /// The instruction writes its destination without reading it.
    pub(super) pure_def: bool,
    /// The instruction only computes its destination (no memory write, no call, no jump).
    pub(super) removable: bool,
}

pub(super) fn effects(m: &MachInsn) -> Effects {
    let mut e = Effects::default();
    match m {
        MachInsn::Label(_) | MachInsn::Ja(_) => {}
        MachInsn::Jcc { dst, src, .. } => {
            e.uses = bit(*dst) | operand_bit(src);
        }
        MachInsn::Call(_) => call_effects(&mut e),
        MachInsn::LoadMap { dst, .. }
        | MachInsn::LoadMapValue { dst, .. }
        | MachInsn::LoadFunc { dst, .. } => {
            e.defs = bit(*dst);
            e.pure_def = true;
            e.removable = true;
        }
        MachInsn::Insn(i) => match *i {
            Insn::Alu {
                op: AluOp::Mov | AluOp::MovSx8 | AluOp::MovSx16 | AluOp::MovSx32,
                dst,
                src,
                ..
            } => {
                e.uses = operand_bit(&src);
                e.defs = bit(dst);
                e.pure_def = true;
                e.removable = true;
            }
            Insn::Alu { dst, src, .. } => {
                e.uses = bit(dst) | operand_bit(&src);
                e.defs = bit(dst);
                e.removable = true;
            }
            Insn::Endian { dst, .. } => {
                e.uses = bit(dst);
                e.defs = bit(dst);
                e.removable = true;
            }
            Insn::Imm64 { dst, .. } => {
                e.defs = bit(dst);
                e.pure_def = true;
                e.removable = true;
            }
            Insn::Load { dst, src, .. } => {
                e.uses = bit(src);
                e.defs = bit(dst);
                e.pure_def = dst != src;
                e.removable = true;
            }
            Insn::StoreImm { dst, .. } => e.uses = bit(dst),
            Insn::StoreReg { dst, src, .. } => e.uses = bit(dst) | bit(src),
            Insn::Atomic {
                op: AtomicOp::CmpXchg,
                dst,
                src,
                ..
            } => {
                e.uses = bit(dst) | bit(src);
                e.implicit = bit(Reg::R0);
                e.defs = bit(Reg::R0);
            }
            Insn::Atomic {
                fetch, dst, src, ..
            } => {
                e.uses = bit(dst) | bit(src);
                if fetch {
                    e.defs = bit(src);
                }
            }
            Insn::Call(_) => call_effects(&mut e),
            Insn::Exit => {
                e.uses = bit(Reg::R0);
                e.implicit = bit(Reg::R0);
            }
            // Legacy packet loads read r6 and clobber like calls; raw jumps do not occur before
            // branch resolution. Both are treated as touching every register.
            Insn::LoadAbs { .. } | Insn::LoadInd { .. } | Insn::Ja { .. } | Insn::Jmp { .. } => {
                e.uses = 0x7ff;
                e.implicit = 0x7ff;
                e.defs = CLOBBERED;
            }
            Insn::Imm64Tail => {}
        },
    }
    e
}

fn call_effects(e: &mut Effects) {
    e.uses = ARGS;
    e.implicit = ARGS | bit(Reg::R0);
    e.defs = CLOBBERED;
}

fn operand_bit(o: &Operand) -> RegSet {
    match o {
        Operand::Reg(r) => bit(*r),
        Operand::Imm(_) => 0,
    }
}

/// True for instructions after which control does not fall through.
pub(super) fn ends_flow(m: &MachInsn) -> bool {
    matches!(m, MachInsn::Ja(_) | MachInsn::Insn(Insn::Exit))
}

/// Registers live after each instruction, by backward dataflow over the code's own CFG.
pub(super) fn live_after(code: &[MachInsn]) -> Vec<RegSet> {
    let n = code.len();
    let mut label_at: HashMap<Label, usize> = HashMap::new();
    for (k, m) in code.iter().enumerate() {
        if let MachInsn::Label(l) = m {
            label_at.insert(*l, k);
        }
    }
    let succs: Vec<Vec<usize>> = code
        .iter()
        .enumerate()
        .map(|(k, m)| match m {
            MachInsn::Insn(Insn::Exit) => vec![],
            MachInsn::Ja(l) => label_at.get(l).copied().into_iter().collect(),
            MachInsn::Jcc { target, .. } => {
                let mut s = vec![k + 1];
                s.extend(label_at.get(target).copied());
                s
            }
            _ => vec![k + 1],
        })
        .map(|s| s.into_iter().filter(|&t| t < n).collect())
        .collect();
    let fx: Vec<Effects> = code.iter().map(effects).collect();
    let mut live_in = vec![0 as RegSet; n];
    let mut out = vec![0 as RegSet; n];
    let mut changed = true;
    while changed {
        changed = false;
        for k in (0..n).rev() {
            let after = succs[k].iter().fold(0, |acc, &t| acc | live_in[t]);
            let before = (after & !fx[k].defs) | fx[k].uses;
            if after != out[k] || before != live_in[k] {
                out[k] = after;
                live_in[k] = before;
                changed = true;
            }
        }
    }
    out
}

/// The source register of a 64-bit register copy `dst = src`.
fn as_copy(m: &MachInsn) -> Option<(Reg, Reg)> {
    match *m {
        MachInsn::Insn(Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst,
            src: Operand::Reg(src),
        }) => Some((dst, src)),
        _ => None,
    }
}

/// Rewrites the explicit operands of `m` that read `from` into reads of `to`.
fn rename_uses(m: &mut MachInsn, from: Reg, to: Reg) {
    let sub = |r: &mut Reg| {
        if *r == from {
            *r = to;
        }
    };
    let sub_op = |o: &mut Operand| {
        if *o == Operand::Reg(from) {
            *o = Operand::Reg(to);
        }
    };
    match m {
        MachInsn::Jcc { dst, src, .. } => {
            sub(dst);
            sub_op(src);
        }
        MachInsn::Insn(i) => match i {
            Insn::Alu { src, .. } => sub_op(src),
            Insn::Load { src, .. } => sub(src),
            Insn::StoreImm { dst, .. } => sub(dst),
            Insn::StoreReg { dst, src, .. } => {
                sub(dst);
                sub(src);
            }
            Insn::Atomic {
                dst, src, fetch, ..
            } => {
                sub(dst);
                if !*fetch {
                    sub(src);
                }
            }
            _ => {}
        },
        _ => {}
    }
}

/// True when every read of `r` by `m` is an operand [`rename_uses`] rewrites.
fn uses_renamable(m: &MachInsn, r: Reg) -> bool {
    let e = effects(m);
    if e.implicit & bit(r) != 0 {
        return false;
    }
    match m {
        // The destination of a two-address operation is read and written in one field.
        MachInsn::Insn(Insn::Alu { op, dst, .. }) if *dst == r => {
            matches!(
                op,
                AluOp::Mov | AluOp::MovSx8 | AluOp::MovSx16 | AluOp::MovSx32
            )
        }
        MachInsn::Insn(Insn::Endian { dst, .. }) => *dst != r,
        MachInsn::Insn(Insn::Atomic {
            fetch: true, src, ..
        }) => *src != r,
        _ => true,
    }
}

/// Rewrites every explicit occurrence of `from` in `m`, read or written, into `to`.
fn rename_all(m: &mut MachInsn, from: Reg, to: Reg) {
    let sub = |r: &mut Reg| {
        if *r == from {
            *r = to;
        }
    };
    match m {
        MachInsn::Jcc { dst, src, .. } => {
            sub(dst);
            if *src == Operand::Reg(from) {
                *src = Operand::Reg(to);
            }
        }
        MachInsn::LoadMap { dst, .. }
        | MachInsn::LoadMapValue { dst, .. }
        | MachInsn::LoadFunc { dst, .. } => sub(dst),
        MachInsn::Insn(i) => match i {
            Insn::Alu { dst, src, .. } => {
                sub(dst);
                if *src == Operand::Reg(from) {
                    *src = Operand::Reg(to);
                }
            }
            Insn::Endian { dst, .. } | Insn::Imm64 { dst, .. } | Insn::StoreImm { dst, .. } => {
                sub(dst)
            }
            Insn::Load { dst, src, .. }
            | Insn::StoreReg { dst, src, .. }
            | Insn::Atomic { dst, src, .. } => {
                sub(dst);
                sub(src);
            }
            _ => {}
        },
        _ => {}
    }
}

/// True when `r` occurs in `m` only as explicit operands [`rename_all`] rewrites.
fn all_renamable(m: &MachInsn, r: Reg) -> bool {
    effects(m).implicit & bit(r) == 0
}

/// Runs the rewrites until none applies. Returns the new code; never changes what it computes.
pub fn optimize(code: Vec<MachInsn>) -> Vec<MachInsn> {
    // A raw jump would make the liveness above wrong; the selector never emits one.
    if code
        .iter()
        .any(|m| matches!(m, MachInsn::Insn(Insn::Ja { .. } | Insn::Jmp { .. })))
    {
        return code;
    }
    // Jumps to the next instruction would make their labels look like join points.
    let mut code = super::branches::drop_jumps_to_next(super::branches::drop_unreachable(code));
    for _ in 0..64 {
        let (next, changed) = round(code);
        code = next;
        if !changed {
            break;
        }
    }
    duplicate_exit_tails(code)
}

/// A `ja` to code that only it reaches and that ends in `exit` is replaced by that code, which
/// saves the jump; the original copy becomes unreachable and branch resolution drops it.
fn duplicate_exit_tails(mut code: Vec<MachInsn>) -> Vec<MachInsn> {
    let mut refs: HashMap<Label, usize> = HashMap::new();
    let mut label_at: HashMap<Label, usize> = HashMap::new();
    for (k, m) in code.iter().enumerate() {
        match m {
            MachInsn::Ja(l) | MachInsn::Jcc { target: l, .. } => *refs.entry(*l).or_default() += 1,
            MachInsn::Label(l) => {
                label_at.insert(*l, k);
            }
            _ => {}
        }
    }
    let mut k = 0;
    while k < code.len() {
        let MachInsn::Ja(l) = code[k] else {
            k += 1;
            continue;
        };
        let tail = label_at.get(&l).and_then(|&t| {
            if refs.get(&l) != Some(&1) {
                return None;
            }
            let before = code[..t]
                .iter()
                .rev()
                .find(|p| !matches!(p, MachInsn::Label(_)));
            let run_unreferenced = code[..t]
                .iter()
                .rev()
                .take_while(|p| matches!(p, MachInsn::Label(_)))
                .all(|p| matches!(p, MachInsn::Label(x) if !refs.contains_key(x)));
            if before.is_none_or(|p| !ends_flow(p)) || !run_unreferenced {
                return None;
            }
            let mut body = Vec::new();
            for m in code.iter().skip(t + 1).take(16) {
                match m {
                    MachInsn::Insn(Insn::Exit) => {
                        body.push(m.clone());
                        return Some(body);
                    }
                    MachInsn::Insn(_)
                    | MachInsn::LoadMap { .. }
                    | MachInsn::LoadMapValue { .. }
                    | MachInsn::LoadFunc { .. } => body.push(m.clone()),
                    _ => return None,
                }
            }
            None
        });
        match tail {
            Some(body) if !(label_at[&l] > k && label_at[&l] <= k + 1) => {
                // The original copy is now unreachable; no other jump names its label.
                refs.remove(&l);
                let len = body.len();
                code.splice(k..=k, body);
                for at in label_at.values_mut() {
                    if *at > k {
                        *at += len - 1;
                    }
                }
                k += len;
            }
            _ => k += 1,
        }
    }
    code
}

/// One round: every rewrite whose liveness facts are still those computed at its start.
fn round(mut code: Vec<MachInsn>) -> (Vec<MachInsn>, bool) {
    let live = live_after(&code);
    let targets = jump_targets(&code);
    let is_join = |m: &MachInsn| matches!(m, MachInsn::Label(l) if targets.contains(l));
    let sole_entry = sole_entry_labels(&code);
    let n = code.len();
    // Instructions whose registers changed in this round; liveness there is stale.
    let mut touched = vec![false; n];
    let mut delete = vec![false; n];
    let mut changed = false;

    for k in 0..n {
        if touched[k] {
            continue;
        }
        let e = effects(&code[k]);
        // Dead definitions, including self-copies.
        if e.removable && e.defs != 0 && (e.defs & live[k] == 0 || is_self_copy(&code[k])) {
            delete[k] = true;
            touched[k] = true;
            changed = true;
            continue;
        }
        let Some((rd, rs)) = as_copy(&code[k]) else {
            continue;
        };
        if rd == Reg::FP {
            continue;
        }
        // Backward coalescing: `rd = rs` with `rs` dead afterwards.
        if rs != Reg::FP && live[k] & bit(rs) == 0 {
            if let Some(start) = coalescible_chain(&code, k, rs, rd, &is_join) {
                if (start..=k).all(|j| !touched[j]) {
                    if let Some(first) = with_destination(&code[start], rd) {
                        code[start] = first;
                    }
                    for m in &mut code[start + 1..k] {
                        rename_all(m, rs, rd);
                    }
                    delete[k] = true;
                    touched[start..=k].iter_mut().for_each(|t| *t = true);
                    changed = true;
                    continue;
                }
            }
        }
        // Forward copy propagation, along the fall-through and into the targets of
        // conditional jumps that nothing else reaches.
        let mut starts = vec![k + 1];
        let mut visited: Vec<usize> = Vec::new();
        let mut scanned: Vec<usize> = Vec::new();
        let mut renamed = false;
        while let Some(first) = starts.pop() {
            if visited.contains(&first) {
                continue;
            }
            visited.push(first);
            let mut j = first;
            while j < n && !touched[j] {
                let m = &code[j];
                if is_join(m) {
                    break;
                }
                scanned.push(j);
                let ej = effects(m);
                if ej.uses & bit(rd) != 0 {
                    if !uses_renamable(m, rd) {
                        break;
                    }
                    // Only the frame pointer's memory operands may read r10 instead.
                    if rs == Reg::FP && !reads_only_as_base(m, rd) {
                        break;
                    }
                    let mut copy = m.clone();
                    rename_uses(&mut copy, rd, rs);
                    if effects(&copy).uses & bit(rd) != 0 {
                        break;
                    }
                    code[j] = copy;
                    renamed = true;
                }
                if ej.defs & (bit(rd) | bit(rs)) != 0 || ends_flow(&code[j]) {
                    break;
                }
                if let MachInsn::Jcc { target, .. } = code[j] {
                    if let Some(&t) = sole_entry.get(&target) {
                        starts.push(t + 1);
                    }
                }
                j += 1;
            }
        }
        if renamed {
            changed = true;
            touched[k] = true;
            for j in scanned {
                touched[j] = true;
            }
        }
    }
    let out = code
        .into_iter()
        .zip(delete)
        .filter(|(_, d)| !d)
        .map(|(m, _)| m)
        .collect();
    (out, changed)
}

fn is_self_copy(m: &MachInsn) -> bool {
    as_copy(m).is_some_and(|(d, s)| d == s)
}

/// True when `m` reads `r` only as the base register of a memory access.
fn reads_only_as_base(m: &MachInsn, r: Reg) -> bool {
    match *m {
        MachInsn::Insn(Insn::Load { src, .. }) => src == r,
        MachInsn::Insn(Insn::StoreImm { dst, .. }) => dst == r,
        MachInsn::Insn(Insn::StoreReg { dst, src, .. }) => dst == r && src != r,
        _ => false,
    }
}

/// Labels that exactly one conditional jump names and that straight-line code does not fall
/// into, with their positions: code there runs only right after that jump is taken.
pub(super) fn sole_entry_labels(code: &[MachInsn]) -> HashMap<Label, usize> {
    let mut refs: HashMap<Label, usize> = HashMap::new();
    for m in code {
        if let MachInsn::Ja(l) | MachInsn::Jcc { target: l, .. } = m {
            *refs.entry(*l).or_default() += 1;
        }
    }
    let mut out = HashMap::new();
    for (k, m) in code.iter().enumerate() {
        let MachInsn::Label(l) = m else { continue };
        // Walk back over labels to the instruction that would fall through into this one.
        let before = code[..k]
            .iter()
            .rev()
            .find(|p| !matches!(p, MachInsn::Label(_)));
        let falls_in = before.is_none_or(|p| !ends_flow(p));
        let label_run_ok = code[..k]
            .iter()
            .rev()
            .take_while(|p| matches!(p, MachInsn::Label(_)))
            .all(|p| matches!(p, MachInsn::Label(x) if !refs.contains_key(x)));
        if refs.get(l) == Some(&1) && !falls_in && label_run_ok {
            out.insert(*l, k);
        }
    }
    // Only labels reached by a conditional jump qualify.
    let by_jcc: std::collections::HashSet<Label> = code
        .iter()
        .filter_map(|m| match m {
            MachInsn::Jcc { target, .. } => Some(*target),
            _ => None,
        })
        .collect();
    out.retain(|l, _| by_jcc.contains(l));
    out
}

/// Every label some jump names; other labels only mark where a block began and are passed
/// through like any straight-line code.
pub(super) fn jump_targets(code: &[MachInsn]) -> std::collections::HashSet<Label> {
    code.iter()
        .filter_map(|m| match m {
            MachInsn::Ja(l) | MachInsn::Jcc { target: l, .. } => Some(*l),
            _ => None,
        })
        .collect()
}

/// `m`, an instruction that writes its destination without reading the old value (a move, a
/// load, a 64-bit immediate), writing `rd` instead; its reads stay as they are.
fn with_destination(m: &MachInsn, rd: Reg) -> Option<MachInsn> {
    let mut m = m.clone();
    match &mut m {
        MachInsn::LoadMap { dst, .. }
        | MachInsn::LoadMapValue { dst, .. }
        | MachInsn::LoadFunc { dst, .. } => *dst = rd,
        MachInsn::Insn(Insn::Alu {
            op: AluOp::Mov | AluOp::MovSx8 | AluOp::MovSx16 | AluOp::MovSx32,
            dst,
            ..
        })
        | MachInsn::Insn(Insn::Load { dst, .. })
        | MachInsn::Insn(Insn::Imm64 { dst, .. }) => *dst = rd,
        _ => return None,
    }
    Some(m)
}

/// For `code[copy]` = `rd = rs` with `rs` dead after it: the first instruction of the
/// straight-line chain computing `rs` that can compute into `rd` instead, if there is one.
/// The chain starts at an instruction writing `rs` without reading its old value (it may
/// read `rs` or `rd` as a source, which happens before anything is written); after it, `rs`
/// occurs only as explicit operands and `rd` does not occur at all.
fn coalescible_chain(
    code: &[MachInsn],
    copy: usize,
    rs: Reg,
    rd: Reg,
    is_join: &dyn Fn(&MachInsn) -> bool,
) -> Option<usize> {
    let mut j = copy;
    while j > 0 {
        j -= 1;
        let m = &code[j];
        if is_join(m) || matches!(m, MachInsn::Jcc { .. }) || ends_flow(m) {
            return None;
        }
        let e = effects(m);
        if e.defs == bit(rs) && e.implicit == 0 && with_destination(m, rd).is_some() {
            return Some(j);
        }
        if (e.uses | e.defs) & bit(rs) != 0 && !all_renamable(m, rs) {
            return None;
        }
        if (e.uses | e.defs | e.implicit) & bit(rd) != 0 {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontend::insn::CallTarget;

    fn mov(d: u8, s: u8) -> MachInsn {
        MachInsn::Insn(Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: Reg(d),
            src: Operand::Reg(Reg(s)),
        })
    }

    fn alu(op: AluOp, d: u8, src: Operand) -> MachInsn {
        MachInsn::Insn(Insn::Alu {
            width: Width::W64,
            op,
            dst: Reg(d),
            src,
        })
    }

    fn exit() -> MachInsn {
        MachInsn::Insn(Insn::Exit)
    }

    fn show(code: &[MachInsn]) -> String {
        code.iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_helper_result_is_tested_and_used_in_r0() {
        let code = vec![
            MachInsn::Insn(Insn::Call(CallTarget::Helper(1))),
            mov(1, 0),
            MachInsn::Jcc {
                width: Width::W64,
                cond: ir::semantics::JmpCond::Eq,
                dst: Reg(1),
                src: Operand::Imm(0),
                target: 7,
            },
            MachInsn::Insn(Insn::Load {
                size: frontend::insn::Size::DW,
                signed: false,
                dst: Reg(2),
                src: Reg(1),
                off: 0,
            }),
            alu(AluOp::Mov, 0, Operand::Imm(1)),
            exit(),
            MachInsn::Label(7),
            alu(AluOp::Mov, 0, Operand::Imm(2)),
            exit(),
        ];
        let out = optimize(code);
        let text = show(&out);
        assert!(!text.contains("Reg(1)"), "r1 is no longer needed:\n{text}");
        // The load was dead (r2 is never read) and goes too.
        assert_eq!(out.len(), 7, "{text}");
    }

    #[test]
    fn a_chain_computes_into_the_copy_destination() {
        // r3 = r1; r3 += 4; r4 = r3; r0 = r4; exit  ->  r0 = r1; r0 += 4; exit
        let code = vec![
            mov(3, 1),
            alu(AluOp::Add, 3, Operand::Imm(4)),
            mov(4, 3),
            mov(0, 4),
            exit(),
        ];
        let out = optimize(code);
        assert_eq!(
            show(&out),
            show(&[mov(0, 1), alu(AluOp::Add, 0, Operand::Imm(4)), exit()])
        );
    }

    #[test]
    fn a_copy_whose_source_is_still_needed_stays() {
        // r2 = r1; r2 += 1; r0 = r2; r0 += r1; exit: r1 is read after the copy.
        let code = vec![
            mov(2, 1),
            alu(AluOp::Add, 2, Operand::Imm(1)),
            mov(0, 2),
            alu(AluOp::Add, 0, Operand::Reg(Reg(1))),
            exit(),
        ];
        let out = optimize(code.clone());
        // r2's chain computes straight into r0; r1 stays untouched.
        assert_eq!(
            show(&out),
            show(&[
                mov(0, 1),
                alu(AluOp::Add, 0, Operand::Imm(1)),
                alu(AluOp::Add, 0, Operand::Reg(Reg(1))),
                exit()
            ])
        );
    }
}
