//! The differential test against the running kernel: every XDP program of the corpus that the
//! kernel verifier accepts runs on every Ethernet packet of the pcap corpus and on generated
//! packets, in the kernel (BPF_PROG_TEST_RUN, repeat 1) and in the interpreter, with the same
//! seeded maps. Verdicts, packet bytes and final maps must agree exactly.

mod support;

use frontend::mapdata::{MapContents, MapEntry, MapsSnapshot};
use frontend::object::ProgramKind;
use nicc::kernel_diff::{diff_program, DiffReport};
use support::packets::V4_ADDRS;

/// Map seeds that make programs do more than their default path: a blocklist entry for a
/// generated source address, a tunnel entry for a generated flow, and so on.
fn le32(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn seed_for(object: &str, obj: &frontend::Object) -> Option<MapsSnapshot> {
    let mut snap = MapsSnapshot::default();
    let mut put = |name: &str, key: Vec<u8>, value: Vec<u8>| {
        if let Some((_, def)) = obj.map_by_name(name) {
            let entry = snap.maps.entry(name.to_string()).or_insert(MapContents {
                map_type: def.map_type,
                key_size: def.key_size,
                value_size: def.value_size,
                entries: Vec::new(),
            });
            entry.entries.push(MapEntry {
                key: frontend::mapdata::to_hex(&key),
                value: (!def.map_type.is_per_cpu()).then(|| frontend::mapdata::to_hex(&value)),
                per_cpu: def
                    .map_type
                    .is_per_cpu()
                    .then(|| vec![frontend::mapdata::to_hex(&value)]),
            });
        }
    };
    match object {
        "xdp_ddos01_blacklist_kern.o" => {
            // Blocklist keys are IPv4 source addresses in network order; the value is a
            // per-CPU drop counter.
            put("blacklist", vec![10, 0, 0, 1], vec![0; 8]);
        }
        "xdp_rxq_info_kern.o" => {
            // struct config { u32 action; int ifindex; u32 options; }: bounce (XDP_TX) packets
            // arriving on the loopback device, reading the packet and swapping MACs.
            put("config_map", le32(0), [le32(3), le32(1), le32(3)].concat());
        }
        "xdp_tx_iptunnel_kern.o" => {
            // struct vip { daddr (16), be16 dport, u16 family, u8 protocol } for the generated
            // TCP flows to 192.168.1.10:80, and struct iptnl_info { saddr (16), daddr (16),
            // u16 family, u8 dmac[6] } for the tunnel to encapsulate them in.
            let mut vip = [V4_ADDRS[1].to_vec(), vec![0; 12]].concat();
            vip.extend_from_slice(&80u16.to_be_bytes());
            vip.extend_from_slice(&2u16.to_le_bytes());
            vip.extend_from_slice(&[6, 0, 0, 0]);
            let mut tnl = [[10, 10, 10, 1].to_vec(), vec![0; 12]].concat();
            tnl.extend_from_slice(&[10, 10, 10, 2]);
            tnl.extend_from_slice(&[0; 12]);
            tnl.extend_from_slice(&2u16.to_le_bytes());
            tnl.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
            put("vip2tnl", vip, tnl);
        }
        "xdp_redirect_map_kern.o" => {
            // Port 0 of the devmap forwards to the loopback device (ifindex 1).
            put("tx_port", le32(0), le32(1));
        }
        "xdp_redirect_cpu_kern.o" => {
            // One CPU (0) in the cpumap with a queue of 64 frames, and listed as available.
            put("cpu_map", le32(0), le32(64));
            put("cpus_available", le32(0), le32(0));
            put("cpus_count", le32(0), le32(1));
        }
        "xdp_bench01_mem_access_cost_kern.o" => {
            // The action to return (XDP_TX) and whether to touch packet memory.
            put("xdp_action", le32(0), 3u64.to_le_bytes().to_vec());
            put("touch_memory", le32(0), 1u64.to_le_bytes().to_vec());
        }
        _ => return None,
    }
    (!snap.maps.is_empty()).then_some(snap)
}

#[test]
fn interpreter_matches_the_kernel_on_the_corpus() {
    if let Err(why) = hw::linux::kernel_available() {
        panic!("this test needs the kernel's bpf() (run as root on Linux): {why}");
    }
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let pcaps = support::files_under(&support::corpus().join("pcap"), &|_| true);
    for path in &pcaps {
        // Damaged captures are part of the corpus; what can be read of them is used.
        if let Ok(capture) = sim::pcap::read_file(path) {
            packets.extend(capture.ethernet().map(|p| p.data.clone()));
        }
    }
    let from_pcaps = packets.len();
    packets.extend(support::packets::generated());
    println!(
        "{} packets: {} from {} capture files, {} generated",
        packets.len(),
        from_pcaps,
        pcaps.len(),
        packets.len() - from_pcaps
    );

    let mut reports: Vec<DiffReport> = Vec::new();
    for path in support::valid_objects() {
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let seed = seed_for(&name, &obj);
        for (i, p) in obj.programs.iter().enumerate() {
            if p.kind != ProgramKind::Xdp {
                continue;
            }
            let mut report = diff_program(&obj, i, &packets, seed.as_ref());
            report.object = path
                .strip_prefix(support::corpus().join("elf"))
                .unwrap_or(&path)
                .display()
                .to_string();
            reports.push(report);
        }
    }

    let mut compared = 0;
    let mut refused = Vec::new();
    let mut mismatched = 0;
    let mut nondeterministic = 0;
    let mut runs = 0;
    let mut packets_refused = 0;
    for r in &reports {
        match &r.kernel_refused {
            Some(reason) => refused.push((r, reason.lines().last().unwrap_or("").to_string())),
            None => {
                compared += 1;
                runs += r.packets_compared;
                packets_refused += r.packets_refused;
                println!(
                    "compared {:45} {:32} {:6} packets, {:3} refused by test run, {} mismatches{}",
                    r.object,
                    r.program,
                    r.packets_compared,
                    r.packets_refused,
                    r.mismatches.len(),
                    if r.nondeterministic.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (expected: the program calls {})",
                            r.nondeterministic.join(", ")
                        )
                    }
                );
                println!("    kernel verdicts: {:?}", r.kernel_verdicts);
                for m in r.maps_not_compared.iter() {
                    println!("    map not comparable: {m}");
                }
                for m in r.mismatches.iter().take(5) {
                    println!("    packet {:?}: {}", m.packet, m.what);
                }
                if !r.is_clean() {
                    mismatched += 1;
                }
                if !r.nondeterministic.is_empty() {
                    nondeterministic += 1;
                }
            }
        }
    }
    for (r, reason) in &refused {
        println!("kernel refused {} {}: {}", r.object, r.program, reason);
    }
    println!(
        "{} XDP programs: {} compared over {} packet runs ({} packets refused by the kernel's test run), {} refused by the verifier, {} with mismatches, {} nondeterministic (compared for faults only)",
        reports.len(),
        compared,
        runs,
        packets_refused,
        refused.len(),
        mismatched,
        nondeterministic
    );
    assert!(compared >= 20, "only {compared} programs were compared");
    assert_eq!(
        mismatched, 0,
        "programs whose results differ from the kernel's"
    );
}
