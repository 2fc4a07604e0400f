//! Native objects written by `nicc compile`, linked with the C harness and run as real
//! programs (natively or under qemu-user), against the golden interpreter: the conformance
//! suite, and corpus XDP programs over packets. Shared by `tests/native_objects.rs` (x86-64)
//! and `tests/aarch64_qemu.rs`.
//!
//! Included by those tests with `#[path]`, beside `support` and `native_remote`.

use crate::native_remote::RemoteProgram;
use crate::support;
use crate::support::engine_diff::Report;
use backends::native::NativeTarget;
use frontend::conformance::{self, ConformanceTest};
use frontend::lift::{lift_program, LiftOptions};
use frontend::object::{Function as ObjFunction, Program, ProgramKind};
use frontend::Object;
use hw::qemu::Toolchain;
use nicc::commands::compile_native::{compile_native, NativeCompilation};
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The native target of a toolchain's architecture.
pub fn target_of(tc: &Toolchain) -> NativeTarget {
    match tc.arch {
        hw::qemu::Arch::X86_64 => NativeTarget::X86_64,
        hw::qemu::Arch::Aarch64 => NativeTarget::Aarch64,
    }
}

/// The toolchain for `arch`; the test fails (never skips) when it is missing.
pub fn toolchain(arch: hw::qemu::Arch) -> Toolchain {
    Toolchain::find(arch)
        .unwrap_or_else(|e| panic!("running {} objects needs its toolchain: {e}", arch.name()))
}

/// Compiled harnesses by header text: the harness depends on nothing but the header.
#[derive(Default)]
pub struct HarnessCache {
    by_header: HashMap<String, PathBuf>,
}

/// An object written for `tc`'s architecture, linked with the harness.
pub struct Linked {
    pub exe: PathBuf,
    pub compilation: NativeCompilation,
}

/// Writes the compiled object and its header into `dir` as `stem.o` and `stem.h` and links
/// them with the harness into `stem` (the harness compiled once per distinct header).
pub fn link(
    tc: &Toolchain,
    cache: &mut HarnessCache,
    dir: &Path,
    stem: &str,
    compilation: NativeCompilation,
) -> Result<Linked, String> {
    let object = dir.join(format!("{stem}.o"));
    let header = dir.join(format!("{stem}.h"));
    let exe = dir.join(stem);
    std::fs::write(&object, &compilation.artifact.object).map_err(|e| e.to_string())?;
    std::fs::write(&header, &compilation.artifact.header).map_err(|e| e.to_string())?;
    let harness = match cache.by_header.get(&compilation.artifact.header) {
        Some(h) => h.clone(),
        None => {
            let h = dir.join(format!("harness{}.o", cache.by_header.len()));
            tc.compile_harness(&header, &h)?;
            cache
                .by_header
                .insert(compilation.artifact.header.clone(), h.clone());
            h
        }
    };
    tc.link(&harness, &object, &exe)?;
    Ok(Linked { exe, compilation })
}

/// An object holding one program made of `insns`, as the conformance suite gives them. Every
/// test gets the same program name, so that tests with the same helpers share one header and
/// one compiled harness.
fn conformance_object(insns: Vec<frontend::insn::RawInsn>) -> Object {
    let name = "conformance_test";
    Object {
        name: format!("{name}.o"),
        programs: vec![Program {
            name: name.into(),
            section: "conformance".into(),
            kind: ProgramKind::SocketFilter,
            functions: vec![ObjFunction {
                name: name.into(),
                section: "conformance".into(),
                start: 0,
                len: insns.len(),
                section_offset: 0,
            }],
            lines: Vec::new(),
            insns,
        }],
        ..Object::default()
    }
}

/// What running the conformance suite as linked objects found.
#[derive(Debug, Default)]
pub struct ConformanceReport {
    pub tests: usize,
    pub compared: usize,
    pub not_lifted: Vec<String>,
    pub mismatches: Vec<String>,
}

/// Every conformance test that lifts, compiled for `tc`'s architecture (pipeline `none`: the
/// program as lifted, as the JIT test runs it), linked with the harness, run once in its own
/// process and compared with the interpreter: return value (or both faulting) and memory.
pub fn conformance_suite(tc: &Toolchain, dir: &Path) -> ConformanceReport {
    let suite = support::corpus().join("conformance").join("tests");
    let files = support::files_under(&suite, &|p| p.extension().is_some_and(|e| e == "data"));
    assert!(
        !files.is_empty(),
        "no conformance tests under {}",
        suite.display()
    );
    let mut report = ConformanceReport {
        tests: files.len(),
        ..ConformanceReport::default()
    };
    let mut cache = HarnessCache::default();
    for path in &files {
        let t: ConformanceTest =
            conformance::read(path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let Ok(raw) = conformance::program_of(&t) else {
            report.not_lifted.push(format!("{name}: does not assemble"));
            continue;
        };
        let obj = conformance_object(raw.clone());
        // Lifting decides what is compared; the compile below lifts again, as the command does.
        if let Err(d) = lift_program(&obj, 0, &LiftOptions::default()) {
            report.not_lifted.push(format!("{name}: {}", d.message));
            continue;
        }
        let compilation = match compile_native(&obj, None, "none", target_of(tc)) {
            Ok(c) => c,
            Err(e) => {
                report
                    .mismatches
                    .push(format!("{name}: lifted but not compiled: {e}"));
                continue;
            }
        };
        let linked = match link(tc, &mut cache, dir, "conformance", compilation) {
            Ok(l) => l,
            Err(e) => {
                report.mismatches.push(format!("{name}: {e}"));
                continue;
            }
        };
        let mut remote =
            match RemoteProgram::start(tc.command(&linked.exe), &linked.compilation.module) {
                Ok(r) => r,
                Err(e) => {
                    report.mismatches.push(format!("{name}: {e}"));
                    continue;
                }
            };
        let (mut m1, mut m2) = (t.mem.clone(), t.mem.clone());
        let want = sim::interp::run_with_memory(&raw, &mut m1);
        let mut rt = Runtime::empty(RuntimeConfig::default());
        let got = match remote.run_with_memory(0, &mut rt, &mut m2) {
            Ok(g) => g,
            Err(e) => {
                report
                    .mismatches
                    .push(format!("{name}: the harness failed: {e}"));
                continue;
            }
        };
        if let Err(e) = remote.finish() {
            report.mismatches.push(format!("{name}: {e}"));
        }
        report.compared += 1;
        match (&want, &got) {
            (Ok(w), Ok(g)) if w == g && m1 == m2 => {}
            (Err(_), Err(_)) => {}
            _ => report.mismatches.push(format!(
                "{name}: interpreter {want:?}, {} object {got:?}{}",
                tc.arch.name(),
                if m1 != m2 { " (memory differs)" } else { "" }
            )),
        }
    }
    report
}

/// A kernel-accepted XDP program of the corpus.
pub struct CorpusProgram {
    /// The path under `corpus/elf`, for reports.
    pub rel: String,
    pub obj: Object,
    pub index: usize,
}

/// Every XDP program of the corpus that the running kernel's verifier accepts; fails the test
/// when the kernel cannot be asked.
pub fn kernel_accepted_xdp_programs() -> Vec<CorpusProgram> {
    if let Err(why) = hw::linux::kernel_available() {
        panic!("this test needs the kernel's bpf() to know which programs it accepts: {why}");
    }
    let mut out = Vec::new();
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
            if p.kind == ProgramKind::Xdp && hw::linux::KernelObject::load(&obj, &[i]).is_ok() {
                out.push(CorpusProgram {
                    rel: rel.clone(),
                    obj: obj.clone(),
                    index: i,
                });
            }
        }
    }
    out
}

/// Compiles a corpus program with the default native pipeline as `nicc compile` does: the
/// whole object, so tail calls find their targets, or the program alone when the object does
/// not compile as a whole. Returns the compilation and the program's index in its module.
pub fn compile_corpus_program(
    p: &CorpusProgram,
    target: NativeTarget,
) -> Result<(NativeCompilation, usize), String> {
    match compile_native(&p.obj, None, "native", target) {
        Ok(c) if c.module.programs.len() == p.obj.programs.len() => Ok((c, p.index)),
        _ => compile_native(&p.obj, Some(p.index), "native", target).map(|c| (c, 0)),
    }
}

/// A runtime for `obj`, seeded as every differential test seeds it.
fn runtime_for(obj: &Object) -> Result<Runtime, String> {
    let mut rt = Runtime::new(obj, RuntimeConfig::default()).map_err(|d| d.to_string())?;
    let file = Path::new(&obj.name)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if let Some(seed) = support::seeds::seed_for(&file, obj) {
        rt.load_snapshot(&seed)?;
    }
    Ok(rt)
}

/// Runs program `p` in the interpreter and as program `module_index` of the harness process
/// `remote` over `packets`, and compares verdicts, output packets, redirects, captured outputs
/// and the final maps.
pub fn compare_xdp(
    p: &CorpusProgram,
    remote: &mut RemoteProgram,
    module_index: usize,
    packets: &[Vec<u8>],
) -> Report {
    let mut report = Report {
        program: p.obj.programs[p.index].name.clone(),
        ..Report::default()
    };
    let (mut rt_bc, mut rt_nat) = match (runtime_for(&p.obj), runtime_for(&p.obj)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            report.mismatches.push((None, format!("no runtime: {e}")));
            return report;
        }
    };
    for (k, packet) in packets.iter().enumerate() {
        let input = XdpInput::new(packet.clone());
        if sim::runtime::ExecState::for_xdp(&input).is_err() {
            report.refused += 1;
            continue;
        }
        let want = sim::interp::run_xdp(&p.obj, p.index, &mut rt_bc, &input);
        let got = match remote.run_xdp(module_index, &mut rt_nat, &input) {
            Ok(g) => g,
            Err(e) => {
                report
                    .mismatches
                    .push((Some(k), format!("the harness failed: {e}")));
                return report;
            }
        };
        report.packets += 1;
        match (&want, &got) {
            (Ok(w), Ok(g)) => {
                *report.verdicts.entry(w.retval).or_insert(0) += 1;
                if w.retval != g.retval {
                    report.mismatches.push((
                        Some(k),
                        format!("verdict: interpreter {}, object {}", w.retval, g.retval),
                    ));
                }
                if w.test_run_data() != g.test_run_data() {
                    report
                        .mismatches
                        .push((Some(k), "output packet differs".to_string()));
                }
                if w.redirect != g.redirect {
                    report.mismatches.push((
                        Some(k),
                        format!(
                            "redirect: interpreter {:?}, object {:?}",
                            w.redirect, g.redirect
                        ),
                    ));
                }
            }
            (Err(w), Err(g)) => {
                report.both_faulted += 1;
                if w.insn != g.insn {
                    report.mismatches.push((
                        Some(k),
                        format!(
                            "both faulted, at instruction {:?} (interpreter) and {:?} (object)",
                            w.insn, g.insn
                        ),
                    ));
                }
            }
            (Ok(w), Err(d)) => report.mismatches.push((
                Some(k),
                format!(
                    "the object faulted (interpreter returned {}): {d}",
                    w.retval
                ),
            )),
            (Err(d), Ok(g)) => report.mismatches.push((
                Some(k),
                format!(
                    "the interpreter faulted (object returned {}): {d}",
                    g.retval
                ),
            )),
        }
        if rt_bc.outputs() != rt_nat.outputs() {
            report.mismatches.push((
                Some(k),
                "captured outputs (trace, perf, ring buffer) differ".into(),
            ));
        }
        rt_bc.take_outputs();
        rt_nat.take_outputs();
    }
    let (a, b) = (rt_bc.snapshot(), rt_nat.snapshot());
    for (name, contents) in &a.maps {
        if b.maps.get(name) != Some(contents) {
            report
                .mismatches
                .push((None, format!("final contents of map `{name}` differ")));
        }
    }
    report
}

/// What [`run_corpus_programs`] found.
pub struct CorpusRun {
    /// Kernel-accepted XDP programs in the corpus.
    pub programs: usize,
    /// Programs compiled, linked and run over every packet.
    pub compared: usize,
    /// Packet runs compared, and how many of them faulted in both.
    pub runs: usize,
    pub both_faulted: usize,
    /// Requests the harness processes answered.
    pub round_trips: u64,
    /// Everything that went wrong, one line each (at most three mismatches per program).
    pub failures: Vec<String>,
    /// Lift + native pipeline + code generation, per program.
    pub compile_times: Vec<Duration>,
}

/// Compiles every kernel-accepted XDP program of the corpus for `tc`'s architecture, links
/// each with the harness in `dir`, runs it (natively or under qemu-user) over `packets` beside
/// the interpreter with [`compare_xdp`], and prints one line per program.
pub fn run_corpus_programs(tc: &Toolchain, dir: &Path, packets: &[Vec<u8>]) -> CorpusRun {
    let programs = kernel_accepted_xdp_programs();
    let mut cache = HarnessCache::default();
    let mut run = CorpusRun {
        programs: programs.len(),
        compared: 0,
        runs: 0,
        both_faulted: 0,
        round_trips: 0,
        failures: Vec::new(),
        compile_times: Vec::new(),
    };
    for (n, p) in programs.iter().enumerate() {
        let name = &p.obj.programs[p.index].name;
        let what = format!("{} {name}", p.rel);
        let (compilation, module_index) = match compile_corpus_program(p, target_of(tc)) {
            Ok(c) => c,
            Err(e) => {
                run.failures.push(format!("{what}: not compiled: {e}"));
                continue;
            }
        };
        if let Some(r) = compilation.programs.iter().find(|r| &r.name == name) {
            run.compile_times.push(r.compile_time);
        }
        let linked = match link(tc, &mut cache, dir, &format!("prog{n}"), compilation) {
            Ok(l) => l,
            Err(e) => {
                run.failures.push(format!("{what}: {e}"));
                continue;
            }
        };
        let mut remote =
            match RemoteProgram::start(tc.command(&linked.exe), &linked.compilation.module) {
                Ok(r) => r,
                Err(e) => {
                    run.failures.push(format!("{what}: {e}"));
                    continue;
                }
            };
        let r = compare_xdp(p, &mut remote, module_index, packets);
        run.round_trips += remote.round_trips;
        if let Err(e) = remote.finish() {
            run.failures.push(format!("{what}: {e}"));
        }
        run.compared += 1;
        run.runs += r.packets;
        run.both_faulted += r.both_faulted;
        println!(
            "compared {what:60} {} packets ({} faulted in both), {} mismatches",
            r.packets,
            r.both_faulted,
            r.mismatches.len()
        );
        for (k, m) in r.mismatches.iter().take(3) {
            run.failures.push(format!("{what}: packet {k:?}: {m}"));
        }
    }
    run
}

/// Total and median of compile times, for the test output.
pub fn summarize(times: &mut [Duration]) -> String {
    if times.is_empty() {
        return "no programs".into();
    }
    times.sort();
    let total: Duration = times.iter().sum();
    format!(
        "{} programs, total {:.1} ms, median {:.2} ms, max {:.2} ms",
        times.len(),
        total.as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    )
}
