//! From a basic block to an e-graph and back.
//!
//! Each block is optimized on its own. Its pure instructions (`iconst`, binary and unary ALU
//! operations, byte-order conversions) enter an e-graph; everything else (loads, stores,
//! calls, map and stack addresses, the terminator) is the skeleton and keeps its order.
//! Operands defined outside the pure region become leaves; operands that are constants defined
//! in another block enter as constants, so constants propagate across blocks.
//!
//! The roots are the pure values the skeleton needs: operands of this block's skeleton
//! instructions and every value used in another block, and the condition of a closing `brif`
//! (a comparison node over its two operands). The cheapest form of the condition may be
//! another comparison (32-bit instead of 64-bit over zero-extended operands, `set` instead of
//! testing an `and` against zero) or one under `not`, which becomes the same branch with its
//! destinations swapped. After saturation, the cheapest term
//! of each root is materialized right before its first skeleton use (values used in other
//! blocks before the terminator), children first, each e-class once. So every value used
//! outside the block stays defined in it, and uses are rewritten consistently.
//!
//! Extraction prices terms as trees, so for a branch condition it would count a zero
//! extension as saved even when another root keeps that extension, and it cannot see that
//! testing an interior value keeps it live up to the branch. For BPF the condition is
//! therefore chosen last, as a DAG: among the comparison nodes of its class (and of the class
//! under `not`), the one that adds the fewest instructions to what the other roots already
//! materialized, and among those the one testing values that are live at the branch anyway
//! (the branch's arguments and values used in other blocks) rather than interior values whose
//! lives it would lengthen. Other targets keep the tree choice, in the original root order.
//!
//! Materializing reuses an original instruction of the same e-class where one exists: it
//! keeps its value number (so most uses need no rewriting) and its source location. A new
//! instruction takes the location of the root it serves. When the extracted terms would need
//! a value that is not yet defined at that point, or extraction found a cycle, or the analysis
//! saw conflicting constants, the block is left exactly as it was.

use super::analysis::{BpfAnalysis, BpfEGraph};
use super::cost::{node_cost, CostTarget, TargetCost};
use super::language::{BpfLang, NodeOp, ValueLeaf};
use super::runner::{saturate, RunReport, RunnerLimits};
use crate::range::RangeAnalysis;
use egg::{Extractor, Id, Language, Rewrite};
use ir::dfg::ValueDef;
use ir::instructions::InstructionData;
use ir::semantics::{JmpCond, Width};
use ir::{Block, Function, Inst, MemSize, SrcLoc, Value};
use std::collections::{HashMap, HashSet};

/// What happened to one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// The block has no pure instruction the skeleton needs.
    NothingToDo,
    /// The cheapest terms are the ones already there.
    Unchanged(RunReport),
    Rewritten(RunReport),
    /// The block was left as it was, for the reason given.
    Skipped(RunReport, &'static str),
}

/// Pure instruction counts of one block before and after.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PureCounts {
    pub before: usize,
    pub after: usize,
}

/// How a pure instruction enters the e-graph.
enum Entry {
    Node(BpfLang),
    /// `mov.w64` and `le64` are the identity: the result is its operand's class.
    Identity(Value),
}

fn entry_of(data: &InstructionData, class_of: &mut dyn FnMut(Value) -> Id) -> Option<Entry> {
    Some(match *data {
        InstructionData::Iconst { imm } => Entry::Node(BpfLang::Const(imm)),
        InstructionData::Binary { op, width, args } => Entry::Node(BpfLang::binary(
            op,
            width,
            [class_of(args[0]), class_of(args[1])],
        )),
        InstructionData::Unary { op, width, arg } => match BpfLang::unary(op, width, class_of(arg))
        {
            Some(node) => Entry::Node(node),
            None if op == ir::UnaryOp::Mov => Entry::Identity(arg),
            None => return None,
        },
        InstructionData::Endian { order, bits, arg } => {
            match BpfLang::endian(order, bits, class_of(arg)) {
                Some(node) => Entry::Node(node),
                None if bits == 64 && order == ir::semantics::ByteOrder::ToLe => {
                    Entry::Identity(arg)
                }
                None => return None,
            }
        }
        _ => return None,
    })
}

/// True for the instructions that enter the e-graph.
pub fn is_egraph_pure(data: &InstructionData) -> bool {
    matches!(
        data,
        InstructionData::Iconst { .. }
            | InstructionData::Binary { .. }
            | InstructionData::Unary { .. }
            | InstructionData::Endian { .. }
    )
}

/// The IR instruction for an extracted node whose children are the given values.
fn inst_for(node: &BpfLang, children: &[Value]) -> Option<InstructionData> {
    Some(match node.op() {
        NodeOp::Const(imm) => InstructionData::Iconst { imm },
        NodeOp::Binary(op, width) => InstructionData::Binary {
            op,
            width,
            args: [*children.first()?, *children.get(1)?],
        },
        NodeOp::Unary(op, width) => InstructionData::Unary {
            op,
            width,
            arg: *children.first()?,
        },
        NodeOp::Endian(order, bits) => InstructionData::Endian {
            order,
            bits,
            arg: *children.first()?,
        },
        // Leaves are values already; conditions exist only inside a `brif`.
        NodeOp::Leaf(_) | NodeOp::Compare(..) | NodeOp::Not => return None,
    })
}

/// One instruction the rebuilt block will hold, before the skeleton instruction `anchor`.
struct Emission {
    anchor: Inst,
    /// An original instruction to reuse, or none for a new one.
    reuse: Option<Inst>,
    data: InstructionData,
    srcloc: SrcLoc,
    /// The e-class this instruction materializes.
    class: Id,
}

/// The plan of a rebuilt block.
struct Plan {
    emissions: Vec<Emission>,
    /// The value each materialized class ended up as.
    class_value: HashMap<Id, Value>,
}

/// A materialization failed; the block stays as it was.
struct PlanError(&'static str);

struct Planner<'a> {
    func: &'a Function,
    egraph: &'a BpfEGraph,
    extractor: &'a Extractor<'a, TargetCost<'a>, BpfLang, BpfAnalysis>,
    /// Original pure instructions per canonical class, in block order, not yet reused.
    originals: HashMap<Id, Vec<Inst>>,
    /// Position in the block of each skeleton instruction.
    skeleton_pos: HashMap<Inst, usize>,
    plan: Plan,
    /// The value each pending materialization will define, filled as values are assigned.
    in_progress: HashSet<Id>,
    /// Values that new instructions will define, allocated at apply time; placeholders here.
    next_placeholder: u32,
    target: CostTarget,
    /// Canonical classes of the roots needed at the terminator (its arguments and values used
    /// in other blocks): live at the branch whatever its condition tests.
    live_at_branch: HashSet<Id>,
}

/// A placeholder for the result of a new instruction, replaced when the plan is applied.
/// Placeholders live above every real value number.
const PLACEHOLDER_BASE: u32 = 0x4000_0000;

impl Planner<'_> {
    /// Makes class `class` available before skeleton instruction `anchor` (at position `pos`),
    /// serving a root defined at `root_loc`.
    fn materialize(
        &mut self,
        class: Id,
        anchor: Inst,
        pos: usize,
        root_loc: SrcLoc,
    ) -> Result<Value, PlanError> {
        let class = self.egraph.find(class);
        if let Some(&v) = self.plan.class_value.get(&class) {
            return Ok(v);
        }
        if !self.in_progress.insert(class) {
            return Err(PlanError("extraction chose a cycle"));
        }
        let node = self.extractor.find_best_node(class).clone();
        let value = if let BpfLang::Leaf(ValueLeaf(v)) = node {
            if !self.available(v, pos) {
                return Err(PlanError("the cheapest term uses a value defined later"));
            }
            v
        } else {
            let mut children = Vec::new();
            for &child in node.children() {
                children.push(self.materialize(child, anchor, pos, root_loc)?);
            }
            let data = inst_for(&node, &children).ok_or(PlanError("a leaf has no instruction"))?;
            let reuse = self.originals.get_mut(&class).and_then(|list| {
                if list.is_empty() {
                    None
                } else {
                    Some(list.remove(0))
                }
            });
            let (value, srcloc) = match reuse {
                Some(inst) => (self.func.dfg.first_result(inst), self.func.srclocs[inst]),
                None => {
                    self.next_placeholder += 1;
                    (
                        Value::from_u32(PLACEHOLDER_BASE + self.next_placeholder),
                        root_loc,
                    )
                }
            };
            self.plan.emissions.push(Emission {
                anchor,
                reuse,
                data,
                srcloc,
                class,
            });
            value
        };
        self.in_progress.remove(&class);
        self.plan.class_value.insert(class, value);
        Ok(value)
    }

    /// Materializes the cheapest form of a `brif` condition before the branch `anchor` (at
    /// position `pos`): the comparison, its width, its operands and whether the destinations
    /// swap. When the cheapest form is not a comparison (a constant, when the analysis decided
    /// the branch), the original comparison of `operands` stays, for simplify-cfg to fold.
    fn branch_condition(
        &mut self,
        condition: Id,
        original: (JmpCond, Width),
        operands: [Id; 2],
        anchor: Inst,
        pos: usize,
        loc: SrcLoc,
    ) -> Result<(JmpCond, Width, [Value; 2], bool), PlanError> {
        let comparison = |class: Id| match self.extractor.find_best_node(class) {
            node @ BpfLang::Not(_) => (None, node.children().first().copied()),
            node => match node.op() {
                NodeOp::Compare(cond, width) => Some((cond, width, node.children().to_vec())),
                _ => None,
            }
            .map_or((None, None), |c| (Some(c), None)),
        };
        let (mut chosen, mut swap) = match comparison(condition) {
            (Some(c), _) => (Some(c), false),
            (None, Some(inner)) => match comparison(inner) {
                (Some(c), _) => (Some(c), true),
                _ => (None, false),
            },
            _ => (None, false),
        };
        if chosen.is_some() && self.target == CostTarget::BpfInsnCount {
            if let Some((node, negated)) = self.cheapest_condition_in_context(condition) {
                if let NodeOp::Compare(cond, width) = node.op() {
                    chosen = Some((cond, width, node.children().to_vec()));
                    swap = negated;
                }
            }
        }
        let (cond, width, classes, swap) = match chosen {
            Some((cond, width, children)) => (cond, width, [children[0], children[1]], swap),
            None => (original.0, original.1, operands, false),
        };
        let a = self.materialize(classes[0], anchor, pos, loc)?;
        let b = self.materialize(classes[1], anchor, pos, loc)?;
        Ok((cond, width, [a, b], swap))
    }

    /// The comparison node, of the condition's class or under its `not` (then `true`), that
    /// adds the fewest instructions to what is already materialized; on a tie the one that
    /// lengthens the fewest lives (an operand that is an interior value materialized for
    /// another root, not live at the branch anyway), then the extractor's own choice, then
    /// the first in the class. `None` when the class holds no comparison.
    fn cheapest_condition_in_context(&self, condition: Id) -> Option<(BpfLang, bool)> {
        let condition = self.egraph.find(condition);
        let mut candidates: Vec<(BpfLang, bool)> = Vec::new();
        for node in &self.egraph[condition].nodes {
            match node {
                BpfLang::Not(inner) => {
                    for inner_node in &self.egraph[*inner].nodes {
                        if matches!(inner_node.op(), NodeOp::Compare(..)) {
                            candidates.push((inner_node.clone(), true));
                        }
                    }
                }
                n if matches!(n.op(), NodeOp::Compare(..)) => candidates.push((n.clone(), false)),
                _ => {}
            }
        }
        let extractor_choice = match self.extractor.find_best_node(condition) {
            BpfLang::Not(inner) => (self.extractor.find_best_node(*inner).clone(), true),
            node => (node.clone(), false),
        };
        candidates
            .into_iter()
            .enumerate()
            .min_by_key(|(order, candidate)| {
                let (added, lengthened) = self.condition_price(&candidate.0);
                (added, lengthened, *candidate != extractor_choice, *order)
            })
            .map(|(_, candidate)| candidate)
    }

    /// What a comparison node costs given what is materialized: the instruction slots it adds
    /// (its own and those of operand terms not yet materialized, each class counted once),
    /// and how many of its register operands are interior values whose lives it lengthens.
    fn condition_price(&self, node: &BpfLang) -> (u64, u64) {
        let egraph = self.egraph;
        let own = node_cost(self.target, node, &|id| egraph[id].data.constant);
        let mut added = own.own;
        let mut lengthened = 0;
        let mut counted: HashSet<Id> = HashSet::new();
        for (i, &child) in node.children().iter().enumerate() {
            if own.free_children[i] {
                continue;
            }
            let child = egraph.find(child);
            if self.plan.class_value.contains_key(&child) {
                let leaf = matches!(self.extractor.find_best_node(child), BpfLang::Leaf(_));
                if !leaf && !self.live_at_branch.contains(&child) {
                    lengthened += 1;
                }
            } else {
                added = added.saturating_add(self.added_slots(child, &mut counted));
            }
        }
        (added, lengthened)
    }

    /// The slots materializing `class` with the extractor's terms adds, counting classes
    /// already materialized or already counted in `counted` as free.
    fn added_slots(&self, class: Id, counted: &mut HashSet<Id>) -> u64 {
        let class = self.egraph.find(class);
        if self.plan.class_value.contains_key(&class) || !counted.insert(class) {
            return 0;
        }
        let egraph = self.egraph;
        let node = self.extractor.find_best_node(class);
        let own = node_cost(self.target, node, &|id| egraph[id].data.constant);
        let mut slots = own.own;
        for (i, &child) in node.children().iter().enumerate() {
            if !own.free_children[i] {
                slots = slots.saturating_add(self.added_slots(child, counted));
            }
        }
        slots
    }

    /// True when leaf `v` is defined before skeleton position `pos` of this block (or outside
    /// the block, where the verifier already guarantees it dominates the block).
    fn available(&self, v: Value, pos: usize) -> bool {
        match self.func.dfg.value_def(v) {
            ValueDef::Result(inst) => match self.skeleton_pos.get(&inst) {
                Some(&p) => p < pos,
                // Defined in another block (pure instructions of this block are never leaves).
                None => true,
            },
            ValueDef::Param(..) => true,
            ValueDef::Detached => false,
        }
    }
}

/// The e-class of operand `v`: the class of a pure value already entered, a constant when `v`
/// is one, or else a leaf (with what its definition says about its bits).
fn operand_class(
    func: &Function,
    egraph: &mut BpfEGraph,
    class_of_value: &mut HashMap<Value, Id>,
    known_bits: &dyn Fn(Value) -> Option<u32>,
    v: Value,
) -> Id {
    if let Some(&id) = class_of_value.get(&v) {
        return id;
    }
    let id = match func.dfg.value_const(v) {
        Some(c) => egraph.add(BpfLang::Const(c)),
        None => {
            let bits = match (leaf_bits(func, v), known_bits(v)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(bits) = bits {
                egraph.analysis.leaf_bits.insert(v, bits);
            }
            egraph.add(BpfLang::Leaf(ValueLeaf(v)))
        }
    };
    class_of_value.insert(v, id);
    id
}

/// `brif` with a new comparison, its destinations swapped when the condition was negated.
fn rebuilt_brif(
    original: InstructionData,
    cond: JmpCond,
    width: Width,
    args: [Value; 2],
    swap: bool,
) -> InstructionData {
    match original {
        InstructionData::Brif { mut dests, .. } => {
            if swap {
                dests.swap(0, 1);
            }
            InstructionData::Brif {
                cond,
                width,
                args,
                dests,
            }
        }
        other => other,
    }
}

/// Bit bounds of leaf values known from their definition: zero-extending loads.
fn leaf_bits(func: &Function, v: Value) -> Option<u32> {
    let inst = func.dfg.value_inst(v)?;
    match func.dfg.inst(inst) {
        InstructionData::Load {
            size,
            signed: false,
            ..
        } if *size != MemSize::U64 => Some(size.bits()),
        _ => None,
    }
}

/// How many low bits of a value can be non-zero at the start of `block`, by the range
/// analysis (its own interval narrowed by the branches on the way to the block).
fn range_bits(ranges: &RangeAnalysis, block: Block, v: Value) -> Option<u32> {
    let state = ranges.block_state(block)?;
    let interval = ranges.fact_in(v, state).interval()?;
    Some(64 - interval.umax.leading_zeros())
}

/// How many low bits of `v` can be non-zero by what defines it, looking through a few pure
/// instructions of any block: a zero extension has 32, an `and` no more than its narrower
/// operand, a right shift no more than its left operand, a constant its own, a narrow
/// unsigned load its size. This sees values the e-graph of earlier blocks created, which the
/// range analysis (computed before) does not know.
fn definition_bits(func: &Function, v: Value, depth: u32) -> Option<u32> {
    if let Some(c) = func.dfg.value_const(v) {
        return Some(64 - (c as u64).leading_zeros());
    }
    if let Some(bits) = leaf_bits(func, v) {
        return Some(bits);
    }
    if depth == 0 {
        return None;
    }
    let inst = func.dfg.value_inst(v)?;
    let bits = |x: Value| definition_bits(func, x, depth - 1);
    match *func.dfg.inst(inst) {
        InstructionData::Unary {
            op: ir::UnaryOp::Mov,
            width: Width::W32,
            arg,
        } => Some(bits(arg).map_or(32, |b| b.min(32))),
        InstructionData::Binary {
            op: ir::BinaryOp::And,
            width,
            args,
        } => {
            let narrower = match (bits(args[0]), bits(args[1])) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match width {
                Width::W32 => Some(narrower.map_or(32, |b| b.min(32))),
                Width::W64 => narrower,
            }
        }
        InstructionData::Binary {
            op: ir::BinaryOp::Rsh,
            width: Width::W64,
            args,
        } => bits(args[0]),
        _ => None,
    }
}

/// Optimizes one block. `outside_uses` holds every value used in a block other than the one
/// defining it; `ranges`, when given, is the range analysis of the function as it was before
/// the e-graph, whose intervals bound the bits of the block's leaves (values the analysis
/// does not know, such as those earlier blocks created, get no bound).
pub fn optimize_block(
    func: &mut Function,
    block: Block,
    target: CostTarget,
    limits: &RunnerLimits,
    rules: &[Rewrite<BpfLang, BpfAnalysis>],
    outside_uses: &HashSet<Value>,
    ranges: Option<&RangeAnalysis>,
) -> (BlockOutcome, PureCounts) {
    // Only where the range analysis is given (BPF): other targets keep their reviewed output.
    let known_bits = |v: Value| {
        let ranges = ranges?;
        match (range_bits(ranges, block, v), definition_bits(func, v, 4)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    };
    let insts: Vec<Inst> = func.layout.block_insts(block).collect();
    let pure: Vec<Inst> = insts
        .iter()
        .copied()
        .filter(|&i| is_egraph_pure(func.dfg.inst(i)))
        .collect();
    let before = pure.len();
    let unchanged = PureCounts {
        before,
        after: before,
    };
    let Some(&terminator) = insts.last() else {
        return (BlockOutcome::NothingToDo, unchanged);
    };
    if pure.is_empty() || !func.dfg.inst(terminator).is_terminator() {
        return (BlockOutcome::NothingToDo, unchanged);
    }
    let pure_set: HashSet<Inst> = pure.iter().copied().collect();

    // Build the e-graph of the block's pure dataflow.
    let mut egraph = BpfEGraph::new(BpfAnalysis::default());
    let mut class_of_value: HashMap<Value, Id> = HashMap::new();
    let mut pure_values: Vec<(Value, Inst)> = Vec::new();
    for &inst in &pure {
        let data = func.dfg.inst(inst).clone();
        let mut class_of =
            |v: Value| operand_class(func, &mut egraph, &mut class_of_value, &known_bits, v);
        let Some(entry) = entry_of(&data, &mut class_of) else {
            return (BlockOutcome::NothingToDo, unchanged);
        };
        let id = match entry {
            Entry::Node(node) => egraph.add(node),
            Entry::Identity(arg) => class_of(arg),
        };
        let Some(result) = func.dfg.inst_result(inst) else {
            return (BlockOutcome::NothingToDo, unchanged);
        };
        class_of_value.insert(result, id);
        pure_values.push((result, inst));
    }
    // The condition of a closing `brif`, with the operand classes it was built from (what the
    // original branch uses when no other form of the condition is cheaper).
    let branch = match func.dfg.inst(terminator).clone() {
        InstructionData::Brif {
            cond, width, args, ..
        } => {
            let operands =
                args.map(|v| operand_class(func, &mut egraph, &mut class_of_value, &known_bits, v));
            let condition = egraph.add(BpfLang::compare(cond, width, operands));
            Some((condition, (cond, width), operands))
        }
        _ => None,
    };
    egraph.rebuild();

    // The roots, with the skeleton instruction before which each is first needed.
    let skeleton: Vec<Inst> = insts
        .iter()
        .copied()
        .filter(|i| !pure_set.contains(i))
        .collect();
    let skeleton_pos: HashMap<Inst, usize> =
        skeleton.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    let pure_result: HashSet<Value> = pure_values.iter().map(|&(v, _)| v).collect();
    let mut needs: Vec<(Value, Inst, usize)> = Vec::new();
    // Where among the roots the branch condition comes: after everything before the branch
    // and before its block arguments, the place its operands had before.
    let mut condition_at = usize::MAX;
    for (pos, &inst) in skeleton.iter().enumerate() {
        // The operands of a closing `brif`'s comparison are needed through its condition.
        let args = match func.dfg.inst(inst) {
            InstructionData::Brif { dests, .. } if branch.is_some() => {
                condition_at = needs.len();
                dests.iter().flat_map(|d| d.args.iter().copied()).collect()
            }
            data => data.args(),
        };
        for arg in args {
            if pure_result.contains(&arg) {
                needs.push((arg, inst, pos));
            }
        }
    }
    for &(v, _) in &pure_values {
        if outside_uses.contains(&v) {
            needs.push((v, terminator, skeleton.len() - 1));
        }
    }
    if needs.is_empty() && branch.is_none() {
        return (BlockOutcome::NothingToDo, unchanged);
    }

    let (egraph, report) = saturate(egraph, rules, limits);
    if egraph.analysis.conflicts > 0 {
        return (
            BlockOutcome::Skipped(report, "conflicting constants (an unsound rule)"),
            unchanged,
        );
    }

    let extractor = Extractor::new(
        &egraph,
        TargetCost {
            target,
            egraph: &egraph,
        },
    );
    let mut originals: HashMap<Id, Vec<Inst>> = HashMap::new();
    for &(v, inst) in &pure_values {
        // Identity instructions (mov.w64, le64) are never reused: their class is the
        // operand's, and their data would not describe the extracted node.
        if matches!(
            entry_of(func.dfg.inst(inst), &mut |_| Id::from(0usize)),
            Some(Entry::Node(_))
        ) {
            originals
                .entry(egraph.find(class_of_value[&v]))
                .or_default()
                .push(inst);
        }
    }
    let mut planner = Planner {
        func,
        egraph: &egraph,
        extractor: &extractor,
        originals,
        skeleton_pos,
        plan: Plan {
            emissions: Vec::new(),
            class_value: HashMap::new(),
        },
        in_progress: HashSet::new(),
        next_placeholder: 0,
        target,
        live_at_branch: needs
            .iter()
            .filter(|&&(_, anchor, _)| anchor == terminator)
            .map(|&(v, ..)| egraph.find(class_of_value[&v]))
            .collect(),
    };
    // For BPF the condition comes last, so its choice sees every other root materialized.
    if target == CostTarget::BpfInsnCount && branch.is_some() {
        condition_at = needs.len();
    }
    let mut new_terminator = None;
    for i in 0..=needs.len() {
        if i == condition_at {
            if let Some((condition, original, operands)) = branch {
                let data = func.dfg.inst(terminator).clone();
                let loc = func.srclocs[terminator];
                let last = skeleton.len() - 1;
                match planner.branch_condition(condition, original, operands, terminator, last, loc)
                {
                    Ok((cond, width, args, swap)) => {
                        new_terminator = Some(rebuilt_brif(data, cond, width, args, swap))
                    }
                    Err(PlanError(why)) => return (BlockOutcome::Skipped(report, why), unchanged),
                }
            }
        }
        let Some(&(v, anchor, pos)) = needs.get(i) else {
            break;
        };
        let root_loc = func
            .dfg
            .value_inst(v)
            .map(|i| func.srclocs[i])
            .unwrap_or_default();
        if let Err(PlanError(why)) = planner.materialize(class_of_value[&v], anchor, pos, root_loc)
        {
            return (BlockOutcome::Skipped(report, why), unchanged);
        }
    }
    let Plan {
        emissions,
        class_value,
    } = planner.plan;

    // The value each original pure value becomes.
    let mut remap: HashMap<Value, Value> = HashMap::new();
    for &(v, _) in &pure_values {
        if let Some(&new) = class_value.get(&egraph.find(class_of_value[&v])) {
            if new != v {
                remap.insert(v, new);
            }
        }
    }
    let after = emissions.len();
    // Nothing to do when every emission is an original instruction with its own data, in
    // the original order, and every original was kept.
    let same = after == before
        && remap.is_empty()
        && emissions
            .iter()
            .zip(&pure)
            .all(|(e, &orig)| e.reuse == Some(orig) && *func.dfg.inst(orig) == e.data)
        && is_in_place(func, &emissions, &insts)
        && new_terminator
            .as_ref()
            .is_none_or(|t| t == func.dfg.inst(terminator));
    if same {
        return (BlockOutcome::Unchanged(report), unchanged);
    }

    // Apply: take the pure instructions out, then insert the emissions before their anchors.
    for &inst in &pure {
        func.layout.remove_inst(inst);
    }
    let reused: HashSet<Inst> = emissions.iter().filter_map(|e| e.reuse).collect();
    for &inst in &pure {
        if !reused.contains(&inst) {
            func.srclocs[inst] = SrcLoc::NONE;
        }
    }
    let mut placeholder_value: HashMap<Value, Value> = HashMap::new();
    let resolve = |v: Value, map: &HashMap<Value, Value>| *map.get(&v).unwrap_or(&v);
    for e in emissions {
        let mut data = e.data;
        data.map_args(|a| resolve(a, &placeholder_value));
        let inst = match e.reuse {
            Some(inst) => {
                func.dfg.replace_inst(inst, data);
                inst
            }
            None => {
                let inst = func.dfg.make_inst(data);
                let placeholder = class_value[&e.class];
                placeholder_value.insert(placeholder, func.dfg.first_result(inst));
                inst
            }
        };
        func.layout.insert_inst_before(inst, e.anchor);
        func.srclocs[inst] = e.srcloc;
    }
    if let Some(mut data) = new_terminator {
        data.map_args(|a| resolve(a, &placeholder_value));
        func.dfg.replace_inst(terminator, data);
    }
    let remap: HashMap<Value, Value> = remap
        .into_iter()
        .map(|(old, new)| (old, resolve(new, &placeholder_value)))
        .collect();
    if !remap.is_empty() {
        let all: Vec<Inst> = func.insts().collect();
        for inst in all {
            func.dfg.inst_mut(inst).map_args(|a| resolve(a, &remap));
        }
    }
    (
        BlockOutcome::Rewritten(report),
        PureCounts { before, after },
    )
}

/// True when the emissions, placed before their anchors, give back the block's original order.
fn is_in_place(func: &Function, emissions: &[Emission], insts: &[Inst]) -> bool {
    let mut order: Vec<Inst> = Vec::new();
    let mut pending = emissions.iter().peekable();
    for &inst in insts {
        if is_egraph_pure(func.dfg.inst(inst)) {
            continue;
        }
        while let Some(e) = pending.peek() {
            if e.anchor != inst {
                break;
            }
            order.extend(e.reuse);
            pending.next();
        }
        order.push(inst);
    }
    order == insts
}

/// Every value used in a block other than the one that defines it.
pub fn values_used_outside_their_block(func: &Function) -> HashSet<Value> {
    let mut def_block: HashMap<Value, Block> = HashMap::new();
    for block in func.layout.blocks() {
        for &p in func.dfg.block_params(block) {
            def_block.insert(p, block);
        }
        for inst in func.layout.block_insts(block) {
            if let Some(v) = func.dfg.inst_result(inst) {
                def_block.insert(v, block);
            }
        }
    }
    let mut out = HashSet::new();
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            for arg in func.dfg.inst(inst).args() {
                if def_block.get(&arg).is_some_and(|&b| b != block) {
                    out.insert(arg);
                }
            }
        }
    }
    out
}
