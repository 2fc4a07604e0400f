//! The command line as users run it: the bundled example, the JSON shape other engines will
//! share, map contents in and out, and what happens when the program is ambiguous.

mod support;

use std::path::Path;
use std::process::Command;

fn nicc(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nicc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("nicc runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

const EXAMPLE: [&str; 6] = [
    "run",
    "examples/xdp_firewall.o",
    "--pcap",
    "examples/sample.pcap",
    "--maps-in",
    "examples/blocklist.json",
];

#[test]
fn the_bundled_example_runs() {
    let (ok, stdout, stderr) = nicc(&EXAMPLE);
    assert!(ok, "{stderr}");
    println!("{stdout}");
    // Two echo requests bounced, the blocklisted source dropped, UDP, TCP, ARP and IPv6
    // passed, and the 4-byte runt refused as the kernel's test run refuses it.
    assert!(
        stdout.contains("verdicts: aborted 1, drop 1, pass 4, tx 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("shorter than an Ethernet header"),
        "{stdout}"
    );
}

#[test]
fn json_output_has_the_shared_shape() {
    let mut args = EXAMPLE.to_vec();
    args.push("--json");
    let (ok, stdout, stderr) = nicc(&args);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    let packets = v["packets"].as_array().expect("packets");
    assert_eq!(packets.len(), 8);
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(p["index"], i);
        assert!(["aborted", "drop", "pass", "tx", "redirect"]
            .contains(&p["verdict"].as_str().expect("verdict")));
        assert!(p["out_hex"].is_string());
    }
    // The first packet is an ICMP echo request: it leaves as a reply with the MAC and IP
    // addresses swapped and the ICMP type set to 0.
    assert_eq!(packets[0]["verdict"], "tx");
    let out = frontend::mapdata::from_hex(packets[0]["out_hex"].as_str().unwrap()).unwrap();
    assert_eq!(&out[0..6], &[2, 0, 0, 0, 0, 2]);
    assert_eq!(&out[26..30], &[10, 0, 0, 2]);
    assert_eq!(out[34], 0);
    assert_eq!(v["verdicts"]["tx"], 2);
    assert_eq!(v["verdicts"]["redirect"], 0);
}

#[test]
fn maps_go_out_as_json_and_back_in() {
    let dir = std::env::temp_dir().join(format!("nicc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = dir.join("maps1.json");
    let second = dir.join("maps2.json");
    let mut args = EXAMPLE.to_vec();
    args.extend(["--maps-out", first.to_str().unwrap()]);
    assert!(nicc(&args).0);
    // Feeding the output back in runs the same packets on top of the counts: every counter
    // doubles, and the blocklist hit count goes from 1 to 2.
    let args = [
        "run",
        "examples/xdp_firewall.o",
        "--pcap",
        "examples/sample.pcap",
        "--maps-in",
        first.to_str().unwrap(),
        "--maps-out",
        second.to_str().unwrap(),
    ];
    assert!(nicc(&args).0);
    let read = |p: &Path| -> frontend::mapdata::MapsSnapshot {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let (a, b) = (read(&first), read(&second));
    let count = |s: &frontend::mapdata::MapsSnapshot, map: &str, key: &str| -> u64 {
        let e = s.maps[map]
            .entries
            .iter()
            .find(|e| e.key == key)
            .expect("entry");
        let bytes = frontend::mapdata::from_hex(e.value.as_ref().unwrap()).unwrap();
        u64::from_le_bytes(bytes.try_into().unwrap())
    };
    assert_eq!(count(&a, "proto_count", "01000000"), 2);
    assert_eq!(count(&b, "proto_count", "01000000"), 4);
    assert_eq!(count(&a, "blocklist", "0a000042"), 1);
    assert_eq!(count(&b, "blocklist", "0a000042"), 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_object_with_several_programs_says_which_there_are() {
    let obj = support::corpus().join("elf/linux/xdp_redirect_map_kern.o");
    let (ok, _, stderr) = nicc(&[
        "run",
        obj.to_str().unwrap(),
        "--pcap",
        "examples/sample.pcap",
    ]);
    assert!(!ok);
    assert!(stderr.contains("several XDP programs"), "{stderr}");
    assert!(stderr.contains("xdp_redirect_map_prog"), "{stderr}");
    assert!(stderr.contains("xdp_redirect_dummy_prog"), "{stderr}");
    // Either name works: the function or the section.
    for name in ["xdp_redirect_dummy_prog", "xdp_redirect_dummy"] {
        let (ok, stdout, stderr) = nicc(&[
            "run",
            obj.to_str().unwrap(),
            "--program",
            name,
            "--pcap",
            "examples/sample.pcap",
        ]);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("verdicts: aborted 1, pass 7"), "{stdout}");
    }
}

#[test]
fn a_malformed_object_is_a_clear_error() {
    let obj = support::corpus().join("elf/invalid/invalid-lddw.o");
    let (ok, _, stderr) = nicc(&[
        "run",
        obj.to_str().unwrap(),
        "--pcap",
        "examples/sample.pcap",
    ]);
    assert!(!ok);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("instruction"), "{stderr}");
}

#[test]
fn an_object_for_another_os_is_read_but_not_run() {
    // The `timeout-…` object of `invalid/` is well-formed ELF: 36 programs in `bind/N`
    // sections, a hook type of eBPF for Windows that Linux does not have. The reader accepts
    // it; running it is refused with the list of what it holds.
    let dir = support::corpus().join("elf/invalid");
    let obj = support::files_under(&dir, &|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("timeout-"))
    });
    assert_eq!(obj.len(), 1);
    let (ok, _, stderr) = nicc(&[
        "run",
        obj[0].to_str().unwrap(),
        "--pcap",
        "examples/sample.pcap",
    ]);
    assert!(!ok);
    assert!(stderr.contains("holds no XDP program"), "{stderr}");
    assert!(
        stderr.contains("bind_test_callee0 (section bind/0"),
        "{stderr}"
    );
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::io::Read;
    // The biggest disassembly of the corpus (over 100 KB), more than a pipe buffers.
    let dir = support::corpus().join("elf/invalid");
    let obj = support::files_under(&dir, &|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("timeout-"))
    })
    .remove(0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_nicc"))
        .args(["disasm", obj.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nicc runs");
    // Read one byte, then close the pipe while nicc is still writing.
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    stdout.read_exact(&mut byte).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn every_engine_gives_the_same_answer() {
    let mut reports = Vec::new();
    for engine in ["interp", "ir", "jit"] {
        let mut args = EXAMPLE.to_vec();
        args.extend(["--json", "--engine", engine]);
        let (ok, stdout, stderr) = nicc(&args);
        assert!(ok, "{engine}: {stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
        reports.push((engine, v));
    }
    for (engine, v) in &reports[1..] {
        assert_eq!(v, &reports[0].1, "{engine} differs from the interpreter");
    }
}

/// The README promises two commands that work on a fresh machine. The second must be what
/// `.ci/run` ends with, and the first, run as written, must simulate the bundled firewall with
/// the interpreter's verdicts, output packets and final map contents.
#[test]
fn the_readme_commands_do_what_the_readme_says() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README opens with a sh block");
    let lines: Vec<&str> = block.lines().collect();
    assert_eq!(lines.len(), 2, "two commands: {block}");
    assert_eq!(lines[1], "cargo test --release --workspace");
    let ci = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run"))
        .expect(".ci/run");
    assert_eq!(
        ci.lines().rfind(|l| !l.trim().is_empty()),
        Some(lines[1]),
        "CI runs exactly the README's test command"
    );

    let first = lines[0]
        .strip_prefix("cargo run --release -- ")
        .expect("the first command runs nicc through cargo");
    let args: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(args[..2], ["sim", "examples/xdp_firewall.o"], "{first}");
    let (ok, stdout, stderr) = nicc(&args);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("8 packets: aborted 1, drop 1, pass 4, tx 2"),
        "{stdout}"
    );

    // The same run with its outputs written, beside the interpreter's.
    let dir = std::env::temp_dir().join(format!("nicc-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = |name: &str| dir.join(name).to_string_lossy().to_string();
    let (sim_pcap, sim_maps) = (out("sim.pcap"), out("sim.json"));
    let (interp_pcap, interp_maps) = (out("interp.pcap"), out("interp.json"));
    let mut sim_args = args.clone();
    sim_args.extend(["--out", &sim_pcap, "--maps-out", &sim_maps]);
    let (ok, _, stderr) = nicc(&sim_args);
    assert!(ok, "{stderr}");
    let mut run_args: Vec<&str> = vec!["run", "--engine", "interp"];
    run_args.extend(
        args[1..]
            .iter()
            .filter(|a| !matches!(**a, "--target" | "nfp")),
    );
    run_args.extend(["--out", &interp_pcap, "--maps-out", &interp_maps]);
    let (ok, _, stderr) = nicc(&run_args);
    assert!(ok, "{run_args:?}: {stderr}");
    let read = |p: &str| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(
        read(&sim_pcap),
        read(&interp_pcap),
        "the NFP model's output packets"
    );
    let maps = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&read(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    assert_eq!(
        maps(&sim_maps),
        maps(&interp_maps),
        "the NFP model's final maps"
    );
    std::fs::remove_dir_all(&dir).ok();
}
