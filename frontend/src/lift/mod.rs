//! Lifting: BPF programs of a [`crate::Object`] become SSA IR ([`ir::Module`]).
//!
//! The steps, one file each:
//!
//! 1. [`cfg`]: basic blocks of every function of the linked program, with malformed control
//!    flow rejected (jumps out of a function or into an `lddw`, falling off the end).
//! 2. [`provenance`]: abstract interpretation of what each register and spilled stack word
//!    holds (number, context, packet, stack, map value, map, global data), interprocedurally.
//!    It gives every load and store its [`ir::Region`].
//! 3. [`stack`]: which pieces of each frame are plain variables (promoted to SSA values) and
//!    how much of the frame stays in memory as a stack slot.
//! 4. [`ssa`]: the block parameters every merge block needs (pruned by liveness).
//! 5. [`translate`]: the instruction-by-instruction translation into IR.
//! 6. [`inline`]: optional inlining of bpf-to-bpf calls, on the IR.
//! 7. [`loops`]: natural loops and, where the bound is a constant compare, their trip counts.
//!
//! Semantics preserved exactly (the IR executor checks them against the interpreter): 32-bit
//! ALU results zero-extend (`Width::W32`); immediates of 64-bit operations are sign-extended
//! into an `iconst`; loads zero-extend and `ldsx` sign-extends; a promoted stack piece holds
//! what memory would hold (stores truncate to their size) and starts at zero, as the
//! interpreter's frames do; memory stack slots also start zeroed.
//!
//! Helper calls pass exactly the helper's declared arguments ([`helpers`]); for
//! `bpf_trace_printk` the two declared ones plus every further register set at the call; for
//! a helper id the table does not know, all five (a register unset on every path is passed as
//! zero). After any call r1 to r5 are unset and reading them is an error, as in the kernel
//! verifier. A bpf-to-bpf callee takes as many parameters as it reads of r1 to r5.
//!
//! [`lift_object`] lifts every program into one module. Subprograms are not shared between
//! programs: each program's linked copy becomes its own functions (the copies can differ in
//! the maps and callees they reach), named `program.subprogram` where a name would repeat.

pub mod cfg;
pub mod helpers;
pub mod inline;
pub mod loops;
pub mod provenance;
pub mod ssa;
pub mod stack;
pub mod translate;

use crate::insn::{decode_all, Insn};
use crate::object::{MapOrigin, Program, ProgramKind};
use crate::{Diagnostic, Object};
use ir::function::{LineInfo, MapDecl, Module, SrcLoc};
use std::collections::HashMap;

/// How to lift.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LiftOptions {
    /// Inline bpf-to-bpf calls instead of keeping them as IR functions. Subprograms whose
    /// address is taken (callbacks) stay functions either way.
    pub inline_calls: bool,
}

/// One program being lifted: its decoded slots and how to word errors about it.
pub struct ProgCtx<'a> {
    pub obj: &'a Object,
    pub prog: &'a Program,
    pub insns: Vec<Insn>,
}

impl<'a> ProgCtx<'a> {
    pub fn new(obj: &'a Object, program: usize) -> Result<ProgCtx<'a>, Diagnostic> {
        let prog = obj.programs.get(program).ok_or_else(|| {
            Diagnostic::new(format!(
                "program index {program} does not exist (the object has {} programs)",
                obj.programs.len()
            ))
            .object(obj.name.clone())
        })?;
        let insns = decode_all(&prog.insns).map_err(|e| {
            Diagnostic::new(format!("cannot decode instruction: {}", e.kind))
                .object(obj.name.clone())
                .section(prog.section.clone())
                .program(prog.name.clone())
                .insn(e.index)
                .line(prog.line_at(e.index).cloned())
                .help(e.kind.help())
        })?;
        Ok(ProgCtx { obj, prog, insns })
    }

    /// A diagnostic about slot `slot` of this program, with its C source line.
    pub fn error(&self, slot: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(message)
            .object(self.obj.name.clone())
            .section(self.prog.section.clone())
            .program(self.prog.name.clone())
            .insn(slot)
            .line(self.prog.line_at(slot).cloned())
    }
}

/// The snake_case name of a program kind, as [`ir::ProgramEntry::kind`] spells it.
pub fn kind_name(kind: ProgramKind) -> &'static str {
    use ProgramKind::*;
    match kind {
        SocketFilter => "socket_filter",
        Kprobe => "kprobe",
        SchedCls => "sched_cls",
        SchedAct => "sched_act",
        Tracepoint => "tracepoint",
        Xdp => "xdp",
        PerfEvent => "perf_event",
        CgroupSkb => "cgroup_skb",
        CgroupSock => "cgroup_sock",
        LwtIn => "lwt_in",
        LwtOut => "lwt_out",
        LwtXmit => "lwt_xmit",
        SockOps => "sock_ops",
        SkSkb => "sk_skb",
        CgroupDevice => "cgroup_device",
        SkMsg => "sk_msg",
        RawTracepoint => "raw_tracepoint",
        CgroupSockAddr => "cgroup_sock_addr",
        Tracing => "tracing",
        StructOps => "struct_ops",
        Lsm => "lsm",
        Syscall => "syscall",
        Netfilter => "netfilter",
        Unknown => "unknown",
    }
}

/// Module-wide tables shared by every program lifted into one module.
pub struct ModuleTables {
    /// Line table entries already added, so that equal lines are stored once.
    lines: HashMap<LineInfo, u32>,
}

impl ModuleTables {
    fn new() -> ModuleTables {
        ModuleTables {
            lines: HashMap::new(),
        }
    }

    /// For every line record of `prog`, its index in the module's line table.
    fn line_indices(&mut self, module: &mut Module, prog: &Program) -> Vec<u32> {
        prog.lines
            .iter()
            .map(|l| {
                let info = LineInfo {
                    file: l.file.clone(),
                    line: l.line,
                    column: l.column,
                    text: l.source.clone(),
                };
                *self
                    .lines
                    .entry(info.clone())
                    .or_insert_with(|| module.add_line(info))
            })
            .collect()
    }
}

/// Source locations of every slot of a program, with the module line covering it.
pub struct SrcLocs {
    starts: Vec<usize>,
    indices: Vec<u32>,
}

impl SrcLocs {
    pub fn at(&self, slot: usize) -> SrcLoc {
        let pos = self.starts.partition_point(|&s| s <= slot);
        match pos.checked_sub(1) {
            Some(p) => SrcLoc::with_line(slot as u32, self.indices[p]),
            None => SrcLoc::new(slot as u32),
        }
    }
}

fn declare_maps(module: &mut Module, obj: &Object) {
    for m in &obj.maps {
        let data = match m.origin {
            MapOrigin::GlobalData { .. } => m.initial_value.clone(),
            _ => None,
        };
        module.add_map(MapDecl {
            name: m.name.clone(),
            map_type: m.map_type.to_raw(),
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries: m.max_entries,
            flags: m.flags,
            data,
        });
    }
}

/// A function name not yet used in `module`: `preferred`, or `prefix.preferred`, or that
/// with a number.
fn unique_name(module: &Module, preferred: &str, prefix: &str) -> String {
    let taken = |n: &str| module.functions.values().any(|f| f.name == n);
    if !taken(preferred) {
        return preferred.to_string();
    }
    let base = format!("{prefix}.{preferred}");
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}.{i}"))
        .find(|n| !taken(n))
        .expect("some numbered name is free")
}

fn lift_into(
    module: &mut Module,
    tables: &mut ModuleTables,
    obj: &Object,
    program: usize,
    opts: &LiftOptions,
) -> Result<(), Diagnostic> {
    let ctx = ProgCtx::new(obj, program)?;
    let prog = ctx.prog;
    let indices = tables.line_indices(module, prog);
    let srclocs = SrcLocs {
        starts: prog.lines.iter().map(|l| l.insn).collect(),
        indices,
    };
    let names: Vec<String> = prog
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let preferred = if i == 0 { &prog.name } else { &f.name };
            unique_name(module, preferred, &prog.name)
        })
        .collect();
    let mut functions = translate::lift_program_functions(&ctx, &srclocs, &names)?;
    if opts.inline_calls {
        inline::inline_calls(&mut functions).map_err(|m| ctx.error(0, m))?;
    }
    // References between the program's functions are numbered from 0; shift them to where
    // the functions land in the module.
    let base = module.functions.len();
    let mut entry = None;
    for mut f in functions {
        inline::renumber_func_refs(&mut f, base);
        let r = module.add_function(f);
        entry.get_or_insert(r);
    }
    let entry = entry.ok_or_else(|| ctx.error(0, "program has no functions"))?;
    module.add_program(entry, kind_name(prog.kind));
    Ok(())
}

/// Lifts program `program` of `obj` into a module of its own: the program's entry function
/// (a program entry of its kind), its subprograms as further functions (unless inlined),
/// every map of the object in order (so `mapN` is `obj.maps[N]`), and the line table.
pub fn lift_program(
    obj: &Object,
    program: usize,
    opts: &LiftOptions,
) -> Result<Module, Diagnostic> {
    let mut module = Module::new();
    declare_maps(&mut module, obj);
    let mut tables = ModuleTables::new();
    lift_into(&mut module, &mut tables, obj, program, opts)?;
    Ok(module)
}

/// Lifts every program of `obj` into one module (see the module documentation for how
/// subprograms are named). The first program that cannot be lifted stops it.
pub fn lift_object(obj: &Object, opts: &LiftOptions) -> Result<Module, Diagnostic> {
    let mut module = Module::new();
    declare_maps(&mut module, obj);
    let mut tables = ModuleTables::new();
    for p in 0..obj.programs.len() {
        lift_into(&mut module, &mut tables, obj, p, opts)?;
    }
    Ok(module)
}

/// The natural loops of every function of program `program`: (function name, loop).
pub fn program_loops(
    obj: &Object,
    program: usize,
) -> Result<Vec<(String, loops::LoopInfo)>, Diagnostic> {
    let ctx = ProgCtx::new(obj, program)?;
    let prog = ctx.prog;
    let mut cfgs = Vec::new();
    for f in &prog.functions {
        cfgs.push(cfg::build(&ctx, f.start, f.start + f.len)?);
    }
    let starts: Vec<(usize, &cfg::Cfg)> = prog
        .functions
        .iter()
        .zip(&cfgs)
        .map(|(f, c)| (f.start, c))
        .collect();
    let (provs, returns) = provenance::analyze_program(&starts, &ctx.insns, prog.kind, &obj.maps);
    let env = provenance::Env {
        kind: prog.kind,
        maps: &obj.maps,
        returns: &returns,
    };
    let mut out = Vec::new();
    for ((f, cfg), prov) in prog.functions.iter().zip(&cfgs).zip(&provs) {
        for l in loops::find_loops(cfg, &ctx.insns, &env, prov) {
            out.push((f.name.clone(), l));
        }
    }
    Ok(out)
}
