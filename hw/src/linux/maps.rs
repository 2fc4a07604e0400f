//! Maps in the kernel: creating them from an object's [`MapDef`]s as libbpf would, and moving
//! their contents to and from the [`MapsSnapshot`] JSON model.
//!
//! Creation follows libbpf where the object leaves something to the loader: perf event arrays
//! with `max_entries` 0 get one slot per possible CPU, ring buffers have no key or value and a
//! power-of-two size of at least a page, maps of maps take the descriptor of their inner
//! definition as a template, and global-data sections become single-entry arrays holding their
//! initial bytes, frozen and marked read-only for programs when the section is read-only (the
//! verifier then treats their contents as constants, as it does under libbpf).

use super::error::KernelError;
use super::sys::{MapCreateAttr, MapFd, OBJ_NAME_LEN};
use frontend::mapdata::{from_hex, to_hex, MapContents, MapEntry};
use frontend::object::{MapDef, MapOrigin, MapType};
use frontend::Object;
use std::collections::HashMap;

/// `BPF_F_RDONLY_PROG`: programs may read the map but not write it.
const BPF_F_RDONLY_PROG: u32 = 1 << 7;

/// The page size the ring buffer rounds to; every architecture nicc runs on has 4 KiB pages
/// at least, and the kernel accepts any larger power of two as well.
const PAGE_SIZE: u32 = 4096;

/// One map of the object as the kernel holds it.
#[derive(Debug)]
pub(crate) struct KernelMap {
    pub def: MapDef,
    /// `None` when the kernel would not create the map and no loaded program needs it.
    pub fd: Option<MapFd>,
    /// Why the map was not created.
    pub not_created: Option<String>,
}

/// The number of possible CPUs, which sizes per-CPU values and default perf event arrays: the
/// count of CPUs in `/sys/devices/system/cpu/possible` (a list such as `0-3,8-11`), the same
/// number the kernel's `num_possible_cpus()` gives.
pub fn possible_cpus() -> Result<usize, KernelError> {
    let path = "/sys/devices/system/cpu/possible";
    let text = std::fs::read_to_string(path)
        .map_err(|e| KernelError::syscall(format!("reading {path}"), e))?;
    parse_cpu_list(&text).ok_or_else(|| {
        KernelError::Invalid(format!("{path} holds {text:?}, not a list of CPU ranges"))
    })
}

fn parse_cpu_list(text: &str) -> Option<usize> {
    let mut count = 0;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.parse::<usize>().ok()?, hi.parse::<usize>().ok()?),
            None => {
                let n = part.parse::<usize>().ok()?;
                (n, n)
            }
        };
        if hi < lo {
            return None;
        }
        count += hi - lo + 1;
    }
    (count > 0).then_some(count)
}

/// An object name as the kernel accepts it: letters, digits, `_` and `.` only, at most 15
/// bytes and NUL-terminated. Other characters become `_`.
pub(crate) fn kernel_name(name: &str) -> [u8; OBJ_NAME_LEN] {
    let mut out = [0u8; OBJ_NAME_LEN];
    for (slot, b) in out.iter_mut().zip(name.bytes().take(OBJ_NAME_LEN - 1)) {
        *slot = if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' {
            b
        } else {
            b'_'
        };
    }
    out
}

/// The creation attributes for one definition, with libbpf's adjustments.
fn create_attr(def: &MapDef, cpus: usize, inner_fd: Option<i32>, ifindex: u32) -> MapCreateAttr {
    let mut attr = MapCreateAttr {
        map_type: def.map_type.to_raw(),
        key_size: def.key_size,
        value_size: def.value_size,
        max_entries: def.max_entries,
        map_flags: def.flags,
        inner_map_fd: inner_fd.map_or(0, |fd| fd as u32),
        map_name: kernel_name(&def.name),
        map_ifindex: ifindex,
        ..MapCreateAttr::default()
    };
    match def.map_type {
        MapType::PerfEventArray if def.max_entries == 0 => attr.max_entries = cpus as u32,
        MapType::Ringbuf | MapType::UserRingbuf => {
            attr.key_size = 0;
            attr.value_size = 0;
            attr.max_entries = def
                .max_entries
                .max(PAGE_SIZE)
                .checked_next_power_of_two()
                .unwrap_or(def.max_entries);
        }
        _ => {}
    }
    if let MapOrigin::GlobalData {
        read_only: true, ..
    } = def.origin
    {
        attr.map_flags |= BPF_F_RDONLY_PROG;
    }
    attr
}

fn create_hint(def: &MapDef, err: &std::io::Error) -> String {
    let needs_btf = matches!(
        def.map_type,
        MapType::SkStorage
            | MapType::InodeStorage
            | MapType::TaskStorage
            | MapType::CgrpStorage
            | MapType::StructOps
    );
    if needs_btf {
        return format!(
            "{:?} maps need BTF type information, which nicc's loader does not pass",
            def.map_type
        );
    }
    match err.raw_os_error() {
        Some(libc::EPERM) => "run as root or with CAP_BPF".into(),
        Some(libc::ENOMEM) | Some(libc::E2BIG) => format!(
            "the map is too large for the kernel ({} entries of {} + {} bytes)",
            def.max_entries, def.key_size, def.value_size
        ),
        _ => format!(
            "the kernel does not accept a {:?} map with key size {}, value size {}, \
             max_entries {} and flags {:#x}",
            def.map_type, def.key_size, def.value_size, def.max_entries, def.flags
        ),
    }
}

/// Creates every map of `obj`, inner definitions before the maps of maps that use them. A map
/// the kernel refuses is an error only when `needed[i]` says a loaded program uses it;
/// otherwise it is recorded as not created. A non-zero `ifindex` binds every map to that
/// device for hardware offload.
pub(crate) fn create_maps(
    obj: &Object,
    cpus: usize,
    needed: &[bool],
    ifindex: u32,
) -> Result<Vec<KernelMap>, KernelError> {
    let mut maps: Vec<Option<KernelMap>> = (0..obj.maps.len()).map(|_| None).collect();
    for index in 0..obj.maps.len() {
        create_one(
            obj,
            cpus,
            needed,
            ifindex,
            index,
            &mut maps,
            &mut Vec::new(),
        )?;
    }
    Ok(maps
        .into_iter()
        .map(|m| m.expect("create_one fills every slot"))
        .collect())
}

fn create_one(
    obj: &Object,
    cpus: usize,
    needed: &[bool],
    ifindex: u32,
    index: usize,
    maps: &mut [Option<KernelMap>],
    visiting: &mut Vec<usize>,
) -> Result<(), KernelError> {
    if maps[index].is_some() {
        return Ok(());
    }
    let def = &obj.maps[index];
    if visiting.contains(&index) {
        return Err(KernelError::Invalid(format!(
            "map `{}` is its own inner map (through a cycle of inner definitions)",
            def.name
        )));
    }
    // A map of maps needs its inner template created first.
    let mut inner_fd = None;
    let mut not_created = None;
    if let Some(inner) = def.inner {
        if inner >= obj.maps.len() {
            return Err(KernelError::Invalid(format!(
                "map `{}` names inner map {inner}, but the object has {} maps",
                def.name,
                obj.maps.len()
            )));
        }
        visiting.push(index);
        create_one(obj, cpus, needed, ifindex, inner, maps, visiting)?;
        visiting.pop();
        let inner_map = maps[inner].as_ref().expect("just created");
        match &inner_map.fd {
            Some(fd) => inner_fd = Some(fd.raw()),
            None => {
                not_created = Some(format!(
                    "its inner map `{}` was not created",
                    inner_map.def.name
                ))
            }
        }
    }
    let mut fd = None;
    if not_created.is_none() {
        let attr = create_attr(def, cpus, inner_fd, ifindex);
        match MapFd::create(&attr, cpus) {
            Ok(map) => {
                init_global_data(def, &map)?;
                fd = Some(map);
            }
            Err(e) => {
                let err = KernelError::MapCreate {
                    map: def.name.clone(),
                    hint: create_hint(def, &e),
                    source: e,
                };
                if needed.get(index).copied().unwrap_or(true) {
                    return Err(err);
                }
                not_created = Some(err.to_string());
            }
        }
    } else if needed.get(index).copied().unwrap_or(true) {
        return Err(KernelError::Invalid(format!(
            "cannot create map `{}`: {}",
            def.name,
            not_created.unwrap_or_default()
        )));
    }
    maps[index] = Some(KernelMap {
        def: def.clone(),
        fd,
        not_created,
    });
    Ok(())
}

/// Writes the initial bytes of a global-data map into entry 0 and freezes read-only sections.
fn init_global_data(def: &MapDef, map: &MapFd) -> Result<(), KernelError> {
    let MapOrigin::GlobalData { read_only, .. } = def.origin else {
        return Ok(());
    };
    if let Some(init) = &def.initial_value {
        if init.len() != def.value_size as usize {
            return Err(KernelError::Invalid(format!(
                "global-data map `{}` has {} initial bytes for a {}-byte value",
                def.name,
                init.len(),
                def.value_size
            )));
        }
        map.update(&0u32.to_le_bytes(), init).map_err(|e| {
            KernelError::syscall(format!("writing the initial value of `{}`", def.name), e)
        })?;
    }
    if read_only {
        map.freeze()
            .map_err(|e| KernelError::syscall(format!("freezing `{}`", def.name), e))?;
    }
    Ok(())
}

/// How a map type can be read back.
enum DumpKind {
    /// Keys are the indices `0..max_entries`; all-zero entries are left out.
    Array,
    /// Keys come from `BPF_MAP_GET_NEXT_KEY`; every entry is listed.
    Hash,
    /// An array of programs; the kernel gives program ids, the snapshot program indices.
    ProgArray,
    /// Not dumped, for the reason given.
    Skip(&'static str),
}

fn dump_kind(t: MapType) -> DumpKind {
    match t {
        MapType::Array | MapType::PercpuArray | MapType::Devmap | MapType::Cpumap => {
            DumpKind::Array
        }
        MapType::Hash
        | MapType::PercpuHash
        | MapType::LruHash
        | MapType::LruPercpuHash
        | MapType::LpmTrie
        | MapType::DevmapHash => DumpKind::Hash,
        MapType::ProgArray => DumpKind::ProgArray,
        MapType::PerfEventArray => DumpKind::Skip("perf event arrays hold event descriptors"),
        MapType::Ringbuf | MapType::UserRingbuf => DumpKind::Skip("ring buffers are streams"),
        MapType::StackTrace => DumpKind::Skip("stack traces hold kernel addresses"),
        MapType::ArrayOfMaps | MapType::HashOfMaps => {
            DumpKind::Skip("maps of maps hold kernel ids of other maps")
        }
        MapType::Sockmap
        | MapType::Sockhash
        | MapType::Xskmap
        | MapType::ReuseportSockarray
        | MapType::CgroupArray => DumpKind::Skip("the values are kernel objects"),
        MapType::Queue | MapType::Stack | MapType::BloomFilter => {
            DumpKind::Skip("the map has no keys to iterate")
        }
        MapType::CgroupStorage
        | MapType::PercpuCgroupStorage
        | MapType::SkStorage
        | MapType::InodeStorage
        | MapType::TaskStorage
        | MapType::CgrpStorage => DumpKind::Skip("storage maps belong to kernel objects"),
        MapType::StructOps | MapType::Arena | MapType::Other(_) => {
            DumpKind::Skip("nicc does not know how to read this map type")
        }
    }
}

impl KernelMap {
    /// Why this map is left out of snapshots, if it is.
    pub fn skip_reason(&self) -> Option<String> {
        if let Some(why) = &self.not_created {
            return Some(format!("not created: {why}"));
        }
        match dump_kind(self.def.map_type) {
            DumpKind::Skip(why) => Some(why.to_string()),
            _ => None,
        }
    }

    /// Reads the whole map; `prog_index` turns a kernel program id into a program index.
    pub fn dump(&self, prog_index: &HashMap<u32, usize>) -> Result<MapContents, KernelError> {
        let map = self.fd.as_ref().ok_or_else(|| {
            KernelError::Invalid(format!("map `{}` was not created", self.def.name))
        })?;
        let name = &self.def.name;
        let lookup_err = |e| KernelError::syscall(format!("reading map `{name}`"), e);
        let mut entries = Vec::new();
        let mut value = vec![0u8; map.value_len().max(8)];
        match dump_kind(self.def.map_type) {
            DumpKind::Skip(why) => {
                return Err(KernelError::Invalid(format!(
                    "map `{name}` cannot be read: {why}"
                )))
            }
            DumpKind::Array => {
                for i in 0..map.max_entries {
                    let key = i.to_le_bytes();
                    if map.lookup(&key, &mut value).map_err(lookup_err)? {
                        let v = &value[..map.value_len()];
                        if v.iter().any(|b| *b != 0) {
                            entries.push(self.entry(map, &key, v));
                        }
                    }
                }
            }
            DumpKind::ProgArray => {
                for i in 0..map.max_entries {
                    let key = i.to_le_bytes();
                    if map.lookup(&key, &mut value).map_err(lookup_err)? {
                        let id = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
                        let index = prog_index.get(&id).ok_or_else(|| {
                            KernelError::Invalid(format!(
                                "prog array `{name}` slot {i} holds program id {id}, \
                                 which this object did not load"
                            ))
                        })?;
                        entries.push(MapEntry {
                            key: to_hex(&key),
                            value: Some(to_hex(&(*index as u32).to_le_bytes())),
                            per_cpu: None,
                        });
                    }
                }
            }
            DumpKind::Hash => {
                let size = map.key_size as usize;
                let mut prev: Option<Vec<u8>> = None;
                let mut next = vec![0u8; size];
                // A bound on the walk: a key deleted under us restarts the iteration, and a
                // walk that never ends is worse than an error.
                let mut budget = map.max_entries as u64 * 2 + 16;
                while map
                    .next_key(prev.as_deref(), &mut next)
                    .map_err(lookup_err)?
                {
                    budget = budget.checked_sub(1).ok_or_else(|| {
                        KernelError::Invalid(format!("map `{name}` keeps changing while read"))
                    })?;
                    if map.lookup(&next, &mut value).map_err(lookup_err)? {
                        entries.push(self.entry(map, &next, &value[..map.value_len()]));
                    }
                    prev = Some(next.clone());
                }
            }
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(MapContents {
            map_type: self.def.map_type,
            key_size: self.def.key_size,
            value_size: self.def.value_size,
            entries,
        })
    }

    /// One snapshot entry from the bytes a lookup returned.
    fn entry(&self, map: &MapFd, key: &[u8], value: &[u8]) -> MapEntry {
        let size = map.value_size as usize;
        if map.is_per_cpu() {
            let stride = size.next_multiple_of(8);
            let per_cpu = (0..map.possible_cpus)
                .map(|cpu| to_hex(&value[cpu * stride..cpu * stride + size]))
                .collect();
            MapEntry {
                key: to_hex(key),
                value: None,
                per_cpu: Some(per_cpu),
            }
        } else {
            MapEntry {
                key: to_hex(key),
                value: Some(to_hex(&value[..size.min(value.len())])),
                per_cpu: None,
            }
        }
    }

    /// Writes the entries of `contents` into the map. `prog_fd` turns a program index (what
    /// prog-array values hold in snapshots) into the descriptor of the loaded program.
    pub fn seed(
        &self,
        contents: &MapContents,
        prog_fd: &dyn Fn(usize) -> Option<i32>,
    ) -> Result<(), KernelError> {
        let name = &self.def.name;
        let bad = |msg: String| KernelError::Invalid(format!("snapshot of map `{name}`: {msg}"));
        if contents.map_type != self.def.map_type
            || contents.key_size != self.def.key_size
            || contents.value_size != self.def.value_size
        {
            return Err(bad(format!(
                "it is a {:?} map with {}-byte keys and {}-byte values, the object's is a \
                 {:?} map with {}-byte keys and {}-byte values",
                contents.map_type,
                contents.key_size,
                contents.value_size,
                self.def.map_type,
                self.def.key_size,
                self.def.value_size
            )));
        }
        if contents.entries.is_empty() {
            return Ok(());
        }
        if let Some(why) = self.skip_reason() {
            return Err(bad(format!("its entries cannot be written: {why}")));
        }
        let map = self
            .fd
            .as_ref()
            .expect("skip_reason covers maps not created");
        let frozen = matches!(
            self.def.origin,
            MapOrigin::GlobalData {
                read_only: true,
                ..
            }
        );
        for entry in &contents.entries {
            let key = from_hex(&entry.key).map_err(bad)?;
            if key.len() != map.key_size as usize {
                return Err(bad(format!(
                    "key {} has {} bytes, the map's keys have {}",
                    entry.key,
                    key.len(),
                    map.key_size
                )));
            }
            let value = self.value_bytes(map, entry, prog_fd).map_err(bad)?;
            if frozen {
                // A frozen map cannot change; a snapshot that agrees with it is fine.
                let mut current = vec![0u8; map.value_len().max(8)];
                let found = map
                    .lookup(&key, &mut current)
                    .map_err(|e| KernelError::syscall(format!("reading map `{name}`"), e))?;
                if !found || current[..value.len()] != value[..] {
                    return Err(bad(format!(
                        "entry {} differs from the read-only section's contents, which the \
                         kernel has frozen",
                        entry.key
                    )));
                }
                continue;
            }
            map.update(&key, &value).map_err(|e| {
                KernelError::syscall(format!("writing entry {} of map `{name}`", entry.key), e)
            })?;
        }
        Ok(())
    }

    /// The bytes a map update takes for one snapshot entry.
    fn value_bytes(
        &self,
        map: &MapFd,
        entry: &MapEntry,
        prog_fd: &dyn Fn(usize) -> Option<i32>,
    ) -> Result<Vec<u8>, String> {
        let size = map.value_size as usize;
        let checked = |hex: &str| -> Result<Vec<u8>, String> {
            let bytes = from_hex(hex)?;
            if bytes.len() != size {
                return Err(format!(
                    "value {hex} of key {} has {} bytes, the map's values have {size}",
                    entry.key,
                    bytes.len()
                ));
            }
            Ok(bytes)
        };
        if self.def.map_type == MapType::ProgArray {
            let hex = entry
                .value
                .as_deref()
                .ok_or("a prog array entry needs a value")?;
            let bytes = checked(hex)?;
            let index = u32::from_le_bytes(
                bytes[..4]
                    .try_into()
                    .map_err(|_| "prog array values have 4 bytes")?,
            ) as usize;
            let fd = prog_fd(index).ok_or_else(|| {
                format!(
                    "slot {} names program {index}, which is not loaded",
                    entry.key
                )
            })?;
            return Ok(fd.to_le_bytes().to_vec());
        }
        if !map.is_per_cpu() {
            let hex = entry
                .value
                .as_deref()
                .ok_or_else(|| format!("entry {} has no value", entry.key))?;
            return checked(hex);
        }
        // Per-CPU maps: one value per possible CPU, each padded to 8 bytes. A plain `value`
        // sets CPU 0, where the oracle runs programs, and leaves the other CPUs zero.
        let stride = size.next_multiple_of(8);
        let mut out = vec![0u8; map.value_len()];
        let values: Vec<&str> = match (&entry.per_cpu, &entry.value) {
            (Some(list), _) => list.iter().map(String::as_str).collect(),
            (None, Some(one)) => vec![one.as_str()],
            (None, None) => return Err(format!("entry {} has no value", entry.key)),
        };
        if values.len() > map.possible_cpus {
            return Err(format!(
                "entry {} has values for {} CPUs, this machine has {}",
                entry.key,
                values.len(),
                map.possible_cpus
            ));
        }
        for (cpu, hex) in values.iter().enumerate() {
            let bytes = checked(hex)?;
            out[cpu * stride..cpu * stride + size].copy_from_slice(&bytes);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_count_every_cpu() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,8-11"), Some(8));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list(""), None);
    }

    #[test]
    fn names_are_sanitised_and_truncated() {
        assert_eq!(&kernel_name("counters")[..9], b"counters\0");
        assert_eq!(&kernel_name(".rodata.str1.1")[..15], b".rodata.str1.1\0");
        assert_eq!(&kernel_name("a-b/c")[..6], b"a_b_c\0");
        let long = kernel_name("a_very_long_map_name_indeed");
        assert_eq!(&long[..15], b"a_very_long_map");
        assert_eq!(long[15], 0);
    }
}
