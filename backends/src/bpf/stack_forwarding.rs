//! Stack loads that read back what straight-line code just stored, and spills nobody reloads.
//!
//! Register allocation spills a value and reloads it where registers run short, and the
//! choices it makes for one stretch of code can leave a reload right after its spill with the
//! register untouched in between (the pressure that caused the spill was elsewhere); programs
//! also store a field to the stack and read it back. This pass rewrites, on the selected code:
//!
//! - **Forwarding.** `*(size *)(r10 + off) = rX; ...; rY = *(size *)(r10 + off)`, with no
//!   jump target, call, store that may overlap the slot, or write of `rX` in between, reads
//!   `rX`: the load goes when `rY` is `rX` and the size is 8, and becomes `rY = rX` (8 bytes)
//!   or `wY = wX` (4 bytes, which zero-extends as the load does) otherwise; narrower loads
//!   stay, since they would need a mask. A load after an immediate store becomes a move of the
//!   immediate as the load would read it. Stores through other registers, atomic operations
//!   and calls end the search, since they may write the stack through a pointer, except for
//!   a spill slot, which no pointer reaches.
//! - **Dead spills.** A store to a spill slot of the allocation that no load in the function
//!   reads goes. Spill slots belong to the allocator alone (no pointer into the stack that the
//!   program or a helper holds reaches them), so reading them takes a load from `r10`.
//!
//! The kernel verifier accepts the result: a 64-bit copy carries the verifier's full state of
//! its source (a pointer stays a pointer), a 32-bit spill only ever holds a scalar (the
//! verifier refuses narrower spills of pointers), and an immediate is what the load read.

use super::branches::MachInsn;
use super::peephole::{effects, jump_targets};
use frontend::insn::{Insn, Operand, Reg, Size};
use ir::semantics::{AluOp, Width};
use std::collections::HashSet;

/// How far back a load looks for the store it reads, in instructions.
const WINDOW: usize = 32;

/// Forwards stores to the loads that read them back, then drops spills no load reads.
/// `spill_slots` are the offsets from `r10` of the allocation's 8-byte spill slots.
pub fn optimize(code: Vec<MachInsn>, spill_slots: &HashSet<i16>) -> Vec<MachInsn> {
    let targets = jump_targets(&code);
    let mut out: Vec<MachInsn> = Vec::with_capacity(code.len());
    for m in code {
        let replaced = match &m {
            MachInsn::Insn(Insn::Load {
                size,
                signed: false,
                dst,
                src: Reg::FP,
                off,
            }) => forwarded(&out, &targets, *size, *dst, *off, spill_slots.contains(off)),
            _ => None,
        };
        match replaced {
            Some(Forward::Drop) => {}
            Some(Forward::Move(mov)) => out.push(mov),
            None => out.push(m),
        }
    }
    drop_dead_spills(out, spill_slots)
}

/// What a forwarded load becomes.
enum Forward {
    /// The register already holds the value.
    Drop,
    Move(MachInsn),
}

/// The bytes `[off, off + size)` relative to `r10`.
fn bytes(off: i16, size: Size) -> (i32, i32) {
    (i32::from(off), i32::from(off) + size.bytes() as i32)
}

fn overlaps(a: (i32, i32), b: (i32, i32)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// The replacement of `dst = *(size *)(r10 + off)` after the code `before`, when a store of
/// straight-line code before it determines the value.
fn forwarded(
    before: &[MachInsn],
    targets: &HashSet<u32>,
    size: Size,
    dst: Reg,
    off: i16,
    spill_slot: bool,
) -> Option<Forward> {
    let read = bytes(off, size);
    let mut written: u16 = 0;
    for m in before.iter().rev().take(WINDOW) {
        match m {
            MachInsn::Label(l) if targets.contains(l) => return None,
            MachInsn::Label(_) => continue,
            MachInsn::Insn(Insn::StoreReg {
                size: s,
                dst: Reg::FP,
                src,
                off: o,
            }) => {
                if !overlaps(bytes(*o, *s), read) {
                    continue;
                }
                if *o != off || *s != size || written & (1 << src.0) != 0 {
                    return None;
                }
                return match size {
                    Size::DW if *src == dst => Some(Forward::Drop),
                    Size::DW => Some(Forward::Move(mov(Width::W64, dst, Operand::Reg(*src)))),
                    Size::W => Some(Forward::Move(mov(Width::W32, dst, Operand::Reg(*src)))),
                    Size::H | Size::B => None,
                };
            }
            MachInsn::Insn(Insn::StoreImm {
                size: s,
                dst: Reg::FP,
                off: o,
                imm,
            }) => {
                if !overlaps(bytes(*o, *s), read) {
                    continue;
                }
                if *o != off || *s != size {
                    return None;
                }
                // What the load reads: the immediate sign-extended to 64 bits, or its low bytes.
                let value = match size {
                    Size::DW => i64::from(*imm),
                    Size::W => i64::from(*imm as u32),
                    Size::H => i64::from(*imm as u16),
                    Size::B => i64::from(*imm as u8),
                };
                // A 32-bit move zero-extends; a 64-bit one sign-extends.
                let width = if size == Size::W {
                    Width::W32
                } else {
                    Width::W64
                };
                return Some(Forward::Move(mov(
                    width,
                    dst,
                    Operand::Imm(i32::try_from(value).unwrap_or(*imm)),
                )));
            }
            MachInsn::Insn(Insn::Load { .. })
            | MachInsn::Insn(Insn::Alu { .. })
            | MachInsn::Insn(Insn::Endian { .. })
            | MachInsn::Insn(Insn::Imm64 { .. })
            | MachInsn::LoadMap { .. }
            | MachInsn::LoadMapValue { .. }
            | MachInsn::LoadFunc { .. }
            | MachInsn::Jcc { .. } => written |= effects(m).defs,
            // No pointer reaches a spill slot, so only registers matter across stores through
            // other registers, atomics and calls.
            MachInsn::Insn(
                Insn::StoreReg { .. } | Insn::StoreImm { .. } | Insn::Atomic { .. } | Insn::Call(_),
            )
            | MachInsn::Call(_)
                if spill_slot =>
            {
                written |= effects(m).defs
            }
            // Calls, stores through other registers, atomics, jumps and exits end the search.
            _ => return None,
        }
    }
    None
}

fn mov(width: Width, dst: Reg, src: Operand) -> MachInsn {
    MachInsn::Insn(Insn::Alu {
        width,
        op: AluOp::Mov,
        dst,
        src,
    })
}

/// Drops stores to spill slots whose bytes no load from `r10` reads.
fn drop_dead_spills(code: Vec<MachInsn>, spill_slots: &HashSet<i16>) -> Vec<MachInsn> {
    let reads: Vec<(i32, i32)> = code
        .iter()
        .filter_map(|m| match m {
            MachInsn::Insn(Insn::Load {
                size,
                src: Reg::FP,
                off,
                ..
            }) => Some(bytes(*off, *size)),
            _ => None,
        })
        .collect();
    code.into_iter()
        .filter(|m| match m {
            MachInsn::Insn(
                Insn::StoreReg {
                    size,
                    dst: Reg::FP,
                    off,
                    ..
                }
                | Insn::StoreImm {
                    size,
                    dst: Reg::FP,
                    off,
                    ..
                },
            ) if spill_slots.contains(off) => {
                let written = bytes(*off, *size);
                reads.iter().any(|r| overlaps(*r, written))
            }
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::testing::{
        exit, exit_with, insn_count, jcc, load, mov_imm, run, store_imm, store_reg,
    };
    use ir::semantics::JmpCond;

    fn same_result(a: &[MachInsn], b: &[MachInsn]) {
        for args in [[0, 0, 0, 0, 0], [5, u64::MAX, 1 << 40, 7, 9]] {
            let (x, y) = (run(a, args), run(b, args));
            assert_eq!(x.map(|f| f.regs), y.map(|f| f.regs), "{a:?}\n{b:?}");
        }
    }

    #[test]
    fn a_reload_right_after_its_spill_and_the_spill_go() {
        let mut code = vec![
            store_reg(Size::DW, -40, 2),
            store_imm(Size::B, -50, 4),
            load(Size::DW, 2, -40),
        ];
        code.extend(exit_with(2));
        let spills = HashSet::from([-40]);
        let out = optimize(code.clone(), &spills);
        // The store of 4 (not a spill slot), r0 = r2, exit.
        assert_eq!(insn_count(&out), 3, "{out:?}");
        same_result(&code, &out);
    }

    #[test]
    fn a_reload_into_another_register_is_a_move_and_a_word_zero_extends() {
        let mut code = vec![
            store_reg(Size::W, -8, 1),
            mov_imm(Width::W64, 3, 1),
            load(Size::W, 4, -8),
            store_imm(Size::H, -16, -2),
            load(Size::H, 5, -16),
            MachInsn::Insn(Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst: Reg(4),
                src: Operand::Reg(Reg(5)),
            }),
        ];
        code.extend(exit_with(4));
        let out = optimize(code.clone(), &HashSet::new());
        assert_eq!(insn_count(&out), insn_count(&code));
        assert!(!out
            .iter()
            .any(|m| matches!(m, MachInsn::Insn(Insn::Load { .. }))));
        same_result(&code, &out);
    }

    #[test]
    fn jump_targets_overwritten_sources_and_calls_stop_forwarding() {
        let code = vec![
            store_reg(Size::DW, -8, 1),
            jcc(JmpCond::Eq, 2, 0, 3),
            mov_imm(Width::W64, 1, 9),
            MachInsn::Label(3),
            load(Size::DW, 2, -8),
            store_reg(Size::DW, -16, 1),
            mov_imm(Width::W64, 1, 1),
            load(Size::DW, 3, -16),
            store_reg(Size::DW, -24, 3),
            MachInsn::Insn(Insn::Call(frontend::insn::CallTarget::Helper(7))),
            load(Size::DW, 4, -24),
            exit(),
        ];
        let out = optimize(code.clone(), &HashSet::new());
        let loads = out
            .iter()
            .filter(|m| matches!(m, MachInsn::Insn(Insn::Load { .. })))
            .count();
        assert_eq!(loads, 3, "{out:?}");
    }

    #[test]
    fn a_spill_slot_is_forwarded_across_a_store_through_another_register() {
        // xdp_tx_iptunnel: a byte spilled around a constant store into the packet.
        let packet_store = MachInsn::Insn(Insn::StoreImm {
            size: Size::B,
            dst: Reg(1),
            off: 23,
            imm: 4,
        });
        let code = vec![
            store_reg(Size::DW, -40, 0),
            packet_store.clone(),
            load(Size::DW, 0, -40),
            exit(),
        ];
        let out = optimize(code.clone(), &HashSet::from([-40]));
        assert_eq!(out.len(), 2, "{out:?}");
        // The same through an ordinary stack slot stays: r1 might point at it.
        let out = optimize(code.clone(), &HashSet::new());
        assert_eq!(out.len(), code.len(), "{out:?}");
    }
}
