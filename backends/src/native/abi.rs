//! The runtime ABI between native code and whatever runs it: the layout of the context block
//! every native function receives, and the functions native code calls back into.
//!
//! Native code is compiled once and then run by two very different hosts: the in-process JIT
//! engine of `sim` (which must give results identical to the interpreter) and a C dataplane
//! that links an object written by `nicc compile`. Both talk to the code through this one ABI,
//! so it is written down here, field by field, and the C header of [`super::object`] is
//! generated from these same tables.
//!
//! # Pointers
//!
//! A BPF pointer is an opaque 64-bit *value*: the program adds to it, compares it and passes
//! it to helpers. Native code never assumes that a value is a host address. Each memory region
//! the code reaches inline has a *bias*, and the host address of a value `v` in that region is
//! `v + bias` (wrapping). The JIT engine keeps the interpreter's region pointers as values
//! (`region << 32 | offset`) and sets each bias to `host_base - (region << 32)`, so pointer
//! values, comparisons and everything helpers see are bit for bit those of the interpreter; a C
//! dataplane uses real host pointers as values and sets every bias to zero. See
//! `sim::native` for why the engine keeps region pointers.
//!
//! Map values that helpers return (`bpf_map_lookup_elem`) are reached inline through the
//! table `ctx->value_regions` ([`ValueRegionDesc`]): the high half of the pointer value
//! names an entry, the low half is the offset, and the entry gives the host address and how
//! many bytes may be read and written. The host fills an entry when a helper hands out a
//! pointer into a value and empties it when the value's storage may move (a hash map that
//! grows); an access outside the limits, or through an empty entry, goes to the runtime.
//!
//! # What stays put during a run
//!
//! Native code loads these once per function and lets Cranelift move and share the loads, so
//! the host must not change them while native code runs, callbacks included: `ctx_value`,
//! `pkt_bias`, the three device fields, the pointers `map_handles`, `globals`, `func_values`
//! and the tables they point to, and `frames`. The packet bounds (`pkt_data`, `pkt_end`,
//! `pkt_meta`) and the map-value table may change only inside a callback; native code reads
//! them again after every call.
//!
//! # Functions
//!
//! Every IR function becomes a native function with the platform's C calling convention:
//! `uint64_t f(struct nicc_ctx *ctx, uint64_t r1, ..., uint64_t rN)`, one `uint64_t` per IR
//! parameter, returning r0. Program entries are exported as `nicc_prog_<name>`; subprograms
//! are local.
//!
//! # Calls into the runtime
//!
//! Native code calls back into the host for everything it cannot do inline. Before each such
//! call it stores the BPF instruction index of the IR instruction into `ctx->insn`, so that a
//! fault names the instruction. A callback that faults sets `ctx->fault` to a non-zero value
//! and returns 0; native code checks `ctx->fault` after every callback and every call of
//! another native function, and returns 0 at once when it is set, so a fault unwinds the whole
//! native call stack and the host reports it.
//!
//! Every callback takes `struct nicc_ctx *ctx` first and returns a `uint64_t`.
//!
//! | symbol | C prototype | does |
//! | --- | --- | --- |
//! | [`SYM_LOAD`] | `uint64_t nicc_load(ctx, uint64_t addr, uint64_t size)` | a checked load of 1, 2, 4 or 8 bytes, zero-extended (context loads included) |
//! | [`SYM_STORE`] | `uint64_t nicc_store(ctx, uint64_t addr, uint64_t size, uint64_t value)` | a checked store of the low `size` bytes; returns 0 |
//! | [`SYM_ATOMIC`] | `uint64_t nicc_atomic(ctx, uint64_t addr, uint64_t size, uint64_t op, uint64_t value, uint64_t expected)` | a checked read-modify-write ([`AtomicCode`]); returns the old contents |
//! | [`SYM_ENTER_CALL`] | `uint64_t nicc_enter_call(ctx)` | before a bpf-to-bpf call: checks the depth, zeroes the next frame, increments `ctx->depth`; returns 0 |
//! | [`SYM_TAIL_CALL`] | `uint64_t nicc_tail_call(ctx, uint64_t ctx_arg, uint64_t map, uint64_t index)` | 0: the tail call failed, continue; 1: it ran, its r0 is in `ctx->tail_result` |
//! | [`SYM_MAP_VALUE_ADDR`] | `uint64_t nicc_map_value_addr(ctx, uint64_t map, uint64_t offset)` | the address of global data the inline table does not cover (faults where the interpreter does) |
//! | [`SYM_HELPER`] | `uint64_t nicc_helper(ctx, uint64_t id, uint64_t r1..r5)` | helper call by kernel id (JIT linkage) |
//! | [`SYM_MAP_LOOKUP`] | `uint64_t nicc_map_lookup(ctx, uint64_t map, uint64_t key_offset)` | `bpf_map_lookup_elem` on map `map` (an index like `map_handles`') with the key at `key_offset` in the caller's frame (JIT linkage only) |
//! | `nicc_helper_<name>` | `uint64_t nicc_helper_<name>(ctx, uint64_t r1..r5)` | one symbol per helper (object linkage), e.g. `nicc_helper_map_lookup_elem` |
//!
//! Every branch back to a block that dominates it in reverse postorder (a loop back-edge)
//! decrements `ctx->budget`; when it is zero the code sets `ctx->fault` to [`FAULT_BUDGET`]
//! and unwinds instead.
//!
//! After a bpf-to-bpf call returns, native code itself decrements `ctx->depth`. After every
//! helper call it re-reads the packet bounds from `ctx`, because helpers such as
//! `bpf_xdp_adjust_head` move them (the host must update `pkt_*` before returning).

/// Largest number of live bpf-to-bpf frames (the kernel's `MAX_CALL_FRAMES`).
pub const MAX_FRAMES: usize = 8;

/// Size of one BPF stack frame.
pub const FRAME_SIZE: u32 = 512;

/// The context block: the C header's `struct nicc_ctx`. All fields are 64 bits wide so that
/// the layout is the same on every 64-bit target.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct NativeCtx {
    /// The value an XDP program receives in r1; a context load whose base equals it reads the
    /// fields below inline. A host without a context sets a value no program uses (`u64::MAX`).
    pub ctx_value: u64,
    /// `xdp_md.data`, as a pointer value.
    pub pkt_data: u64,
    /// `xdp_md.data_end`, as a pointer value.
    pub pkt_end: u64,
    /// `xdp_md.data_meta`, as a pointer value: packet accesses may touch `pkt_meta..pkt_end`.
    pub pkt_meta: u64,
    /// Host address of packet value `v` is `v + pkt_bias`.
    pub pkt_bias: u64,
    pub ingress_ifindex: u64,
    pub rx_queue_index: u64,
    pub egress_ifindex: u64,
    /// Live frames: 1 while the entry function runs.
    pub depth: u64,
    /// Non-zero once a callback faulted.
    pub fault: u64,
    /// The BPF instruction index of the last callback's caller.
    pub insn: u64,
    /// r0 of a tail-called program, when [`SYM_TAIL_CALL`] returned 1.
    pub tail_result: u64,
    /// Loop back-edges the code may still take; when it would go below zero the code faults
    /// with [`FAULT_BUDGET`], so a program that does not terminate cannot hang its host.
    pub budget: u64,
    /// `map_ref` values, indexed by map (what `lddw rX, map` loads).
    pub map_handles: *const u64,
    /// Global data, indexed by map: the value of byte 0 of the map's single value, its bias,
    /// and whether the program may write it. Only entries of array maps are read.
    pub globals: *const GlobalDesc,
    /// `func_addr` values, indexed by function.
    pub func_values: *const u64,
    /// The stack frames: frame `d` (0 for the entry function) is the 512 bytes whose values
    /// start at `frames[d].value`.
    pub frames: [RegionDesc; MAX_FRAMES],
    /// The host's own data; native code never reads it.
    pub host: *mut u8,
    /// Map values reached inline ([`ValueRegionDesc`]), indexed by pointer value: a value `v`
    /// with `v >> 32 == VALUE_REGION_BASE + i` and `i < value_region_count` is offset
    /// `v & 0xffff_ffff` into the value `value_regions[i]` describes. The host may change the
    /// table (and these two fields) only inside a callback. A host whose pointer values are
    /// host addresses sets the count to 0: every map-value access then goes through
    /// `nicc_load`/`nicc_store`. Even then the pointer must address one readable entry,
    /// because native code reads entry 0 in place of an out-of-range one (a select, not a
    /// branch) before it compares.
    pub value_regions: *const ValueRegionDesc,
    pub value_region_count: u64,
    /// `bpf_map_lookup_elem` on array maps without a call, indexed by map: null, or a table
    /// of `max_entries` entries of two words. Word 0 of entry `k` is the pointer value the
    /// lookup of key `k` returns once the host has seen it (0 until then: native code then
    /// calls the helper, and the host fills the entry); word 1 is the host address of that
    /// value when the program may read and write all `value_size` bytes of it there for the
    /// rest of the run, 0 otherwise. Native code returns NULL itself for a key past
    /// `max_entries`, and accesses through the returned pointer at constant offsets within
    /// the value go straight to word 1's address (the kernel's inlined array lookup does
    /// the same); with word 1 zero they go through `value_regions`. Entries change only
    /// inside callbacks. A host that sets the pointer to null, or every table to null, gets
    /// a helper call for every lookup.
    pub lookup_cache: *const *const u64,
}

/// Array maps with at most this many entries get a lookup cache in the JIT engine.
pub const LOOKUP_CACHE_MAX_ENTRIES: u32 = 1 << 12;

/// The first region number of map values in pointer values (`sim::runtime::memory`'s
/// `REGION_MAP_VALUE`): value `i` of the table is region `VALUE_REGION_BASE + i`.
pub const VALUE_REGION_BASE: u64 = 0x1000_0000;

/// One map value that native code may reach inline: its host address and how many bytes of
/// it may be read and written (0 when the entry is not valid, or the map is read-only).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValueRegionDesc {
    pub host: u64,
    pub read_limit: u32,
    pub write_limit: u32,
}

/// The global data of one map (the single value of an array map), for `ctx->globals`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalDesc {
    pub value: u64,
    pub bias: u64,
    /// Non-zero when the program may write the value; writes to other maps go through
    /// `nicc_store`, which faults as the interpreter does.
    pub writable: u64,
    pub reserved: u64,
}

/// A region the code addresses inline: the value of its first byte and its bias.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionDesc {
    pub value: u64,
    pub bias: u64,
}

impl NativeCtx {
    /// A context with no context pointer, no packet, no tables and one live frame at `frame0`.
    pub fn new(frame0: RegionDesc) -> NativeCtx {
        let mut frames = [RegionDesc::default(); MAX_FRAMES];
        frames[0] = frame0;
        NativeCtx {
            ctx_value: u64::MAX,
            pkt_data: 0,
            pkt_end: 0,
            pkt_meta: 0,
            pkt_bias: 0,
            ingress_ifindex: 0,
            rx_queue_index: 0,
            egress_ifindex: 0,
            depth: 1,
            fault: 0,
            insn: 0,
            tail_result: 0,
            budget: u64::MAX,
            map_handles: std::ptr::null(),
            globals: std::ptr::null(),
            func_values: std::ptr::null(),
            frames,
            host: std::ptr::null_mut(),
            value_regions: &NO_VALUE_REGION,
            value_region_count: 0,
            lookup_cache: std::ptr::null(),
        }
    }
}

/// The one-entry table a context without inline map values points to.
static NO_VALUE_REGION: ValueRegionDesc = ValueRegionDesc {
    host: 0,
    read_limit: 0,
    write_limit: 0,
};

/// Byte offsets of the fields of [`NativeCtx`], which the lowering uses and the C header
/// prints; a unit test checks them against the Rust layout.
pub mod offsets {
    pub const CTX_VALUE: i32 = 0;
    pub const PKT_DATA: i32 = 8;
    pub const PKT_END: i32 = 16;
    pub const PKT_META: i32 = 24;
    pub const PKT_BIAS: i32 = 32;
    pub const INGRESS_IFINDEX: i32 = 40;
    pub const RX_QUEUE_INDEX: i32 = 48;
    pub const EGRESS_IFINDEX: i32 = 56;
    pub const DEPTH: i32 = 64;
    pub const FAULT: i32 = 72;
    pub const INSN: i32 = 80;
    pub const TAIL_RESULT: i32 = 88;
    pub const BUDGET: i32 = 96;
    pub const MAP_HANDLES: i32 = 104;
    pub const GLOBALS: i32 = 112;
    pub const FUNC_VALUES: i32 = 120;
    pub const FRAMES: i32 = 128;
    pub const HOST: i32 = FRAMES + 16 * super::MAX_FRAMES as i32;
    pub const VALUE_REGIONS: i32 = HOST + 8;
    pub const VALUE_REGION_COUNT: i32 = VALUE_REGIONS + 8;
    pub const LOOKUP_CACHE: i32 = VALUE_REGION_COUNT + 8;
    pub const SIZE: i32 = LOOKUP_CACHE + 8;
    /// Fields of one entry of `value_regions`.
    pub const VALUE_HOST: i32 = 0;
    pub const VALUE_READ_LIMIT: i32 = 8;
    pub const VALUE_WRITE_LIMIT: i32 = 12;
}

/// The fields of `struct nicc_ctx` in order, with a comment each, for the C header.
pub const CTX_FIELDS: &[(&str, &str)] = &[
    (
        "uint64_t ctx_value",
        "value of r1 for an XDP program; context loads from it are inline",
    ),
    ("uint64_t pkt_data", "xdp_md.data as a pointer value"),
    ("uint64_t pkt_end", "xdp_md.data_end as a pointer value"),
    ("uint64_t pkt_meta", "xdp_md.data_meta as a pointer value"),
    (
        "uint64_t pkt_bias",
        "host address of packet value v is v + pkt_bias",
    ),
    ("uint64_t ingress_ifindex", "xdp_md.ingress_ifindex"),
    ("uint64_t rx_queue_index", "xdp_md.rx_queue_index"),
    ("uint64_t egress_ifindex", "xdp_md.egress_ifindex"),
    (
        "uint64_t depth",
        "live frames; set to 1 before calling an entry",
    ),
    (
        "uint64_t fault",
        "set non-zero by a callback that faults; native code then returns 0",
    ),
    (
        "uint64_t insn",
        "BPF instruction index of the current callback's caller",
    ),
    (
        "uint64_t tail_result",
        "r0 of a tail-called program when nicc_tail_call returns 1",
    ),
    (
        "uint64_t budget",
        "loop back-edges left; at zero the code faults with NICC_FAULT_BUDGET",
    ),
    (
        "const uint64_t *map_handles",
        "map_ref values, indexed by NICC_MAP_* index",
    ),
    (
        "const struct nicc_global *globals",
        "global data of array maps, indexed by map",
    ),
    (
        "const uint64_t *func_values",
        "func_addr values, indexed by function",
    ),
    (
        "struct nicc_region frames[NICC_MAX_FRAMES]",
        "512-byte stack frames; frame 0 is the entry's",
    ),
    (
        "void *host",
        "the host's own data; never read by native code",
    ),
    (
        "const uint64_t *value_regions",
        "map values reached inline, two words each: host address of byte 0, then read limit | write limit << 32; at least one entry",
    ),
    (
        "uint64_t value_region_count",
        "entries of value_regions; 0 sends every map-value access through nicc_load/nicc_store",
    ),
    (
        "const uint64_t *const *lookup_cache",
        "per map, NULL or max_entries pairs {pointer value, host address} of array lookups by key (value 0: not known yet, call the helper; host 0: access through value_regions); NULL for none",
    ),
];

/// `ctx->fault` after a callback faulted (the host knows why).
pub const FAULT_CALLBACK: u64 = 1;
/// `ctx->fault` after the code ran out of loop budget (`ctx->insn` names the branch).
pub const FAULT_BUDGET: u64 = 2;

/// Callback symbol: checked load.
pub const SYM_LOAD: &str = "nicc_load";
/// Callback symbol: checked store.
pub const SYM_STORE: &str = "nicc_store";
/// Callback symbol: checked read-modify-write.
pub const SYM_ATOMIC: &str = "nicc_atomic";
/// Callback symbol: bpf-to-bpf call bookkeeping.
pub const SYM_ENTER_CALL: &str = "nicc_enter_call";
/// Callback symbol: tail call.
pub const SYM_TAIL_CALL: &str = "nicc_tail_call";
/// Callback symbol: global data address outside the inline table.
pub const SYM_MAP_VALUE_ADDR: &str = "nicc_map_value_addr";
/// Callback symbol: helper dispatcher by id (JIT linkage).
pub const SYM_HELPER: &str = "nicc_helper";
/// Callback symbol: a map lookup whose key lies in the caller's frame (JIT linkage, with
/// `LowerOptions::frame_key_lookups`): the host gets the map's index and the key's offset
/// in the frame (`ctx->frames[ctx->depth - 1]`), which native code has checked to hold the
/// whole key.
pub const SYM_MAP_LOOKUP: &str = "nicc_map_lookup";

/// The longest key [`SYM_MAP_LOOKUP`] takes (longer ones go through the helper): what the
/// host copies onto its own stack.
pub const FRAME_KEY_MAX: u32 = 64;

/// The `op` argument of [`SYM_ATOMIC`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum AtomicCode {
    Add = 0,
    Or = 1,
    And = 2,
    Xor = 3,
    Xchg = 4,
    /// Compare and exchange: stores `value` when memory equals `expected` at the access size.
    CmpXchg = 5,
}

impl AtomicCode {
    pub fn from_u64(v: u64) -> Option<AtomicCode> {
        Some(match v {
            0 => AtomicCode::Add,
            1 => AtomicCode::Or,
            2 => AtomicCode::And,
            3 => AtomicCode::Xor,
            4 => AtomicCode::Xchg,
            5 => AtomicCode::CmpXchg,
            _ => return None,
        })
    }

    pub fn of(op: ir::AtomicOp) -> AtomicCode {
        match op {
            ir::AtomicOp::Add => AtomicCode::Add,
            ir::AtomicOp::Or => AtomicCode::Or,
            ir::AtomicOp::And => AtomicCode::And,
            ir::AtomicOp::Xor => AtomicCode::Xor,
            ir::AtomicOp::Xchg => AtomicCode::Xchg,
        }
    }
}

/// The symbol of helper `id` in object linkage: `nicc_helper_<name>` with the kernel's name
/// without its `bpf_` prefix, or `nicc_helper_<id>` for an id without a known name.
pub fn helper_symbol(id: u32) -> String {
    match helper_name(id) {
        Some(n) => format!("nicc_helper_{n}"),
        None => format!("nicc_helper_{id}"),
    }
}

/// Kernel names of the helpers XDP programs commonly call, for the object symbols and the C
/// header. Other ids still work; their symbol carries the number.
pub fn helper_name(id: u32) -> Option<&'static str> {
    Some(match id {
        1 => "map_lookup_elem",
        2 => "map_update_elem",
        3 => "map_delete_elem",
        5 => "ktime_get_ns",
        6 => "trace_printk",
        7 => "get_prandom_u32",
        8 => "get_smp_processor_id",
        12 => "tail_call",
        23 => "redirect",
        25 => "perf_event_output",
        28 => "csum_diff",
        42 => "get_numa_node_id",
        44 => "xdp_adjust_head",
        51 => "redirect_map",
        54 => "xdp_adjust_meta",
        65 => "xdp_adjust_tail",
        69 => "fib_lookup",
        87 => "map_push_elem",
        88 => "map_pop_elem",
        89 => "map_peek_elem",
        121 => "xdp_output",
        125 => "ktime_get_boot_ns",
        130 => "ringbuf_output",
        131 => "ringbuf_reserve",
        132 => "ringbuf_submit",
        133 => "ringbuf_discard",
        160 => "ktime_get_coarse_ns",
        188 => "xdp_get_buff_len",
        189 => "xdp_load_bytes",
        190 => "xdp_store_bytes",
        195 => "map_lookup_percpu_elem",
        208 => "ktime_get_tai_ns",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn offsets_match_the_rust_layout() {
        assert_eq!(offset_of!(NativeCtx, ctx_value) as i32, offsets::CTX_VALUE);
        assert_eq!(offset_of!(NativeCtx, pkt_data) as i32, offsets::PKT_DATA);
        assert_eq!(offset_of!(NativeCtx, pkt_end) as i32, offsets::PKT_END);
        assert_eq!(offset_of!(NativeCtx, pkt_meta) as i32, offsets::PKT_META);
        assert_eq!(offset_of!(NativeCtx, pkt_bias) as i32, offsets::PKT_BIAS);
        assert_eq!(
            offset_of!(NativeCtx, ingress_ifindex) as i32,
            offsets::INGRESS_IFINDEX
        );
        assert_eq!(
            offset_of!(NativeCtx, rx_queue_index) as i32,
            offsets::RX_QUEUE_INDEX
        );
        assert_eq!(
            offset_of!(NativeCtx, egress_ifindex) as i32,
            offsets::EGRESS_IFINDEX
        );
        assert_eq!(offset_of!(NativeCtx, depth) as i32, offsets::DEPTH);
        assert_eq!(offset_of!(NativeCtx, fault) as i32, offsets::FAULT);
        assert_eq!(offset_of!(NativeCtx, insn) as i32, offsets::INSN);
        assert_eq!(
            offset_of!(NativeCtx, tail_result) as i32,
            offsets::TAIL_RESULT
        );
        assert_eq!(offset_of!(NativeCtx, budget) as i32, offsets::BUDGET);
        assert_eq!(std::mem::size_of::<GlobalDesc>(), 32);
        assert_eq!(
            offset_of!(NativeCtx, map_handles) as i32,
            offsets::MAP_HANDLES
        );
        assert_eq!(offset_of!(NativeCtx, globals) as i32, offsets::GLOBALS);
        assert_eq!(
            offset_of!(NativeCtx, func_values) as i32,
            offsets::FUNC_VALUES
        );
        assert_eq!(offset_of!(NativeCtx, frames) as i32, offsets::FRAMES);
        assert_eq!(offset_of!(NativeCtx, host) as i32, offsets::HOST);
        assert_eq!(
            offset_of!(NativeCtx, value_regions) as i32,
            offsets::VALUE_REGIONS
        );
        assert_eq!(
            offset_of!(NativeCtx, value_region_count) as i32,
            offsets::VALUE_REGION_COUNT
        );
        assert_eq!(
            offset_of!(NativeCtx, lookup_cache) as i32,
            offsets::LOOKUP_CACHE
        );
        assert_eq!(std::mem::size_of::<NativeCtx>() as i32, offsets::SIZE);
        assert_eq!(
            offset_of!(ValueRegionDesc, read_limit) as i32,
            offsets::VALUE_READ_LIMIT
        );
        assert_eq!(
            offset_of!(ValueRegionDesc, write_limit) as i32,
            offsets::VALUE_WRITE_LIMIT
        );
        assert_eq!(std::mem::size_of::<ValueRegionDesc>(), 16);
        assert_eq!(CTX_FIELDS.len(), 21);
    }

    #[test]
    fn atomic_codes_round_trip_and_helper_symbols_are_named() {
        for c in 0..6 {
            assert_eq!(AtomicCode::from_u64(c).map(|a| a as u64), Some(c));
        }
        assert_eq!(AtomicCode::from_u64(6), None);
        assert_eq!(helper_symbol(1), "nicc_helper_map_lookup_elem");
        assert_eq!(helper_symbol(999), "nicc_helper_999");
    }
}
