//! Stack slot discovery: which pieces of a function's 512-byte frame become SSA values.
//!
//! clang keeps locals and spilled registers in the frame and addresses them as `r10 - N`. A
//! piece of the frame that is only ever accessed at one constant offset with one size, whose
//! address is never given away (to a helper, a subprogram, a store, or arithmetic the
//! provenance analysis cannot follow), holds nothing but the value last stored there: it is a
//! variable, and the lifter turns it into SSA values instead of memory traffic. Everything else
//! (keys handed to map helpers, arrays indexed by a variable, atomics) stays in memory, in one
//! stack slot per function that covers the frame down to the deepest byte used.

use super::cfg::Cfg;
use super::helpers::{helper_args, HelperArgs};
use super::provenance::{Env, FunctionProvenance, Prov, State};
use crate::insn::{CallTarget, Insn, Operand, Reg};
use std::collections::{BTreeMap, BTreeSet};

/// A promoted frame piece: `size` bytes at offset `offset` from r10.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameVar {
    pub offset: i64,
    pub size: u32,
}

/// What stays in memory and what becomes SSA values, for one function.
#[derive(Clone, Debug, Default)]
pub struct StackLayout {
    /// Promoted pieces, each with its variable number (counted from 0).
    pub promoted: BTreeMap<FrameVar, usize>,
    /// How many bytes below r10 the memory slot must cover (0 when the function keeps
    /// nothing in memory and never takes a frame address).
    pub frame_size: u32,
}

impl StackLayout {
    /// The variable of an access of `size` bytes at frame offset `offset`, if promoted.
    pub fn var(&self, offset: i64, size: u32) -> Option<usize> {
        self.promoted.get(&FrameVar { offset, size }).copied()
    }
}

/// The frame accesses and address escapes seen in a function.
#[derive(Default)]
struct Uses {
    /// Accesses with a known offset: (offset, size) -> promotable so far.
    accesses: BTreeMap<(i64, u32), bool>,
    /// Byte ranges `[lo, hi)` that something other than a plain access may touch.
    tainted: Vec<(i64, i64)>,
    /// A frame pointer with an unknown offset was used, so anything may alias anything.
    anything: bool,
    /// The deepest frame offset seen.
    deepest: i64,
}

impl Uses {
    fn access(&mut self, base: Prov, off: i16, size: usize, plain: bool) {
        match base {
            Prov::Stack(Some(c)) => {
                let at = c + off as i64;
                self.deepest = self.deepest.min(at);
                let e = self.accesses.entry((at, size as u32)).or_insert(true);
                *e &= plain;
            }
            Prov::Stack(None) => self.anything = true,
            _ => {}
        }
    }

    /// A frame address leaves the analysis' sight; a helper reaches only upwards from it.
    fn escape(&mut self, p: Prov, whole_frame: bool) {
        match p {
            Prov::Stack(Some(c)) => {
                self.deepest = self.deepest.min(c);
                if whole_frame {
                    self.tainted.push((i64::MIN, i64::MAX));
                } else {
                    self.tainted.push((c, 0));
                }
            }
            Prov::Stack(None) => self.anything = true,
            _ => {}
        }
    }
}

fn is_stack(p: Prov) -> bool {
    matches!(p, Prov::Stack(_))
}

fn record(uses: &mut Uses, slot: usize, insn: &Insn, st: &State, env: &Env) {
    match *insn {
        Insn::Load { size, src, off, .. } => uses.access(st.reg(src), off, size.bytes(), true),
        Insn::StoreImm { size, dst, off, .. } => uses.access(st.reg(dst), off, size.bytes(), true),
        Insn::StoreReg {
            size,
            dst,
            src,
            off,
        } => {
            uses.access(st.reg(dst), off, size.bytes(), true);
            uses.escape(st.reg(src), true);
        }
        Insn::Atomic {
            size,
            dst,
            src,
            off,
            ..
        } => {
            uses.access(st.reg(dst), off, size.bytes(), false);
            uses.escape(st.reg(src), true);
        }
        Insn::Alu { op, dst, src, .. } => {
            // Arithmetic that keeps a frame pointer a frame pointer is followed by the
            // provenance analysis; anything else (a 32-bit move, masking, subtracting two
            // pointers) loses track of where the address goes.
            use ir::semantics::AluOp;
            let reads_dst = !matches!(
                op,
                AluOp::Mov | AluOp::MovSx8 | AluOp::MovSx16 | AluOp::MovSx32
            );
            let reads_src = op != AluOp::Neg;
            let d = st.reg(dst);
            let s = match src {
                Operand::Reg(r) => st.reg(r),
                Operand::Imm(_) => Prov::Scalar(None),
            };
            if (reads_dst && is_stack(d)) || (reads_src && is_stack(s)) {
                let mut after = st.clone();
                super::provenance::step(&mut after, slot, insn, env);
                if !is_stack(after.reg(dst)) {
                    if reads_dst {
                        uses.escape(d, true);
                    }
                    if reads_src {
                        uses.escape(s, true);
                    }
                }
            }
        }
        Insn::Call(CallTarget::Helper(id)) => {
            let n = match helper_args(id) {
                HelperArgs::Fixed(n) => n as usize,
                _ => 5,
            };
            for r in 1..=n {
                uses.escape(st.reg(Reg(r as u8)), false);
            }
        }
        Insn::Call(_) => {
            for r in 1..=5 {
                uses.escape(st.reg(Reg(r)), true);
            }
        }
        _ => {}
    }
}

/// Decides the stack layout of one function.
pub fn layout(cfg: &Cfg, insns: &[Insn], env: &Env, prov: &FunctionProvenance) -> StackLayout {
    let mut uses = Uses::default();
    let mut reads_fp = false;
    prov.replay(cfg, insns, env, |slot, insn, st| {
        record(&mut uses, slot, insn, st, env);
        if let Insn::Alu {
            src: Operand::Reg(Reg::FP),
            ..
        } = insn
        {
            reads_fp = true;
        }
    });
    let mut promoted = BTreeMap::new();
    if !uses.anything {
        // A piece is promoted when it is accessed only plainly, always with the same size, and
        // no other access or escape touches its bytes.
        let keys: Vec<(i64, u32)> = uses.accesses.keys().copied().collect();
        let overlaps = |a: (i64, u32), lo: i64, hi: i64| a.0 < hi && lo < a.0 + a.1 as i64;
        let mut chosen = BTreeSet::new();
        for (i, &k) in keys.iter().enumerate() {
            if !uses.accesses[&k] {
                continue;
            }
            let clash_access = keys
                .iter()
                .enumerate()
                .any(|(j, &o)| j != i && overlaps(k, o.0, o.0 + o.1 as i64));
            let clash_taint = uses.tainted.iter().any(|&(lo, hi)| overlaps(k, lo, hi));
            if !clash_access && !clash_taint && k.0 < 0 {
                chosen.insert(k);
            }
        }
        for (n, (offset, size)) in chosen.into_iter().enumerate() {
            promoted.insert(FrameVar { offset, size }, n);
        }
    }
    let needs_memory = uses.anything
        || !uses.tainted.is_empty()
        || uses
            .accesses
            .keys()
            .any(|&(o, s)| !promoted.contains_key(&FrameVar { offset: o, size: s }))
        || reads_fp;
    let frame_size = if !needs_memory {
        0
    } else if uses.anything {
        ir::function::MAX_STACK_SLOT
    } else {
        let depth = (-uses.deepest).clamp(8, ir::function::MAX_STACK_SLOT as i64);
        ((depth + 7) / 8 * 8) as u32
    };
    StackLayout {
        promoted,
        frame_size,
    }
}
