//! What the targets are and how nicc talks to real things. For now: the Linux kernel, reached
//! through raw `bpf()` calls, as the oracle every engine is compared against.

pub mod linux;
pub mod nfp;
pub mod pipeline;
pub mod qemu;
pub mod tools;
