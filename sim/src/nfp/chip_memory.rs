//! The chip's memories as the NFP model sees them: the images of the maps the backend laid
//! out in chip memory (`hw::nfp::abi::MapLayout`), which microcode reads and writes with
//! memory commands like any other memory.
//!
//! The shared runtime stays the one definition of map contents between runs: when a program
//! is loaded the runtime's maps are converted into their images ([`ChipMemory::seed`]), and
//! after the packets the images are converted back ([`ChipMemory::store`]) so that the
//! differential test compares the maps the microcode left with the interpreter's. During a
//! run the image is the truth: a helper the lookup engine serves from the runtime that is
//! given a pointer into an image (a `bpf_trace_printk` format in `.rodata`, a checksum over a
//! map value) sees that value copied into the runtime first and copied back afterwards, as
//! the lookup engine would read and write chip memory itself.
//!
//! A hash image (plain or per-CPU) is converted with [`chip_hash`] and linear probing,
//! exactly as the update routine inserts, so that the microcode finds seeded keys; converting
//! back lists the used entries (the runtime's element order, like the kernel's, is not part
//! of a snapshot), with each key rebuilt from the words the microcode compares.
//!
//! Memory is kept in 4 KiB pages allocated when first written, so a large or per-CPU map
//! (one copy per hardware context) costs only the pages a run touches. Every access is
//! checked against the layout: it must stay within one value of one entry, and writes to a
//! read-only map (`.rodata`) fault as they do in the runtime.

use crate::runtime::memory::{make_addr, read_le, split_addr, write_le, Fault};
use crate::runtime::Runtime;
use frontend::mapdata::{from_hex, to_hex, MapContents, MapEntry};
use hw::nfp::abi::{
    chip_hash, chip_key_from_words, chip_key_pieces, chip_key_words, MapLayout, MapPlacement,
    HASH_EMPTY, HASH_USED, REGION_CHIP_MAP, REGION_CHIP_MAP_END,
};
use std::collections::HashMap;

/// Bytes of one page of the sparse image.
const PAGE: u64 = 4096;

/// The mask of a prefix of `plen` bits over address data read little-endian from the key's
/// bytes (network order): the first `plen` bits of the bytes.
fn lpm_mask(plen: u32) -> u32 {
    match plen {
        0 => 0,
        p => (u32::MAX << (32 - p.min(32))).swap_bytes(),
    }
}

/// One map's image.
#[derive(Clone, Debug)]
pub struct MapImage {
    pub name: String,
    pub layout: MapLayout,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub read_only: bool,
    pages: HashMap<u64, Box<[u8]>>,
}

/// Where an access landed: the entry, the per-CPU copy and the byte in the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueAt {
    pub map: usize,
    pub entry: u32,
    pub copy: u32,
    pub offset: u32,
}

impl MapImage {
    /// The entry offset of hash slot `index`.
    fn hash_entry(&self, index: u32) -> u64 {
        index as u64 * self.layout.entry_stride as u64
    }

    fn read_u32(&self, at: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(at, &mut b);
        u32::from_le_bytes(b)
    }

    /// Inserts the runtime's entries into an empty hash image the way the update routine
    /// does: the first empty entry of the key's probe sequence from [`chip_hash`], the key as
    /// its words ([`chip_key_words`]), and for a per-CPU hash each CPU's value in the copy of
    /// the same number.
    fn seed_hash(&mut self, contents: &MapContents) -> Result<(), String> {
        let l = self.layout.clone();
        let mask = l.capacity.wrapping_sub(1);
        for e in &contents.entries {
            let key = from_hex(&e.key).map_err(|m| format!("map `{}`: {m}", self.name))?;
            let values: Vec<Vec<u8>> = match (&e.value, &e.per_cpu) {
                (Some(v), _) if l.copies == 1 => {
                    vec![from_hex(v).map_err(|m| format!("map `{}`: {m}", self.name))?]
                }
                (_, Some(vs)) if l.copies > 1 => vs
                    .iter()
                    .map(|v| from_hex(v).map_err(|m| format!("map `{}`: {m}", self.name)))
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(format!(
                        "map `{}`: an entry whose values do not match the {} copies of its chip-memory layout",
                        self.name, l.copies
                    ))
                }
            };
            let mut index = chip_hash(&key) & mask;
            let mut placed = false;
            for _ in 0..l.capacity {
                let at = self.hash_entry(index);
                if self.read_u32(at) == HASH_EMPTY {
                    self.write(at, &HASH_USED.to_le_bytes());
                    let words: Vec<u8> = chip_key_words(&key)
                        .iter()
                        .flat_map(|w| w.to_le_bytes())
                        .collect();
                    self.write(at + l.key_offset as u64, &words);
                    for (copy, value) in values.iter().enumerate() {
                        let off = l.value_offset as u64 + copy as u64 * l.value_stride as u64;
                        self.write(at + off, value);
                    }
                    placed = true;
                    break;
                }
                index = (index + 1) & mask;
            }
            if !placed {
                return Err(format!(
                    "map `{}`: the chip-memory table is full",
                    self.name
                ));
            }
        }
        let count = contents.entries.len() as u32;
        self.write(l.count_offset as u64, &count.to_le_bytes());
        Ok(())
    }

    /// Writes the runtime's prefixes into an empty LPM image, in their order, as the update
    /// routine stores them (see `hw::nfp::abi::MapLayout`).
    fn seed_lpm(&mut self, contents: &MapContents) -> Result<(), String> {
        let l = self.layout.clone();
        let data_len = self.key_size.saturating_sub(4) as usize;
        if contents.entries.len() > l.capacity as usize {
            return Err(format!(
                "map `{}`: {} prefixes do not fit the {} of the chip-memory table",
                self.name,
                contents.entries.len(),
                l.capacity
            ));
        }
        for (slot, e) in contents.entries.iter().enumerate() {
            let key = from_hex(&e.key).map_err(|m| format!("map `{}`: {m}", self.name))?;
            let value = e
                .value
                .as_ref()
                .ok_or_else(|| format!("map `{}`: a prefix without a value", self.name))
                .and_then(|v| from_hex(v).map_err(|m| format!("map `{}`: {m}", self.name)))?;
            if key.len() != 4 + data_len {
                return Err(format!("map `{}`: a key of {} bytes", self.name, key.len()));
            }
            let plen = u32::from_le_bytes([key[0], key[1], key[2], key[3]]);
            let mut d = [0u8; 4];
            d[..data_len].copy_from_slice(&key[4..]);
            let data = u32::from_le_bytes(d);
            let mask = lpm_mask(plen);
            let at = slot as u64 * l.entry_stride as u64;
            let words = [plen + 1, data & mask, mask, data];
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            self.write(at, &bytes);
            self.write(
                l.value_offset as u64 + slot as u64 * l.value_stride as u64,
                &value,
            );
        }
        let count = contents.entries.len() as u32;
        self.write(l.count_offset as u64, &count.to_le_bytes());
        self.write(l.count_offset as u64 + 4, &count.div_ceil(4).to_le_bytes());
        Ok(())
    }

    /// The prefixes of an LPM image as a snapshot of the runtime's format.
    fn lpm_contents(&self, map_type: frontend::object::MapType) -> MapContents {
        let l = &self.layout;
        let data_len = self.key_size.saturating_sub(4) as usize;
        let mut entries = Vec::new();
        for slot in 0..l.capacity {
            let at = slot as u64 * l.entry_stride as u64;
            let state = self.read_u32(at);
            if state == 0 {
                continue;
            }
            let mut key = (state - 1).to_le_bytes().to_vec();
            key.extend_from_slice(&self.read_u32(at + 12).to_le_bytes()[..data_len]);
            let mut value = vec![0u8; self.value_size as usize];
            self.read(
                l.value_offset as u64 + slot as u64 * l.value_stride as u64,
                &mut value,
            );
            entries.push(MapEntry {
                key: to_hex(&key),
                value: Some(to_hex(&value)),
                per_cpu: None,
            });
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        MapContents {
            map_type,
            key_size: self.key_size,
            value_size: self.value_size,
            entries,
        }
    }

    /// The live entries of a hash image as a snapshot of the runtime's format, with `cpus`
    /// values each for a per-CPU hash.
    fn hash_contents(
        &self,
        map_type: frontend::object::MapType,
        cpus: usize,
    ) -> Result<MapContents, String> {
        let l = &self.layout;
        let words = chip_key_pieces(self.key_size).len();
        let mut entries = Vec::new();
        for index in 0..l.capacity {
            let at = self.hash_entry(index);
            if self.read_u32(at) != HASH_USED {
                continue;
            }
            let key_words: Vec<u32> = (0..words)
                .map(|w| self.read_u32(at + l.key_offset as u64 + 4 * w as u64))
                .collect();
            let key = chip_key_from_words(&key_words, self.key_size).ok_or_else(|| {
                format!(
                    "map `{}`: entry {index} holds key words {key_words:x?}, which no key of {} bytes reads as",
                    self.name, self.key_size
                )
            })?;
            let value_of = |copy: usize| {
                let mut value = vec![0u8; self.value_size as usize];
                let off = l.value_offset as u64 + copy as u64 * l.value_stride as u64;
                self.read(at + off, &mut value);
                to_hex(&value)
            };
            entries.push(if l.copies > 1 {
                MapEntry {
                    key: to_hex(&key),
                    value: None,
                    per_cpu: Some((0..cpus).map(value_of).collect()),
                }
            } else {
                MapEntry {
                    key: to_hex(&key),
                    value: Some(value_of(0)),
                    per_cpu: None,
                }
            });
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(MapContents {
            map_type,
            key_size: self.key_size,
            value_size: self.value_size,
            entries,
        })
    }

    fn read(&self, at: u64, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            let a = at + i as u64;
            *b = self
                .pages
                .get(&(a / PAGE))
                .map_or(0, |p| p[(a % PAGE) as usize]);
        }
    }

    fn write(&mut self, at: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let a = at + i as u64;
            let page = self
                .pages
                .entry(a / PAGE)
                .or_insert_with(|| vec![0u8; PAGE as usize].into_boxed_slice());
            page[(a % PAGE) as usize] = *b;
        }
    }
}

/// The images of every map of a program that lives in chip memory, by object map index.
#[derive(Clone, Debug, Default)]
pub struct ChipMemory {
    maps: Vec<Option<MapImage>>,
}

/// True when `region` names a map image rather than a runtime region.
pub fn is_chip_region(region: u32) -> bool {
    (REGION_CHIP_MAP..REGION_CHIP_MAP_END).contains(&region)
}

impl ChipMemory {
    /// Empty images for the maps of `placements` that have a layout.
    pub fn new(placements: &[MapPlacement]) -> ChipMemory {
        ChipMemory {
            maps: placements
                .iter()
                .map(|p| {
                    p.layout.as_ref().map(|l| MapImage {
                        name: p.name.clone(),
                        layout: l.clone(),
                        key_size: p.key_size,
                        value_size: p.value_size,
                        max_entries: p.max_entries,
                        read_only: false,
                        pages: HashMap::new(),
                    })
                })
                .collect(),
        }
    }

    /// True when map `m` lives in chip memory.
    pub fn has_image(&self, m: usize) -> bool {
        self.maps.get(m).is_some_and(Option::is_some)
    }

    /// The images, by object map index.
    pub fn images(&self) -> impl Iterator<Item = (usize, &MapImage)> {
        self.maps
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|m| (i, m)))
    }

    /// Replaces every image with the runtime's contents of its map (every CPU the runtime
    /// simulates becomes the per-CPU copy of the same number).
    pub fn seed(&mut self, rt: &Runtime) -> Result<(), String> {
        for (m, image) in self.maps.iter_mut().enumerate() {
            let Some(image) = image else { continue };
            let state = rt.maps().get(m).ok_or_else(|| {
                format!(
                    "map {m} (`{}`) is laid out in chip memory but the runtime has no such map",
                    image.name
                )
            })?;
            if state.value_cpus as u64 > image.layout.copies as u64 {
                return Err(format!(
                    "map `{}`: the runtime simulates {} CPUs but the chip keeps {} copies of each value",
                    image.name, state.value_cpus, image.layout.copies
                ));
            }
            image.read_only = state.read_only();
            image.pages.clear();
            if image.layout.is_hash() {
                image.seed_hash(&state.contents())?;
                continue;
            }
            if image.layout.is_lpm() {
                image.seed_lpm(&state.contents())?;
                continue;
            }
            for entry in 0..image.max_entries {
                for cpu in 0..state.value_cpus as u32 {
                    if let Some(v) = state
                        .value(entry, cpu)
                        .filter(|v| v.iter().any(|b| *b != 0))
                    {
                        let at = image.layout.value_offset(entry, cpu);
                        let v = v.to_vec();
                        image.write(at, &v);
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes every image back into the runtime's maps.
    pub fn store(&self, rt: &mut Runtime) -> Result<(), String> {
        for (m, image) in self.images() {
            let state = rt
                .map_mut(m)
                .ok_or_else(|| format!("map {m} (`{}`) is not in the runtime", image.name))?;
            if image.layout.is_lpm() {
                state.load(&image.lpm_contents(state.map_type()))?;
                continue;
            }
            if image.layout.is_hash() {
                let contents = image.hash_contents(state.map_type(), state.value_cpus)?;
                state.load(&contents)?;
                continue;
            }
            for entry in 0..image.max_entries {
                for cpu in 0..state.value_cpus as u32 {
                    let at = image.layout.value_offset(entry, cpu);
                    if let Some(v) = state.value_mut(entry, cpu) {
                        image.read(at, v);
                    }
                }
            }
        }
        Ok(())
    }

    /// Which value `len` bytes at `addr` fall in, checked against the layout.
    pub fn locate(&self, addr: u64, len: usize, write: bool) -> Result<ValueAt, Fault> {
        let (region, off) = split_addr(addr);
        let verb = if write { "write" } else { "read" };
        let map = region.wrapping_sub(REGION_CHIP_MAP) as usize;
        let Some(image) = self.maps.get(map).and_then(Option::as_ref) else {
            return Err(Fault::new(format!(
                "{verb} of {len} bytes at {addr:#x}: region {region:#x} is no map in chip memory"
            )));
        };
        let l = &image.layout;
        if l.has_table() {
            // The routines read and write entry headers and the count as well as values, so
            // a hash image checks only that the access stays within the table and its count.
            if off as u64 + len as u64 > l.count_offset as u64 + 8 {
                return Err(Fault::new(format!(
                    "{verb} of {len} bytes at {addr:#x} is past the end of map `{}` in chip memory",
                    image.name
                )));
            }
            if write && image.read_only {
                return Err(Fault::new(format!(
                    "write to read-only map `{}`",
                    image.name
                )));
            }
            return Ok(ValueAt {
                map,
                entry: off / l.entry_stride.max(1),
                copy: 0,
                offset: off % l.entry_stride.max(1),
            });
        }
        let entry = off / l.slot_stride.max(1);
        let within = off % l.slot_stride.max(1);
        let copy = within / l.value_stride.max(1);
        let offset = within % l.value_stride.max(1);
        if entry >= image.max_entries
            || copy >= l.copies
            || offset as u64 + len as u64 > image.value_size as u64
        {
            return Err(Fault::new(format!(
                "{verb} of {len} bytes at {addr:#x} is out of bounds of a value of map `{}` (entry {entry}, copy {copy}, bytes {offset}..{} of a {}-byte value)",
                image.name,
                offset as u64 + len as u64,
                image.value_size
            )));
        }
        if write && image.read_only {
            return Err(Fault::new(format!(
                "write to read-only map `{}`",
                image.name
            )));
        }
        Ok(ValueAt {
            map,
            entry,
            copy,
            offset,
        })
    }

    /// Reads a little-endian integer of `len` bytes (1, 2, 4 or 8).
    pub fn load(&self, addr: u64, len: usize) -> Result<u64, Fault> {
        let at = self.locate(addr, len, false)?;
        let mut buf = [0u8; 8];
        let n = len.min(8);
        if let Some(image) = self.maps.get(at.map).and_then(Option::as_ref) {
            image.read(split_addr(addr).1 as u64, &mut buf[..n]);
        }
        Ok(read_le(&buf[..n]))
    }

    /// Writes the low `len` bytes of `value`.
    pub fn store_le(&mut self, addr: u64, len: usize, value: u64) -> Result<(), Fault> {
        let at = self.locate(addr, len, true)?;
        let mut buf = [0u8; 8];
        let n = len.min(8);
        write_le(&mut buf[..n], value);
        if let Some(image) = self.maps.get_mut(at.map).and_then(Option::as_mut) {
            image.write(split_addr(addr).1 as u64, &buf[..n]);
        }
        Ok(())
    }

    /// Reads `len` bytes that lie within one value.
    pub fn read_bytes(&self, addr: u64, len: usize) -> Result<Vec<u8>, Fault> {
        let at = self.locate(addr, len, false)?;
        let mut out = vec![0u8; len];
        if let Some(image) = self.maps.get(at.map).and_then(Option::as_ref) {
            image.read(split_addr(addr).1 as u64, &mut out);
        }
        Ok(out)
    }

    /// Writes `data` within one value.
    pub fn write_bytes(&mut self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        let at = self.locate(addr, data.len(), true)?;
        if let Some(image) = self.maps.get_mut(at.map).and_then(Option::as_mut) {
            image.write(split_addr(addr).1 as u64, data);
        }
        Ok(())
    }

    /// Hands the value a chip-memory pointer points into to the runtime, for a helper the
    /// lookup engine serves there: copies the value into the runtime's map and returns the
    /// runtime's pointer to the same byte.
    pub fn lend(&self, rt: &mut Runtime, ptr: u64) -> Result<(u64, ValueAt), Fault> {
        let at = self.locate(ptr, 0, false)?;
        let image = self
            .maps
            .get(at.map)
            .and_then(Option::as_ref)
            .ok_or_else(|| Fault::new("internal: located a map without an image"))?;
        if image.layout.has_table() {
            return Err(Fault::new(format!(
                "a helper the lookup engine serves was given a pointer into a value of hash map `{}` in chip memory, which it cannot reach",
                image.name
            )));
        }
        let base = image.layout.value_offset(at.entry, at.copy);
        let value = rt
            .map_mut(at.map)
            .and_then(|s| s.value_mut(at.entry, at.copy))
            .ok_or_else(|| {
                Fault::new(format!(
                    "a helper was given a pointer into copy {} of map `{}`, which the runtime does not simulate",
                    at.copy, image.name
                ))
            })?;
        image.read(base, value);
        let p = rt.value_pointer(at.map, at.entry, at.copy);
        Ok((make_addr(split_addr(p).0, at.offset), at))
    }

    /// Takes a value lent with [`Self::lend`] back after the helper (which may have written it).
    pub fn take_back(&mut self, rt: &Runtime, at: ValueAt) {
        let Some(image) = self.maps.get_mut(at.map).and_then(Option::as_mut) else {
            return;
        };
        let base = image.layout.value_offset(at.entry, at.copy);
        if let Some(v) = rt
            .maps()
            .get(at.map)
            .and_then(|s| s.value(at.entry, at.copy))
        {
            let v = v.to_vec();
            image.write(base, &v);
        }
    }
}
