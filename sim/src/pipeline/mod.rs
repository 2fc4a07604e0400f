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

use crate::runtime::{Redirect, Runtime, XdpAction, XdpInput};
use hw::pipeline::{Block, REDIRECT_IFINDEX, REDIRECT_MAP};

/// Loads every memory of the simulator from the runtime's maps (the runtime's CPU for per-CPU
/// maps, as the interpreter reads them).
pub fn load_memories(sim: &mut PipelineSim, rt: &Runtime) -> Result<(), String> {
    let cpu = rt.config.cpu;
    for (k, m) in sim.block.memories.iter().enumerate() {
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

/// Writes every memory of the simulator back into the runtime's maps.
pub fn store_memories(sim: &PipelineSim, rt: &mut Runtime) -> Result<(), String> {
    let cpu = rt.config.cpu;
    for (k, m) in sim.block.memories.iter().enumerate() {
        // Presence memories (device and CPU maps) are only read by the pipeline.
        if m.presence {
            continue;
        }
        let state = rt
            .map_mut(m.map_index)
            .ok_or_else(|| format!("the runtime has no map {}", m.map_index))?;
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
