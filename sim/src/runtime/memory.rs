//! The region-checked address space every engine's loads and stores go through.
//!
//! BPF programs see 64-bit pointers and do arithmetic on them, so a pointer here is a plain
//! 64-bit value: the high 32 bits name a region (a stack frame, the context, the packet buffer,
//! one map value, a ring buffer record...) and the low 32 bits are an offset into it. Pointer
//! arithmetic and comparisons within one region then behave exactly as on real addresses, and
//! every access can be checked against the bounds of the region it names, so a program that
//! would read out of bounds gets a clear fault instead of reading a neighbour's bytes. No
//! address is valid in region 0, so NULL (and every small integer) never dereferences.

/// Region id of the program context (`struct xdp_md`).
pub const REGION_CTX: u32 = 1;
/// Region id of the XDP frame buffer (headroom, packet, tailroom).
pub const REGION_PACKET: u32 = 2;
/// Region id of the conformance-mode memory buffer.
pub const REGION_MEM: u32 = 3;
/// Region id of the stack of call frame 0; frame `d` uses `REGION_STACK + d`.
pub const REGION_STACK: u32 = 0x10;
/// Region id of the handle of map 0 (what `lddw rX, map` loads); map `m` uses `+ m`.
pub const REGION_MAP: u32 = 0x0100_0000;
/// Region id of ring buffer record 0 reserved during the current run.
pub const REGION_RINGBUF: u32 = 0x0200_0000;
/// Region id of the address of the subprogram at slot 0 (`lddw rX, func`).
pub const REGION_FUNC: u32 = 0x0300_0000;
/// Region id of the first map value handed out; later values count up from here.
pub const REGION_MAP_VALUE: u32 = 0x1000_0000;

/// Size of one stack frame, as in the kernel (`MAX_BPF_STACK`).
pub const STACK_SIZE: usize = 512;
/// Deepest bpf-to-bpf call chain, counting the entry function (`MAX_CALL_FRAMES`).
pub const MAX_CALL_FRAMES: usize = 8;

/// Builds a pointer from a region id and an offset.
pub fn make_addr(region: u32, offset: u32) -> u64 {
    ((region as u64) << 32) | offset as u64
}

/// Splits a pointer into its region id and offset.
pub fn split_addr(addr: u64) -> (u32, u32) {
    ((addr >> 32) as u32, addr as u32)
}

/// What a region id stands for, decoded from the id ranges above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Region {
    Ctx,
    Packet,
    Mem,
    Stack(usize),
    MapHandle(usize),
    Ringbuf(usize),
    Func(usize),
    MapValue(usize),
    Invalid,
}

impl Region {
    pub fn of(region: u32) -> Region {
        match region {
            REGION_CTX => Region::Ctx,
            REGION_PACKET => Region::Packet,
            REGION_MEM => Region::Mem,
            r if (REGION_STACK..REGION_STACK + MAX_CALL_FRAMES as u32).contains(&r) => {
                Region::Stack((r - REGION_STACK) as usize)
            }
            r if (REGION_MAP..REGION_RINGBUF).contains(&r) => {
                Region::MapHandle((r - REGION_MAP) as usize)
            }
            r if (REGION_RINGBUF..REGION_FUNC).contains(&r) => {
                Region::Ringbuf((r - REGION_RINGBUF) as usize)
            }
            r if (REGION_FUNC..REGION_FUNC + 0x0100_0000).contains(&r) => {
                Region::Func((r - REGION_FUNC) as usize)
            }
            r if r >= REGION_MAP_VALUE => Region::MapValue((r - REGION_MAP_VALUE) as usize),
            _ => Region::Invalid,
        }
    }
}

/// Whether an access reads or writes, for messages and for read-only regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn verb(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// A failed memory access or helper precondition, turned into a `Diagnostic` (with program,
/// instruction and source line) by the engine that was executing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub message: String,
    pub help: Option<String>,
}

impl Fault {
    pub fn new(message: impl Into<String>) -> Fault {
        Fault {
            message: message.into(),
            help: None,
        }
    }
    pub fn help(mut self, help: impl Into<String>) -> Fault {
        self.help = Some(help.into());
        self
    }
}

/// Checks that `[offset, offset + len)` lies within `[lo, hi)` and returns the start as usize.
pub fn check_bounds(
    what: &str,
    access: Access,
    addr: u64,
    len: usize,
    lo: usize,
    hi: usize,
) -> Result<usize, Fault> {
    let (_, offset) = split_addr(addr);
    let start = offset as usize;
    match start.checked_add(len) {
        Some(end) if start >= lo && end <= hi => Ok(start),
        _ => Err(Fault::new(format!(
            "{} of {len} byte{} at {addr:#x} is out of bounds of {what} (valid offsets {lo}..{hi}, accessed {start}..{})",
            access.verb(),
            if len == 1 { "" } else { "s" },
            start as u64 + len as u64,
        ))),
    }
}

/// Reads a little-endian unsigned integer of 1, 2, 4 or 8 bytes.
pub fn read_le(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(buf)
}

/// Writes the low `dst.len()` bytes of `value` in little-endian order.
pub fn write_le(dst: &mut [u8], value: u64) {
    let bytes = value.to_le_bytes();
    let n = dst.len().min(8);
    dst[..n].copy_from_slice(&bytes[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_decode() {
        let a = make_addr(REGION_STACK + 3, 504);
        assert_eq!(split_addr(a), (REGION_STACK + 3, 504));
        assert_eq!(Region::of(REGION_STACK + 3), Region::Stack(3));
        assert_eq!(Region::of(0), Region::Invalid);
        assert_eq!(Region::of(REGION_MAP_VALUE + 7), Region::MapValue(7));
        assert_eq!(Region::of(REGION_MAP + 2), Region::MapHandle(2));
    }

    #[test]
    fn bounds_are_checked() {
        let a = make_addr(REGION_MEM, 6);
        assert_eq!(check_bounds("m", Access::Read, a, 2, 0, 8), Ok(6));
        assert!(check_bounds("m", Access::Read, a, 4, 0, 8).is_err());
        assert!(check_bounds("m", Access::Read, a, 1, 7, 8).is_err());
    }
}
