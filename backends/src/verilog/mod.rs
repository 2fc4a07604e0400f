//! Optimized IR to a packet pipeline (`hw::pipeline`), printed as Verilog with a testbench and a shell wrapper.
