//! The NFP map routines against the interpreter, on a program written to exercise them:
//! `tests/data/nfp_maps.c` (compiled here with clang) updates, looks up and deletes keys of
//! hash maps (4-, 12-, 6- and 3-byte keys, small enough to fill), a per-CPU hash, two LPM
//! tries (IPv4 and 2-byte data, nested and overlapping prefixes), an array and a per-CPU
//! array, choosing the operation, the key, the flags and the value from packet
//! bytes, and writes every helper result into the packet. Thousands of pseudo-random packets,
//! spread over four CPUs (hardware contexts on the chip), fill the tables, hit `-E2BIG`,
//! `-EEXIST` and `-ENOENT`, delete and reinsert (tombstone reuse, and a per-CPU entry whose
//! other copies must read as zero again), so each result, each output packet and the final
//! maps (converted back from chip memory) must be the interpreter's.

mod support;

use backends::nfp::link::compile_linked;
use frontend::lift::{lift_program, LiftOptions};
use passes::pass::PassContext;
use passes::pipeline::{pipeline, PassManager};
use sim::nfp::{run_xdp_nfp, NfpMachine};
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};

#[test]
fn map_routines_in_chip_memory_match_the_interpreter() {
    let path = support::clang_bpf_object("nfp_maps");
    let obj = frontend::elf::read_file(&path).unwrap_or_else(|d| panic!("{d}"));
    let lift = |p: usize| -> Result<ir::Module, frontend::Diagnostic> {
        let mut module = lift_program(&obj, p, &LiftOptions { inline_calls: true })?;
        let pipe = pipeline("nfp").unwrap();
        PassManager::new()
            .run(&pipe, &mut module, &mut PassContext::new(pipe.target))
            .map_err(|e| frontend::Diagnostic::new(e.to_string()))?;
        Ok(module)
    };
    let prog = compile_linked(&lift, 0, &[0]).unwrap_or_else(|d| panic!("{d}"));
    // Every map of the program lives in chip memory, and the hash operations are routines.
    let laid_out: Vec<String> = prog
        .maps
        .iter()
        .map(|m| format!("{}: {:?}", m.name, m.layout.as_ref().map(|l| &l.kind)))
        .collect();
    println!("{}", laid_out.join("\n"));
    assert!(
        prog.maps.iter().all(|m| m.layout.is_some()),
        "a map is not in chip memory: {laid_out:?}"
    );
    let listing = prog.listing();
    for op in ["hash lookup", "hash update", "hash delete"] {
        assert!(listing.contains(op), "no {op} routine:\n{listing}");
    }
    // The LPM tries (4- and 2-byte data) are scanned by routines of their own.
    for name in ["routes", "short_routes"] {
        let m = prog.maps.iter().position(|m| m.name == name).unwrap();
        assert!(
            listing.contains(&format!("lpm lookup of map {m}")),
            "no LPM lookup routine for {name}:\n{listing}"
        );
    }
    // The per-CPU hash and the hashes with 6- and 3-byte keys have routines too.
    for (name, kind) in [
        ("per_cpu_hash", "percpu_hash"),
        ("mac_hash", "hash"),
        ("odd_hash", "hash"),
    ] {
        let m = prog.maps.iter().position(|m| m.name == name).unwrap();
        assert_eq!(
            prog.maps[m].layout.as_ref().map(|l| l.kind.as_str()),
            Some(kind)
        );
        assert!(
            listing.contains(&format!("hash lookup of map {m}")),
            "no lookup routine for {name}:\n{listing}"
        );
    }
    let config = RuntimeConfig {
        cpus: 4,
        ..RuntimeConfig::default()
    };
    let mut rt_bc = Runtime::new(&obj, config.clone()).unwrap();
    let mut rt_nfp = Runtime::new(&obj, config).unwrap();
    let machine = NfpMachine::load(&prog, &mut rt_nfp).unwrap_or_else(|d| panic!("{d}"));
    // A linear congruential generator (Knuth's MMIX constants) makes the packets.
    let mut state: u64 = 0x6e69_6363;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u8
    };
    let packets = 8000;
    let mut results = std::collections::BTreeMap::new();
    for k in 0..packets {
        let pkt: Vec<u8> = (0..16).map(|_| next()).collect();
        // Each packet runs on the CPU (hardware context) its sixth byte (unused by the
        // program) picks.
        rt_bc.config.cpu = pkt[5] as u32 % 4;
        rt_nfp.config.cpu = rt_bc.config.cpu;
        let input = XdpInput::new(pkt.clone());
        let want = sim::interp::run_xdp(&obj, 0, &mut rt_bc, &input).unwrap();
        let (got, _) = run_xdp_nfp(&machine, &mut rt_nfp, &input)
            .unwrap_or_else(|d| panic!("packet {k} ({pkt:02x?}): the NFP model faulted: {d}"));
        assert_eq!(
            got.test_run_data(),
            want.test_run_data(),
            "packet {k} ({pkt:02x?}): operation {} gave a different result",
            pkt[0] % 21
        );
        let rc = i64::from_le_bytes(want.test_run_data()[8..16].try_into().unwrap());
        if rc < 0 {
            *results.entry(rc).or_insert(0) += 1;
        }
    }
    machine.store_maps(&mut rt_nfp).unwrap();
    assert_eq!(rt_nfp.snapshot(), rt_bc.snapshot(), "final maps differ");
    println!("{packets} packets; negative results (errno or not found) by count: {results:?}");
    // The error paths were exercised: not found, -ENOENT, -EEXIST, -E2BIG, -EINVAL, and
    // -ENOSPC from a full LPM trie.
    for errno in [-1i64, -2, -17, -7, -22, -28] {
        assert!(results.contains_key(&errno), "no packet gave {errno}");
    }
}

/// prototype-kernel's `xdp_ddos01_blacklist` counts drops in one of two per-CPU arrays that
/// it picks at run time (TCP or UDP: clang selects between the two map pointers and NULL,
/// tests for NULL, and makes one call). Both arrays live in chip memory, so the backend
/// compares the handle with each map and runs that map's inlined lookup, and a handle that is
/// neither map would fault. The port blocklist is seeded so that TCP and UDP packets to
/// blocked ports reach that call; every result and the final maps must be the interpreter's.
#[test]
fn a_map_chosen_at_run_time_dispatches_over_maps_in_chip_memory() {
    use frontend::mapdata::{to_hex, MapContents, MapEntry, MapsSnapshot};
    let path = support::corpus().join("elf/prototype-kernel/xdp_ddos01_blacklist_kern.o");
    let obj = frontend::elf::read_file(&path).unwrap_or_else(|d| panic!("{d}"));
    let lift = |p: usize| -> Result<ir::Module, frontend::Diagnostic> {
        let mut module = lift_program(&obj, p, &LiftOptions { inline_calls: true })?;
        let pipe = pipeline("nfp").unwrap();
        PassManager::new()
            .run(&pipe, &mut module, &mut PassContext::new(pipe.target))
            .map_err(|e| frontend::Diagnostic::new(e.to_string()))?;
        Ok(module)
    };
    let prog = compile_linked(&lift, 0, &[0]).unwrap_or_else(|d| panic!("{d}"));
    let listing = prog.listing();
    assert!(
        listing.contains(".map_handle_fault"),
        "no dispatch with a fault for a handle that is no map:\n{listing}"
    );
    // The port blocklist's value is a bit mask: bit 0 blocks TCP, bit 1 UDP (the program's
    // DDOS_FILTER_TCP and DDOS_FILTER_UDP); the generated packets go to ports 53, 80, 9 and
    // 4789.
    let mut snap = MapsSnapshot::default();
    let (_, def) = obj.map_by_name("port_blacklist").unwrap();
    let entries = [(80u32, 1u32), (53, 2), (9, 3)]
        .iter()
        .map(|(port, bits)| MapEntry {
            key: to_hex(&port.to_le_bytes()),
            value: None,
            per_cpu: Some(vec![to_hex(&bits.to_le_bytes())]),
        })
        .collect();
    snap.maps.insert(
        "port_blacklist".to_string(),
        MapContents {
            map_type: def.map_type,
            key_size: def.key_size,
            value_size: def.value_size,
            entries,
        },
    );
    let seeded = || {
        let mut rt = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
        rt.load_snapshot(&snap)
            .unwrap_or_else(|e| panic!("seeding: {e}"));
        rt
    };
    let (mut rt_bc, mut rt_nfp) = (seeded(), seeded());
    let machine = NfpMachine::load(&prog, &mut rt_nfp).unwrap_or_else(|d| panic!("{d}"));
    let mut verdicts = std::collections::BTreeMap::new();
    for (k, pkt) in support::engine_diff::corpus_packets().iter().enumerate() {
        let input = XdpInput::new(pkt.clone());
        // Packets larger than the XDP buffer are refused by both alike.
        let (want, got) = match (
            sim::interp::run_xdp(&obj, 0, &mut rt_bc, &input),
            run_xdp_nfp(&machine, &mut rt_nfp, &input),
        ) {
            (Ok(w), Ok((g, _))) => (w, g),
            (Err(_), Err(_)) => continue,
            (w, g) => panic!(
                "packet {k}: interpreter {:?}, NFP {:?}",
                w.map(|o| o.retval),
                g.map(|(o, _)| o.retval)
            ),
        };
        assert_eq!(got.retval, want.retval, "packet {k}: verdicts differ");
        assert_eq!(got.test_run_data(), want.test_run_data(), "packet {k}");
        *verdicts.entry(want.retval).or_insert(0) += 1;
    }
    machine.store_maps(&mut rt_nfp).unwrap();
    let after = rt_bc.snapshot();
    assert_eq!(rt_nfp.snapshot(), after, "final maps differ");
    println!("verdicts by count: {verdicts:?}");
    // Both counters that the run-time choice selects were incremented.
    for name in [
        "port_blacklist_drop_count_tcp",
        "port_blacklist_drop_count_udp",
    ] {
        let counted = after.maps.get(name).is_some_and(|m| {
            m.entries.iter().any(|e| {
                e.per_cpu
                    .iter()
                    .flatten()
                    .chain(e.value.iter())
                    .any(|v| v.chars().any(|c| c != '0'))
            })
        });
        assert!(
            counted,
            "no drop was counted in {name}: {:?}",
            after.maps.get(name)
        );
    }
}

/// samples/bpf `xdp_router_ipv4` with routes in its LPM trie, which lives in chip memory and
/// is scanned by the LPM routine: nested prefixes (a default route, a /8 and a /24 inside
/// it, a host route) over the generated packets' destinations, and ARP entries for some of
/// them, so that packets take the longest-prefix, gateway and no-route paths. Every verdict,
/// packet, redirect and the final maps must be the interpreter's.
#[test]
fn router_ipv4_routes_through_the_lpm_trie_in_chip_memory() {
    use frontend::mapdata::{to_hex, MapContents, MapEntry, MapsSnapshot};
    let path = support::corpus().join("elf/linux/xdp_router_ipv4_kern.o");
    let obj = frontend::elf::read_file(&path).unwrap_or_else(|d| panic!("{d}"));
    let lift = |p: usize| -> Result<ir::Module, frontend::Diagnostic> {
        let mut module = lift_program(&obj, p, &LiftOptions { inline_calls: true })?;
        let pipe = pipeline("nfp").unwrap();
        PassManager::new()
            .run(&pipe, &mut module, &mut PassContext::new(pipe.target))
            .map_err(|e| frontend::Diagnostic::new(e.to_string()))?;
        Ok(module)
    };
    let prog = compile_linked(&lift, 0, &[0]).unwrap_or_else(|d| panic!("{d}"));
    let lpm = prog.maps.iter().position(|m| m.name == "lpm_map").unwrap();
    assert_eq!(
        prog.maps[lpm].layout.as_ref().map(|l| l.kind.as_str()),
        Some("lpm_trie")
    );
    // The route value (samples/bpf `struct trie_value`): the prefix's bytes, a 64-bit value,
    // the ifindex, a metric and the gateway (0: the destination is on the link).
    let route = |prefix: [u8; 4], ifindex: u32, gw: [u8; 4]| {
        let mut v = vec![0u8; 32];
        v[..4].copy_from_slice(&prefix);
        v[8..16].copy_from_slice(&0x0000_0a0b_0c0d_0e0fu64.to_le_bytes());
        v[16..20].copy_from_slice(&ifindex.to_le_bytes());
        v[20..24].copy_from_slice(&7u32.to_le_bytes());
        v[24..28].copy_from_slice(&gw);
        v
    };
    let routes = [
        (0u32, [0, 0, 0, 0], route([0; 4], 3, [198, 18, 0, 7])),
        (8, [10, 0, 0, 0], route([10, 0, 0, 0], 1, [0; 4])),
        (24, [192, 168, 1, 0], route([192, 168, 1, 0], 2, [0; 4])),
        (32, [8, 8, 8, 8], route([8, 8, 8, 8], 4, [10, 0, 0, 1])),
    ];
    let arp = [[192u8, 168, 1, 10], [198, 18, 0, 7], [10, 0, 0, 1]];
    let mut snap = MapsSnapshot::default();
    let def = |name: &str| obj.map_by_name(name).unwrap().1.clone();
    let lpm_def = def("lpm_map");
    snap.maps.insert(
        "lpm_map".into(),
        MapContents {
            map_type: lpm_def.map_type,
            key_size: lpm_def.key_size,
            value_size: lpm_def.value_size,
            entries: routes
                .iter()
                .map(|(plen, addr, value)| MapEntry {
                    key: to_hex(&[plen.to_le_bytes().to_vec(), addr.to_vec()].concat()),
                    value: Some(to_hex(value)),
                    per_cpu: None,
                })
                .collect(),
        },
    );
    let arp_def = def("arp_table");
    snap.maps.insert(
        "arp_table".into(),
        MapContents {
            map_type: arp_def.map_type,
            key_size: arp_def.key_size,
            value_size: arp_def.value_size,
            entries: arp
                .iter()
                .enumerate()
                .map(|(i, a)| MapEntry {
                    key: to_hex(a),
                    value: Some(to_hex(&(0x0200_0000_0010u64 + i as u64).to_le_bytes())),
                    per_cpu: None,
                })
                .collect(),
        },
    );
    // The egress ports of routes 1 to 3 exist (route 4's does not).
    let tx_def = def("tx_port");
    snap.maps.insert(
        "tx_port".into(),
        MapContents {
            map_type: tx_def.map_type,
            key_size: tx_def.key_size,
            value_size: tx_def.value_size,
            entries: (1u32..=3)
                .map(|i| MapEntry {
                    key: to_hex(&i.to_le_bytes()),
                    value: Some(to_hex(&(10 + i).to_le_bytes())),
                    per_cpu: None,
                })
                .collect(),
        },
    );
    let seeded = || {
        let mut rt = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
        rt.load_snapshot(&snap)
            .unwrap_or_else(|e| panic!("seeding: {e}"));
        rt
    };
    let (mut rt_bc, mut rt_nfp) = (seeded(), seeded());
    let machine = NfpMachine::load(&prog, &mut rt_nfp).unwrap_or_else(|d| panic!("{d}"));
    let mut verdicts = std::collections::BTreeMap::new();
    let mut routed = 0;
    for (k, pkt) in support::engine_diff::corpus_packets().iter().enumerate() {
        let input = XdpInput::new(pkt.clone());
        let (want, got) = match (
            sim::interp::run_xdp(&obj, 0, &mut rt_bc, &input),
            run_xdp_nfp(&machine, &mut rt_nfp, &input),
        ) {
            (Ok(w), Ok((g, _))) => (w, g),
            (Err(_), Err(_)) => continue,
            (w, g) => panic!(
                "packet {k}: interpreter {:?}, NFP {:?}",
                w.map(|o| o.retval),
                g.map(|(o, _)| o.retval)
            ),
        };
        assert_eq!(got.retval, want.retval, "packet {k}: verdicts differ");
        assert_eq!(got.test_run_data(), want.test_run_data(), "packet {k}");
        assert_eq!(got.redirect, want.redirect, "packet {k}: redirects differ");
        *verdicts.entry(want.retval).or_insert(0) += 1;
        routed += usize::from(want.redirect.is_some());
        rt_bc.take_outputs();
        rt_nfp.take_outputs();
    }
    machine.store_maps(&mut rt_nfp).unwrap();
    assert_eq!(rt_nfp.snapshot(), rt_bc.snapshot(), "final maps differ");
    println!("verdicts by count: {verdicts:?}; {routed} packets redirected along a route");
    // Packets were forwarded along routes the trie answered, and others were not.
    assert!(routed > 0, "no packet found a route: {verdicts:?}");
    assert!(
        verdicts.len() > 1,
        "every packet took the same path: {verdicts:?}"
    );
}
