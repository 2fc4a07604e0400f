//! The cycle-accurate executor of `hw::pipeline` blocks, the model the emitted Verilog is checked against.
