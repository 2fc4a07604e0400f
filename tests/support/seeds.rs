//! Map seeds for corpus objects, shared by every differential test (kernel, IR executor,
//! optimized modules), so that all of them exercise the same real paths of the programs.

use super::packets::V4_ADDRS;
use frontend::mapdata::{MapContents, MapEntry, MapsSnapshot};

fn le32(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// The map contents to start `object` (a corpus file name) with, if it needs any: seeds that
/// make programs do more than their default path, such as a blocklist entry for a generated
/// source address or a tunnel entry for a generated flow.
pub fn seed_for(object: &str, obj: &frontend::Object) -> Option<MapsSnapshot> {
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
