//! The scheduler: how the traces of packets ([`super::exec::Trace`]) share engines and
//! threads, cycle by cycle.
//!
//! Packets are dispatched round-robin to the engines, and on an engine to its first free
//! context. An engine issues one instruction per cycle from one context; a context that
//! issues a command with a context swap sleeps for the command's latency while the engine
//! runs the next ready context (round-robin from the one that swapped out), and pays the
//! context-swap cost of the latency table each time a context resumes. A new packet reaches a
//! context after the dispatch cost. When no context is ready the engine idles until the
//! earliest completion signal.
//!
//! Not modelled: contention for the memories and the lookup engine between engines (each
//! command takes its table latency whatever else is in flight), and the dependence of a
//! packet's work on other packets in flight (packets execute in arrival order functionally;
//! see the `sim::nfp` module doc).

use super::exec::{Segment, Trace};
use hw::nfp::LatencyTable;
use serde::Serialize;

/// The chip configuration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NfpConfig {
    pub engines: u32,
    pub threads: u32,
    pub mhz: f64,
}

impl NfpConfig {
    /// The NFP-4000 configuration the Linux BPF offload uses: 50 engines with 4 threads at
    /// 800 MHz (../shared/design/targets.md, from Netronome's offload guide).
    pub const NFP4000_OFFLOAD: NfpConfig = NfpConfig {
        engines: 50,
        threads: 4,
        mhz: 800.0,
    };
}

/// What the scheduler found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timing {
    /// Per packet: cycles from the packet reaching its context to its verdict.
    pub latency: Vec<u64>,
    /// Cycles from the first dispatch to the last verdict.
    pub makespan: u64,
    /// Packets per microsecond (million packets per second) over the run.
    pub mpps: f64,
}

#[derive(Clone, Debug)]
struct Running {
    packet: usize,
    seg: usize,
    ready_at: u64,
    started: u64,
    resuming: bool,
}

/// Schedules `traces` (in arrival order) on `config`.
pub fn schedule(traces: &[&Trace], config: &NfpConfig, t: &LatencyTable) -> Timing {
    let engines = config.engines.max(1) as usize;
    let threads = config.threads.max(1) as usize;
    let mut latency = vec![0u64; traces.len()];
    let mut makespan = 0u64;
    for e in 0..engines {
        let queue: Vec<usize> = (e..traces.len()).step_by(engines).collect();
        let mut next_in_queue = 0;
        let mut ctxs: Vec<Option<Running>> = vec![None; threads];
        let mut now = 0u64;
        let mut last = threads - 1;
        // Initial dispatch.
        for c in ctxs.iter_mut() {
            if next_in_queue < queue.len() {
                *c = Some(Running {
                    packet: queue[next_in_queue],
                    seg: 0,
                    ready_at: t.pipeline.dispatch,
                    started: 0,
                    resuming: false,
                });
                next_in_queue += 1;
            }
        }
        loop {
            if ctxs.iter().all(|c| c.is_none()) {
                break;
            }
            // The next ready context, round-robin after the last one that ran.
            let pick = (1..=threads)
                .map(|k| (last + k) % threads)
                .find(|&i| ctxs[i].as_ref().is_some_and(|r| r.ready_at <= now));
            let Some(i) = pick else {
                now = ctxs
                    .iter()
                    .flatten()
                    .map(|r| r.ready_at)
                    .min()
                    .unwrap_or(now);
                continue;
            };
            last = i;
            let Some(r) = ctxs[i].as_mut() else { continue };
            if r.resuming {
                now += t.pipeline.context_swap;
                r.resuming = false;
            }
            let segs = &traces[r.packet].segments;
            // Run segments until a wait or the end.
            while r.seg < segs.len() {
                match segs[r.seg] {
                    Segment::Run(n) => {
                        now += n;
                        r.seg += 1;
                    }
                    Segment::Wait(n) => {
                        r.ready_at = now + n;
                        r.resuming = true;
                        r.seg += 1;
                        break;
                    }
                }
            }
            if r.seg >= segs.len() && !r.resuming {
                latency[r.packet] = now - r.started;
                makespan = makespan.max(now);
                ctxs[i] = if next_in_queue < queue.len() {
                    next_in_queue += 1;
                    Some(Running {
                        packet: queue[next_in_queue - 1],
                        seg: 0,
                        ready_at: now + t.pipeline.dispatch,
                        started: now,
                        resuming: false,
                    })
                } else {
                    None
                };
            } else if r.seg >= segs.len() {
                // The trace ended in a wait: the verdict comes when it completes.
                let done = r.ready_at + t.pipeline.context_swap;
                latency[r.packet] = done - r.started;
                makespan = makespan.max(done);
                ctxs[i] = if next_in_queue < queue.len() {
                    next_in_queue += 1;
                    Some(Running {
                        packet: queue[next_in_queue - 1],
                        seg: 0,
                        ready_at: done + t.pipeline.dispatch,
                        started: done,
                        resuming: false,
                    })
                } else {
                    None
                };
            }
        }
    }
    let mpps = if makespan == 0 {
        0.0
    } else {
        traces.len() as f64 * config.mhz / makespan as f64
    };
    Timing {
        latency,
        makespan,
        mpps,
    }
}

/// Steady-state throughput: the traces repeated in order until every context of the chip
/// has handled at least `rounds` packets, scheduled, and the packet rate measured.
pub fn throughput(traces: &[&Trace], config: &NfpConfig, t: &LatencyTable, rounds: usize) -> f64 {
    if traces.is_empty() {
        return 0.0;
    }
    let want = (config.engines as usize * config.threads as usize * rounds).max(traces.len());
    let repeated: Vec<&Trace> = traces.iter().cycle().take(want).copied().collect();
    schedule(&repeated, config, t).mpps
}
