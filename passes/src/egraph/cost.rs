//! One cost function per target, so each backend extracts what is cheapest for it.
//!
//! - [`CostTarget::BpfInsnCount`]: BPF instruction slots. An ALU operation is one slot; its
//!   right operand is free when it fits the instruction's 32-bit immediate (any constant at 32
//!   bits, a sign-extended `i32` at 64 bits, a count inside the width for shifts, and never 0
//!   for a division, which the kernel rejects); a constant in a register costs a `mov` (1) or
//!   an `lddw` (2).
//! - [`CostTarget::NativeLatency`]: x86-64/aarch64-like latency along the critical path
//!   (add 1, shifts 1, mul 3, div 26), then total latency; immediates that fit in 32 bits are
//!   free.
//! - [`CostTarget::NfpCycles`]: an NFP microengine, a 32-bit machine: 64-bit operations take
//!   about twice the cycles, multiplication is a multi-step sequence, and division has no
//!   instruction at all (a huge cost, so strength reduction wins whenever it applies).
//! - [`CostTarget::HwAreaDepth`]: an FPGA pipeline: area plus weighted logic depth. Constants,
//!   shifts by constants, masks, extensions and byte swaps are wiring and cost nothing; adders
//!   are cheap, barrel shifters and multipliers expensive, dividers enormous.
//!
//! A branch condition (a comparison node, perhaps under `not`) costs what the conditional
//! jump costs on the target; `not` is free, since it only swaps the destinations. What makes
//! one form of a condition cheaper than another is therefore what its operands cost: a
//! 32-bit comparison that needs no zero extension of its operands, or `set` that needs no
//! `and`. On the NFP and in hardware a 64-bit comparison also costs more than a 32-bit one.
//!
//! A cost is compared by a per-target key whose last component is the node count, so a node
//! always costs strictly more than each of its children and extraction cannot choose a cycle.

use super::analysis::BpfEGraph;
use super::language::{BpfLang, NodeOp};
use egg::{CostFunction, Id, Language};
use ir::semantics::{ByteOrder, JmpCond, Width};
use ir::{BinaryOp, UnaryOp};
use std::cmp::Ordering;

/// Which target's costs extraction minimizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CostTarget {
    BpfInsnCount,
    NativeLatency,
    NfpCycles,
    HwAreaDepth,
}

impl CostTarget {
    pub const ALL: [CostTarget; 4] = [
        CostTarget::BpfInsnCount,
        CostTarget::NativeLatency,
        CostTarget::NfpCycles,
        CostTarget::HwAreaDepth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CostTarget::BpfInsnCount => "bpf-insn-count",
            CostTarget::NativeLatency => "native-latency",
            CostTarget::NfpCycles => "nfp-cycles",
            CostTarget::HwAreaDepth => "hw-area-depth",
        }
    }

    /// The cost model of a pipeline target.
    pub fn for_target(target: crate::pass::Target) -> CostTarget {
        match target {
            crate::pass::Target::Bpf => CostTarget::BpfInsnCount,
            crate::pass::Target::Native => CostTarget::NativeLatency,
            crate::pass::Target::Nfp => CostTarget::NfpCycles,
            crate::pass::Target::Hw => CostTarget::HwAreaDepth,
        }
    }
}

/// The cost of a term: summed resources, critical path, node count, and the key that orders
/// costs for the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// Summed resource: instruction slots, latency, cycles or area.
    pub total: u64,
    /// The longest path from a leaf, in the target's latency or logic levels.
    pub depth: u64,
    pub nodes: u64,
    key: [u64; 3],
}

impl Cost {
    fn new(target: CostTarget, total: u64, depth: u64, nodes: u64) -> Cost {
        let key = match target {
            CostTarget::BpfInsnCount | CostTarget::NfpCycles => [total, depth, nodes],
            CostTarget::NativeLatency => [depth, total, nodes],
            CostTarget::HwAreaDepth => {
                [total.saturating_add(depth.saturating_mul(16)), depth, nodes]
            }
        };
        Cost {
            total,
            depth,
            nodes,
            key,
        }
    }

    /// The value extraction minimizes (the first component of the target's key).
    pub fn score(&self) -> u64 {
        self.key[0]
    }
}

impl PartialOrd for Cost {
    fn partial_cmp(&self, other: &Cost) -> Option<Ordering> {
        Some(self.key.cmp(&other.key))
    }
}

/// What one node costs by itself on a target: its own resource and latency, and whether each
/// child is a free operand (an immediate or wiring) rather than a value in a register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCost {
    pub own: u64,
    pub latency: u64,
    pub free_children: Vec<bool>,
}

fn fits_i32(c: u64) -> bool {
    (c as i64) >= i32::MIN as i64 && (c as i64) <= i32::MAX as i64
}

/// The cost of `node` alone, given the constant values of its children.
pub fn node_cost(
    target: CostTarget,
    node: &BpfLang,
    child_const: &dyn Fn(Id) -> Option<u64>,
) -> NodeCost {
    let children = node.children();
    let mut free = vec![false; children.len()];
    let (own, latency) = match (target, node.op()) {
        (_, NodeOp::Leaf(_)) => (0, 0),
        (CostTarget::BpfInsnCount, NodeOp::Const(c)) => {
            let c = c as u64;
            if fits_i32(c) || c <= u32::MAX as u64 {
                (1, 1)
            } else {
                (2, 1)
            }
        }
        (CostTarget::NativeLatency, NodeOp::Const(c)) => (u64::from(!fits_i32(c as u64)), 0),
        (CostTarget::NfpCycles, NodeOp::Const(c)) => {
            let c = c as u64;
            let cycles = if c < 256 {
                0
            } else if c <= 0xffff {
                1
            } else if c <= u32::MAX as u64 {
                2
            } else {
                4
            };
            (cycles, cycles)
        }
        (CostTarget::HwAreaDepth, NodeOp::Const(_)) => (0, 0),
        (target, NodeOp::Binary(op, width)) => {
            let rhs = child_const(children[1]);
            let (own, latency, rhs_free) = binary_cost(target, op, width, rhs);
            free[1] = rhs_free;
            if target == CostTarget::HwAreaDepth {
                // Constants are wiring wherever they appear.
                free[0] = child_const(children[0]).is_some();
            }
            (own, latency)
        }
        (target, NodeOp::Unary(op, width)) => unary_cost(target, op, width),
        (target, NodeOp::Endian(order, bits)) => endian_cost(target, order, bits),
        (target, NodeOp::Compare(cond, width)) => {
            let (own, latency, rhs_free) =
                compare_cost(target, cond, width, child_const(children[1]));
            free[1] = rhs_free;
            (own, latency)
        }
        (_, NodeOp::Not) => (0, 0),
    };
    NodeCost {
        own,
        latency,
        free_children: free,
    }
}

/// `(own, latency, right operand free)` of a binary operation.
fn binary_cost(
    target: CostTarget,
    op: BinaryOp,
    width: Width,
    rhs: Option<u64>,
) -> (u64, u64, bool) {
    let wide = width == Width::W64;
    let shift = matches!(op, BinaryOp::Lsh | BinaryOp::Rsh | BinaryOp::Arsh);
    let division = matches!(
        op,
        BinaryOp::Div | BinaryOp::SDiv | BinaryOp::Mod | BinaryOp::SMod
    );
    match target {
        CostTarget::BpfInsnCount => {
            let free = match rhs {
                None => false,
                Some(c) if shift => c < width.bits() as u64,
                Some(0) if division => false,
                Some(c) => !wide || fits_i32(c),
            };
            // Every operation is one slot; the latency (as the JIT's code runs) only breaks
            // ties, so `x << 3` is preferred to `x * 8`.
            let latency = match op {
                BinaryOp::Mul => 3,
                _ if division => 26,
                _ => 1,
            };
            (1, latency, free)
        }
        CostTarget::NativeLatency => {
            let latency = match op {
                BinaryOp::Mul => 3,
                BinaryOp::Div | BinaryOp::SDiv | BinaryOp::Mod | BinaryOp::SMod => 26,
                _ => 1,
            };
            (latency, latency, rhs.is_some_and(fits_i32))
        }
        CostTarget::NfpCycles => {
            let cycles = match op {
                BinaryOp::Mul if wide => 14,
                BinaryOp::Mul => 6,
                // No divide instruction: by a constant it is a multiply-by-reciprocal sequence,
                // otherwise a software loop.
                _ if division && rhs.is_some() => 40,
                _ if division => 1000,
                _ if shift && wide => 3,
                _ if wide => 2,
                _ => 1,
            };
            let free = rhs.is_some_and(|c| c < 256 || (shift && c < width.bits() as u64));
            (cycles, cycles, free)
        }
        CostTarget::HwAreaDepth => {
            let bits = width.bits() as u64;
            let levels = if wide { 6 } else { 5 };
            let (area, depth) = match op {
                // Masks, sets and inversions by a constant are wiring.
                BinaryOp::And | BinaryOp::Or | BinaryOp::Xor if rhs.is_some() => (0, 0),
                BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => (bits / 2, 1),
                _ if shift && rhs.is_some() => (0, 0),
                _ if shift => (bits * levels, levels),
                BinaryOp::Add | BinaryOp::Sub => (bits, levels),
                BinaryOp::Mul => (bits * bits, 4 * levels),
                _ => (bits * bits * 8, bits * levels),
            };
            (area, depth, rhs.is_some())
        }
    }
}

/// `(own, latency, right operand free)` of a conditional branch on `cond` at `width`.
fn compare_cost(
    target: CostTarget,
    cond: JmpCond,
    width: Width,
    rhs: Option<u64>,
) -> (u64, u64, bool) {
    let wide = width == Width::W64;
    match target {
        // A jump's immediate is 32 bits, sign-extended at 64 bits and used as is at 32. In BPF a
        // 32-bit jump only breaks ties worse (its latency is the tie-breaker), so it is chosen
        // when it saves an instruction and not otherwise: the kernel verifier learns less
        // about a register's 64-bit range from a 32-bit comparison.
        CostTarget::BpfInsnCount => (
            1,
            if wide { 1 } else { 2 },
            rhs.is_some_and(|c| !wide || fits_i32(c)),
        ),
        CostTarget::NativeLatency => (1, 1, rhs.is_some_and(|c| !wide || fits_i32(c))),
        // One 32-bit compare-and-branch, or two halves at 64 bits.
        CostTarget::NfpCycles => {
            let cycles = if wide { 2 } else { 1 };
            (cycles, cycles, rhs.is_some_and(|c| c < 256))
        }
        // An equality or bit test is a reduction tree; a magnitude comparison a carry chain.
        CostTarget::HwAreaDepth => {
            let bits = width.bits() as u64;
            let levels = if wide { 6 } else { 5 };
            match cond {
                JmpCond::Eq | JmpCond::Ne | JmpCond::Set => (bits / 4, levels / 2, true),
                _ => (bits, levels, true),
            }
        }
    }
}

fn unary_cost(target: CostTarget, op: UnaryOp, width: Width) -> (u64, u64) {
    let wide = width == Width::W64;
    match target {
        CostTarget::BpfInsnCount | CostTarget::NativeLatency => (1, 1),
        CostTarget::NfpCycles => {
            let c = if wide { 2 } else { 1 };
            (c, c)
        }
        CostTarget::HwAreaDepth => match op {
            // Negation is an adder; extensions are wiring.
            UnaryOp::Neg => (width.bits() as u64, if wide { 6 } else { 5 }),
            _ => (0, 0),
        },
    }
}

fn endian_cost(target: CostTarget, order: ByteOrder, bits: u8) -> (u64, u64) {
    match target {
        CostTarget::BpfInsnCount | CostTarget::NativeLatency => (1, 1),
        CostTarget::NfpCycles => {
            let c = match (order, bits) {
                (ByteOrder::ToLe, _) => 1,
                (_, 16) => 2,
                (_, 32) => 3,
                _ => 6,
            };
            (c, c)
        }
        CostTarget::HwAreaDepth => (0, 0),
    }
}

/// The egg cost function of a target over one e-graph (which it reads to see which children
/// are constants).
pub struct TargetCost<'a> {
    pub target: CostTarget,
    pub egraph: &'a BpfEGraph,
}

impl CostFunction<BpfLang> for TargetCost<'_> {
    type Cost = Cost;

    fn cost<C>(&mut self, enode: &BpfLang, mut costs: C) -> Cost
    where
        C: FnMut(Id) -> Cost,
    {
        let egraph = self.egraph;
        let node = node_cost(self.target, enode, &|id| egraph[id].data.constant);
        let mut total = node.own;
        let mut depth = 0;
        let mut nodes = 1u64;
        for (i, &child) in enode.children().iter().enumerate() {
            let c = costs(child);
            nodes = nodes.saturating_add(c.nodes);
            if !node.free_children[i] {
                total = total.saturating_add(c.total);
                depth = depth.max(c.depth);
            }
        }
        Cost::new(
            self.target,
            total,
            depth.saturating_add(node.latency),
            nodes,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egraph::analysis::BpfAnalysis;
    use crate::egraph::language::{all_condition_nodes, all_operator_nodes};
    use crate::egraph::rules::all_rewrites;
    use egg::{Extractor, RecExpr, Runner};

    /// Saturates `text` with every rule and extracts the cheapest term for `target`.
    fn best(text: &str, target: CostTarget) -> (String, Cost) {
        let expr: RecExpr<BpfLang> = text.parse().unwrap();
        let runner: Runner<BpfLang, BpfAnalysis, ()> = Runner::new(BpfAnalysis::default())
            .with_expr(&expr)
            .with_iter_limit(10)
            .run(&all_rewrites().unwrap());
        let root = runner.roots[0];
        let extractor = Extractor::new(
            &runner.egraph,
            TargetCost {
                target,
                egraph: &runner.egraph,
            },
        );
        let (cost, term) = extractor.find_best(root);
        (term.to_string(), cost)
    }

    #[test]
    fn multiplication_by_eight_is_a_shift_everywhere_but_costs_differ() {
        for target in CostTarget::ALL {
            let (term, _) = best("(mul.w64 v1 8)", target);
            assert_eq!(term, "(lsh.w64 v1 3)", "{target:?}");
        }
    }

    #[test]
    fn multiplication_by_three_depends_on_the_target() {
        // Native: one 3-cycle multiply beats shift + add on the critical path only if it is
        // shorter; shift and add take 2, so the shift-and-add wins by latency.
        assert_eq!(
            best("(mul.w64 v1 3)", CostTarget::NativeLatency).0,
            "(add.w64 (lsh.w64 v1 1) v1)"
        );
        // BPF counts instructions: one multiply by an immediate is one slot.
        assert_eq!(
            best("(mul.w64 v1 3)", CostTarget::BpfInsnCount).0,
            "(mul.w64 v1 3)"
        );
        // NFP: a 64-bit multiply is a long sequence; shift and add are cheap.
        assert_eq!(
            best("(mul.w64 v1 3)", CostTarget::NfpCycles).0,
            "(add.w64 (lsh.w64 v1 1) v1)"
        );
        // Hardware: the shift by a constant is wiring, so only an adder remains.
        let (term, cost) = best("(mul.w32 v1 3)", CostTarget::HwAreaDepth);
        assert_eq!(term, "(add.w32 (lsh.w32 v1 1) v1)");
        assert_eq!(cost.total, 32);
    }

    #[test]
    fn wide_constants_cost_an_lddw_in_bpf() {
        // `and 0xffffffff` at 64 bits needs the mask in a register (lddw); `mov.w32` is one slot.
        let (term, cost) = best("(and.w64 v1 4294967295)", CostTarget::BpfInsnCount);
        assert_eq!(term, "(mov.w32 v1)");
        assert_eq!(cost.total, 1);
        let wide = node_cost(CostTarget::BpfInsnCount, &BpfLang::Const(1 << 40), &|_| {
            None
        });
        assert_eq!(wide.own, 2);
    }

    #[test]
    fn division_by_a_variable_is_prohibitive_on_nfp_only() {
        let div = BpfLang::Div64([Id::from(0usize), Id::from(1usize)]);
        let nfp = node_cost(CostTarget::NfpCycles, &div, &|_| None);
        let bpf = node_cost(CostTarget::BpfInsnCount, &div, &|_| None);
        assert!(nfp.own >= 1000);
        assert_eq!(bpf.own, 1);
        // A shift by an out-of-range immediate is not encodable in BPF.
        let lsh = BpfLang::Lsh64([Id::from(0usize), Id::from(1usize)]);
        let out_of_range = node_cost(CostTarget::BpfInsnCount, &lsh, &|i| {
            (usize::from(i) == 1).then_some(64)
        });
        assert_eq!(out_of_range.free_children, vec![false, false]);
    }

    #[test]
    fn every_node_has_a_cost_on_every_target() {
        for target in CostTarget::ALL {
            for node in all_operator_nodes()
                .into_iter()
                .chain(all_condition_nodes())
            {
                let c = node_cost(target, &node, &|_| None);
                assert_eq!(c.free_children.len(), node.children().len());
            }
        }
    }
}
