//! The differential check against the kernel: the same object, the same map contents and the
//! same packets go through the golden interpreter and through the running kernel
//! (BPF_PROG_TEST_RUN with repeat 1), and every difference in verdict, packet bytes or final map
//! contents is reported.
//!
//! The kernel is the definition of correct here; a mismatch is a bug in nicc (or a documented
//! source of non-determinism such as the clock), never something to paper over.

use frontend::mapdata::MapsSnapshot;
use frontend::Object;
use hw::linux::{KernelError, KernelObject, XdpCtx};
use serde::Serialize;
use sim::interp::run_xdp;
use sim::runtime::{Runtime, RuntimeConfig, XdpAction, XdpInput};

/// What happened when one program was compared.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    pub object: String,
    pub program: String,
    /// `None` when the kernel loaded the program; otherwise the verifier's reason.
    pub kernel_refused: Option<String>,
    /// Helpers the program calls whose results no two runs share (the clock, random numbers):
    /// where this is not empty, value differences are expected and only faults count.
    pub nondeterministic: Vec<String>,
    /// Maps the kernel cannot dump (streams, kernel-object values), with the reason; they are
    /// left out of the comparison and listed here so nothing is skipped silently.
    pub maps_not_compared: Vec<String>,
    /// Packets both engines ran.
    pub packets_compared: usize,
    /// How often the kernel returned each verdict, to show which paths the packets reached.
    pub kernel_verdicts: std::collections::BTreeMap<String, usize>,
    /// Packets the kernel's test run refused (e.g. shorter than an Ethernet header).
    pub packets_refused: usize,
    pub mismatches: Vec<Mismatch>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Mismatch {
    /// The packet index, or `None` for the final map contents.
    pub packet: Option<usize>,
    /// True when the interpreter (or the comparison itself) failed, as opposed to both
    /// engines finishing with different results.
    pub fault: bool,
    pub what: String,
}

/// Helper ids whose results differ between any two runs: `bpf_ktime_get_ns` (5),
/// `bpf_get_prandom_u32` (7), `bpf_ktime_get_boot_ns` (125), `bpf_ktime_get_coarse_ns` (160)
/// and `bpf_ktime_get_tai_ns` (208).
const NONDETERMINISTIC_HELPERS: [(i32, &str); 5] = [
    (5, "bpf_ktime_get_ns"),
    (7, "bpf_get_prandom_u32"),
    (125, "bpf_ktime_get_boot_ns"),
    (160, "bpf_ktime_get_coarse_ns"),
    (208, "bpf_ktime_get_tai_ns"),
];

impl DiffReport {
    /// No differences, or only the value differences a nondeterministic helper explains.
    pub fn is_clean(&self) -> bool {
        if self.nondeterministic.is_empty() {
            self.mismatches.is_empty()
        } else {
            self.mismatches.iter().all(|m| !m.fault)
        }
    }
}

/// The nondeterministic helpers a program calls.
pub fn nondeterministic_helpers(prog: &frontend::object::Program) -> Vec<String> {
    use frontend::insn::{decode_all, CallTarget, Insn};
    let Ok(insns) = decode_all(&prog.insns) else {
        return Vec::new();
    };
    let mut names: Vec<String> = NONDETERMINISTIC_HELPERS
        .iter()
        .filter(|(id, _)| insns.contains(&Insn::Call(CallTarget::Helper(*id))))
        .map(|(_, name)| name.to_string())
        .collect();
    names.dedup();
    names
}

/// Compares one program over `packets`, with both engines' maps seeded from `seed`.
pub fn diff_program(
    obj: &Object,
    program: usize,
    packets: &[Vec<u8>],
    seed: Option<&MapsSnapshot>,
) -> DiffReport {
    let prog = &obj.programs[program];
    let mut report = DiffReport {
        object: obj.name.clone(),
        program: prog.name.clone(),
        kernel_refused: None,
        nondeterministic: nondeterministic_helpers(prog),
        maps_not_compared: Vec::new(),
        packets_compared: 0,
        kernel_verdicts: Default::default(),
        packets_refused: 0,
        mismatches: Vec::new(),
    };
    let fail = |report: &mut DiffReport, packet: Option<usize>, what: String| {
        report.mismatches.push(Mismatch {
            packet,
            fault: true,
            what,
        });
    };
    let differ = |report: &mut DiffReport, packet: Option<usize>, what: String| {
        report.mismatches.push(Mismatch {
            packet,
            fault: false,
            what,
        });
    };
    // Programs of the same kind are loaded together so that prog-array entries (program
    // indices) can name them for tail calls.
    let siblings: Vec<usize> = obj
        .programs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind == prog.kind)
        .map(|(i, _)| i)
        .collect();
    let kernel = match KernelObject::load(obj, &siblings) {
        Ok(k) => k,
        Err(_) if siblings.len() > 1 => match KernelObject::load(obj, &[program]) {
            Ok(k) => k,
            Err(e) => {
                report.kernel_refused = Some(e.to_string());
                return report;
            }
        },
        Err(e) => {
            report.kernel_refused = Some(e.to_string());
            return report;
        }
    };
    // The kernel keeps one value per possible CPU in per-CPU maps; the interpreter must model
    // as many CPUs for the dumps to compare (the oracle runs every packet on CPU 0).
    let cpus = match hw::linux::possible_cpus() {
        Ok(n) => n as u32,
        Err(e) => {
            fail(
                &mut report,
                None,
                format!("cannot count the kernel's CPUs: {e}"),
            );
            return report;
        }
    };
    let config = RuntimeConfig {
        cpus,
        cpu: 0,
        ..RuntimeConfig::default()
    };
    let mut rt = match Runtime::new(obj, config) {
        Ok(rt) => rt,
        Err(d) => {
            fail(
                &mut report,
                None,
                format!("the interpreter refused the object: {d}"),
            );
            return report;
        }
    };
    if let Some(seed) = seed {
        if let Err(e) = kernel.load_snapshot(seed) {
            fail(
                &mut report,
                None,
                format!("seeding the kernel's maps failed: {e}"),
            );
            return report;
        }
        if let Err(e) = rt.load_snapshot(seed) {
            fail(
                &mut report,
                None,
                format!("seeding the interpreter's maps failed: {e}"),
            );
            return report;
        }
    }
    for (i, packet) in packets.iter().enumerate() {
        let k = match kernel.test_run_xdp(program, packet, &XdpCtx::default()) {
            Ok(k) => k,
            Err(KernelError::PacketRejected { .. }) => {
                report.packets_refused += 1;
                continue;
            }
            Err(e) => {
                fail(
                    &mut report,
                    Some(i),
                    format!("the kernel's test run failed: {e}"),
                );
                continue;
            }
        };
        report.packets_compared += 1;
        *report
            .kernel_verdicts
            .entry(XdpAction::from_retval(k.retval as u64).name().to_string())
            .or_insert(0) += 1;
        let input = XdpInput {
            packet: packet.clone(),
            ..XdpInput::default()
        };
        match run_xdp(obj, program, &mut rt, &input) {
            Ok(mine) => {
                if mine.retval as u32 != k.retval {
                    differ(
                        &mut report,
                        Some(i),
                        format!(
                            "return value: kernel {} interpreter {}",
                            k.retval, mine.retval
                        ),
                    );
                }
                let mine_data = mine.test_run_data();
                if mine_data != k.packet {
                    differ(
                        &mut report,
                        Some(i),
                        format!(
                            "output packet: kernel {} bytes {}, interpreter {} bytes {}",
                            k.packet.len(),
                            frontend::mapdata::to_hex(&k.packet),
                            mine_data.len(),
                            frontend::mapdata::to_hex(&mine_data)
                        ),
                    );
                }
            }
            Err(d) => fail(
                &mut report,
                Some(i),
                format!(
                    "the interpreter faulted where the kernel returned {}: {d}",
                    k.retval
                ),
            ),
        }
    }
    match kernel.snapshot_report() {
        Ok((kmaps, skipped)) => {
            let mut mine = rt.snapshot();
            for s in skipped {
                mine.maps.remove(&s.name);
                report
                    .maps_not_compared
                    .push(format!("{}: {}", s.name, s.reason));
            }
            for line in diff_maps(&kmaps, &mine) {
                differ(&mut report, None, line);
            }
        }
        Err(e) => fail(
            &mut report,
            None,
            format!("reading the kernel's maps failed: {e}"),
        ),
    }
    report
}

/// Lists the differences between two map snapshots, entry by entry.
pub fn diff_maps(kernel: &MapsSnapshot, mine: &MapsSnapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (name, k) in &kernel.maps {
        let Some(m) = mine.maps.get(name) else {
            out.push(format!("map {name}: the interpreter has no such map"));
            continue;
        };
        let kset: std::collections::BTreeMap<_, _> =
            k.entries.iter().map(|e| (&e.key, e)).collect();
        let mset: std::collections::BTreeMap<_, _> =
            m.entries.iter().map(|e| (&e.key, e)).collect();
        for (key, ke) in &kset {
            match mset.get(key) {
                None => out.push(format!(
                    "map {name} key {key}: only the kernel has it ({ke:?})"
                )),
                Some(me) if me != ke => out.push(format!(
                    "map {name} key {key}: kernel {:?} interpreter {:?}",
                    ke.value
                        .as_ref()
                        .or(ke.per_cpu.as_ref().and_then(|v| v.first())),
                    me.value
                        .as_ref()
                        .or(me.per_cpu.as_ref().and_then(|v| v.first()))
                )),
                Some(_) => {}
            }
        }
        for key in mset.keys() {
            if !kset.contains_key(key) {
                out.push(format!("map {name} key {key}: only the interpreter has it"));
            }
        }
    }
    for (name, m) in &mine.maps {
        // Output-only maps (perf event arrays, ring buffers) hold no state a dump can read;
        // their records are compared as captured outputs, not here.
        let output_only = matches!(
            m.map_type,
            frontend::object::MapType::PerfEventArray | frontend::object::MapType::Ringbuf
        );
        if !output_only && !kernel.maps.contains_key(name) {
            out.push(format!("map {name}: the kernel's dump lacks it"));
        }
    }
    out
}
