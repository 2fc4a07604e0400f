//! `nicc opt OBJ -o OUT.o`: lift every program, run an optimization pipeline, and re-emit BPF
//! as an ELF object that nicc and the kernel both load.

use passes::pass::{PassContext, Target};
use passes::pipeline::{count_insts, pipeline, PassManager, PIPELINE_NAMES};
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct OptArgs {
    /// The BPF ELF object.
    pub object: PathBuf,
    /// Where to write the optimized object.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// The pipeline to run (none, cleanup, bpf).
    #[arg(long, default_value = "bpf")]
    pub pipeline: String,
    /// Inline bpf-to-bpf calls instead of keeping them as functions.
    #[arg(long)]
    pub inline_calls: bool,
    /// Smallest code even where it runs slower: repeated straight-line code becomes a
    /// counted loop. Without it, nothing that costs run time is done to save size.
    #[arg(long)]
    pub size: bool,
}

/// The target whose cost model a pipeline optimizes for.
pub fn target_of_pipeline(name: &str) -> Target {
    Target::from_name(name).unwrap_or(Target::Bpf)
}

/// One program's instruction counts before and after.
pub struct OptimizedProgram {
    pub name: String,
    pub insns_before: usize,
    pub insns_after: usize,
}

/// Lifts, optimizes and re-emits `obj`; returns the ELF bytes and the per-program counts.
/// Without the original file's bytes the output has no BTF; see [`optimize_original`].
pub fn optimize(
    obj: &frontend::Object,
    pipeline_name: &str,
    inline_calls: bool,
) -> Result<(Vec<u8>, Vec<OptimizedProgram>, usize, usize), String> {
    optimize_original(obj, None, pipeline_name, inline_calls, false)
}

/// Like [`optimize`]; `original` is the object file's bytes, whose BTF the output carries
/// over (BTF-defined maps stay in `.maps` with their types); `size` trades run time for size
/// (see [`OptArgs::size`]).
pub fn optimize_original(
    obj: &frontend::Object,
    original: Option<&[u8]>,
    pipeline_name: &str,
    inline_calls: bool,
    size: bool,
) -> Result<(Vec<u8>, Vec<OptimizedProgram>, usize, usize), String> {
    let pipe = pipeline(pipeline_name).ok_or_else(|| {
        format!(
            "there is no pipeline `{pipeline_name}`; the pipelines are: {}",
            PIPELINE_NAMES.join(", ")
        )
    })?;
    let opts = frontend::lift::LiftOptions { inline_calls };
    let mut module = frontend::lift::lift_object(obj, &opts).map_err(|d| d.to_string())?;
    let ir_before = count_insts(&module);
    let mut ctx = PassContext::new(target_of_pipeline(pipeline_name));
    PassManager::new()
        .run(&pipe, &mut module, &mut ctx)
        .map_err(|e| e.to_string())?;
    let ir_after = count_insts(&module);
    let mut options = backends::bpf::ObjectOptions::from_original(obj, original)
        .map_err(|e| format!("{}: {e}", obj.name))?;
    options.code.reroll_loops = size;
    let bytes =
        backends::bpf::emit_object_with(&module, &obj.name, &options).map_err(|d| d.to_string())?;
    let emitted = frontend::elf::read_object(&bytes, &obj.name)
        .map_err(|d| format!("nicc cannot read back the object it wrote (a bug in nicc): {d}"))?;
    let programs = obj
        .programs
        .iter()
        .map(|p| OptimizedProgram {
            name: p.name.clone(),
            insns_before: p.insns.len(),
            insns_after: emitted
                .programs
                .iter()
                .find(|q| q.name == p.name)
                .map_or(0, |q| q.insns.len()),
        })
        .collect();
    Ok((bytes, programs, ir_before, ir_after))
}

/// Lifts `obj` and runs pipeline `pipeline_name` over it: the module `nicc opt` re-emits.
pub fn optimized_module(
    obj: &frontend::Object,
    pipeline_name: &str,
    inline_calls: bool,
) -> Result<ir::Module, String> {
    let pipe =
        pipeline(pipeline_name).ok_or_else(|| format!("there is no pipeline `{pipeline_name}`"))?;
    let opts = frontend::lift::LiftOptions { inline_calls };
    let mut module = frontend::lift::lift_object(obj, &opts).map_err(|d| d.to_string())?;
    let mut ctx = PassContext::new(target_of_pipeline(pipeline_name));
    PassManager::new()
        .run(&pipe, &mut module, &mut ctx)
        .map_err(|e| e.to_string())?;
    Ok(module)
}

pub fn opt(args: &OptArgs) -> Result<String, String> {
    let obj = super::read_object(&args.object)?;
    let original = std::fs::read(&args.object).ok();
    let (bytes, programs, ir_before, ir_after) = optimize_original(
        &obj,
        original.as_deref(),
        &args.pipeline,
        args.inline_calls,
        args.size,
    )?;
    std::fs::write(&args.output, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} -> {} (pipeline {}): IR {} -> {} instructions",
        args.object.display(),
        args.output.display(),
        args.pipeline,
        ir_before,
        ir_after
    );
    for p in &programs {
        let _ = writeln!(
            s,
            "  {:32} {:5} -> {:5} BPF instructions",
            p.name, p.insns_before, p.insns_after
        );
    }
    Ok(s)
}
