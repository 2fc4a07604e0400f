//! The BPF backend over the corpus: every XDP program the kernel accepts is lifted to IR,
//! re-emitted by `backends::bpf` as a new ELF object, read back by nicc's frontend, and then
//!
//! (a) run by the interpreter next to the original over the pcap corpus and the generated
//!     packets: verdicts, packet bytes and final maps must be identical;
//! (b) loaded into the kernel: the verifier must accept it (the count is printed);
//! (c) run by the kernel next to the original on the same packets: identical results.
//!
//! Each program is re-emitted twice: from the IR as lifted (pipeline `none`) and after the
//! `bpf` optimization pipeline. Instruction counts before and after are printed for both.

mod support;

use frontend::insn::{decode_all, CallTarget, Insn};
use frontend::lift::{lift_object, lift_program, LiftOptions};
use frontend::object::{Object, ProgramKind};
use hw::linux::{KernelObject, XdpCtx};
use sim::interp::run_xdp;
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};

/// Helpers whose results differ between two kernel runs (the clock, random numbers); for
/// programs calling them only faults and load failures count in the kernel comparison.
const NONDETERMINISTIC_HELPERS: [i32; 5] = [5, 7, 125, 160, 208];

fn corpus_packets() -> Vec<Vec<u8>> {
    let mut packets: Vec<Vec<u8>> = Vec::new();
    for path in support::files_under(&support::corpus().join("pcap"), &|_| true) {
        // Damaged captures are part of the corpus; what can be read of them is used.
        if let Ok(capture) = sim::pcap::read_file(&path) {
            packets.extend(capture.ethernet().map(|p| p.data.clone()));
        }
    }
    packets.extend(support::packets::generated());
    packets
}

fn is_nondeterministic(obj: &Object, program: usize) -> bool {
    decode_all(&obj.programs[program].insns).is_ok_and(|insns| {
        NONDETERMINISTIC_HELPERS
            .iter()
            .any(|id| insns.contains(&Insn::Call(CallTarget::Helper(*id))))
    })
}

/// Lifts the whole object when possible (so tail-call siblings come along), else the one
/// program, and runs the named pass pipeline over it.
fn lift(obj: &Object, program: usize, pipeline: &str) -> Result<ir::Module, String> {
    let opts = LiftOptions::default();
    let mut module = lift_object(obj, &opts)
        .or_else(|_| lift_program(obj, program, &opts))
        .map_err(|d| d.to_string())?;
    let pipeline = passes::pipeline(pipeline).ok_or("no such pipeline")?;
    passes::PassManager::new()
        .verify_each(true)
        .run(
            &pipeline,
            &mut module,
            &mut passes::PassContext::new(pipeline.target),
        )
        .map_err(|e| format!("pipeline {}: {e}", pipeline.name))?;
    Ok(module)
}

/// Runs both objects' programs in the interpreter over every packet; the differences found.
fn interpreter_differences(
    a: &Object,
    pa: usize,
    b: &Object,
    pb: usize,
    packets: &[Vec<u8>],
) -> Vec<String> {
    let mut out = Vec::new();
    let (Ok(mut ra), Ok(mut rb)) = (
        Runtime::new(a, RuntimeConfig::default()),
        Runtime::new(b, RuntimeConfig::default()),
    ) else {
        return vec!["a runtime could not be built".into()];
    };
    for (k, p) in packets.iter().enumerate() {
        let input = XdpInput::new(p.clone());
        let x = run_xdp(a, pa, &mut ra, &input);
        let y = run_xdp(b, pb, &mut rb, &input);
        let same = match (&x, &y) {
            (Ok(x), Ok(y)) => {
                x.retval == y.retval
                    && x.packet == y.packet
                    && x.meta == y.meta
                    && format!("{:?}", x.redirect) == format!("{:?}", y.redirect)
            }
            (Err(_), Err(_)) => true,
            _ => false,
        };
        if !same {
            out.push(format!(
                "packet {k}: original {:?} / re-emitted {:?}",
                x.map(|o| (o.retval, o.packet.len())).map_err(|d| d.message),
                y.map(|o| (o.retval, o.packet.len())).map_err(|d| d.message)
            ));
        }
    }
    let (sa, sb) = (ra.snapshot(), rb.snapshot());
    if sa != sb {
        out.push("final map contents differ".into());
    }
    out
}

/// Runs both programs in the kernel over every packet; the differences found.
fn kernel_differences(
    ka: &KernelObject,
    kb: &KernelObject,
    pa: usize,
    pb: usize,
    packets: &[Vec<u8>],
    values_too: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, p) in packets.iter().enumerate() {
        let x = ka.test_run_xdp(pa, p, &XdpCtx::default());
        let y = kb.test_run_xdp(pb, p, &XdpCtx::default());
        let same = match (&x, &y) {
            (Ok(x), Ok(y)) => !values_too || (x.retval == y.retval && x.packet == y.packet),
            (Err(_), Err(_)) => true,
            _ => false,
        };
        if !same {
            out.push(format!(
                "packet {k}: original {:?} / re-emitted {:?}",
                x.map(|r| (r.retval, r.packet.len()))
                    .map_err(|e| e.to_string()),
                y.map(|r| (r.retval, r.packet.len()))
                    .map_err(|e| e.to_string())
            ));
        }
    }
    if values_too {
        match (ka.snapshot(), kb.snapshot()) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(_), Ok(_)) => out.push("final kernel map contents differ".into()),
            (a, b) => out.push(format!(
                "map snapshot failed: {:?} / {:?}",
                a.err().map(|e| e.to_string()),
                b.err().map(|e| e.to_string())
            )),
        }
    }
    out
}

#[test]
fn reemitted_xdp_programs_match_the_originals() {
    check_corpus("none");
}

#[test]
fn optimized_reemitted_xdp_programs_match_the_originals() {
    check_corpus("bpf");
}

fn check_corpus(pipeline: &str) {
    if let Err(why) = hw::linux::kernel_available() {
        panic!("this test needs the kernel's bpf() (run as root on Linux): {why}");
    }
    let packets = corpus_packets();
    println!("pipeline {pipeline}: {} packets", packets.len());
    let (mut total, mut accepted, mut clean) = (0, 0, 0);
    let (mut before_sum, mut after_sum) = (0usize, 0usize);
    let mut failures: Vec<String> = Vec::new();
    for path in support::valid_objects() {
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for (p, prog) in obj.programs.iter().enumerate() {
            if prog.kind != ProgramKind::Xdp || KernelObject::load(&obj, &[p]).is_err() {
                continue;
            }
            total += 1;
            let what = format!("{name} {}", prog.name);
            let module = match lift(&obj, p, pipeline) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!("{what}: lifting failed: {e}"));
                    continue;
                }
            };
            let original = std::fs::read(&path).ok();
            let mut options =
                match backends::bpf::ObjectOptions::from_original(&obj, original.as_deref()) {
                    Ok(o) => o,
                    Err(e) => {
                        failures.push(format!("{what}: the original's BTF: {e}"));
                        continue;
                    }
                };
            // This test checks the backend's own code, so no program may fall back to the
            // original's (`nicc opt` and `bench_opt_figures_over_the_corpus` do).
            options.originals = None;
            let reemitted = backends::bpf::emit_object_with(&module, &name, &options)
                .and_then(|bytes| frontend::elf::read_object(&bytes, &name));
            let new = match reemitted {
                Ok(o) => o,
                Err(d) => {
                    failures.push(format!("{what}: re-emitting failed: {d}"));
                    continue;
                }
            };
            let Some(q) = new.programs.iter().position(|x| x.name == prog.name) else {
                failures.push(format!("{what}: the re-emitted object lacks the program"));
                continue;
            };
            let (before, after) = (prog.insns.len(), new.programs[q].insns.len());
            before_sum += before;
            after_sum += after;
            let mut problems = interpreter_differences(&obj, p, &new, q, &packets);
            let verdict = match KernelObject::load(&new, &[q]) {
                Ok(kb) => {
                    accepted += 1;
                    let ka = KernelObject::load(&obj, &[p]).expect("loaded before");
                    let values = !is_nondeterministic(&obj, p);
                    problems.extend(kernel_differences(&ka, &kb, p, q, &packets, values));
                    "accepted"
                }
                Err(e) => {
                    problems.push(format!(
                        "the verifier refused the re-emitted program: {}",
                        e.verifier_log_tail(6).unwrap_or_else(|| e.to_string())
                    ));
                    "REFUSED"
                }
            };
            println!(
                "{what:60} {before:5} -> {after:5} insns, kernel {verdict}, {} differences",
                problems.len()
            );
            if problems.is_empty() {
                clean += 1;
            } else {
                for m in problems.iter().take(4) {
                    println!("    {m}");
                }
                failures.push(format!("{what}: {}", problems[0]));
            }
        }
    }
    println!(
        "pipeline {pipeline}: {total} kernel-accepted XDP programs; re-emitted programs accepted by the verifier: {accepted}/{total}; identical behaviour: {clean}/{total}; instructions {before_sum} -> {after_sum}"
    );
    assert!(
        total >= 20,
        "only {total} kernel-accepted XDP programs found"
    );
    assert!(
        failures.is_empty(),
        "{} programs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The figures `nicc bench-opt` prints, over every program of the corpus (not only XDP): the
/// kernel must accept every re-emitted program whose original it accepts, kernel runs of XDP
/// originals and outputs must agree, and the instruction totals are printed. By default no
/// program may gain a loop the original did not have.
#[test]
fn bench_opt_figures_over_the_corpus() {
    let m = bench_opt_figures(false);
    assert_eq!(
        m.rerolled, 0,
        "without --size the backend must not trade run time for size"
    );
}

/// The same with `--size`, where repeated code may become counted loops: the kernel must
/// still accept and agree on every output.
#[test]
fn bench_opt_size_figures_over_the_corpus() {
    bench_opt_figures(true);
}

fn bench_opt_figures(size: bool) -> nicc::commands::bench_opt::Summary {
    if let Err(why) = hw::linux::kernel_available() {
        panic!("this test needs the kernel's bpf() (run as root on Linux): {why}");
    }
    let args = nicc::commands::bench_opt::BenchOptArgs {
        dir: support::corpus().join("elf"),
        pcap: support::corpus().join("mix.pcap"),
        pipeline: "bpf".to_string(),
        size,
    };
    let rows = nicc::commands::bench_opt::bench_rows(&args).unwrap_or_else(|e| panic!("{e}"));
    let m = nicc::commands::bench_opt::summarize(&rows);
    println!(
        "size {size}: {} programs; originals accepted by the kernel: {}; re-emitted programs accepted: {}/{}; \
         instructions {} -> {}; per-program reduction mean {:.2}%, best {:.2}%, worst {:.2}%; \
         with a rerolled loop {}; unexplained kernel differences: {}",
        m.programs,
        m.originals_accepted,
        m.outputs_accepted,
        m.originals_accepted,
        m.insns_before,
        m.insns_after,
        100.0 * m.mean_reduction,
        100.0 * m.best_reduction,
        100.0 * m.worst_reduction,
        m.rerolled,
        m.unexplained_differences
    );
    let refused: Vec<String> = rows
        .iter()
        .filter(|r| r.kernel_original == Some(true) && r.kernel_output == Some(false))
        .map(|r| format!("{} {}: {}", r.object, r.program, r.check))
        .collect();
    assert!(
        m.originals_accepted >= 100,
        "only {} kernel-accepted programs were re-emitted",
        m.originals_accepted
    );
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
    // One-function programs fall back to their original code, so no program may grow; a
    // program with subprograms that grows is a regression of the backend.
    let grown: Vec<String> = rows
        .iter()
        .filter(|r| r.kernel_original == Some(true) && r.after.is_some_and(|a| a > r.before))
        .map(|r| format!("{} {}: {} -> {:?}", r.object, r.program, r.before, r.after))
        .collect();
    assert!(
        grown.is_empty(),
        "programs that grew:\n{}",
        grown.join("\n")
    );
    assert_eq!(m.outputs_accepted, m.originals_accepted);
    assert_eq!(
        m.unexplained_differences,
        0,
        "{}",
        rows.iter()
            .filter(|r| r.check.contains("DIFFERENCES") && !r.check.contains("(expected"))
            .map(|r| format!("{} {}: {}", r.object, r.program, r.check))
            .collect::<Vec<_>>()
            .join("\n")
    );
    m
}
