// Map operations driven by packet bytes, for tests/nfp_maps.rs: every helper result the
// NFP map routines compute (lookups, updates with each flag, deletes, a full table, indexes
// out of range, per-CPU values, per-CPU hashes, keys that are not whole words) is written
// back into the packet, so the differential test compares each result as well as the final
// map contents.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct key3 {
    __u32 a, b, c;
};

struct value16 {
    __u64 x, y;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} small_hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4);
    __type(key, struct key3);
    __type(value, struct value16);
} wide_hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, struct value16);
} array SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} per_cpu SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 6);
    __type(key, __u32);
    __type(value, __u64);
} per_cpu_hash SEC(".maps");

// A 6-byte key (a MAC address) and a 3-byte key: not whole 32-bit words.
struct mac {
    __u8 b[6];
};

struct key3bytes {
    __u8 b[3];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 5);
    __type(key, struct mac);
    __type(value, __u32);
} mac_hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4);
    __type(key, struct key3bytes);
    __type(value, __u64);
} odd_hash SEC(".maps");

// LPM tries over IPv4 addresses and over 2-byte data (the kernel requires no preallocation).
struct lpm_v4 {
    __u32 prefixlen;
    __u8 addr[4];
};

struct lpm_16 {
    __u32 prefixlen;
    __u8 data[2];
} __attribute__((packed));

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 10);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct lpm_v4);
    __type(value, __u64);
} routes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 5);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct lpm_16);
    __type(value, __u32);
} short_routes SEC(".maps");

__u64 packets_seen = 0;

// One function per map operation keeps each helper call's map and flags constants: clang
// merges calls that differ only in their arguments into one call with a chosen map, which
// the NFP backend refuses for maps in chip memory. nicc inlines the functions again.
#define UPDATE(name, map, flags)                                                  \
    static __attribute__((noinline)) long name(void *key, void *value)           \
    {                                                                             \
        return bpf_map_update_elem(&map, key, value, flags);                      \
    }
#define DELETE(name, map)                                                         \
    static __attribute__((noinline)) long name(void *key)                         \
    {                                                                             \
        return bpf_map_delete_elem(&map, key);                                    \
    }
UPDATE(small_any, small_hash, BPF_ANY)
UPDATE(small_noexist, small_hash, BPF_NOEXIST)
UPDATE(small_exist, small_hash, BPF_EXIST)
UPDATE(array_any, array, BPF_ANY)
UPDATE(array_noexist, array, BPF_NOEXIST)
UPDATE(array_bad_flags, array, 4)
UPDATE(wide_any, wide_hash, BPF_ANY)
UPDATE(wide_noexist, wide_hash, BPF_NOEXIST)
UPDATE(wide_exist, wide_hash, BPF_EXIST)
UPDATE(pcpu_any, per_cpu_hash, BPF_ANY)
UPDATE(pcpu_noexist, per_cpu_hash, BPF_NOEXIST)
UPDATE(pcpu_exist, per_cpu_hash, BPF_EXIST)
UPDATE(mac_any, mac_hash, BPF_ANY)
UPDATE(mac_noexist, mac_hash, BPF_NOEXIST)
UPDATE(mac_exist, mac_hash, BPF_EXIST)
UPDATE(odd_any, odd_hash, BPF_ANY)
DELETE(pcpu_delete, per_cpu_hash)
DELETE(mac_delete, mac_hash)
DELETE(odd_delete, odd_hash)
UPDATE(route_any, routes, BPF_ANY)
UPDATE(route_noexist, routes, BPF_NOEXIST)
UPDATE(route_exist, routes, BPF_EXIST)
UPDATE(short_any, short_routes, BPF_ANY)
DELETE(route_delete, routes)
DELETE(short_delete, short_routes)
DELETE(small_delete, small_hash)
DELETE(array_delete, array)
DELETE(wide_delete, wide_hash)

SEC("xdp")
int map_ops(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *data_end = (void *)(long)ctx->data_end;
    if (data + 16 > data_end)
        return XDP_PASS;
    __u32 op = data[0] % 25;
    __u32 k = data[1] % 20;
    __u64 v = data[2] | ((__u64)data[3] << 40);
    long rc = 0;
    packets_seen++;
    __u32 f = data[4] % 3;
    if (op < 3) {
        rc = op == 0 ? small_any(&k, &v) : op == 1 ? small_noexist(&k, &v) : small_exist(&k, &v);
    } else if (op == 3) {
        rc = small_delete(&k);
    } else if (op == 4) {
        __u64 *p = bpf_map_lookup_elem(&small_hash, &k);
        if (p) {
            *p += 1;
            rc = *p;
        } else {
            rc = -1;
        }
    } else if (op == 5) {
        struct value16 val = {v, k};
        rc = f == 0 ? array_any(&k, &val) : f == 1 ? array_noexist(&k, &val) : array_bad_flags(&k, &val);
    } else if (op == 6) {
        struct value16 *p = bpf_map_lookup_elem(&array, &k);
        rc = p ? (long)(p->x + p->y) : -1;
    } else if (op == 7) {
        rc = array_delete(&k);
    } else if (op < 11) {
        struct key3 key = {k % 6, k * 3, 7};
        struct value16 val = {v, op};
        if (op == 8)
            rc = f == 0 ? wide_any(&key, &val) : f == 1 ? wide_noexist(&key, &val) : wide_exist(&key, &val);
        else if (op == 9)
            rc = wide_delete(&key);
        else {
            struct value16 *p = bpf_map_lookup_elem(&wide_hash, &key);
            rc = p ? (long)(p->x ^ p->y) : -1;
        }
    } else if (op == 12) {
        __u32 key = k % 9;
        rc = f == 0 ? pcpu_any(&key, &v) : f == 1 ? pcpu_noexist(&key, &v) : pcpu_exist(&key, &v);
    } else if (op == 13) {
        __u32 key = k % 9;
        rc = pcpu_delete(&key);
    } else if (op == 14) {
        __u32 key = k % 9;
        __u64 *p = bpf_map_lookup_elem(&per_cpu_hash, &key);
        if (p) {
            *p += v + 1;
            rc = *p;
        } else {
            rc = -1;
        }
    } else if (op < 18) {
        // The last byte differs between keys that agree on the first five, and the first
        // between keys that agree on the last five (the overlapping word of a 6-byte key).
        struct mac key = {{(__u8)(k % 3), 0x11, 0x22, 0x33, 0x44, (__u8)(k % 7)}};
        __u32 val = (__u32)v ^ k;
        if (op == 15)
            rc = f == 0 ? mac_any(&key, &val) : f == 1 ? mac_noexist(&key, &val) : mac_exist(&key, &val);
        else if (op == 16)
            rc = mac_delete(&key);
        else {
            __u32 *p = bpf_map_lookup_elem(&mac_hash, &key);
            rc = p ? (long)*p : -1;
        }
    } else if (op < 20) {
        struct key3bytes key = {{(__u8)(k % 3), 0x5a, (__u8)(k % 4)}};
        if (op == 18)
            rc = f == 2 ? odd_delete(&key) : odd_any(&key, &v);
        else {
            __u64 *p = bpf_map_lookup_elem(&odd_hash, &key);
            rc = p ? (long)*p : -1;
        }
    } else if (op < 23) {
        // Prefix lengths 0 to 33 (33 is longer than the address: -EINVAL), over addresses
        // that share their first bytes often, so that prefixes nest and overlap.
        struct lpm_v4 key = {(data[6] >> 2) % 34, {10, (__u8)(k % 3), (__u8)(data[6] & 3), (__u8)(data[7] & 7)}};
        if (op == 20)
            rc = f == 0 ? route_any(&key, &v) : f == 1 ? route_noexist(&key, &v) : route_exist(&key, &v);
        else if (op == 21)
            rc = route_delete(&key);
        else {
            key.prefixlen = (data[7] & 0x80) ? 32 : (data[7] >> 2) % 34;
            __u64 *p = bpf_map_lookup_elem(&routes, &key);
            rc = p ? (long)*p : -1;
        }
    } else if (op == 23) {
        struct lpm_16 key = {(data[6] >> 2) % 18, {(__u8)(k % 2), (__u8)(data[7] & 0xc3)}};
        __u32 val = (__u32)v + 1;
        rc = f == 0 ? short_any(&key, &val) : f == 1 ? short_delete(&key) : -3;
        if (f == 2) {
            key.prefixlen = 16;
            __u32 *p = bpf_map_lookup_elem(&short_routes, &key);
            rc = p ? (long)*p : -1;
        }
    } else {
        __u32 i = k % 6;
        __u64 *p = bpf_map_lookup_elem(&per_cpu, &i);
        if (p) {
            *p += v;
            rc = *p;
        } else {
            rc = -1;
        }
    }
    __builtin_memcpy(data + 8, &rc, 8);
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
