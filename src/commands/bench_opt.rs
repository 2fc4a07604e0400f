//! `nicc bench-opt [DIR]`: the optimizer's report card over a folder of objects. For every
//! program: BPF instructions before and after `nicc opt`, the time lifting, optimizing and
//! re-emitting took, whether the kernel verifier accepts the original and the output, and for
//! XDP programs the verdict of running both in the kernel on the same packets. Programs in
//! which the backend rerolled repeated code into a loop are counted apart, with the mean
//! reduction over the others, since a loop trades run time for size.

use frontend::object::ProgramKind;
use hw::linux::{KernelError, KernelObject, XdpCtx};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BenchOptArgs {
    /// A folder searched recursively for `.o` files (`invalid/` folders are skipped).
    #[arg(default_value = "../shared/corpus/elf")]
    pub dir: PathBuf,
    /// The packets for the kernel-versus-kernel check of XDP programs.
    #[arg(long, default_value = "../shared/corpus/mix.pcap")]
    pub pcap: PathBuf,
    /// The pipeline `nicc opt` runs.
    #[arg(long, default_value = "bpf")]
    pub pipeline: String,
    /// Measure `nicc opt --size`: repeated code may become loops that run slower.
    #[arg(long)]
    pub size: bool,
}

/// One program's row.
#[derive(Clone, Debug)]
pub struct Row {
    pub object: String,
    pub program: String,
    pub before: usize,
    pub after: Option<usize>,
    /// Lifting, optimizing and re-emitting the object, divided among its programs.
    pub micros: u128,
    pub kernel_original: Option<bool>,
    pub kernel_output: Option<bool>,
    pub check: String,
    /// The output has more counted loops (see [`counted_loops`]) than the original: the
    /// backend rerolled repeated code, trading run time for size.
    pub rerolled: bool,
}

/// The figures over every program whose original the kernel accepts and which was re-emitted.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub programs: usize,
    pub originals_accepted: usize,
    pub outputs_accepted: usize,
    pub insns_before: usize,
    pub insns_after: usize,
    /// Per-program reduction `1 - after/before`: the mean, the best and the worst.
    pub mean_reduction: f64,
    pub best_reduction: f64,
    pub worst_reduction: f64,
    pub mean_micros: f64,
    pub max_micros: u128,
    /// XDP programs whose kernel runs differ for a reason other than a random or clock helper.
    pub unexplained_differences: usize,
    /// Programs whose output is shorter than, as long as, and longer than the original.
    pub smaller: usize,
    pub equal: usize,
    pub larger: usize,
    /// Programs with a rerolled loop, and the mean reduction over the other programs.
    pub rerolled: usize,
    pub mean_reduction_not_rerolled: f64,
}

/// Loops ending the way the BPF backend's rerolling ends them: `rC += -1; if rC != 0 goto`
/// back. Comparing the count in an original and its output tells whether the backend made a
/// loop of repeated code.
pub fn counted_loops(raw: &[frontend::insn::RawInsn]) -> usize {
    use frontend::insn::{Insn, Operand};
    use ir::semantics::{AluOp, JmpCond};
    // A program the decoder refuses has no loop of this kind as far as the count goes.
    let insns = frontend::insn::decode_all(raw).unwrap_or_default();
    insns
        .windows(2)
        .filter(|pair| match pair {
            [Insn::Alu {
                op: AluOp::Add,
                dst: counter,
                src: Operand::Imm(-1),
                ..
            }, Insn::Jmp {
                cond: JmpCond::Ne,
                dst,
                src: Operand::Imm(0),
                off,
                ..
            }] => dst == counter && *off < 0,
            _ => false,
        })
        .count()
}

fn objects(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "invalid") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "o") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs every packet through both kernel programs and compares verdicts, bytes and maps.
fn kernel_vs_kernel(
    original: &KernelObject,
    i: usize,
    output: &KernelObject,
    j: usize,
    packets: &[Vec<u8>],
) -> String {
    let (mut compared, mut differ) = (0, 0);
    for p in packets {
        let (a, b) = (
            original.test_run_xdp(i, p, &XdpCtx::default()),
            output.test_run_xdp(j, p, &XdpCtx::default()),
        );
        match (a, b) {
            (Err(KernelError::PacketRejected { .. }), Err(KernelError::PacketRejected { .. })) => {}
            (Ok(a), Ok(b)) => {
                compared += 1;
                if a.retval != b.retval || a.packet != b.packet {
                    differ += 1;
                }
            }
            _ => differ += 1,
        }
    }
    let maps = match (original.snapshot(), output.snapshot()) {
        (Ok(a), Ok(b)) if a == b => "maps equal",
        (Ok(_), Ok(_)) => {
            differ += 1;
            "maps differ"
        }
        _ => "maps unreadable",
    };
    if differ == 0 {
        format!("identical on {compared} packets, {maps}")
    } else {
        format!("{differ} DIFFERENCES over {compared} packets, {maps}")
    }
}

pub fn bench_opt(args: &BenchOptArgs) -> Result<String, String> {
    let rows = bench_rows(args)?;
    let wins = strategy_wins(args);
    let mut out = format_rows(&rows);
    // The summary stays the last line; the allocation figures go just before it.
    let summary_at = out.trim_end().rfind('\n').map_or(0, |k| k + 1);
    out.insert_str(summary_at, &format_wins(&wins));
    Ok(out)
}

/// For every allocation strategy of the BPF backend: in how many functions of the folder's
/// objects its code is strictly the shortest, and how many functions end in a tie.
#[derive(Clone, Debug, Default)]
pub struct StrategyWins {
    pub functions: usize,
    pub strict: Vec<(&'static str, usize)>,
    pub ties: usize,
}

/// Compiles every function of every object with each allocation strategy (outside the
/// timed part of [`bench_rows`]).
pub fn strategy_wins(args: &BenchOptArgs) -> StrategyWins {
    let mut wins = StrategyWins {
        strict: backends::bpf::ALLOCATORS
            .iter()
            .map(|(name, _)| (*name, 0))
            .collect(),
        ..StrategyWins::default()
    };
    for path in objects(&args.dir) {
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        let Ok(module) = super::opt::optimized_module(&obj, &args.pipeline, false) else {
            continue;
        };
        for fref in module.functions.keys() {
            let lengths = backends::bpf::strategy_lengths(&module, fref);
            let Some(best) = lengths.iter().filter_map(|(_, n)| *n).min() else {
                continue;
            };
            wins.functions += 1;
            let at_best: Vec<usize> = (0..lengths.len())
                .filter(|&k| lengths[k].1 == Some(best))
                .collect();
            match at_best.as_slice() {
                [k] => wins.strict[*k].1 += 1,
                _ => wins.ties += 1,
            }
        }
    }
    wins
}

fn format_wins(wins: &StrategyWins) -> String {
    let strict: Vec<String> = wins
        .strict
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    format!(
        "allocation strategies over {} functions: strictly shortest code: {}; tied: {}\n",
        wins.functions,
        strict.join(", "),
        wins.ties
    )
}

/// Every program's row, for [`bench_opt`] and for tests.
pub fn bench_rows(args: &BenchOptArgs) -> Result<Vec<Row>, String> {
    hw::linux::kernel_available()?;
    let capture = sim::pcap::read_file(&args.pcap)?;
    let packets: Vec<Vec<u8>> = capture.ethernet().map(|p| p.data.clone()).collect();
    let mut rows = Vec::new();
    for path in objects(&args.dir) {
        let rel = path
            .strip_prefix(&args.dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        let start = Instant::now();
        let original = std::fs::read(&path).ok();
        let optimized = super::opt::optimize_original(
            &obj,
            original.as_deref(),
            &args.pipeline,
            false,
            args.size,
        );
        let micros = start.elapsed().as_micros() / obj.programs.len().max(1) as u128;
        let emitted = optimized
            .as_ref()
            .ok()
            .and_then(|(bytes, ..)| frontend::elf::read_object(bytes, &obj.name).ok());
        for (i, p) in obj.programs.iter().enumerate() {
            let j = emitted
                .as_ref()
                .and_then(|e| e.programs.iter().position(|q| q.name == p.name));
            let original = KernelObject::load(&obj, &[i]);
            let output = match (&emitted, j) {
                (Some(e), Some(j)) => Some(KernelObject::load(e, &[j])),
                _ => None,
            };
            let check = match (&optimized, &original, &output) {
                (Err(e), ..) => format!("not optimized: {}", e.lines().next().unwrap_or("")),
                (_, Ok(o), Some(Ok(q))) if p.kind == ProgramKind::Xdp => {
                    let verdict = kernel_vs_kernel(o, i, q, j.unwrap_or(0), &packets);
                    let random = crate::kernel_diff::nondeterministic_helpers(p);
                    if random.is_empty() {
                        verdict
                    } else {
                        // Two runs of such a program differ even in one engine.
                        format!("{verdict} (expected: calls {})", random.join(", "))
                    }
                }
                (_, Ok(_), Some(Err(e))) => format!(
                    "REFUSED by the verifier: {}",
                    e.verifier_reason().unwrap_or("").trim()
                ),
                (_, Ok(_), Some(Ok(_))) => "loads (not XDP: no packet check)".to_string(),
                (_, Err(_), _) => "original refused by the verifier".to_string(),
                _ => "missing from the output".to_string(),
            };
            let output_insns = j.and_then(|j| emitted.as_ref().map(|e| &e.programs[j].insns));
            rows.push(Row {
                object: rel.clone(),
                program: p.name.clone(),
                before: p.insns.len(),
                after: output_insns.map(Vec::len),
                rerolled: output_insns
                    .is_some_and(|out| counted_loops(out) > counted_loops(&p.insns)),
                micros,
                kernel_original: Some(original.is_ok()),
                kernel_output: output.as_ref().map(|o| o.is_ok()),
                check,
            });
        }
    }
    Ok(rows)
}

/// The summary figures of a set of rows.
pub fn summarize(rows: &[Row]) -> Summary {
    let both: Vec<&Row> = rows
        .iter()
        .filter(|r| r.kernel_original == Some(true) && r.after.is_some())
        .collect();
    let reductions: Vec<f64> = both
        .iter()
        .filter(|r| r.before > 0)
        .map(|r| 1.0 - r.after.unwrap_or(0) as f64 / r.before as f64)
        .collect();
    let n = reductions.len().max(1) as f64;
    let not_rerolled: Vec<f64> = both
        .iter()
        .filter(|r| r.before > 0 && !r.rerolled)
        .map(|r| 1.0 - r.after.unwrap_or(0) as f64 / r.before as f64)
        .collect();
    Summary {
        programs: rows.len(),
        originals_accepted: both.len(),
        outputs_accepted: both
            .iter()
            .filter(|r| r.kernel_output == Some(true))
            .count(),
        insns_before: both.iter().map(|r| r.before).sum(),
        insns_after: both.iter().map(|r| r.after.unwrap_or(0)).sum(),
        mean_reduction: reductions.iter().sum::<f64>() / n,
        best_reduction: reductions.iter().copied().fold(f64::NAN, f64::max),
        worst_reduction: reductions.iter().copied().fold(f64::NAN, f64::min),
        mean_micros: both.iter().map(|r| r.micros as f64).sum::<f64>() / both.len().max(1) as f64,
        max_micros: both.iter().map(|r| r.micros).max().unwrap_or(0),
        unexplained_differences: rows
            .iter()
            .filter(|r| r.check.contains("DIFFERENCES") && !r.check.contains("(expected"))
            .count(),
        smaller: both.iter().filter(|r| r.after < Some(r.before)).count(),
        equal: both.iter().filter(|r| r.after == Some(r.before)).count(),
        larger: both.iter().filter(|r| r.after > Some(r.before)).count(),
        rerolled: both.iter().filter(|r| r.rerolled).count(),
        mean_reduction_not_rerolled: not_rerolled.iter().sum::<f64>()
            / not_rerolled.len().max(1) as f64,
    }
}

fn format_rows(rows: &[Row]) -> String {
    let yes = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:45} {:34} {:>6} {:>6} {:>9} {:>5} {:>5}  check",
        "object", "program", "before", "after", "time(us)", "k.in", "k.out"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:45} {:34} {:>6} {:>6} {:>9} {:>5} {:>5}  {}",
            r.object,
            r.program,
            r.before,
            r.after.map_or("-".to_string(), |a| a.to_string()),
            r.micros,
            yes(r.kernel_original),
            yes(r.kernel_output),
            r.check
        );
    }
    let m = summarize(rows);
    let _ = writeln!(
        s,
        "{} programs; the kernel accepted {} originals and {} of their outputs; \
         instructions {} -> {}; per-program reduction: mean {:.2}%, best {:.2}%, worst {:.2}%; \
         smaller {}, equal {}, larger {}; \
         with a rerolled loop {} (mean over the others {:.2}%); \
         time per program: mean {:.0} us, max {} us; \
         XDP programs with unexplained kernel differences: {}",
        m.programs,
        m.originals_accepted,
        m.outputs_accepted,
        m.insns_before,
        m.insns_after,
        100.0 * m.mean_reduction,
        100.0 * m.best_reduction,
        100.0 * m.worst_reduction,
        m.smaller,
        m.equal,
        m.larger,
        m.rerolled,
        100.0 * m.mean_reduction_not_rerolled,
        m.mean_micros,
        m.max_micros,
        m.unexplained_differences
    );
    s
}
