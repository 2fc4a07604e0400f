// SPDX-License-Identifier: GPL-2.0
// The bundled example: a small XDP firewall written for nicc.
//
// It counts packets per IP protocol, drops IPv4 packets whose source address is on a
// blocklist, answers ICMP echo requests by bouncing them (XDP_TX with the MAC addresses
// swapped) and passes everything else. Build: clang -O2 -g -target bpf -c xdp_firewall.c

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

enum { XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT };
enum { BPF_MAP_TYPE_HASH = 1, BPF_MAP_TYPE_ARRAY = 2 };

struct xdp_md {
    __u32 data;
    __u32 data_end;
    __u32 data_meta;
    __u32 ingress_ifindex;
    __u32 rx_queue_index;
    __u32 egress_ifindex;
};

struct ethhdr {
    __u8 h_dest[6];
    __u8 h_source[6];
    __u16 h_proto;
} __attribute__((packed));

struct iphdr {
    __u8 ihl_version;
    __u8 tos;
    __u16 tot_len;
    __u16 id;
    __u16 frag_off;
    __u8 ttl;
    __u8 protocol;
    __u16 check;
    __u32 saddr;
    __u32 daddr;
};

struct icmphdr {
    __u8 type;
    __u8 code;
    __u16 checksum;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 256);
} proto_count SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 1024);
} blocklist SEC(".maps");

#define ETH_P_IP 0x0800
#define IPPROTO_ICMP 1
#define ICMP_ECHO 8
#define ICMP_ECHOREPLY 0

static __u16 swap16(__u16 x) { return (x << 8) | (x >> 8); }

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    if (eth->h_proto != swap16(ETH_P_IP))
        return XDP_PASS;

    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_DROP;

    __u32 proto = ip->protocol;
    __u64 *count = bpf_map_lookup_elem(&proto_count, &proto);
    if (count)
        __sync_fetch_and_add(count, 1);

    __u32 saddr = ip->saddr;
    __u64 *hits = bpf_map_lookup_elem(&blocklist, &saddr);
    if (hits) {
        __sync_fetch_and_add(hits, 1);
        return XDP_DROP;
    }

    if (ip->protocol == IPPROTO_ICMP && (ip->ihl_version & 0x0f) == 5) {
        struct icmphdr *icmp = (void *)(ip + 1);
        if ((void *)(icmp + 1) > data_end)
            return XDP_DROP;
        if (icmp->type == ICMP_ECHO) {
            // Turn the request into a reply: swap addresses and patch the checksum
            // incrementally (RFC 1624) for the type change from 8 to 0.
            __u8 mac[6];
            __builtin_memcpy(mac, eth->h_dest, 6);
            __builtin_memcpy(eth->h_dest, eth->h_source, 6);
            __builtin_memcpy(eth->h_source, mac, 6);
            __u32 daddr = ip->daddr;
            ip->daddr = ip->saddr;
            ip->saddr = daddr;
            icmp->type = ICMP_ECHOREPLY;
            __u32 sum = icmp->checksum + swap16(ICMP_ECHO << 8);
            icmp->checksum = (sum & 0xffff) + (sum >> 16);
            return XDP_TX;
        }
    }
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
