//! How a BPF hash map is held as an on-chip memory with parallel probing, defined once so that
//! the Verilog backend (which builds the probe as pipeline nodes), the pipeline simulator and
//! the control plane (which place entries in buckets) agree on every bit.
//!
//! A row of the memory is one bucket of [`HashLayout::ways`] entries. Each entry is one valid
//! byte (1 when the entry holds a key), the key, then the value, so a lookup reads one row and
//! compares the key with every way's key in the same stage; the first valid way whose key
//! matches is the hit. The bucket of a key is [`bucket_of`]: the key's little-endian 8-byte
//! chunks (the last one zero-extended) XORed together, folded to 16 bits, masked to the bucket
//! count, a function of XOR gates only, two or three LUT levels deep.
//!
//! Capacity. The program's data path only looks keys up and writes the values it found, so
//! the bucket placement is decided when the control plane inserts an entry; an entry whose
//! bucket is full is refused there ([`place`] says which map and bucket), never silently lost,
//! and everything the data path does afterwards equals the kernel's map semantics. Buckets are
//! sized for twice `max_entries` ways (at most 65,536 buckets), which keeps such refusals rare
//! for keys that spread. Inserting or deleting from the data path would need a free way to be
//! found whenever the kernel would find room, which only a fully associative table (one bucket
//! of `max_entries` ways) guarantees; [`HashLayout::fully_associative`] builds that layout for
//! small maps.

/// Ways per bucket of a table sized for lookups ([`HashLayout::for_lookups`]).
pub const LOOKUP_WAYS: u32 = 4;
/// The most buckets a hash memory has (the pipeline's memories have at most 65,536 rows).
pub const MAX_BUCKETS: u32 = 1 << 16;
/// The most ways a fully associative table compares in parallel.
pub const MAX_ASSOCIATIVE_WAYS: u32 = 32;
/// The widest bucket row in bytes.
pub const MAX_ROW_BYTES: u32 = 4096;

/// The geometry of one hash memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HashLayout {
    /// Rows of the memory, a power of two.
    pub buckets: u32,
    /// Entries per row, compared in parallel.
    pub ways: u32,
    pub key_bytes: u32,
    pub value_bytes: u32,
}

impl HashLayout {
    /// The layout for a map the data path only looks up: [`LOOKUP_WAYS`] ways and a power of
    /// two of buckets holding at least twice `max_entries` entries (capped at
    /// [`MAX_BUCKETS`]). `Err` says why the map does not fit.
    pub fn for_lookups(
        max_entries: u32,
        key_bytes: u32,
        value_bytes: u32,
    ) -> Result<HashLayout, String> {
        let wanted = (max_entries as u64 * 2).div_ceil(LOOKUP_WAYS as u64).max(1);
        let buckets = wanted.next_power_of_two().min(MAX_BUCKETS as u64) as u32;
        let layout = HashLayout {
            buckets,
            ways: LOOKUP_WAYS,
            key_bytes,
            value_bytes,
        };
        if (buckets as u64) * (LOOKUP_WAYS as u64) < max_entries as u64 {
            return Err(format!(
                "{max_entries} entries exceed the {} ways of the largest hash memory ({MAX_BUCKETS} buckets of {LOOKUP_WAYS})",
                MAX_BUCKETS as u64 * LOOKUP_WAYS as u64
            ));
        }
        layout.check_row()?;
        Ok(layout)
    }

    /// One bucket of `max_entries` ways: a free way exists exactly when the map holds fewer
    /// than `max_entries` entries, as the kernel's preallocated hash map has room.
    pub fn fully_associative(
        max_entries: u32,
        key_bytes: u32,
        value_bytes: u32,
    ) -> Result<HashLayout, String> {
        if max_entries == 0 || max_entries > MAX_ASSOCIATIVE_WAYS {
            return Err(format!(
                "a map the program inserts into or deletes from is held fully associative (one bucket with a way per entry, so a free way exists exactly when the kernel's map has room); {max_entries} entries exceed the {MAX_ASSOCIATIVE_WAYS} ways compared in parallel"
            ));
        }
        let layout = HashLayout {
            buckets: 1,
            ways: max_entries,
            key_bytes,
            value_bytes,
        };
        layout.check_row()?;
        Ok(layout)
    }

    fn check_row(&self) -> Result<(), String> {
        if self.key_bytes == 0 || self.value_bytes == 0 {
            return Err("keys and values of a hash memory need at least one byte".into());
        }
        if self.row_bytes() > MAX_ROW_BYTES {
            return Err(format!(
                "a bucket of {} ways of {} bytes is wider than the {MAX_ROW_BYTES}-byte rows the pipeline builds",
                self.ways,
                self.entry_bytes()
            ));
        }
        Ok(())
    }

    /// Bytes of one entry: the valid byte, the key, the value.
    pub fn entry_bytes(&self) -> u32 {
        1 + self.key_bytes + self.value_bytes
    }

    /// Bytes of one bucket row.
    pub fn row_bytes(&self) -> u32 {
        self.ways * self.entry_bytes()
    }

    /// The byte of way `w`'s valid flag in the row.
    pub fn valid_offset(&self, way: u32) -> u32 {
        way * self.entry_bytes()
    }

    /// The first byte of way `w`'s key in the row.
    pub fn key_offset(&self, way: u32) -> u32 {
        way * self.entry_bytes() + 1
    }

    /// The first byte of way `w`'s value in the row.
    pub fn value_offset(&self, way: u32) -> u32 {
        way * self.entry_bytes() + 1 + self.key_bytes
    }

    /// The bucket `key` lives in.
    pub fn bucket_of(&self, key: &[u8]) -> u32 {
        bucket_of(key, self.buckets)
    }
}

/// The key's chunks the hash and the key comparison use: `(offset, bytes)` of each
/// little-endian chunk, 8 bytes while they last, then 4, 2 and 1 (the sizes a pipeline load
/// has), in order.
pub fn key_chunks(key_bytes: u32) -> Vec<(u32, u32)> {
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < key_bytes {
        let left = key_bytes - at;
        let n = [8, 4, 2, 1].into_iter().find(|&n| n <= left).unwrap_or(1);
        chunks.push((at, n));
        at += n;
    }
    chunks
}

/// The XOR of `x`'s 16-bit quarters: the bucket hash's fold of the chunks' XOR.
pub fn fold16(x: u64) -> u64 {
    let x = x ^ (x >> 32);
    (x ^ (x >> 16)) & 0xffff
}

/// The bucket of `key` among `buckets` (a power of two): the XOR of the key's chunks, folded
/// to 16 bits ([`fold16`]), masked. A single bucket needs no hash at all.
pub fn bucket_of(key: &[u8], buckets: u32) -> u32 {
    if buckets <= 1 {
        return 0;
    }
    let mut x = 0u64;
    for (at, n) in key_chunks(key.len() as u32) {
        let mut chunk = 0u64;
        for k in 0..n {
            chunk |= (key[(at + k) as usize] as u64) << (8 * k);
        }
        x ^= chunk;
    }
    (fold16(x) & (buckets as u64 - 1)) as u32
}

/// Places `key` with `value` in `row` (one bucket, laid out by `layout`): into the way that
/// holds the key already, else the first free way. `false` when the bucket is full.
pub fn place(layout: &HashLayout, row: &mut [u8], key: &[u8], value: &[u8]) -> bool {
    let k = layout.key_bytes as usize;
    let way = (0..layout.ways)
        .find(|&w| {
            let at = layout.key_offset(w) as usize;
            row[layout.valid_offset(w) as usize] != 0 && row[at..at + k] == *key
        })
        .or_else(|| (0..layout.ways).find(|&w| row[layout.valid_offset(w) as usize] == 0));
    let Some(w) = way else {
        return false;
    };
    row[layout.valid_offset(w) as usize] = 1;
    let at = layout.key_offset(w) as usize;
    row[at..at + k].copy_from_slice(&key[..k]);
    let at = layout.value_offset(w) as usize;
    let n = (layout.value_bytes as usize).min(value.len());
    row[at..at + n].copy_from_slice(&value[..n]);
    true
}

/// Every valid entry of a bucket row, as `(key, value)` byte vectors in way order.
pub fn entries(layout: &HashLayout, row: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..layout.ways)
        .filter(|&w| {
            row.get(layout.valid_offset(w) as usize)
                .copied()
                .unwrap_or(0)
                != 0
        })
        .filter_map(|w| {
            let k = layout.key_offset(w) as usize;
            let v = layout.value_offset(w) as usize;
            Some((
                row.get(k..k + layout.key_bytes as usize)?.to_vec(),
                row.get(v..v + layout.value_bytes as usize)?.to_vec(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buckets hold twice the entries, in powers of two, up to the cap.
    #[test]
    fn lookup_tables_are_sized_for_twice_the_entries() {
        let l = HashLayout::for_lookups(100_000, 4, 8).expect("fits");
        assert_eq!((l.buckets, l.ways), (65_536, 4));
        let l = HashLayout::for_lookups(50, 4, 32).expect("fits");
        assert_eq!(l.buckets, 32);
        assert_eq!(l.row_bytes(), 4 * 37);
        assert!(HashLayout::for_lookups(300_000, 4, 8).is_err());
        assert!(HashLayout::fully_associative(33, 4, 4).is_err());
        assert_eq!(
            HashLayout::fully_associative(16, 4, 4).map(|l| l.row_bytes()),
            Ok(16 * 9)
        );
    }

    /// The hash is the XOR of the chunks folded to 16 bits: worked out by hand for a 4-byte
    /// and a 12-byte key.
    #[test]
    fn bucket_hash_by_hand() {
        // 0x0100000a little-endian from [10, 0, 0, 1]: 0x000a ^ 0x0100 = 0x010a.
        assert_eq!(bucket_of(&[10, 0, 0, 1], 1 << 16), 0x010a);
        assert_eq!(bucket_of(&[10, 0, 0, 1], 16), 0xa);
        // Chunks 0x0807060504030201 and 0x0c0b0a09 XOR to 0x0807060508080808, whose
        // 16-bit quarters fold to 0x0807 ^ 0x0605 ^ 0x0808 ^ 0x0808 = 0x0e02.
        let key: Vec<u8> = (1..=12).collect();
        assert_eq!(bucket_of(&key, 1 << 16), 0x0e02);
        assert_eq!(bucket_of(&key, 1), 0);
        assert_eq!(key_chunks(12), vec![(0, 8), (8, 4)]);
        assert_eq!(key_chunks(7), vec![(0, 4), (4, 2), (6, 1)]);
    }

    /// Entries go to their own way, then the first free one; a full bucket refuses.
    #[test]
    fn placing_fills_ways_in_order_and_refuses_a_full_bucket() {
        let l = HashLayout {
            buckets: 1,
            ways: 2,
            key_bytes: 2,
            value_bytes: 1,
        };
        let mut row = vec![0u8; l.row_bytes() as usize];
        assert!(place(&l, &mut row, &[1, 2], &[7]));
        assert!(place(&l, &mut row, &[3, 4], &[8]));
        assert!(
            place(&l, &mut row, &[1, 2], &[9]),
            "an existing key is replaced"
        );
        assert!(!place(&l, &mut row, &[5, 6], &[1]), "the bucket is full");
        assert_eq!(
            entries(&l, &row),
            vec![(vec![1, 2], vec![9]), (vec![3, 4], vec![8])]
        );
        assert_eq!(row, vec![1, 1, 2, 9, 1, 3, 4, 8]);
    }
}
