//! Coverage of the NFP target against the Linux kernel's own NFP offload: for every XDP
//! program of the corpus that the running kernel's verifier accepts, would the kernel's NFP
//! offload take it (the driver's rules, `backends::nfp::kernel_offload`), and does nicc compile
//! it for the NFP model? The table is snapshotted for review; the test requires nicc to take
//! every program the kernel's offload takes, and strictly more of them.

mod support;

use backends::nfp::kernel_offload::kernel_offload_verdict;
use backends::nfp::{compile_function, EntryKind};
use frontend::lift::{lift_program, LiftOptions};
use frontend::object::ProgramKind;
use frontend::Object;
use passes::pass::PassContext;
use passes::pipeline::{pipeline, PassManager};
use std::fmt::Write;

/// Compiles program `i` as `nicc compile --target nfp` does, returning the word count or why
/// it was refused.
fn nicc_verdict(obj: &Object, i: usize) -> Result<usize, String> {
    let mut module = lift_program(obj, i, &LiftOptions { inline_calls: true })
        .map_err(|d| format!("not lifted: {}", d.message))?;
    let pipe = pipeline("nfp").ok_or("no nfp pipeline")?;
    PassManager::new()
        .run(&pipe, &mut module, &mut PassContext::new(pipe.target))
        .map_err(|e| format!("pipeline: {e}"))?;
    let entry = module.programs[0].func;
    compile_function(&module, entry, EntryKind::Xdp)
        .map(|p| p.words.len())
        .map_err(|d| {
            let at = d
                .insn
                .map(|i| format!(" (instruction {i})"))
                .unwrap_or_default();
            format!("{}{at}", d.message)
        })
}

#[test]
fn nicc_accepts_strictly_more_than_the_kernels_nfp_offload() {
    if let Err(why) = hw::linux::kernel_available() {
        panic!("this test needs the kernel's bpf() to know which programs it accepts: {why}");
    }
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<70} {:>5}  {:<8} {:<8}",
        "program", "bpf", "kernel", "nicc"
    );
    let (mut rows, mut kernel_yes, mut nicc_yes) = (0, 0, 0);
    let mut only_kernel = Vec::new();
    let mut reasons = String::new();
    for path in support::valid_objects() {
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(support::corpus().join("elf"))
            .unwrap_or(&path)
            .display()
            .to_string();
        for (i, p) in obj.programs.iter().enumerate() {
            if p.kind != ProgramKind::Xdp || hw::linux::KernelObject::load(&obj, &[i]).is_err() {
                continue;
            }
            rows += 1;
            let what = format!("{rel} {}", p.name);
            let kernel = kernel_offload_verdict(&obj, i);
            let nicc = nicc_verdict(&obj, i);
            kernel_yes += usize::from(kernel.is_ok());
            nicc_yes += usize::from(nicc.is_ok());
            if kernel.is_ok() && nicc.is_err() {
                only_kernel.push(what.clone());
            }
            let yes_no = |ok: bool| if ok { "yes" } else { "no" };
            let _ = writeln!(
                table,
                "{what:<70} {:>5}  {:<8} {:<8}",
                p.insns.len(),
                yes_no(kernel.is_ok()),
                yes_no(nicc.is_ok()),
            );
            if let Err(e) = &kernel {
                let _ = writeln!(reasons, "  kernel refuses {what}: {e}");
            }
            if let Err(e) = &nicc {
                let _ = writeln!(reasons, "  nicc refuses {what}: {e}");
            }
        }
    }
    let _ = writeln!(
        table,
        "\n{rows} kernel-accepted XDP programs: the kernel's NFP offload takes {kernel_yes}, nicc takes {nicc_yes}\n\nwhy not:\n{reasons}"
    );
    print!("{table}");
    assert!(rows >= 10, "only {rows} kernel-accepted XDP programs found");
    assert!(
        only_kernel.is_empty(),
        "the kernel's NFP offload takes programs nicc refuses: {only_kernel:?}"
    );
    assert!(
        nicc_yes > kernel_yes,
        "nicc takes {nicc_yes} programs, not more than the kernel's NFP offload ({kernel_yes})"
    );
    insta::assert_snapshot!("nfp_coverage_vs_kernel_offload", table);
}
