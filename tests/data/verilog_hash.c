// Per-source and per-flow counters in hash maps, for the read-after-write hazard test of
// tests/verilog_diff.rs: back-to-back packets of a few flows update the same hash entries
// (some of them in different ways of one bucket) through the value pointers their lookups
// return, read the clock into the entry, rewrite the destination address with a checksum
// patch from bpf_csum_diff and let a random draw decide some verdicts, so every packet's
// result depends on the packet just before it in the pipeline.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct counters {
    __u64 packets;
    __u64 bytes;
    __u64 last_seen;
};

struct flow {
    __u32 saddr;
    __u32 daddr;
    __u16 sport;
    __u16 dport;
    __u32 proto;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, struct counters);
} by_source SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 256);
    __type(key, struct flow);
    __type(value, __u64);
} by_flow SEC(".maps");

SEC("xdp")
int count_flows(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    struct udphdr *udp = data + sizeof(*eth) + sizeof(*ip);

    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
        return XDP_PASS;

    __u32 source = ip->saddr;
    struct counters *c = bpf_map_lookup_elem(&by_source, &source);
    if (!c)
        return XDP_PASS;
    c->packets += 1;
    c->bytes += data_end - data;
    c->last_seen = bpf_ktime_get_ns();

    struct flow f = {
        .saddr = ip->saddr,
        .daddr = ip->daddr,
        .sport = udp->source,
        .dport = udp->dest,
        .proto = ip->protocol,
    };
    __u64 *seen = bpf_map_lookup_elem(&by_flow, &f);
    if (seen) {
        *seen += 1;
        // The count so far goes into the UDP checksum field, so each packet carries the
        // result of the read-modify-write before it.
        udp->check = (__u16)*seen;
        if ((*seen & 3) == 0)
            return XDP_DROP;
    }
    // Rewrites the destination address as a NAT would, patching the IP header checksum with
    // bpf_csum_diff over the old address in the packet and the new one on the stack.
    __be32 to = ip->daddr ^ bpf_htonl((__u32)c->packets & 0xff);
    __s64 sum = bpf_csum_diff(&ip->daddr, 4, &to, 4, ~(__u32)ip->check & 0xffff);
    ip->daddr = to;
    ip->check = ~(__u16)sum;
    if ((bpf_get_prandom_u32() & 7) == 0)
        return XDP_ABORTED;
    return c->packets & 2 ? XDP_TX : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
