//! The pipeline block: an RTL-level description (ports, registers, memories, stages) that both the Verilog printer and the pipeline simulator consume, so they cannot disagree.
//!
//! - [`block`]: the block itself and the timing contract every consumer implements.
//! - [`validate`]: structural checks before printing or simulating.
//! - [`model`]: delay and resource models, loaded from the data files in `hw/data/`.

pub mod block;
pub mod model;
pub mod validate;

pub use block::{
    Block, Input, Logic, Memory, Node, NodeId, NodeKind, Output, RedirectMap, Register, Shape,
    REDIRECT_IFINDEX, REDIRECT_MAP, REDIRECT_NONE,
};
pub use model::{DelayModel, OpClass};
pub use validate::validate;
