//! `nicc build DIR-or-OBJS --targets bpf,native,nfp,verilog -o OUT`: the build-pipeline job.
//! Every program of every object is compiled for every target, in parallel, and accounted for:
//! accepted with its figures (sizes, words, stages), or rejected with the reason. The result
//! is a table for people, a JSON report for machines, the artifacts under `OUT/<object>/`,
//! and an exit status a pipeline can act on (`--require PROGRAM[:TARGET]`, `--deny-rejects`).
//!
//! Objects and targets are independent, so the work is a flat list of jobs run by rayon. The
//! per-program figures come from the same library functions `nicc compile` and `nicc opt` use,
//! so a build and a single compile cannot disagree.

use super::compile::CompileTarget;
use frontend::object::ProgramKind;
use frontend::Object;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Objects, or folders searched recursively for `*.o` files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The targets, comma-separated: bpf (re-emitted, optimized BPF), native (the host's
    /// machine code), x86_64, aarch64, nfp, verilog.
    #[arg(long, value_delimiter = ',', default_value = "bpf,native,nfp,verilog")]
    pub targets: Vec<BuildTarget>,
    /// Where the artifacts go, one folder per object.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Write the JSON report here (default: OUT/report.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Fail unless this program is accepted: `NAME` for every target, `NAME:TARGET` for one.
    #[arg(long)]
    pub require: Vec<String>,
    /// Fail if any program is rejected by any target (programs a target does not take at all,
    /// such as socket filters on the NFP, do not count).
    #[arg(long)]
    pub deny_rejects: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BuildTarget {
    Bpf,
    Native,
    #[value(name = "x86_64")]
    #[serde(rename = "x86_64")]
    X86_64,
    Aarch64,
    Nfp,
    Verilog,
}

impl BuildTarget {
    pub fn name(self) -> &'static str {
        match self {
            BuildTarget::Bpf => "bpf",
            BuildTarget::Native => "native",
            BuildTarget::X86_64 => "x86_64",
            BuildTarget::Aarch64 => "aarch64",
            BuildTarget::Nfp => "nfp",
            BuildTarget::Verilog => "verilog",
        }
    }
}

/// Accepted, rejected, or a program the target does not take at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Accepted,
    Rejected,
    NotApplicable,
}

/// One program on one target.
#[derive(Clone, Debug, Serialize)]
pub struct BuildRow {
    pub object: String,
    pub program: String,
    pub section: String,
    pub target: BuildTarget,
    pub status: Status,
    /// Why it was rejected or does not apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The whole compiler-style diagnostic behind `reason` (place, C source line, help),
    /// when the rejection came with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<String>,
    /// Target figures: `bpf_insns_before/after`, `code_bytes`, `words`, `registers`,
    /// `stages`, `fmax_mhz`...
    pub figures: BTreeMap<String, f64>,
    /// What was written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<PathBuf>,
    pub millis: f64,
}

/// An input that is not a readable object.
#[derive(Clone, Debug, Serialize)]
pub struct Unreadable {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BuildReport {
    pub objects: usize,
    pub programs: usize,
    pub rows: Vec<BuildRow>,
    pub unreadable: Vec<Unreadable>,
    /// Accepted rows per target.
    pub accepted: BTreeMap<String, usize>,
    pub rejected: BTreeMap<String, usize>,
    pub millis: f64,
}

/// The objects named by the inputs: files as given, folders searched for `*.o`, sorted.
pub fn collect_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut stack = vec![input.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir)
                    .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
                for entry in entries {
                    let path = entry
                        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
                        .path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == "o") {
                        out.push(path);
                    }
                }
            }
        } else if input.exists() {
            out.push(input.clone());
        } else {
            return Err(format!("{} does not exist", input.display()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A folder name for an object that stays unique across the inputs: its path relative to the
/// common folder, with separators flattened.
fn object_dir(out: &Path, path: &Path, inputs: &[PathBuf]) -> PathBuf {
    let rel = inputs
        .iter()
        .filter(|i| i.is_dir())
        .find_map(|i| path.strip_prefix(i).ok())
        .unwrap_or_else(|| Path::new(path.file_name().unwrap_or_default()));
    let flat: String = rel
        .to_string_lossy()
        .trim_end_matches(".o")
        .replace(['/', '\\'], "__");
    out.join(flat)
}

struct Job<'a> {
    path: &'a Path,
    obj: &'a Object,
    bytes: &'a [u8],
    dir: PathBuf,
    target: BuildTarget,
    /// `None`: the whole object at once (bpf, native).
    program: Option<usize>,
}

fn row(obj: &Object, index: usize, target: BuildTarget) -> BuildRow {
    let p = &obj.programs[index];
    BuildRow {
        object: obj.name.clone(),
        program: p.name.clone(),
        section: p.section.clone(),
        target,
        status: Status::Accepted,
        reason: None,
        diagnostic: None,
        figures: BTreeMap::new(),
        artifacts: Vec::new(),
        millis: 0.0,
    }
}

fn reject(mut r: BuildRow, reason: impl Into<String>) -> BuildRow {
    r.status = Status::Rejected;
    r.reason = Some(reason.into());
    r
}

/// A rejection by a compiler stage: its first line is the reason in the table, the whole
/// diagnostic goes into the JSON report.
fn reject_with_diagnostic(r: BuildRow, diagnostic: &str) -> BuildRow {
    let mut r = reject(r, first_line(diagnostic));
    r.diagnostic = Some(diagnostic.trim_end().to_string());
    r
}

fn write(path: PathBuf, bytes: &[u8], r: &mut BuildRow) -> Result<(), String> {
    std::fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    r.artifacts.push(path);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Runs one job; every program it covers gets exactly one row.
fn run_job(job: &Job<'_>) -> Vec<BuildRow> {
    let start = Instant::now();
    let obj = job.obj;
    let mut rows = match (job.target, job.program) {
        (BuildTarget::Bpf, _) => build_bpf(job),
        (BuildTarget::Native | BuildTarget::X86_64 | BuildTarget::Aarch64, _) => build_native(job),
        (BuildTarget::Nfp, Some(i)) => vec![build_nfp(job, i)],
        (BuildTarget::Verilog, Some(i)) => vec![build_verilog(job, i)],
        (_, None) => Vec::new(),
    };
    let elapsed = ms(start.elapsed());
    for r in &mut rows {
        if r.millis == 0.0 {
            r.millis = elapsed / rows_len(obj, job) as f64;
        }
    }
    rows
}

fn rows_len(obj: &Object, job: &Job<'_>) -> usize {
    if job.program.is_some() {
        1
    } else {
        obj.programs.len().max(1)
    }
}

fn build_bpf(job: &Job<'_>) -> Vec<BuildRow> {
    let obj = job.obj;
    let rows = || (0..obj.programs.len()).map(|i| row(obj, i, BuildTarget::Bpf));
    match super::opt::optimize_original(obj, Some(job.bytes), "bpf", false, false) {
        Ok((bytes, programs, _, _)) => {
            let path = job.dir.join("bpf.o");
            let written = std::fs::write(&path, &bytes);
            rows()
                .map(|mut r| {
                    if let Err(e) = &written {
                        return reject(r, format!("cannot write {}: {e}", path.display()));
                    }
                    r.artifacts.push(path.clone());
                    if let Some(p) = programs.iter().find(|p| p.name == r.program) {
                        r.figures
                            .insert("bpf_insns_before".into(), p.insns_before as f64);
                        r.figures
                            .insert("bpf_insns_after".into(), p.insns_after as f64);
                    }
                    r
                })
                .collect()
        }
        Err(e) => rows().map(|r| reject_with_diagnostic(r, &e)).collect(),
    }
}

fn build_native(job: &Job<'_>) -> Vec<BuildRow> {
    use backends::native::NativeTarget;
    let obj = job.obj;
    let (target, name) = match job.target {
        BuildTarget::X86_64 => (NativeTarget::X86_64, "x86_64"),
        BuildTarget::Aarch64 => (NativeTarget::Aarch64, "aarch64"),
        _ => (NativeTarget::Host, "native"),
    };
    let whole = super::compile_native::compile_native(obj, None, "native", target);
    let mut out = Vec::new();
    match whole {
        Ok(c) => {
            let path = job.dir.join(format!("{name}.o"));
            let header = job.dir.join(format!("{name}.h"));
            for (i, p) in c.programs.iter().enumerate() {
                let mut r = row(obj, i, job.target);
                if let Err(e) = write(path.clone(), &c.artifact.object, &mut r)
                    .and_then(|_| write(header.clone(), c.artifact.header.as_bytes(), &mut r))
                {
                    out.push(reject(r, e));
                    continue;
                }
                r.figures.insert("code_bytes".into(), p.code_size as f64);
                r.figures.insert("functions".into(), p.functions as f64);
                r.millis = ms(p.compile_time);
                out.push(r);
            }
        }
        // One program the backend cannot take fails the whole object; compile each program
        // alone to say which.
        Err(_) => {
            for i in 0..obj.programs.len() {
                let mut r = row(obj, i, job.target);
                match super::compile_native::compile_native(obj, Some(i), "native", target) {
                    Ok(c) => {
                        let path = job.dir.join(format!("{name}.{}.o", r.program));
                        let header = job.dir.join(format!("{name}.{}.h", r.program));
                        match write(path, &c.artifact.object, &mut r)
                            .and_then(|_| write(header, c.artifact.header.as_bytes(), &mut r))
                        {
                            Ok(()) => {
                                if let Some(p) = c.programs.first() {
                                    r.figures.insert("code_bytes".into(), p.code_size as f64);
                                    r.millis = ms(p.compile_time);
                                }
                                out.push(r);
                            }
                            Err(e) => out.push(reject(r, e)),
                        }
                    }
                    Err(e) => out.push(reject_with_diagnostic(r, &e)),
                }
            }
        }
    }
    out
}

fn not_xdp(obj: &Object, index: usize, target: BuildTarget) -> Option<BuildRow> {
    let p = &obj.programs[index];
    (p.kind != ProgramKind::Xdp).then(|| {
        let mut r = row(obj, index, target);
        r.status = Status::NotApplicable;
        r.reason = Some(format!(
            "a {:?} program; the {} target runs XDP programs only",
            p.kind,
            target.name()
        ));
        r
    })
}

fn build_nfp(job: &Job<'_>, index: usize) -> BuildRow {
    let obj = job.obj;
    if let Some(r) = not_xdp(obj, index, BuildTarget::Nfp) {
        return r;
    }
    let mut r = row(obj, index, BuildTarget::Nfp);
    match super::compile_nfp::compile_program(obj, index, CompileTarget::Nfp.default_pipeline()) {
        Ok(prog) => {
            let mut words = String::new();
            for w in &prog.words {
                let _ = writeln!(words, "{w:016x}");
            }
            let stem = job.dir.join(format!("{}.nfp", r.program));
            let result = write(stem.with_extension("nfp.ucode"), words.as_bytes(), &mut r)
                .and_then(|_| {
                    write(
                        stem.with_extension("nfp.lst"),
                        prog.listing().as_bytes(),
                        &mut r,
                    )
                });
            if let Err(e) = result {
                return reject(r, e);
            }
            let bpf = obj.programs[index].insns.len();
            r.figures.insert("words".into(), prog.words.len() as f64);
            r.figures.insert("registers".into(), prog.registers as f64);
            r.figures.insert(
                "words_per_bpf_insn".into(),
                (prog.words.len() as f64 / bpf.max(1) as f64 * 100.0).round() / 100.0,
            );
            r
        }
        Err(e) => reject_with_diagnostic(r, &e),
    }
}

fn build_verilog(job: &Job<'_>, index: usize) -> BuildRow {
    let obj = job.obj;
    if let Some(r) = not_xdp(obj, index, BuildTarget::Verilog) {
        return r;
    }
    let mut r = row(obj, index, BuildTarget::Verilog);
    match super::compile_verilog::compile_xdp_program(obj, index, None) {
        Ok(c) => {
            let path = job.dir.join(format!("{}.v", r.program));
            if let Err(e) = write(path, c.verilog.as_bytes(), &mut r) {
                return reject(r, e);
            }
            r.figures
                .insert("stages".into(), c.schedule.stage_delay_ps.len() as f64);
            r.figures
                .insert("fmax_mhz".into(), c.schedule.fmax_mhz().round());
            r
        }
        Err(e) => reject_with_diagnostic(r, &e),
    }
}

/// The first line of an error, for the table; the JSON report has it too, and `nicc compile`
/// on the one program gives the whole diagnostic.
fn first_line(e: &str) -> String {
    e.lines().next().unwrap_or("").trim().to_string()
}

/// A progress display: a bar on a terminal, a line every tenth of the work in CI and pipes.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: std::sync::atomic::AtomicUsize,
}

impl Progress {
    fn new(total: usize) -> Progress {
        use std::io::IsTerminal;
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bar = interactive.then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            total,
            done: Default::default(),
        }
    }

    fn step(&self, what: &str) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(what.to_string());
                bar.inc(1);
            }
            None => {
                let tenth = self.total.div_ceil(10).max(1);
                if done.is_multiple_of(tenth) || done == self.total {
                    eprintln!("build: {done}/{} jobs done", self.total);
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Builds everything and returns the report; nothing here decides the exit status.
pub fn run_build(args: &BuildArgs) -> Result<BuildReport, String> {
    let start = Instant::now();
    let paths = collect_inputs(&args.inputs)?;
    let mut unreadable = Vec::new();
    let mut objects = Vec::new();
    for path in &paths {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                unreadable.push(Unreadable {
                    path: path.clone(),
                    reason: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let name = path.to_string_lossy().into_owned();
        match frontend::elf::read_object(&bytes, &name) {
            Ok(obj) => objects.push((path.clone(), bytes, obj)),
            Err(d) => unreadable.push(Unreadable {
                path: path.clone(),
                reason: first_line(&d.to_string()),
            }),
        }
    }
    let mut targets = args.targets.clone();
    targets.sort();
    targets.dedup();
    let mut jobs = Vec::new();
    for (path, bytes, obj) in &objects {
        let dir = object_dir(&args.output, path, &args.inputs);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for &target in &targets {
            let per_program = matches!(target, BuildTarget::Nfp | BuildTarget::Verilog);
            if per_program {
                for i in 0..obj.programs.len() {
                    jobs.push(Job {
                        path,
                        obj,
                        bytes,
                        dir: dir.clone(),
                        target,
                        program: Some(i),
                    });
                }
            } else if !obj.programs.is_empty() {
                jobs.push(Job {
                    path,
                    obj,
                    bytes,
                    dir: dir.clone(),
                    target,
                    program: None,
                });
            }
        }
    }
    let progress = Progress::new(jobs.len());
    let mut rows: Vec<BuildRow> = jobs
        .par_iter()
        .flat_map_iter(|job| {
            let rows = run_job(job);
            progress.step(&format!("{} {}", job.path.display(), job.target.name()));
            rows
        })
        .collect();
    progress.finish();
    rows.sort_by(|a, b| (&a.object, &a.program, a.target).cmp(&(&b.object, &b.program, b.target)));
    let mut accepted = BTreeMap::new();
    let mut rejected = BTreeMap::new();
    for t in &targets {
        accepted.insert(t.name().to_string(), 0);
        rejected.insert(t.name().to_string(), 0);
    }
    for r in &rows {
        match r.status {
            Status::Accepted => *accepted.entry(r.target.name().to_string()).or_insert(0) += 1,
            Status::Rejected => *rejected.entry(r.target.name().to_string()).or_insert(0) += 1,
            Status::NotApplicable => {}
        }
    }
    Ok(BuildReport {
        objects: objects.len(),
        programs: objects.iter().map(|(_, _, o)| o.programs.len()).sum(),
        rows,
        unreadable,
        accepted,
        rejected,
        millis: ms(start.elapsed()),
    })
}

/// The table: one line per program, one column per target.
pub fn format_table(report: &BuildReport, targets: &[BuildTarget]) -> String {
    let mut targets = targets.to_vec();
    targets.sort();
    targets.dedup();
    let mut s = String::new();
    let _ = write!(s, "{:<48} {:<24}", "object", "program");
    for t in &targets {
        let _ = write!(s, " {:<16}", t.name());
    }
    s.push('\n');
    let mut by_program: BTreeMap<(&str, &str), Vec<&BuildRow>> = BTreeMap::new();
    for r in &report.rows {
        by_program
            .entry((r.object.as_str(), r.program.as_str()))
            .or_default()
            .push(r);
    }
    let mut reasons = Vec::new();
    for ((object, program), rows) in &by_program {
        let short = object.rsplit('/').take(2).collect::<Vec<_>>();
        let short = short.into_iter().rev().collect::<Vec<_>>().join("/");
        let _ = write!(s, "{:<48.48} {:<24.24}", short, program);
        for t in &targets {
            let cell = match rows.iter().find(|r| r.target == *t) {
                None => "-".to_string(),
                Some(r) => match r.status {
                    Status::Accepted => cell_figures(r),
                    Status::NotApplicable => "n/a".to_string(),
                    Status::Rejected => {
                        reasons.push(format!(
                            "{short} {program} [{}]: {}",
                            t.name(),
                            r.reason.as_deref().unwrap_or("")
                        ));
                        format!("NO ({})", reasons.len())
                    }
                },
            };
            let _ = write!(s, " {:<16}", cell);
        }
        s.push('\n');
    }
    if !reasons.is_empty() {
        let _ = writeln!(s, "\nrejections:");
        for (i, r) in reasons.iter().enumerate() {
            let _ = writeln!(s, "  ({}) {r}", i + 1);
        }
    }
    if !report.unreadable.is_empty() {
        let _ = writeln!(s, "\nunreadable inputs:");
        for u in &report.unreadable {
            let _ = writeln!(s, "  {}: {}", u.path.display(), u.reason);
        }
    }
    let _ = writeln!(
        s,
        "\n{} objects read ({} inputs unreadable), {} programs, in {:.1} s",
        report.objects,
        report.unreadable.len(),
        report.programs,
        report.millis / 1000.0
    );
    for t in &targets {
        let _ = writeln!(
            s,
            "  {:<8} {} accepted, {} rejected",
            t.name(),
            report.accepted.get(t.name()).unwrap_or(&0),
            report.rejected.get(t.name()).unwrap_or(&0)
        );
    }
    s
}

fn cell_figures(r: &BuildRow) -> String {
    let f = |k: &str| r.figures.get(k).copied();
    match r.target {
        BuildTarget::Bpf => match (f("bpf_insns_before"), f("bpf_insns_after")) {
            (Some(a), Some(b)) => format!("{a}->{b} insns"),
            _ => "ok".into(),
        },
        BuildTarget::Native | BuildTarget::X86_64 | BuildTarget::Aarch64 => {
            f("code_bytes").map_or("ok".into(), |b| format!("{b} bytes"))
        }
        BuildTarget::Nfp => f("words").map_or("ok".into(), |w| format!("{w} words")),
        BuildTarget::Verilog => match (f("stages"), f("fmax_mhz")) {
            (Some(s), Some(m)) => format!("{s} st {m} MHz"),
            _ => "ok".into(),
        },
    }
}

/// The requirements that the report does not meet.
pub fn unmet_requirements(report: &BuildReport, args: &BuildArgs) -> Vec<String> {
    let mut unmet = Vec::new();
    for req in &args.require {
        let (program, target) = match req.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (req.as_str(), None),
        };
        let rows: Vec<&BuildRow> = report
            .rows
            .iter()
            .filter(|r| r.program == program && target.is_none_or(|t| r.target.name() == t))
            .collect();
        if rows.is_empty() {
            unmet.push(format!(
                "required `{req}`: no such program (or target) was built"
            ));
        }
        for r in rows {
            if r.status != Status::Accepted {
                unmet.push(format!(
                    "required `{req}`: {} {} was not accepted by {}: {}",
                    r.object,
                    r.program,
                    r.target.name(),
                    r.reason.as_deref().unwrap_or("")
                ));
            }
        }
    }
    if args.deny_rejects {
        for r in report.rows.iter().filter(|r| r.status == Status::Rejected) {
            unmet.push(format!(
                "--deny-rejects: {} {} rejected by {}",
                r.object,
                r.program,
                r.target.name()
            ));
        }
    }
    unmet
}

pub fn build(args: &BuildArgs) -> Result<String, String> {
    let report = run_build(args)?;
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| args.output.join("report.json"));
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n";
    std::fs::write(&json_path, json)
        .map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
    let mut text = format_table(&report, &args.targets);
    let _ = writeln!(text, "report: {}", json_path.display());
    let unmet = unmet_requirements(&report, args);
    if unmet.is_empty() {
        Ok(text)
    } else {
        for u in unmet {
            let _ = writeln!(text, "error: {u}");
        }
        Err(text)
    }
}
