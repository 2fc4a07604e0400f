//! The OpenNIC-style shell around the pipeline core, run for real: the emitted core and shell
//! with the shell testbench (`backends/src/verilog/shell_tb.v`) under Verilator, and the same
//! testbench under Icarus Verilog as a second opinion.
//!
//! The testbench seeds every map row over AXI4-Lite, sends the corpus packets as AXI4-Stream
//! beats (several beats per packet on narrow buses, idle gaps between packets) while
//! `m_axis_tready` drops pseudo-randomly, rewrites a map row over AXI4-Lite between two bursts,
//! and finally reads every map row back. What leaves the shell must be exactly what the golden
//! interpreter says: the passed, transmitted and redirected packets in order with their bytes
//! and `tuser_dst`, no dropped packet, and every map row equal to the interpreter's maps.

mod support;
#[path = "support/verilog_programs.rs"]
mod verilog_programs;

use backends::verilog::shell::{self, shell_verilog};
use backends::verilog::{emit, CompiledPipeline};
use hw::tools::shell_stimulus::{ShellCommand, ShellResult, ShellStimulus};
use sim::pipeline::{load_memories, store_memories, PipelineSim};
use sim::runtime::{ExecState, Redirect, Runtime, XdpAction, XdpInput};
use verilog_programs::{compile, corpus_object, runtime_for};

/// The ports packets arrive from, in OpenNIC's `tuser_src` format: MAC ports 0 and 1 (bits 6
/// and 7) and PCIe function 0 (bit 0). The program sees the value as `ingress_ifindex`.
const SOURCES: [u16; 3] = [0x0040, 0x0080, 0x0001];

/// The corpus packets an XDP frame can hold, each from one of [`SOURCES`].
fn packets(step: usize, limit: usize) -> Vec<(XdpInput, u16)> {
    support::engine_diff::corpus_packets()
        .iter()
        .map(|p| XdpInput::new(p.clone()))
        .filter(|i| ExecState::for_xdp(i).is_ok() && !i.packet.is_empty())
        .step_by(step)
        .take(limit)
        .enumerate()
        .map(|(k, mut i)| {
            let src = SOURCES[k % SOURCES.len()];
            i.ingress_ifindex = src as u32;
            (i, src)
        })
        .collect()
}

/// A packet the shell should send: its bytes, `tuser_src` and `tuser_dst`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    src: u16,
    dst: u16,
    bytes: Vec<u8>,
}

/// What the interpreter says the shell sends for one packet (`None`: dropped).
fn expected(outcome: &sim::runtime::XdpOutcome, src: u16) -> Option<Sent> {
    let dst = match outcome.action {
        XdpAction::Pass => shell::DEFAULT_PASS_DST as u16,
        XdpAction::Tx => src,
        XdpAction::Redirect => match &outcome.redirect {
            Some(Redirect::Ifindex(i)) => *i as u16,
            Some(Redirect::Map { value: Some(v), .. }) => u16::from_le_bytes([
                v.first().copied().unwrap_or(0),
                v.get(1).copied().unwrap_or(0),
            ]),
            _ => return None,
        },
        _ => return None,
    };
    if outcome.packet.is_empty() {
        return None;
    }
    Some(Sent {
        src,
        dst,
        bytes: outcome.packet.clone(),
    })
}

/// The pipeline memories as the runtime holds them.
fn memories_of(block: &hw::pipeline::Block, rt: &Runtime) -> Vec<Vec<Vec<u8>>> {
    let mut sim = PipelineSim::new(block);
    load_memories(&mut sim, rt).expect("memories");
    sim.memories.clone()
}

/// Writes row `row` of memory `mem` over AXI4-Lite.
fn write_row(s: &mut ShellStimulus, mem: u32, row: u32, bytes: &[u8]) {
    s.commands.push(ShellCommand::Write {
        addr: shell::REG_MEM,
        data: mem,
    });
    s.commands.push(ShellCommand::Write {
        addr: shell::REG_ROW,
        data: row,
    });
    for (w, chunk) in bytes.chunks(4).enumerate() {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        s.commands.push(ShellCommand::Write {
            addr: shell::REG_DATA + 4 * w as u32,
            data: u32::from_le_bytes(word),
        });
    }
    s.commands.push(ShellCommand::Write {
        addr: shell::REG_COMMAND,
        data: shell::COMMAND_WRITE_ROW,
    });
}

/// The row the control plane rewrites between the bursts: the last row of the first memory the
/// pipeline writes back into the runtime (device and CPU maps are read-only to the pipeline).
fn rewritten_row(block: &hw::pipeline::Block) -> Option<(u32, u32, Vec<u8>)> {
    let (k, m) = block
        .memories
        .iter()
        .enumerate()
        .find(|(_, m)| !m.presence && m.rows > 0)?;
    let bytes = (0..m.row_bytes)
        .map(|i| 0xa0u8.wrapping_add(i as u8))
        .collect();
    Some((k as u32, m.rows - 1, bytes))
}

struct Plan {
    stimulus: ShellStimulus,
    want: Vec<Sent>,
    /// Every memory row after the run, as the interpreter's maps hold them.
    want_memories: Vec<Vec<Vec<u8>>>,
    dropped: usize,
}

/// The stimulus for `packets` through `block`'s shell on a `data_width`-bit bus, and what the
/// interpreter says must come out.
fn plan(
    obj: &frontend::Object,
    index: usize,
    block: &hw::pipeline::Block,
    packets: &[(XdpInput, u16)],
    data_width: u32,
    ready_threshold: u32,
) -> Plan {
    let mut rt = runtime_for(obj);
    let mut s = ShellStimulus::new(data_width);
    s.commands.push(ShellCommand::Ready {
        seed: 0x1234_5678,
        threshold: ready_threshold,
    });
    // Seed every non-zero row over AXI4-Lite.
    for (k, rows) in memories_of(block, &rt).iter().enumerate() {
        for (r, bytes) in rows.iter().enumerate() {
            if bytes.iter().any(|&b| b != 0) {
                write_row(&mut s, k as u32, r as u32, bytes);
            }
        }
    }
    let half = packets.len() / 2;
    let mut want = Vec::new();
    let mut dropped = 0;
    for (burst, range) in [(0, 0..half), (1, half..packets.len())] {
        if burst == 1 {
            // Between the bursts the control plane rewrites a row, in the shell and (the same
            // bytes) in the interpreter's maps.
            s.commands.push(ShellCommand::Poll {
                addr: shell::REG_DONE_PACKETS,
                value: half as u32,
            });
            if let Some((k, row, bytes)) = rewritten_row(block) {
                write_row(&mut s, k, row, &bytes);
                let mut sim = PipelineSim::new(block);
                load_memories(&mut sim, &rt).expect("memories");
                sim.memories[k as usize][row as usize] = bytes;
                store_memories(&sim, &mut rt).expect("store");
            }
        }
        for k in range {
            let (input, src) = &packets[k];
            // Mostly back to back, with an idle gap now and then.
            let gap = if k % 9 == 4 { (k % 4) as u32 + 1 } else { 0 };
            s.packet(&input.packet, *src, gap);
            let outcome = sim::interp::run_xdp(obj, index, &mut rt, input).expect("interpreter");
            match expected(&outcome, *src) {
                Some(sent) => want.push(sent),
                None => dropped += 1,
            }
        }
    }
    s.commands.push(ShellCommand::Poll {
        addr: shell::REG_DONE_PACKETS,
        value: packets.len() as u32,
    });
    // Read every row back.
    let want_memories = memories_of(block, &rt);
    for (k, rows) in want_memories.iter().enumerate() {
        for (r, bytes) in rows.iter().enumerate() {
            s.commands.push(ShellCommand::Write {
                addr: shell::REG_MEM,
                data: k as u32,
            });
            s.commands.push(ShellCommand::Write {
                addr: shell::REG_ROW,
                data: r as u32,
            });
            s.commands.push(ShellCommand::Write {
                addr: shell::REG_COMMAND,
                data: shell::COMMAND_READ_ROW,
            });
            for w in 0..bytes.len().div_ceil(4) {
                s.commands.push(ShellCommand::Read {
                    addr: shell::REG_DATA + 4 * w as u32,
                });
            }
        }
    }
    for addr in [
        shell::REG_ID,
        shell::REG_RX_PACKETS,
        shell::REG_TX_PACKETS,
        shell::REG_DROP_PACKETS,
    ] {
        s.commands.push(ShellCommand::Read { addr });
    }
    Plan {
        stimulus: s,
        want,
        want_memories,
        dropped,
    }
}

/// Compares a testbench's results with the plan; a summary line when they agree.
fn judge(plan: &Plan, n: usize, got: &ShellResult) -> Result<String, String> {
    let sent = got.packets()?;
    let got_sent: Vec<Sent> = sent
        .iter()
        .map(|p| Sent {
            src: p.src,
            dst: p.dst,
            bytes: p.bytes.clone(),
        })
        .collect();
    if got_sent.len() != plan.want.len() {
        return Err(format!(
            "{} packets left the shell, the interpreter sends {}",
            got_sent.len(),
            plan.want.len()
        ));
    }
    for (k, (g, w)) in got_sent.iter().zip(&plan.want).enumerate() {
        if g != w {
            let at = g.bytes.iter().zip(&w.bytes).position(|(a, b)| a != b);
            return Err(format!(
                "sent packet {k}: shell (src {:#x}, dst {:#x}, {} bytes), interpreter (src {:#x}, dst {:#x}, {} bytes), first differing byte {at:?}",
                g.src, g.dst, g.bytes.len(), w.src, w.dst, w.bytes.len()
            ));
        }
    }
    // The reads, in the order the plan issued them: the rows, then ID and the counters.
    let mut reads = got.reads.iter();
    for (k, rows) in plan.want_memories.iter().enumerate() {
        for (r, bytes) in rows.iter().enumerate() {
            let mut row = Vec::new();
            for _ in 0..bytes.len().div_ceil(4) {
                let (_, v) = reads.next().ok_or("fewer AXI4-Lite reads than issued")?;
                row.extend_from_slice(&v.to_le_bytes());
            }
            row.truncate(bytes.len());
            if &row != bytes {
                return Err(format!(
                    "memory {k} row {r} over AXI4-Lite is {row:02x?}, the interpreter's map holds {bytes:02x?}"
                ));
            }
        }
    }
    let rest: Vec<u32> = reads.map(|&(_, v)| v).collect();
    let want_rest = vec![
        shell::SHELL_ID,
        n as u32,
        plan.want.len() as u32,
        plan.dropped as u32,
    ];
    if rest != want_rest {
        return Err(format!(
            "ID, RX, TX, DROP registers read {rest:x?}, expected {want_rest:x?}"
        ));
    }
    let beats_in = got.accepted.len();
    Ok(format!(
        "{n} packets ({beats_in} beats) in, {} sent, {} dropped, {} map rows read back, {} cycles",
        plan.want.len(),
        plan.dropped,
        plan.want_memories.iter().map(Vec::len).sum::<usize>(),
        got.cycles
    ))
}

/// Files of a simulation (name, text) and macro definitions (name, value).
type Files = Vec<(String, String)>;
type Defines = Vec<(&'static str, String)>;

/// The files of a shell simulation and the macros the testbench needs.
fn design(c: &CompiledPipeline, data_width: u32) -> (Files, Defines) {
    let files = vec![
        ("core.v".to_string(), c.verilog.clone()),
        (
            "shell.v".to_string(),
            shell_verilog(&c.block).expect("shell"),
        ),
        ("tb.v".to_string(), shell::SHELL_TESTBENCH.to_string()),
    ];
    let defines = vec![
        ("NICC_SHELL", shell::shell_name(&c.block)),
        ("NICC_DATA_WIDTH", data_width.to_string()),
    ];
    (files, defines)
}

fn run_verilator(c: &CompiledPipeline, data_width: u32, stimulus: &str) -> Result<String, String> {
    let (files, defines) = design(c, data_width);
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let tb = hw::tools::verilator::build_verilog_testbench(
        shell::SHELL_TESTBENCH_TOP,
        &files,
        &defines,
    )?;
    tb.run(stimulus)
}

fn run_icarus(c: &CompiledPipeline, data_width: u32, stimulus: &str) -> Result<String, String> {
    let (files, defines) = design(c, data_width);
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let sim = hw::tools::icarus::build(shell::SHELL_TESTBENCH_CLOCKED_TOP, &files, &defines)?;
    sim.run(stimulus)
}

/// Programs the shell is run with: counters in maps, packet rewrites with XDP_TX, redirects
/// through a device map and by interface index, TTL rewriting.
const PROGRAMS: [&str; 5] = [
    "linux/xdp1_kern.o",
    "linux/xdp2_kern.o",
    "linux/xdp_redirect_map_kern.o",
    "linux/xdp_redirect_kern.o",
    "prototype-kernel/xdp_ttl_kern.o",
];

#[test]
fn shell_under_verilator_equals_the_interpreter() {
    if let Err(why) = hw::tools::verilator::available() {
        panic!("this test needs Verilator: {why}");
    }
    let mut failures = Vec::new();
    let mut passed = 0;
    for (p, rel) in PROGRAMS.iter().enumerate() {
        let obj = corpus_object(rel);
        let c = match compile(&obj, 0) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{rel}: not accepted by the pipeline backend: {e}"));
                continue;
            }
        };
        // The full 512-bit bus, and for two programs a 64-bit bus on which every packet and
        // window takes several beats; output ready about 60% or 85% of the cycles.
        let widths: &[(u32, u32)] = if p < 2 {
            &[(512, 160), (64, 220)]
        } else {
            &[(512, 160)]
        };
        for &(data_width, threshold) in widths {
            let pk = packets(if data_width == 512 { 3 } else { 7 }, 400);
            let plan = plan(&obj, 0, &c.block, &pk, data_width, threshold);
            let result = run_verilator(&c, data_width, &plan.stimulus.to_text())
                .and_then(|t| ShellResult::parse(&t))
                .and_then(|r| judge(&plan, pk.len(), &r));
            match result {
                Ok(summary) => {
                    passed += 1;
                    println!(
                        "{rel} ({} stages) on a {data_width}-bit bus: {summary}",
                        c.block.stages
                    );
                }
                Err(e) => failures.push(format!("{rel} on a {data_width}-bit bus: {e}")),
            }
        }
    }
    println!(
        "{passed} shell runs equal to the interpreter, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn icarus_gives_verilator_s_results_cycle_for_cycle() {
    if let Err(why) = hw::tools::icarus::available() {
        panic!("this test needs Icarus Verilog: {why}");
    }
    if let Err(why) = hw::tools::verilator::available() {
        panic!("this test needs Verilator: {why}");
    }
    let mut compared = 0;
    for rel in [
        "linux/xdp1_kern.o",
        "linux/xdp2_kern.o",
        "prototype-kernel/xdp_ttl_kern.o",
    ] {
        let obj = corpus_object(rel);
        let c = compile(&obj, 0).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let data_width = 128;
        let pk = packets(11, 60);
        let plan = plan(&obj, 0, &c.block, &pk, data_width, 180);
        let text = plan.stimulus.to_text();
        let verilator =
            run_verilator(&c, data_width, &text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let icarus = run_icarus(&c, data_width, &text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let v = ShellResult::parse(&verilator).unwrap_or_else(|e| panic!("{rel}: Verilator: {e}"));
        let i = ShellResult::parse(&icarus).unwrap_or_else(|e| panic!("{rel}: Icarus: {e}"));
        let summary = judge(&plan, pk.len(), &v).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(
            v.accepted, i.accepted,
            "{rel}: input beats taken at other cycles"
        );
        assert_eq!(v.beats, i.beats, "{rel}: output beats differ");
        assert_eq!(v.reads, i.reads, "{rel}: AXI4-Lite reads differ");
        assert_eq!(v.cycles, i.cycles, "{rel}: cycle counts differ");
        assert_eq!(verilator, icarus, "{rel}: result files differ");
        compared += 1;
        println!("{rel}: Icarus and Verilator identical: {summary}");
    }
    assert_eq!(compared, 3);
}

#[test]
fn shell_of_a_small_program_is_stable() {
    let obj = corpus_object("prototype-kernel/xdp_ttl_kern.o");
    let c = compile(&obj, 0).expect("xdp_ttl compiles");
    insta::assert_snapshot!("xdp_ttl_shell_v", shell_verilog(&c.block).expect("shell"));
    let _ = emit::core_name(&c.block);
}
