//! The BPF helper functions, by their kernel ids (`include/uapi/linux/bpf.h`), with the
//! argument checks and return values the kernel's XDP implementations have.
//!
//! A helper that a verifier would refuse for the arguments given (a lookup on a prog array, a
//! write to a read-only map) is a fault; a helper whose kernel version fails at run time
//! returns the same negative errno. Helpers this runtime does not model are a fault that names
//! the helper, so that a user knows what is missing rather than getting a wrong answer.
//!
//! # Cost
//!
//! Every engine calls helpers through [`call`], and the JIT calls them per packet, so the paths
//! XDP programs take on every packet allocate nothing: keys and values are copied from the
//! program's memory into fixed buffers on the host stack (as the kernel's helpers read them in
//! place), map and helper names are formatted only for an error message, and
//! `bpf_redirect_map` refills the previous redirect record of the same map in place. Only what
//! outlives the call allocates: a new hash key, a perf or ring buffer record, a trace line.

use super::fib::FIB_LOOKUP_SIZE;
use super::maps::Found;
use super::memory::{
    make_addr, split_addr, Access, Region, REGION_CTX, REGION_MAP, REGION_RINGBUF,
};
use super::printk;
use super::{
    ExecState, Fault, PendingRecord, PerfRecord, Redirect, RingbufRecord, Runtime, E2BIG, EAGAIN,
    EFAULT, EINVAL, ENOENT,
};
use frontend::object::MapType;

/// What a helper call did to control flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperOutcome {
    /// Continue with `r0` set to this value.
    Return(u64),
    /// `bpf_tail_call` succeeded: run this program (an index into `Object::programs`) instead.
    TailCall(usize),
    /// `bpf_tail_call` failed: continue with the next instruction, `r0` unchanged.
    TailCallFailed,
}

/// Tail calls allowed per run (`MAX_TAIL_CALL_CNT`).
pub const MAX_TAIL_CALL_CNT: u32 = 33;

const XDP_ABORTED: u64 = 0;
const XDP_REDIRECT: u64 = 4;
const BPF_F_BROADCAST: u64 = 1 << 3;
const BPF_F_EXCLUDE_INGRESS: u64 = 1 << 4;
const BPF_F_INDEX_MASK: u64 = 0xffff_ffff;
const BPF_F_CURRENT_CPU: u64 = 0xffff_ffff;
const BPF_F_CTXLEN_MASK: u64 = 0xf_ffff << 32;
const BPF_RINGBUF_HDR_SZ: u64 = 8;

/// Helper names by id, from the kernel's `___BPF_FUNC_MAPPER` order.
const NAMES: &[&str] = &[
    "unspec",
    "map_lookup_elem",
    "map_update_elem",
    "map_delete_elem",
    "probe_read",
    "ktime_get_ns",
    "trace_printk",
    "get_prandom_u32",
    "get_smp_processor_id",
    "skb_store_bytes",
    "l3_csum_replace",
    "l4_csum_replace",
    "tail_call",
    "clone_redirect",
    "get_current_pid_tgid",
    "get_current_uid_gid",
    "get_current_comm",
    "get_cgroup_classid",
    "skb_vlan_push",
    "skb_vlan_pop",
    "skb_get_tunnel_key",
    "skb_set_tunnel_key",
    "perf_event_read",
    "redirect",
    "get_route_realm",
    "perf_event_output",
    "skb_load_bytes",
    "get_stackid",
    "csum_diff",
    "skb_get_tunnel_opt",
    "skb_set_tunnel_opt",
    "skb_change_proto",
    "skb_change_type",
    "skb_under_cgroup",
    "get_hash_recalc",
    "get_current_task",
    "probe_write_user",
    "current_task_under_cgroup",
    "skb_change_tail",
    "skb_pull_data",
    "csum_update",
    "set_hash_invalid",
    "get_numa_node_id",
    "skb_change_head",
    "xdp_adjust_head",
    "probe_read_str",
    "get_socket_cookie",
    "get_socket_uid",
    "set_hash",
    "setsockopt",
    "skb_adjust_room",
    "redirect_map",
    "sk_redirect_map",
    "sock_map_update",
    "xdp_adjust_meta",
    "perf_event_read_value",
    "perf_prog_read_value",
    "getsockopt",
    "override_return",
    "sock_ops_cb_flags_set",
    "msg_redirect_map",
    "msg_apply_bytes",
    "msg_cork_bytes",
    "msg_pull_data",
    "bind",
    "xdp_adjust_tail",
    "skb_get_xfrm_state",
    "get_stack",
    "skb_load_bytes_relative",
    "fib_lookup",
    "sock_hash_update",
    "msg_redirect_hash",
    "sk_redirect_hash",
    "lwt_push_encap",
    "lwt_seg6_store_bytes",
    "lwt_seg6_adjust_srh",
    "lwt_seg6_action",
    "rc_repeat",
    "rc_keydown",
    "skb_cgroup_id",
    "get_current_cgroup_id",
    "get_local_storage",
    "sk_select_reuseport",
    "skb_ancestor_cgroup_id",
    "sk_lookup_tcp",
    "sk_lookup_udp",
    "sk_release",
    "map_push_elem",
    "map_pop_elem",
    "map_peek_elem",
    "msg_push_data",
    "msg_pop_data",
    "rc_pointer_rel",
    "spin_lock",
    "spin_unlock",
    "sk_fullsock",
    "tcp_sock",
    "skb_ecn_set_ce",
    "get_listener_sock",
    "skc_lookup_tcp",
    "tcp_check_syncookie",
    "sysctl_get_name",
    "sysctl_get_current_value",
    "sysctl_get_new_value",
    "sysctl_set_new_value",
    "strtol",
    "strtoul",
    "sk_storage_get",
    "sk_storage_delete",
    "send_signal",
    "tcp_gen_syncookie",
    "skb_output",
    "probe_read_user",
    "probe_read_kernel",
    "probe_read_user_str",
    "probe_read_kernel_str",
    "tcp_send_ack",
    "send_signal_thread",
    "jiffies64",
    "read_branch_records",
    "get_ns_current_pid_tgid",
    "xdp_output",
    "get_netns_cookie",
    "get_current_ancestor_cgroup_id",
    "sk_assign",
    "ktime_get_boot_ns",
    "seq_printf",
    "seq_write",
    "sk_cgroup_id",
    "sk_ancestor_cgroup_id",
    "ringbuf_output",
    "ringbuf_reserve",
    "ringbuf_submit",
    "ringbuf_discard",
    "ringbuf_query",
    "csum_level",
    "skc_to_tcp6_sock",
    "skc_to_tcp_sock",
    "skc_to_tcp_timewait_sock",
    "skc_to_tcp_request_sock",
    "skc_to_udp6_sock",
    "get_task_stack",
    "load_hdr_opt",
    "store_hdr_opt",
    "reserve_hdr_opt",
    "inode_storage_get",
    "inode_storage_delete",
    "d_path",
    "copy_from_user",
    "snprintf_btf",
    "seq_printf_btf",
    "skb_cgroup_classid",
    "redirect_neigh",
    "per_cpu_ptr",
    "this_cpu_ptr",
    "redirect_peer",
    "task_storage_get",
    "task_storage_delete",
    "get_current_task_btf",
    "bprm_opts_set",
    "ktime_get_coarse_ns",
    "ima_inode_hash",
    "sock_from_file",
    "check_mtu",
    "for_each_map_elem",
    "snprintf",
    "sys_bpf",
    "btf_find_by_name_kind",
    "sys_close",
    "timer_init",
    "timer_set_callback",
    "timer_start",
    "timer_cancel",
    "get_func_ip",
    "get_attach_cookie",
    "task_pt_regs",
    "get_branch_snapshot",
    "trace_vprintk",
    "skc_to_unix_sock",
    "kallsyms_lookup_name",
    "find_vma",
    "loop",
    "strncmp",
    "get_func_arg",
    "get_func_ret",
    "get_func_arg_cnt",
    "get_retval",
    "set_retval",
    "xdp_get_buff_len",
    "xdp_load_bytes",
    "xdp_store_bytes",
    "copy_from_user_task",
    "skb_set_tstamp",
    "ima_file_hash",
    "kptr_xchg",
    "map_lookup_percpu_elem",
    "skc_to_mptcp_sock",
    "dynptr_from_mem",
    "ringbuf_reserve_dynptr",
    "ringbuf_submit_dynptr",
    "ringbuf_discard_dynptr",
    "dynptr_read",
    "dynptr_write",
    "dynptr_data",
    "tcp_raw_gen_syncookie_ipv4",
    "tcp_raw_gen_syncookie_ipv6",
    "tcp_raw_check_syncookie_ipv4",
    "tcp_raw_check_syncookie_ipv6",
    "ktime_get_tai_ns",
    "user_ringbuf_drain",
    "cgrp_storage_get",
    "cgrp_storage_delete",
];

/// The helper's name with its `bpf_` prefix, e.g. `bpf_map_lookup_elem`.
pub fn helper_name(id: i32) -> String {
    match usize::try_from(id).ok().and_then(|i| NAMES.get(i)) {
        Some(n) if id > 0 => format!("bpf_{n}"),
        _ => format!("unknown helper {id}"),
    }
}

fn neg(e: i64) -> HelperOutcome {
    HelperOutcome::Return((-e) as u64)
}

fn ret(v: u64) -> HelperOutcome {
    HelperOutcome::Return(v)
}

/// Checks that `ptr` is the XDP context; `id` names the helper in the fault.
fn check_ctx(st: &ExecState, ptr: u64, id: i32) -> Result<(), Fault> {
    if ptr != make_addr(REGION_CTX, 0) {
        return Err(Fault::new(format!(
            "{} needs the program's context pointer as its first argument, got {ptr:#x}",
            helper_name(id)
        )));
    }
    if st.xdp.is_none() {
        return Err(Fault::new(format!(
            "{} needs an XDP context",
            helper_name(id)
        )));
    }
    Ok(())
}

/// Reads `len` bytes of program memory at `addr` (checked as every access is) and runs `f`
/// on them. Up to `N` bytes are copied into a buffer on the host stack, so the common case
/// allocates nothing; longer ones are read into a vector. Zero bytes are not checked, as
/// [`Runtime::read_bytes`] does not check them.
fn with_bytes<const N: usize, R>(
    rt: &mut Runtime,
    st: &mut ExecState,
    addr: u64,
    len: usize,
    f: impl FnOnce(&mut Runtime, &mut ExecState, &[u8]) -> R,
) -> Result<R, Fault> {
    if len > N {
        let v = rt.read_bytes(st, addr, len)?;
        return Ok(f(rt, st, &v));
    }
    let mut buf = [0u8; N];
    if len > 0 {
        match live_bytes(st, addr, len) {
            Some(b) => buf[..len].copy_from_slice(b),
            None => rt.access(st, addr, len, Access::Read, |b| {
                buf[..len].copy_from_slice(b)
            })?,
        }
    }
    Ok(f(rt, st, &buf[..len]))
}

/// The `len` bytes at `addr` when they lie wholly inside a live stack frame or the packet
/// (`data_meta..data_end`), where keys and values almost always are; `None` for anything
/// else, which [`Runtime::access`] then checks and reports as it does for every engine. The
/// conditions are exactly those under which `access` succeeds for these two regions, so the
/// shortcut changes how fast, never what.
#[inline]
fn live_bytes(st: &ExecState, addr: u64, len: usize) -> Option<&[u8]> {
    let (rid, off) = split_addr(addr);
    let start = off as usize;
    let end = start.checked_add(len)?;
    match Region::of(rid) {
        Region::Stack(d) if d < st.depth => st.stacks.get(d)?.get(start..end),
        Region::Packet => {
            let x = st.xdp.as_ref()?;
            (start >= x.data_meta && end <= x.data_end)
                .then(|| x.buf.get(start..end))
                .flatten()
        }
        _ => None,
    }
}

/// Bytes of a key read onto the host stack (longer keys are read into a vector).
const KEY_BUF: usize = 64;
/// Bytes of a value read onto the host stack (a value on the BPF stack is at most 512).
const VALUE_BUF: usize = 512;

/// Whether `update_elem` and `delete_elem` work on maps of type `t`: the maps that hold data
/// under keys, as opposed to program, device, socket and ring-buffer maps.
fn holds_plain_data(t: MapType) -> bool {
    matches!(
        t,
        MapType::Array
            | MapType::PercpuArray
            | MapType::Hash
            | MapType::PercpuHash
            | MapType::LruHash
            | MapType::LruPercpuHash
            | MapType::LpmTrie
    )
}

fn wrong_map(helper: &str, t: MapType, name: &str) -> Fault {
    Fault::new(format!(
        "{helper} cannot be used on map `{name}` of type {t:?} (the verifier rejects it)"
    ))
}

/// Calls helper `id` with arguments `r1..r5`.
#[inline]
pub fn call(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    // Every helper is a function of its own, so that this dispatch is a jump and each
    // helper's code (and its stack frame) is only what that helper needs. Names are formatted
    // only for error messages: formatting one on every call cost more than most helpers.
    match id {
        // bpf_map_lookup_elem, bpf_map_lookup_percpu_elem
        1 | 195 => map_lookup_elem(rt, st, id, a),
        // bpf_map_update_elem
        2 => map_update_elem(rt, st, id, a),
        // bpf_map_delete_elem
        3 => map_delete_elem(rt, st, id, a),
        // bpf_map_push_elem, bpf_map_pop_elem, bpf_map_peek_elem
        87..=89 => queue_elem(rt, st, id, a),
        // Clocks: ktime_get_ns, ktime_get_boot_ns, ktime_get_coarse_ns, ktime_get_tai_ns.
        5 | 125 | 160 | 208 => Ok(ret(rt.clock_read())),
        // bpf_trace_printk
        6 => trace_printk(rt, st, id, a),
        // bpf_get_prandom_u32
        7 => Ok(ret(rt.next_random() as u64)),
        // bpf_get_smp_processor_id
        8 => Ok(ret(rt.config.cpu as u64)),
        // bpf_tail_call
        12 => tail_call(rt, st, id, a),
        // bpf_get_numa_node_id
        42 => Ok(ret(0)),
        // bpf_redirect
        23 => redirect(rt, st, id, a),
        // bpf_redirect_map
        51 => redirect_map(rt, st, id, a),
        // bpf_perf_event_output, bpf_xdp_output
        25 | 121 => perf_event_output(rt, st, id, a),
        // bpf_csum_diff
        28 => csum_diff_helper(rt, st, id, a),
        // bpf_xdp_adjust_head, bpf_xdp_adjust_meta, bpf_xdp_adjust_tail
        44 | 54 | 65 => xdp_adjust(rt, st, id, a),
        // bpf_fib_lookup
        69 => fib_lookup(rt, st, id, a),
        // bpf_ringbuf_output
        130 => ringbuf_output(rt, st, id, a),
        // bpf_ringbuf_reserve
        131 => ringbuf_reserve(rt, st, id, a),
        // bpf_ringbuf_submit, bpf_ringbuf_discard
        132 | 133 => ringbuf_commit(rt, st, id, a),
        // bpf_xdp_get_buff_len
        188 => xdp_get_buff_len(rt, st, id, a),
        // bpf_xdp_load_bytes, bpf_xdp_store_bytes
        189 | 190 => xdp_load_store_bytes(rt, st, id, a),
        _ => Err(Fault::new(format!(
            "helper {} (id {id}) is not implemented by the interpreter",
            helper_name(id)
        ))),
    }
}

/// bpf_map_lookup_elem, bpf_map_lookup_percpu_elem
#[inline(never)]
fn map_lookup_elem(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let m = rt.map_of_pointer(a[0])?;
    check_lookup_map(rt, m, id)?;
    let key_size = rt.maps()[m].def.key_size as usize;
    with_bytes::<KEY_BUF, _>(rt, st, a[1], key_size, |rt, _, key| {
        let lookup_cpu = if id == 195 {
            a[2]
        } else {
            rt.config.cpu as u64
        };
        ret(lookup_key(rt, m, key, lookup_cpu))
    })
}

/// Refuses a lookup (helper `id`, 1 or 195) in map `m` where the kernel's verifier refuses
/// it: maps without lookable values, and a per-CPU lookup in a map that is not per-CPU.
#[inline(always)]
fn check_lookup_map(rt: &Runtime, m: usize, id: i32) -> Result<(), Fault> {
    let t = rt.maps()[m].map_type();
    if matches!(
        t,
        MapType::ProgArray
            | MapType::PerfEventArray
            | MapType::Ringbuf
            | MapType::Queue
            | MapType::Stack
            | MapType::Cpumap
    ) || (id == 195 && !t.is_per_cpu())
    {
        return Err(wrong_lookup_map(rt, m, id));
    }
    Ok(())
}

/// The fault of [`check_lookup_map`], formatted out of the way of the lookups that pass.
#[cold]
#[inline(never)]
fn wrong_lookup_map(rt: &Runtime, m: usize, id: i32) -> Fault {
    let map = &rt.maps()[m];
    wrong_map(&helper_name(id), map.map_type(), &map.def.name)
}

/// The pointer value a lookup of `key` in map `m` for CPU `lookup_cpu` returns (0: none).
#[inline]
fn lookup_key(rt: &mut Runtime, m: usize, key: &[u8], lookup_cpu: u64) -> u64 {
    if lookup_cpu >= rt.config.cpus as u64 {
        return 0;
    }
    let Some(map) = rt.map_mut(m) else {
        return 0;
    };
    match map.lookup(key) {
        None => 0,
        Some(Found::Value(slot)) => rt.value_pointer(m, slot, lookup_cpu as u32),
        Some(Found::Map(inner)) if (inner as usize) < rt.maps().len() => {
            make_addr(REGION_MAP + inner, 0)
        }
        Some(Found::Map(_)) => 0,
    }
}

/// `bpf_map_lookup_elem` on runtime map `m` with its key already read: exactly what the
/// helper does once it has found the map and read the key, for an engine that did both
/// itself (the JIT, which passes a key it found inside its own stack frame and a map it
/// resolved when it set up the run). A map the key does not fit is refused as the kernel's
/// verifier refuses it.
pub fn map_lookup_with_key(rt: &mut Runtime, m: usize, key: &[u8]) -> Result<u64, Fault> {
    if m >= rt.maps().len() || key.len() != rt.maps()[m].def.key_size as usize {
        return Err(lookup_key_mismatch(rt, m, key.len()));
    }
    check_lookup_map(rt, m, 1)?;
    let cpu = rt.config.cpu as u64;
    Ok(lookup_key(rt, m, key, cpu))
}

/// The fault of [`map_lookup_with_key`] given a map the runtime does not have, or a key of
/// another size than the map's.
#[cold]
#[inline(never)]
fn lookup_key_mismatch(rt: &Runtime, m: usize, key_len: usize) -> Fault {
    match rt.maps().get(m) {
        None => Fault::new(format!(
            "bpf_map_lookup_elem on map {m}, which the runtime does not have"
        )),
        Some(map) => Fault::new(format!(
            "bpf_map_lookup_elem with a {key_len}-byte key on map `{}`, whose keys are {} bytes",
            map.def.name, map.def.key_size
        )),
    }
}

/// bpf_map_update_elem
#[inline(never)]
fn map_update_elem(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let name = std::cell::LazyCell::new(|| helper_name(id));
    let cpu = rt.config.cpu;
    let m = rt.map_of_pointer(a[0])?;
    let (t, ks, vs, ro) = {
        let d = &rt.maps()[m];
        (
            d.map_type(),
            d.def.key_size as usize,
            d.def.value_size as usize,
            d.read_only(),
        )
    };
    let mname = || rt.maps()[m].def.name.clone();
    if !holds_plain_data(t) {
        return Err(wrong_map(&name, t, &mname()));
    }
    if ro {
        return Err(Fault::new(format!(
            "{} on read-only map `{}` (the verifier rejects writes to it)",
            &*name,
            mname()
        )));
    }
    let rc = with_bytes::<KEY_BUF, _>(rt, st, a[1], ks, |rt, st, key| {
        with_bytes::<VALUE_BUF, _>(rt, st, a[2], vs, |rt, _, value| {
            rt.map_mut(m)
                .map(|map| map.update(key, value, a[3], cpu))
                .unwrap_or(-EINVAL)
        })
    })??;
    Ok(ret(rc as u64))
}

/// bpf_map_delete_elem
#[inline(never)]
fn map_delete_elem(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let name = std::cell::LazyCell::new(|| helper_name(id));
    let m = rt.map_of_pointer(a[0])?;
    let d = &rt.maps()[m];
    let (t, ks, ro) = (d.map_type(), d.def.key_size as usize, d.read_only());
    if !holds_plain_data(t) || ro {
        return Err(wrong_map(&name, t, &rt.maps()[m].def.name));
    }
    let rc = with_bytes::<KEY_BUF, _>(rt, st, a[1], ks, |rt, _, key| {
        rt.map_mut(m).map(|map| map.delete(key)).unwrap_or(-EINVAL)
    })?;
    Ok(ret(rc as u64))
}

/// bpf_map_push_elem, bpf_map_pop_elem, bpf_map_peek_elem
#[cold]
#[inline(never)]
fn queue_elem(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let name = std::cell::LazyCell::new(|| helper_name(id));
    let m = rt.map_of_pointer(a[0])?;
    let d = &rt.maps()[m];
    let (t, vs, mname) = (d.map_type(), d.def.value_size as usize, d.def.name.clone());
    if !matches!(t, MapType::Queue | MapType::Stack) {
        return Err(wrong_map(&name, t, &mname));
    }
    if id == 87 {
        let value = rt.read_bytes(st, a[1], vs)?;
        let rc = rt
            .map_mut(m)
            .map(|map| map.push(&value, a[2]))
            .unwrap_or(-EINVAL);
        return Ok(ret(rc as u64));
    }
    // Check the destination before taking the element, so a fault leaves the map as is.
    rt.access(st, a[1], vs, super::memory::Access::Write, |_| ())?;
    match rt.map_mut(m).map(|map| map.pop(id == 88)) {
        Some(Ok(v)) => {
            rt.write_bytes(st, a[1], &v)?;
            Ok(ret(0))
        }
        Some(Err(e)) => Ok(ret(e as u64)),
        None => Ok(neg(EINVAL)),
    }
}

/// bpf_trace_printk
#[cold]
#[inline(never)]
fn trace_printk(
    rt: &mut Runtime,
    st: &mut ExecState,
    _id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let size = a[1] as u32 as usize;
    if size == 0 {
        return Ok(neg(EINVAL));
    }
    let fmt = rt.read_bytes(st, a[0], size)?;
    if fmt.last() != Some(&0) {
        return Ok(neg(EINVAL));
    }
    let mut view = Reader { rt, st };
    match printk::format(&fmt, &a[2..5], &mut view) {
        Ok(line) => {
            let n = line.len().min(1023);
            rt.outputs_mut().trace.push(line);
            Ok(ret(n as u64))
        }
        Err(printk::Refused) => Ok(neg(EINVAL)),
    }
}

/// bpf_tail_call
#[cold]
#[inline(never)]
fn tail_call(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let name = std::cell::LazyCell::new(|| helper_name(id));
    let m = rt.map_of_pointer(a[1])?;
    let map = &rt.maps()[m];
    if map.map_type() != MapType::ProgArray {
        return Err(wrong_map(&name, map.map_type(), &map.def.name));
    }
    let index = a[2] as u32;
    if index >= map.def.max_entries {
        return Ok(HelperOutcome::TailCallFailed);
    }
    if st.tail_calls >= MAX_TAIL_CALL_CNT {
        return Ok(HelperOutcome::TailCallFailed);
    }
    st.tail_calls += 1;
    Ok(match map.array_u32(index) {
        Some(p) => HelperOutcome::TailCall(p as usize),
        None => HelperOutcome::TailCallFailed,
    })
}

/// bpf_redirect
#[inline(never)]
fn redirect(
    _rt: &mut Runtime,
    st: &mut ExecState,
    _id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    if a[1] != 0 {
        return Ok(ret(XDP_ABORTED));
    }
    st.redirect = Some(Redirect::Ifindex(a[0] as u32));
    Ok(ret(XDP_REDIRECT))
}

/// bpf_redirect_map
#[inline(never)]
fn redirect_map(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let name = std::cell::LazyCell::new(|| helper_name(id));
    let m = rt.map_of_pointer(a[0])?;
    let map = &rt.maps()[m];
    let t = map.map_type();
    let flag_mask = match t {
        MapType::Devmap | MapType::DevmapHash => BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS,
        MapType::Cpumap | MapType::Xskmap => 0,
        _ => return Err(wrong_map(&name, t, &map.def.name)),
    };
    let action_mask = 3u64;
    let flags = a[2];
    if flags & !(action_mask | flag_mask) != 0 {
        return Ok(ret(XDP_ABORTED));
    }
    let key = a[1] as u32;
    let broadcast = flags & BPF_F_BROADCAST != 0;
    let map = &rt.maps()[m];
    let found = map.peek_value(&key.to_le_bytes());
    if found.is_none() && !broadcast {
        st.redirect = None;
        return Ok(ret(flags & action_mask));
    }
    let found = if broadcast { None } else { found };
    match &mut st.redirect {
        // The record of the previous redirect through this map is refilled in place,
        // so a program that redirects every packet allocates nothing. The index names the
        // map within this runtime, so the recorded name is already this map's.
        Some(Redirect::Map {
            map: _,
            map_index,
            key: k,
            flags: f,
            value,
        }) if *map_index == m => {
            *k = key;
            *f = flags;
            match (found, value) {
                (Some(v), Some(old)) => {
                    old.clear();
                    old.extend_from_slice(v);
                }
                (found, value) => *value = found.map(<[u8]>::to_vec),
            }
        }
        slot => {
            *slot = Some(Redirect::Map {
                map: map.def.name.clone(),
                map_index: m,
                key,
                flags,
                value: found.map(<[u8]>::to_vec),
            })
        }
    }
    Ok(ret(XDP_REDIRECT))
}

/// bpf_perf_event_output, bpf_xdp_output
#[cold]
#[inline(never)]
fn perf_event_output(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let name = std::cell::LazyCell::new(|| helper_name(id));
    let cpu = rt.config.cpu;
    check_ctx(st, a[0], id)?;
    let m = rt.map_of_pointer(a[1])?;
    let map = &rt.maps()[m];
    if map.map_type() != MapType::PerfEventArray {
        return Err(wrong_map(&name, map.map_type(), &map.def.name));
    }
    let max = map.def.max_entries as u64;
    let flags = a[2];
    if flags & !(BPF_F_CTXLEN_MASK | BPF_F_INDEX_MASK) != 0 {
        return Ok(neg(EINVAL));
    }
    let ctx_len = ((flags & BPF_F_CTXLEN_MASK) >> 32) as usize;
    let pkt_len = st.xdp.as_ref().map_or(0, |x| x.packet().len());
    if ctx_len > pkt_len {
        return Ok(neg(EFAULT));
    }
    let mut index = flags & BPF_F_INDEX_MASK;
    if index == BPF_F_CURRENT_CPU {
        index = cpu as u64;
    }
    if index >= max {
        return Ok(neg(E2BIG));
    }
    let mut data = rt.read_bytes(st, a[3], a[4] as u32 as usize)?;
    if let Some(x) = st.xdp.as_ref() {
        data.extend_from_slice(&x.packet()[..ctx_len]);
    }
    let mname = rt.maps()[m].def.name.clone();
    rt.outputs_mut().perf.push(PerfRecord {
        map: mname,
        cpu: index as u32,
        data,
    });
    Ok(if rt.config.perf_event_readers {
        ret(0)
    } else {
        neg(ENOENT)
    })
}

/// bpf_csum_diff
#[inline(never)]
fn csum_diff_helper(
    rt: &mut Runtime,
    st: &mut ExecState,
    _id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let (from_size, to_size) = (a[1] as u32 as usize, a[3] as u32 as usize);
    if (from_size | to_size) & 3 != 0 || from_size + to_size > 512 {
        return Ok(neg(EINVAL));
    }
    // Both buffers together are at most 512 bytes, so both fit on the host stack.
    let sum = with_bytes::<512, _>(rt, st, a[0], from_size, |rt, st, from| {
        with_bytes::<512, _>(rt, st, a[2], to_size, |_, _, to| {
            csum_diff(from, to, a[4] as u32)
        })
    })??;
    Ok(ret(sum as u64))
}

/// bpf_xdp_adjust_head, bpf_xdp_adjust_meta, bpf_xdp_adjust_tail
#[inline(never)]
fn xdp_adjust(
    _rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    check_ctx(st, a[0], id)?;
    let Some(x) = st.xdp.as_mut() else {
        return Ok(neg(EINVAL));
    };
    let off = a[1] as u32 as i32;
    let rc = match id {
        44 => x.adjust_head(off),
        54 => x.adjust_meta(off),
        _ => x.adjust_tail(off),
    };
    Ok(ret(rc as u64))
}

/// bpf_fib_lookup
#[cold]
#[inline(never)]
fn fib_lookup(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    check_ctx(st, a[0], id)?;
    let plen = a[2] as u32 as usize;
    if plen < FIB_LOOKUP_SIZE {
        return Ok(neg(EINVAL));
    }
    let mut params = [0u8; FIB_LOOKUP_SIZE];
    rt.access(st, a[1], FIB_LOOKUP_SIZE, Access::Read, |b| {
        params.copy_from_slice(b)
    })?;
    let rc = rt.config.fib.lookup(&mut params, a[3] as u32 as u64);
    rt.write_bytes(st, a[1], &params)?;
    Ok(ret(rc as u64))
}

/// bpf_ringbuf_output
#[cold]
#[inline(never)]
fn ringbuf_output(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let name = std::cell::LazyCell::new(|| helper_name(id));
    let m = ringbuf_map(rt, a[0], &name)?;
    if a[3] & !3 != 0 {
        return Ok(neg(EINVAL));
    }
    let data = rt.read_bytes(st, a[1], a[2] as u32 as usize)?;
    if !ringbuf_take(rt, m, data.len() as u64) {
        return Ok(neg(EAGAIN));
    }
    let mname = rt.maps()[m].def.name.clone();
    rt.outputs_mut()
        .ringbuf
        .push(RingbufRecord { map: mname, data });
    Ok(ret(0))
}

/// bpf_ringbuf_reserve
#[cold]
#[inline(never)]
fn ringbuf_reserve(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let name = std::cell::LazyCell::new(|| helper_name(id));
    let m = ringbuf_map(rt, a[0], &name)?;
    let size = a[1];
    if a[2] != 0 || size > u32::MAX as u64 || !ringbuf_take(rt, m, size) {
        return Ok(ret(0));
    }
    st.ringbuf.push(PendingRecord {
        map: m,
        data: vec![0u8; size as usize],
        open: true,
    });
    Ok(ret(make_addr(
        REGION_RINGBUF + st.ringbuf.len() as u32 - 1,
        0,
    )))
}

/// bpf_ringbuf_submit, bpf_ringbuf_discard
#[cold]
#[inline(never)]
fn ringbuf_commit(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    let name = std::cell::LazyCell::new(|| helper_name(id));
    let (rid, off) = split_addr(a[0]);
    let rec = match Region::of(rid) {
        Region::Ringbuf(n) if off == 0 => st.ringbuf.get_mut(n).filter(|r| r.open),
        _ => None,
    };
    let Some(rec) = rec else {
        return Err(Fault::new(format!(
            "{} needs a pointer returned by bpf_ringbuf_reserve that was not yet submitted or discarded, got {:#x}", &*name,
            a[0]
        )));
    };
    rec.open = false;
    if id == 132 {
        let data = std::mem::take(&mut rec.data);
        let map = rec.map;
        let mname = rt.maps()[map].def.name.clone();
        rt.outputs_mut()
            .ringbuf
            .push(RingbufRecord { map: mname, data });
    }
    Ok(ret(0))
}

/// bpf_xdp_get_buff_len
#[inline(never)]
fn xdp_get_buff_len(
    _rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    check_ctx(st, a[0], id)?;
    Ok(ret(st.xdp.as_ref().map_or(0, |x| x.packet().len()) as u64))
}

/// bpf_xdp_load_bytes, bpf_xdp_store_bytes
#[cold]
#[inline(never)]
fn xdp_load_store_bytes(
    rt: &mut Runtime,
    st: &mut ExecState,
    id: i32,
    a: [u64; 5],
) -> Result<HelperOutcome, Fault> {
    check_ctx(st, a[0], id)?;
    let (off, len) = (a[1] as u32 as usize, a[3] as u32 as usize);
    let Some(x) = st.xdp.as_ref() else {
        return Ok(neg(EINVAL));
    };
    let (data, n) = (x.data, x.packet().len());
    if off.checked_add(len).is_none_or(|e| e > n) {
        return Ok(neg(EINVAL));
    }
    if id == 189 {
        let bytes = x.buf[data + off..data + off + len].to_vec();
        rt.write_bytes(st, a[2], &bytes)?;
    } else {
        let bytes = rt.read_bytes(st, a[2], len)?;
        if let Some(x) = st.xdp.as_mut() {
            x.buf[data + off..data + off + len].copy_from_slice(&bytes);
        }
    }
    Ok(ret(0))
}

fn ringbuf_map(rt: &Runtime, ptr: u64, helper: &str) -> Result<usize, Fault> {
    let m = rt.map_of_pointer(ptr)?;
    let map = &rt.maps()[m];
    if map.map_type() != MapType::Ringbuf {
        return Err(wrong_map(helper, map.map_type(), &map.def.name));
    }
    Ok(m)
}

/// Takes space for a record of `size` bytes (header included, rounded to 8) if it fits.
fn ringbuf_take(rt: &mut Runtime, m: usize, size: u64) -> bool {
    let Some(map) = rt.map_mut(m) else {
        return false;
    };
    let need = (size + BPF_RINGBUF_HDR_SZ).div_ceil(8) * 8;
    let cap = map.def.max_entries as u64;
    if map.ringbuf_used + need > cap {
        return false;
    }
    map.ringbuf_used += need;
    true
}

/// The one's-complement sum of `bytes` read as little-endian 16-bit words (what x86's
/// `csum_partial` computes, up to the 32-bit representation), added to `seed`.
fn csum_partial(bytes: &[u8], seed: u32) -> u32 {
    let mut sum = seed as u64;
    for w in bytes.chunks(2) {
        sum += u16::from_le_bytes([w[0], *w.get(1).unwrap_or(&0)]) as u64;
    }
    while sum >> 32 != 0 {
        sum = (sum & 0xffff_ffff) + (sum >> 32);
    }
    sum as u32
}

fn csum_add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(carry as u32)
}

fn fold16(sum: u32) -> u32 {
    let s = (sum & 0xffff) + (sum >> 16);
    (s & 0xffff) + (s >> 16)
}

/// `bpf_csum_diff` as kernel 6.18 computes it: the checksum of `to` minus that of `from`,
/// seeded, folded to 16 bits (checked against the running kernel).
pub fn csum_diff(from: &[u8], to: &[u8], seed: u32) -> u32 {
    match (from.is_empty(), to.is_empty()) {
        (false, false) => fold16(csum_add(csum_partial(to, seed), !csum_partial(from, 0))),
        (true, false) => fold16(csum_partial(to, seed)),
        (false, true) => fold16(!csum_partial(from, !seed)),
        (true, true) => seed,
    }
}

/// Lets the trace formatter read memory through the runtime's checks.
struct Reader<'a> {
    rt: &'a mut Runtime,
    st: &'a mut ExecState,
}

impl printk::Deref for Reader<'_> {
    fn read(&mut self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.rt.read_bytes(self.st, addr, len).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values measured with `BPF_PROG_TEST_RUN` on the 6.18 kernel.
    #[test]
    fn csum_diff_matches_the_kernel() {
        let w = 0xdead_beef_dead_beefu64.to_le_bytes();
        assert_eq!(csum_diff(&[], &w, 0), 0x3b3b);
        assert_eq!(csum_diff(&w, &[], 0), 0xc4c4);
        let a = 0x1234_5678_1234_5678u64.to_le_bytes();
        let b = 0x1111_1111_2222_2222u64.to_le_bytes();
        assert_eq!(csum_diff(&a, &b, 0), 0x950d);
        assert_eq!(csum_diff(&[], &[0xff; 8], 0), 0xffff);
        assert_eq!(
            csum_diff(&[], &0x1_0000_0002u64.to_le_bytes(), 0x1234),
            0x1237
        );
        assert_eq!(csum_diff(&[2, 0, 0, 0], &[1, 0, 0, 0], 7), 6);
        assert_eq!(csum_diff(&[], &[], 99), 99);
    }

    #[test]
    fn names() {
        assert_eq!(helper_name(1), "bpf_map_lookup_elem");
        assert_eq!(helper_name(26), "bpf_skb_load_bytes");
        assert_eq!(helper_name(69), "bpf_fib_lookup");
        assert_eq!(helper_name(130), "bpf_ringbuf_output");
        assert_eq!(helper_name(195), "bpf_map_lookup_percpu_elem");
        assert_eq!(helper_name(211), "bpf_cgrp_storage_delete");
    }
}
