//! `nicc load` on real interfaces: two network namespaces joined by a veth pair, the bundled
//! firewall attached to one end by the `nicc` binary, packets sent from the other end through
//! packet sockets. What comes out (passed up the receiving side, bounced back to the sender,
//! or nowhere) and the map counters `nicc load maps` reads back must be exactly what the
//! interpreter predicts for the same packets and the same seeded maps.
//!
//! The namespaces have IPv6 turned off and no addresses, so the kernel sends nothing of its
//! own on the link (no router solicitations, no ARP): every frame on it is one of ours.

mod support;

use frontend::mapdata::MapsSnapshot;
use hw::linux::net_sys::{enter_netns, ifindex, PacketSocket};
use sim::runtime::{Runtime, RuntimeConfig, XdpAction, XdpInput};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const NICC: &str = env!("CARGO_BIN_EXE_nicc");

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Runs a command and returns its standard output, failing the test with everything it said
/// when it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args))
}

/// `nicc ARGS` inside namespace `ns`.
fn nicc_in(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns, NICC])
        .args(args)
        .output()
        .expect("cannot run ip netns exec")
}

fn nicc_ok(ns: &str, args: &[&str]) -> String {
    let out = nicc_in(ns, args);
    assert!(
        out.status.success(),
        "nicc {args:?} in {ns} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces and a veth pair between them (`a` in the first, `b` in the second); dropping
/// it deletes the namespaces, which deletes the interfaces and detaches their programs.
struct VethLab {
    ns_a: String,
    ns_b: String,
}

const DEV_A: &str = "nicc0";
const DEV_B: &str = "nicc1";

impl VethLab {
    fn new(tag: &str) -> VethLab {
        let id = std::process::id();
        let lab = VethLab {
            ns_a: format!("nicc-{tag}-{id}-a"),
            ns_b: format!("nicc-{tag}-{id}-b"),
        };
        for ns in [&lab.ns_a, &lab.ns_b] {
            ip(&["netns", "add", ns]);
            // Interfaces created from now on in the namespace start with IPv6 off, so the
            // kernel sends no router solicitations or MLD reports on them.
            for key in ["all", "default"] {
                run(Command::new("ip").args([
                    "netns",
                    "exec",
                    ns,
                    "sh",
                    "-c",
                    &format!("echo 1 > /proc/sys/net/ipv6/conf/{key}/disable_ipv6"),
                ]));
            }
        }
        ip(&[
            "link", "add", DEV_A, "netns", &lab.ns_a, "type", "veth", "peer", "name", DEV_B,
            "netns", &lab.ns_b,
        ]);
        for (ns, dev) in [(&lab.ns_a, DEV_A), (&lab.ns_b, DEV_B)] {
            ip(&[
                "-n",
                ns,
                "link",
                "set",
                dev,
                "arp",
                "off",
                "multicast",
                "off",
            ]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    /// A packet socket on `dev` in `ns`, opened from a thread that entered the namespace (the
    /// socket stays in it for its whole life).
    fn socket(ns: &str, dev: &str) -> PacketSocket {
        let path = Path::new("/run/netns").join(ns);
        let dev = dev.to_string();
        std::thread::spawn(move || {
            enter_netns(&path).expect("cannot enter the namespace");
            let index = ifindex(&dev).expect("the veth end exists");
            PacketSocket::bind(index, Duration::from_millis(700)).expect("packet socket")
        })
        .join()
        .expect("socket thread")
    }
}

impl Drop for VethLab {
    fn drop(&mut self) {
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The packets: the probe packets (ICMP echo, blocked and allowed sources, other protocols)
/// and a slice of the capture corpus, each a frame a veth can carry (14 to 1514 bytes).
fn packets() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = support::packets::generated();
    let capture = sim::pcap::read_file(&example("sample.pcap")).expect("sample.pcap");
    out.extend(capture.ethernet().map(|p| p.data.clone()));
    for path in support::files_under(&support::corpus().join("pcap"), &|_| true)
        .into_iter()
        .step_by(8)
    {
        if let Ok(capture) = sim::pcap::read_file(&path) {
            out.extend(capture.ethernet().take(4).map(|p| p.data.clone()));
        }
    }
    out.retain(|p| (14..=1514).contains(&p.len()));
    out
}

/// What the interpreter predicts: the frames passed, the frames bounced, the final maps.
struct Prediction {
    passed: Vec<Vec<u8>>,
    bounced: Vec<Vec<u8>>,
    dropped: usize,
    maps: MapsSnapshot,
}

fn predict(obj: &frontend::Object, seed: &MapsSnapshot, packets: &[Vec<u8>]) -> Prediction {
    let index = obj
        .programs
        .iter()
        .position(|p| p.name == "xdp_firewall")
        .expect("the firewall program");
    let mut rt = Runtime::new(obj, RuntimeConfig::default()).expect("runtime");
    rt.load_snapshot(seed).expect("seed");
    let mut p = Prediction {
        passed: Vec::new(),
        bounced: Vec::new(),
        dropped: 0,
        maps: MapsSnapshot::default(),
    };
    for packet in packets {
        let input = XdpInput {
            packet: packet.clone(),
            ..XdpInput::default()
        };
        let outcome = sim::interp::run_xdp(obj, index, &mut rt, &input).expect("interpreter");
        match outcome.action {
            XdpAction::Pass => p.passed.push(outcome.packet),
            XdpAction::Tx => p.bounced.push(outcome.packet),
            XdpAction::Drop => p.dropped += 1,
            other => panic!("the firewall returned {other:?}"),
        }
    }
    p.maps = rt.snapshot();
    p
}

/// Sends every packet out of `a` and collects what arrives on `b` (passed by the program) and
/// back on `a` (bounced), until the link has been quiet for the socket timeout.
fn send_and_collect(lab: &VethLab, packets: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let tx = VethLab::socket(&lab.ns_a, DEV_A);
    let back = VethLab::socket(&lab.ns_a, DEV_A);
    let through = VethLab::socket(&lab.ns_b, DEV_B);
    let drain = |s: PacketSocket| {
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Some(frame) = s.recv().expect("receive") {
                got.push(frame);
            }
            got
        })
    };
    let back = drain(back);
    let through = drain(through);
    for (i, p) in packets.iter().enumerate() {
        tx.send(p)
            .unwrap_or_else(|e| panic!("sending packet {i} ({} bytes): {e}", p.len()));
        // A short pause every few frames keeps the receive queues from overflowing.
        if i % 16 == 15 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    (
        through.join().expect("receiver"),
        back.join().expect("receiver"),
    )
}

fn maps_of(ns: &str, args: &[&str]) -> MapsSnapshot {
    let text = nicc_ok(ns, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("nicc load maps printed {text}: {e}"))
}

/// Attaches the firewall in `mode`, runs the packets, and compares frames and maps with the
/// interpreter; then detaches it.
fn check_mode(mode: &str) {
    hw::linux::kernel_available().expect("this test needs bpf() (run as root)");
    let lab = VethLab::new(mode);
    let object = example("xdp_firewall.o");
    let object = object.to_str().expect("utf-8 path");
    let blocklist = example("blocklist.json");
    let blocklist = blocklist.to_str().expect("utf-8 path");
    let out = nicc_ok(
        &lab.ns_b,
        &[
            "load",
            "attach",
            object,
            "--dev",
            DEV_B,
            "--mode",
            mode,
            "--maps-in",
            blocklist,
        ],
    );
    assert!(out.contains(&format!("in {mode} mode")), "{out}");
    if mode == "native" {
        // A veth end only takes frames bounced by its peer's native XDP when it runs NAPI,
        // which an XDP program of its own turns on; the firewall passes the echo replies.
        nicc_ok(
            &lab.ns_a,
            &["load", "attach", object, "--dev", DEV_A, "--mode", "native"],
        );
    }
    let shown = nicc_ok(&lab.ns_b, &["load", "show", "--dev", DEV_B]);
    assert!(
        shown.contains(&format!("{mode} mode, program id")),
        "{shown}"
    );

    let obj = frontend::elf::read_file(Path::new(object)).expect("the example object");
    let seed: MapsSnapshot =
        serde_json::from_str(&std::fs::read_to_string(blocklist).unwrap()).unwrap();
    let packets = packets();
    let want = predict(&obj, &seed, &packets);
    let (passed, bounced) = send_and_collect(&lab, &packets);
    let got_maps = maps_of(&lab.ns_b, &["load", "maps", object, "--dev", DEV_B]);
    println!(
        "{mode}: {} packets sent; interpreter predicts {} passed, {} bounced, {} dropped; \
         the kernel passed {}, bounced {}",
        packets.len(),
        want.passed.len(),
        want.bounced.len(),
        want.dropped,
        passed.len(),
        bounced.len()
    );
    assert!(
        want.passed.len() > 10 && !want.bounced.is_empty() && want.dropped > 0,
        "the packets must exercise every verdict"
    );
    assert_eq!(passed.len(), want.passed.len(), "passed frames");
    for (i, (g, w)) in passed.iter().zip(&want.passed).enumerate() {
        if g != w {
            println!("passed #{i}: got {g:02x?}\n want {w:02x?}");
        }
    }
    assert!(
        passed == want.passed,
        "passed frames differ from the prediction"
    );
    assert_eq!(bounced.len(), want.bounced.len(), "bounced frames");
    assert!(
        bounced == want.bounced,
        "bounced frames differ from the prediction"
    );
    assert_eq!(got_maps, want.maps, "map contents after the run");

    let detached = nicc_ok(&lab.ns_b, &["load", "detach", "--dev", DEV_B]);
    assert!(
        detached.contains(&format!("detached the {mode} mode program")),
        "{detached}"
    );
    let shown = nicc_ok(&lab.ns_b, &["load", "show", "--dev", DEV_B]);
    assert!(shown.contains("no XDP program"), "{shown}");
}

#[test]
fn firewall_on_veth_in_generic_mode_matches_the_interpreter() {
    check_mode("generic");
}

#[test]
fn firewall_on_veth_in_native_mode_matches_the_interpreter() {
    check_mode("native");
}

/// A BPF filesystem mounted for one test, unmounted and removed when dropped.
struct BpfFs {
    dir: PathBuf,
}

impl BpfFs {
    fn mount() -> BpfFs {
        let dir = std::env::temp_dir().join(format!("nicc-bpffs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mount point");
        run(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&dir));
        BpfFs { dir }
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Pins survive the process that attached the program; maps written through the pins change
/// what the running program does; offload on a veth is refused with the kernel's reason and
/// what to do instead.
#[test]
fn pinned_maps_steer_the_running_program_and_offload_is_refused_clearly() {
    hw::linux::kernel_available().expect("this test needs bpf() (run as root)");
    let lab = VethLab::new("pin");
    let fs = BpfFs::mount();
    let pins = fs.dir.join("firewall");
    let pins = pins.to_str().expect("utf-8 path");
    let object = example("xdp_firewall.o");
    let object = object.to_str().expect("utf-8 path");

    let refused = nicc_in(
        &lab.ns_b,
        &[
            "load", "attach", object, "--dev", DEV_B, "--mode", "offload",
        ],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    println!("offload refused: {}", stderr.trim_end());
    assert!(!refused.status.success(), "a veth cannot offload");
    assert!(
        stderr.contains("offload") && stderr.contains("--mode native"),
        "the refusal says why and what to do: {stderr}"
    );

    let out = nicc_ok(
        &lab.ns_b,
        &[
            "load", "attach", object, "--dev", DEV_B, "--mode", "generic", "--pin", pins,
        ],
    );
    assert!(out.contains("pinned"), "{out}");
    assert!(Path::new(pins).join("xdp_firewall").exists());
    assert!(Path::new(pins).join("maps/blocklist").exists());

    // An ICMP echo request from a source the empty blocklist allows is bounced...
    let obj = frontend::elf::read_file(Path::new(object)).expect("the example object");
    let echo: Vec<u8> = support::packets::generated()
        .into_iter()
        .find(|p| {
            let seed = MapsSnapshot::default();
            predict(&obj, &seed, std::slice::from_ref(p)).bounced.len() == 1
        })
        .expect("a probe packet the firewall bounces");
    let (passed, bounced) = send_and_collect(&lab, std::slice::from_ref(&echo));
    assert_eq!(
        (passed.len(), bounced.len()),
        (0, 1),
        "bounced before blocking"
    );

    // ... until its source goes on the blocklist through the pinned map.
    let source = hex(&echo[26..30]);
    let block = std::env::temp_dir().join(format!("nicc-block-{}.json", std::process::id()));
    std::fs::write(
        &block,
        format!(
            r#"{{"maps": {{"blocklist": {{"type": "hash", "key_size": 4, "value_size": 8,
                "entries": [{{"key": "{source}", "value": "0000000000000000"}}]}}}}}}"#
        ),
    )
    .expect("write the map contents");
    let block = block.to_str().expect("utf-8 path");
    maps_of(
        &lab.ns_b,
        &["load", "maps", object, "--pin", pins, "--write", block],
    );
    let (passed, bounced) = send_and_collect(&lab, std::slice::from_ref(&echo));
    assert_eq!(
        (passed.len(), bounced.len()),
        (0, 0),
        "dropped once blocked"
    );

    // The counters read through the pins and through the interface agree with the
    // interpreter run on the same two packets with the same map writes between them.
    let mut rt = Runtime::new(&obj, RuntimeConfig::default()).expect("runtime");
    let index = obj
        .programs
        .iter()
        .position(|p| p.name == "xdp_firewall")
        .unwrap();
    let input = XdpInput {
        packet: echo.clone(),
        ..XdpInput::default()
    };
    sim::interp::run_xdp(&obj, index, &mut rt, &input).expect("interpreter");
    let seed: MapsSnapshot =
        serde_json::from_str(&std::fs::read_to_string(block).unwrap()).unwrap();
    rt.load_snapshot(&seed).expect("seed");
    sim::interp::run_xdp(&obj, index, &mut rt, &input).expect("interpreter");
    let by_pin = maps_of(&lab.ns_b, &["load", "maps", object, "--pin", pins]);
    let by_dev = maps_of(&lab.ns_b, &["load", "maps", object, "--dev", DEV_B]);
    assert_eq!(by_pin, rt.snapshot());
    assert_eq!(by_dev, by_pin);
    drop(lab);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
