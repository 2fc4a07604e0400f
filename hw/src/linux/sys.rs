//! The raw `bpf()` system call, the `union bpf_attr` variants nicc uses, and the few other
//! system calls the oracle needs (CPU affinity), wrapped in safe functions.
//!
//! This is the only module of the kernel oracle with `unsafe` code. Every wrapper checks the
//! lengths of the buffers it hands to the kernel against what the kernel will read or write, so
//! that no caller can make the kernel touch memory outside a Rust buffer. The attribute structs
//! follow `include/uapi/linux/bpf.h`; each one lists its fields in order with explicit padding
//! fields, so that no byte the kernel reads is uninitialised, and a unit test checks the sizes
//! and offsets against the header's layout. The kernel accepts any attribute size up to its own
//! and treats the missing tail as zeroes, so each struct stops at the last field nicc uses.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `enum bpf_cmd` values.
const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
const BPF_PROG_LOAD: u32 = 5;
const BPF_OBJ_PIN: u32 = 6;
const BPF_OBJ_GET: u32 = 7;
const BPF_PROG_TEST_RUN: u32 = 10;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_MAP_GET_FD_BY_ID: u32 = 14;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_MAP_FREEZE: u32 = 22;

/// The length of the kernel's object names (`BPF_OBJ_NAME_LEN`), including the final NUL.
pub const OBJ_NAME_LEN: usize = 16;

/// The map types whose lookups copy one value per possible CPU.
const PERCPU_TYPES: [u32; 4] = [5, 6, 10, 21];
/// The map types whose values are descriptors (or ids) of other kernel objects; a lookup from
/// user space returns a 4-byte id, whatever the value size says.
const FD_TYPES: [u32; 5] = [3, 4, 8, 12, 13];

/// `BPF_MAP_CREATE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; OBJ_NAME_LEN],
    pub map_ifindex: u32,
    pub btf_fd: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub map_extra: u64,
}

/// `BPF_MAP_*_ELEM` and `BPF_MAP_GET_NEXT_KEY` (`value` doubles as `next_key`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `BPF_MAP_FREEZE` (only the descriptor).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct MapFdAttr {
    map_fd: u32,
}

/// `BPF_PROG_LOAD`, up to `log_true_size` (Linux 6.4), which the kernel fills in.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    core_relo_cnt: u32,
    fd_array: u64,
    core_relos: u64,
    core_relo_rec_size: u32,
    log_true_size: u32,
}

/// `BPF_PROG_TEST_RUN`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The first two fields of `struct bpf_prog_info`: all nicc needs is the program id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
}

/// Calls `bpf(cmd, attr, sizeof attr)` and returns the non-negative result or `errno`.
///
/// The caller guarantees that every pointer inside `attr` is null or points to a live buffer of
/// at least the length the same attribute announces for it (or, for lookups, the length the
/// kernel derives from the map, which [`MapFd`] checks).
fn bpf<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` struct of exactly
    // `size_of::<T>()` bytes with no uninitialised padding (every padding position is an
    // explicit field), so the kernel may read it and write results back into it. The buffers
    // it points to are the caller's responsibility, as documented above, and every caller in
    // this module checks them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut c_void,
            std::mem::size_of::<T>() as libc::c_long,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as i64)
    }
}

/// Takes ownership of a descriptor the kernel just returned.
fn owned_fd(raw: i64) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(raw).map_err(|_| io::Error::other("bpf() returned a bad fd"))?;
    // SAFETY: `fd` was just returned by a successful `bpf()` call that creates a new descriptor;
    // nothing else in the process knows it, so this `OwnedFd` is its only owner and closes it
    // exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ptr(bytes: &[u8]) -> u64 {
    bytes.as_ptr() as usize as u64
}

fn mut_ptr(bytes: &mut [u8]) -> u64 {
    bytes.as_mut_ptr() as usize as u64
}

fn too_short(what: &str, have: usize, need: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} buffer has {have} bytes, the kernel uses {need}"),
    )
}

/// A map descriptor with the sizes it was created with, so that every lookup and update can
/// check its buffers against what the kernel copies.
#[derive(Debug)]
pub struct MapFd {
    fd: OwnedFd,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// The number of possible CPUs, which sizes per-CPU values.
    pub possible_cpus: usize,
}

impl MapFd {
    /// Creates a map.
    pub fn create(attr: &MapCreateAttr, possible_cpus: usize) -> io::Result<MapFd> {
        let mut a = *attr;
        let fd = owned_fd(bpf(BPF_MAP_CREATE, &mut a)?)?;
        Ok(MapFd {
            fd,
            map_type: attr.map_type,
            key_size: attr.key_size,
            value_size: attr.value_size,
            max_entries: attr.max_entries,
            possible_cpus,
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn is_per_cpu(&self) -> bool {
        PERCPU_TYPES.contains(&self.map_type)
    }

    /// The bytes one value takes in a lookup or update from user space: per-CPU values are
    /// rounded up to 8 bytes and repeated for every possible CPU; descriptor maps exchange
    /// 4-byte ids.
    pub fn value_len(&self) -> usize {
        let size = self.value_size as usize;
        if self.is_per_cpu() {
            size.next_multiple_of(8) * self.possible_cpus
        } else if FD_TYPES.contains(&self.map_type) {
            size.max(4)
        } else {
            size
        }
    }

    /// Reads the value of `key` into `value`; `Ok(false)` when there is no such entry.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
        if key.len() < self.key_size as usize {
            return Err(too_short("key", key.len(), self.key_size as usize));
        }
        if value.len() < self.value_len() {
            return Err(too_short("value", value.len(), self.value_len()));
        }
        let mut attr = MapElemAttr {
            map_fd: self.raw() as u32,
            key: ptr(key),
            value: mut_ptr(value),
            ..MapElemAttr::default()
        };
        // The kernel reads `key_size` bytes of the key and writes at most `value_len()` bytes
        // of the value, both checked above.
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes `value` under `key` (`BPF_ANY`).
    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        if key.len() < self.key_size as usize {
            return Err(too_short("key", key.len(), self.key_size as usize));
        }
        if value.len() < self.value_len() {
            return Err(too_short("value", value.len(), self.value_len()));
        }
        let mut attr = MapElemAttr {
            map_fd: self.raw() as u32,
            key: ptr(key),
            value: ptr(value),
            ..MapElemAttr::default()
        };
        // The kernel reads `key_size` and `value_len()` bytes, both checked above.
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
    }

    /// The key after `key` (the first key for `None`) into `next`; `Ok(false)` at the end.
    pub fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
        let size = self.key_size as usize;
        if key.is_some_and(|k| k.len() < size) || next.len() < size {
            return Err(too_short("key", next.len(), size));
        }
        let mut attr = MapElemAttr {
            map_fd: self.raw() as u32,
            key: key.map_or(0, ptr),
            value: mut_ptr(next),
            ..MapElemAttr::default()
        };
        // The kernel reads and writes `key_size` bytes, checked above; a null key asks for
        // the first key.
        match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes the map read-only for user space (`BPF_MAP_FREEZE`).
    pub fn freeze(&self) -> io::Result<()> {
        let mut attr = MapFdAttr {
            map_fd: self.raw() as u32,
        };
        bpf(BPF_MAP_FREEZE, &mut attr).map(|_| ())
    }
}

/// What `BPF_PROG_LOAD` needs; the loader fills it in.
pub struct ProgLoad<'a> {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub prog_flags: u32,
    /// The program as bytes, 8 per instruction slot.
    pub insns: &'a [u8],
    /// NUL-terminated.
    pub license: &'a [u8],
    pub kern_version: u32,
    pub name: [u8; OBJ_NAME_LEN],
    /// The interface to bind the program to for hardware offload; 0 for none.
    pub ifindex: u32,
    /// Map descriptors for `BPF_PSEUDO_MAP_IDX` and `BPF_PSEUDO_MAP_IDX_VALUE` immediates. The
    /// caller must have checked that every such immediate in `insns` indexes into it.
    pub fd_array: &'a [i32],
}

/// Loads a program; with `log` the verifier writes its log there (level 1), and on failure the
/// log comes back with the error.
pub fn prog_load(p: &ProgLoad<'_>, log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    if !p.insns.len().is_multiple_of(8) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "program length is not a multiple of 8 bytes",
        ));
    }
    if p.license.last() != Some(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "license is not NUL-terminated",
        ));
    }
    let insn_cnt = u32::try_from(p.insns.len() / 8)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "program too long"))?;
    let mut attr = ProgLoadAttr {
        prog_type: p.prog_type,
        insn_cnt,
        insns: ptr(p.insns),
        license: ptr(p.license),
        kern_version: p.kern_version,
        prog_flags: p.prog_flags,
        prog_name: p.name,
        prog_ifindex: p.ifindex,
        expected_attach_type: p.expected_attach_type,
        fd_array: if p.fd_array.is_empty() {
            0
        } else {
            p.fd_array.as_ptr() as usize as u64
        },
        ..ProgLoadAttr::default()
    };
    if let Some(buf) = log {
        // The kernel wants at least 128 bytes and at most `u32::MAX >> 2`.
        let size = buf.len().min((u32::MAX >> 2) as usize);
        if size < 128 {
            return Err(too_short("verifier log", buf.len(), 128));
        }
        buf[0] = 0;
        attr.log_level = 1;
        attr.log_size = size as u32;
        attr.log_buf = mut_ptr(buf);
    }
    // The kernel reads `insn_cnt * 8` bytes of instructions (the whole slice), the license up
    // to its NUL (checked above), at most `log_size` bytes into the log buffer, and fd_array
    // entries at the indices the instructions name, which the caller checked.
    owned_fd(bpf(BPF_PROG_LOAD, &mut attr)?)
}

/// The kernel's id of a loaded program (`bpf_prog_info.id`), which prog-array lookups return.
pub fn prog_id(fd: &OwnedFd) -> io::Result<u32> {
    let mut info = ProgInfoHead::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfoHead>() as u32,
        info: &mut info as *mut ProgInfoHead as usize as u64,
    };
    // The kernel writes at most `info_len` bytes of `struct bpf_prog_info` into `info`, which
    // is exactly that large.
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info.id)
}

/// The results of one `BPF_PROG_TEST_RUN`.
#[derive(Clone, Copy, Debug)]
pub struct TestRunOut {
    pub retval: u32,
    /// The full output length, which may exceed the buffer (then the call fails with ENOSPC).
    pub data_size_out: u32,
    pub ctx_size_out: u32,
    pub duration: u32,
}

/// Runs a loaded program on `data_in`, the output going to `data_out` (which must not be
/// empty: an empty size would ask the kernel to copy without a bound).
pub fn test_run(
    prog: RawFd,
    data_in: &[u8],
    data_out: &mut [u8],
    ctx: Option<(&[u8], &mut [u8])>,
    repeat: u32,
) -> io::Result<TestRunOut> {
    if data_out.is_empty() {
        return Err(too_short("output", 0, 1));
    }
    let len = |n: usize| {
        u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too long"))
    };
    let mut attr = TestRunAttr {
        prog_fd: prog as u32,
        data_size_in: len(data_in.len())?,
        data_size_out: len(data_out.len())?,
        data_in: ptr(data_in),
        data_out: mut_ptr(data_out),
        repeat,
        ..TestRunAttr::default()
    };
    if let Some((ctx_in, ctx_out)) = ctx {
        attr.ctx_size_in = len(ctx_in.len())?;
        attr.ctx_in = ptr(ctx_in);
        attr.ctx_size_out = len(ctx_out.len())?;
        attr.ctx_out = mut_ptr(ctx_out);
    }
    // The kernel reads `data_size_in` and `ctx_size_in` bytes and writes at most
    // `data_size_out` (non-zero, so the copy is clamped) and `ctx_size_out` bytes, all equal to
    // the lengths of the slices they point into.
    let result = bpf(BPF_PROG_TEST_RUN, &mut attr);
    let out = TestRunOut {
        retval: attr.retval,
        data_size_out: attr.data_size_out,
        ctx_size_out: attr.ctx_size_out,
        duration: attr.duration,
    };
    result.map(|_| out)
}

/// Restores the thread's previous CPU affinity when dropped.
pub struct AffinityGuard {
    previous: libc::cpu_set_t,
}

/// Pins the calling thread to one CPU until the guard is dropped.
pub fn pin_to_cpu(cpu: usize) -> io::Result<AffinityGuard> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no such CPU"));
    }
    // SAFETY: `cpu_set_t` is a plain bit array, for which all zeroes is a valid (empty) value.
    let mut previous: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer refers to a live `cpu_set_t` and the size passed is its size, so the
    // kernel writes only inside it; pid 0 means the calling thread.
    let got = unsafe {
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut previous)
    };
    if got != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above, all zeroes is a valid empty set.
    let mut only: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below `CPU_SETSIZE` (checked above), so `CPU_SET` stays inside the set.
    unsafe { libc::CPU_SET(cpu, &mut only) };
    // SAFETY: the kernel only reads `size_of::<cpu_set_t>()` bytes from a live set.
    let set = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &only) };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(AffinityGuard { previous })
}

impl Drop for AffinityGuard {
    fn drop(&mut self) {
        // SAFETY: the kernel only reads the live set saved by `pin_to_cpu`. A failure cannot be
        // reported from a destructor; the thread then stays on the pinned CPU, which is still
        // correct, only slower for a parallel caller.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.previous);
        }
    }
}

/// `BPF_OBJ_PIN` and `BPF_OBJ_GET`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ObjPathAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// `BPF_PROG_GET_FD_BY_ID` and `BPF_MAP_GET_FD_BY_ID`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `struct bpf_prog_info` up to `ifindex`, which is all nicc reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; OBJ_NAME_LEN],
    ifindex: u32,
    _pad: u32,
}

/// `struct bpf_map_info` up to `ifindex`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct MapInfoRaw {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: [u8; OBJ_NAME_LEN],
    ifindex: u32,
}

/// What the kernel says about a map it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    /// The name as the kernel keeps it (at most 15 bytes).
    pub name: String,
}

fn path_bytes(path: &std::path::Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path holds a NUL byte"))
}

/// Pins a program or map at `path` in a BPF filesystem, so it outlives this process.
pub fn obj_pin(fd: RawFd, path: &std::path::Path) -> io::Result<()> {
    let c = path_bytes(path)?;
    let mut attr = ObjPathAttr {
        pathname: c.as_ptr() as usize as u64,
        bpf_fd: fd as u32,
        file_flags: 0,
    };
    // The kernel reads the NUL-terminated path, which lives until the call returns.
    bpf(BPF_OBJ_PIN, &mut attr).map(|_| ())
}

/// Opens the program or map pinned at `path`.
pub fn obj_get(path: &std::path::Path) -> io::Result<OwnedFd> {
    let c = path_bytes(path)?;
    let mut attr = ObjPathAttr {
        pathname: c.as_ptr() as usize as u64,
        ..ObjPathAttr::default()
    };
    // The kernel reads the NUL-terminated path, which lives until the call returns.
    owned_fd(bpf(BPF_OBJ_GET, &mut attr)?)
}

/// Opens the loaded program with kernel id `id`.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        id,
        ..GetFdByIdAttr::default()
    };
    // No pointers: the kernel only reads the id.
    owned_fd(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?)
}

/// Opens the map with kernel id `id`.
pub fn map_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        id,
        ..GetFdByIdAttr::default()
    };
    // No pointers: the kernel only reads the id.
    owned_fd(bpf(BPF_MAP_GET_FD_BY_ID, &mut attr)?)
}

/// The kernel ids of the maps a loaded program uses, and the program's name.
pub fn prog_maps(fd: RawFd) -> io::Result<(String, Vec<u32>)> {
    // The first call asks how many maps there are; the second fetches their ids into a
    // buffer of that size. A program's maps are fixed once it is loaded, so the count holds.
    let mut info = ProgInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as usize as u64,
    };
    // The kernel writes at most `info_len` bytes into `info`, which is that large, and with
    // `nr_map_ids` zero it writes no ids.
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let count = info.nr_map_ids as usize;
    let mut ids = vec![0u32; count];
    let mut info = ProgInfo {
        nr_map_ids: count as u32,
        map_ids: ids.as_mut_ptr() as usize as u64,
        ..ProgInfo::default()
    };
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as usize as u64,
    };
    // The kernel writes at most `nr_map_ids` ids into `ids`, which holds exactly that many.
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    ids.truncate((info.nr_map_ids as usize).min(count));
    Ok((c_name(&info.name), ids))
}

/// What the kernel says about map `fd`.
pub fn map_info(fd: RawFd) -> io::Result<MapInfo> {
    let mut info = MapInfoRaw::default();
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of::<MapInfoRaw>() as u32,
        info: &mut info as *mut MapInfoRaw as usize as u64,
    };
    // The kernel writes at most `info_len` bytes into `info`, which is exactly that large.
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(MapInfo {
        map_type: info.map_type,
        id: info.id,
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        map_flags: info.map_flags,
        name: c_name(&info.name),
    })
}

fn c_name(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl MapFd {
    /// Wraps a descriptor of an existing map (opened by id or from a pin), with the sizes the
    /// kernel reports for it.
    pub fn from_existing(fd: OwnedFd, possible_cpus: usize) -> io::Result<MapFd> {
        let info = map_info(fd.as_raw_fd())?;
        Ok(MapFd {
            fd,
            map_type: info.map_type,
            key_size: info.key_size,
            value_size: info.value_size,
            max_entries: info.max_entries,
            possible_cpus,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The layouts of `include/uapi/linux/bpf.h`, field by field.
    #[test]
    fn attribute_layouts_match_the_uapi_header() {
        assert_eq!(offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(offset_of!(MapCreateAttr, map_ifindex), 44);
        assert_eq!(offset_of!(MapCreateAttr, map_extra), 64);
        assert_eq!(size_of::<MapCreateAttr>(), 72);

        assert_eq!(offset_of!(MapElemAttr, key), 8);
        assert_eq!(offset_of!(MapElemAttr, value), 16);
        assert_eq!(size_of::<MapElemAttr>(), 32);

        assert_eq!(offset_of!(ProgLoadAttr, log_level), 24);
        assert_eq!(offset_of!(ProgLoadAttr, kern_version), 40);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, prog_ifindex), 64);
        assert_eq!(offset_of!(ProgLoadAttr, func_info), 80);
        assert_eq!(offset_of!(ProgLoadAttr, line_info), 96);
        assert_eq!(offset_of!(ProgLoadAttr, fd_array), 120);
        assert_eq!(offset_of!(ProgLoadAttr, core_relo_rec_size), 136);
        assert_eq!(size_of::<ProgLoadAttr>(), 144);

        assert_eq!(offset_of!(TestRunAttr, data_in), 16);
        assert_eq!(offset_of!(TestRunAttr, repeat), 32);
        assert_eq!(offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(offset_of!(TestRunAttr, flags), 64);
        assert_eq!(offset_of!(TestRunAttr, batch_size), 72);
        assert_eq!(size_of::<TestRunAttr>(), 80);

        assert_eq!(size_of::<InfoAttr>(), 16);

        assert_eq!(offset_of!(ProgInfo, nr_map_ids), 52);
        assert_eq!(offset_of!(ProgInfo, map_ids), 56);
        assert_eq!(offset_of!(ProgInfo, name), 64);
        assert_eq!(offset_of!(ProgInfo, ifindex), 80);
        assert_eq!(offset_of!(MapInfoRaw, name), 24);
        assert_eq!(offset_of!(MapInfoRaw, ifindex), 40);
        assert_eq!(size_of::<ObjPathAttr>(), 16);
    }
}
