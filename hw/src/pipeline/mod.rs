//! The pipeline block: an RTL-level description (ports, registers, memories, stages) that both the Verilog printer and the pipeline simulator consume, so they cannot disagree.
//!
//! - [`block`]: the block itself and the timing contract every consumer implements.
//! - [`hash_table`]: how a hash map is laid out in a memory with parallel probing.
//! - [`validate`]: structural checks before printing or simulating.
//! - [`model`]: delay and resource models, loaded from the data files in `hw/data/`.
//! - [`width`]: the significant bits of every node, which narrow operations and their delays.

pub mod block;
pub mod hash_table;
pub mod model;
pub mod validate;
pub mod width;

pub use block::{
    Block, Input, Logic, Memory, MemoryKind, Node, NodeId, NodeKind, Output, RedirectMap, Register,
    Shape, REDIRECT_IFINDEX, REDIRECT_MAP, REDIRECT_NONE,
};
pub use model::{DelayModel, OpClass};
pub use validate::validate;
pub use width::significant_bits;
