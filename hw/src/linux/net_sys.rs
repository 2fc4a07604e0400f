//! The networking system calls nicc needs to put programs on real interfaces and to test them
//! there: route netlink sockets (XDP attach and query), packet sockets (raw Ethernet frames in
//! and out of an interface), network namespaces and interface names, wrapped in safe types.
//!
//! Together with [`super::sys`] this is the only module of the crate with `unsafe` code. Every
//! wrapper hands the kernel buffers whose lengths it passes alongside, so no caller can make
//! the kernel read or write outside a Rust buffer.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// `NETLINK_EXT_ACK` (`include/uapi/linux/netlink.h`): ask for the kernel's error message.
const NETLINK_EXT_ACK: libc::c_int = 11;
/// `SOL_NETLINK`.
const SOL_NETLINK: libc::c_int = 270;
/// `SOL_PACKET` and `PACKET_AUXDATA` (`include/uapi/linux/if_packet.h`).
const SOL_PACKET: libc::c_int = 263;
const PACKET_AUXDATA: libc::c_int = 8;
/// `tp_status` bits of `struct tpacket_auxdata`: the VLAN fields hold a tag the receive path
/// took out of the frame.
const TP_STATUS_VLAN_VALID: u32 = 0x10;
const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;

/// `struct tpacket_auxdata`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// `ETH_P_ALL`, in network byte order as packet sockets want it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// Takes ownership of a descriptor a system call just returned.
fn owned(ret: libc::c_int) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `ret` is a descriptor the kernel has just created for this call; nothing else
    // in the process refers to it, so the `OwnedFd` is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_timeout(fd: RawFd, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: the kernel reads `size_of::<timeval>()` bytes from a live `timeval`.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })
}

/// Receives one datagram into `buf`; `Ok(None)` when the receive timeout expired first.
fn recv_into(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into the live buffer.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(n as usize))
}

/// A route netlink socket (`NETLINK_ROUTE`) with extended acknowledgements turned on, so a
/// refusal comes back with the kernel's own words.
#[derive(Debug)]
pub struct RouteSocket {
    fd: OwnedFd,
}

impl RouteSocket {
    pub fn open() -> io::Result<RouteSocket> {
        // SAFETY: plain socket creation; no memory is passed.
        let fd = owned(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        })?;
        let one: libc::c_int = 1;
        // SAFETY: the kernel reads one `c_int` from a live variable.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_NETLINK,
                NETLINK_EXT_ACK,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        set_timeout(fd.as_raw_fd(), Duration::from_secs(5))?;
        Ok(RouteSocket { fd })
    }

    /// Sends one complete netlink message to the kernel.
    pub fn send(&self, message: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero `sockaddr_nl` is valid (family set below, pid 0 is the kernel).
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: the kernel reads `message.len()` bytes of the message and the whole address,
        // both live for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                message.as_ptr() as *const libc::c_void,
                message.len(),
                0,
                &to as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != message.len() {
            return Err(io::Error::other("netlink message sent in part"));
        }
        Ok(())
    }

    /// Receives one datagram (which may hold several messages).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        recv_into(self.fd.as_raw_fd(), buf)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the kernel did not answer a netlink request within 5 s",
            )
        })
    }
}

/// A raw packet socket bound to one interface: it sends whole Ethernet frames out of the
/// interface and receives every frame that reaches the interface's receive path.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl PacketSocket {
    /// Opens a socket on `ifindex` in the calling thread's network namespace; receives give up
    /// after `timeout`.
    pub fn bind(ifindex: u32, timeout: Duration) -> io::Result<PacketSocket> {
        // SAFETY: plain socket creation; no memory is passed.
        let fd = owned(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                ETH_P_ALL_BE as libc::c_int,
            )
        })?;
        let addr = link_addr(ifindex);
        // SAFETY: the kernel reads the whole live `sockaddr_ll`.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        let one: libc::c_int = 1;
        // SAFETY: the kernel reads one `c_int` from a live variable.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_AUXDATA,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        set_timeout(fd.as_raw_fd(), timeout)?;
        Ok(PacketSocket { fd, ifindex })
    }

    /// Sends one Ethernet frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let addr = link_addr(self.ifindex);
        // SAFETY: the kernel reads `frame.len()` bytes of the frame and the whole address.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one frame as it was on the wire; `Ok(None)` once the timeout passes with
    /// nothing to read. Frames this socket sent itself are not returned.
    ///
    /// The receive path takes the outer VLAN tag out of a frame before packet sockets see it
    /// (as NICs with VLAN offload do) and reports it beside the frame as auxiliary data; the
    /// tag is put back here, so that a program's output can be compared byte for byte.
    pub fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 65536];
        // Room for one `cmsghdr` with a `tpacket_auxdata`, aligned as the kernel writes it.
        let mut control = [0u64; 8];
        loop {
            // SAFETY: an all-zero `sockaddr_ll` is a valid buffer for the sender's address.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            // SAFETY: an all-zero `msghdr` is valid; its pointers are set below.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = &mut from as *mut libc::sockaddr_ll as *mut libc::c_void;
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = std::mem::size_of_val(&control);
            // SAFETY: every buffer `msg` points to is live and as long as `msg` says: the frame
            // buffer, the address and the control buffer.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(None),
                    _ => Err(e),
                };
            }
            // Outgoing frames are looped back to packet sockets as PACKET_OUTGOING; only
            // frames the interface received count.
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let mut frame = buf[..n as usize].to_vec();
            if let Some(aux) = auxdata(&msg) {
                if aux.tp_status & TP_STATUS_VLAN_VALID != 0 && frame.len() >= 12 {
                    let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    let mut tag = tpid.to_be_bytes().to_vec();
                    tag.extend_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                    frame.splice(12..12, tag);
                }
            }
            return Ok(Some(frame));
        }
    }
}

/// The `tpacket_auxdata` control message of a received frame, if the kernel sent one.
fn auxdata(msg: &libc::msghdr) -> Option<TpacketAuxdata> {
    // SAFETY: `msg` was filled in by a successful `recvmsg`, so the CMSG macros walk only the
    // control buffer it points to, within the length the kernel wrote.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is non-null and inside the control buffer (see above).
        let header = unsafe { &*cmsg };
        let want = std::mem::size_of::<TpacketAuxdata>();
        // SAFETY: `CMSG_LEN` is arithmetic on a constant.
        let full = unsafe { libc::CMSG_LEN(want as u32) } as usize;
        if header.cmsg_level == SOL_PACKET
            && header.cmsg_type == PACKET_AUXDATA
            && header.cmsg_len >= full
        {
            // SAFETY: the message holds at least `size_of::<TpacketAuxdata>()` data bytes
            // (checked through `cmsg_len`); they may be unaligned, hence `read_unaligned`.
            return Some(unsafe {
                std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const TpacketAuxdata)
            });
        }
        // SAFETY: as above, the macro stays within the control buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    None
}

fn link_addr(ifindex: u32) -> libc::sockaddr_ll {
    // SAFETY: an all-zero `sockaddr_ll` is valid; the fields that matter are set below.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ALL_BE;
    addr.sll_ifindex = ifindex as libc::c_int;
    addr.sll_halen = 6;
    addr
}

/// The index of the interface called `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "an interface name has no NUL byte",
        )
    })?;
    // SAFETY: the kernel-facing libc call reads the NUL-terminated name, which lives until the
    // call returns.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// Moves the calling thread into the network namespace at `path` (for example
/// `/run/netns/NAME`, as `ip netns add` creates). Other threads stay where they are; sockets
/// opened afterwards by this thread belong to the new namespace for their whole life.
pub fn enter_netns(path: &std::path::Path) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    // SAFETY: `setns` takes a live descriptor of a namespace file and touches no memory.
    check(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) })
}
