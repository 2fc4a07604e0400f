//! `nicc ir OBJ`: the IR of an object's programs, as lifted or after any pass of a pipeline, so
//! that a person can see what each pass did.

use passes::pass::PassContext;
use passes::pipeline::{pipeline, PassManager, PIPELINE_NAMES};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct IrArgs {
    /// The BPF ELF object.
    pub object: PathBuf,
    /// Only this program (function or section name); by default every program.
    #[arg(long)]
    pub program: Option<String>,
    /// Show the IR after this pipeline (none, cleanup, bpf, native, nfp, hw); without it and
    /// without `--after`, the IR as lifted.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Show the IR after the first run of this pass in the pipeline (`bpf` unless `--pipeline`
    /// names another) instead of after the whole pipeline.
    #[arg(long)]
    pub after: Option<String>,
    /// Inline bpf-to-bpf calls instead of keeping them as IR functions.
    #[arg(long)]
    pub inline_calls: bool,
}

pub fn ir(args: &IrArgs) -> Result<String, String> {
    let obj = super::read_object(&args.object)?;
    let opts = frontend::lift::LiftOptions {
        inline_calls: args.inline_calls,
    };
    let mut module = match &args.program {
        Some(name) => {
            let index = super::select_program(&obj, Some(name))?;
            frontend::lift::lift_program(&obj, index, &opts)
        }
        None => frontend::lift::lift_object(&obj, &opts),
    }
    .map_err(|d| d.to_string())?;
    if args.pipeline.is_some() || args.after.is_some() {
        let name = args.pipeline.as_deref().unwrap_or("bpf");
        let pipe = pipeline(name).ok_or_else(|| {
            format!(
                "there is no pipeline `{name}`; the pipelines are: {}",
                PIPELINE_NAMES.join(", ")
            )
        })?;
        let target = super::opt::target_of_pipeline(name);
        let mut ctx = PassContext::new(target);
        let mut manager = PassManager::new().verify_each(true);
        if let Some(after) = &args.after {
            manager = manager.stop_after(after.clone());
        }
        manager
            .run(&pipe, &mut module, &mut ctx)
            .map_err(|e| e.to_string())?;
    }
    Ok(ir::write::module_to_string(&module))
}

/// The pass list for `--help`-style output.
pub fn describe_passes() -> String {
    let mut s = String::from("passes:\n");
    for (name, description) in passes::pipeline::pass_descriptions() {
        s.push_str(&format!("  {name:18} {description}\n"));
    }
    s.push_str("pipelines:\n");
    for name in PIPELINE_NAMES {
        if let Some(p) = pipeline(name) {
            s.push_str(&format!(
                "  {:10} {}: {}\n",
                p.name,
                p.description,
                p.passes.join(" -> ")
            ));
        }
    }
    s
}
