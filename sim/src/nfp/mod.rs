//! The cycle-accurate NFP microengine model: executes encoded microcode words on the shared runtime.
