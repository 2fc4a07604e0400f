//! The cycle-accurate NFP microengine model: executes encoded microcode words on the shared
//! runtime.
//!
//! [`NfpMachine::load`] takes a compiled program (`backends::nfp::NfpProgram`), applies its
//! relocations against the runtime (the region word of global data, which the runtime
//! allocates), and decodes every word with `hw::nfp::decode`: the model executes what the
//! words say, never the IR. [`run_xdp_nfp`] runs one packet in one context ([`exec`]) and
//! returns the interpreter's kind of outcome plus a [`Trace`] of where the cycles went;
//! [`timing`] schedules traces on engines and threads.
//!
//! # Results identical to the interpreter
//!
//! Packet reads and writes go through `Runtime::load`/`store` with their bounds checks, and
//! local memory is the run's stack frame. Maps the backend lays out in chip memory (arrays,
//! per-CPU arrays, global data, hashes and per-CPU hashes with keys up to 32 bytes, small
//! IPv4-sized LPM tries: see `hw::nfp::abi::MapLayout`) live in [`chip_memory`]: the
//! microcode's own routines operate on them with memory commands, so their cycles count, and
//! the images are converted from the runtime's maps at load and back with
//! [`NfpMachine::store_maps`]. The other maps (LRU hashes, larger hashes and tries, program
//! arrays, redirect and perf maps) are still served by the
//! lookup engine from the shared runtime (`runtime::helpers::call`), as are all other
//! helpers. Packets execute functionally one after the other in arrival order, as
//! `BPF_PROG_TEST_RUN` runs them, and the scheduler then replays their traces on the engines
//! for timing. So verdicts, packets and map contents are bit-identical to the interpreter's
//! whenever the microcode computes the same values, which is what the differential test
//! checks; what the model does not capture
//! is two in-flight packets racing on one map entry.

pub mod chip_memory;
pub mod exec;
pub mod timing;

pub use chip_memory::ChipMemory;
pub use exec::{Segment, Trace};
pub use timing::{schedule, throughput, NfpConfig, Timing};

use crate::runtime::memory::{make_addr, split_addr, REGION_MEM};
use crate::runtime::{ExecState, Runtime, XdpInput, XdpOutcome};
use backends::nfp::NfpProgram;
use frontend::Diagnostic;
use hw::nfp::{decode, encode, Insn, LatencyTable, MemLevel};

/// A program ready to run: decoded words with relocations applied.
#[derive(Clone, Debug)]
pub struct NfpMachine {
    pub name: String,
    pub insns: Vec<Insn>,
    pub words: Vec<u64>,
    pub bpf_insn: Vec<u32>,
    pub map_levels: Vec<MemLevel>,
    pub table: LatencyTable,
    /// The map images in chip memory, which persist from packet to packet like the maps.
    pub chip: std::cell::RefCell<ChipMemory>,
}

impl NfpMachine {
    /// Loads `program` for runs on `rt`, with the latency table shipped with nicc.
    pub fn load(program: &NfpProgram, rt: &mut Runtime) -> Result<NfpMachine, Diagnostic> {
        let table = LatencyTable::shipped().map_err(Diagnostic::new)?;
        NfpMachine::load_with(program, rt, table)
    }

    pub fn load_with(
        program: &NfpProgram,
        rt: &mut Runtime,
        table: LatencyTable,
    ) -> Result<NfpMachine, Diagnostic> {
        let err = |m: String| Diagnostic::new(m).program(program.name.clone());
        let mut words = program.words.clone();
        for r in &program.relocations {
            let ptr = rt
                .map_value_address(r.map as i64, 0)
                .map_err(|f| err(format!("relocation of word {}: {}", r.word, f.message)))?;
            let (region, _) = split_addr(ptr);
            let w = words
                .get_mut(r.word)
                .ok_or_else(|| err(format!("relocation names word {}, past the end", r.word)))?;
            let mut insn = decode(*w).map_err(|e| err(e.to_string()))?;
            if let Insn::Immed { imm, .. } = &mut insn {
                *imm = (region >> (16 * r.half as u32)) as u16;
            }
            *w = encode(&insn).map_err(|e| err(e.to_string()))?;
        }
        let insns = words
            .iter()
            .map(|w| decode(*w).map_err(|e| err(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let map_levels = program
            .maps
            .iter()
            .map(|m| match m.memory.as_str() {
                "cls" => MemLevel::Cls,
                "imem" => MemLevel::Imem,
                _ => MemLevel::Emem,
            })
            .collect();
        let mut chip = ChipMemory::new(&program.maps);
        chip.seed(rt).map_err(err)?;
        Ok(NfpMachine {
            chip: std::cell::RefCell::new(chip),
            name: program.name.clone(),
            insns,
            words,
            bpf_insn: program.bpf_insn.clone(),
            map_levels,
            table,
        })
    }

    /// Converts the runtime's maps into the images in chip memory again (after the runtime's
    /// maps were changed from outside, such as by loading a snapshot).
    pub fn seed_maps(&self, rt: &Runtime) -> Result<(), Diagnostic> {
        self.chip
            .borrow_mut()
            .seed(rt)
            .map_err(|m| Diagnostic::new(m).program(self.name.clone()))
    }

    /// Writes the map images in chip memory back into the runtime's maps, so that the
    /// runtime holds what the microcode left (before a snapshot or a comparison).
    pub fn store_maps(&self, rt: &mut Runtime) -> Result<(), Diagnostic> {
        self.chip
            .borrow()
            .store(rt)
            .map_err(|m| Diagnostic::new(m).program(self.name.clone()))
    }

    fn code(&self) -> exec::Code<'_> {
        exec::Code {
            insns: &self.insns,
            map_levels: &self.map_levels,
            table: &self.table,
        }
    }

    fn fault(&self, f: crate::runtime::Fault, pc: usize, rt: &Runtime) -> Diagnostic {
        let mut d = Diagnostic::new(format!("{} (microcode address {pc})", f.message))
            .program(self.name.clone());
        if !rt.object_name().is_empty() {
            d = d.object(rt.object_name().to_string());
        }
        if let Some(b) = self.bpf_insn.get(pc).filter(|b| **b != u32::MAX) {
            d = d.insn(*b as usize);
        }
        match f.help {
            Some(h) => d.help(h),
            None => d,
        }
    }

    /// A microcode instruction budget from the runtime's BPF instruction budget: a BPF
    /// instruction expands to a handful of microengine instructions at most.
    fn budget(rt: &Runtime) -> u64 {
        rt.config.insn_budget.saturating_mul(8)
    }
}

/// Runs one packet through `m` in one context.
pub fn run_xdp_nfp(
    m: &NfpMachine,
    rt: &mut Runtime,
    input: &XdpInput,
) -> Result<(XdpOutcome, Trace), Diagnostic> {
    let mut st =
        ExecState::for_xdp(input).map_err(|e| Diagnostic::new(e).program(m.name.clone()))?;
    let mut ctx = exec::Context::new();
    exec::load_meta(&mut ctx, &st);
    ctx.set_xfer(backends::nfp::isel::XFER_LM_BASE, 256);
    ctx.set_xfer(hw::nfp::abi::XFER_CONTEXT, rt.config.cpu);
    let mut trace = Trace::default();
    match exec::run(
        &m.code(),
        &mut ctx,
        rt,
        &mut m.chip.borrow_mut(),
        &mut st,
        NfpMachine::budget(rt),
        &mut trace,
    ) {
        exec::Stop::Exit(r0) => {
            let executed = trace.instructions;
            Ok((st.finish_xdp(r0, executed), trace))
        }
        exec::Stop::Fault(f, pc) => Err(m.fault(f, pc, rt)),
    }
}

/// Runs `m` in conformance mode on `mem` (r1 points to it, r2 is its length).
pub fn run_memory_nfp(
    m: &NfpMachine,
    rt: &mut Runtime,
    mem: &mut [u8],
) -> Result<(u64, Trace), Diagnostic> {
    let mut st = ExecState::new(None, mem.to_vec());
    let mut ctx = exec::Context::new();
    let r1 = if mem.is_empty() {
        0
    } else {
        make_addr(REGION_MEM, 0)
    };
    ctx.set_xfer(0, r1 as u32);
    ctx.set_xfer(1, (r1 >> 32) as u32);
    ctx.set_xfer(2, mem.len() as u32);
    ctx.set_xfer(backends::nfp::isel::XFER_LM_BASE, 256);
    ctx.set_xfer(hw::nfp::abi::XFER_CONTEXT, rt.config.cpu);
    let mut trace = Trace::default();
    match exec::run(
        &m.code(),
        &mut ctx,
        rt,
        &mut m.chip.borrow_mut(),
        &mut st,
        NfpMachine::budget(rt),
        &mut trace,
    ) {
        exec::Stop::Exit(r0) => {
            mem.copy_from_slice(&st.mem);
            Ok((r0, trace))
        }
        exec::Stop::Fault(f, pc) => Err(m.fault(f, pc, rt)),
    }
}
