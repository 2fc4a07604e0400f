//! XDP on a network interface through route netlink, as `ip link set dev X xdp ...` does it:
//! attach a loaded program in generic, native (driver) or offload (hardware) mode, detach it,
//! and ask which programs an interface runs.
//!
//! The messages are built and parsed here as bytes (`include/uapi/linux/rtnetlink.h`,
//! `if_link.h`, `netlink.h`); [`super::net_sys::RouteSocket`] carries them. Extended
//! acknowledgements are on, so a refusal comes back with the kernel's own sentence (for example
//! that a driver cannot run XDP in hardware), which is what a user needs to act on.

use super::net_sys::RouteSocket;
use super::KernelError;
use std::io;

const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// In an error reply: the original request is not echoed in full.
const NLM_F_CAPPED: u16 = 0x100;
/// In an error reply: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;

const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_HW_MODE: u32 = 1 << 3;

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;

/// Where on the interface an XDP program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// In the kernel's generic receive path, after the socket buffer is built: works on every
    /// interface, slowest.
    Generic,
    /// In the driver, before any allocation: needs driver support (veth, most 10G+ NICs).
    Native,
    /// On the NIC itself: needs a driver that offloads BPF (Netronome nfp).
    Offload,
}

impl XdpMode {
    fn flag(self) -> u32 {
        match self {
            XdpMode::Generic => XDP_FLAGS_SKB_MODE,
            XdpMode::Native => XDP_FLAGS_DRV_MODE,
            XdpMode::Offload => XDP_FLAGS_HW_MODE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            XdpMode::Generic => "generic",
            XdpMode::Native => "native",
            XdpMode::Offload => "offload",
        }
    }
}

/// The XDP programs an interface runs, by kernel program id, one slot per mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpState {
    pub generic: Option<u32>,
    pub native: Option<u32>,
    pub offload: Option<u32>,
}

impl XdpState {
    pub fn program(&self, mode: XdpMode) -> Option<u32> {
        match mode {
            XdpMode::Generic => self.generic,
            XdpMode::Native => self.native,
            XdpMode::Offload => self.offload,
        }
    }

    /// The attached programs with their modes.
    pub fn attached(&self) -> Vec<(XdpMode, u32)> {
        [
            (XdpMode::Generic, self.generic),
            (XdpMode::Native, self.native),
            (XdpMode::Offload, self.offload),
        ]
        .into_iter()
        .filter_map(|(m, id)| id.map(|id| (m, id)))
        .collect()
    }
}

/// Attaches program `prog_fd` to interface `ifindex` in `mode`, replacing whatever program
/// runs there in that mode.
pub fn attach(ifindex: u32, prog_fd: i32, mode: XdpMode) -> Result<(), KernelError> {
    set_xdp(ifindex, prog_fd, mode).map_err(|e| {
        KernelError::syscall(format!("attaching the program in {} mode", mode.name()), e)
    })
}

/// Removes the program `mode` runs on interface `ifindex` (nothing happens if there is none).
pub fn detach(ifindex: u32, mode: XdpMode) -> Result<(), KernelError> {
    set_xdp(ifindex, -1, mode)
        .map_err(|e| KernelError::syscall(format!("detaching the {} mode program", mode.name()), e))
}

/// Which programs interface `ifindex` runs.
pub fn query(ifindex: u32) -> Result<XdpState, KernelError> {
    let what = || format!("asking interface {ifindex} for its XDP programs");
    let socket = RouteSocket::open().map_err(|e| KernelError::syscall(what(), e))?;
    let request = link_message(RTM_GETLINK, NLM_F_REQUEST, ifindex, &[]);
    socket
        .send(&request)
        .map_err(|e| KernelError::syscall(what(), e))?;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = socket
            .recv(&mut buf)
            .map_err(|e| KernelError::syscall(what(), e))?;
        for (kind, flags, body) in messages(&buf[..n]) {
            match kind {
                NLMSG_ERROR => {
                    if let Err(e) = ack_result(flags, body) {
                        return Err(KernelError::syscall(what(), e));
                    }
                }
                RTM_NEWLINK => return Ok(parse_link(body)),
                _ => {}
            }
        }
    }
}

fn set_xdp(ifindex: u32, prog_fd: i32, mode: XdpMode) -> io::Result<()> {
    let mut nested = Vec::new();
    put_attr(&mut nested, IFLA_XDP_FD, &prog_fd.to_ne_bytes());
    put_attr(&mut nested, IFLA_XDP_FLAGS, &mode.flag().to_ne_bytes());
    let mut attrs = Vec::new();
    put_attr(&mut attrs, IFLA_XDP | NLA_F_NESTED, &nested);
    let request = link_message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, ifindex, &attrs);
    let socket = RouteSocket::open()?;
    socket.send(&request)?;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = socket.recv(&mut buf)?;
        for (kind, flags, body) in messages(&buf[..n]) {
            if kind == NLMSG_ERROR {
                return ack_result(flags, body);
            }
        }
    }
}

/// A link message: header, `ifinfomsg` for `ifindex`, then `attrs`.
fn link_message(kind: u16, flags: u16, ifindex: u32, attrs: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + IFINFOMSG_LEN + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    m.push(libc::AF_UNSPEC as u8);
    m.push(0);
    m.extend_from_slice(&0u16.to_ne_bytes()); // device type
    m.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // flags
    m.extend_from_slice(&0u32.to_ne_bytes()); // change mask
    m.extend_from_slice(attrs);
    m
}

/// Appends one attribute, padded to four bytes.
fn put_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The messages of one datagram as (type, flags, body after the header). A truncated or
/// malformed message ends the list rather than being misread.
fn messages(buf: &[u8]) -> Vec<(u16, u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(kind), Some(flags)) =
        (u32_at(buf, at), u16_at(buf, at + 4), u16_at(buf, at + 6))
    {
        let len = len as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            break;
        }
        out.push((kind, flags, &buf[at + NLMSG_HDRLEN..at + len]));
        at += len.next_multiple_of(4);
    }
    out
}

/// The attributes of a list as (type without flags, payload).
fn attributes(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u16_at(buf, at), u16_at(buf, at + 2)) {
        let len = len as usize;
        if len < 4 || at + len > buf.len() {
            break;
        }
        out.push((kind & NLA_TYPE_MASK, &buf[at + 4..at + len]));
        at += len.next_multiple_of(4);
    }
    out
}

/// Turns an acknowledgement into `Ok` or the error with the kernel's message, when it sent
/// one.
fn ack_result(flags: u16, body: &[u8]) -> io::Result<()> {
    let code = u32_at(body, 0).map_or(0, |c| c as i32);
    if code == 0 {
        return Ok(());
    }
    let errno = -code;
    let mut message = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        // The echoed request follows the error code: its header only when capped, the whole
        // message otherwise; the attributes start after it.
        let echoed = if flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            u32_at(body, 4).map_or(NLMSG_HDRLEN, |l| l as usize)
        };
        let start = (4 + echoed).next_multiple_of(4);
        if let Some(tlvs) = body.get(start..) {
            for (kind, payload) in attributes(tlvs) {
                if kind == NLMSGERR_ATTR_MSG {
                    let end = payload
                        .iter()
                        .position(|b| *b == 0)
                        .unwrap_or(payload.len());
                    message = Some(String::from_utf8_lossy(&payload[..end]).into_owned());
                }
            }
        }
    }
    let os = io::Error::from_raw_os_error(errno);
    Err(match message {
        Some(m) => io::Error::new(os.kind(), format!("{m} [{os}]")),
        None => os,
    })
}

/// The XDP state in the attributes of an `RTM_NEWLINK` body.
fn parse_link(body: &[u8]) -> XdpState {
    let mut state = XdpState::default();
    let Some(attrs) = body.get(IFINFOMSG_LEN..) else {
        return state;
    };
    for (kind, payload) in attributes(attrs) {
        if kind != IFLA_XDP {
            continue;
        }
        let mut attached = 0u8;
        let mut single = None;
        for (k, p) in attributes(payload) {
            let id = u32_at(p, 0).filter(|id| *id != 0);
            match k {
                IFLA_XDP_ATTACHED => attached = p.first().copied().unwrap_or(0),
                IFLA_XDP_PROG_ID => single = id,
                IFLA_XDP_DRV_PROG_ID => state.native = id,
                IFLA_XDP_SKB_PROG_ID => state.generic = id,
                IFLA_XDP_HW_PROG_ID => state.offload = id,
                _ => {}
            }
        }
        // With one program attached the kernel may send only the mode and the plain id.
        match attached {
            1 => state.native = state.native.or(single),
            2 => state.generic = state.generic.or(single),
            3 => state.offload = state.offload.or(single),
            _ => {}
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_request_has_the_layout_of_rtnetlink() {
        let mut nested = Vec::new();
        put_attr(&mut nested, IFLA_XDP_FD, &7i32.to_ne_bytes());
        put_attr(
            &mut nested,
            IFLA_XDP_FLAGS,
            &XDP_FLAGS_DRV_MODE.to_ne_bytes(),
        );
        let mut attrs = Vec::new();
        put_attr(&mut attrs, IFLA_XDP | NLA_F_NESTED, &nested);
        let m = link_message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 3, &attrs);
        assert_eq!(m.len(), 16 + 16 + 4 + 8 + 8);
        assert_eq!(u32_at(&m, 0), Some(m.len() as u32));
        assert_eq!(u16_at(&m, 4), Some(RTM_SETLINK));
        assert_eq!(u32_at(&m, 20), Some(3), "ifi_index");
        assert_eq!(u16_at(&m, 34), Some(IFLA_XDP | NLA_F_NESTED));
        assert_eq!(u16_at(&m, 38), Some(IFLA_XDP_FD));
        assert_eq!(u32_at(&m, 40), Some(7));
        assert_eq!(u16_at(&m, 46), Some(IFLA_XDP_FLAGS));
        assert_eq!(u32_at(&m, 48), Some(XDP_FLAGS_DRV_MODE));
    }

    /// An error reply as the kernel writes it with extended acks: the capped header of the
    /// request, then a message attribute.
    #[test]
    fn error_replies_carry_the_kernel_message() {
        let mut body = Vec::new();
        body.extend_from_slice(&(-libc::EOPNOTSUPP).to_ne_bytes());
        body.extend_from_slice(&[0u8; NLMSG_HDRLEN]);
        put_attr(
            &mut body,
            NLMSGERR_ATTR_MSG,
            b"Driver does not support XDP\0",
        );
        let err = ack_result(NLM_F_CAPPED | NLM_F_ACK_TLVS, &body).unwrap_err();
        assert_eq!(err.raw_os_error(), None);
        assert!(err.to_string().starts_with("Driver does not support XDP ["));
        let plain = ack_result(0, &(-libc::ENODEV).to_ne_bytes()).unwrap_err();
        assert_eq!(plain.raw_os_error(), Some(libc::ENODEV));
        assert!(ack_result(0, &0i32.to_ne_bytes()).is_ok());
    }

    #[test]
    fn link_replies_give_the_program_of_each_mode() {
        let mut xdp = Vec::new();
        put_attr(&mut xdp, IFLA_XDP_ATTACHED, &[2]);
        put_attr(&mut xdp, IFLA_XDP_PROG_ID, &42u32.to_ne_bytes());
        let mut body = vec![0u8; IFINFOMSG_LEN];
        put_attr(&mut body, 3, b"veth0\0"); // IFLA_IFNAME, ignored
        put_attr(&mut body, IFLA_XDP | NLA_F_NESTED, &xdp);
        let state = parse_link(&body);
        assert_eq!(state.generic, Some(42));
        assert_eq!(state.native, None);
        assert_eq!(state.attached(), vec![(XdpMode::Generic, 42)]);
        // Truncated input gives what could be read, never a panic.
        for cut in 0..body.len() {
            let _ = parse_link(&body[..cut]);
        }
    }
}
