//! Engine benchmarks: nanoseconds per packet of every engine on the same packets, side by side,
//! for `nicc bench` and the `engines` bench target (which adds rbpf, a dev-dependency).
//!
//! # What is timed
//!
//! Every engine is timed the way `BPF_PROG_TEST_RUN` times the kernel's JIT with a repeat
//! count: the frame is built once per packet, then the program runs `repeat` times on that
//! same frame, and the time per run is the elapsed time divided by `repeat`. A packet the
//! program rewrites is fed back in, exactly as the kernel does; nothing is restored between
//! runs. The figure of a program is the mean over the packets of each packet's time per run,
//! and each packet's time is the fastest of `rounds` measurements, because the machine is
//! shared and interference only ever adds time.
//!
//! - **nicc JIT** ([`JIT_NATIVE`], [`JIT_NONE`]): the program is lifted, optimized by the
//!   `native` pipeline (with the packet accesses range analysis proves left unchecked) or by
//!   no pipeline at all (every access checked), compiled by Cranelift, and entered through
//!   [`sim::native::PreparedRun::run_repeated`]: per entry, only the bookkeeping of the
//!   context block is reset.
//! - **what each optimization is worth**: the same JIT with one thing taken away at a time,
//!   [`JIT_CHECKED`] (the `native` pipeline, but every packet access checked: no
//!   bounds-check elimination), [`JIT_RA1`] (Cranelift's single-pass register allocator
//!   instead of its backtracking one) and [`JIT_NONE`] (no nicc pass at all: no constant
//!   folding, e-graph rewriting, load merging or dead-code removal, and no bounds-check
//!   elimination). Their ratios to [`JIT_NATIVE`] are in the table.
//! - **nicc interpreter** ([`INTERP`]): [`sim::interp::run_xdp`] as `nicc run` calls it, which
//!   builds a fresh frame on every call (so, unlike the others, it restores the packet).
//! - **kernel** ([`KERNEL`]): `BPF_PROG_TEST_RUN` with `repeat`, on CPU 0. Each call costs
//!   milliseconds of its own (the kernel re-patches its XDP dispatcher around every test run),
//!   so few packets with a large repeat measure best. Its duration
//!   includes the test loop itself (`bpf_test_timer`, the dispatcher, `local_bh_disable`), so
//!   the same measurement of the two-instruction program `r0 = XDP_PASS; exit` is taken for
//!   every program ([`KERNEL_LOOP`]) and subtracted ([`KERNEL_NET`]).
//!
//! Records a program sends to perf event arrays and ring buffers are made inside the timed
//! loop, as the kernel writes them into its buffers there; they are taken out of the runtime
//! after each packet's measurement (the reader's work, which the kernel does not time either),
//! so that memory does not grow over a benchmark.
//!
//! Every engine starts from empty maps (a fresh runtime, freshly created kernel maps), so a
//! lookup in a hash map misses and one in an array map finds zeroes, the same in all of them.
//! The nicc JIT has an entry cost of its own (the call from Rust, resetting the context
//! block), measured the same way on the same two-instruction program ([`JIT_LOOP`]) and
//! subtracted in [`JIT_NET`]; [`JIT_NATIVE`] is the gross figure.
//!
//! # Like for like
//!
//! Both sides time the same thing: a program run again and again on a packet already in its
//! frame, nothing rebuilt between runs. The kernel's figure is the `duration` that
//! `BPF_PROG_TEST_RUN` with `repeat = N` reports (its own clock around its loop, divided by
//! N and truncated to whole nanoseconds); nicc's is the wall time of `run_repeated(N)`
//! divided by N, whose loop does per run what the kernel's does around its program: reset
//! three words of bookkeeping (live frames, fault flag, loop budget, which the semantics
//! need), call, test the fault flag. Each side's loop is measured on the same
//! two-instruction program and subtracted from that side only: [`JIT_NET`] against
//! [`KERNEL_NET`] compares program execution, [`JIT_NATIVE`] against [`KERNEL`] the whole
//! per-packet cost. With whole nanoseconds on the kernel side, net kernel figures of a few
//! nanoseconds carry an error of about one nanosecond, so their ratios scatter; the median
//! over the corpus is the figure to read.

use frontend::insn::{Insn, RawInsn};
use frontend::lift::{lift_object, lift_program, LiftOptions};
use frontend::object::{Function as ObjFunction, Program, ProgramKind};
use frontend::Object;
use passes::pass::{PassContext, Target};
use passes::pipeline::{pipeline, PassManager};
use sim::native::{prepare_xdp_native, JitProgram};
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::time::Instant;

/// Column: the nicc JIT after the `native` pipeline, proven packet accesses unchecked.
pub const JIT_NATIVE: &str = "jit";
/// Column: the nicc JIT's own entry cost: the two-instruction program, timed like the others.
pub const JIT_LOOP: &str = "j-loop";
/// Column: the nicc JIT (`native`) net of its entry cost, comparable with [`KERNEL_NET`].
pub const JIT_NET: &str = "j-net";
/// Column: the nicc JIT on the IR as lifted (pipeline `none`), every access checked.
pub const JIT_NONE: &str = "jit-none";
/// Column: the nicc JIT after the `native` pipeline but with every packet access checked:
/// what bounds-check elimination is worth.
pub const JIT_CHECKED: &str = "jit-chk";
/// Column: the nicc JIT as [`JIT_NATIVE`], registers assigned by Cranelift's single-pass
/// allocator instead of its backtracking one: what register allocation is worth.
pub const JIT_RA1: &str = "jit-ra1";
/// Column: the nicc bytecode interpreter.
pub const INTERP: &str = "interp";
/// Column: the kernel's JIT, test-loop overhead included.
pub const KERNEL: &str = "kernel";
/// Column: the kernel's test loop alone (the two-instruction program on the same packets).
pub const KERNEL_LOOP: &str = "k-loop";
/// Column: the kernel's JIT net of its test loop.
pub const KERNEL_NET: &str = "k-net";

/// How much to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchConfig {
    /// Runs per packet for the JITs (nicc's and the kernel's).
    pub repeat: u32,
    /// Runs per packet for interpreters, which are a hundred times slower.
    pub interp_repeat: u32,
    /// Measurements per packet; the fastest counts.
    pub rounds: u32,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            repeat: 5000,
            interp_repeat: 10,
            rounds: 2,
        }
    }
}

/// One cell of the table: a time, or why there is none.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Ns(f64),
    Missing(String),
}

impl Cell {
    pub fn ns(&self) -> Option<f64> {
        match self {
            Cell::Ns(v) => Some(*v),
            Cell::Missing(_) => None,
        }
    }
}

/// One program's measurements, by column name.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The object, as given (a path relative to the benchmarked folder).
    pub object: String,
    pub program: String,
    pub index: usize,
    pub packets: usize,
    pub cells: BTreeMap<String, Cell>,
    /// Anything a reader should know about the row (a refusal, engines that disagree).
    pub notes: Vec<String>,
}

impl Row {
    pub fn get(&self, column: &str) -> Option<f64> {
        self.cells.get(column).and_then(Cell::ns)
    }
}

/// Times `run` on every packet: `run(packet, n)` performs `n` runs on one frame built from the
/// packet and returns their elapsed nanoseconds. Returns the mean over packets of the fastest
/// of `rounds` measurements of each packet's time per run.
pub fn time_packets(
    packets: &[Vec<u8>],
    repeat: u32,
    rounds: u32,
    mut run: impl FnMut(&[u8], u32) -> Result<f64, String>,
) -> Result<f64, String> {
    if packets.is_empty() {
        return Err("no packets".into());
    }
    let repeat = repeat.max(1);
    let mut total = 0.0;
    for p in packets {
        let mut best = f64::INFINITY;
        for _ in 0..rounds.max(1) {
            let ns = run(p, repeat)?;
            best = best.min(ns / repeat as f64);
        }
        total += best;
    }
    Ok(total / packets.len() as f64)
}

/// The packets of a capture file that every engine (and the kernel's linear test run) takes:
/// Ethernet frames of 14 to [`hw::linux::MAX_PACKET`] bytes.
pub fn usable_packet(p: &[u8]) -> bool {
    (hw::linux::MIN_PACKET..=hw::linux::MAX_PACKET).contains(&p.len())
}

/// At most `max` packets out of `packets`, duplicates dropped, evenly spaced, in order.
pub fn sample_packets(packets: Vec<Vec<u8>>, max: usize) -> Vec<Vec<u8>> {
    let mut seen = HashSet::new();
    let unique: Vec<Vec<u8>> = packets
        .into_iter()
        .filter(|p| usable_packet(p) && seen.insert(p.clone()))
        .collect();
    if unique.len() <= max || max == 0 {
        return unique;
    }
    (0..max)
        .map(|i| unique[i * unique.len() / max].clone())
        .collect()
}

/// The two-instruction XDP program `r0 = XDP_PASS; exit`, whose kernel time is the test
/// loop's own overhead.
pub fn pass_only_object() -> Object {
    let insns: Vec<RawInsn> = frontend::insn::encode_all(&[
        Insn::Alu {
            width: ir::semantics::Width::W64,
            op: ir::semantics::AluOp::Mov,
            dst: frontend::insn::Reg(0),
            src: frontend::insn::Operand::Imm(2),
        },
        Insn::Exit,
    ]);
    Object {
        name: "nicc_pass_only.o".into(),
        programs: vec![Program {
            name: "pass_only".into(),
            section: "xdp".into(),
            kind: ProgramKind::Xdp,
            functions: vec![ObjFunction {
                name: "pass_only".into(),
                section: "xdp".into(),
                start: 0,
                len: insns.len(),
                section_offset: 0,
            }],
            lines: Vec::new(),
            insns,
        }],
        license: Some("GPL".into()),
        ..Object::default()
    }
}

/// Lifts `obj` as the engines need it: the whole object when it lifts and verifies (so tail
/// calls find their targets), program `index` alone otherwise. Returns the module and the
/// entry of the program.
pub fn lift_for_jit(obj: &Object, index: usize) -> Result<(ir::Module, ir::FuncRef), String> {
    let whole = lift_object(obj, &LiftOptions::default())
        .ok()
        .filter(|m| ir::verifier::verify_module(m).is_ok())
        .filter(|m| m.programs.len() == obj.programs.len());
    match whole {
        Some(m) => {
            let e = m.programs[index].func;
            Ok((m, e))
        }
        None => {
            let m = lift_program(obj, index, &LiftOptions::default()).map_err(|d| d.to_string())?;
            let e = m.programs[0].func;
            Ok((m, e))
        }
    }
}

/// How the JIT compiles a program for one column of the table: the optimization ablations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitVariant {
    /// The pass pipeline (`none`: the IR as lifted).
    pub pipeline: &'static str,
    /// Leave the packet accesses the pipeline's `bounds-check` proved unchecked.
    pub trust_bounds: bool,
    pub regalloc: backends::native::Regalloc,
}

/// The variant of each JIT column.
pub const JIT_VARIANTS: [(&str, JitVariant); 4] = [
    (
        JIT_NATIVE,
        JitVariant {
            pipeline: "native",
            trust_bounds: true,
            regalloc: backends::native::Regalloc::Backtracking,
        },
    ),
    (
        JIT_CHECKED,
        JitVariant {
            pipeline: "native",
            trust_bounds: false,
            regalloc: backends::native::Regalloc::Backtracking,
        },
    ),
    (
        JIT_RA1,
        JitVariant {
            pipeline: "native",
            trust_bounds: true,
            regalloc: backends::native::Regalloc::SinglePass,
        },
    ),
    (
        JIT_NONE,
        JitVariant {
            pipeline: "none",
            trust_bounds: false,
            regalloc: backends::native::Regalloc::Backtracking,
        },
    ),
];

/// Compiles program `index` of `obj` for the JIT: after pipeline `pipeline_name` (with the
/// packet accesses its last `bounds-check` proved left unchecked), or as lifted for `none`.
pub fn compile_jit(obj: &Object, index: usize, pipeline_name: &str) -> Result<JitProgram, String> {
    let (mut module, entry) = lift_for_jit(obj, index)?;
    let options = optimize_for_jit(&mut module, pipeline_name, true)?;
    JitProgram::with_options(&module, entry, &options).map_err(|d| d.to_string())
}

/// Compiles program `index` of `obj` for the JIT as `variant` says.
pub fn compile_jit_variant(
    obj: &Object,
    index: usize,
    variant: &JitVariant,
) -> Result<JitProgram, String> {
    let (mut module, entry) = lift_for_jit(obj, index)?;
    let mut options = optimize_for_jit(&mut module, variant.pipeline, variant.trust_bounds)?;
    options.regalloc = variant.regalloc;
    JitProgram::with_options(&module, entry, &options).map_err(|d| d.to_string())
}

/// Runs pipeline `pipeline_name` (nothing for `none`) on `module` and returns the lowering
/// options, with the proven packet accesses unchecked when `trust_bounds`.
fn optimize_for_jit(
    module: &mut ir::Module,
    pipeline_name: &str,
    trust_bounds: bool,
) -> Result<backends::native::LowerOptions, String> {
    let mut options = backends::native::LowerOptions::default();
    if pipeline_name != "none" {
        let pipe =
            pipeline(pipeline_name).ok_or_else(|| format!("no pipeline `{pipeline_name}`"))?;
        let mut ctx = PassContext::new(Target::from_name(pipeline_name).unwrap_or(Target::Native));
        PassManager::new()
            .run(&pipe, module, &mut ctx)
            .map_err(|e| e.to_string())?;
        if let Some(table) = ctx
            .analyses
            .packet_accesses
            .as_ref()
            .filter(|_| trust_bounds)
        {
            for (f, accesses) in table {
                for (inst, ok) in accesses {
                    if *ok {
                        options.proven_safe.insert((*f, *inst));
                    }
                }
            }
        }
    }
    Ok(options)
}

/// Times a compiled program on the packets, each engine on a fresh runtime of `obj`.
pub fn time_jit(
    jit: &JitProgram,
    obj: &Object,
    packets: &[Vec<u8>],
    config: &BenchConfig,
) -> Result<f64, String> {
    let mut rt = Runtime::new(obj, RuntimeConfig::default()).map_err(|d| d.to_string())?;
    time_packets(packets, config.repeat, config.rounds, |p, n| {
        let input = XdpInput::new(p.to_vec());
        let mut run = prepare_xdp_native(jit, &mut rt, &input).map_err(|d| d.to_string())?;
        let t = Instant::now();
        run.run_repeated(n as u64).map_err(|d| d.to_string())?;
        let ns = t.elapsed().as_nanos() as f64;
        drop(run);
        // The records were made inside the timed loop; consuming them is the reader's work.
        rt.take_outputs();
        Ok(ns)
    })
}

/// Times the bytecode interpreter.
pub fn time_interp(
    obj: &Object,
    index: usize,
    packets: &[Vec<u8>],
    config: &BenchConfig,
) -> Result<f64, String> {
    let mut rt = Runtime::new(obj, RuntimeConfig::default()).map_err(|d| d.to_string())?;
    time_packets(packets, config.interp_repeat, config.rounds, |p, n| {
        let input = XdpInput::new(p.to_vec());
        let t = Instant::now();
        for _ in 0..n {
            sim::interp::run_xdp(obj, index, &mut rt, &input).map_err(|d| d.to_string())?;
        }
        let ns = t.elapsed().as_nanos() as f64;
        rt.take_outputs();
        Ok(ns)
    })
}

/// Times a program loaded in the kernel (the kernel's own per-run duration).
pub fn time_kernel(
    kernel: &hw::linux::KernelObject,
    index: usize,
    packets: &[Vec<u8>],
    config: &BenchConfig,
) -> Result<f64, String> {
    time_packets(packets, config.repeat, config.rounds, |p, n| {
        let r = kernel.time_xdp(index, p, n).map_err(|e| e.to_string())?;
        Ok(r.duration_ns as f64 * n as f64)
    })
}

/// The first-run return values of the interpreter and the JIT on every packet, compared:
/// the number of packets where they differ (0 when the JIT is right).
fn disagreements(obj: &Object, index: usize, jit: &JitProgram, packets: &[Vec<u8>]) -> usize {
    let (Ok(mut rt_i), Ok(mut rt_j)) = (
        Runtime::new(obj, RuntimeConfig::default()),
        Runtime::new(obj, RuntimeConfig::default()),
    ) else {
        return packets.len();
    };
    packets
        .iter()
        .filter(|p| {
            let input = XdpInput::new(p.to_vec());
            let a = sim::interp::run_xdp(obj, index, &mut rt_i, &input).map(|o| o.retval);
            let b = sim::native::run_xdp_native(jit, &mut rt_j, &input).map(|o| o.retval);
            match (a, b) {
                (Ok(a), Ok(b)) => a != b,
                (Err(_), Err(_)) => false,
                _ => true,
            }
        })
        .count()
}

/// The XDP programs of `obj` that the kernel accepts, with the loaded object of each.
pub fn kernel_accepted(obj: &Object) -> Vec<(usize, hw::linux::KernelObject)> {
    obj.programs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind == ProgramKind::Xdp)
        .filter_map(|(i, _)| {
            hw::linux::KernelObject::load(obj, &[i])
                .ok()
                .map(|k| (i, k))
        })
        .collect()
}

/// Measures program `index` of `obj` (already loaded in the kernel as `kernel`) with every
/// engine of this crate; `pass_only` is the loaded two-instruction program.
pub fn bench_program(
    object_label: &str,
    obj: &Object,
    index: usize,
    kernel: &hw::linux::KernelObject,
    pass_only: &hw::linux::KernelObject,
    packets: &[Vec<u8>],
    config: &BenchConfig,
) -> Row {
    let mut row = Row {
        object: object_label.to_string(),
        program: obj.programs[index].name.clone(),
        index,
        packets: packets.len(),
        cells: BTreeMap::new(),
        notes: Vec::new(),
    };
    let cell = |r: Result<f64, String>| match r {
        Ok(v) => Cell::Ns(v),
        Err(e) => Cell::Missing(e),
    };
    for (column, variant) in &JIT_VARIANTS {
        let c = match compile_jit_variant(obj, index, variant) {
            Ok(jit) => {
                let bad = disagreements(obj, index, &jit, packets);
                if bad > 0 {
                    row.notes.push(format!(
                        "{column}: differs from the interpreter on {bad} packets"
                    ));
                }
                cell(time_jit(&jit, obj, packets, config))
            }
            Err(e) => Cell::Missing(e),
        };
        row.cells.insert(column.to_string(), c);
    }
    let pass_only_obj = pass_only_object();
    let jit_loop = compile_jit(&pass_only_obj, 0, "none")
        .and_then(|j| time_jit(&j, &pass_only_obj, packets, config));
    match (row.get(JIT_NATIVE), &jit_loop) {
        (Some(j), Ok(l)) => row.cells.insert(JIT_NET.to_string(), Cell::Ns(j - l)),
        _ => row
            .cells
            .insert(JIT_NET.to_string(), Cell::Missing("no JIT figure".into())),
    };
    row.cells.insert(JIT_LOOP.to_string(), cell(jit_loop));
    row.cells.insert(
        INTERP.to_string(),
        cell(time_interp(obj, index, packets, config)),
    );
    let gross = time_kernel(kernel, index, packets, config);
    let overhead = time_kernel(pass_only, 0, packets, config);
    if let (Ok(g), Ok(o)) = (&gross, &overhead) {
        row.cells.insert(KERNEL_NET.to_string(), Cell::Ns(g - o));
    } else {
        row.cells.insert(
            KERNEL_NET.to_string(),
            Cell::Missing("no kernel figure".into()),
        );
    }
    row.cells.insert(KERNEL.to_string(), cell(gross));
    row.cells.insert(KERNEL_LOOP.to_string(), cell(overhead));
    for (column, c) in &row.cells {
        if let Cell::Missing(why) = c {
            row.notes.push(format!("{column}: {why}"));
        }
    }
    row
}

/// A ratio to show: `a / b` of one row, when both are there and `b` is a time that can be
/// divided by (a kernel net time under 0.5 ns is within the noise of the loop overhead).
pub fn ratio(row: &Row, a: &str, b: &str) -> Option<f64> {
    let (x, y) = (row.get(a)?, row.get(b)?);
    (y >= 0.5).then(|| x / y)
}

/// The median of the ratios `a / b` over the rows that have both.
pub fn median_ratio(rows: &[Row], a: &str, b: &str) -> Option<(f64, usize)> {
    let mut v: Vec<f64> = rows.iter().filter_map(|r| ratio(r, a, b)).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let m = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((m, n))
}

/// The table: one line per program, the given time columns (ns per packet, one decimal) and
/// the given ratio columns, then the median of each ratio and the notes. Column widths are
/// fixed, so the layout does not depend on the figures.
pub fn render_table(rows: &[Row], columns: &[&str], ratios: &[(&str, &str)]) -> String {
    let mut s = String::new();
    let _ = write!(s, "{:<48} {:>5}", "program", "pkts");
    for c in columns {
        let _ = write!(s, " {c:>9}");
    }
    for (a, b) in ratios {
        let _ = write!(s, " {:>15}", format!("{a}/{b}"));
    }
    s.push('\n');
    for r in rows {
        let name = format!("{}:{}", r.object, r.program);
        let name = if name.len() > 48 {
            format!("...{}", &name[name.len() - 45..])
        } else {
            name
        };
        let _ = write!(s, "{name:<48} {:>5}", r.packets);
        for c in columns {
            match r.get(c) {
                Some(v) => {
                    let _ = write!(s, " {v:>9.1}");
                }
                None => {
                    let _ = write!(s, " {:>9}", "-");
                }
            }
        }
        for (a, b) in ratios {
            match ratio(r, a, b) {
                Some(v) => {
                    let _ = write!(s, " {v:>15.2}");
                }
                None => {
                    let _ = write!(s, " {:>15}", "-");
                }
            }
        }
        s.push('\n');
    }
    s.push_str("\nmedian ratios (over the programs that have both figures):\n");
    for (a, b) in ratios {
        match median_ratio(rows, a, b) {
            Some((m, n)) => {
                let _ = writeln!(s, "  {a} / {b}: {m:.2} ({n} programs)");
            }
            None => {
                let _ = writeln!(s, "  {a} / {b}: no program has both");
            }
        }
    }
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.notes
                .iter()
                .map(move |n| format!("  {}:{}: {n}", r.object, r.program))
        })
        .collect();
    if !notes.is_empty() {
        s.push_str("\nnotes:\n");
        for n in notes {
            s.push_str(&n);
            s.push('\n');
        }
    }
    s
}
