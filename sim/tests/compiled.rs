//! Real C XDP programs compiled with clang, read with `frontend::elf`, and run by the
//! interpreter. Skipped (with a message) when clang is not installed.

use frontend::mapdata::from_hex;
use sim::interp::run_xdp;
use sim::runtime::{Runtime, RuntimeConfig, XdpAction, XdpInput};
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = r#"
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#define SEC(n) __attribute__((section(n), used))
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 256);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u32);
} seen SEC(".maps");

volatile const __u8 tx_proto = IPPROTO_UDP;
__u64 packets;

static __attribute__((noinline)) int swap_macs(struct ethhdr *eth)
{
    unsigned char tmp[ETH_ALEN];
    __builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
    return XDP_TX;
}

SEC("xdp")
int count_and_bounce(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    packets++;
    if ((void *)(ip + 1) > data_end)
        return XDP_DROP;
    if (eth->h_proto != __builtin_bswap16(ETH_P_IP))
        return XDP_PASS;
    __u32 key = ip->protocol;
    __u64 *c = bpf_map_lookup_elem(&counts, &key);
    if (c)
        __sync_fetch_and_add(c, 1);
    __u32 saddr = ip->saddr, one = 1;
    bpf_map_update_elem(&seen, &saddr, &one, BPF_ANY);
    if (ip->protocol == tx_proto)
        return swap_macs(eth);
    return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"#;

fn compile() -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("nicc-sim-compiled-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let src = dir.join("prog.c");
    let obj = dir.join("prog.o");
    std::fs::write(&src, SOURCE).ok()?;
    let bpf_helpers = "-D__uint(n,v)=int (*n)[v]";
    let type_macro = "-D__type(n,t)=typeof(t) *n";
    let out = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-c", bpf_helpers, type_macro])
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("clang failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(obj)
}

fn ipv4_packet(proto: u8, saddr: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0u8; 14 + 20 + 8];
    p[0..6].copy_from_slice(&[1, 1, 1, 1, 1, 1]);
    p[6..12].copy_from_slice(&[2, 2, 2, 2, 2, 2]);
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    p[14] = 0x45;
    p[23] = proto;
    p[26..30].copy_from_slice(&saddr);
    p
}

#[test]
fn compiled_program_counts_and_bounces() {
    let Some(path) = compile() else {
        eprintln!("skipping: clang could not build the test program");
        return;
    };
    let obj = frontend::elf::read_file(&path).expect("read object");
    let index = obj
        .programs
        .iter()
        .position(|p| p.name == "count_and_bounce")
        .expect("program");
    let mut rt = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
    let udp = ipv4_packet(17, [10, 0, 0, 1]);
    let out = run_xdp(&obj, index, &mut rt, &XdpInput::new(udp.clone())).unwrap();
    assert_eq!(out.action, XdpAction::Tx);
    assert_eq!(&out.packet[0..6], &udp[6..12]);
    assert_eq!(&out.packet[6..12], &udp[0..6]);
    let tcp = ipv4_packet(6, [10, 0, 0, 2]);
    for _ in 0..3 {
        let out = run_xdp(&obj, index, &mut rt, &XdpInput::new(tcp.clone())).unwrap();
        assert_eq!(out.action, XdpAction::Pass);
        assert_eq!(out.packet, tcp);
    }
    let short = run_xdp(&obj, index, &mut rt, &XdpInput::new(vec![0; 20])).unwrap();
    assert_eq!(short.action, XdpAction::Drop);
    let snap = rt.snapshot();
    let counts: Vec<(String, String)> = snap.maps["counts"]
        .entries
        .iter()
        .map(|e| (e.key.clone(), e.value.clone().unwrap()))
        .collect();
    assert_eq!(
        counts,
        [
            ("06000000".to_string(), "0300000000000000".to_string()),
            ("11000000".to_string(), "0100000000000000".to_string())
        ]
    );
    assert_eq!(snap.maps["seen"].entries.len(), 2);
    // The .bss counter saw all five packets.
    let bss = snap
        .maps
        .iter()
        .find(|(name, _)| name.ends_with(".bss"))
        .map(|(_, c)| c.entries[0].value.clone().unwrap())
        .expect(".bss map");
    assert_eq!(from_hex(&bss).unwrap()[..8], 5u64.to_le_bytes());
}
