//! The programs the Verilog pipeline tests run, chosen and compiled in one place: a corpus
//! object by path, a program compiled as `nicc compile --target verilog` compiles it (calls
//! inlined, the `hw` pass pipeline, the default delay model), the runtime it starts from (with
//! the map seed the corpus needs, if any), and every kernel-accepted XDP program of the corpus
//! with its compiled pipeline or the backend's reason for refusing it.
//!
//! A test includes it beside `mod support;` with
//! `#[path = "support/verilog_programs.rs"] mod verilog_programs;`, so that the tests that do
//! not compile pipelines do not compile it either.

// Each test uses the part it needs.
#![allow(dead_code)]

use backends::verilog::{compile_program, CompiledPipeline, PipelineOptions};
use frontend::lift::{lift_program, LiftOptions};
use frontend::object::ProgramKind;
use passes::pass::PassContext;
use passes::pipeline::{pipeline, PassManager};
use sim::runtime::{Runtime, RuntimeConfig};
use std::path::Path;

/// The corpus object at `rel` under `elf/`.
pub fn corpus_object(rel: &str) -> frontend::Object {
    frontend::elf::read_file(&crate::support::corpus().join("elf").join(rel))
        .expect("corpus object")
}

/// Program `i` of `obj` compiled to a pipeline, or why not.
pub fn compile(obj: &frontend::Object, i: usize) -> Result<CompiledPipeline, String> {
    let mut module = lift_program(obj, i, &LiftOptions { inline_calls: true })
        .map_err(|d| format!("not lifted: {}", d.message))?;
    let pipe = pipeline("hw").ok_or("no hw pipeline")?;
    let mut ctx = PassContext::new(pipe.target);
    PassManager::new()
        .run(&pipe, &mut module, &mut ctx)
        .map_err(|e| format!("hw pipeline failed: {e}"))?;
    let entry = module.programs[0].func;
    compile_program(
        &module,
        entry,
        &obj.programs[i].name,
        &PipelineOptions::default(),
    )
    .map_err(|r| r.to_string())
}

/// The runtime program runs of `obj` start from: empty maps, or the corpus seed for the object.
pub fn runtime_for(obj: &frontend::Object) -> Runtime {
    let mut rt = Runtime::new(obj, RuntimeConfig::default()).expect("runtime");
    let file = Path::new(&obj.name)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if let Some(seed) = crate::support::seeds::seed_for(&file, obj) {
        rt.load_snapshot(&seed).expect("seed");
    }
    rt
}

/// True when `NICC_VERILOG_ONLY` narrows the candidates (see
/// [`kernel_accepted_candidates`]), so counts are of a subset.
pub fn candidates_filtered() -> bool {
    std::env::var_os("NICC_VERILOG_ONLY").is_some()
}

/// A kernel-accepted XDP program of the corpus and what the pipeline backend made of it.
pub struct Candidate {
    /// The object's path under `elf/` and the program's name.
    pub name: String,
    pub obj: frontend::Object,
    pub index: usize,
    pub compiled: Result<CompiledPipeline, String>,
}

/// Every XDP program of the corpus the running kernel's verifier accepts, compiled (or
/// refused) for the pipeline target. Panics when the kernel cannot be asked: the tests that
/// call this must run on a machine with `bpf()`.
///
/// While developing, `NICC_VERILOG_ONLY=substring` keeps the candidates whose name contains
/// the substring (the counts printed then cover only those); unset, every program is a
/// candidate, as the committed results require.
pub fn kernel_accepted_candidates() -> Vec<Candidate> {
    if let Err(why) = hw::linux::kernel_available() {
        panic!("this test needs the kernel's bpf() to know which programs it accepts: {why}");
    }
    let only = std::env::var("NICC_VERILOG_ONLY").ok();
    let mut out = Vec::new();
    for path in crate::support::valid_objects() {
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(crate::support::corpus().join("elf"))
            .unwrap_or(&path)
            .display()
            .to_string();
        for (i, p) in obj.programs.iter().enumerate() {
            let name = format!("{rel} {}", p.name);
            if only.as_deref().is_some_and(|o| !name.contains(o)) {
                continue;
            }
            if p.kind != ProgramKind::Xdp || hw::linux::KernelObject::load(&obj, &[i]).is_err() {
                continue;
            }
            out.push(Candidate {
                name,
                compiled: compile(&obj, i),
                obj: obj.clone(),
                index: i,
            });
        }
    }
    out
}
