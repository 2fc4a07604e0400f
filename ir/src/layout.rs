//! The order of blocks in a function and of instructions in a block.
//!
//! The layout is kept apart from the definitions in [`crate::dfg`]: it only says where things
//! are. Both orders are doubly linked lists threaded through `SecondaryMap`s, so inserting,
//! removing and moving a block or an instruction costs O(1) and never renumbers anything.
//! An instruction is in at most one block, because each instruction has one list node.
//!
//! The first block in the layout is the entry block.

use crate::entities::{Block, Inst};
use cranelift_entity::packed_option::PackedOption;
use cranelift_entity::SecondaryMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct BlockNode {
    inserted: bool,
    prev: PackedOption<Block>,
    next: PackedOption<Block>,
    first_inst: PackedOption<Inst>,
    last_inst: PackedOption<Inst>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct InstNode {
    block: PackedOption<Block>,
    prev: PackedOption<Inst>,
    next: PackedOption<Inst>,
}

/// Block order and instruction order of one function.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    blocks: SecondaryMap<Block, BlockNode>,
    insts: SecondaryMap<Inst, InstNode>,
    first_block: PackedOption<Block>,
    last_block: PackedOption<Block>,
}

impl Layout {
    pub fn new() -> Layout {
        Layout::default()
    }

    // ---- Blocks ----

    /// The entry block: the first block in the layout.
    pub fn entry_block(&self) -> Option<Block> {
        self.first_block.expand()
    }

    pub fn last_block(&self) -> Option<Block> {
        self.last_block.expand()
    }

    pub fn is_block_inserted(&self, block: Block) -> bool {
        self.blocks[block].inserted
    }

    /// Puts `block` at the end of the block order.
    ///
    /// # Panics
    /// When the block is already in the layout.
    pub fn append_block(&mut self, block: Block) {
        assert!(
            !self.is_block_inserted(block),
            "{block} is already in the layout"
        );
        let last = self.last_block;
        {
            let node = &mut self.blocks[block];
            node.inserted = true;
            node.prev = last;
            node.next = None.into();
        }
        match last.expand() {
            Some(l) => self.blocks[l].next = block.into(),
            None => self.first_block = block.into(),
        }
        self.last_block = block.into();
    }

    /// Puts `block` right after `after` in the block order.
    pub fn insert_block_after(&mut self, block: Block, after: Block) {
        assert!(
            !self.is_block_inserted(block),
            "{block} is already in the layout"
        );
        assert!(
            self.is_block_inserted(after),
            "{after} is not in the layout"
        );
        let next = self.blocks[after].next;
        {
            let node = &mut self.blocks[block];
            node.inserted = true;
            node.prev = after.into();
            node.next = next;
        }
        self.blocks[after].next = block.into();
        match next.expand() {
            Some(n) => self.blocks[n].prev = block.into(),
            None => self.last_block = block.into(),
        }
    }

    /// Puts `block` right before `before` in the block order (before the entry block makes it
    /// the new entry block).
    pub fn insert_block_before(&mut self, block: Block, before: Block) {
        assert!(
            !self.is_block_inserted(block),
            "{block} is already in the layout"
        );
        assert!(
            self.is_block_inserted(before),
            "{before} is not in the layout"
        );
        let prev = self.blocks[before].prev;
        {
            let node = &mut self.blocks[block];
            node.inserted = true;
            node.prev = prev;
            node.next = before.into();
        }
        self.blocks[before].prev = block.into();
        match prev.expand() {
            Some(p) => self.blocks[p].next = block.into(),
            None => self.first_block = block.into(),
        }
    }

    /// Takes `block` out of the block order. Its instructions stay in it, so a block can be
    /// moved by removing and re-inserting it; to delete it, remove its instructions too.
    pub fn remove_block(&mut self, block: Block) {
        assert!(
            self.is_block_inserted(block),
            "{block} is not in the layout"
        );
        let (prev, next) = {
            let node = &mut self.blocks[block];
            node.inserted = false;
            (
                std::mem::take(&mut node.prev),
                std::mem::take(&mut node.next),
            )
        };
        match prev.expand() {
            Some(p) => self.blocks[p].next = next,
            None => self.first_block = next,
        }
        match next.expand() {
            Some(n) => self.blocks[n].prev = prev,
            None => self.last_block = prev,
        }
    }

    pub fn next_block(&self, block: Block) -> Option<Block> {
        self.blocks[block].next.expand()
    }

    pub fn prev_block(&self, block: Block) -> Option<Block> {
        self.blocks[block].prev.expand()
    }

    /// The blocks in layout order.
    pub fn blocks(&self) -> Blocks<'_> {
        Blocks {
            layout: self,
            next: self.first_block.expand(),
        }
    }

    // ---- Instructions ----

    /// The block holding `inst`, if it is in the layout.
    pub fn inst_block(&self, inst: Inst) -> Option<Block> {
        self.insts[inst].block.expand()
    }

    pub fn first_inst(&self, block: Block) -> Option<Inst> {
        self.blocks[block].first_inst.expand()
    }

    /// The last instruction of a block: its terminator, in a verified function.
    pub fn last_inst(&self, block: Block) -> Option<Inst> {
        self.blocks[block].last_inst.expand()
    }

    pub fn next_inst(&self, inst: Inst) -> Option<Inst> {
        self.insts[inst].next.expand()
    }

    pub fn prev_inst(&self, inst: Inst) -> Option<Inst> {
        self.insts[inst].prev.expand()
    }

    /// Puts `inst` at the end of `block`.
    ///
    /// # Panics
    /// When the instruction is already placed.
    pub fn append_inst(&mut self, inst: Inst, block: Block) {
        assert!(
            self.inst_block(inst).is_none(),
            "{inst} is already in a block"
        );
        let last = self.blocks[block].last_inst;
        self.insts[inst] = InstNode {
            block: block.into(),
            prev: last,
            next: None.into(),
        };
        match last.expand() {
            Some(l) => self.insts[l].next = inst.into(),
            None => self.blocks[block].first_inst = inst.into(),
        }
        self.blocks[block].last_inst = inst.into();
    }

    /// Puts `inst` right before `before`, in the same block.
    pub fn insert_inst_before(&mut self, inst: Inst, before: Inst) {
        assert!(
            self.inst_block(inst).is_none(),
            "{inst} is already in a block"
        );
        let block = self
            .inst_block(before)
            .unwrap_or_else(|| panic!("{before} is not in the layout"));
        let prev = self.insts[before].prev;
        self.insts[inst] = InstNode {
            block: block.into(),
            prev,
            next: before.into(),
        };
        self.insts[before].prev = inst.into();
        match prev.expand() {
            Some(p) => self.insts[p].next = inst.into(),
            None => self.blocks[block].first_inst = inst.into(),
        }
    }

    /// Puts `inst` right after `after`, in the same block.
    pub fn insert_inst_after(&mut self, inst: Inst, after: Inst) {
        let block = self
            .inst_block(after)
            .unwrap_or_else(|| panic!("{after} is not in the layout"));
        match self.next_inst(after) {
            Some(next) => self.insert_inst_before(inst, next),
            None => self.append_inst(inst, block),
        }
    }

    /// Takes `inst` out of its block. Its data and result stay in the DFG.
    pub fn remove_inst(&mut self, inst: Inst) {
        let block = self
            .inst_block(inst)
            .unwrap_or_else(|| panic!("{inst} is not in the layout"));
        let InstNode { prev, next, .. } = std::mem::take(&mut self.insts[inst]);
        match prev.expand() {
            Some(p) => self.insts[p].next = next,
            None => self.blocks[block].first_inst = next,
        }
        match next.expand() {
            Some(n) => self.insts[n].prev = prev,
            None => self.blocks[block].last_inst = prev,
        }
    }

    /// The instructions of a block, in order.
    pub fn block_insts(&self, block: Block) -> Insts<'_> {
        Insts {
            layout: self,
            next: self.first_inst(block),
        }
    }

    /// Moves every instruction from `inst` (inclusive) to the end of its block to the end of
    /// `new_block`, which must be in the layout. This is how a block is split.
    pub fn split_block(&mut self, new_block: Block, inst: Inst) {
        let mut cur = Some(inst);
        while let Some(i) = cur {
            cur = self.next_inst(i);
            self.remove_inst(i);
            self.append_inst(i, new_block);
        }
    }
}

/// Iterator over the blocks of a layout.
pub struct Blocks<'a> {
    layout: &'a Layout,
    next: Option<Block>,
}

impl Iterator for Blocks<'_> {
    type Item = Block;
    fn next(&mut self) -> Option<Block> {
        let b = self.next?;
        self.next = self.layout.next_block(b);
        Some(b)
    }
}

/// Iterator over the instructions of one block.
pub struct Insts<'a> {
    layout: &'a Layout,
    next: Option<Inst>,
}

impl Iterator for Insts<'_> {
    type Item = Inst;
    fn next(&mut self) -> Option<Inst> {
        let i = self.next?;
        self.next = self.layout.next_inst(i);
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cranelift_entity::EntityRef;

    #[test]
    fn blocks_keep_their_order() {
        let mut l = Layout::new();
        let b: Vec<Block> = (0..4).map(Block::new).collect();
        l.append_block(b[0]);
        l.append_block(b[2]);
        l.insert_block_after(b[1], b[0]);
        l.insert_block_before(b[3], b[0]);
        assert_eq!(l.blocks().collect::<Vec<_>>(), vec![b[3], b[0], b[1], b[2]]);
        assert_eq!(l.entry_block(), Some(b[3]));
        l.remove_block(b[3]);
        l.remove_block(b[2]);
        assert_eq!(l.blocks().collect::<Vec<_>>(), vec![b[0], b[1]]);
        assert_eq!(l.last_block(), Some(b[1]));
        assert!(!l.is_block_inserted(b[2]));
    }

    #[test]
    fn instructions_are_inserted_removed_and_split() {
        let mut l = Layout::new();
        let (b0, b1) = (Block::new(0), Block::new(1));
        l.append_block(b0);
        l.append_block(b1);
        let i: Vec<Inst> = (0..5).map(Inst::new).collect();
        l.append_inst(i[0], b0);
        l.append_inst(i[2], b0);
        l.insert_inst_before(i[1], i[2]);
        l.insert_inst_after(i[3], i[2]);
        l.insert_inst_before(i[4], i[0]);
        assert_eq!(
            l.block_insts(b0).collect::<Vec<_>>(),
            vec![i[4], i[0], i[1], i[2], i[3]]
        );
        l.remove_inst(i[4]);
        l.remove_inst(i[3]);
        assert_eq!(l.inst_block(i[3]), None);
        assert_eq!(l.first_inst(b0), Some(i[0]));
        assert_eq!(l.last_inst(b0), Some(i[2]));
        l.split_block(b1, i[1]);
        assert_eq!(l.block_insts(b0).collect::<Vec<_>>(), vec![i[0]]);
        assert_eq!(l.block_insts(b1).collect::<Vec<_>>(), vec![i[1], i[2]]);
        assert_eq!(l.inst_block(i[2]), Some(b1));
    }
}
