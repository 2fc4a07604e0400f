//! The command line of the Verilog target: `nicc compile --target verilog` writes a core, a
//! testbench that Verilator builds as written, and a README; `nicc sim --target verilog`
//! reports one packet per clock with the pipeline's latency and writes waveforms; `nicc synth`
//! reports Yosys figures.

mod support;

use std::process::Command;

fn nicc(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_nicc"))
        .args(args)
        .output()
        .expect("nicc runs");
    assert!(
        out.status.success(),
        "nicc {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn xdp1() -> String {
    support::corpus()
        .join("elf/linux/xdp1_kern.o")
        .to_string_lossy()
        .to_string()
}

#[test]
fn compile_writes_a_core_and_a_testbench_verilator_builds() {
    if let Err(why) = hw::tools::verilator::available() {
        panic!("this test needs Verilator: {why}");
    }
    let dir = hw::tools::scratch_dir("cli-compile").unwrap();
    let report = nicc(&[
        "compile",
        &xdp1(),
        "--target",
        "verilog",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert!(report.contains("stages"), "{report}");
    let core = std::fs::read_to_string(dir.join("xdp_prog1_pipeline.v")).unwrap();
    let tb = std::fs::read_to_string(dir.join("tb_xdp_prog1_pipeline.cpp")).unwrap();
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("| 0 | `rxcnt` | 256 | 8 |"), "{readme}");
    let design = hw::tools::verilator::build("xdp_prog1_pipeline", &core, &tb)
        .expect("Verilator builds the emitted files");
    // One IPv4 UDP packet: xdp1 drops it and counts it under protocol 17.
    let mut pkt = vec![0u8; 64];
    pkt[12] = 8;
    pkt[14] = 0x45;
    pkt[23] = 17;
    let window_bytes = core
        .lines()
        .find_map(|l| {
            l.strip_prefix("  input  wire [")
                .and_then(|r| r.strip_suffix(":0] in_window,"))
        })
        .and_then(|hi| hi.parse::<usize>().ok())
        .map(|hi| (hi + 1) / 8)
        .expect("in_window port");
    pkt.truncate(window_bytes.min(64));
    let stim = hw::tools::stimulus::Stimulus {
        packets: vec![hw::tools::stimulus::StimulusPacket {
            gap: 0,
            len: 64,
            ingress_ifindex: 1,
            rx_queue: 0,
            window: pkt,
        }],
        ..Default::default()
    };
    let r = design.run(&stim).unwrap();
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(r.outputs[0].retval, 1, "XDP_DROP");
    let row17 = r
        .memory_rows
        .iter()
        .find(|(k, row, _)| *k == 0 && *row == 17)
        .expect("row 17");
    assert_eq!(
        row17.2,
        1u64.to_le_bytes().to_vec(),
        "one packet counted under protocol 17"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sim_reports_one_packet_per_clock_and_writes_waveforms() {
    let dir = hw::tools::scratch_dir("cli-sim").unwrap();
    let vcd = dir.join("run.vcd");
    let pcap = support::corpus().join("pcap/dns_udp.pcap");
    let json = nicc(&[
        "sim",
        &xdp1(),
        "--target",
        "verilog",
        "--pcap",
        pcap.to_str().unwrap(),
        "--json",
        "--vcd",
        vcd.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let stages = v["stages"].as_u64().unwrap();
    let packets = v["packets"].as_array().unwrap();
    assert!(!packets.is_empty());
    for (k, p) in packets.iter().enumerate() {
        assert_eq!(
            p["entry_cycle"].as_u64(),
            Some(k as u64),
            "one packet per clock"
        );
        assert_eq!(p["latency_cycles"].as_u64(), Some(stages));
    }
    let wave = std::fs::read_to_string(&vcd).unwrap();
    assert!(
        wave.contains("$enddefinitions $end") && wave.contains("$var wire 1 ! clk $end"),
        "{}",
        &wave[..wave.len().min(400)]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn synth_prints_yosys_figures() {
    if let Err(why) = hw::tools::yosys::available() {
        panic!("this test needs Yosys: {why}");
    }
    let out = nicc(&["synth", &xdp1()]);
    assert!(out.contains("LUTs") && out.contains("flip-flops"), "{out}");
    println!("{out}");
}

#[test]
fn compile_writes_a_shell_that_icarus_runs_as_written() {
    if let Err(why) = hw::tools::icarus::available() {
        panic!("this test needs Icarus Verilog: {why}");
    }
    let dir = hw::tools::scratch_dir("cli-shell").unwrap();
    nicc(&[
        "compile",
        &xdp1(),
        "--target",
        "verilog",
        "-o",
        dir.to_str().unwrap(),
    ]);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f} not written: {e}"))
    };
    let (core, shell, tb) = (
        read("xdp_prog1_pipeline.v"),
        read("xdp_prog1_shell.v"),
        read("nicc_shell_tb.v"),
    );
    let readme = read("README.md");
    assert!(
        readme.contains("| 0x008 | MEM | RW |") && readme.contains("MEM0_ROWS"),
        "the README documents the register map: {readme}"
    );
    let sim = hw::tools::icarus::build(
        "nicc_shell_tb_clock",
        &[
            ("core.v", core.as_str()),
            ("shell.v", shell.as_str()),
            ("tb.v", tb.as_str()),
        ],
        &[
            ("NICC_SHELL", "xdp_prog1_shell".to_string()),
            ("NICC_DATA_WIDTH", "256".to_string()),
        ],
    )
    .expect("Icarus compiles the written files");
    // One 64-byte IPv4 UDP packet in two 32-byte beats: xdp1 drops it and counts it under
    // protocol 17, which the control plane then reads over AXI4-Lite.
    let mut pkt = vec![0u8; 64];
    pkt[12] = 8;
    pkt[14] = 0x45;
    pkt[23] = 17;
    let mut s = hw::tools::shell_stimulus::ShellStimulus::new(256);
    s.packet(&pkt, 0x40, 0);
    use hw::tools::shell_stimulus::ShellCommand::{Poll, Read, Write};
    s.commands.extend([
        Poll {
            addr: 0x20,
            value: 1,
        },
        Write { addr: 0x8, data: 0 },
        Write {
            addr: 0xc,
            data: 17,
        },
        Write {
            addr: 0x10,
            data: 1,
        },
        Read { addr: 0x800 },
        Read { addr: 0x1c },
    ]);
    let text = sim.run(&s.to_text()).expect("vvp runs");
    let r = hw::tools::shell_stimulus::ShellResult::parse(&text).expect("results");
    assert_eq!(r.accepted.len(), 2, "two beats in: {text}");
    assert!(
        r.beats.is_empty(),
        "a dropped packet leaves nothing: {text}"
    );
    assert_eq!(r.reads, vec![(0x800, 1), (0x1c, 1)], "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
