//! The cycle-accurate executor of `hw::pipeline` blocks, the model the emitted Verilog is checked against.
//!
//! [`exec`] is the clock-by-clock executor; [`vcd`] writes its waveforms. This module runs XDP packets through it the way
//! the other engines run them: memories are seeded from the shared runtime's maps
//! (`sim::runtime`) and written back to them afterwards, so map contents are compared in the
//! runtime's snapshot format; each packet's head goes through the pipeline as its window and
//! the rest of it waits beside the pipeline, as the shell's FIFO keeps it.

pub mod exec;
pub mod vcd;

pub use exec::{drive, PacketIn, PacketOut, PipelineSim, RunResult, Step, Val};

use crate::runtime::maps::{Found, MapState, BPF_NOEXIST};
use crate::runtime::{Redirect, Runtime, XdpAction, XdpInput};
use frontend::mapdata::{from_hex, to_hex};
use hw::pipeline::hash_table::{self, HashLayout};
use hw::pipeline::{Block, MemoryKind, REDIRECT_IFINDEX, REDIRECT_MAP};
use std::collections::BTreeMap;

/// Loads every memory of the simulator from the runtime's maps (the runtime's CPU for per-CPU
/// maps, as the interpreter reads them), its clock with the clock's step, and its random
/// state.
pub fn load_memories(sim: &mut PipelineSim, rt: &Runtime) -> Result<(), String> {
    let cpu = rt.config.cpu;
    for (k, m) in sim.block.memories.iter().enumerate() {
        match m.kind {
            MemoryKind::Clock => {
                let mut row = rt.clock().to_le_bytes().to_vec();
                row.extend_from_slice(&rt.config.ktime_step_ns.to_le_bytes());
                sim.memories[k][0] = row;
                continue;
            }
            MemoryKind::Random => {
                sim.memories[k][0] = rt.random_state().to_le_bytes().to_vec();
                continue;
            }
            MemoryKind::Array | MemoryKind::Hash(_) => {}
        }
        let state = rt
            .maps()
            .get(m.map_index)
            .filter(|s| s.def.name == m.name)
            .ok_or_else(|| {
                format!(
                    "the pipeline's memory `{}` names map {}, which the runtime does not hold under that name",
                    m.name, m.map_index
                )
            })?;
        if let MemoryKind::Hash(layout) = m.kind {
            load_hash(&mut sim.memories[k], &m.name, &layout, state, cpu as usize)?;
            continue;
        }
        if m.presence {
            // Device and CPU maps: the value when the entry exists, then a presence byte.
            // `get` marks entries as used (LRU maps), so it reads a copy.
            let mut state = state.clone();
            for row in 0..m.rows {
                let r = &mut sim.memories[k][row as usize];
                r.fill(0);
                if let Some(v) = state
                    .get(&row.to_le_bytes())
                    .and_then(|v| v.into_iter().next())
                {
                    let n = v.len().min(r.len() - 1);
                    r[..n].copy_from_slice(&v[..n]);
                    if let Some(last) = r.last_mut() {
                        *last = 1;
                    }
                }
            }
            continue;
        }
        for row in 0..m.rows {
            if let Some(v) = state.value(row, cpu) {
                sim.memories[k][row as usize] = v.to_vec();
            }
        }
    }
    Ok(())
}

/// A map entry's key and value bytes.
type EntryBytes = (Vec<u8>, Vec<u8>);

/// The entries of a map as `(key, value)` with the value `cpu` sees, from its snapshot form.
fn map_entries(state: &MapState, cpu: usize) -> Result<Vec<EntryBytes>, String> {
    let contents = state.contents();
    contents
        .entries
        .iter()
        .map(|e| {
            let key = from_hex(&e.key)?;
            let value = match (&e.value, &e.per_cpu) {
                (Some(v), _) => from_hex(v)?,
                (None, Some(per_cpu)) => from_hex(per_cpu.get(cpu).map_or("", String::as_str))?,
                (None, None) => Vec::new(),
            };
            Ok((key, value))
        })
        .collect()
}

/// Places every entry of a hash map in its bucket, as the control plane inserts them; an
/// entry whose bucket is full is an error naming the map and bucket (the hardware would refuse
/// the insert, see `hw::pipeline::hash_table`).
fn load_hash(
    rows: &mut [Vec<u8>],
    name: &str,
    layout: &HashLayout,
    state: &MapState,
    cpu: usize,
) -> Result<(), String> {
    for row in rows.iter_mut() {
        row.fill(0);
    }
    for (key, value) in map_entries(state, cpu)? {
        let b = layout.bucket_of(&key) as usize;
        let row = rows
            .get_mut(b)
            .ok_or_else(|| format!("hash map `{name}` has no bucket {b}"))?;
        if !hash_table::place(layout, row, &key, &value) {
            return Err(format!(
                "hash map `{name}`: bucket {b} already holds {} keys, so key {} cannot be inserted into the on-chip memory",
                layout.ways,
                to_hex(&key)
            ));
        }
    }
    Ok(())
}

/// Writes a hash memory back into the runtime's map: values that changed are written in
/// place for `cpu` (through `lookup`, as the program reached them), keys the memory no longer
/// holds are deleted and keys it gained are inserted (neither happens while the data path only
/// looks keys up, which is all the backend compiles).
fn store_hash(
    rows: &[Vec<u8>],
    name: &str,
    layout: &HashLayout,
    state: &mut MapState,
    cpu: u32,
) -> Result<(), String> {
    let before: BTreeMap<Vec<u8>, Vec<u8>> =
        map_entries(state, cpu as usize)?.into_iter().collect();
    let after: BTreeMap<Vec<u8>, Vec<u8>> = rows
        .iter()
        .flat_map(|row| hash_table::entries(layout, row))
        .collect();
    for key in before.keys().filter(|k| !after.contains_key(*k)) {
        state.delete(key);
    }
    for (key, value) in &after {
        match before.get(key) {
            Some(old) if old == value => {}
            Some(_) => {
                let Some(Found::Value(slot)) = state.lookup(key) else {
                    return Err(format!("hash map `{name}` lost key {}", to_hex(key)));
                };
                if let Some(v) = state.value_mut(slot, cpu) {
                    v.copy_from_slice(value);
                }
            }
            None => {
                let rc = state.update(key, value, BPF_NOEXIST, cpu);
                if rc != 0 {
                    return Err(format!(
                        "hash map `{name}` refused key {} from the pipeline ({rc})",
                        to_hex(key)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Writes every memory of the simulator back into the runtime's maps, clock and random state.
pub fn store_memories(sim: &PipelineSim, rt: &mut Runtime) -> Result<(), String> {
    let cpu = rt.config.cpu;
    for (k, m) in sim.block.memories.iter().enumerate() {
        // Presence memories (device and CPU maps) are only read by the pipeline.
        if m.presence {
            continue;
        }
        let word = |row: &[u8]| {
            row.get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        match m.kind {
            MemoryKind::Clock => {
                if let Some(t) = word(&sim.memories[k][0]) {
                    rt.set_clock(t);
                }
                continue;
            }
            MemoryKind::Random => {
                if let Some(r) = word(&sim.memories[k][0]) {
                    rt.set_random_state(r);
                }
                continue;
            }
            MemoryKind::Array | MemoryKind::Hash(_) => {}
        }
        let state = rt
            .map_mut(m.map_index)
            .ok_or_else(|| format!("the runtime has no map {}", m.map_index))?;
        if let MemoryKind::Hash(layout) = m.kind {
            store_hash(&sim.memories[k], &m.name, &layout, state, cpu)?;
            continue;
        }
        for row in 0..m.rows {
            if let Some(v) = state.value_mut(row, cpu) {
                v.copy_from_slice(&sim.memories[k][row as usize]);
            }
        }
    }
    Ok(())
}

/// The window and length a packet enters the pipeline with.
pub fn packet_in(block: &Block, input: &XdpInput, gap: u32) -> PacketIn {
    let mut window = input.packet.clone();
    window.resize(block.window_bytes as usize, 0);
    PacketIn {
        gap,
        window,
        len: input.packet.len().min(u16::MAX as usize) as u16,
        ingress_ifindex: input.ingress_ifindex,
        rx_queue: input.rx_queue_index,
    }
}

/// One packet's result, comparable with the interpreter's `XdpOutcome`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineOutcome {
    pub retval: u64,
    pub action: XdpAction,
    /// The whole packet after the program: the window out of the pipeline, then the bytes
    /// that waited beside it.
    pub packet: Vec<u8>,
    /// The redirect target when the verdict is `XDP_REDIRECT`, as the interpreter records it.
    pub redirect: Option<Redirect>,
    pub entry_cycle: u64,
    pub exit_cycle: u64,
}

/// The redirect a pipeline output stands for, in the runtime's terms.
pub fn redirect_of(block: &Block, out: &PacketOut) -> Option<Redirect> {
    if XdpAction::from_retval(out.retval) != XdpAction::Redirect {
        return None;
    }
    match out.redirect_kind {
        REDIRECT_IFINDEX => Some(Redirect::Ifindex(out.redirect_key as u32)),
        REDIRECT_MAP => {
            let m = block.redirect_map.as_ref()?;
            let n = out.redirect_value.len().saturating_sub(1);
            Some(Redirect::Map {
                map: m.name.clone(),
                map_index: m.map_index,
                key: out.redirect_key as u32,
                flags: m.flags,
                value: Some(out.redirect_value[..n].to_vec()),
            })
        }
        _ => None,
    }
}

/// Runs `inputs` back to back (each offered `gap` cycles after the previous one was
/// accepted) through `block`, with maps from and back into `rt`, and `out_ready` following
/// `ready`.
pub fn run_xdp_pipeline(
    block: &Block,
    rt: &mut Runtime,
    inputs: &[XdpInput],
    gap: u32,
    ready: &[bool],
) -> Result<(Vec<PipelineOutcome>, RunResult), String> {
    run_xdp_pipeline_traced(block, rt, inputs, gap, ready, None)
}

/// [`run_xdp_pipeline`], also recording waveforms into `vcd` when given.
pub fn run_xdp_pipeline_traced(
    block: &Block,
    rt: &mut Runtime,
    inputs: &[XdpInput],
    gap: u32,
    ready: &[bool],
    mut vcd: Option<&mut vcd::VcdWriter>,
) -> Result<(Vec<PipelineOutcome>, RunResult), String> {
    let mut sim = PipelineSim::new(block);
    load_memories(&mut sim, rt)?;
    let packets: Vec<PacketIn> = inputs.iter().map(|i| packet_in(block, i, gap)).collect();
    let run = drive(&mut sim, &packets, ready, &mut |s, offer, out_ready| {
        if let Some(w) = vcd.as_deref_mut() {
            w.record(s, offer.is_some(), out_ready);
        }
    });
    store_memories(&sim, rt)?;
    if run.outputs.len() != inputs.len() {
        return Err(format!(
            "{} packets went in but {} came out in {} cycles",
            inputs.len(),
            run.outputs.len(),
            run.cycles
        ));
    }
    let outcomes = inputs
        .iter()
        .zip(&run.outputs)
        .zip(&run.entries)
        .map(|((input, out), &entry)| PipelineOutcome {
            retval: out.retval,
            action: XdpAction::from_retval(out.retval),
            packet: reassemble(&out.window, &input.packet, out.len as usize),
            redirect: redirect_of(block, out),
            entry_cycle: entry,
            exit_cycle: out.cycle,
        })
        .collect();
    Ok((outcomes, run))
}

/// The packet leaving the pipeline: `len` bytes, the first ones from the window, the rest as
/// they came in.
pub fn reassemble(window: &[u8], original: &[u8], len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len);
    for i in 0..len {
        p.push(match window.get(i) {
            Some(b) => *b,
            None => original.get(i).copied().unwrap_or(0),
        });
    }
    p
}
