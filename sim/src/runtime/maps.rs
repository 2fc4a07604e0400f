//! Map storage: every map type the object model knows that an XDP program can use, with the
//! kernel's update flags, error codes and per-CPU behaviour, and the conversion to and from the
//! JSON snapshot of `frontend::mapdata`.
//!
//! Values live in flat byte slabs addressed by (slot, CPU), so that a pointer a lookup returns
//! stays valid for the whole run, as the kernel's preallocated elements do: a deleted hash
//! element's memory goes back to a free list and is reused by a later insert, exactly the
//! reuse a program holding a stale pointer would observe in the kernel. Hash-like maps
//! allocate the slab for every element they can hold when they are created (up to
//! `MAX_PREALLOCATED_BYTES`), so value storage never moves and the JIT keeps host addresses
//! of values across calls, as a kernel program keeps the pointer a lookup returned.
//!
//! Lookups, updates and deletes take the key as a borrowed slice and allocate nothing; only
//! inserting a new key into a hash map copies it (for the index and for the slot).
//!
//! LRU hashes follow the kernel's replacement exactly (see [`super::lru`]): an element's value
//! slot belongs to one preallocated LRU node for good, a program's update of an existing key in
//! an `LRU_HASH` takes a fresh node and frees the old one, as the kernel does, and only a
//! program's lookup sets the reference bit (user-space reads do not).
//!
//! Known differences from the kernel:
//! - Hash iteration order is not modelled (snapshots sort by key, as the format requires).
//! - LRU maps model one CPU running at a time; the kernel's paths for a lock it cannot take
//!   under contention (a node flagged for a later free) never arise here.

use super::lru::{element_count, Lru};
use super::{E2BIG, EEXIST, EINVAL, ENOENT, ENOMEM, ENOSPC};
use frontend::mapdata::{from_hex, to_hex, MapContents, MapEntry};
use frontend::object::{MapDef, MapOrigin, MapType};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

pub const BPF_ANY: u64 = 0;
pub const BPF_NOEXIST: u64 = 1;
pub const BPF_EXIST: u64 = 2;
pub const BPF_F_LOCK: u64 = 4;
/// `BPF_F_RDONLY_PROG`: the program may not write the map.
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_F_NO_COMMON_LRU`: an LRU map keeps one LRU per CPU instead of a shared one.
pub const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;
/// The most elements an LRU map may have here: the model keeps a list node per element from
/// the start, as the kernel preallocates them.
const MAX_LRU_ELEMENTS: u32 = 1 << 24;

/// The most bytes of value storage a hash-like map gets up front. Up to this size the slab is
/// allocated for every element the map can hold when the map is created, as the kernel
/// preallocates hash elements, so a pointer into a value never moves while the map lives;
/// a larger map grows its slab as entries arrive instead (its values may then move on insert).
/// Zeroed allocations of this size are mapped lazily by the allocator, so unused capacity
/// costs address space, not memory.
const MAX_PREALLOCATED_BYTES: usize = 1 << 28;

/// The longest LPM trie key data, in bytes (the kernel's `LPM_DATA_SIZE_MAX`).
const LPM_DATA_SIZE_MAX: usize = 256;

/// A small, fast hasher for map keys (a multiply-rotate mix of 8-byte words, in the manner of
/// rustc's FxHasher, with a final avalanche so that the high bits the table uses for its
/// control bytes depend on every input bit). Hashing a 4- to 16-byte key costs a few
/// nanoseconds, against tens for the standard library's SipHash, which matters because a map
/// lookup is the most frequent helper call of XDP programs. The simulator is not a server:
/// keys only come from the program and its packets, so flooding resistance is not needed.
#[derive(Clone, Copy, Default)]
pub struct KeyHasher {
    hash: u64,
}

const KEY_HASH_MUL: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(KEY_HASH_MUL);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length is mixed in so that keys differing only in trailing zeroes differ.
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let h = self.hash;
        let h = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^ (h >> 32)
    }
}

/// A `HashMap` hashed with [`KeyHasher`]; iteration order is never observable (snapshots sort
/// by key), so only speed differs from the standard hasher.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// How a map's entries are indexed.
#[derive(Clone, Debug)]
enum Index {
    /// Array-like: the key is a u32 index; `present` tracks which entries exist for the types
    /// where an entry can be absent (prog, dev, cpu, xsk and map-of-map arrays).
    Array { present: Option<Vec<bool>> },
    /// Hash-like, keyed by the full key bytes.
    Hash(FastMap<Vec<u8>, u32>),
    /// LPM trie: `table` is keyed by the prefix length (4 bytes, little-endian) followed by
    /// the key data masked to that length, so a lookup can build its probe in a stack buffer
    /// and borrow it; `prefix_counts[p]` is how many stored prefixes are `p` bits long, and
    /// `lengths` lists the lengths whose count is not zero, longest first, so that a lookup
    /// visits only lengths that exist (none at all in an empty trie) instead of testing every
    /// length up to the key's.
    Lpm {
        table: FastMap<Vec<u8>, u32>,
        prefix_counts: Vec<u32>,
        lengths: Vec<u32>,
    },
    /// Queue or stack of values (no keys).
    Queue {
        items: VecDeque<Vec<u8>>,
        stack: bool,
    },
    /// Maps without storage a program can address (perf event arrays, ring buffers).
    None,
}

/// One map's state.
#[derive(Clone, Debug)]
pub struct MapState {
    pub def: MapDef,
    /// Number of CPUs the values are kept for (1 unless the type is per-CPU).
    pub value_cpus: usize,
    /// Number of possible CPUs of the simulated machine, which LRU lists are kept for.
    cpus: usize,
    index: Index,
    /// For hash-like maps: the key stored in each slot (empty when the slot is free).
    keys: Vec<Option<Vec<u8>>>,
    free: Vec<u32>,
    /// Value bytes: slot-major, then CPU, `value_size` bytes each.
    values: Vec<u8>,
    /// The replacement state of LRU hashes.
    lru: Option<Lru>,
    /// True when `values` holds every slot the map can ever use, so value storage never
    /// moves (array maps, and hash-like maps up to [`MAX_PREALLOCATED_BYTES`]).
    stable: bool,
    /// Bytes of ring buffer space taken by records nobody consumed.
    pub ringbuf_used: u64,
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A value in slot `slot`.
    Value(u32),
    /// An inner map (maps of maps).
    Map(u32),
}

fn is_array_like(t: MapType) -> bool {
    matches!(
        t,
        MapType::Array
            | MapType::PercpuArray
            | MapType::ProgArray
            | MapType::Devmap
            | MapType::Cpumap
            | MapType::Xskmap
            | MapType::ArrayOfMaps
            | MapType::PerfEventArray
            | MapType::CgroupArray
    )
}

/// Array types whose entries can be absent rather than zero.
fn has_presence(t: MapType) -> bool {
    matches!(
        t,
        MapType::ProgArray
            | MapType::Devmap
            | MapType::Cpumap
            | MapType::Xskmap
            | MapType::ArrayOfMaps
    )
}

fn is_hash_like(t: MapType) -> bool {
    matches!(
        t,
        MapType::Hash
            | MapType::PercpuHash
            | MapType::LruHash
            | MapType::LruPercpuHash
            | MapType::DevmapHash
            | MapType::HashOfMaps
    )
}

/// Masks `data` to its first `plen` bits (the rest zeroed), as LPM matching sees it.
#[cfg(test)]
fn mask_prefix(data: &[u8], plen: u32) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    mask_prefix_into(data, plen, &mut out);
    out
}

/// Writes `data` masked to its first `plen` bits into `out` (of the same length).
fn mask_prefix_into(data: &[u8], plen: u32, out: &mut [u8]) {
    for (i, (b, o)) in data.iter().zip(out.iter_mut()).enumerate() {
        let bit = i as u32 * 8;
        *o = if bit + 8 <= plen {
            *b
        } else if bit >= plen {
            0
        } else {
            b & (0xffu8 << (8 - (plen - bit)))
        };
    }
}

/// Splits an LPM key into its prefix length and data, when it has both and the length fits.
fn lpm_parts(key: &[u8]) -> Option<(u32, &[u8])> {
    let plen = u32::from_le_bytes(key.get(..4)?.try_into().ok()?);
    let data = &key[4..];
    (plen <= data.len() as u32 * 8 && data.len() <= LPM_DATA_SIZE_MAX).then_some((plen, data))
}

/// The table key of prefix `plen` of `data`, built in `buf`; returns the used part.
fn lpm_probe<'b>(buf: &'b mut [u8; 4 + LPM_DATA_SIZE_MAX], data: &[u8], plen: u32) -> &'b [u8] {
    buf[..4].copy_from_slice(&plen.to_le_bytes());
    mask_prefix_into(data, plen, &mut buf[4..4 + data.len()]);
    &buf[..4 + data.len()]
}

impl MapState {
    /// Creates an empty map (global-data maps start with their initial value).
    pub fn new(def: &MapDef, cpus: usize) -> Result<MapState, String> {
        let t = def.map_type;
        let value_cpus = if t.is_per_cpu() { cpus.max(1) } else { 1 };
        let vs = def.value_size as usize;
        let n = def.max_entries as usize;
        let index = if is_array_like(t) {
            if matches!(
                t,
                MapType::Array
                    | MapType::PercpuArray
                    | MapType::ProgArray
                    | MapType::Devmap
                    | MapType::Cpumap
                    | MapType::Xskmap
                    | MapType::ArrayOfMaps
            ) && def.key_size != 4
            {
                return Err(format!(
                    "map `{}`: an array map needs 4-byte keys, not {}",
                    def.name, def.key_size
                ));
            }
            Index::Array {
                present: has_presence(t).then(|| vec![false; n]),
            }
        } else if is_hash_like(t) {
            Index::Hash(FastMap::default())
        } else if t == MapType::LpmTrie {
            if def.key_size <= 4 {
                return Err(format!(
                    "map `{}`: an LPM trie key is a 4-byte prefix length and data, so key_size must exceed 4",
                    def.name
                ));
            }
            if def.key_size as usize - 4 > LPM_DATA_SIZE_MAX {
                return Err(format!(
                    "map `{}`: an LPM trie key holds at most {LPM_DATA_SIZE_MAX} bytes of data (the kernel's LPM_DATA_SIZE_MAX), not {}",
                    def.name,
                    def.key_size - 4
                ));
            }
            Index::Lpm {
                table: FastMap::default(),
                prefix_counts: vec![0; (def.key_size as usize - 4) * 8 + 1],
                lengths: Vec::new(),
            }
        } else if matches!(t, MapType::Queue | MapType::Stack) {
            Index::Queue {
                items: VecDeque::new(),
                stack: t == MapType::Stack,
            }
        } else {
            Index::None
        };
        // Array storage is allocated up front; hash slabs grow as entries arrive.
        let values = match (&index, t) {
            (_, MapType::PerfEventArray | MapType::CgroupArray) => Vec::new(),
            (Index::Array { .. }, _) => {
                let total = n
                    .checked_mul(vs)
                    .and_then(|x| x.checked_mul(value_cpus))
                    .filter(|x| *x <= 1 << 31)
                    .ok_or_else(|| {
                        format!(
                            "map `{}` is too large to simulate ({} entries of {} bytes)",
                            def.name, n, vs
                        )
                    })?;
                vec![0u8; total]
            }
            _ => Vec::new(),
        };
        let lru = if matches!(t, MapType::LruHash | MapType::LruPercpuHash) {
            let percpu = def.flags & BPF_F_NO_COMMON_LRU != 0;
            let elements = element_count(def.max_entries, cpus.max(1) as u32, percpu);
            if elements > MAX_LRU_ELEMENTS {
                return Err(format!(
                    "map `{}` is too large to simulate ({} LRU elements, at most {} are supported)",
                    def.name, elements, MAX_LRU_ELEMENTS
                ));
            }
            Some((Lru::new(elements, cpus.max(1) as u32, percpu), elements))
        } else {
            None
        };
        // Hash-like maps get every slot they can use up front when that is not too much: an
        // LRU map one per LRU node (it may use more slots than `max_entries`), the others one
        // per entry (an insert past `max_entries` fails before it takes a slot).
        let (values, stable) = match (&index, &lru) {
            (Index::Array { .. }, _) => (values, true),
            (Index::Hash(_) | Index::Lpm { .. }, lru) => {
                let slots = lru.as_ref().map_or(n, |(_, e)| *e as usize);
                match slots
                    .checked_mul(vs)
                    .and_then(|x| x.checked_mul(value_cpus))
                    .filter(|x| *x <= MAX_PREALLOCATED_BYTES)
                {
                    Some(total) => (vec![0u8; total], true),
                    None => (values, false),
                }
            }
            _ => (values, false),
        };
        let lru = lru.map(|(l, _)| l);
        let mut m = MapState {
            def: def.clone(),
            value_cpus,
            cpus: cpus.max(1),
            index,
            keys: Vec::new(),
            free: Vec::new(),
            values,
            lru,
            stable,
            ringbuf_used: 0,
        };
        if let Some(init) = &def.initial_value {
            if let Some(v) = m.value_mut(0, 0) {
                let n = init.len().min(v.len());
                v[..n].copy_from_slice(&init[..n]);
            }
        }
        Ok(m)
    }

    pub fn map_type(&self) -> MapType {
        self.def.map_type
    }

    /// True when programs may not write the map (`.rodata`, `BPF_F_RDONLY_PROG`).
    pub fn read_only(&self) -> bool {
        matches!(
            self.def.origin,
            MapOrigin::GlobalData {
                read_only: true,
                ..
            }
        ) || self.def.flags & BPF_F_RDONLY_PROG != 0
    }

    fn vs(&self) -> usize {
        self.def.value_size as usize
    }

    /// The bytes of a value for one CPU (CPU is ignored for maps that are not per-CPU).
    pub fn value_mut(&mut self, slot: u32, cpu: u32) -> Option<&mut [u8]> {
        let vs = self.vs();
        let cpu = if self.value_cpus == 1 {
            0
        } else {
            cpu as usize
        };
        if cpu >= self.value_cpus {
            return None;
        }
        let start = (slot as usize * self.value_cpus + cpu) * vs;
        self.values.get_mut(start..start + vs)
    }

    pub fn value(&self, slot: u32, cpu: u32) -> Option<&[u8]> {
        let vs = self.vs();
        let cpu = if self.value_cpus == 1 {
            0
        } else {
            cpu as usize
        };
        if cpu >= self.value_cpus {
            return None;
        }
        let start = (slot as usize * self.value_cpus + cpu) * vs;
        self.values.get(start..start + vs)
    }

    fn array_index(&self, key: &[u8]) -> Option<u32> {
        let i = u32::from_le_bytes(key.get(..4)?.try_into().ok()?);
        (i < self.def.max_entries).then_some(i)
    }

    fn entry_present(&self, i: u32) -> bool {
        match &self.index {
            Index::Array {
                present: Some(present),
            } => present.get(i as usize).copied().unwrap_or(false),
            _ => true,
        }
    }

    /// Looks a key up as `bpf_map_lookup_elem` does from a program.
    pub fn lookup(&mut self, key: &[u8]) -> Option<Found> {
        let t = self.map_type();
        let found = match &self.index {
            Index::Array { .. } => {
                let i = self.array_index(key)?;
                if !self.entry_present(i) {
                    return None;
                }
                i
            }
            Index::Hash(h) => *h.get(key)?,
            Index::Lpm { table, lengths, .. } => {
                let (plen, data) = lpm_parts(key)?;
                // The longest stored prefix that covers the key wins; a stored prefix longer than
                // the key's own length cannot match. Only lengths some prefix has are probed.
                let mut candidates = lengths.iter().filter(|p| **p <= plen).peekable();
                // The probe buffer is only filled when there is something to probe.
                candidates.peek()?;
                let mut buf = [0u8; 4 + LPM_DATA_SIZE_MAX];
                candidates.find_map(|p| table.get(lpm_probe(&mut buf, data, *p)).copied())?
            }
            Index::Queue { .. } | Index::None => return None,
        };
        if let Some(lru) = &mut self.lru {
            lru.mark(found);
        }
        if matches!(t, MapType::ArrayOfMaps | MapType::HashOfMaps) {
            let inner = self.value(found, 0).map(super::memory::read_le)?;
            return Some(Found::Map(inner as u32));
        }
        Some(Found::Value(found))
    }

    fn alloc_slot(&mut self) -> u32 {
        if let Some(s) = self.free.pop() {
            return s;
        }
        let s = self.keys.len() as u32;
        self.keys.push(None);
        // A preallocated slab already holds the slot (its bytes are zero, as a grown one's).
        let stride = self.vs() * self.value_cpus;
        let end = (s as usize + 1) * stride;
        if self.values.len() < end {
            self.values.resize(end, 0);
        }
        s
    }

    /// True when a value's bytes stay where they are for the life of the map (inserts never
    /// move them), so a host address of a value may be kept across helper calls, as a kernel
    /// program keeps the pointer a lookup returned.
    pub fn storage_is_stable(&self) -> bool {
        self.stable
    }

    /// The value of `key` for CPU 0 as user space reads it (no LRU reference), when present:
    /// what `bpf_redirect_map` records, without copying.
    pub fn peek_value(&self, key: &[u8]) -> Option<&[u8]> {
        match self.lookup_raw(key)? {
            Found::Value(slot) if self.entry_present(slot) => self.value(slot, 0),
            _ => None,
        }
    }

    fn count(&self) -> usize {
        self.keys.len() - self.free.len()
    }

    /// Writes `value` into `slot`: for the current CPU only when `all_cpus` is false (a
    /// program's update), and zeroing the other CPUs when the element is new.
    fn store_value(&mut self, slot: u32, cpu: u32, value: &[u8], new: bool, all_cpus: bool) {
        for c in 0..self.value_cpus as u32 {
            let this = all_cpus || c == cpu || self.value_cpus == 1;
            if let Some(v) = self.value_mut(slot, c) {
                if this {
                    let n = value.len().min(v.len());
                    v[..n].copy_from_slice(&value[..n]);
                } else if new {
                    v.fill(0);
                }
            }
        }
    }

    /// Updates an entry as `bpf_map_update_elem` does from a program; returns 0 or `-errno`.
    pub fn update(&mut self, key: &[u8], value: &[u8], flags: u64, cpu: u32) -> i64 {
        if (flags & !BPF_F_LOCK) > BPF_EXIST {
            return -EINVAL;
        }
        // No map here carries a BTF spin lock, so the kernel refuses BPF_F_LOCK.
        if flags & BPF_F_LOCK != 0 {
            return -EINVAL;
        }
        match &mut self.index {
            Index::Array { present } => {
                let Some(i) = key
                    .get(..4)
                    .and_then(|k| k.try_into().ok())
                    .map(u32::from_le_bytes)
                else {
                    return -EINVAL;
                };
                if i >= self.def.max_entries {
                    return -E2BIG;
                }
                if flags == BPF_NOEXIST {
                    // Every array element always exists.
                    if present.is_none() || present.as_ref().is_some_and(|p| p[i as usize]) {
                        return -EEXIST;
                    }
                }
                if let Some(p) = present {
                    p[i as usize] = true;
                }
                self.store_value(i, cpu, value, false, false);
                0
            }
            Index::Hash(_) if self.lru.is_some() => self.update_lru(key, value, flags, cpu),
            Index::Hash(h) => {
                let existing = h.get(key).copied();
                if existing.is_some() && flags == BPF_NOEXIST {
                    return -EEXIST;
                }
                if existing.is_none() && flags == BPF_EXIST {
                    return -ENOENT;
                }
                let slot = match existing {
                    Some(s) => s,
                    None => {
                        if self.count() >= self.def.max_entries as usize {
                            return -E2BIG;
                        }
                        let s = self.alloc_slot();
                        if let Index::Hash(h) = &mut self.index {
                            h.insert(key.to_vec(), s);
                        }
                        self.keys[s as usize] = Some(key.to_vec());
                        s
                    }
                };
                self.store_value(slot, cpu, value, existing.is_none(), false);
                0
            }
            Index::Lpm { table, .. } => {
                let Some((plen, data)) = lpm_parts(key) else {
                    return -EINVAL;
                };
                let mut buf = [0u8; 4 + LPM_DATA_SIZE_MAX];
                let probe = lpm_probe(&mut buf, data, plen);
                let existing = table.get(probe).copied();
                if existing.is_some() && flags == BPF_NOEXIST {
                    return -EEXIST;
                }
                if existing.is_none() && flags == BPF_EXIST {
                    return -ENOENT;
                }
                let slot = match existing {
                    Some(s) => s,
                    None => {
                        if self.count() >= self.def.max_entries as usize {
                            return -ENOSPC;
                        }
                        let s = self.alloc_slot();
                        if let Index::Lpm {
                            table,
                            prefix_counts,
                            lengths,
                        } = &mut self.index
                        {
                            table.insert(probe.to_vec(), s);
                            if let Some(c) = prefix_counts.get_mut(plen as usize) {
                                *c += 1;
                                if *c == 1 {
                                    // Longest first: the new length goes before the first
                                    // shorter one.
                                    let at = lengths.partition_point(|l| *l > plen);
                                    lengths.insert(at, plen);
                                }
                            }
                        }
                        s
                    }
                };
                // The kernel replaces the node, so the stored key becomes the new one.
                self.keys[slot as usize] = Some(key.to_vec());
                self.store_value(slot, cpu, value, true, true);
                0
            }
            Index::Queue { .. } | Index::None => -EINVAL,
        }
    }

    /// Takes a node for a new element of an LRU hash, evicting as the kernel does, and returns
    /// the value slot it stores its element in.
    fn lru_pop(&mut self, cpu: u32) -> Option<u32> {
        let MapState {
            lru, index, keys, ..
        } = self;
        let lru = lru.as_mut()?;
        let node = lru.pop_free(cpu, &mut |slot| {
            // The kernel's eviction unlinks the element from its bucket; the slot's memory
            // stays as it is until the node is used again.
            let Some(key) = keys.get_mut(slot as usize).and_then(Option::take) else {
                return false;
            };
            if let Index::Hash(h) = index {
                h.remove(&key);
            }
            true
        })?;
        if let Some(slot) = self.lru.as_ref().and_then(|l| l.slot_of(node)) {
            return Some(slot);
        }
        let slot = self.alloc_slot();
        if let Some(lru) = &mut self.lru {
            lru.bind(node, slot);
        }
        Some(slot)
    }

    /// `bpf_map_update_elem` on an LRU hash. The node for a new element is taken before the
    /// key is looked up, so even an update that then fails can evict, and the eviction can
    /// remove the very key being updated. An `LRU_HASH` replaces an existing element with the
    /// new node (which starts referenced); an `LRU_PERCPU_HASH` updates in place, marks the
    /// element referenced and takes no node at all for `BPF_EXIST`.
    fn update_lru(&mut self, key: &[u8], value: &[u8], flags: u64, cpu: u32) -> i64 {
        let per_cpu = self.map_type() == MapType::LruPercpuHash;
        let new = if per_cpu && flags == BPF_EXIST {
            None
        } else {
            match self.lru_pop(cpu) {
                Some(s) => Some(s),
                None => return -ENOMEM,
            }
        };
        if let (Some(s), false) = (new, per_cpu) {
            self.store_value(s, cpu, value, true, false);
        }
        let old = match &self.index {
            Index::Hash(h) => h.get(key).copied(),
            _ => None,
        };
        let rc = match (old, flags) {
            (Some(_), BPF_NOEXIST) => -EEXIST,
            (None, BPF_EXIST) => -ENOENT,
            _ => 0,
        };
        let (Some(lru), true) = (self.lru.as_mut(), rc == 0) else {
            if let (Some(lru), Some(s)) = (self.lru.as_mut(), new) {
                lru.release(s);
            }
            return rc;
        };
        match (old, new) {
            (Some(o), _) if per_cpu => {
                lru.mark(o);
                if let Some(s) = new {
                    lru.release(s);
                }
                self.store_value(o, cpu, value, false, false);
            }
            (_, Some(s)) => {
                // Replacing an element moves its stored key to the new slot and repoints the
                // index entry; only a new key is copied (once for the index, once for the slot).
                let moved_key = match old {
                    Some(o) => {
                        lru.mark(s);
                        lru.release(o);
                        self.keys.get_mut(o as usize).and_then(Option::take)
                    }
                    None => None,
                };
                if let Index::Hash(h) = &mut self.index {
                    match h.get_mut(key) {
                        Some(e) => *e = s,
                        None => {
                            h.insert(key.to_vec(), s);
                        }
                    }
                }
                if let Some(k) = self.keys.get_mut(s as usize) {
                    *k = Some(moved_key.unwrap_or_else(|| key.to_vec()));
                }
                if per_cpu {
                    self.store_value(s, cpu, value, true, false);
                }
            }
            // Without a new node the key must exist (BPF_EXIST on a per-CPU LRU), which the
            // first arm handles.
            (_, None) => {}
        }
        0
    }

    /// Deletes an entry as `bpf_map_delete_elem` does; returns 0 or `-errno`.
    pub fn delete(&mut self, key: &[u8]) -> i64 {
        let slot = match &mut self.index {
            Index::Array { .. } => return -EINVAL,
            Index::Hash(h) => match h.remove(key) {
                Some(s) => s,
                None => return -ENOENT,
            },
            Index::Lpm {
                table,
                prefix_counts,
                lengths,
            } => {
                let Some((plen, data)) = lpm_parts(key) else {
                    return -EINVAL;
                };
                let mut buf = [0u8; 4 + LPM_DATA_SIZE_MAX];
                match table.remove(lpm_probe(&mut buf, data, plen)) {
                    Some(s) => {
                        if let Some(c) = prefix_counts.get_mut(plen as usize) {
                            *c = c.saturating_sub(1);
                            if *c == 0 {
                                lengths.retain(|l| *l != plen);
                            }
                        }
                        s
                    }
                    None => return -ENOENT,
                }
            }
            Index::Queue { .. } | Index::None => return -EINVAL,
        };
        if let Some(k) = self.keys.get_mut(slot as usize) {
            *k = None;
        }
        match &mut self.lru {
            // The slot stays with its LRU node, which goes back to the LRU's free lists.
            Some(lru) => lru.release(slot),
            None => self.free.push(slot),
        }
        0
    }

    /// `bpf_map_push_elem` for queues and stacks.
    pub fn push(&mut self, value: &[u8], flags: u64) -> i64 {
        let max = self.def.max_entries as usize;
        let Index::Queue { items, .. } = &mut self.index else {
            return -EINVAL;
        };
        if flags & !BPF_EXIST != 0 {
            return -EINVAL;
        }
        if items.len() >= max {
            if flags & BPF_EXIST == 0 {
                return -E2BIG;
            }
            // Overwrite mode drops the oldest element to make room, for stacks as for queues.
            items.pop_front();
        }
        items.push_back(value.to_vec());
        0
    }

    /// `bpf_map_pop_elem` (remove) and `bpf_map_peek_elem` (keep).
    pub fn pop(&mut self, remove: bool) -> Result<Vec<u8>, i64> {
        let Index::Queue { items, stack } = &mut self.index else {
            return Err(-EINVAL);
        };
        let v = match (*stack, remove) {
            (true, true) => items.pop_back(),
            (true, false) => items.back().cloned(),
            (false, true) => items.pop_front(),
            (false, false) => items.front().cloned(),
        };
        v.ok_or(-ENOENT)
    }

    /// Value of an array entry for every CPU, for snapshots.
    fn cpu_values(&self, slot: u32) -> Vec<Vec<u8>> {
        (0..self.value_cpus as u32)
            .map(|c| self.value(slot, c).map(<[u8]>::to_vec).unwrap_or_default())
            .collect()
    }

    fn entry(&self, key: Vec<u8>, slot: u32) -> MapEntry {
        let vals = self.cpu_values(slot);
        if self.map_type().is_per_cpu() {
            MapEntry {
                key: to_hex(&key),
                value: None,
                per_cpu: Some(vals.iter().map(|v| to_hex(v)).collect()),
            }
        } else {
            MapEntry {
                key: to_hex(&key),
                value: Some(to_hex(vals.first().map(Vec::as_slice).unwrap_or(&[]))),
                per_cpu: None,
            }
        }
    }

    /// The map's contents in snapshot form.
    pub fn contents(&self) -> MapContents {
        let mut entries = Vec::new();
        match &self.index {
            Index::Array { present } => {
                if !self.values.is_empty() {
                    for i in 0..self.def.max_entries {
                        let keep = match present {
                            Some(p) => p.get(i as usize).copied().unwrap_or(false),
                            None => self.cpu_values(i).iter().any(|v| v.iter().any(|b| *b != 0)),
                        };
                        if keep {
                            entries.push(self.entry(i.to_le_bytes().to_vec(), i));
                        }
                    }
                }
            }
            Index::Hash(_) | Index::Lpm { .. } => {
                for (slot, key) in self.keys.iter().enumerate() {
                    if let Some(k) = key {
                        entries.push(self.entry(k.clone(), slot as u32));
                    }
                }
                entries.sort_by(|a, b| a.key.cmp(&b.key));
            }
            Index::Queue { items, .. } => {
                for (i, v) in items.iter().enumerate() {
                    entries.push(MapEntry {
                        key: to_hex(&(i as u32).to_le_bytes()),
                        value: Some(to_hex(v)),
                        per_cpu: None,
                    });
                }
            }
            Index::None => {}
        }
        MapContents {
            map_type: self.map_type(),
            key_size: self.def.key_size,
            value_size: self.def.value_size,
            entries,
        }
    }

    /// Replaces the map's contents with a snapshot's (user-space semantics: all CPUs written).
    pub fn load(&mut self, c: &MapContents) -> Result<(), String> {
        let name = self.def.name.clone();
        if c.map_type != self.map_type() {
            return Err(format!(
                "map `{name}`: snapshot has type {:?}, the object says {:?}",
                c.map_type,
                self.map_type()
            ));
        }
        let fresh = MapState::new(
            &MapDef {
                initial_value: None,
                ..self.def.clone()
            },
            self.cpus,
        )?;
        *self = MapState {
            value_cpus: self.value_cpus,
            ..fresh
        };
        for e in &c.entries {
            let key = from_hex(&e.key).map_err(|m| format!("map `{name}`: {m}"))?;
            let vs = self.vs();
            let per_cpu: Vec<Vec<u8>> = match (&e.value, &e.per_cpu) {
                (Some(v), None) => vec![from_hex(v).map_err(|m| format!("map `{name}`: {m}"))?],
                (None, Some(vs)) => vs
                    .iter()
                    .map(|v| from_hex(v).map_err(|m| format!("map `{name}`: {m}")))
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(format!(
                        "map `{name}`: entry {} needs exactly one of `value` and `per_cpu`",
                        e.key
                    ))
                }
            };
            if per_cpu.len() > self.value_cpus {
                return Err(format!(
                    "map `{name}`: entry {} has {} per-CPU values but the runtime simulates {} CPUs",
                    e.key,
                    per_cpu.len(),
                    self.value_cpus
                ));
            }
            if per_cpu.iter().any(|v| v.len() != vs) {
                return Err(format!(
                    "map `{name}`: entry {} value is not {vs} bytes long",
                    e.key
                ));
            }
            if matches!(self.index, Index::Queue { .. }) {
                if let Index::Queue { items, .. } = &mut self.index {
                    items.push_back(per_cpu[0].clone());
                }
                continue;
            }
            if key.len() != self.def.key_size as usize {
                return Err(format!(
                    "map `{name}`: key {} is not {} bytes long",
                    e.key, self.def.key_size
                ));
            }
            let rc = self.update(&key, &per_cpu[0], BPF_ANY, 0);
            if rc != 0 {
                return Err(format!(
                    "map `{name}`: cannot insert key {} (error {rc})",
                    e.key
                ));
            }
            let Some(Found::Value(slot)) = self.lookup_raw(&key) else {
                return Err(format!("map `{name}`: key {} vanished after insert", e.key));
            };
            for (cpu, v) in per_cpu.iter().enumerate() {
                if let Some(dst) = self.value_mut(slot, cpu as u32) {
                    dst.copy_from_slice(v);
                }
            }
        }
        Ok(())
    }

    /// A lookup that neither follows inner maps nor counts as an LRU use.
    fn lookup_raw(&self, key: &[u8]) -> Option<Found> {
        match &self.index {
            Index::Array { .. } => self.array_index(key).map(Found::Value),
            Index::Hash(h) => h.get(key).copied().map(Found::Value),
            Index::Lpm { table, .. } => {
                let (plen, data) = lpm_parts(key)?;
                let mut buf = [0u8; 4 + LPM_DATA_SIZE_MAX];
                table
                    .get(lpm_probe(&mut buf, data, plen))
                    .copied()
                    .map(Found::Value)
            }
            _ => None,
        }
    }

    /// Entry `index` of a prog array or map-of-maps array, as a u32, when present.
    pub fn array_u32(&self, index: u32) -> Option<u32> {
        if index >= self.def.max_entries || !self.entry_present(index) {
            return None;
        }
        self.value(index, 0)
            .map(|v| super::memory::read_le(v) as u32)
    }

    /// Sets an entry from user space (all CPUs), for tests and tools: `BPF_ANY` semantics.
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), i64> {
        if let Index::Queue { .. } = self.index {
            let rc = self.push(value, BPF_ANY);
            return if rc == 0 { Ok(()) } else { Err(rc) };
        }
        let rc = self.update(key, value, BPF_ANY, 0);
        if rc != 0 {
            return Err(rc);
        }
        if let Some(Found::Value(slot)) = self.lookup_raw(key) {
            for cpu in 0..self.value_cpus as u32 {
                if let Some(dst) = self.value_mut(slot, cpu) {
                    let n = value.len().min(dst.len());
                    dst[..n].copy_from_slice(&value[..n]);
                }
            }
        }
        Ok(())
    }

    /// Reads an entry from user space: one value per simulated CPU.
    pub fn get(&mut self, key: &[u8]) -> Option<Vec<Vec<u8>>> {
        match self.lookup_raw(key)? {
            Found::Value(slot) if self.entry_present(slot) => Some(self.cpu_values(slot)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_masking() {
        assert_eq!(mask_prefix(&[0xff, 0xff], 12), vec![0xff, 0xf0]);
        assert_eq!(mask_prefix(&[0xff, 0xff], 0), vec![0, 0]);
        assert_eq!(mask_prefix(&[0xab, 0xcd], 16), vec![0xab, 0xcd]);
    }

    fn def(t: MapType, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
        MapDef {
            name: "m".into(),
            map_type: t,
            key_size,
            value_size,
            max_entries,
            flags: 0,
            inner: None,
            initial_value: None,
            origin: MapOrigin::Btf,
        }
    }

    fn lpm_key(plen: u32, addr: [u8; 4]) -> Vec<u8> {
        let mut k = plen.to_le_bytes().to_vec();
        k.extend_from_slice(&addr);
        k
    }

    fn slot_of(m: &mut MapState, key: &[u8]) -> Option<u32> {
        match m.lookup(key) {
            Some(Found::Value(s)) => Some(s),
            _ => None,
        }
    }

    /// The LPM index probes only stored prefix lengths; removing the longest match falls back
    /// to the next one, and the counts follow inserts, replacements and deletes.
    #[test]
    fn lpm_longest_match_follows_inserts_and_deletes() {
        let mut m = MapState::new(&def(MapType::LpmTrie, 8, 4, 8), 1).expect("lpm map");
        let query = lpm_key(32, [10, 1, 2, 3]);
        assert_eq!(m.lookup(&query), None, "empty trie");
        assert_eq!(m.update(&lpm_key(0, [0; 4]), &[0; 4], BPF_ANY, 0), 0);
        assert_eq!(m.update(&lpm_key(8, [10, 9, 9, 9]), &[8; 4], BPF_ANY, 0), 0);
        assert_eq!(
            m.update(&lpm_key(24, [10, 1, 2, 0]), &[24; 4], BPF_ANY, 0),
            0
        );
        // The same prefix with other host bits is the same entry.
        assert_eq!(
            m.update(&lpm_key(24, [10, 1, 2, 77]), &[25; 4], BPF_NOEXIST, 0),
            -EEXIST
        );
        let s24 = slot_of(&mut m, &query).expect("/24 matches");
        assert_eq!(m.value(s24, 0), Some(&[24u8; 4][..]));
        assert_eq!(m.delete(&lpm_key(24, [10, 1, 2, 9])), 0);
        let s8 = slot_of(&mut m, &query).expect("/8 matches");
        assert_eq!(m.value(s8, 0), Some(&[8u8; 4][..]));
        assert_eq!(m.delete(&lpm_key(24, [10, 1, 2, 9])), -ENOENT);
        assert_eq!(m.delete(&lpm_key(8, [10, 0, 0, 0])), 0);
        let s0 = slot_of(&mut m, &query).expect("/0 matches everything");
        assert_eq!(m.value(s0, 0), Some(&[0u8; 4][..]));
        // A query shorter than a stored prefix does not match it.
        assert_eq!(
            m.update(&lpm_key(16, [192, 168, 0, 0]), &[16; 4], BPF_ANY, 0),
            0
        );
        assert_eq!(slot_of(&mut m, &lpm_key(8, [192, 168, 0, 0])), Some(s0));
        assert_eq!(m.update(&lpm_key(33, [0; 4]), &[0; 4], BPF_ANY, 0), -EINVAL);
    }

    /// Hash maps hold every element's value from the start, so a value does not move when
    /// later inserts fill the map (the JIT keeps its host address).
    #[test]
    fn hash_values_stay_put_while_the_map_fills() {
        for t in [MapType::Hash, MapType::LruHash, MapType::PercpuHash] {
            let mut m = MapState::new(&def(t, 4, 16, 64), 2).expect("hash map");
            assert!(m.storage_is_stable(), "{t:?}");
            assert_eq!(m.update(&0u32.to_le_bytes(), &[7; 16], BPF_ANY, 0), 0);
            let s = slot_of(&mut m, &0u32.to_le_bytes()).expect("inserted");
            let before = m.value(s, 0).map(<[u8]>::as_ptr);
            // An LRU map may evict before it is full, so it gets a quarter of its entries.
            let last: u32 = if t == MapType::LruHash { 16 } else { 64 };
            for k in 1..last {
                assert_eq!(m.update(&k.to_le_bytes(), &[k as u8; 16], BPF_ANY, 0), 0);
            }
            let s = slot_of(&mut m, &0u32.to_le_bytes()).expect("still there");
            assert_eq!(m.value(s, 0).map(<[u8]>::as_ptr), before, "{t:?}");
            assert_eq!(m.value(s, 0), Some(&[7u8; 16][..]), "{t:?}");
            assert_eq!(m.peek_value(&5u32.to_le_bytes()), Some(&[5u8; 16][..]));
        }
    }

    /// The key hasher tells apart keys that differ only in length or in trailing zeroes.
    #[test]
    fn key_hasher_separates_lengths() {
        let hash = |b: &[u8]| {
            let mut h = KeyHasher::default();
            h.write(b);
            h.finish()
        };
        assert_ne!(hash(&[1, 0, 0, 0]), hash(&[1, 0, 0, 0, 0, 0, 0, 0]));
        assert_ne!(hash(&[1, 2, 3, 4]), hash(&[4, 3, 2, 1]));
        assert_ne!(hash(&[0; 9]), hash(&[0; 10]));
        assert_eq!(hash(&[9; 13]), hash(&[9; 13]));
    }
}
