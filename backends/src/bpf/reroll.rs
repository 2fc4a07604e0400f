//! Rerolling: straight-line code that repeats one sequence several times in a row becomes a
//! counted loop around one copy.
//!
//! Benchmarks and tracing programs unroll loops in C (`#pragma unroll`, or sixty-four copies
//! of a map lookup written out for the kernels that had no loops), and clang keeps every copy.
//! Executing a sequence `k` times in a row is exactly what a loop around it does, as long as
//! the loop's counter is a register the sequence never touches: `rC = k; L: body; rC += -1;
//! if rC != 0 goto L` costs three instructions more than one copy of the body, so it pays from
//! `k * body > body + 3` on.
//!
//! The counter is one of `r6`-`r9` that no instruction of the function reads or writes (those
//! survive calls), so it is dead before and after each loop and the body cannot see it; the
//! loops this pass makes follow one another, so they share it. Bodies
//! are runs of straight-line instructions without labels, jumps, exits or bpf-to-bpf calls.
//! The kernel verifier accepts bounded loops (Linux 5.3 and later): it follows every
//! iteration, whose states differ in the counter, so a loop of `k` iterations costs it what
//! the unrolled code did. The loop trades run time (two instructions per iteration) for size;
//! this is the size the re-emitted program is measured by.

use super::branches::{fresh_label, MachInsn};
use super::peephole::effects;
use frontend::insn::{Insn, Operand, Reg};
use ir::semantics::{AluOp, JmpCond, Width};

/// The longest body looked for, in instructions.
const MAX_BODY: usize = 24;

/// The most iterations of one loop: the verifier walks each, so keep them within reason.
const MAX_ITERATIONS: usize = 4096;

/// Rerolls every repeated run that a loop makes shorter.
pub fn optimize(code: Vec<MachInsn>) -> Vec<MachInsn> {
    let used = code.iter().fold(0u16, |acc, m| {
        let e = effects(m);
        acc | e.uses | e.defs | e.implicit
    });
    let Some(counter) = (6..=9u8).map(Reg).find(|r| used & (1 << r.0) == 0) else {
        return code;
    };
    let keys: Vec<String> = code.iter().map(|m| format!("{m:?}")).collect();
    let mut out: Vec<MachInsn> = Vec::with_capacity(code.len());
    let mut rerolled = false;
    let mut i = 0;
    while i < code.len() {
        match best_repetition(&code, &keys, i) {
            Some((body, times)) => {
                let label = fresh_label(&code).max(fresh_label(&out));
                out.push(MachInsn::Insn(Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Mov,
                    dst: counter,
                    src: Operand::Imm(times as i32),
                }));
                out.push(MachInsn::Label(label));
                out.extend_from_slice(&code[i..i + body]);
                out.push(MachInsn::Insn(Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Add,
                    dst: counter,
                    src: Operand::Imm(-1),
                }));
                out.push(MachInsn::Jcc {
                    width: Width::W64,
                    cond: JmpCond::Ne,
                    dst: counter,
                    src: Operand::Imm(0),
                    target: label,
                });
                // Loops made here follow one another and never nest, and each sets the
                // counter before it starts, so one counter serves them all.
                i += body * times;
                rerolled = true;
            }
            None => {
                out.push(code[i].clone());
                i += 1;
            }
        }
    }
    if rerolled {
        out
    } else {
        code
    }
}

/// True for instructions a loop body may hold.
fn straight(m: &MachInsn) -> bool {
    match m {
        MachInsn::Label(_) | MachInsn::Ja(_) | MachInsn::Jcc { .. } | MachInsn::Call(_) => false,
        MachInsn::Insn(i) => !matches!(
            i,
            Insn::Exit | Insn::Ja { .. } | Insn::Jmp { .. } | Insn::Imm64Tail
        ),
        MachInsn::LoadMap { .. } | MachInsn::LoadMapValue { .. } | MachInsn::LoadFunc { .. } => {
            true
        }
    }
}

/// The body length and repetition count starting at `i` that saves the most slots, if any
/// saves at least one.
fn best_repetition(code: &[MachInsn], keys: &[String], i: usize) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize, usize)> = None;
    for body in 1..=MAX_BODY {
        if i + 2 * body > code.len() || !code[i..i + body].iter().all(straight) {
            break;
        }
        let mut times = 1;
        while times < MAX_ITERATIONS
            && i + (times + 1) * body <= code.len()
            && keys[i + times * body..i + (times + 1) * body] == keys[i..i + body]
        {
            times += 1;
        }
        let body_slots: usize = code[i..i + body].iter().map(MachInsn::slots).sum();
        let unrolled = times * body_slots;
        let looped = body_slots + 3;
        if times >= 2 && unrolled > looped {
            let saved = unrolled - looped;
            if best.is_none_or(|(s, ..)| saved > s) {
                best = Some((saved, body, times));
            }
        }
    }
    best.map(|(_, body, times)| (body, times))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::testing::{alu, exit_with, insn_count, mov, mov_imm, run, store_reg};
    use frontend::insn::Size;

    #[test]
    fn repeated_sequences_become_a_counted_loop_with_the_same_result() {
        // r1 = r1 * 3 + 1, eight times, then a store and the result.
        let mut code = vec![mov_imm(Width::W64, 2, 0)];
        for _ in 0..8 {
            code.push(alu(Width::W64, AluOp::Mul, 1, Operand::Imm(3)));
            code.push(alu(Width::W64, AluOp::Add, 1, Operand::Imm(1)));
            code.push(alu(Width::W64, AluOp::Add, 2, Operand::Reg(Reg(1))));
        }
        code.push(store_reg(Size::DW, -8, 2));
        code.extend(exit_with(2));
        let out = optimize(code.clone());
        // The first move, the counter, three body instructions, decrement and jump, the store,
        // r0 = r2, exit.
        assert_eq!(insn_count(&out), 10, "{out:?}");
        for r1 in [0, 1, 7, u64::MAX] {
            assert_eq!(
                run(&code, [r1, 0, 0, 0, 0]).map(|f| (f.regs[..6].to_vec(), f.stack)),
                run(&out, [r1, 0, 0, 0, 0]).map(|f| (f.regs[..6].to_vec(), f.stack)),
            );
        }
    }

    #[test]
    fn no_free_callee_saved_register_or_short_repetitions_leave_the_code() {
        let mut code = vec![mov(6, 1), mov(7, 1), mov(8, 1), mov(9, 1)];
        for _ in 0..8 {
            code.push(alu(Width::W64, AluOp::Add, 1, Operand::Imm(1)));
        }
        code.extend(exit_with(1));
        assert_eq!(optimize(code.clone()).len(), code.len());
        // Two copies of a two-instruction body: five instructions as a loop, four unrolled.
        let mut code = vec![];
        for _ in 0..2 {
            code.push(alu(Width::W64, AluOp::Add, 1, Operand::Imm(1)));
            code.push(alu(Width::W64, AluOp::Mul, 1, Operand::Imm(2)));
        }
        code.extend(exit_with(1));
        assert_eq!(optimize(code.clone()).len(), code.len());
    }

    #[test]
    fn two_repeated_runs_become_two_loops_sharing_the_counter() {
        let mut code = vec![];
        for _ in 0..6 {
            code.push(alu(Width::W64, AluOp::Add, 1, Operand::Imm(3)));
            code.push(alu(Width::W64, AluOp::Mul, 1, Operand::Imm(5)));
        }
        code.push(store_reg(Size::DW, -8, 1));
        for _ in 0..5 {
            code.push(alu(Width::W64, AluOp::Xor, 2, Operand::Reg(Reg(1))));
            code.push(alu(Width::W64, AluOp::Lsh, 2, Operand::Imm(1)));
        }
        code.extend(exit_with(2));
        let out = optimize(code.clone());
        // Two loops of 2 + 3 instructions, the store, r0 = r2, exit.
        assert_eq!(insn_count(&out), 13, "{out:?}");
        for r1 in [0, 1, 9, u64::MAX] {
            assert_eq!(
                run(&code, [r1, 4, 0, 0, 0]).map(|f| (f.regs[..6].to_vec(), f.stack)),
                run(&out, [r1, 4, 0, 0, 0]).map(|f| (f.regs[..6].to_vec(), f.stack)),
            );
        }
    }
}
