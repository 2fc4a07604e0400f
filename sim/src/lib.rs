//! Everything that executes BPF: the runtime shared by every engine (maps, helpers, the XDP
//! context and packet buffers), the golden interpreter, and pcap input and output.

pub mod interp;
pub mod ir_exec;
pub mod native;
pub mod nfp;
pub mod pcap;
pub mod pipeline;
pub mod runtime;
