//! The BPF backend: optimized IR back to BPF bytecode, in an ELF object that nicc's frontend
//! and the Linux kernel both load.
//!
//! The pipeline for one function is: [`layout`] fixes the block order and numbers the
//! instructions; [`regalloc`] (a linear scan) and [`coalescing_alloc`] (precise live ranges,
//! block parameters coalesced with their arguments) give every SSA value a register of
//! `r1`-`r9`, a spill slot or rematerialization (the linear scan also in a variant that
//! spills the values with the fewest uses, the coalescing one also in a variant that puts
//! values between calls in `r0`), and the shortest resulting code is kept; [`isel`] turns IR instructions into BPF instructions with labels;
//! [`peephole`] removes the register copies allocation and selection leave behind;
//! [`stack_forwarding`] reads back stored registers without the load and drops spills no
//! load reads; [`merge_stores`] writes constant stack fields with fewer, wider stores;
//! [`hoist_moves`] writes an edge's moves before its conditional jump where the other path
//! does not need their registers, and [`known_constants`] drops the constant moves that
//! leaves repeated; [`shared_exit`] returns constants through one `exit` with `r0` written
//! early, where that is shorter; [`shared_edges`] keeps one copy of edge code that several
//! edges repeat; [`narrow_compares`] tests a zero-extended value with a 32-bit jump on its
//! source; [`reroll`] turns a sequence repeated several times in a row into a counted loop
//! when [`CodeOptions::reroll_loops`] asks for the smallest code rather than the fastest;
//! [`branches`] resolves labels into jump offsets and drops jumps to the next instruction.
//! [`elf`] then writes the functions of a module, with their map, global-data and call
//! relocations, as an object like the ones clang builds, keeping a one-function program's
//! original code where that is shorter ([`original_code`]).
//!
//! The code keeps the shapes the kernel verifier tracks: pointers are only moved with 64-bit
//! moves and spilled with 64-bit stores to 8-byte aligned slots, bounds checks and NULL checks
//! compare the same registers the IR compares, and instructions are never reordered.

pub mod branches;
pub mod btf;
pub mod coalescing_alloc;
pub mod elf;
pub mod hoist_moves;
pub mod isel;
pub mod known_constants;
pub mod layout;
pub mod merge_stores;
pub mod narrow_compares;
pub mod original_code;
pub mod peephole;
pub mod regalloc;
pub mod reroll;
pub mod shared_edges;
pub mod shared_exit;
pub mod stack_forwarding;
#[cfg(test)]
mod testing;

use branches::{FunctionCode, Reloc};
use frontend::insn::{CallTarget, Imm64, Insn};
use frontend::Diagnostic;
use ir::{FuncRef, Inst, Module};
use std::collections::HashMap;

/// Choices that trade run time against size. The default keeps run time: every choice that
/// could make a program slower to make it smaller is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeOptions {
    /// Turn straight-line code repeated several times in a row into a counted loop
    /// ([`reroll`]); each iteration then runs two more instructions (the count and the jump).
    pub reroll_loops: bool,
}

/// Compiles one function to its code and relocations, unlinked, with the default
/// [`CodeOptions`].
pub fn compile_function(module: &Module, fref: FuncRef) -> Result<FunctionCode, Diagnostic> {
    compile_function_with(module, fref, CodeOptions::default())
}

/// Compiles one function to its code and relocations, unlinked.
pub fn compile_function_with(
    module: &Module,
    fref: FuncRef,
    options: CodeOptions,
) -> Result<FunctionCode, Diagnostic> {
    let Some(func) = module.functions.get(fref) else {
        return Err(Diagnostic::new(format!(
            "cannot emit BPF for {fref}: the module has no such function"
        )));
    };
    let order = layout::LinearOrder::new(func);
    if order.blocks.is_empty() {
        return Err(diagnostic(module, fref, None, "the function has no blocks"));
    }
    let mut best: Option<Result<FunctionCode, Diagnostic>> = None;
    for (_, allocator) in ALLOCATORS {
        let code = with_allocation(module, fref, func, &order, allocator, options);
        best = match (best, code) {
            (None, code) => Some(code),
            (Some(Ok(a)), Ok(b)) if b.insns.len() < a.insns.len() => Some(Ok(b)),
            (Some(Ok(a)), _) => Some(Ok(a)),
            (Some(Err(_)), code) => Some(code),
        };
    }
    best.unwrap_or_else(|| Err(diagnostic(module, fref, None, "no register allocator ran")))
}

/// A register allocator the backend can try.
type Allocator =
    fn(&ir::Function, &layout::LinearOrder) -> Result<regalloc::Allocation, regalloc::AllocError>;

/// Every allocation strategy, in order of preference on ties: coalescing removes most edge
/// copies, and with `r0` also the copies out of `r0` after calls and into it before `exit`
/// (it is second because a strategy that fails only loses its turn); the linear scan's eviction spills less where registers run short; spilling the
/// values with the fewest uses costs fewer reloads where a parser's pointers are read often.
pub const ALLOCATORS: [(&str, Allocator); 4] = [
    ("coalescing", coalescing_alloc::allocate),
    ("coalescing-r0", coalescing_alloc::allocate_with_r0),
    ("linear-scan", regalloc::allocate),
    ("linear-scan-by-uses", regalloc::allocate_by_uses),
];

/// The length of the code each strategy of [`ALLOCATORS`] gives for one function (`None`
/// where it fails), so reports can say how often each wins.
pub fn strategy_lengths(module: &Module, fref: FuncRef) -> Vec<(&'static str, Option<usize>)> {
    let Some(func) = module.functions.get(fref) else {
        return Vec::new();
    };
    let order = layout::LinearOrder::new(func);
    if order.blocks.is_empty() {
        return Vec::new();
    }
    ALLOCATORS
        .iter()
        .map(|&(name, allocator)| {
            let code = with_allocation(
                module,
                fref,
                func,
                &order,
                allocator,
                CodeOptions::default(),
            );
            (name, code.ok().map(|c| c.insns.len()))
        })
        .collect()
}

/// Selects, cleans up and resolves one function's code with the given register allocator.
fn with_allocation(
    module: &Module,
    fref: FuncRef,
    func: &ir::Function,
    order: &layout::LinearOrder,
    allocator: Allocator,
    options: CodeOptions,
) -> Result<FunctionCode, Diagnostic> {
    let alloc = allocator(func, order).map_err(|e| diagnostic(module, fref, e.inst, &e.message))?;
    let code = isel::select(func, order, &alloc)
        .map_err(|e| diagnostic(module, fref, e.inst, &e.message))?;
    let spill_slots: std::collections::HashSet<i16> = alloc
        .locs
        .values()
        .filter_map(|loc| match loc {
            regalloc::Loc::Spill(off) => Some(*off),
            _ => None,
        })
        .collect();
    let code = stack_forwarding::optimize(peephole::optimize(code), &spill_slots);
    let code = merge_stores::optimize(code);
    let code = known_constants::optimize(hoist_moves::optimize(code));
    let code = shared_exit::optimize(code);
    let code = shared_edges::optimize(code);
    let code = peephole::optimize(narrow_compares::optimize(code));
    let code = if options.reroll_loops {
        reroll::optimize(code)
    } else {
        code
    };
    branches::resolve(code).map_err(|e| diagnostic(module, fref, None, &e.message))
}

/// The code of one program: its function followed by every function it calls, linked the way
/// `frontend::elf` links a program, so that instruction counts compare with the original's.
/// Map references are `lddw` with `BPF_PSEUDO_MAP_IDX` (-`_VALUE`) and the map's index in
/// `module.maps`; calls and function addresses are relative.
pub fn emit_program(module: &Module, func: FuncRef) -> Result<Vec<Insn>, Diagnostic> {
    let (codes, order) = compile_reachable(module, func, CodeOptions::default())?;
    let mut start = HashMap::new();
    let mut total = 0usize;
    for f in &order {
        start.insert(*f, total);
        total += codes[f].insns.len();
    }
    let mut out = Vec::with_capacity(total);
    for f in &order {
        let base = start[f];
        let code = &codes[f];
        let mut insns = code.insns.clone();
        for &(slot, reloc) in &code.relocs {
            let rel = |target: FuncRef| start[&target] as i64 - (base + slot) as i64 - 1;
            match reloc {
                Reloc::Call(t) => insns[slot] = Insn::Call(CallTarget::Local(rel(t) as i32)),
                Reloc::Func(t) => {
                    if let Insn::Imm64 { dst, .. } = insns[slot] {
                        insns[slot] = Insn::Imm64 {
                            dst,
                            imm: Imm64::Func(rel(t) as i32),
                        };
                    }
                }
                Reloc::Map(_) | Reloc::MapValue(..) => {}
            }
        }
        out.extend(insns);
    }
    Ok(out)
}

/// Compiles `entry` and every function it reaches through calls and function addresses; the
/// order lists `entry` first, then callees in the order they are first referenced.
pub(crate) fn compile_reachable(
    module: &Module,
    entry: FuncRef,
    options: CodeOptions,
) -> Result<(HashMap<FuncRef, FunctionCode>, Vec<FuncRef>), Diagnostic> {
    let mut codes = HashMap::new();
    let mut order = vec![entry];
    let mut k = 0;
    while k < order.len() {
        let f = order[k];
        let code = compile_function_with(module, f, options)?;
        for (_, reloc) in &code.relocs {
            if let Reloc::Call(t) | Reloc::Func(t) = reloc {
                if !order.contains(t) {
                    order.push(*t);
                }
            }
        }
        codes.insert(f, code);
        k += 1;
    }
    Ok((codes, order))
}

/// Writes every program of `module` into a BPF ELF object named `name` (see [`elf`]), with a
/// `GPL` license section: the IR does not record the original license, so callers that know
/// it use [`emit_object_with`].
pub fn emit_object(module: &Module, name: &str) -> Result<Vec<u8>, Diagnostic> {
    elf::write_object(module, name)
}

/// Like [`emit_object`], with the license and kernel version given.
pub fn emit_object_with(
    module: &Module,
    name: &str,
    options: &ObjectOptions,
) -> Result<Vec<u8>, Diagnostic> {
    elf::write_object_with(module, name, options)
}

pub use elf::ObjectOptions;

/// A diagnostic naming the function, the IR instruction's source location and line.
fn diagnostic(module: &Module, fref: FuncRef, inst: Option<Inst>, message: &str) -> Diagnostic {
    let func = module.functions.get(fref);
    let name = func.map_or_else(|| fref.to_string(), |f| f.name.clone());
    let loc = match (func, inst) {
        (Some(f), Some(i)) if f.dfg.inst_is_valid(i) => f.srclocs[i],
        _ => ir::SrcLoc::NONE,
    };
    let at = match inst {
        Some(i) if !loc.is_none() => format!(" at {i} (BPF instruction {})", loc.insn),
        Some(i) => format!(" at {i}"),
        None => String::new(),
    };
    let mut d = Diagnostic::new(format!(
        "cannot emit BPF for function `{name}`{at}: {message}"
    ))
    .program(name)
    .help("simplify the function (fewer live values, smaller stack buffers) or split it into subprograms");
    if !loc.is_none() {
        d = d.insn(loc.insn as usize);
        if let Some(line) = module.line(loc) {
            d = d.line(Some(frontend::object::LineInfo {
                insn: loc.insn as usize,
                file: line.file.clone(),
                line: line.line,
                column: line.column,
                source: line.text.clone(),
            }));
        }
    }
    d
}
