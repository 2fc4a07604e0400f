//! `nicc compile OBJ --target x86_64|aarch64 -o OUT.o`: native code in a relocatable ELF
//! object, plus `OUT.h`, the C header that describes its entries, its context block and its
//! maps, so that a C dataplane can link it.
//!
//! Every program of the object is lifted, optimized by a pipeline (by default `native`) and
//! compiled by Cranelift into one object; packet accesses that the pipeline's range analysis
//! proved in bounds are compiled without a check. The command also compiles each program on
//! its own, to report what that program costs: its entry symbol, its code size, the runtime
//! symbols it imports and its compile time (lifting, pipeline and code generation), the
//! figure a user of the native target waits for.

use super::compile::{CompileArgs, CompileTarget};
use backends::native::{compile_module_with, LowerOptions, NativeArtifact, NativeTarget};
use frontend::lift::{lift_object, lift_program, LiftOptions};
use frontend::Object;
use passes::pass::PassContext;
use passes::pipeline::{pipeline, PassManager, PIPELINE_NAMES};
use std::collections::HashSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One program as compiled on its own.
#[derive(Clone, Debug)]
pub struct ProgramReport {
    /// The program's name in the BPF object.
    pub name: String,
    /// Its kind (`xdp`, ...), as the IR names it.
    pub kind: String,
    /// The exported C symbol of its entry.
    pub entry_symbol: String,
    /// Bytes of machine code: the entry and every subprogram it calls.
    pub code_size: u64,
    /// Functions compiled (the entry and its subprograms).
    pub functions: usize,
    /// The runtime symbols it imports (callbacks and `nicc_helper_*`), sorted.
    pub imports: Vec<String>,
    /// Lifting, the pipeline and code generation of this program alone.
    pub compile_time: Duration,
}

/// What compiling an object (or one of its programs) produced.
#[derive(Debug)]
pub struct NativeCompilation {
    /// The object holding every compiled program, its header and what went into them.
    pub artifact: NativeArtifact,
    /// The lifted and optimized module the artifact was generated from.
    pub module: ir::Module,
    /// Per program, compiled on its own.
    pub programs: Vec<ProgramReport>,
    /// Time to lift, optimize and generate the whole object.
    pub total_time: Duration,
}

/// The native target of a command-line target.
pub fn native_target(target: CompileTarget) -> Option<NativeTarget> {
    match target {
        CompileTarget::X86_64 => Some(NativeTarget::X86_64),
        CompileTarget::Aarch64 => Some(NativeTarget::Aarch64),
        CompileTarget::Nfp | CompileTarget::Verilog => None,
    }
}

/// Runs pipeline `pipeline_name` on `module` and returns the lowering options that drop the
/// run-time check of every packet access its range analysis proved in bounds.
pub fn optimize(module: &mut ir::Module, pipeline_name: &str) -> Result<LowerOptions, String> {
    let pipe = pipeline(pipeline_name).ok_or_else(|| {
        format!(
            "there is no pipeline `{pipeline_name}`; the pipelines are: {}",
            PIPELINE_NAMES.join(", ")
        )
    })?;
    let mut ctx = PassContext::new(pipe.target);
    PassManager::new()
        .run(&pipe, module, &mut ctx)
        .map_err(|e| format!("pipeline {pipeline_name}: {e}"))?;
    let mut proven = HashSet::new();
    if let Some(accesses) = &ctx.analyses.packet_accesses {
        for (f, insts) in accesses {
            for (inst, ok) in insts {
                if *ok {
                    proven.insert((*f, *inst));
                }
            }
        }
    }
    Ok(LowerOptions {
        proven_safe: proven,
        ..LowerOptions::default()
    })
}

/// Lifts (all programs, or only `program`), optimizes and compiles for `target`.
fn compile_module_of(
    obj: &Object,
    program: Option<usize>,
    pipeline_name: &str,
    target: NativeTarget,
) -> Result<(NativeArtifact, ir::Module), String> {
    let lift = LiftOptions::default();
    let mut module = match program {
        Some(i) => lift_program(obj, i, &lift),
        None => lift_object(obj, &lift),
    }
    .map_err(|d| {
        let mut m = d.to_string();
        if program.is_none() && obj.programs.len() > 1 {
            m.push_str("\nhelp: compile the programs that lift one at a time with --program NAME");
        }
        m
    })?;
    let options = optimize(&mut module, pipeline_name)?;
    let artifact = compile_module_with(&module, target, &options).map_err(|d| d.to_string())?;
    Ok((artifact, module))
}

/// The per-program figures of a module compiled with a single program.
fn report_of(obj: &Object, index: usize, a: &NativeArtifact, m: &ir::Module) -> ProgramReport {
    let entry = m.programs.first();
    let entry_symbol = entry
        .and_then(|p| m.functions.keys().position(|f| f == p.func))
        .and_then(|i| a.symbols.get(i).cloned())
        .unwrap_or_default();
    ProgramReport {
        name: obj.programs[index].name.clone(),
        kind: entry.map(|p| p.kind.to_string()).unwrap_or_default(),
        entry_symbol,
        code_size: a.code_sizes.iter().sum(),
        functions: a.symbols.len(),
        imports: a.imports.clone(),
        compile_time: Duration::ZERO,
    }
}

/// Compiles `obj` (every program, or only `program`) for `target` after pipeline
/// `pipeline_name`, and compiles each program alone as well to report its figures.
pub fn compile_native(
    obj: &Object,
    program: Option<usize>,
    pipeline_name: &str,
    target: NativeTarget,
) -> Result<NativeCompilation, String> {
    let start = Instant::now();
    let (artifact, module) = compile_module_of(obj, program, pipeline_name, target)?;
    let total_time = start.elapsed();
    let indices: Vec<usize> = match program {
        Some(i) => vec![i],
        None => (0..obj.programs.len()).collect(),
    };
    let mut programs = Vec::new();
    if indices.len() == 1 {
        let mut r = report_of(obj, indices[0], &artifact, &module);
        r.compile_time = total_time;
        programs.push(r);
    } else {
        for i in indices {
            let start = Instant::now();
            let (a, m) = compile_module_of(obj, Some(i), pipeline_name, target)
                .map_err(|e| format!("program {}: {e}", obj.programs[i].name))?;
            let mut r = report_of(obj, i, &a, &m);
            r.compile_time = start.elapsed();
            programs.push(r);
        }
    }
    Ok(NativeCompilation {
        artifact,
        module,
        programs,
        total_time,
    })
}

/// Where the header of object `out` goes: beside it, with the extension `h`.
pub fn header_path(out: &Path) -> PathBuf {
    out.with_extension("h")
}

/// Milliseconds with a fractional part, for reports.
fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn compile(args: &CompileArgs) -> Result<String, String> {
    let Some(target) = native_target(args.target) else {
        return Err(format!("{:?} is not a native target", args.target));
    };
    let obj = super::read_object(&args.object)?;
    let program = match &args.program {
        Some(name) => Some(super::select_program(&obj, Some(name))?),
        None => None,
    };
    let pipeline_name = args
        .pipeline
        .clone()
        .unwrap_or_else(|| args.target.default_pipeline().to_string());
    let c = compile_native(&obj, program, &pipeline_name, target)?;
    let header = header_path(&args.output);
    std::fs::write(&args.output, &c.artifact.object)
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    std::fs::write(&header, &c.artifact.header)
        .map_err(|e| format!("cannot write {}: {e}", header.display()))?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} -> {} ({} object, {} bytes) and {}; pipeline {pipeline_name}; compiled in {}",
        args.object.display(),
        args.output.display(),
        match target {
            NativeTarget::Aarch64 => "aarch64",
            NativeTarget::X86_64 => "x86_64",
            NativeTarget::Host => "host",
        },
        c.artifact.object.len(),
        header.display(),
        ms(c.total_time)
    );
    let (unchecked, inline, runtime) = c.artifact.access_counts;
    let _ = writeln!(
        s,
        "  memory accesses: {unchecked} unchecked, {inline} checked inline, {runtime} through the runtime"
    );
    for p in &c.programs {
        let _ = writeln!(
            s,
            "  program {} ({}): entry {}, {} bytes of code in {} function{}, compiled in {}",
            p.name,
            p.kind,
            p.entry_symbol,
            p.code_size,
            p.functions,
            if p.functions == 1 { "" } else { "s" },
            ms(p.compile_time)
        );
        let _ = writeln!(
            s,
            "    imports: {}",
            if p.imports.is_empty() {
                "(none)".to_string()
            } else {
                p.imports.join(", ")
            }
        );
    }
    Ok(s)
}
