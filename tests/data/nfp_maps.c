// Map operations driven by packet bytes, for tests/nfp_maps.rs: every helper result the
// NFP map routines compute (lookups, updates with each flag, deletes, a full table, indexes
// out of range, per-CPU values) is written back into the packet, so the differential test
// compares each result as well as the final map contents.
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
    __u32 op = data[0] % 12;
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
