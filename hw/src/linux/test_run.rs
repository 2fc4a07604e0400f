//! Running a loaded XDP program on one packet with `BPF_PROG_TEST_RUN`.
//!
//! What the kernel does, and so what the interpreter must match:
//!
//! - The packet is copied into a fresh page behind `XDP_PACKET_HEADROOM` (256) bytes of
//!   headroom, with the tail of the page reserved for `struct skb_shared_info`. The kernel
//!   refuses packets shorter than an Ethernet header (14 bytes). A packet longer than the
//!   linear part of the page ([`MAX_PACKET`], 3520 bytes) is not refused by Linux 6.18: it is
//!   split into the linear part plus page fragments (multi-buffer XDP, up to 17 fragments; more
//!   gives ENOMEM), and the program sees only the first [`MAX_PACKET`] bytes between `data` and
//!   `data_end`, whatever its section says. nicc's engines do not model fragments, so the oracle
//!   refuses such packets itself. Both cases come back as [`KernelError::PacketRejected`],
//!   checked before the kernel is asked, so that differential tests count them apart.
//! - Without a context the program runs as if received on the loopback device, queue 0; a
//!   context is passed only when the caller asks for another device or queue.
//! - The output starts at `data_meta`: a program that grew metadata with
//!   `bpf_xdp_adjust_meta` gets the metadata bytes in front of the packet, as the kernel
//!   returns them.
//! - `repeat` is 1: with more, the kernel feeds the modified packet back into the program.
//!   [`run_xdp_timed`] is the exception, for timing only: it asks for a large repeat and
//!   keeps only the kernel's average duration per run (`bpf_test_run` runs the program
//!   `repeat` times on the same frame, without restoring it, and divides the elapsed time).
//! - The calling thread is pinned to CPU 0 for the run (and its affinity restored afterwards),
//!   so that per-CPU map values land in CPU 0's slot and `bpf_get_smp_processor_id()` returns 0,
//!   as the interpreter assumes; the kernel runs the program on the caller's CPU.

use super::error::KernelError;
use super::sys;
use std::os::fd::RawFd;

/// `ETH_HLEN`: the kernel refuses shorter test packets.
pub const MIN_PACKET: usize = 14;

/// The longest packet the XDP test run keeps linear: a 4 KiB page minus the 256 bytes of
/// headroom and the cache-aligned `struct skb_shared_info` (320 bytes on x86-64 with the
/// default 17 fragments) at its end. A test checks it against the running kernel.
pub const MAX_PACKET: usize = 4096 - 256 - 320;

/// The receive queue the program sees (`ingress_ifindex` and `rx_queue_index` of `xdp_md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpCtx {
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
}

impl Default for XdpCtx {
    /// The loopback device (ifindex 1), queue 0: what the kernel uses without a context.
    fn default() -> XdpCtx {
        XdpCtx {
            ingress_ifindex: 1,
            rx_queue_index: 0,
        }
    }
}

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRunResult {
    /// The XDP action the program returned.
    pub retval: u32,
    /// The packet after the program (metadata included, see the module documentation).
    pub packet: Vec<u8>,
    /// The kernel's timing of the run in nanoseconds (about 30 of them are the test loop).
    pub duration_ns: u32,
}

/// `struct xdp_md` as the test run takes it: offsets of data and data_end from data_meta.
fn xdp_md(len: usize, ctx: &XdpCtx) -> [u8; 24] {
    let fields = [
        0u32,
        len as u32,
        0,
        ctx.ingress_ifindex,
        ctx.rx_queue_index,
        0,
    ];
    let mut out = [0u8; 24];
    for (chunk, f) in out.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&f.to_le_bytes());
    }
    out
}

/// Checks that the kernel would run `packet` linearly, as nicc's engines do.
fn check_packet_length(len: usize) -> Result<(), KernelError> {
    if len < MIN_PACKET {
        return Err(KernelError::PacketRejected {
            len,
            reason: format!("shorter than an Ethernet header ({MIN_PACKET} bytes)"),
        });
    }
    if len > MAX_PACKET {
        return Err(KernelError::PacketRejected {
            len,
            reason: format!(
                "longer than the {MAX_PACKET} bytes that fit in one page after headroom and \
                 tailroom: the kernel would show the program only those and keep the rest in \
                 fragments (multi-buffer XDP), which nicc does not model"
            ),
        });
    }
    Ok(())
}

/// The kernel's timing of an XDP program: `repeat` runs on one frame built from `packet`
/// (the packet the program modified is fed back in, see the module documentation), on CPU 0
/// and without a context. Returns the retval of the last run and the kernel's duration per
/// run in nanoseconds, which includes the test loop's own overhead (`bpf_test_timer` and the
/// dispatcher, about 30 ns): time a two-instruction program the same way to subtract it.
pub(crate) fn run_xdp_timed(
    prog: RawFd,
    name: &str,
    packet: &[u8],
    repeat: u32,
) -> Result<TestRunResult, KernelError> {
    check_packet_length(packet.len())?;
    let mut out = vec![0u8; packet.len() + 4096];
    let _pinned = sys::pin_to_cpu(0)
        .map_err(|e| KernelError::syscall("pinning the thread to CPU 0 for the test run", e))?;
    let run = sys::test_run(prog, packet, &mut out, None, repeat.max(1))
        .map_err(|e| KernelError::syscall(format!("timed test run of `{name}`"), e))?;
    out.truncate(run.data_size_out as usize);
    Ok(TestRunResult {
        retval: run.retval,
        packet: out,
        duration_ns: run.duration,
    })
}

/// Runs an XDP program once; see the module documentation for what the kernel does.
pub(crate) fn run_xdp(
    prog: RawFd,
    name: &str,
    packet: &[u8],
    ctx: &XdpCtx,
) -> Result<TestRunResult, KernelError> {
    let len = packet.len();
    check_packet_length(len)?;
    // The output never exceeds one page (the program can grow the packet into the headroom and
    // the tailroom only), so this is large enough: an ENOSPC would mean the program already
    // ran, and running it again would repeat its side effects on maps.
    let mut out = vec![0u8; len + 4096];
    let ctx_in = xdp_md(len, ctx);
    let mut ctx_out = [0u8; 24];
    let with_ctx = *ctx != XdpCtx::default();
    let _pinned = sys::pin_to_cpu(0)
        .map_err(|e| KernelError::syscall("pinning the thread to CPU 0 for the test run", e))?;
    let result = sys::test_run(
        prog,
        packet,
        &mut out,
        with_ctx.then_some((&ctx_in[..], &mut ctx_out[..])),
        1,
    );
    let run = result.map_err(|e| {
        let what = if with_ctx && e.raw_os_error() == Some(libc::EINVAL) {
            format!(
                "test run of `{name}` (ingress ifindex {} queue {}: the device must exist \
                 and have that receive queue)",
                ctx.ingress_ifindex, ctx.rx_queue_index
            )
        } else if e.raw_os_error() == Some(libc::ENODEV) {
            format!(
                "test run of `{name}` (no device with ifindex {})",
                ctx.ingress_ifindex
            )
        } else {
            format!("test run of `{name}`")
        };
        KernelError::syscall(what, e)
    })?;
    out.truncate(run.data_size_out as usize);
    Ok(TestRunResult {
        retval: run.retval,
        packet: out,
        duration_ns: run.duration,
    })
}
