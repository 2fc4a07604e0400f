//! The pipeline block: an RTL-level description (ports, registers, memories, stages) that both the Verilog printer and the pipeline simulator consume, so they cannot disagree.
