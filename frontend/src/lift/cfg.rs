//! Basic blocks of one BPF function, built from the decoded slots.
//!
//! Lifting works block by block, so the first step cuts a function's slots at every jump
//! target and after every jump or exit, and records how each block ends. This is also where
//! malformed control flow is rejected: a jump outside its function, a jump into the second slot
//! of a 64-bit immediate load, and a reachable path that runs off the end of the function.
//! Blocks that no path from the entry reaches are kept in the table but never lifted (the
//! kernel verifier refuses unreachable code, and lifting it would only produce dead IR).

use super::ProgCtx;
use crate::insn::Insn;
use crate::Diagnostic;
use std::collections::BTreeSet;

/// How a basic block ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockExit {
    /// No jump: execution continues in the next block.
    Fallthrough(usize),
    /// An unconditional jump (`ja`).
    Jump(usize),
    /// A conditional jump: `taken` when the condition holds, else `not_taken`.
    Branch { taken: usize, not_taken: usize },
    /// `exit`.
    Return,
    /// The last slot of the function is not a jump or an exit; reaching this block is an error.
    FallOff,
}

/// A run of slots `[start, end)` entered only at `start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicBlock {
    pub start: usize,
    pub end: usize,
    pub exit: BlockExit,
    /// The slot of the block's last instruction (the jump or exit, when there is one).
    pub last: usize,
}

impl BasicBlock {
    /// Successor blocks, the taken edge of a branch first; duplicates are kept.
    pub fn successors(&self) -> Vec<usize> {
        match self.exit {
            BlockExit::Fallthrough(b) | BlockExit::Jump(b) => vec![b],
            BlockExit::Branch { taken, not_taken } => vec![taken, not_taken],
            BlockExit::Return | BlockExit::FallOff => Vec::new(),
        }
    }
}

/// The control-flow graph of one function.
#[derive(Clone, Debug)]
pub struct Cfg {
    /// The function's first slot and one past its last slot.
    pub start: usize,
    pub end: usize,
    /// Blocks in slot order; block 0 starts at the function's first slot.
    pub blocks: Vec<BasicBlock>,
    /// Predecessor edges of every block, one entry per edge (a branch whose two targets are
    /// the same block counts twice), from reachable blocks only.
    pub preds: Vec<Vec<usize>>,
    /// Reachable blocks in reverse postorder from block 0.
    pub rpo: Vec<usize>,
    pub reachable: Vec<bool>,
}

impl Cfg {
    /// The block that starts at `slot`, if any.
    pub fn block_at(&self, slot: usize) -> Option<usize> {
        self.blocks.binary_search_by_key(&slot, |b| b.start).ok()
    }

    /// The instruction slots of block `b` (the second slots of `lddw` are skipped).
    pub fn slots<'a>(&self, b: usize, insns: &'a [Insn]) -> impl Iterator<Item = usize> + 'a {
        let blk = &self.blocks[b];
        (blk.start..blk.end).filter(move |&s| !matches!(insns[s], Insn::Imm64Tail))
    }
}

/// The slot a jump at `slot` with offset `off` goes to, checked to lie inside the function and
/// to start an instruction.
fn jump_target(
    ctx: &ProgCtx,
    slot: usize,
    off: i64,
    start: usize,
    end: usize,
) -> Result<usize, Diagnostic> {
    let target = slot as i64 + 1 + off;
    if target < start as i64 || target >= end as i64 {
        return Err(ctx
            .error(
                slot,
                format!(
                    "jump to instruction {target}, outside its function (instructions {start} to {})",
                    end - 1
                ),
            )
            .help("bpf-to-bpf control flow must use call and exit, not jumps"));
    }
    let target = target as usize;
    if matches!(ctx.insns[target], Insn::Imm64Tail) {
        return Err(ctx.error(
            slot,
            format!("jump into instruction {target}, the second half of a 64-bit immediate load"),
        ));
    }
    Ok(target)
}

/// Where the jump at `slot` goes, if it is a jump.
fn jump_of(insn: &Insn) -> Option<i64> {
    match *insn {
        Insn::Ja { off, .. } => Some(off as i64),
        Insn::Jmp { off, .. } => Some(off as i64),
        _ => None,
    }
}

/// Builds the blocks of the function occupying slots `[start, end)`.
pub fn build(ctx: &ProgCtx, start: usize, end: usize) -> Result<Cfg, Diagnostic> {
    let insns = &ctx.insns;
    if start >= end || end > insns.len() {
        return Err(ctx.error(start, "function has no instructions"));
    }
    if matches!(insns[start], Insn::Imm64Tail) {
        return Err(ctx.error(
            start,
            "function starts in the middle of a 64-bit immediate load",
        ));
    }
    let mut leaders = BTreeSet::new();
    leaders.insert(start);
    for (slot, insn) in insns.iter().enumerate().take(end).skip(start) {
        if let Some(off) = jump_of(insn) {
            leaders.insert(jump_target(ctx, slot, off, start, end)?);
        }
        let ends_block = jump_of(insn).is_some() || matches!(insn, Insn::Exit);
        if ends_block && slot + 1 < end {
            leaders.insert(slot + 1);
        }
    }
    let starts: Vec<usize> = leaders.into_iter().collect();
    let index_of = |slot: usize| {
        starts
            .binary_search(&slot)
            .expect("every target is a leader")
    };
    let mut blocks = Vec::with_capacity(starts.len());
    for (i, &bstart) in starts.iter().enumerate() {
        let bend = starts.get(i + 1).copied().unwrap_or(end);
        let last = (bstart..bend)
            .rev()
            .find(|&s| !matches!(insns[s], Insn::Imm64Tail))
            .unwrap_or(bstart);
        let exit = match insns[last] {
            Insn::Exit => BlockExit::Return,
            Insn::Ja { off, .. } => {
                BlockExit::Jump(index_of(jump_target(ctx, last, off as i64, start, end)?))
            }
            Insn::Jmp { off, .. } => {
                let taken = index_of(jump_target(ctx, last, off as i64, start, end)?);
                if bend >= end {
                    BlockExit::FallOff
                } else {
                    BlockExit::Branch {
                        taken,
                        not_taken: i + 1,
                    }
                }
            }
            _ if bend >= end => BlockExit::FallOff,
            _ => BlockExit::Fallthrough(i + 1),
        };
        blocks.push(BasicBlock {
            start: bstart,
            end: bend,
            exit,
            last,
        });
    }
    let n = blocks.len();
    // Depth-first search with an explicit stack, so that long programs cannot overflow the
    // native stack; postorder reversed is the order in which every block's dominators come
    // before it.
    let mut reachable = vec![false; n];
    let mut post = Vec::with_capacity(n);
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    reachable[0] = true;
    while let Some(&mut (b, ref mut next)) = stack.last_mut() {
        let succs = blocks[b].successors();
        if *next < succs.len() {
            let s = succs[*next];
            *next += 1;
            if !reachable[s] {
                reachable[s] = true;
                stack.push((s, 0));
            }
        } else {
            post.push(b);
            stack.pop();
        }
    }
    let rpo: Vec<usize> = post.into_iter().rev().collect();
    let mut preds = vec![Vec::new(); n];
    for &b in &rpo {
        for s in blocks[b].successors() {
            preds[s].push(b);
        }
    }
    for &b in &rpo {
        if blocks[b].exit == BlockExit::FallOff {
            return Err(ctx
                .error(
                    blocks[b].last,
                    "execution falls off the end of the function after this instruction",
                )
                .help("every path must end in exit"));
        }
    }
    Ok(Cfg {
        start,
        end,
        blocks,
        preds,
        rpo,
        reachable,
    })
}
