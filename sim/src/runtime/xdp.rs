//! The XDP frame as `BPF_PROG_TEST_RUN` builds it, and the helpers that move its boundaries.
//!
//! The kernel's test run (net/bpf/test_run.c) allocates one zeroed page-sized frame: 256 bytes
//! of headroom (`XDP_PACKET_HEADROOM`), the packet, and at the end the tailroom reserved for
//! `struct skb_shared_info` (320 bytes on x86-64). `data_meta` starts equal to `data`. The
//! packet must be at least an Ethernet header long; longer packets than the linear area holds
//! become fragments, which this model does not simulate. The limits below were checked against
//! the running 6.18 kernel with `BPF_PROG_TEST_RUN`: the head can move down to 40 bytes past
//! the frame start (the `struct xdp_frame` the kernel keeps there), the tail up to 320 bytes
//! before the frame end, metadata must be a multiple of 4 bytes and at most 255, and at least
//! an Ethernet header must remain between `data` and `data_end`.

use super::{EACCES, EINVAL};
use serde::{Deserialize, Serialize};

/// Headroom the test run reserves before the packet.
pub const XDP_PACKET_HEADROOM: usize = 256;
/// Size of the whole frame (one page).
pub const FRAME_SIZE: usize = 4096;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64.
pub const SKB_SHARED_INFO_SIZE: usize = 320;
/// `sizeof(struct xdp_frame)`, kept at the start of the headroom.
pub const XDP_FRAME_RESERVED: usize = 40;
/// Minimum packet length (an Ethernet header).
pub const ETH_HLEN: usize = 14;
/// Largest packet the linear area holds.
pub const MAX_LINEAR: usize = FRAME_SIZE - XDP_PACKET_HEADROOM - SKB_SHARED_INFO_SIZE;
/// Largest metadata area (`skb_shared_info::meta_len` is a u8).
pub const MAX_META: usize = 255;

/// Size of `struct xdp_md`.
pub const XDP_MD_SIZE: usize = 24;

/// The input of one XDP run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdpInput {
    pub packet: Vec<u8>,
    /// `xdp_md.ingress_ifindex`; the test run's default device is the loopback device, 1.
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
}

impl Default for XdpInput {
    fn default() -> Self {
        XdpInput {
            packet: Vec::new(),
            ingress_ifindex: 1,
            rx_queue_index: 0,
        }
    }
}

impl XdpInput {
    pub fn new(packet: Vec<u8>) -> XdpInput {
        XdpInput {
            packet,
            ..XdpInput::default()
        }
    }
}

/// The XDP verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XdpAction {
    Aborted,
    Drop,
    Pass,
    Tx,
    Redirect,
}

impl XdpAction {
    /// The action a return value means; values outside 0..=4 count as aborted, as in drivers.
    pub fn from_retval(r0: u64) -> XdpAction {
        match r0 as u32 {
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            _ => XdpAction::Aborted,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            XdpAction::Aborted => "aborted",
            XdpAction::Drop => "drop",
            XdpAction::Pass => "pass",
            XdpAction::Tx => "tx",
            XdpAction::Redirect => "redirect",
        }
    }

    pub fn code(&self) -> u32 {
        *self as u32
    }
}

/// Where `bpf_redirect` or `bpf_redirect_map` last asked the packet to go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Redirect {
    /// `bpf_redirect(ifindex, 0)`.
    Ifindex(u32),
    /// `bpf_redirect_map(map, key, flags)` with the map's name and index; `value` is the entry
    /// found (for a devmap its `struct bpf_devmap_val`), or `None` for a broadcast.
    Map {
        map: String,
        map_index: usize,
        key: u32,
        flags: u64,
        value: Option<Vec<u8>>,
    },
}

/// The result of one XDP run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpOutcome {
    /// The raw return value (`r0`).
    pub retval: u64,
    pub action: XdpAction,
    /// The packet after the program, `data..data_end`.
    pub packet: Vec<u8>,
    /// The metadata in front of the packet, `data_meta..data` (usually empty).
    pub meta: Vec<u8>,
    /// The redirect target the helpers recorded, if any (only meaningful for `Redirect`).
    pub redirect: Option<Redirect>,
    /// Number of instructions executed, for budgets and statistics.
    pub insns_executed: u64,
}

impl XdpOutcome {
    /// What `BPF_PROG_TEST_RUN` copies to `data_out`: the metadata followed by the packet.
    pub fn test_run_data(&self) -> Vec<u8> {
        let mut out = self.meta.clone();
        out.extend_from_slice(&self.packet);
        out
    }
}

/// The frame and its boundaries, as offsets into `buf` (offset 0 is `data_hard_start`).
#[derive(Clone, Debug)]
pub struct XdpBuffer {
    pub buf: Vec<u8>,
    pub data_meta: usize,
    pub data: usize,
    pub data_end: usize,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
}

impl XdpBuffer {
    /// Builds the frame the test run builds, or says why the kernel would refuse the input.
    pub fn new(input: &XdpInput) -> Result<XdpBuffer, String> {
        let n = input.packet.len();
        if n < ETH_HLEN {
            return Err(format!(
                "packet of {n} bytes is shorter than an Ethernet header ({ETH_HLEN} bytes); BPF_PROG_TEST_RUN rejects it with EINVAL"
            ));
        }
        if n > MAX_LINEAR {
            return Err(format!(
                "packet of {n} bytes does not fit the {MAX_LINEAR}-byte linear XDP buffer; multi-buffer (fragmented) frames are not simulated"
            ));
        }
        let mut buf = vec![0u8; FRAME_SIZE];
        buf[XDP_PACKET_HEADROOM..XDP_PACKET_HEADROOM + n].copy_from_slice(&input.packet);
        Ok(XdpBuffer {
            buf,
            data_meta: XDP_PACKET_HEADROOM,
            data: XDP_PACKET_HEADROOM,
            data_end: XDP_PACKET_HEADROOM + n,
            ingress_ifindex: input.ingress_ifindex,
            rx_queue_index: input.rx_queue_index,
        })
    }

    /// The end of the area the tail may grow into.
    pub fn hard_end(&self) -> usize {
        FRAME_SIZE - SKB_SHARED_INFO_SIZE
    }

    pub fn packet(&self) -> &[u8] {
        &self.buf[self.data..self.data_end]
    }

    pub fn meta(&self) -> &[u8] {
        &self.buf[self.data_meta..self.data]
    }

    /// `bpf_xdp_adjust_head`: moves `data` (and the metadata with it).
    pub fn adjust_head(&mut self, offset: i32) -> i64 {
        let metalen = self.data - self.data_meta;
        let lowest = XDP_FRAME_RESERVED + metalen;
        let new = self.data as i64 + offset as i64;
        if new < lowest as i64 || new > self.data_end as i64 - ETH_HLEN as i64 {
            return -EINVAL;
        }
        let new = new as usize;
        if metalen > 0 {
            let new_meta = new - metalen;
            self.buf.copy_within(self.data_meta..self.data, new_meta);
        }
        self.data_meta = new - metalen;
        self.data = new;
        0
    }

    /// `bpf_xdp_adjust_meta`: moves `data_meta`.
    pub fn adjust_meta(&mut self, offset: i32) -> i64 {
        let meta = self.data_meta as i64 + offset as i64;
        if meta < XDP_FRAME_RESERVED as i64 || meta > self.data as i64 {
            return -EINVAL;
        }
        let metalen = self.data - meta as usize;
        if !metalen.is_multiple_of(4) || metalen > MAX_META {
            return -EACCES;
        }
        self.data_meta = meta as usize;
        0
    }

    /// `bpf_xdp_adjust_tail`: moves `data_end`, zeroing any bytes it grows over.
    pub fn adjust_tail(&mut self, offset: i32) -> i64 {
        let end = self.data_end as i64 + offset as i64;
        if end > self.hard_end() as i64 || end < (self.data + ETH_HLEN) as i64 {
            return -EINVAL;
        }
        let end = end as usize;
        if end > self.data_end {
            self.buf[self.data_end..end].fill(0);
        }
        self.data_end = end;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(n: usize) -> XdpBuffer {
        XdpBuffer::new(&XdpInput::new((0..n as u8).collect())).unwrap()
    }

    /// The limits measured on the 6.18 kernel with a 60-byte packet.
    #[test]
    fn limits_match_the_kernel() {
        let mut b = buf(60);
        assert_eq!(b.clone().adjust_meta(-216), 0);
        assert_eq!(b.clone().adjust_meta(-220), -EINVAL);
        assert_eq!(b.clone().adjust_meta(-2), -EACCES);
        assert_eq!(b.clone().adjust_tail(3460), 0);
        assert_eq!(b.clone().adjust_tail(3461), -EINVAL);
        assert_eq!(b.clone().adjust_tail(-46), 0);
        assert_eq!(b.clone().adjust_tail(-47), -EINVAL);
        assert_eq!(b.clone().adjust_head(-216), 0);
        assert_eq!(b.clone().adjust_head(-217), -EINVAL);
        assert_eq!(b.clone().adjust_head(46), 0);
        assert_eq!(b.adjust_head(47), -EINVAL);
        assert!(XdpBuffer::new(&XdpInput::new(vec![0; 13])).is_err());
    }

    #[test]
    fn metadata_moves_with_the_head() {
        let mut b = buf(60);
        assert_eq!(b.adjust_meta(-4), 0);
        b.buf[b.data_meta..b.data].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(b.adjust_head(-8), 0);
        assert_eq!(b.meta(), &[1, 2, 3, 4]);
        assert_eq!(b.packet().len(), 68);
        assert_eq!(b.adjust_tail(2), 0);
        assert_eq!(&b.packet()[68..], &[0, 0]);
    }
}
