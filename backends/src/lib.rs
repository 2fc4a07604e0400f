//! Pure code generators: optimized `ir` in, an artifact (BPF object, native code, NFP microcode,
//! Verilog) out. Backends never execute anything; execution lives in `sim`.

pub mod bpf;

pub mod native;
pub mod nfp;
pub mod verilog;
