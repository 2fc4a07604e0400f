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
/// First transfer register free for memory commands.
pub const XFER_FIRST_FREE: u8 = 8;

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
}
