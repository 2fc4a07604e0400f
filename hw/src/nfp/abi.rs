//! What the microcode and the simulator agree on besides the instruction set: the pointer
//! values of the shared runtime that the backend folds into constants, the transfer
//! registers the dispatcher fills, and the layout of a compiled program's description.
//!
//! nicc's runtime (`sim::runtime::memory`) represents a BPF pointer as `region << 32 |
//! offset`, so the high word of a pointer says which memory it points into. The backend
//! keeps the high word of a pointer whose region is known at compile time as a constant and
//! never spends a register on it; the values below are the runtime's, and a test in
//! `sim/tests/nfp_cycles.rs` checks them against `sim::runtime::memory`.

use serde::{Deserialize, Serialize};

/// Region word of the XDP context pointer.
pub const REGION_CTX: u32 = 1;
/// Region word of packet pointers.
pub const REGION_PACKET: u32 = 2;
/// Region word of the conformance memory buffer.
pub const REGION_MEM: u32 = 3;
/// Region word of the stack of call frame 0.
pub const REGION_STACK: u32 = 0x10;
/// Region word of the handle of map 0; map `m` is `REGION_MAP + m`.
pub const REGION_MAP: u32 = 0x0100_0000;
/// Bytes of one BPF stack frame.
pub const STACK_SIZE: u32 = 512;

/// Read transfer registers the dispatcher fills before a packet's first instruction and the
/// lookup engine refreshes after every helper (which may move the packet): the low words of
/// `xdp_md.data`, `data_end` and `data_meta` (offsets into the frame buffer), then
/// `ingress_ifindex`, `rx_queue_index` and `egress_ifindex`. In conformance mode the first
/// two hold the low word of the memory pointer (or 0) and the memory's length.
pub const XFER_META: u8 = 0;
/// How many transfer registers the packet metadata takes.
pub const XFER_META_LEN: u8 = 6;
/// Read transfer register the dispatcher fills with the number of the per-CPU copy this
/// context uses (see [`PERCPU_COPIES`]); in a functional run it is the runtime's CPU.
pub const XFER_CONTEXT: u8 = 7;
/// First transfer register free for memory commands.
pub const XFER_FIRST_FREE: u8 = 8;

/// Region word of map 0's image in chip memory; map `m` is `REGION_CHIP_MAP + m`. The words
/// from here up to [`REGION_CHIP_MAP_END`] name no region of the shared runtime
/// (`sim::runtime::memory` leaves 0x20 to 0x00ff_ffff unused), so a pointer into chip memory
/// can never be mistaken for a runtime pointer, and the first 64 maps' region words fit the
/// 7-bit immediate of a command's address operand.
pub const REGION_CHIP_MAP: u32 = 0x40;
/// One past the last region word of chip-memory map images.
pub const REGION_CHIP_MAP_END: u32 = 0x0100_0000;
/// Copies a per-CPU map keeps of each value in chip memory: one per hardware context of the
/// NFP-4000 offload configuration (50 engines x 4 threads = 200, ../shared/design/targets.md),
/// rounded up to a power of two so that a copy's offset is a shift. No two packets run on one
/// context at once, which is exactly the guarantee a BPF per-CPU value gives.
pub const PERCPU_COPIES: u32 = 256;

/// The word the runtime relocates when it loads a program, because its value is only known
/// then: the region word of a map's value (global data), which the runtime allocates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relocation {
    /// Index of the `immed` word to patch.
    pub word: usize,
    /// The map (index into the object's maps).
    pub map: usize,
    /// Which 16 bits of the region word the `immed` holds: 0 low, 1 high.
    pub half: u8,
}

/// How a map's image is laid out in chip memory, for the maps whose operations run as
/// microcode routines shipped with nicc.
///
/// An array (and global data) holds its values back to back: the value of entry `i` for
/// per-CPU copy `c` is at byte `i * slot_stride + c * value_stride` of the map's region, so a
/// lookup is a compare and two shifts and needs no memory access at all (the kernel's array
/// lookup is the same arithmetic). Strides are powers of two so the microcode shifts instead
/// of multiplying.
///
/// A per-CPU hash is a hash whose entry holds `copies` values, `value_stride` bytes apart,
/// from `value_offset` on (which is past the bytes an insert writes in one burst with the
/// state and key, so that it never touches another context's copy). Its values are all zero
/// whenever the entry is not in use (a delete clears them), so an insert writes only its own
/// context's copy and the others read as zero, as the kernel's insert from a program leaves
/// them.
///
/// A hash is an open-addressing table of `capacity` entries (a power of two, at least twice
/// `max_entries`, so a probe sequence meets an empty entry soon) probed linearly from
/// [`chip_hash`] of the key. An entry is `entry_stride` bytes: a 4-byte state word (0 empty,
/// 1 used, 2 deleted), 4 bytes of padding, the key's words ([`chip_key_words`]) at
/// `key_offset`, the value at
/// `value_offset`. The number of live entries is a 4-byte word at `count_offset`, after the
/// table. A deleted entry stays a tombstone that lookups probe past and inserts reuse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapLayout {
    /// `array`, `percpu_array`, `hash`, `percpu_hash` or `lpm_trie`.
    pub kind: String,
    /// The region word of pointers into the image ([`REGION_CHIP_MAP`] + map index).
    pub region: u32,
    /// Bytes from one entry to the next (a power of two).
    pub slot_stride: u32,
    /// Bytes from one per-CPU copy of a value to the next (a power of two, at least the value
    /// size; equal to `slot_stride` when there is one copy).
    pub value_stride: u32,
    /// Copies of each value: 1, or [`PERCPU_COPIES`] for per-CPU maps.
    pub copies: u32,
    /// Hash only (0 otherwise): entries of the table.
    #[serde(default)]
    pub capacity: u32,
    /// Hash only: bytes from one entry to the next (a power of two).
    #[serde(default)]
    pub entry_stride: u32,
    /// Hash only: the key's offset in an entry.
    #[serde(default)]
    pub key_offset: u32,
    /// Hash only: the value's offset in an entry.
    #[serde(default)]
    pub value_offset: u32,
    /// Hash only: the offset of the count of live entries in the region.
    #[serde(default)]
    pub count_offset: u32,
}

/// An LPM trie (with at most 4 bytes of address data, and few entries: see
/// `backends::nfp::map_layout`) is a table of `capacity` prefixes that the routines scan
/// whole, 4 prefixes per 64-byte read, keeping the longest that matches, as a TCAM would
/// answer. A prefix is 16 bytes (`entry_stride`): the prefix length plus one (0 for a free
/// prefix), the address data as the key holds it (little-endian) with the bits past the
/// prefix cleared, the mask of the prefix in the same byte order, and the key's data as last
/// stored (the kernel keeps the whole key of the last update, which a snapshot shows). The
/// values follow at `value_offset`, `value_stride` bytes each, in the order of the prefixes,
/// and the count of prefixes is at `count_offset`, followed by the high-water mark: how many
/// reads of 4 prefixes cover every prefix in use (inserts take the first free prefix, so the
/// used ones stay packed low and an empty or small trie is scanned in a few reads).
/// Entry states of a hash table in chip memory.
pub const HASH_EMPTY: u32 = 0;
pub const HASH_USED: u32 = 1;
pub const HASH_DELETED: u32 = 2;

/// The pieces of a hash key of `key_size` bytes that the microcode reads into one 32-bit
/// word each, as (byte offset, bytes): the whole words, then, when the size is not a
/// multiple of 4, the 4 bytes that end the key (overlapping the last whole word). A key
/// shorter than 4 bytes is read as a 2-byte and a 1-byte piece. Every piece is a read the key
/// certainly covers, so the microcode never reads past the key (past the stack frame or the
/// packet), and no byte needs masking: the words are a function of the key's bytes, and two
/// keys of one size are equal exactly when their words are.
pub fn chip_key_pieces(key_size: u32) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = (0..key_size / 4).map(|w| (w * 4, 4)).collect();
    match (key_size % 4, key_size) {
        (0, _) => {}
        (_, 1) => out.push((0, 1)),
        (_, 2) => out.push((0, 2)),
        (_, 3) => out.extend([(0, 2), (2, 1)]),
        _ => out.push((key_size - 4, 4)),
    }
    out
}

/// The words the microcode reads a key as (see [`chip_key_pieces`]), each piece
/// little-endian and zero-extended: what a hash image stores at an entry's `key_offset`.
pub fn chip_key_words(key: &[u8]) -> Vec<u32> {
    chip_key_pieces(key.len() as u32)
        .iter()
        .map(|&(at, n)| {
            let mut b = [0u8; 4];
            b[..n as usize].copy_from_slice(&key[at as usize..(at + n) as usize]);
            u32::from_le_bytes(b)
        })
        .collect()
}

/// The key of `key_size` bytes whose words [`chip_key_words`] gives; `None` when `words`
/// are not the words of any key of that size (overlapping pieces that disagree).
pub fn chip_key_from_words(words: &[u32], key_size: u32) -> Option<Vec<u8>> {
    let pieces = chip_key_pieces(key_size);
    if pieces.len() != words.len() {
        return None;
    }
    let mut key = vec![0u8; key_size as usize];
    for (&(at, n), w) in pieces.iter().zip(words) {
        key[at as usize..(at + n) as usize].copy_from_slice(&w.to_le_bytes()[..n as usize]);
    }
    (chip_key_words(&key) == words).then_some(key)
}

/// The hash the microcode computes over a key's words ([`chip_key_words`]): starting from the
/// key's length, each word is mixed in with an xor, an add of the value shifted left by 10
/// and an xor of it shifted right by 6 (the per-byte step of Bob Jenkins' one-at-a-time hash,
/// applied per word), five microengine instructions a word. The simulator uses this function
/// to convert runtime maps into images; the microcode must agree with it, which the
/// differential test checks through every seeded lookup.
pub fn chip_hash(key: &[u8]) -> u32 {
    let mut h = key.len() as u32;
    for w in chip_key_words(key) {
        h ^= w;
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h
}

impl MapLayout {
    /// True for the open-addressing tables (`hash`, `percpu_hash`), whose images hold entry
    /// states and keys as well as values.
    pub fn is_hash(&self) -> bool {
        self.kind == "hash" || self.kind == "percpu_hash"
    }

    /// True for an LPM trie's table of prefixes.
    pub fn is_lpm(&self) -> bool {
        self.kind == "lpm_trie"
    }

    /// True when the image holds bookkeeping (states, keys, a count) besides values, so that
    /// accesses are checked against the whole image rather than one value.
    pub fn has_table(&self) -> bool {
        self.capacity > 0
    }

    /// The byte offset of the value of `entry` for copy `copy`.
    pub fn value_offset(&self, entry: u32, copy: u32) -> u64 {
        entry as u64 * self.slot_stride as u64 + copy as u64 * self.value_stride as u64
    }
}

/// Where a map lives on the chip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapPlacement {
    pub name: String,
    /// The kernel's map type number.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// The memory level (`cls`, `imem`, `emem`).
    pub memory: String,
    /// Bytes it takes there.
    pub bytes: u64,
    /// The image layout when the map lives in chip memory and microcode routines operate on
    /// it; `None` when its operations go to the lookup engine, which serves them from the
    /// shared runtime (program arrays, redirect maps, perf event arrays, and the map types
    /// whose routines are not written yet).
    pub layout: Option<MapLayout>,
}
