//! Control-flow analyses shared by the passes: successors and predecessors, reverse
//! postorder, and the dominator tree.
//!
//! They are computed from the layout and the terminators on demand and never kept up to date
//! by the passes that change the CFG: a pass recomputes them when it needs fresh ones, which is
//! cheap at BPF sizes (a program has at most a few thousand blocks). Dominators use the
//! iterative algorithm of Cooper, Harvey and Kennedy ("A Simple, Fast Dominance Algorithm"),
//! which needs only the reverse postorder and intersects dominator chains by RPO number.

use cranelift_entity::packed_option::PackedOption;
use cranelift_entity::SecondaryMap;
use ir::{Block, Function, Inst};

/// Successors and predecessors of every block in the layout. Both lists have one entry per
/// edge, so a `brif` with both destinations equal gives its target the same predecessor twice.
#[derive(Clone, Debug, Default)]
pub struct ControlFlowGraph {
    succs: SecondaryMap<Block, Vec<Block>>,
    preds: SecondaryMap<Block, Vec<(Block, Inst)>>,
}

impl ControlFlowGraph {
    pub fn compute(func: &Function) -> ControlFlowGraph {
        let mut cfg = ControlFlowGraph::default();
        for block in func.layout.blocks() {
            let Some(term) = func.layout.last_inst(block) else {
                continue;
            };
            for dest in func.dfg.inst(term).branch_destinations() {
                cfg.succs[block].push(dest.block);
                cfg.preds[dest.block].push((block, term));
            }
        }
        cfg
    }

    /// The successors of `block`, one per outgoing edge, in terminator order.
    pub fn successors(&self, block: Block) -> &[Block] {
        &self.succs[block]
    }

    /// The predecessors of `block` with the branch instruction of each incoming edge.
    pub fn predecessors(&self, block: Block) -> &[(Block, Inst)] {
        &self.preds[block]
    }

    /// The number of edges into `block`.
    pub fn num_predecessor_edges(&self, block: Block) -> usize {
        self.preds[block].len()
    }
}

/// The dominator tree of a function, with the reverse postorder it was computed from.
#[derive(Clone, Debug, Default)]
pub struct DominatorTree {
    rpo: Vec<Block>,
    /// The position of each block in `rpo`, or `u32::MAX` when the block is unreachable.
    rpo_number: SecondaryMap<Block, u32>,
    idom: SecondaryMap<Block, PackedOption<Block>>,
    children: SecondaryMap<Block, Vec<Block>>,
}

const UNREACHABLE: u32 = u32::MAX;

impl DominatorTree {
    pub fn compute(func: &Function, cfg: &ControlFlowGraph) -> DominatorTree {
        let mut tree = DominatorTree {
            rpo: reverse_postorder(func, cfg),
            ..DominatorTree::default()
        };
        tree.rpo_number = SecondaryMap::with_default(UNREACHABLE);
        for (i, &b) in tree.rpo.iter().enumerate() {
            tree.rpo_number[b] = i as u32;
        }
        let Some(&entry) = tree.rpo.first() else {
            return tree;
        };
        tree.idom[entry] = entry.into();
        let mut changed = true;
        while changed {
            changed = false;
            for &block in tree.rpo.iter().skip(1) {
                let mut new_idom: Option<Block> = None;
                for &(pred, _) in cfg.predecessors(block) {
                    if tree.rpo_number[pred] == UNREACHABLE || tree.idom[pred].is_none() {
                        continue;
                    }
                    new_idom = Some(match new_idom {
                        None => pred,
                        Some(cur) => tree.intersect(cur, pred),
                    });
                }
                if let Some(d) = new_idom {
                    if tree.idom[block].expand() != Some(d) {
                        tree.idom[block] = d.into();
                        changed = true;
                    }
                }
            }
        }
        // The entry is its own idom only during the fixpoint; outside, it has none.
        tree.idom[entry] = None.into();
        for &block in tree.rpo.iter().skip(1) {
            if let Some(d) = tree.idom[block].expand() {
                tree.children[d].push(block);
            }
        }
        tree
    }

    fn intersect(&self, mut a: Block, mut b: Block) -> Block {
        while a != b {
            while self.rpo_number[a] > self.rpo_number[b] {
                a = self.idom[a].expand().unwrap_or(a);
            }
            while self.rpo_number[b] > self.rpo_number[a] {
                b = self.idom[b].expand().unwrap_or(b);
            }
        }
        a
    }

    /// The reachable blocks in reverse postorder (the entry first).
    pub fn reverse_postorder(&self) -> &[Block] {
        &self.rpo
    }

    /// True when `block` is reachable from the entry.
    pub fn is_reachable(&self, block: Block) -> bool {
        self.rpo_number[block] != UNREACHABLE
    }

    /// The position of `block` in reverse postorder, if reachable.
    pub fn rpo_number(&self, block: Block) -> Option<u32> {
        let n = self.rpo_number[block];
        (n != UNREACHABLE).then_some(n)
    }

    /// The immediate dominator of `block` (none for the entry and unreachable blocks).
    pub fn idom(&self, block: Block) -> Option<Block> {
        self.idom[block].expand()
    }

    /// The blocks `block` immediately dominates, in reverse postorder.
    pub fn children(&self, block: Block) -> &[Block] {
        &self.children[block]
    }

    /// True when every path from the entry to `b` goes through `a` (a block dominates itself).
    /// Unreachable blocks dominate nothing and are dominated by nothing.
    pub fn dominates(&self, a: Block, b: Block) -> bool {
        if !self.is_reachable(a) || !self.is_reachable(b) {
            return false;
        }
        let mut cur = b;
        loop {
            if cur == a {
                return true;
            }
            if self.rpo_number[cur] <= self.rpo_number[a] {
                return false;
            }
            match self.idom(cur) {
                Some(d) => cur = d,
                None => return false,
            }
        }
    }

    /// True when a back edge `from -> to` closes a loop, that is when `to` dominates `from`.
    pub fn is_back_edge(&self, from: Block, to: Block) -> bool {
        self.dominates(to, from)
    }
}

/// The reachable blocks in reverse postorder, computed with an explicit stack so that deep
/// CFGs cannot overflow the call stack.
pub fn reverse_postorder(func: &Function, cfg: &ControlFlowGraph) -> Vec<Block> {
    let Some(entry) = func.entry_block() else {
        return Vec::new();
    };
    let mut visited: SecondaryMap<Block, bool> = SecondaryMap::new();
    let mut postorder = Vec::new();
    // Each stack entry is a block and how many of its successors have been visited.
    let mut stack = vec![(entry, 0usize)];
    visited[entry] = true;
    while let Some((block, next)) = stack.last_mut() {
        let succs = cfg.successors(*block);
        if let Some(&s) = succs.get(*next) {
            *next += 1;
            if !visited[s] && func.layout.is_block_inserted(s) {
                visited[s] = true;
                stack.push((s, 0));
            }
        } else {
            postorder.push(*block);
            stack.pop();
        }
    }
    postorder.reverse();
    postorder
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir::semantics::{JmpCond, Width};
    use ir::{FunctionBuilder, Type};

    /// entry -> (a | b) -> join -> return; `dead` is unreachable and jumps to join.
    fn diamond() -> (Function, [Block; 5]) {
        let mut func = Function::new("f", vec![Type::I64]);
        let mut b = FunctionBuilder::new(&mut func);
        let [entry, a, bb, join, dead] = [(); 5].map(|_| b.create_block());
        b.switch_to_block(entry);
        let p = b.append_entry_params(entry)[0];
        let zero = b.iconst(0);
        b.brif(JmpCond::Eq, Width::W64, p, zero, a, &[], bb, &[]);
        b.switch_to_block(a);
        b.jump(join, &[]);
        b.switch_to_block(bb);
        b.jump(join, &[]);
        b.switch_to_block(join);
        b.ret(p);
        b.switch_to_block(dead);
        b.jump(join, &[]);
        (func, [entry, a, bb, join, dead])
    }

    #[test]
    fn predecessors_and_successors_follow_terminators() {
        let (func, [entry, a, bb, join, dead]) = diamond();
        let cfg = ControlFlowGraph::compute(&func);
        assert_eq!(cfg.successors(entry), &[a, bb]);
        let preds: Vec<Block> = cfg.predecessors(join).iter().map(|p| p.0).collect();
        assert_eq!(preds, vec![a, bb, dead]);
        assert!(cfg.predecessors(entry).is_empty());
    }

    #[test]
    fn dominators_of_a_diamond() {
        let (func, [entry, a, _bb, join, dead]) = diamond();
        let cfg = ControlFlowGraph::compute(&func);
        let dom = DominatorTree::compute(&func, &cfg);
        assert_eq!(dom.reverse_postorder()[0], entry);
        assert_eq!(dom.reverse_postorder().len(), 4);
        assert!(!dom.is_reachable(dead));
        assert_eq!(dom.idom(join), Some(entry));
        assert_eq!(dom.idom(a), Some(entry));
        assert_eq!(dom.idom(entry), None);
        assert!(dom.dominates(entry, join));
        assert!(!dom.dominates(a, join));
        assert!(dom.dominates(join, join));
        assert!(!dom.dominates(dead, join));
        assert_eq!(dom.children(entry).len(), 3);
    }

    #[test]
    fn loops_have_back_edges() {
        let mut func = Function::new("f", vec![Type::I64]);
        let mut b = FunctionBuilder::new(&mut func);
        let [entry, head, body, exit] = [(); 4].map(|_| b.create_block());
        b.switch_to_block(entry);
        let p = b.append_entry_params(entry)[0];
        b.jump(head, &[]);
        b.switch_to_block(head);
        b.brif(JmpCond::Eq, Width::W64, p, p, body, &[], exit, &[]);
        b.switch_to_block(body);
        b.jump(head, &[]);
        b.switch_to_block(exit);
        b.ret(p);
        let cfg = ControlFlowGraph::compute(&func);
        let dom = DominatorTree::compute(&func, &cfg);
        assert!(dom.is_back_edge(body, head));
        assert!(!dom.is_back_edge(head, body));
        assert_eq!(dom.idom(exit), Some(head));
        assert_eq!(dom.idom(body), Some(head));
    }
}
