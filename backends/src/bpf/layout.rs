//! Block order and linear positions for one function.
//!
//! The register allocator and the instruction selector both walk the function in one linear
//! order. This module fixes that order once: the reachable blocks in the IR layout order (the
//! lifter keeps the original program's order, which is the order with the most fall-throughs),
//! with every instruction numbered. Unreachable blocks are dropped, because the kernel verifier
//! rejects a program that contains an instruction no path reaches.
//!
//! Positions: instruction number `n` reads its early operands at `2n` and writes its result
//! at `2n + 1`; a block's parameters are defined at the position of its first instruction's
//! reads, and a value live out of a block stays live up to the block's last position.

use ir::{Block, Function, Inst};
use std::collections::{HashMap, HashSet};

/// The linear order of one function's reachable blocks and instructions.
pub struct LinearOrder {
    /// Reachable blocks, in emission order; the entry block is first.
    pub blocks: Vec<Block>,
    /// Instructions of each block, in order.
    pub insts: HashMap<Block, Vec<Inst>>,
    /// The linear number of every instruction.
    pub number: HashMap<Inst, u32>,
    /// Predecessors of each reachable block (with repetition when both edges of a `brif` go
    /// to the same block).
    pub preds: HashMap<Block, Vec<Block>>,
}

impl LinearOrder {
    /// Computes the order. A function without blocks gives an empty order.
    pub fn new(func: &Function) -> LinearOrder {
        let mut reachable = HashSet::new();
        if let Some(entry) = func.entry_block() {
            let mut stack = vec![entry];
            while let Some(b) = stack.pop() {
                if reachable.insert(b) {
                    stack.extend(func.successors(b));
                }
            }
        }
        let blocks: Vec<Block> = func
            .layout
            .blocks()
            .filter(|b| reachable.contains(b))
            .collect();
        let mut insts = HashMap::new();
        let mut number = HashMap::new();
        let mut preds: HashMap<Block, Vec<Block>> = blocks.iter().map(|&b| (b, vec![])).collect();
        let mut n = 0u32;
        for &b in &blocks {
            let list: Vec<Inst> = func.block_insts(b).collect();
            for &i in &list {
                number.insert(i, n);
                n += 1;
            }
            insts.insert(b, list);
            for s in func.successors(b) {
                preds.entry(s).or_default().push(b);
            }
        }
        LinearOrder {
            blocks,
            insts,
            number,
            preds,
        }
    }

    /// The position where a block starts (its parameters are defined there).
    pub fn block_start(&self, block: Block) -> u32 {
        self.insts
            .get(&block)
            .and_then(|l| l.first())
            .map_or(0, |i| 2 * self.number[i])
    }

    /// The last position of a block (the result position of its terminator).
    pub fn block_end(&self, block: Block) -> u32 {
        self.insts
            .get(&block)
            .and_then(|l| l.last())
            .map_or(0, |i| 2 * self.number[i] + 1)
    }
}
