//! `cargo bench --bench engines`: the `nicc bench` table over the corpus, with two more
//! columns, rbpf's JIT and interpreter (rbpf from crates.io is a dev-dependency, so the `nicc`
//! binary cannot have them).
//!
//! # How rbpf runs an XDP program
//!
//! rbpf knows no XDP context, no maps and no kernel helpers, so the program is adapted, and
//! only where the adaptation keeps it on the path nicc takes:
//!
//! - **Context.** rbpf passes a metadata buffer in r1. Range analysis of the lifted program
//!   names every load from the context (`struct xdp_md`); those 4-byte loads become loads from
//!   the buffer, `data`, `data_end` and `data_meta` as 8-byte host pointers (what the kernel's
//!   own rewriting of these loads produces) and the device fields as 4-byte values.
//! - **Maps.** `lddw rX, map` loads a tag naming the map; `lddw rX, map_value` (global data)
//!   loads the host address of a buffer holding the map's initial value.
//! - **Helpers.** Stubs with the results nicc's runtime gives on empty maps:
//!   `bpf_map_lookup_elem` finds a zeroed value in an array map (one buffer per key) and
//!   nothing in any other map; `bpf_ktime_get_ns` counts from the runtime's start in its
//!   steps; `bpf_get_smp_processor_id` is 0; `bpf_redirect` gives `XDP_REDIRECT` for flags 0;
//!   `bpf_redirect_map` on an empty map gives the action in the low bits of its flags. A
//!   program calling any other helper is not run by rbpf.
//!
//! Before any timing, the rbpf interpreter (which checks every access) runs every packet, and
//! its return values must equal those of nicc's interpreter; only then is rbpf's JIT (which
//! checks nothing) run. A program rbpf refuses or runs differently gets a note and no rbpf
//! figure.

#[path = "../tests/support/packets.rs"]
mod packets;

use frontend::insn::RawInsn;
use frontend::object::MapType;
use frontend::Object;
use nicc::bench::{
    bench_program, compile_jit_variant, kernel_accepted, pass_only_object, render_table,
    sample_packets, time_jit, time_packets, BenchConfig, Cell, Row, INTERP, JIT_NATIVE,
    JIT_VARIANTS,
};
use nicc::commands::bench::{COLUMNS, RATIOS};
use std::cell::Cell as StdCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

const RBPF_JIT: &str = "rbpf-jit";
const RBPF_INTERP: &str = "rbpf-int";

/// The tag `lddw rX, map` loads for map `i`: an address no program can dereference.
const MAP_TAG: u64 = 0x6e69_6363_0000_0000;

/// Headroom in front of the packet, as `BPF_PROG_TEST_RUN` leaves it.
const HEADROOM: usize = 256;
/// The frame every rbpf run gets (the kernel's page).
const FRAME: usize = 4096;

/// The stub maps of the program being run, reached by the helper stubs (plain functions).
struct StubMaps {
    /// Per map: its type, key size, entry count, and for arrays the zeroed values.
    maps: Vec<(MapType, u32, u32, u32, Vec<u8>)>,
    clock: StdCell<u64>,
}

thread_local! {
    static STUBS: StdCell<*const StubMaps> = const { StdCell::new(std::ptr::null()) };
}

fn with_stubs<R>(f: impl FnOnce(&StubMaps) -> R, otherwise: R) -> R {
    let p = STUBS.with(|s| s.get());
    if p.is_null() {
        return otherwise;
    }
    // SAFETY: the pointer is set by `Rbpf::install` to a `StubMaps` that outlives every run
    // (it is cleared before the maps are dropped), and only this thread reads it.
    f(unsafe { &*p })
}

fn stub_map_lookup(map: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    with_stubs(
        |s| {
            let Some(i) = map.checked_sub(MAP_TAG).map(|i| i as usize) else {
                return 0;
            };
            let Some((ty, key_size, entries, value_size, values)) = s.maps.get(i) else {
                return 0;
            };
            if !matches!(ty, MapType::Array | MapType::PercpuArray) || *key_size != 4 {
                return 0;
            }
            // SAFETY: the program passes a pointer to a 4-byte key on its stack or packet,
            // as the verifier made sure for the kernel.
            let k = unsafe { std::ptr::read_unaligned(key as *const u32) };
            if k >= *entries {
                return 0;
            }
            values.as_ptr() as u64 + k as u64 * *value_size as u64
        },
        0,
    )
}

fn stub_ktime(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    with_stubs(
        |s| {
            let t = s.clock.get();
            s.clock.set(t + 1_000);
            t
        },
        0,
    )
}

fn stub_cpu(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    0
}

fn stub_redirect(_ifindex: u64, flags: u64, _: u64, _: u64, _: u64) -> u64 {
    if flags == 0 {
        4
    } else {
        0
    }
}

fn stub_redirect_map(_map: u64, _key: u64, flags: u64, _: u64, _: u64) -> u64 {
    flags & 3
}

const STUB_HELPERS: [(u32, rbpf::Helper); 5] = [
    (1, stub_map_lookup),
    (5, stub_ktime),
    (8, stub_cpu),
    (23, stub_redirect),
    (51, stub_redirect_map),
];

/// A program adapted for rbpf, with its stub maps (which own the global data too, whose
/// addresses are baked into the code).
struct Rbpf {
    code: Vec<u8>,
    stubs: Box<StubMaps>,
    allowed: Vec<std::ops::Range<u64>>,
}

impl Rbpf {
    fn install(&self) {
        let p: *const StubMaps = &*self.stubs;
        STUBS.with(|s| s.set(p));
    }
}

impl Drop for Rbpf {
    fn drop(&mut self) {
        STUBS.with(|s| s.set(std::ptr::null()));
    }
}

/// The slots of program `index` that load from the XDP context, by lifting it.
fn ctx_load_slots(obj: &Object, index: usize) -> Result<Vec<usize>, String> {
    let module = frontend::lift::lift_program(obj, index, &frontend::lift::LiftOptions::default())
        .map_err(|d| format!("does not lift: {}", d.message))?;
    let mut out = Vec::new();
    for (_, func) in module.functions.iter() {
        for inst in func.insts() {
            if let ir::instructions::InstructionData::Load {
                region: ir::Region::Ctx,
                ..
            } = func.dfg.inst(inst)
            {
                out.push(func.srclocs[inst].insn as usize);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Adapts program `index` of `obj` for rbpf (see the module documentation), or says why not.
fn adapt(obj: &Object, index: usize) -> Result<Rbpf, String> {
    let prog = &obj.programs[index];
    let mut insns: Vec<RawInsn> = prog.insns.clone();
    for slot in ctx_load_slots(obj, index)? {
        let Some(i) = insns.get_mut(slot) else {
            return Err(format!("context load at slot {slot} outside the program"));
        };
        // LDX | MEM | W is 0x61; the 8-byte form is 0x79.
        if i.code != 0x61 {
            return Err(format!(
                "context access at slot {slot} is not a 4-byte load (opcode {:#04x})",
                i.code
            ));
        }
        let (code, new_off) = match i.off {
            0 => (0x79, 0),
            4 => (0x79, 8),
            8 => (0x79, 16),
            12 => (0x61, 24),
            16 => (0x61, 28),
            20 => (0x61, 32),
            o => return Err(format!("context field at offset {o} is not modelled")),
        };
        i.code = code;
        i.off = new_off;
    }
    let mut allowed = Vec::new();
    let mut maps = Vec::new();
    for def in &obj.maps {
        let array = matches!(def.map_type, MapType::Array | MapType::PercpuArray);
        let total = def.max_entries as u64 * def.value_size as u64;
        let values = if array && total <= 1 << 24 {
            let mut v = vec![0u8; total as usize];
            if let Some(init) = &def.initial_value {
                let n = init.len().min(v.len());
                v[..n].copy_from_slice(&init[..n]);
            }
            v
        } else {
            Vec::new()
        };
        if !values.is_empty() {
            let a = values.as_ptr() as u64;
            allowed.push(a..a + values.len() as u64);
        }
        maps.push((
            def.map_type,
            def.key_size,
            if values.is_empty() {
                0
            } else {
                def.max_entries
            },
            def.value_size,
            values,
        ));
    }
    let mut slot = 0;
    while slot < insns.len() {
        let i = insns[slot];
        if i.code == 0x18 {
            let value = match i.src {
                0 => None,
                5 => Some(MAP_TAG + i.imm as u64),
                6 => {
                    let m = maps
                        .get(i.imm as usize)
                        .filter(|m| !m.4.is_empty())
                        .ok_or_else(|| format!("global data of map {} is not an array", i.imm))?;
                    let offset = insns.get(slot + 1).map_or(0, |t| t.imm as u32 as u64);
                    Some(m.4.as_ptr() as u64 + offset)
                }
                s => return Err(format!("64-bit immediate of kind {s} at slot {slot}")),
            };
            if let Some(v) = value {
                insns[slot].src = 0;
                insns[slot].imm = v as u32 as i32;
                if let Some(t) = insns.get_mut(slot + 1) {
                    t.imm = (v >> 32) as u32 as i32;
                }
            }
            slot += 2;
            continue;
        }
        if i.code == 0x85 && i.src == 0 && !STUB_HELPERS.iter().any(|(id, _)| *id as i32 == i.imm) {
            return Err(format!(
                "calls helper {} ({}), which has no stub",
                i.imm,
                backends::native::abi::helper_name(i.imm as u32).unwrap_or("?")
            ));
        }
        slot += 1;
    }
    let code = insns.iter().flat_map(|i| i.to_bytes()).collect();
    Ok(Rbpf {
        code,
        stubs: Box::new(StubMaps {
            maps,
            clock: StdCell::new(1_000_000_000),
        }),
        allowed,
    })
}

/// A frame for one packet and the metadata buffer pointing into it.
fn frame(packet: &[u8]) -> (Vec<u8>, [u8; 40]) {
    let mut buf = vec![0u8; FRAME];
    buf[HEADROOM..HEADROOM + packet.len()].copy_from_slice(packet);
    let base = buf.as_ptr() as u64;
    let mut meta = [0u8; 40];
    let data = base + HEADROOM as u64;
    meta[0..8].copy_from_slice(&data.to_le_bytes());
    meta[8..16].copy_from_slice(&(data + packet.len() as u64).to_le_bytes());
    meta[16..24].copy_from_slice(&data.to_le_bytes());
    // The loopback device, queue 0: what the kernel and nicc use without a context.
    meta[24..28].copy_from_slice(&1u32.to_le_bytes());
    (buf, meta)
}

/// Adds the rbpf columns to `row`.
fn bench_rbpf(obj: &Object, row: &mut Row, packets: &[Vec<u8>], config: &BenchConfig) {
    let missing = |row: &mut Row, why: String| {
        row.notes.push(format!("rbpf: {why}"));
        row.cells
            .insert(RBPF_JIT.into(), Cell::Missing(why.clone()));
        row.cells.insert(RBPF_INTERP.into(), Cell::Missing(why));
    };
    let rb = match adapt(obj, row.index) {
        Ok(r) => r,
        Err(why) => return missing(row, why),
    };
    rb.install();
    let mut vm = match rbpf::EbpfVmMbuff::new(Some(&rb.code)) {
        Ok(vm) => vm,
        Err(e) => return missing(row, format!("refused: {e}")),
    };
    for (id, f) in STUB_HELPERS {
        let _ = vm.register_helper(id, f);
    }
    for r in &rb.allowed {
        vm.register_allowed_memory(r.clone());
    }
    // The same path as nicc: the interpreter's return values on every packet, from empty maps.
    let mut rt = match sim::runtime::Runtime::new(obj, sim::runtime::RuntimeConfig::default()) {
        Ok(rt) => rt,
        Err(d) => return missing(row, d.to_string()),
    };
    let mut differ = 0;
    for p in packets {
        let want = sim::interp::run_xdp(
            obj,
            row.index,
            &mut rt,
            &sim::runtime::XdpInput::new(p.clone()),
        )
        .map(|o| o.retval);
        let (buf, meta) = frame(p);
        let got = vm.execute_program(&buf, &meta);
        match (want, got) {
            (Ok(w), Ok(g)) if w == g => {}
            (_, Err(e)) => return missing(row, format!("interpreter failed: {e}")),
            _ => differ += 1,
        }
    }
    if differ > 0 {
        return missing(
            row,
            format!(
                "returns other values than nicc on {differ} of {} packets (another path)",
                packets.len()
            ),
        );
    }
    let interp = time_packets(packets, config.interp_repeat, config.rounds, |p, n| {
        let (buf, meta) = frame(p);
        let t = Instant::now();
        for _ in 0..n {
            vm.execute_program(&buf, &meta).map_err(|e| e.to_string())?;
        }
        Ok(t.elapsed().as_nanos() as f64)
    });
    row.cells.insert(
        RBPF_INTERP.into(),
        interp.map_or_else(Cell::Missing, Cell::Ns),
    );
    if let Err(e) = vm.jit_compile() {
        row.notes.push(format!("rbpf jit: {e}"));
        row.cells
            .insert(RBPF_JIT.into(), Cell::Missing(e.to_string()));
        return;
    }
    let jit = time_packets(packets, config.repeat, config.rounds, |p, n| {
        let (mut buf, mut meta) = frame(p);
        let t = Instant::now();
        for _ in 0..n {
            // SAFETY: the interpreter, which checks every access, ran this program on this
            // packet (from the same empty maps) without error and with nicc's results.
            unsafe { vm.execute_program_jit(&mut buf, &mut meta) }.map_err(|e| e.to_string())?;
        }
        Ok(t.elapsed().as_nanos() as f64)
    });
    row.cells
        .insert(RBPF_JIT.into(), jit.map_or_else(Cell::Missing, Cell::Ns));
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// The packets every engine runs: 64 generated probes and 32 capture packets, evenly spaced.
/// Every test run costs the kernel milliseconds around the timed loop (see nicc::bench), so
/// the set is kept small.
fn bench_packets() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    let pcaps =
        nicc::commands::bench::files_under(&corpus().join("pcap"), &|_| true).unwrap_or_default();
    for path in &pcaps {
        if let Ok(capture) = sim::pcap::read_file(path) {
            all.extend(capture.ethernet().map(|p| p.data.clone()));
        }
    }
    let mut list = sample_packets(packets::generated(), 64);
    list.extend(sample_packets(all, 32));
    sample_packets(list, 0)
}

/// `engines --profile OBJECT [INDEX] [REPEAT] [COLUMN]`: only the nicc JIT's timed loop
/// ([`sim::native::PreparedRun::run_repeated`]) of one program, on the benchmark's packets,
/// for a profiler. Under `valgrind --tool=callgrind --toggle-collect='*run_repeated*'` the
/// instructions counted divided by packets times `REPEAT` are the instructions one run
/// costs, entry loop included; the line printed says what to divide by.
fn profile(args: &[String]) -> Result<(), String> {
    let path = args.first().ok_or("--profile needs an object")?;
    let number = |i: usize, default: u64| -> Result<u64, String> {
        args.get(i).map_or(Ok(default), |a| {
            a.parse().map_err(|e| format!("`{a}`: {e}"))
        })
    };
    let index = number(1, 0)? as usize;
    let repeat = number(2, 1000)? as u32;
    let column = args.get(3).map_or(JIT_NATIVE, String::as_str);
    let obj = frontend::elf::read_file(Path::new(path)).map_err(|d| d.to_string())?;
    let (_, variant) = JIT_VARIANTS
        .iter()
        .find(|(c, _)| *c == column)
        .ok_or_else(|| format!("no JIT column `{column}`"))?;
    let jit = compile_jit_variant(&obj, index, variant)?;
    let packets = bench_packets();
    let config = BenchConfig {
        repeat,
        interp_repeat: 1,
        rounds: 1,
    };
    let ns = time_jit(&jit, &obj, &packets, &config)?;
    println!(
        "{path} program {index} ({column}): {} packets x {repeat} runs, {ns:.1} ns per run",
        packets.len()
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--profile") {
        if let Err(e) = profile(&args[at + 1..]) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    // `cargo bench` passes `--bench`; an optional filter selects objects by path.
    let filter: Option<String> = args.into_iter().find(|a| !a.starts_with("--"));
    if let Err(why) = hw::linux::kernel_available() {
        eprintln!("the engines benchmark times the kernel's JIT: {why}");
        std::process::exit(1);
    }
    let packets = bench_packets();
    let config = BenchConfig::default();
    let pass_only = hw::linux::KernelObject::load(&pass_only_object(), &[0])
        .expect("the kernel loads the two-instruction program");
    let elf = corpus().join("elf");
    let objects =
        nicc::commands::bench::files_under(&elf, &|p| p.extension().is_some_and(|e| e == "o"))
            .expect("the corpus is readable");
    let mut rows = Vec::new();
    for path in objects {
        if path.starts_with(elf.join("invalid")) {
            continue;
        }
        let label = path
            .strip_prefix(&elf)
            .unwrap_or(&path)
            .display()
            .to_string();
        if filter.as_ref().is_some_and(|f| !label.contains(f.as_str())) {
            continue;
        }
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        for (index, kernel) in kernel_accepted(&obj) {
            let mut row =
                bench_program(&label, &obj, index, &kernel, &pass_only, &packets, &config);
            bench_rbpf(&obj, &mut row, &packets, &config);
            eprintln!("measured {label}:{}", row.program);
            rows.push(row);
        }
    }
    let mut columns = COLUMNS.to_vec();
    columns.extend([RBPF_JIT, RBPF_INTERP]);
    let mut ratios = RATIOS.to_vec();
    // rbpf is timed gross (its call included, as nicc's `jit` column is), so the two gross
    // figures are what compares like with like.
    ratios.extend([(JIT_NATIVE, RBPF_JIT), (INTERP, RBPF_INTERP)]);
    println!(
        "ns per packet, {} packets, {} runs per packet (interpreters {}), fastest of {} rounds\n",
        packets.len(),
        config.repeat,
        config.interp_repeat,
        config.rounds
    );
    print!("{}", render_table(&rows, &columns, &ratios,));
}
