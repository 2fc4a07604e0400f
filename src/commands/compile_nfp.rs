//! `nicc compile --target nfp` and `nicc check --target nfp`.
//!
//! `compile` lifts each XDP program (calls inlined), optimizes it with the `nfp` pipeline (or
//! the one asked for) and compiles it to microcode: for output stem `OUT` it writes
//! `OUT.ucode` (one 64-bit code-store word per line, hex), `OUT.lst` (the assembler listing)
//! and `OUT.json` (the maps and where they live, the entry point, the relocations the loader
//! applies). With several programs each gets `OUT.<program>.*`. `check` compiles without
//! writing and says, program by program, whether it fits and by how much it does not.

use super::check::CheckArgs;
use super::compile::CompileArgs;
use backends::nfp::kernel_offload::kernel_offload_verdict;
use backends::nfp::link::compile_linked;
use backends::nfp::NfpProgram;
use frontend::lift::{lift_program, LiftOptions};
use frontend::object::ProgramKind;
use frontend::Diagnostic;
use frontend::Object;
use hw::nfp::abi::{MapPlacement, Relocation};
use passes::pass::PassContext;
use passes::pipeline::{pipeline, PassManager, PIPELINE_NAMES};
use serde::Serialize;
use std::fmt::Write;

/// The JSON description written beside the words.
#[derive(Serialize)]
pub struct Description {
    pub target: &'static str,
    pub program: String,
    pub section: String,
    /// Code-store address of the first instruction.
    pub entry: usize,
    pub words: usize,
    pub bpf_instructions: usize,
    pub registers: usize,
    pub lm_windows: usize,
    pub maps: Vec<MapPlacement>,
    pub relocations: Vec<Relocation>,
}

/// Lifts program `index` of `obj` with calls inlined, runs `pipeline_name` and compiles it;
/// when it makes tail calls, the object's other XDP programs are linked into the same code
/// store as their possible targets.
pub fn compile_program(
    obj: &Object,
    index: usize,
    pipeline_name: &str,
) -> Result<NfpProgram, String> {
    let pipe = pipeline(pipeline_name).ok_or_else(|| {
        format!(
            "there is no pipeline `{pipeline_name}`; the pipelines are: {}",
            PIPELINE_NAMES.join(", ")
        )
    })?;
    let lift = |i: usize| -> Result<ir::Module, Diagnostic> {
        let name = obj
            .programs
            .get(i)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let mut module = lift_program(obj, i, &LiftOptions { inline_calls: true })?;
        PassManager::new()
            .run(&pipe, &mut module, &mut PassContext::new(pipe.target))
            .map_err(|e| Diagnostic::new(format!("pipeline {pipeline_name}: {e}")).program(name))?;
        Ok(module)
    };
    let candidates: Vec<usize> = obj
        .programs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind == ProgramKind::Xdp)
        .map(|(i, _)| i)
        .collect();
    compile_linked(&lift, index, &candidates).map_err(|d| {
        d.object(obj.name.clone())
            .with_source(&obj.programs[index])
            .to_string()
    })
}

fn xdp_programs(obj: &Object, name: Option<&str>) -> Result<Vec<usize>, String> {
    match name {
        Some(n) => Ok(vec![super::select_program(obj, Some(n))?]),
        None => {
            let v: Vec<usize> = obj
                .programs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.kind == ProgramKind::Xdp)
                .map(|(i, _)| i)
                .collect();
            if v.is_empty() {
                Err(format!("{} has no XDP program", obj.name))
            } else {
                Ok(v)
            }
        }
    }
}

pub fn compile(args: &CompileArgs) -> Result<String, String> {
    let obj = super::read_object(&args.object)?;
    let programs = xdp_programs(&obj, args.program.as_deref())?;
    let pipeline_name = args.pipeline.as_deref().unwrap_or("nfp");
    let mut out = String::new();
    for &i in &programs {
        let p = &obj.programs[i];
        let prog = compile_program(&obj, i, pipeline_name)?;
        let stem = if programs.len() == 1 {
            args.output.clone()
        } else {
            let mut s = args.output.clone().into_os_string();
            s.push(format!(".{}", p.name));
            s.into()
        };
        let with_ext = |e: &str| {
            let mut s = stem.clone().into_os_string();
            s.push(format!(".{e}"));
            std::path::PathBuf::from(s)
        };
        let mut words = String::new();
        for w in &prog.words {
            let _ = writeln!(words, "{w:016x}");
        }
        let desc = Description {
            target: "nfp",
            program: p.name.clone(),
            section: p.section.clone(),
            entry: 0,
            words: prog.words.len(),
            bpf_instructions: p.insns.len(),
            registers: prog.registers,
            lm_windows: prog.lm_windows,
            maps: prog.maps.clone(),
            relocations: prog.relocations.clone(),
        };
        let json = serde_json::to_string_pretty(&desc).map_err(|e| e.to_string())?;
        for (path, text) in [
            (with_ext("ucode"), words),
            (with_ext("lst"), prog.listing()),
            (with_ext("json"), json + "\n"),
        ] {
            std::fs::write(&path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        let _ = writeln!(
            out,
            "{}: {} BPF instructions -> {} microcode words ({}); {} registers; wrote {}.ucode/.lst/.json",
            p.name,
            p.insns.len(),
            prog.words.len(),
            format_args!("{:.2} per BPF instruction", prog.words.len() as f64 / p.insns.len().max(1) as f64),
            prog.registers,
            stem.display()
        );
    }
    Ok(out)
}

/// What `check` found for one program.
#[derive(Serialize)]
pub struct CheckResult {
    pub program: String,
    pub fits: bool,
    pub words: Option<usize>,
    pub code_store: usize,
    pub registers: Option<usize>,
    pub maps: Vec<MapPlacement>,
    pub reason: Option<String>,
    /// BPF instruction slots of the program.
    pub bpf_instructions: usize,
    /// What the Linux kernel's own NFP offload would say: `None` when it takes the program,
    /// else the first rule the program breaks (`backends::nfp::kernel_offload`).
    pub kernel_offload_refuses: Option<String>,
}

pub fn check(args: &CheckArgs) -> Result<String, String> {
    let obj = super::read_object(&args.object)?;
    let programs = xdp_programs(&obj, args.program.as_deref())?;
    let mut results = Vec::new();
    for &i in &programs {
        let p = &obj.programs[i];
        let bpf_instructions = p.insns.len();
        let kernel_offload_refuses = kernel_offload_verdict(&obj, i).err();
        results.push(match compile_program(&obj, i, "nfp") {
            Ok(prog) => CheckResult {
                program: p.name.clone(),
                fits: true,
                words: Some(prog.words.len()),
                code_store: hw::nfp::CODE_STORE_WORDS,
                registers: Some(prog.registers),
                maps: prog.maps,
                reason: None,
                bpf_instructions,
                kernel_offload_refuses,
            },
            Err(e) => CheckResult {
                program: p.name.clone(),
                fits: false,
                words: None,
                code_store: hw::nfp::CODE_STORE_WORDS,
                registers: None,
                maps: Vec::new(),
                reason: Some(e),
                bpf_instructions,
                kernel_offload_refuses,
            },
        });
    }
    if args.json {
        return serde_json::to_string_pretty(&results)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string());
    }
    let mut out = String::new();
    for r in &results {
        let _ = writeln!(
            out,
            "{}: the kernel's own NFP offload {}",
            r.program,
            match &r.kernel_offload_refuses {
                None => "would take it".to_string(),
                Some(why) => format!("would refuse it: {why}"),
            }
        );
        if r.fits {
            let words = r.words.unwrap_or(0);
            let _ = writeln!(
                out,
                "{}: fits: {} of {} code-store words ({:.2} per BPF instruction), {} of 26 registers",
                r.program,
                words,
                r.code_store,
                words as f64 / r.bpf_instructions.max(1) as f64,
                r.registers.unwrap_or(0)
            );
            for m in &r.maps {
                let _ = writeln!(out, "  map {}: {} bytes in {}", m.name, m.bytes, m.memory);
            }
        } else {
            let _ = writeln!(
                out,
                "{}: does not fit: {}",
                r.program,
                r.reason.as_deref().unwrap_or("")
            );
        }
    }
    Ok(out)
}
