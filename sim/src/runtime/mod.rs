//! The runtime every engine shares: the maps of an object, the helper functions, the XDP frame,
//! the region-checked memory that ties them together, and everything a run leaves behind that
//! is not the packet (trace lines, perf and ring buffer records).
//!
//! One `Runtime` belongs to one object and lives across many packets, like the kernel's maps
//! outlive a program run. Per-run state (stack frames, the frame buffer, ring buffer
//! reservations, the redirect target) lives in an [`ExecState`] that the engine creates per
//! run, so that engines with different register models (the interpreter, a JIT, hardware
//! simulators) reach memory and helpers through the same two types.
//!
//! Determinism: the clock starts at `ktime_start_ns` and advances by `ktime_step_ns` at every
//! clock read, the random number generator is a seeded SplitMix64, and the current CPU is the
//! configured one, so two runs of the same input produce the same bytes.
//!
//! CPUs: `cpus` (default 1) is the number of CPUs per-CPU maps keep values for and `cpu`
//! (default 0) the one the program runs on. The kernel oracle pins its thread to CPU 0; to
//! compare per-CPU map snapshots with a kernel dump, set `cpus` to the host's possible-CPU
//! count, because the kernel reports one value for every possible CPU.

// The workspace-wide error type `Diagnostic` is returned by value, as every stage does.
#![allow(clippy::result_large_err)]

pub mod fib;
pub mod helpers;
pub mod lru;
pub mod maps;
pub mod memory;
pub mod printk;
pub mod run;
pub mod xdp;

pub use fib::{Fib, Route, RouteKind};
pub use maps::MapState;
pub use memory::Fault;
pub use xdp::{Redirect, XdpAction, XdpBuffer, XdpInput, XdpOutcome};

use frontend::insn::{Insn, RawInsn};
use frontend::mapdata::MapsSnapshot;
use frontend::{Diagnostic, Object};
use memory::{check_bounds, make_addr, split_addr, Access, Region};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const EPERM: i64 = 1;
pub const ENOENT: i64 = 2;
pub const E2BIG: i64 = 7;
pub const EAGAIN: i64 = 11;
pub const ENOMEM: i64 = 12;
pub const EACCES: i64 = 13;
pub const EFAULT: i64 = 14;
pub const EEXIST: i64 = 17;
pub const ENODEV: i64 = 19;
pub const EINVAL: i64 = 22;
pub const ENOSPC: i64 = 28;
pub const EAFNOSUPPORT: i64 = 97;

/// How a runtime behaves where the kernel depends on the machine or on time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    /// Number of CPUs per-CPU maps keep values for.
    pub cpus: u32,
    /// The CPU the program runs on (`bpf_get_smp_processor_id`, per-CPU map slots).
    pub cpu: u32,
    /// The forwarding table `bpf_fib_lookup` consults.
    pub fib: Fib,
    /// Instructions one packet may execute before the run is stopped with a fault.
    pub insn_budget: u64,
    pub prandom_seed: u64,
    /// First value `bpf_ktime_get_ns` returns.
    pub ktime_start_ns: u64,
    /// How far the clock advances at each clock read.
    pub ktime_step_ns: u64,
    /// Whether a perf event reader is attached on every CPU. When true (the default)
    /// `bpf_perf_event_output` succeeds and returns 0; when false it returns `-ENOENT` as the
    /// kernel does for an array with no perf event attached, which is what a bare
    /// `BPF_PROG_TEST_RUN` sees. The record is captured in [`Outputs`] either way.
    pub perf_event_readers: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cpus: 1,
            cpu: 0,
            fib: Fib::default(),
            insn_budget: 1_000_000,
            prandom_seed: 0x6e69_6363,
            ktime_start_ns: 1_000_000_000,
            ktime_step_ns: 1_000,
            perf_event_readers: true,
        }
    }
}

/// A record a program sent to a perf event array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerfRecord {
    pub map: String,
    pub cpu: u32,
    pub data: Vec<u8>,
}

/// A record a program submitted to a ring buffer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingbufRecord {
    pub map: String,
    pub data: Vec<u8>,
}

/// Everything programs produced besides packets and map contents, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outputs {
    /// `bpf_trace_printk` lines, as they would appear in the trace pipe's message column.
    pub trace: Vec<String>,
    pub perf: Vec<PerfRecord>,
    pub ringbuf: Vec<RingbufRecord>,
}

/// A ring buffer record reserved during a run.
#[derive(Clone, Debug)]
pub struct PendingRecord {
    pub map: usize,
    pub data: Vec<u8>,
    pub open: bool,
}

/// Per-run state shared by the engine and the helpers.
#[derive(Clone, Debug)]
pub struct ExecState {
    /// One 512-byte stack per possible call frame.
    pub stacks: Vec<Vec<u8>>,
    /// Number of live frames.
    pub depth: usize,
    /// The XDP frame, in XDP mode.
    pub xdp: Option<XdpBuffer>,
    /// The conformance memory buffer, in memory mode.
    pub mem: Vec<u8>,
    pub ringbuf: Vec<PendingRecord>,
    pub redirect: Option<Redirect>,
    /// Tail calls taken so far (at most 33 succeed).
    pub tail_calls: u32,
}

impl ExecState {
    pub fn new(xdp: Option<XdpBuffer>, mem: Vec<u8>) -> ExecState {
        ExecState {
            stacks: vec![vec![0u8; memory::STACK_SIZE]; memory::MAX_CALL_FRAMES],
            depth: 1,
            xdp,
            mem,
            ringbuf: Vec::new(),
            redirect: None,
            tail_calls: 0,
        }
    }

    /// The frame pointer (`r10`) of frame `d`: one past the end of its stack.
    pub fn frame_pointer(d: usize) -> u64 {
        make_addr(memory::REGION_STACK + d as u32, memory::STACK_SIZE as u32)
    }
}

/// A program decoded once and kept for every later run.
#[derive(Clone, Debug)]
pub(crate) struct Decoded {
    pub raw: Vec<RawInsn>,
    pub insns: Arc<Vec<Insn>>,
}

/// The state of one object's maps and everything that persists between runs.
#[derive(Debug)]
pub struct Runtime {
    pub config: RuntimeConfig,
    object: String,
    maps: Vec<MapState>,
    value_regions: Vec<(u32, u32, u32)>,
    /// Region number of each (map, slot, CPU) handed out; hashed with the map-key hasher,
    /// because every map lookup that finds a value asks it.
    value_region_ids: maps::FastMap<(u32, u32, u32), u32>,
    outputs: Outputs,
    clock_ns: u64,
    prng: u64,
    pub(crate) decoded: Vec<Option<Decoded>>,
}

impl Runtime {
    /// Creates the maps of `obj` (global data with its initial values).
    pub fn new(obj: &Object, config: RuntimeConfig) -> Result<Runtime, Diagnostic> {
        if config.cpus == 0 || config.cpu >= config.cpus {
            return Err(Diagnostic::new(format!(
                "runtime configured with {} CPUs cannot run on CPU {}",
                config.cpus, config.cpu
            ))
            .object(obj.name.clone()));
        }
        config.fib.validate().map_err(|m| {
            Diagnostic::new(format!("invalid FIB configuration: {m}")).object(obj.name.clone())
        })?;
        let maps = obj
            .maps
            .iter()
            .map(|d| MapState::new(d, config.cpus as usize))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| Diagnostic::new(m).object(obj.name.clone()))?;
        Ok(Runtime {
            clock_ns: config.ktime_start_ns,
            prng: config.prandom_seed,
            config,
            object: obj.name.clone(),
            maps,
            value_regions: Vec::new(),
            value_region_ids: maps::FastMap::default(),
            outputs: Outputs::default(),
            decoded: vec![None; obj.programs.len()],
        })
    }

    /// A runtime without maps, for programs that use none (the conformance suite).
    pub fn empty(config: RuntimeConfig) -> Runtime {
        let obj = Object::default();
        // An empty object has no maps and a validated default FIB, so this cannot fail; fall
        // back to a hand-built runtime anyway rather than panic.
        Runtime::new(&obj, config.clone()).unwrap_or(Runtime {
            clock_ns: config.ktime_start_ns,
            prng: config.prandom_seed,
            config,
            object: String::new(),
            maps: Vec::new(),
            value_regions: Vec::new(),
            value_region_ids: maps::FastMap::default(),
            outputs: Outputs::default(),
            decoded: Vec::new(),
        })
    }

    pub fn object_name(&self) -> &str {
        &self.object
    }

    pub fn maps(&self) -> &[MapState] {
        &self.maps
    }

    pub fn map_mut(&mut self, index: usize) -> Option<&mut MapState> {
        self.maps.get_mut(index)
    }

    /// Finds a map by name.
    pub fn map_by_name_mut(&mut self, name: &str) -> Option<&mut MapState> {
        self.maps.iter_mut().find(|m| m.def.name == name)
    }

    pub fn outputs(&self) -> &Outputs {
        &self.outputs
    }

    /// Hands the captured outputs over and clears them; this also plays the ring buffer
    /// consumer, so the space the records took becomes free again.
    pub fn take_outputs(&mut self) -> Outputs {
        for m in &mut self.maps {
            m.ringbuf_used = 0;
        }
        std::mem::take(&mut self.outputs)
    }

    pub(crate) fn outputs_mut(&mut self) -> &mut Outputs {
        &mut self.outputs
    }

    /// The current clock value, advancing it by one step.
    pub fn clock_read(&mut self) -> u64 {
        let t = self.clock_ns;
        self.clock_ns = self.clock_ns.wrapping_add(self.config.ktime_step_ns);
        t
    }

    /// The value the next clock read returns, without advancing the clock.
    pub fn clock(&self) -> u64 {
        self.clock_ns
    }

    /// Sets the clock, e.g. to a packet's capture timestamp.
    pub fn set_clock(&mut self, ns: u64) {
        self.clock_ns = ns;
    }

    /// The random generator's state, for engines that keep it themselves (the pipeline
    /// simulator holds it in a memory, as the emitted hardware does) and hand it back with
    /// [`Runtime::set_random_state`].
    pub fn random_state(&self) -> u64 {
        self.prng
    }

    /// Sets the random generator's state.
    pub fn set_random_state(&mut self, state: u64) {
        self.prng = state;
    }

    /// The next pseudo-random 32-bit value (SplitMix64).
    pub fn next_random(&mut self) -> u32 {
        self.prng = self.prng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.prng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    }

    /// The contents of every map.
    pub fn snapshot(&self) -> MapsSnapshot {
        MapsSnapshot {
            maps: self
                .maps
                .iter()
                .map(|m| (m.def.name.clone(), m.contents()))
                .collect(),
        }
    }

    /// Replaces the contents of the maps a snapshot names; the others keep theirs.
    pub fn load_snapshot(&mut self, s: &MapsSnapshot) -> Result<(), String> {
        for (name, contents) in &s.maps {
            let m = self
                .maps
                .iter_mut()
                .find(|m| &m.def.name == name)
                .ok_or_else(|| {
                    format!("snapshot names map `{name}`, which the object does not define")
                })?;
            m.load(contents)?;
        }
        Ok(())
    }

    /// A pointer to the value in `slot` of map `map` for `cpu`.
    pub fn value_pointer(&mut self, map: usize, slot: u32, cpu: u32) -> u64 {
        let key = (map as u32, slot, cpu);
        let id = match self.value_region_ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = self.value_regions.len() as u32;
                self.value_regions.push(key);
                self.value_region_ids.insert(key, id);
                id
            }
        };
        make_addr(memory::REGION_MAP_VALUE.wrapping_add(id), 0)
    }

    /// The map a map pointer (`lddw rX, map`) names.
    pub fn map_of_pointer(&self, ptr: u64) -> Result<usize, Fault> {
        let (rid, off) = split_addr(ptr);
        match Region::of(rid) {
            Region::MapHandle(m) if off == 0 && m < self.maps.len() => Ok(m),
            _ => Err(Fault::new(format!(
                "{ptr:#x} is not a map pointer (expected the result of `lddw rX, map` or a map-in-map lookup)"
            ))),
        }
    }

    /// Runs `f` on `len` bytes of memory at `addr` after checking region and bounds.
    pub fn access<R>(
        &mut self,
        st: &mut ExecState,
        addr: u64,
        len: usize,
        access: Access,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, Fault> {
        let (rid, _) = split_addr(addr);
        match Region::of(rid) {
            Region::Stack(d) => {
                if d >= st.depth {
                    return Err(Fault::new(format!(
                        "{} at {addr:#x} is in the stack of call frame {d}, which has returned",
                        access.verb()
                    )));
                }
                let i = bounds_lazy(
                    || format!("the stack of call frame {d}"),
                    access,
                    addr,
                    len,
                    0,
                    memory::STACK_SIZE,
                )?;
                Ok(f(&mut st.stacks[d][i..i + len]))
            }
            Region::Packet => {
                let Some(x) = st.xdp.as_mut() else {
                    return Err(Fault::new("no packet in this run"));
                };
                let i = check_bounds(
                    "the packet (data_meta..data_end)",
                    access,
                    addr,
                    len,
                    x.data_meta,
                    x.data_end,
                )
                .map_err(|e| {
                    e.help("check the pointer against data_end before the access, as the verifier requires")
                })?;
                Ok(f(&mut x.buf[i..i + len]))
            }
            Region::Mem => {
                let n = st.mem.len();
                let i = check_bounds("the memory buffer", access, addr, len, 0, n)?;
                Ok(f(&mut st.mem[i..i + len]))
            }
            Region::MapValue(n) => {
                let Some(&(m, slot, cpu)) = self.value_regions.get(n) else {
                    return Err(Fault::new(format!("{addr:#x} is not a valid map value pointer")));
                };
                let map = &mut self.maps[m as usize];
                if access == Access::Write && map.read_only() {
                    return Err(Fault::new(format!(
                        "write to read-only map `{}`",
                        map.def.name
                    )));
                }
                let what = || format!("a value of map `{}`", map.def.name);
                let Some(v) = map.value(slot, cpu) else {
                    return Err(Fault::new(format!("{addr:#x} is not a valid map value pointer")));
                };
                let i = bounds_lazy(what, access, addr, len, 0, v.len())?;
                let Some(v) = map.value_mut(slot, cpu) else {
                    return Err(Fault::new(format!("{addr:#x} is not a valid map value pointer")));
                };
                Ok(f(&mut v[i..i + len]))
            }
            Region::Ringbuf(n) => {
                let Some(rec) = st.ringbuf.get_mut(n).filter(|r| r.open) else {
                    return Err(Fault::new(format!(
                        "{} at {addr:#x} is in a ring buffer record that was already submitted or discarded",
                        access.verb()
                    )));
                };
                let i = check_bounds("a ring buffer record", access, addr, len, 0, rec.data.len())?;
                Ok(f(&mut rec.data[i..i + len]))
            }
            Region::Ctx => Err(match access {
                Access::Write => Fault::new("writes to the XDP context (struct xdp_md) are not allowed"),
                Access::Read => Fault::new(format!(
                    "the XDP context can only be read field by field with 4-byte loads (access of {len} bytes at {addr:#x})"
                )),
            }),
            Region::MapHandle(_) => Err(Fault::new(format!(
                "{} through a map pointer ({addr:#x}); a map is not memory, use the map helpers",
                access.verb()
            ))),
            Region::Func(_) => Err(Fault::new(format!(
                "{} through a function pointer ({addr:#x})",
                access.verb()
            ))),
            Region::Invalid => Err(Fault::new(format!(
                "invalid memory {} of {len} bytes at {addr:#x}: not a pointer into any memory region{}",
                access.verb(),
                if addr < 4096 { " (a NULL pointer dereference?)" } else { "" }
            ))),
        }
    }

    /// Reads `len` bytes.
    pub fn read_bytes(
        &mut self,
        st: &mut ExecState,
        addr: u64,
        len: usize,
    ) -> Result<Vec<u8>, Fault> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.access(st, addr, len, Access::Read, |b| b.to_vec())
    }

    /// Writes `data`.
    pub fn write_bytes(&mut self, st: &mut ExecState, addr: u64, data: &[u8]) -> Result<(), Fault> {
        if data.is_empty() {
            return Ok(());
        }
        self.access(st, addr, data.len(), Access::Write, |b| {
            b.copy_from_slice(data)
        })
    }
}

/// [`check_bounds`] that formats the name of the region only when the access is out of
/// bounds: accesses through the runtime are on every helper call's path, and formatting the
/// name cost more than the access.
fn bounds_lazy(
    what: impl FnOnce() -> String,
    access: Access,
    addr: u64,
    len: usize,
    lo: usize,
    hi: usize,
) -> Result<usize, Fault> {
    let start = split_addr(addr).1 as usize;
    match start.checked_add(len) {
        Some(end) if start >= lo && end <= hi => Ok(start),
        _ => check_bounds(&what(), access, addr, len, lo, hi),
    }
}
