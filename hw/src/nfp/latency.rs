//! The timing of the model as data: memory latencies by level, the lookup engine's cost of
//! map operations and helpers, and the pipeline's branch shadow and context-swap cost, read
//! from `hw/data/nfp_latency.toml` (which cites its sources). The simulator takes every
//! cycle count from a [`LatencyTable`]; the golden cycle tests read the same file.

use super::insn::MemLevel;
use serde::{Deserialize, Serialize};

/// The text of the data file shipped with nicc.
pub const NFP_LATENCY_TOML: &str = include_str!("../../data/nfp_latency.toml");

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    pub issue: u64,
    pub branch_shadow: u64,
    pub context_swap: u64,
    pub dispatch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    pub lm: u64,
    pub cls: u64,
    pub ctm: u64,
    pub imem: u64,
    pub emem: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    pub base: u64,
    pub helper: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapAccesses {
    pub array: u64,
    pub percpu_array: u64,
    pub hash: u64,
    pub percpu_hash: u64,
    pub lru_hash: u64,
    pub lpm_trie: u64,
    pub other: u64,
}

/// Every timing figure of the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyTable {
    pub pipeline: Pipeline,
    pub memory: Memory,
    pub lookup: Lookup,
    pub maps: MapAccesses,
}

/// The map kinds the lookup engine distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    Array,
    PercpuArray,
    Hash,
    PercpuHash,
    LruHash,
    LpmTrie,
    Other,
}

impl LatencyTable {
    /// The table shipped with nicc (`hw/data/nfp_latency.toml`).
    pub fn shipped() -> Result<LatencyTable, String> {
        LatencyTable::parse(NFP_LATENCY_TOML)
    }

    pub fn parse(text: &str) -> Result<LatencyTable, String> {
        toml::from_str(text).map_err(|e| format!("NFP latency table: {e}"))
    }

    /// Cycles from issue to completion of a command at `level` (not the lookup engine).
    pub fn memory(&self, level: MemLevel) -> u64 {
        match level {
            MemLevel::Lm => self.memory.lm,
            MemLevel::Cls => self.memory.cls,
            MemLevel::Ctm => self.memory.ctm,
            MemLevel::Imem => self.memory.imem,
            MemLevel::Emem => self.memory.emem,
            MemLevel::Lookup => self.lookup.helper,
        }
    }

    /// Memory accesses of one operation on a map of `kind`.
    pub fn map_accesses(&self, kind: MapKind) -> u64 {
        match kind {
            MapKind::Array => self.maps.array,
            MapKind::PercpuArray => self.maps.percpu_array,
            MapKind::Hash => self.maps.hash,
            MapKind::PercpuHash => self.maps.percpu_hash,
            MapKind::LruHash => self.maps.lru_hash,
            MapKind::LpmTrie => self.maps.lpm_trie,
            MapKind::Other => self.maps.other,
        }
    }

    /// Cycles of a map operation on a map of `kind` placed at `level`.
    pub fn map_operation(&self, kind: MapKind, level: MemLevel) -> u64 {
        self.lookup.base + self.map_accesses(kind) * self.memory(level)
    }
}
