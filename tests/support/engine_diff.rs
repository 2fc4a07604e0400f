//! The bytecode interpreter against the IR executor: one program of an object, run on every
//! packet by both engines, each with its own runtime built from the object and seeded alike.
//!
//! [`check_engine`] is the one check every IR producer is held to: the lifter (module as
//! lifted) and every optimization pipeline (module after the pipeline). A module must do what
//! the bytecode does on every packet: same verdict (raw `r0`), same output packet
//! (`XdpOutcome::test_run_data`), same redirect target, and in the end the same maps and the
//! same captured outputs (trace lines, perf and ring buffer records). A packet on which both
//! engines fault counts as agreement (the kernel would have refused the program or aborted);
//! one engine faulting alone is a mismatch.

use super::seeds::seed_for;
use frontend::Object;
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};
use std::path::Path;
use std::sync::OnceLock;

/// Every Ethernet packet of the pcap corpus, then the generated probe packets.
pub fn corpus_packets() -> &'static [Vec<u8>] {
    static PACKETS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    PACKETS.get_or_init(|| {
        let mut packets = Vec::new();
        for path in super::files_under(&super::corpus().join("pcap"), &|_| true) {
            // Damaged captures are part of the corpus; what can be read of them is used.
            if let Ok(capture) = sim::pcap::read_file(&path) {
                packets.extend(capture.ethernet().map(|p| p.data.clone()));
            }
        }
        packets.extend(super::packets::generated());
        packets
    })
}

/// What one program's comparison found.
#[derive(Debug, Default)]
pub struct Report {
    pub program: String,
    /// Packets both engines ran.
    pub packets: usize,
    /// Packets on which both engines faulted.
    pub both_faulted: usize,
    /// Packets no XDP frame can hold (shorter than an Ethernet header, or too long), which
    /// neither engine runs, as `BPF_PROG_TEST_RUN` refuses them.
    pub refused: usize,
    /// Verdicts (raw `r0`) and how often each occurred, from the interpreter.
    pub verdicts: std::collections::BTreeMap<u64, usize>,
    /// Every difference, with the packet index where there is one.
    pub mismatches: Vec<(Option<usize>, String)>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty()
    }

    /// The verdicts, most frequent first, at most `n` of them, for a one-line summary.
    pub fn verdict_summary(&self, n: usize) -> String {
        let mut v: Vec<(u64, usize)> = self.verdicts.iter().map(|(k, c)| (*k, *c)).collect();
        v.sort_by_key(|&(k, c)| (std::cmp::Reverse(c), k));
        let mut parts: Vec<String> = v.iter().take(n).map(|(k, c)| format!("{k}: {c}")).collect();
        if v.len() > n {
            parts.push(format!("{} more distinct", v.len() - n));
        }
        parts.join(", ")
    }
}

/// The file name of the object, which is what [`seed_for`] keys on.
fn file_name(obj: &Object) -> String {
    Path::new(&obj.name)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| obj.name.clone())
}

/// Runs program `program` of `obj` in the interpreter and the entry of object program
/// `program` in `module` (`module.programs[program]` when the module lists every program of
/// the object, as `lift_object` makes it, else its only program) in the IR executor, over
/// [`corpus_packets`], and compares.
pub fn check_engine(obj: &Object, program: usize, module: &ir::Module) -> Report {
    check_engine_on(obj, program, module, corpus_packets())
}

/// [`check_engine`] on given packets.
pub fn check_engine_on(
    obj: &Object,
    program: usize,
    module: &ir::Module,
    packets: &[Vec<u8>],
) -> Report {
    let mut report = Report {
        program: obj
            .programs
            .get(program)
            .map(|p| p.name.clone())
            .unwrap_or_default(),
        ..Report::default()
    };
    let entry = if module.programs.len() == obj.programs.len() {
        module.programs.get(program)
    } else if module.programs.len() == 1 {
        module.programs.first()
    } else {
        None
    };
    let Some(entry) = entry.map(|p| p.func) else {
        report.mismatches.push((
            None,
            format!(
                "the module lists {} programs, the object {}: cannot find program {program}",
                module.programs.len(),
                obj.programs.len()
            ),
        ));
        return report;
    };
    let runtime = || -> Result<Runtime, String> {
        let mut rt = Runtime::new(obj, RuntimeConfig::default()).map_err(|d| d.to_string())?;
        if let Some(seed) = seed_for(&file_name(obj), obj) {
            rt.load_snapshot(&seed)?;
        }
        Ok(rt)
    };
    let (mut rt_bc, mut rt_ir) = match (runtime(), runtime()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            report.mismatches.push((None, format!("no runtime: {e}")));
            return report;
        }
    };
    for (i, packet) in packets.iter().enumerate() {
        let input = XdpInput::new(packet.clone());
        if sim::runtime::ExecState::for_xdp(&input).is_err() {
            report.refused += 1;
            continue;
        }
        let bc = sim::interp::run_xdp(obj, program, &mut rt_bc, &input);
        let ir = sim::ir_exec::run_xdp_ir(module, entry, &mut rt_ir, &input);
        report.packets += 1;
        match (bc, ir) {
            (Ok(bc), Ok(ir)) => {
                *report.verdicts.entry(bc.retval).or_insert(0) += 1;
                if bc.retval != ir.retval {
                    report.mismatches.push((
                        Some(i),
                        format!("verdict: bytecode {} IR {}", bc.retval, ir.retval),
                    ));
                }
                if bc.test_run_data() != ir.test_run_data() {
                    report.mismatches.push((
                        Some(i),
                        format!(
                            "output packet: bytecode {} bytes, IR {} bytes, first difference at byte {}",
                            bc.test_run_data().len(),
                            ir.test_run_data().len(),
                            first_difference(&bc.test_run_data(), &ir.test_run_data())
                        ),
                    ));
                }
                if bc.redirect != ir.redirect {
                    report.mismatches.push((
                        Some(i),
                        format!("redirect: bytecode {:?} IR {:?}", bc.redirect, ir.redirect),
                    ));
                }
            }
            (Err(_), Err(_)) => report.both_faulted += 1,
            (Ok(bc), Err(d)) => report.mismatches.push((
                Some(i),
                format!(
                    "the IR executor faulted (bytecode returned {}): {d}",
                    bc.retval
                ),
            )),
            (Err(d), Ok(ir)) => report.mismatches.push((
                Some(i),
                format!("the interpreter faulted (IR returned {}): {d}", ir.retval),
            )),
        }
    }
    let (snap_bc, snap_ir) = (rt_bc.snapshot(), rt_ir.snapshot());
    for (name, contents) in &snap_bc.maps {
        if snap_ir.maps.get(name) != Some(contents) {
            report
                .mismatches
                .push((None, format!("final contents of map `{name}` differ")));
        }
    }
    if rt_bc.outputs() != rt_ir.outputs() {
        report.mismatches.push((
            None,
            format!(
                "captured outputs differ: bytecode {} trace lines, {} perf and {} ring buffer records; IR {}, {}, {}",
                rt_bc.outputs().trace.len(),
                rt_bc.outputs().perf.len(),
                rt_bc.outputs().ringbuf.len(),
                rt_ir.outputs().trace.len(),
                rt_ir.outputs().perf.len(),
                rt_ir.outputs().ringbuf.len()
            ),
        ));
    }
    report
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}
