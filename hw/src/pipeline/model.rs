//! Delay and resource models for scheduling and reports, read from data files so that a model
//! can be changed or calibrated without touching code (the XLS approach). Two ship with nicc:
//! `hw/data/pipeline_delay_unit.toml`, where every operation costs one unit (for tests whose
//! schedules a person can predict), and `hw/data/pipeline_delay_ultrascale.toml`, an
//! UltraScale+-like model for 250 MHz.

use super::block::{Block, NodeKind, Shape};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The classes of operation a model prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpClass {
    Wire,
    Logic,
    Mux,
    Add,
    Compare,
    Shift,
    Mul,
    Div,
    Select,
    Merge,
    MemRead,
    MemWrite,
}

impl OpClass {
    pub const ALL: [OpClass; 12] = [
        OpClass::Wire,
        OpClass::Logic,
        OpClass::Mux,
        OpClass::Add,
        OpClass::Compare,
        OpClass::Shift,
        OpClass::Mul,
        OpClass::Div,
        OpClass::Select,
        OpClass::Merge,
        OpClass::MemRead,
        OpClass::MemWrite,
    ];

    /// The key in the data files.
    pub fn key(self) -> &'static str {
        match self {
            OpClass::Wire => "wire",
            OpClass::Logic => "logic",
            OpClass::Mux => "mux",
            OpClass::Add => "add",
            OpClass::Compare => "compare",
            OpClass::Shift => "shift",
            OpClass::Mul => "mul",
            OpClass::Div => "div",
            OpClass::Select => "select",
            OpClass::Merge => "merge",
            OpClass::MemRead => "mem_read",
            OpClass::MemWrite => "mem_write",
        }
    }

    /// The class of `kind` in `block`: operations whose variable operand is a constant are
    /// mostly wiring (a shift by a constant, a byte select at a constant offset).
    pub fn of(block: &Block, kind: &NodeKind) -> OpClass {
        use ir::semantics::AluOp;
        let is_const = |n: u32| matches!(block.node(n).kind, NodeKind::Const(_));
        match kind {
            NodeKind::Input(_) | NodeKind::Const(_) | NodeKind::Zeros => OpClass::Wire,
            NodeKind::Endian { .. } => OpClass::Wire,
            NodeKind::Alu { op, b, .. } => match op {
                AluOp::Add | AluOp::Sub | AluOp::Neg => OpClass::Add,
                AluOp::Mul => OpClass::Mul,
                AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod => OpClass::Div,
                AluOp::Or | AluOp::And | AluOp::Xor => OpClass::Logic,
                AluOp::Lsh | AluOp::Rsh | AluOp::Arsh if is_const(*b) => OpClass::Wire,
                AluOp::Lsh | AluOp::Rsh | AluOp::Arsh => OpClass::Shift,
                AluOp::Mov | AluOp::MovSx8 | AluOp::MovSx16 | AluOp::MovSx32 => OpClass::Wire,
            },
            NodeKind::Cmp { .. } => OpClass::Compare,
            NodeKind::Logic { .. } | NodeKind::Not(_) => OpClass::Logic,
            NodeKind::Mux { .. } => OpClass::Mux,
            NodeKind::ReadBytes { offset, .. } if is_const(*offset) => OpClass::Wire,
            NodeKind::ReadBytes { .. } => OpClass::Select,
            NodeKind::WriteBytes { offset, .. } if is_const(*offset) => OpClass::Mux,
            NodeKind::WriteBytes { .. } => OpClass::Merge,
            NodeKind::Slice { .. } | NodeKind::Splice { .. } => OpClass::Wire,
            NodeKind::MemRead { .. } => OpClass::MemRead,
            NodeKind::MemWrite { .. } => OpClass::MemWrite,
        }
    }
}

#[derive(Deserialize)]
struct ModelFile {
    name: String,
    clock_period_ps: u32,
    delay_ps: BTreeMap<String, u32>,
    /// Optional width-dependent delays: for a class, `[[bits, ps], ...]` in increasing bits; an
    /// operation on `b` significant bits costs the first entry with at least `b` bits.
    #[serde(default)]
    delay_ps_by_bits: BTreeMap<String, Vec<(u32, u32)>>,
    luts_per_bit: BTreeMap<String, f64>,
    /// Optional delays of adding a constant, `[[bits, ps], ...]` by the bits where the
    /// constant and the other operand overlap: synthesis makes an incrementer-like chain of
    /// them, shallower than an adder of two variables. The `add` prices apply when absent.
    #[serde(default)]
    add_constant_ps_by_bits: Vec<(u32, u32)>,
    /// The delay the model prices one LUT level at, for turning delays into the LUT levels
    /// Yosys measures; a sixth of the clock period when absent.
    #[serde(default)]
    lut_level_ps: u32,
}

/// A delay and resource model.
#[derive(Clone, Debug, PartialEq)]
pub struct DelayModel {
    pub name: String,
    /// The clock period the model schedules for by default.
    pub clock_period_ps: u32,
    /// The delay of one LUT level with its routing.
    pub lut_level_ps: u32,
    delay: BTreeMap<OpClass, u32>,
    delay_by_bits: BTreeMap<OpClass, Vec<(u32, u32)>>,
    add_constant_by_bits: Vec<(u32, u32)>,
    luts_per_bit: BTreeMap<OpClass, f64>,
}

impl DelayModel {
    /// Parses a model file; every class must be priced in both tables.
    pub fn parse(text: &str) -> Result<DelayModel, String> {
        let file: ModelFile =
            toml::from_str(text).map_err(|e| format!("delay model does not parse: {e}"))?;
        let mut delay = BTreeMap::new();
        let mut luts = BTreeMap::new();
        for class in OpClass::ALL {
            let d = file.delay_ps.get(class.key()).ok_or_else(|| {
                format!(
                    "delay model `{}` gives no delay_ps.{}",
                    file.name,
                    class.key()
                )
            })?;
            let l = file.luts_per_bit.get(class.key()).ok_or_else(|| {
                format!(
                    "delay model `{}` gives no luts_per_bit.{}",
                    file.name,
                    class.key()
                )
            })?;
            delay.insert(class, *d);
            luts.insert(class, *l);
        }
        let mut by_bits = BTreeMap::new();
        for (key, table) in &file.delay_ps_by_bits {
            let class = OpClass::ALL
                .iter()
                .copied()
                .find(|c| c.key() == key)
                .ok_or_else(|| {
                    format!(
                        "delay model `{}` prices `{key}` by width, which is no operation class",
                        file.name
                    )
                })?;
            if table.is_empty() || table.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(format!(
                    "delay model `{}`: delay_ps_by_bits.{key} must list widths in increasing order",
                    file.name
                ));
            }
            by_bits.insert(class, table.clone());
        }
        for key in file.delay_ps.keys().chain(file.luts_per_bit.keys()) {
            if !OpClass::ALL.iter().any(|c| c.key() == key) {
                return Err(format!(
                    "delay model `{}` prices `{key}`, which is no operation class",
                    file.name
                ));
            }
        }
        if file.clock_period_ps == 0 {
            return Err(format!(
                "delay model `{}` has a zero clock period",
                file.name
            ));
        }
        let lut_level_ps = if file.lut_level_ps == 0 {
            (file.clock_period_ps / 6).max(1)
        } else {
            file.lut_level_ps
        };
        let increasing = |t: &[(u32, u32)]| t.windows(2).all(|w| w[0].0 < w[1].0);
        if !increasing(&file.add_constant_ps_by_bits) {
            return Err(format!(
                "delay model `{}`: add_constant_ps_by_bits must list widths in increasing order",
                file.name
            ));
        }
        Ok(DelayModel {
            add_constant_by_bits: file.add_constant_ps_by_bits,
            name: file.name,
            clock_period_ps: file.clock_period_ps,
            lut_level_ps,
            delay,
            delay_by_bits: by_bits,
            luts_per_bit: luts,
        })
    }

    /// The unit model (`hw/data/pipeline_delay_unit.toml`).
    pub fn unit() -> DelayModel {
        Self::parse(include_str!("../../data/pipeline_delay_unit.toml"))
            .unwrap_or_else(|e| unreachable_model(&e))
    }

    /// The UltraScale+-like model (`hw/data/pipeline_delay_ultrascale.toml`).
    pub fn ultrascale() -> DelayModel {
        Self::parse(include_str!("../../data/pipeline_delay_ultrascale.toml"))
            .unwrap_or_else(|e| unreachable_model(&e))
    }

    /// The model called `name` (`unit` or `ultrascale`).
    pub fn named(name: &str) -> Option<DelayModel> {
        match name {
            "unit" => Some(Self::unit()),
            "ultrascale" | "ultrascale-plus-like" => Some(Self::ultrascale()),
            _ => None,
        }
    }

    pub fn delay(&self, class: OpClass) -> u32 {
        self.delay.get(&class).copied().unwrap_or(0)
    }

    /// The delay of `class` on operands of `bits` significant bits.
    pub fn delay_sized(&self, class: OpClass, bits: u32) -> u32 {
        match self.delay_by_bits.get(&class) {
            Some(table) => table
                .iter()
                .find(|(b, _)| *b >= bits)
                .or(table.last())
                .map_or(0, |&(_, d)| d),
            None => self.delay(class),
        }
    }

    /// A delay in LUT levels, rounded up: what the model predicts Yosys will count.
    pub fn lut_levels(&self, delay_ps: u32) -> u32 {
        delay_ps.div_ceil(self.lut_level_ps.max(1))
    }

    /// The delay a registered memory read's row takes to reach its users: the multiplexer
    /// that forwards the next stage's write in place of the block RAM's output.
    pub fn forward_delay(&self) -> u32 {
        self.delay(OpClass::Mux)
    }

    /// The combinational delay of node `kind` in `block` at full width.
    pub fn node_delay(&self, block: &Block, kind: &NodeKind) -> u32 {
        self.delay(OpClass::of(block, kind))
    }

    /// The combinational delay of every node of `block`, with adders, comparators and
    /// multipliers priced by the significant bits of their operands
    /// (`hw::pipeline::significant_bits`), as the Verilog printer narrows them.
    pub fn node_delays(&self, block: &Block) -> Vec<u32> {
        let sig = super::width::significant_bits(block);
        let bits = |id: u32, cap: u32| sig.get(id as usize).copied().unwrap_or(64).min(cap);
        block
            .nodes
            .iter()
            .map(|n| {
                let class = OpClass::of(block, &n.kind);
                if let Some(d) = self.constant_add_delay(block, &n.kind, &sig) {
                    return d;
                }
                let width = match n.kind {
                    NodeKind::Alu { width, a, b, .. } | NodeKind::Cmp { width, a, b, .. } => {
                        let cap = width.bits();
                        bits(a, cap).max(bits(b, cap))
                    }
                    _ => 64,
                };
                self.delay_sized(class, width.max(1))
            })
            .collect()
    }

    /// The delay of an addition of a constant, as synthesis sees it: the constant's low zero
    /// bits pass the other operand's bits through, so only the bits where both can be
    /// non-zero form a carry chain, and above the other operand's significant bits the sum is
    /// the constant plus one carry bit, one more LUT level. `None` for anything else. (Yosys
    /// propagates the constant this way; pricing the adder at full width predicted 22 levels
    /// for `x + 0xffffffff00000000` on a 33-bit `x`, where Yosys measured at most 6 for the
    /// whole stage.)
    fn constant_add_delay(&self, block: &Block, kind: &NodeKind, sig: &[u32]) -> Option<u32> {
        let NodeKind::Alu {
            op: ir::semantics::AluOp::Add,
            width,
            a,
            b,
        } = *kind
        else {
            return None;
        };
        let constant = |id: u32| match block.nodes.get(id as usize).map(|n| &n.kind) {
            Some(NodeKind::Const(c)) => Some(*c),
            _ => None,
        };
        let (var, c) = match (constant(a), constant(b)) {
            (None, Some(c)) => (a, c),
            (Some(c), None) => (b, c),
            _ => return None,
        };
        let cap = width.bits();
        let c = if cap < 64 { c & ((1u64 << cap) - 1) } else { c };
        let var_bits = sig.get(var as usize).copied().unwrap_or(64).min(cap);
        let low_zeros = c.trailing_zeros().min(cap);
        if var_bits <= low_zeros {
            // The operand's bits and the constant's do not overlap: wiring.
            return Some(self.delay(OpClass::Wire));
        }
        let overlap = var_bits - low_zeros;
        let chain = match self
            .add_constant_by_bits
            .iter()
            .find(|(b, _)| *b >= overlap)
            .or(self.add_constant_by_bits.last())
        {
            Some(&(_, d)) => d,
            None => self.delay_sized(OpClass::Add, overlap),
        };
        let constant_above = var_bits < cap && (c >> var_bits) != 0;
        Some(chain + if constant_above { self.lut_level_ps } else { 0 })
    }

    /// An estimate of the LUTs of a whole block: each node's class times its width.
    pub fn estimate_luts(&self, block: &Block) -> f64 {
        block
            .nodes
            .iter()
            .map(|n| {
                let bits = match n.shape {
                    Shape::Effect => 64,
                    s => s.bits(),
                };
                self.luts_per_bit
                    .get(&OpClass::of(block, &n.kind))
                    .copied()
                    .unwrap_or(0.0)
                    * bits as f64
            })
            .sum()
    }
}

/// The shipped model files are compiled in and covered by tests, so they always parse; this
/// keeps the constructor total without a panic path the tests could not reach.
fn unreachable_model(error: &str) -> DelayModel {
    DelayModel {
        name: format!("invalid built-in model: {error}"),
        clock_period_ps: u32::MAX,
        lut_level_ps: 1,
        delay: BTreeMap::new(),
        delay_by_bits: BTreeMap::new(),
        add_constant_by_bits: Vec::new(),
        luts_per_bit: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_models_parse_and_price_every_class() {
        for text in [
            include_str!("../../data/pipeline_delay_unit.toml"),
            include_str!("../../data/pipeline_delay_ultrascale.toml"),
        ] {
            let m = DelayModel::parse(text).unwrap();
            assert_eq!(m.delay.len(), OpClass::ALL.len());
            assert!(m.clock_period_ps > 0);
        }
        assert_eq!(DelayModel::unit().delay(OpClass::Add), 1);
        assert_eq!(DelayModel::ultrascale().clock_period_ps, 4000);
    }

    /// `in_len + c` (16 significant bits) in a block of its own.
    fn length_plus(c: u64) -> Block {
        use super::super::block::{Input, Node};
        use ir::semantics::{AluOp, Width};
        let node = |kind, shape| Node {
            kind,
            shape,
            stage: 0,
            insn: u32::MAX,
        };
        Block {
            name: "t".into(),
            window_bytes: 1,
            stages: 1,
            clock_period_ps: 4000,
            nodes: vec![
                node(NodeKind::Input(Input::Length), Shape::Bits(16)),
                node(NodeKind::Const(c), Shape::Bits(64)),
                node(
                    NodeKind::Alu {
                        op: AluOp::Add,
                        width: Width::W64,
                        a: 0,
                        b: 1,
                    },
                    Shape::Bits(64),
                ),
            ],
            memories: Vec::new(),
            outputs: BTreeMap::new(),
            redirect_map: None,
            redirect_value_bytes: 1,
        }
    }

    #[test]
    fn adding_a_constant_costs_only_the_overlapping_bits() {
        let m = DelayModel::ultrascale();
        // The constant's bits all lie above the operand's 16: only wiring.
        assert_eq!(m.node_delays(&length_plus(1 << 16))[2], 0);
        // Overlapping from bit 0: a 16-bit incrementer, no constant bits above it; Yosys
        // 0.23 measured 3 LUT levels for `x + 1` on 16 bits.
        assert_eq!(m.lut_levels(m.node_delays(&length_plus(1))[2]), 3);
        // Low 8 bits zero, bits above 16 set: an 8-bit chain (2 levels measured for `x + 1`
        // on 8 bits) plus one level for the carry into the constant's upper bits.
        assert_eq!(m.lut_levels(m.node_delays(&length_plus(0xffff_ff00))[2]), 3);
        // Without the constant table, the adder of two variables prices it.
        let mut plain = m.clone();
        plain.add_constant_by_bits.clear();
        assert_eq!(
            plain.node_delays(&length_plus(1))[2],
            m.delay_sized(OpClass::Add, 16)
        );
    }

    #[test]
    fn a_model_missing_a_class_is_refused() {
        let text =
            "name = \"x\"\nclock_period_ps = 1\n[delay_ps]\nwire = 0\n[luts_per_bit]\nwire = 0.0\n";
        let err = DelayModel::parse(text).unwrap_err();
        assert!(err.contains("delay_ps.logic"), "{err}");
    }
}
