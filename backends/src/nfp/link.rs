//! Tail calls: several programs of one object in one code store.
//!
//! `bpf_tail_call` continues in another program of the object, chosen at run time from a
//! program array. On the NFP model every program a tail call may reach is compiled on its
//! own ([`super::compile_function_with`], with the list of programs its tail calls may land
//! in) and then placed after the entry program here: branch targets move by the program's
//! base address (the shared exit stays where it is), the loader's relocations move with their
//! words, and the branches of each tail call's dispatch get the first word of the program
//! they name. [`compile_linked`] does all of it for one entry program.

use super::{compile_function, compile_function_with, EntryKind, NfpProgram};
use frontend::Diagnostic;
use hw::nfp::{encode, is_fixed_target, Insn, CODE_STORE_WORDS};
use std::collections::HashMap;

/// True when `module` contains a tail call.
pub fn has_tail_call(module: &ir::Module) -> bool {
    module.functions.values().any(|f| {
        f.insts()
            .any(|i| matches!(f.dfg.inst(i), ir::InstructionData::TailCall { .. }))
    })
}

/// Places `others` (object program index, compiled program) after `entry` (object program
/// `entry_index`) in one code store and resolves every branch into a program.
pub fn link_programs(
    entry: NfpProgram,
    entry_index: usize,
    others: Vec<(usize, NfpProgram)>,
) -> Result<NfpProgram, Diagnostic> {
    let name = entry.name.clone();
    let err = |m: String| Diagnostic::new(m).program(name.clone());
    let mut bases: HashMap<usize, usize> = HashMap::new();
    bases.insert(entry_index, 0);
    let mut next = entry.words.len();
    for (p, prog) in &others {
        bases.insert(*p, next);
        next += prog.words.len();
    }
    if next > CODE_STORE_WORDS {
        return Err(err(format!(
            "the program and the {} programs its tail calls reach are {next} instructions, {} more than the {CODE_STORE_WORDS}-word code store",
            others.len(),
            next - CODE_STORE_WORDS
        )));
    }
    let mut out = NfpProgram {
        words: Vec::with_capacity(next),
        insns: Vec::with_capacity(next),
        bpf_insn: Vec::with_capacity(next),
        comments: Vec::with_capacity(next),
        relocations: Vec::new(),
        code_addresses: Vec::new(),
        program_branches: Vec::new(),
        registers: entry.registers,
        lm_windows: entry.lm_windows,
        routine_words: 0,
        ..entry.clone()
    };
    let all = std::iter::once((entry_index, entry)).chain(others);
    for (p, prog) in all {
        let base = bases[&p];
        let mut insns = prog.insns.clone();
        for insn in insns.iter_mut() {
            if let Some(t) = insn.target() {
                if !is_fixed_target(t) {
                    insn.set_target((t as usize + base) as u16);
                }
            }
        }
        for &word in &prog.code_addresses {
            if let Some(Insn::Immed { imm, .. }) = insns.get_mut(word) {
                *imm = (*imm as usize + base) as u16;
            }
            out.code_addresses.push(word + base);
        }
        for (word, target) in &prog.program_branches {
            let addr = bases.get(target).ok_or_else(|| {
                err(format!(
                    "internal: a tail call branches to program {target}, which is not linked"
                ))
            })?;
            if let Some(insn) = insns.get_mut(*word) {
                insn.set_target(*addr as u16);
            }
        }
        for (i, insn) in insns.iter().enumerate() {
            out.words.push(
                encode(insn).map_err(|e| err(format!("internal: cannot encode word {i}: {e}")))?,
            );
        }
        out.insns.extend(insns);
        out.bpf_insn.extend(&prog.bpf_insn);
        let mut comments = prog.comments.clone();
        if p != entry_index {
            if let Some(c) = comments.first_mut() {
                *c = format!("program {} (tail call target); {c}", prog.name);
            }
        }
        out.comments.extend(comments);
        out.relocations
            .extend(prog.relocations.iter().map(|r| hw::nfp::abi::Relocation {
                word: r.word + base,
                ..r.clone()
            }));
        out.registers = out.registers.max(prog.registers);
        out.lm_windows = out.lm_windows.max(prog.lm_windows);
        out.routine_words += prog.routine_words;
    }
    Ok(out)
}

/// Compiles object program `entry` for the NFP model. When it makes tail calls, every
/// program of `candidates` (object program indices, XDP programs) that compiles is linked in
/// as a possible target; `lift` gives the optimized module of an object program.
pub fn compile_linked(
    lift: &dyn Fn(usize) -> Result<ir::Module, Diagnostic>,
    entry: usize,
    candidates: &[usize],
) -> Result<NfpProgram, Diagnostic> {
    let module = lift(entry)?;
    let func = module
        .programs
        .first()
        .map(|p| p.func)
        .ok_or_else(|| Diagnostic::new("nothing was lifted"))?;
    if !has_tail_call(&module) {
        return compile_function(&module, func, EntryKind::Xdp);
    }
    // First round: which programs compile at all; second: compile them with the final list
    // of targets (a program's failure does not depend on that list).
    let mut modules: Vec<(usize, ir::Module)> = Vec::new();
    for &c in candidates.iter().filter(|c| **c != entry) {
        if let Ok(m) = lift(c) {
            if let Some(f) = m.programs.first().map(|p| p.func) {
                if compile_function(&m, f, EntryKind::Xdp).is_ok() || has_tail_call(&m) {
                    modules.push((c, m));
                }
            }
        }
    }
    let mut targets: Vec<usize> = modules.iter().map(|(c, _)| *c).collect();
    targets.push(entry);
    targets.sort_unstable();
    let main = compile_function_with(&module, func, EntryKind::Xdp, &targets)?;
    let mut others = Vec::new();
    for (c, m) in &modules {
        let f = m.programs[0].func;
        match compile_function_with(m, f, EntryKind::Xdp, &targets) {
            Ok(p) => others.push((*c, p)),
            Err(_) => {
                return Err(Diagnostic::new(format!(
                    "program {c}, a possible tail-call target, does not compile for the NFP target"
                )))
            }
        }
    }
    link_programs(main, entry, others)
}
