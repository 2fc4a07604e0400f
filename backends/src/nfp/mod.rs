//! Optimized IR to NFP-style microcode (the instruction set lives in `hw::nfp`).
