//! Map operations as microcode on the map images in chip memory (see
//! `hw::nfp::abi::MapLayout`), instead of commands to the lookup engine.
//!
//! The kernel's own NFP offload hands every map operation to the lookup engine of the memory
//! unit, and nicc did the same, with the simulator serving the command from the shared
//! runtime. A map the backend lays out in chip memory is operated on by the microcode here,
//! so that its cost is the instructions and the memory commands it really takes:
//!
//! - **array and per-CPU array lookup**: the index is read from the key, compared with
//!   `max_entries`, and shifted into the value's offset (plus the context's per-CPU copy for a
//!   per-CPU array); the pointer's region word is the map's. No memory access, as in the
//!   kernel's inlined array lookup.
//! - **array update**: BPF's flag and index checks, then the value copied from wherever the
//!   program keeps it (the stack, usually) into the image, 8 bytes per read and write command.
//! - **array delete**: always `-EINVAL`, as for the kernel's arrays.
//! - **hash lookup, update and delete**: a routine per map and operation, emitted once after
//!   the program and called with the return address in a register (`immed`, then `rtn`, as
//!   the Linux JIT calls its subprograms). The call site reads the key into transfer
//!   registers; the routine computes `hw::nfp::abi::chip_hash` of it, probes the table
//!   linearly with one read command per entry (state and key in one burst), compares the key
//!   word by word, and answers with a pointer (lookup) or a status and the entry (update,
//!   delete). An insert writes the entry's state and key and counts it with an atomic add;
//!   the call site then copies the value in. Registers 0 to 5 are the routine's (they are
//!   free inside an expansion): 2 holds the return address, 3 the probe index, 4 the probes
//!   left, 5 the entry's offset, 0 and 1 temporaries and the answer. A key that is not whole
//!   words is read as the words of `hw::nfp::abi::chip_key_pieces` (the last word overlaps
//!   the one before), so no read goes past the key and no byte needs masking.
//! - **per-CPU hash**: the same routines; the answer is this context's copy of the value
//!   (`XFER_CONTEXT` shifted by the copy's stride). A delete clears every copy, so that an
//!   insert writes only its own and the others read as zero, as the kernel leaves them.
//! - **LPM trie** (small, IPv4-sized): a routine scans the table of prefixes, 4 per read,
//!   and keeps the longest match (lookup) or finds the exact prefix (update, delete); the
//!   mask of a new prefix is computed once, by an indirect shift, when it is inserted.
//! - **a map chosen at run time** among maps in chip memory: the handle's region word is
//!   compared with each candidate and that map's operation runs; when NULL may also reach
//!   the call (clang's select between map pointers and 0, tested before the call), a handle
//!   that is none of the maps branches to `MAP_HANDLE_FAULT_TARGET` and the packet faults as
//!   in the interpreter.
//!
//! Results follow `sim::runtime::maps` exactly (the same errors in the same order), which the
//! differential test checks against the interpreter.

use super::{Item, Selector, Target, S, X};
use frontend::Diagnostic;
use hw::nfp::abi::{MapLayout, REGION_MAP, REGION_PACKET, REGION_STACK, XFER_CONTEXT};
use hw::nfp::insn::*;
use hw::nfp::regs::{Bank, Dest, Operand};
use ir::{MemSize, Region, Value};

/// A map routine: which map and which operation (an update's flags are part of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutineKey {
    pub map: usize,
    pub op: RoutineOp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutineOp {
    Lookup,
    Update(u8),
    Delete,
}

/// The maps a run-time map handle may name (sorted), and whether it may be NULL.
#[derive(Clone, Debug, Default)]
struct PossibleMaps {
    maps: Vec<usize>,
    null: bool,
}

/// Read transfer registers the key occupies during a hash routine, and those an entry is
/// read into.
const XFER_KEY: u8 = X;
const XFER_ENTRY: u8 = X + 8;
/// Registers of the hash routines (see the module doc).
const R_RET: u8 = 2;
const R_INDEX: u8 = 3;
const R_LEFT: u8 = 4;
const R_ENTRY: u8 = 5;
/// `ENOENT` as BPF helpers return it (negated).
const ENOENT: i64 = 2;

/// `bpf_map_lookup_elem`, `bpf_map_update_elem`, `bpf_map_delete_elem`.
const LOOKUP: u32 = 1;
const UPDATE: u32 = 2;
const DELETE: u32 = 3;
/// `EINVAL`, `E2BIG` and `EEXIST` as BPF helpers return them (negated).
const EINVAL: i64 = 22;
const E2BIG: i64 = 7;
const EEXIST: i64 = 17;
const ENOSPC: i64 = 28;

impl<'a> Selector<'a> {
    /// The map a value names when it is a constant map handle (`lddw rX, map`).
    pub(super) fn const_map(&self, v: Value) -> Option<usize> {
        let s = self.shape(v);
        match (s.hi.constant(), s.lo.constant()) {
            (Some(h), Some(0)) if (REGION_MAP..REGION_MAP + 0x0100_0000).contains(&h) => {
                Some((h - REGION_MAP) as usize)
            }
            _ => None,
        }
    }

    /// The maps a value may name, when it can only be map handles: `lddw rX, map`
    /// constants, possibly through block parameters (a map chosen on each path), and whether
    /// NULL may flow in too (clang selects between map pointers and 0, then tests for 0
    /// before the call, which the verifier requires). `None` when anything else may flow in.
    fn possible_maps(&self, v: Value) -> Option<PossibleMaps> {
        let mut out = PossibleMaps::default();
        let mut seen = std::collections::HashSet::new();
        let mut work = vec![v];
        while let Some(v) = work.pop() {
            if !seen.insert(v) {
                continue;
            }
            if let Some(m) = self.const_map(v) {
                out.maps.push(m);
                continue;
            }
            if self.shape(v).constant() == Some(0) {
                out.null = true;
                continue;
            }
            let ir::ValueDef::Param(block, index) = self.func.dfg.value_def(v) else {
                return None;
            };
            for inst in self.func.insts() {
                for dest in self.func.dfg.inst(inst).branch_destinations() {
                    if dest.block == block {
                        work.push(*dest.args.get(index)?);
                    }
                }
            }
        }
        out.maps.sort_unstable();
        out.maps.dedup();
        Some(out)
    }

    /// The chip-memory layout of map `m`, when it has one.
    fn layout_of(&self, m: usize) -> Option<MapLayout> {
        self.layouts.get(m).cloned().flatten()
    }

    /// Selects a helper call on a map in chip memory; returns false when the call is not one
    /// (the caller then issues the lookup-engine command). A helper other than the three map
    /// operations that is given such a map is refused: the lookup engine could not see the
    /// map's contents.
    pub(super) fn chip_map_helper(
        &mut self,
        id: u32,
        args: &[Value],
        result: Option<Value>,
    ) -> Result<bool, Diagnostic> {
        let in_chip =
            |sel: &Self, v: &Value| sel.const_map(*v).filter(|m| sel.layout_of(*m).is_some());
        let map_helper = matches!(id, LOOKUP | UPDATE | DELETE | 195);
        // A map chosen at run time among maps that all live in chip memory: compare the
        // handle with each and run that map's operation.
        if let (true, Some(&handle)) = (matches!(id, LOOKUP | UPDATE | DELETE), args.first()) {
            if self.const_map(handle).is_none() {
                if let Some(p) = self.possible_maps(handle) {
                    let all_in_chip = p.maps.iter().all(|m| self.layout_of(*m).is_some());
                    if !p.maps.is_empty() && all_in_chip && (p.maps.len() > 1 || p.null) {
                        self.chip_map_dispatch(id, &p, args, result)?;
                        return Ok(true);
                    }
                }
            }
        }
        let may_be_in_chip = |sel: &Self, v: Value| match sel.possible_maps(v) {
            Some(p) => p.maps.iter().any(|m| sel.layout_of(*m).is_some()),
            None => sel.layouts.iter().any(Option::is_some),
        };
        if map_helper
            && args
                .first()
                .is_some_and(|v| self.const_map(*v).is_none() && may_be_in_chip(self, *v))
        {
            // The lookup engine would operate on the runtime's copy of the map, which the
            // microcode never sees, so this must not reach it.
            return Err(self.err(format!(
                "the map of this call of helper {id} is chosen at run time among maps of which some live in chip memory and some are served by the lookup engine (or the handle may be something other than a map), so neither can run the call alone"
            ))
            .help("call the helper once per map (clang merges calls that differ only in the map; a separate branch per map keeps them apart)"));
        }
        let Some(m) = args.first().and_then(|v| in_chip(self, v)) else {
            if let Some(m) = args.iter().find_map(|v| in_chip(self, v)) {
                return Err(self.err(format!(
                    "helper {id} is given map {m}, which lives in chip memory where only the map operations (lookup, update, delete) reach it"
                ))
                .help("pass this map only to bpf_map_lookup_elem, bpf_map_update_elem and bpf_map_delete_elem, or compile the program for the native target, which serves every helper"));
            }
            return Ok(false);
        };
        let layout = self
            .layout_of(m)
            .ok_or_else(|| self.err("internal: no layout"))?;
        if layout.has_table() {
            self.hash_call(id, m, &layout, args, result)?;
            return Ok(true);
        }
        match id {
            LOOKUP => self.array_lookup(m, &layout, args, result)?,
            UPDATE => self.array_update(m, &layout, args, result)?,
            DELETE => {
                if let Some(r) = result {
                    self.set_const(r, -EINVAL)?;
                }
            }
            _ => {
                return Err(self.err(format!(
                    "helper {id} is not available on map {m}, which lives in chip memory (only lookup, update and delete are)"
                ))
                .help("use bpf_map_lookup_elem on the current CPU's value instead"))
            }
        }
        Ok(true)
    }

    /// One map operation per candidate map, chosen by comparing the handle's region word.
    /// The last candidate needs no compare when the handle can be nothing else; when NULL
    /// may reach the call as well, every candidate is compared and a handle that matches
    /// none faults, as the interpreter does.
    fn chip_map_dispatch(
        &mut self,
        id: u32,
        p: &PossibleMaps,
        args: &[Value],
        result: Option<Value>,
    ) -> Result<(), Diagnostic> {
        let handle = self.hi(args[0])?;
        let mut to_done = Vec::new();
        for (i, &m) in p.maps.iter().enumerate() {
            self.scratch_next = 0;
            let to_next = if i + 1 < p.maps.len() || p.null {
                self.alu(Dest::None, handle, AluOp::Sub, S::C(REGION_MAP + m as u32))?;
                if i + 1 == p.maps.len() {
                    self.push_branch(
                        Insn::Br {
                            cond: BrCond::Ne,
                            target: 0,
                            defer: 0,
                        },
                        Target::MapHandleFault,
                    );
                    None
                } else {
                    Some(self.branch_here(Insn::Br {
                        cond: BrCond::Ne,
                        target: 0,
                        defer: 0,
                    }))
                }
            } else {
                None
            };
            self.scratch_next = 0;
            let layout = self
                .layout_of(m)
                .ok_or_else(|| self.err("internal: no layout"))?;
            if layout.has_table() {
                self.hash_call(id, m, &layout, args, result)?;
            } else {
                match id {
                    LOOKUP => self.array_lookup(m, &layout, args, result)?,
                    UPDATE => self.array_update(m, &layout, args, result)?,
                    _ => {
                        if let Some(r) = result {
                            self.set_const(r, -EINVAL)?;
                        }
                    }
                }
            }
            if let Some(next) = to_next {
                to_done.push(self.branch_here(Insn::Br {
                    cond: BrCond::Always,
                    target: 0,
                    defer: 0,
                }));
                self.bind(&[next]);
            }
        }
        self.bind(&to_done);
        Ok(())
    }

    /// Writes the 64-bit constant `c` into `r`'s registers.
    fn set_const(&mut self, r: Value, c: i64) -> Result<(), Diagnostic> {
        if let Some(d) = self.dst(r, false) {
            self.mov(Dest::Both(d), S::C(c as u32))?;
        }
        if let Some(d) = self.dst(r, true) {
            self.mov(Dest::Both(d), S::C((c as u64 >> 32) as u32))?;
        }
        Ok(())
    }

    /// The array index a key points to, as a half the expansions can read: a local-memory
    /// word copied to scratch when the key is at a constant place in the stack window, else
    /// a read command into the transfer registers.
    fn array_index(&mut self, key: Value) -> Result<S, Diagnostic> {
        if let Some(off) = self.stack_const(key, 0) {
            if let Some(o) = self.lm_word(off) {
                let t = self.scratch()?;
                self.push(Insn::Alu {
                    dst: Dest::Both(t),
                    a: Operand::None,
                    op: AluOp::PassB,
                    b: o,
                });
                return Ok(S::R(t));
            }
        }
        self.command_at(Region::Any, MemSize::U32, key, 0, MemAction::Read)?;
        Ok(S::X(X))
    }

    /// The 32-bit constant the block stored at stack byte `off` before the current
    /// instruction, when nothing in between can have changed it (no call, no atomic, no
    /// store that may overlap): a map key the program just wrote, such as the `0` of a
    /// counter in a one-entry array.
    fn stored_stack_const(&self, off: u32) -> Option<u32> {
        use ir::instructions::InstructionData as I;
        for &inst in self.earlier_in_block.iter().rev() {
            match self.func.dfg.inst(inst) {
                I::Store {
                    region,
                    size,
                    base,
                    offset,
                    value,
                } => {
                    let Some(at) = self.stack_const(*base, *offset) else {
                        // A store through a pointer into anything but the stack cannot
                        // reach the key.
                        if matches!(region, Region::Stack(_) | Region::Any) {
                            return None;
                        }
                        continue;
                    };
                    let end = at as u64 + size.bytes() as u64;
                    if end <= off as u64 || at as u64 >= off as u64 + 4 {
                        continue;
                    }
                    let s = self.shape(*value);
                    return match (*size, off - at.min(off)) {
                        (MemSize::U32, 0) if at == off => s.lo.constant(),
                        (MemSize::U64, 0) if at == off => s.lo.constant(),
                        (MemSize::U64, 4) => s.hi.constant(),
                        _ => None,
                    };
                }
                I::CallHelper { .. }
                | I::Call { .. }
                | I::Atomic { .. }
                | I::CmpXchg { .. }
                | I::TailCall { .. } => return None,
                _ => {}
            }
        }
        None
    }

    /// `dst = index * slot_stride (+ context * value_stride)`: the offset of the value.
    fn value_offset(&mut self, dst: u8, index: S, layout: &MapLayout) -> Result<(), Diagnostic> {
        let k = layout.slot_stride.trailing_zeros();
        self.shf(Dest::Both(dst), index, ShfOp::None, ShiftClass::Left, k)?;
        if layout.copies > 1 {
            // The return register is free inside an expansion (see the `isel` module doc).
            let t = RET_LO;
            let kv = layout.value_stride.trailing_zeros();
            self.shf(
                Dest::Both(t),
                S::X(XFER_CONTEXT),
                ShfOp::None,
                ShiftClass::Left,
                kv,
            )?;
            self.alu(Dest::Both(dst), S::R(dst), AluOp::Add, S::R(t))?;
        }
        Ok(())
    }

    /// The number of entries of map `m`.
    fn max_entries(&self, m: usize) -> u32 {
        self.map_entries.get(m).copied().unwrap_or(0)
    }

    /// Array lookup: a pointer to the value, or NULL when the index is out of range.
    fn array_lookup(
        &mut self,
        m: usize,
        layout: &MapLayout,
        args: &[Value],
        result: Option<Value>,
    ) -> Result<(), Diagnostic> {
        let key = *args
            .get(1)
            .ok_or_else(|| self.err("bpf_map_lookup_elem needs a key"))?;
        let Some(r) = result else { return Ok(()) };
        let (dl, dh) = (self.dst(r, false), self.dst(r, true));
        let max = self.max_entries(m);
        // A key the block just stored as a constant: the pointer is known but for the
        // per-CPU copy, and there is nothing to check.
        if let Some(c) = self
            .stack_const(key, 0)
            .and_then(|off| self.stored_stack_const(off))
        {
            let off = if c < max {
                Some(c as u64 * layout.slot_stride as u64).filter(|o| *o <= u32::MAX as u64)
            } else {
                None
            };
            if let (Some(off), Some(d)) = (off, dl) {
                if layout.copies > 1 {
                    self.shf(
                        Dest::Both(d),
                        S::X(XFER_CONTEXT),
                        ShfOp::None,
                        ShiftClass::Left,
                        layout.value_stride.trailing_zeros(),
                    )?;
                    if off != 0 {
                        self.alu(Dest::Both(d), S::R(d), AluOp::Add, S::C(off as u32))?;
                    }
                } else {
                    self.imm32(Dest::Both(d), off as u32);
                }
            } else if let Some(d) = dl {
                self.imm32(Dest::Both(d), 0);
            }
            if let Some(d) = dh {
                self.imm32(Dest::Both(d), if off.is_some() { layout.region } else { 0 });
            }
            return Ok(());
        }
        let index = self.array_index(key)?;
        // The index is in a scratch or transfer register, never one of the result's, so the
        // offset goes straight into the result.
        if let Some(d) = dl {
            self.value_offset(d, index, layout)?;
        }
        if let Some(d) = dh {
            self.imm32(Dest::Both(d), layout.region);
        }
        // The shifts and `immed` leave the condition codes alone, so the bounds test can come
        // last and clear the pointer when it fails.
        self.alu(Dest::None, index, AluOp::Sub, S::C(max))?;
        let to_done = self.branch_here(Insn::Br {
            cond: BrCond::Lo,
            target: 0,
            defer: 0,
        });
        if let Some(d) = dl {
            self.imm32(Dest::Both(d), 0);
        }
        if let Some(d) = dh {
            self.imm32(Dest::Both(d), 0);
        }
        self.bind(&[to_done]);
        Ok(())
    }

    /// Array update with constant flags: `-EINVAL` for flags other than `BPF_ANY` (0),
    /// `BPF_NOEXIST` (1) and `BPF_EXIST` (2), `-E2BIG` for an index out of range, `-EEXIST`
    /// for `BPF_NOEXIST` (every array element exists), else the value is copied in and the
    /// result is 0; the order of the checks is the runtime's.
    fn array_update(
        &mut self,
        m: usize,
        layout: &MapLayout,
        args: &[Value],
        result: Option<Value>,
    ) -> Result<(), Diagnostic> {
        let (Some(&key), Some(&value), Some(&flags)) = (args.get(1), args.get(2), args.get(3))
        else {
            return Err(self.err("bpf_map_update_elem needs a key, a value and flags"));
        };
        let flags = self.shape(flags).constant().ok_or_else(|| {
            self.err("bpf_map_update_elem on a map in chip memory needs constant flags")
                .help("pass BPF_ANY, BPF_NOEXIST or BPF_EXIST directly")
        })?;
        if flags > 2 {
            if let Some(r) = result {
                self.set_const(r, -EINVAL)?;
            }
            return Ok(());
        }
        let max = self.max_entries(m);
        let index = self.array_index(key)?;
        self.alu(Dest::None, index, AluOp::Sub, S::C(max))?;
        let to_big = self.branch_here(Insn::Br {
            cond: BrCond::Hs,
            target: 0,
            defer: 0,
        });
        if flags == 1 {
            if let Some(r) = result {
                self.set_const(r, -EEXIST)?;
            }
        } else {
            let off = self.scratch()?;
            self.value_offset(off, index, layout)?;
            let value_size = self.map_value_sizes.get(m).copied().unwrap_or(0);
            let level = self.map_levels.get(m).copied().unwrap_or(MemLevel::Emem);
            self.copy_bytes(
                (S::C(layout.region), off),
                level,
                (self.hi(value)?, self.lo(value)?),
                value_size,
            )?;
            if let Some(r) = result {
                self.set_const(r, 0)?;
            }
        }
        let to_done = self.branch_here(Insn::Br {
            cond: BrCond::Always,
            target: 0,
            defer: 0,
        });
        self.bind(&[to_big]);
        if let Some(r) = result {
            self.set_const(r, -E2BIG)?;
        }
        self.bind(&[to_done]);
        Ok(())
    }

    /// The memory level a pointer with high half `hi` reaches.
    fn level_of_region(&self, hi: S) -> MemLevel {
        match hi {
            S::C(REGION_STACK) => MemLevel::Lm,
            S::C(REGION_PACKET) => MemLevel::Ctm,
            S::C(c) => c
                .checked_sub(hw::nfp::abi::REGION_CHIP_MAP)
                .and_then(|m| self.map_levels.get(m as usize).copied())
                .unwrap_or(MemLevel::Emem),
            _ => MemLevel::Emem,
        }
    }

    /// A command at `hi:lo + offset` in the 40-bit mode, with the data in transfer register
    /// `X`; `lo_reg` is a register holding the low half when it is not constant.
    fn command_at_halves(
        &mut self,
        level: MemLevel,
        action: MemAction,
        hi: S,
        lo: S,
        offset: u32,
        count: u8,
    ) -> Result<(), Diagnostic> {
        let a = match hi {
            S::C(c) if c <= 0x7f => Operand::Imm(c as u8),
            _ => Operand::Gpr(Bank::A, self.in_reg(hi)?),
        };
        let b = match (lo, offset) {
            (S::C(c), _) => {
                let t = self.scratch()?;
                self.imm32(Dest::Both(t), c.wrapping_add(offset));
                Operand::Gpr(Bank::B, t)
            }
            (_, 0) => Operand::Gpr(Bank::B, self.in_reg(lo)?),
            _ => {
                let t = self.scratch()?;
                self.alu(Dest::Both(t), lo, AluOp::Add, S::C(offset))?;
                Operand::Gpr(Bank::B, t)
            }
        };
        self.push(Insn::Cmd {
            level,
            action,
            xfer: X,
            count,
            a,
            b,
            sig: 1,
            swap: CtxSwap::Swap,
            mode: AddrMode::Region,
            token: 0,
        });
        Ok(())
    }

    /// Copies `n` bytes from the pointer `src` (any memory) to `dst` (a chip-memory region
    /// word and a register holding the offset) with read and write commands of 8, 4, 2 and 1
    /// bytes: the value of a map update. Each piece needs its scratch registers only until
    /// its write is issued, so the expansion fits the four scratch registers.
    fn copy_bytes(
        &mut self,
        (dst_hi, dst_lo): (S, u8),
        dst_level: MemLevel,
        (src_hi, src_lo): (S, S),
        n: u32,
    ) -> Result<(), Diagnostic> {
        let src_level = self.level_of_region(src_hi);
        let base = self.scratch_next;
        let mut done = 0u32;
        for size in [8u32, 4, 2, 1] {
            while n - done >= size {
                self.scratch_next = base;
                let count = size.trailing_zeros() as u8;
                self.command_at_halves(src_level, MemAction::Read, src_hi, src_lo, done, count)?;
                self.mov(Dest::Xfer(X), S::X(X))?;
                if size == 8 {
                    self.mov(Dest::Xfer(X + 1), S::X(X + 1))?;
                }
                self.command_at_halves(
                    dst_level,
                    MemAction::Write,
                    dst_hi,
                    S::R(dst_lo),
                    done,
                    count,
                )?;
                done += size;
            }
        }
        self.scratch_next = base;
        Ok(())
    }

    /// A hash operation at its call site: the key into transfer registers, the call, and
    /// what the answer means for the result (and, for an update, the value copied in).
    fn hash_call(
        &mut self,
        id: u32,
        m: usize,
        layout: &MapLayout,
        args: &[Value],
        result: Option<Value>,
    ) -> Result<(), Diagnostic> {
        let key = *args
            .get(1)
            .ok_or_else(|| self.err("a map operation needs a key"))?;
        let op = match id {
            LOOKUP => RoutineOp::Lookup,
            DELETE => RoutineOp::Delete,
            UPDATE => {
                let flags = args.get(3).and_then(|f| self.shape(*f).constant()).ok_or_else(|| {
                    self.err("bpf_map_update_elem on a map in chip memory needs constant flags")
                        .help("pass BPF_ANY, BPF_NOEXIST or BPF_EXIST directly")
                })?;
                if flags > 2 {
                    if let Some(r) = result {
                        self.set_const(r, -EINVAL)?;
                    }
                    return Ok(());
                }
                RoutineOp::Update(flags as u8)
            }
            _ => {
                return Err(self.err(format!(
                    "helper {id} is not available on map {m}, which lives in chip memory (only lookup, update and delete are)"
                )))
            }
        };
        // The key's words (`hw::nfp::abi::chip_key_pieces`), adjacent whole words read
        // together in 8 bytes.
        let key_size = self.map_key_sizes.get(m).copied().unwrap_or(0);
        let pieces = if layout.is_lpm() {
            // The prefix length, then the address data in one read (1, 2 or 4 bytes).
            vec![(0, 4), (4, key_size.saturating_sub(4))]
        } else {
            hw::nfp::abi::chip_key_pieces(key_size)
        };
        let (kh, kl) = (self.hi(key)?, self.lo(key)?);
        let level = self.level_of_region(kh);
        let mut w = 0;
        while w < pieces.len() {
            self.scratch_next = 0;
            let (at, n) = pieces[w];
            let pair = n == 4
                && pieces
                    .get(w + 1)
                    .is_some_and(|&(next, size)| size == 4 && next == at + 4);
            let bytes = if pair { 8 } else { n };
            // A read into one transfer register clears the next one; the pieces are read in
            // order, so a later piece lands after that.
            self.command_at_halves(
                level,
                MemAction::Read,
                kh,
                kl,
                at,
                bytes.trailing_zeros() as u8,
            )?;
            if let Some(last) = self.items.last_mut() {
                if let Insn::Cmd { xfer, .. } = &mut last.insn {
                    *xfer = XFER_KEY + w as u8;
                }
            }
            w += if pair { 2 } else { 1 };
        }
        self.scratch_next = 0;
        let k = match self
            .routines
            .iter()
            .position(|(r, _)| *r == RoutineKey { map: m, op })
        {
            Some(k) => k,
            None => {
                self.routines.push((RoutineKey { map: m, op }, None));
                self.routines.len() - 1
            }
        };
        // The return address goes in the branch's defer slot.
        self.push_branch(
            Insn::Br {
                cond: BrCond::Always,
                target: 0,
                defer: 1,
            },
            Target::Routine(k),
        );
        let ret_at = self.items.len() + 1;
        self.items.push(Item {
            insn: Insn::Immed {
                dst: Dest::Both(R_RET),
                imm: 0,
                shift: 0,
                width: ImmedWidth::All,
                inv: false,
            },
            target: None,
            bpf: self.bpf,
            comment: String::new(),
            reloc: None,
            code_address: Some(Target::Here(ret_at)),
        });
        let Some(r) = result else { return Ok(()) };
        let (dl, dh) = (self.dst(r, false), self.dst(r, true));
        match op {
            RoutineOp::Lookup => {
                // The routine answers with the pointer in registers 0 and 1.
                if let Some(d) = dl {
                    self.mov(Dest::Both(d), S::R(RET_LO))?;
                }
                if let Some(d) = dh {
                    self.mov(Dest::Both(d), S::R(RET_HI))?;
                }
            }
            RoutineOp::Delete => self.status_result(dl, dh)?,
            RoutineOp::Update(_) => {
                let value = *args
                    .get(2)
                    .ok_or_else(|| self.err("bpf_map_update_elem needs a value"))?;
                // A status of 0 leaves the offset of the value (this context's copy) in
                // register 1: copy the value there.
                self.alu(Dest::None, S::C(0), AluOp::Or, S::R(RET_LO))?;
                let to_status = self.branch_here(Insn::Br {
                    cond: BrCond::Ne,
                    target: 0,
                    defer: 0,
                });
                let value_size = self.map_value_sizes.get(m).copied().unwrap_or(0);
                let level = self.map_levels.get(m).copied().unwrap_or(MemLevel::Emem);
                self.copy_bytes(
                    (S::C(layout.region), RET_HI),
                    level,
                    (self.hi(value)?, self.lo(value)?),
                    value_size,
                )?;
                self.bind(&[to_status]);
                self.status_result(dl, dh)?;
            }
        }
        Ok(())
    }

    /// The result of an update or delete from the routine's status in register 0 (0 or a
    /// negative errno, sign-extended).
    fn status_result(&mut self, dl: Option<u8>, dh: Option<u8>) -> Result<(), Diagnostic> {
        if let Some(d) = dh {
            self.shf(
                Dest::Both(d),
                S::R(RET_LO),
                ShfOp::Ashr,
                ShiftClass::Right,
                31,
            )?;
        }
        if let Some(d) = dl {
            self.mov(Dest::Both(d), S::R(RET_LO))?;
        }
        Ok(())
    }

    /// Emits every routine the program calls, after its blocks.
    pub fn emit_routines(&mut self) -> Result<(), Diagnostic> {
        self.bpf = u32::MAX;
        for k in 0..self.routines.len() {
            let key = self.routines[k].0;
            self.routines[k].1 = Some(self.items.len());
            let start = self.items.len();
            let layout = self
                .layout_of(key.map)
                .ok_or_else(|| self.err("internal: a routine for a map without a layout"))?;
            // Registers 2 to 5 are the routine's own, so no constant may be materialized
            // in the scratch registers (the same ones) inside a routine: this makes any
            // attempt an internal error instead of a clobbered return address.
            self.scratch_next = super::SCRATCH.len();
            let kind = if layout.is_lpm() {
                self.lpm_routine(key, &layout)?;
                "lpm"
            } else {
                self.hash_routine(key, &layout)?;
                "hash"
            };
            if let Some(first) = self.items.get_mut(start) {
                first.comment = format!(
                    "routine: {kind} {} of map {}",
                    match key.op {
                        RoutineOp::Lookup => "lookup".to_string(),
                        RoutineOp::Update(f) => format!("update (flags {f})"),
                        RoutineOp::Delete => "delete".to_string(),
                    },
                    key.map
                );
            }
        }
        Ok(())
    }

    /// `dst = dst & (capacity - 1)`: an AND with an immediate, or two shifts when the mask
    /// is wider than 8 bits (no register is free for it).
    fn wrap_index(&mut self, r: u8, capacity: u32) -> Result<(), Diagnostic> {
        let bits = capacity.trailing_zeros();
        if capacity <= 0x100 {
            self.alu(Dest::Both(r), S::R(r), AluOp::And, S::C(capacity - 1))
        } else if bits < 32 {
            self.shf(
                Dest::Both(r),
                S::R(r),
                ShfOp::None,
                ShiftClass::Left,
                32 - bits,
            )?;
            self.shf(
                Dest::Both(r),
                S::R(r),
                ShfOp::None,
                ShiftClass::Right,
                32 - bits,
            )
        } else {
            Ok(())
        }
    }

    /// `rtn[return address]` with up to three moves in its defer slots.
    fn return_with(&mut self, moves: &[(u8, S)]) -> Result<(), Diagnostic> {
        let start = self.items.len();
        for &(d, s) in moves {
            self.mov(Dest::Both(d), s)?;
        }
        let body: Vec<Item> = self.items.drain(start..).collect();
        let defer = if body.len() <= 3 { body.len() as u8 } else { 0 };
        if defer == 0 {
            self.items.extend(body.iter().cloned());
        }
        self.push(Insn::Rtn {
            src: Operand::Gpr(Bank::A, R_RET),
            defer,
        });
        if defer > 0 {
            self.items.extend(body);
        }
        Ok(())
    }

    /// The body of one hash routine (see the module doc for its registers).
    fn hash_routine(&mut self, key: RoutineKey, l: &MapLayout) -> Result<(), Diagnostic> {
        let key_size = self.map_key_sizes.get(key.map).copied().unwrap_or(0);
        let max = self.max_entries(key.map);
        let words = hw::nfp::abi::chip_key_pieces(key_size).len() as u8;
        let region = Operand::Imm(0);
        let region = match l.region {
            r if r <= 0x7f => Operand::Imm(r as u8),
            _ => region,
        };
        if region == Operand::Imm(0) {
            return Err(self.err(format!(
                "map {} is past the 64 maps whose chip-memory region fits a command's immediate",
                key.map
            )));
        }
        let update = matches!(key.op, RoutineOp::Update(_));
        let t = RET_LO;
        // The hash of the key words.
        self.imm32(Dest::Both(R_INDEX), key_size);
        for w in 0..words {
            self.alu(
                Dest::Both(R_INDEX),
                S::R(R_INDEX),
                AluOp::Xor,
                S::X(XFER_KEY + w),
            )?;
            self.shf(
                Dest::Both(t),
                S::R(R_INDEX),
                ShfOp::None,
                ShiftClass::Left,
                10,
            )?;
            self.alu(Dest::Both(R_INDEX), S::R(R_INDEX), AluOp::Add, S::R(t))?;
            self.shf(
                Dest::Both(t),
                S::R(R_INDEX),
                ShfOp::None,
                ShiftClass::Right,
                6,
            )?;
            self.alu(Dest::Both(R_INDEX), S::R(R_INDEX), AluOp::Xor, S::R(t))?;
        }
        self.wrap_index(R_INDEX, l.capacity)?;
        self.imm32(Dest::Both(R_LEFT), l.capacity);
        if update {
            // No deleted entry seen yet.
            self.imm32(Dest::Both(RET_HI), u32::MAX);
        }
        let top = self.items.len();
        self.shf(
            Dest::Both(R_ENTRY),
            S::R(R_INDEX),
            ShfOp::None,
            ShiftClass::Left,
            l.entry_stride.trailing_zeros(),
        )?;
        let read = (l.key_offset + ((words as u32 * 4 + 7) & !7)).next_power_of_two();
        self.push(Insn::Cmd {
            level: self
                .map_levels
                .get(key.map)
                .copied()
                .unwrap_or(MemLevel::Emem),
            action: MemAction::Read,
            xfer: XFER_ENTRY,
            count: read.trailing_zeros() as u8,
            a: region,
            b: Operand::Gpr(Bank::B, R_ENTRY),
            sig: 1,
            swap: CtxSwap::Swap,
            mode: AddrMode::Region,
            token: 0,
        });
        // An empty entry ends the probe sequence: the key is absent.
        self.mov(Dest::None, S::X(XFER_ENTRY))?;
        let to_absent = self.branch_here(Insn::Br {
            cond: BrCond::Eq,
            target: 0,
            defer: 0,
        });
        self.alu(
            Dest::None,
            S::X(XFER_ENTRY),
            AluOp::Xor,
            S::C(hw::nfp::abi::HASH_DELETED),
        )?;
        let to_deleted = self.branch_here(Insn::Br {
            cond: BrCond::Eq,
            target: 0,
            defer: 0,
        });
        let mut to_next = Vec::new();
        let first_key_word = XFER_ENTRY + (l.key_offset / 4) as u8;
        for w in 0..words {
            self.mov(Dest::Both(t), S::X(first_key_word + w))?;
            self.alu(Dest::None, S::R(t), AluOp::Xor, S::X(XFER_KEY + w))?;
            to_next.push(self.branch_here(Insn::Br {
                cond: BrCond::Ne,
                target: 0,
                defer: 0,
            }));
        }
        let to_found = self.branch_here(Insn::Br {
            cond: BrCond::Always,
            target: 0,
            defer: 0,
        });
        self.bind(&[to_deleted]);
        if update {
            // Remember the first deleted entry: an insert reuses it.
            self.alu(Dest::None, S::R(RET_HI), AluOp::Add, S::C(1))?;
            let seen = self.branch_here(Insn::Br {
                cond: BrCond::Ne,
                target: 0,
                defer: 0,
            });
            self.mov(Dest::Both(RET_HI), S::R(R_ENTRY))?;
            to_next.push(seen);
        }
        self.bind(&to_next);
        self.alu(Dest::Both(R_INDEX), S::R(R_INDEX), AluOp::Add, S::C(1))?;
        self.wrap_index(R_INDEX, l.capacity)?;
        self.alu(Dest::Both(R_LEFT), S::R(R_LEFT), AluOp::Sub, S::C(1))?;
        self.push_branch(
            Insn::Br {
                cond: BrCond::Ne,
                target: 0,
                defer: 0,
            },
            Target::Here(top),
        );
        self.bind(&[to_absent]);
        let errno = |e: i64| S::C(e as u32);
        let level = self
            .map_levels
            .get(key.map)
            .copied()
            .unwrap_or(MemLevel::Emem);
        match key.op {
            RoutineOp::Lookup => {
                self.return_with(&[(RET_LO, S::C(0)), (RET_HI, S::C(0))])?;
                self.bind(&[to_found]);
                self.value_address(l)?;
                self.return_with(&[(RET_LO, S::R(R_ENTRY)), (RET_HI, S::C(l.region))])?;
            }
            RoutineOp::Delete => {
                self.return_with(&[(RET_LO, errno(-ENOENT))])?;
                self.bind(&[to_found]);
                if l.copies > 1 {
                    self.clear_copies(l, level, region)?;
                }
                self.mov(Dest::Xfer(XFER_ENTRY), S::C(hw::nfp::abi::HASH_DELETED))?;
                self.mem_cmd(level, MemAction::Write, region, R_ENTRY, 2)?;
                self.imm32(Dest::Both(t), l.count_offset);
                self.imm32(Dest::Xfer(XFER_ENTRY), u32::MAX);
                self.mem_cmd(level, MemAction::AtomicAdd, region, t, 2)?;
                self.return_with(&[(RET_LO, S::C(0))])?;
            }
            RoutineOp::Update(flags) => {
                if flags == 2 {
                    self.return_with(&[(RET_LO, errno(-ENOENT))])?;
                } else {
                    // A new key: room for it, then its state and key, then the count.
                    self.imm32(Dest::Both(t), l.count_offset);
                    self.mem_cmd(level, MemAction::Read, region, t, 2)?;
                    self.imm32(Dest::Both(R_INDEX), max);
                    self.alu(Dest::None, S::X(XFER_ENTRY), AluOp::Sub, S::R(R_INDEX))?;
                    let to_full = self.branch_here(Insn::Br {
                        cond: BrCond::Hs,
                        target: 0,
                        defer: 0,
                    });
                    self.alu(Dest::None, S::R(RET_HI), AluOp::Add, S::C(1))?;
                    let keep = self.branch_here(Insn::Br {
                        cond: BrCond::Eq,
                        target: 0,
                        defer: 0,
                    });
                    self.mov(Dest::Both(R_ENTRY), S::R(RET_HI))?;
                    self.bind(&[keep]);
                    self.mov(Dest::Xfer(XFER_ENTRY), S::C(hw::nfp::abi::HASH_USED))?;
                    self.mov(Dest::Xfer(XFER_ENTRY + 1), S::C(0))?;
                    for w in 0..words {
                        self.mov(Dest::Xfer(first_key_word + w), S::X(XFER_KEY + w))?;
                    }
                    // The burst may cover the first bytes of the value, which the caller
                    // writes right after.
                    self.mem_cmd(
                        level,
                        MemAction::Write,
                        region,
                        R_ENTRY,
                        read.trailing_zeros() as u8,
                    )?;
                    self.mov(Dest::Xfer(XFER_ENTRY), S::C(1))?;
                    self.mem_cmd(level, MemAction::AtomicAdd, region, t, 2)?;
                    self.value_address(l)?;
                    self.return_with(&[(RET_LO, S::C(0)), (RET_HI, S::R(R_ENTRY))])?;
                    self.bind(&[to_full]);
                    self.return_with(&[(RET_LO, errno(-E2BIG))])?;
                }
                self.bind(&[to_found]);
                if flags == 1 {
                    self.return_with(&[(RET_LO, errno(-EEXIST))])?;
                } else {
                    self.value_address(l)?;
                    self.return_with(&[(RET_LO, S::C(0)), (RET_HI, S::R(R_ENTRY))])?;
                }
            }
        }
        Ok(())
    }

    /// The map's region word as a command's immediate address operand.
    fn region_operand(&self, map: usize, l: &MapLayout) -> Result<Operand, Diagnostic> {
        match l.region {
            r if r <= 0x7f => Ok(Operand::Imm(r as u8)),
            _ => Err(self.err(format!(
                "map {map} is past the 64 maps whose chip-memory region fits a command's immediate"
            ))),
        }
    }

    /// A branch to a label of the expansion bound later with [`Selector::bind`].
    fn br(&mut self, cond: BrCond) -> usize {
        self.branch_here(Insn::Br {
            cond,
            target: 0,
            defer: 0,
        })
    }

    /// The body of one LPM routine (see `hw::nfp::abi::MapLayout` for the table). The key's
    /// prefix length is in `XFER_KEY` and its address data in `XFER_KEY + 1`. A lookup scans
    /// every prefix and keeps the longest that is no longer than the key's and matches it
    /// under its mask (register 3 holds the best length plus one, register 1 its offset);
    /// an update or delete looks for the prefix of the same length and masked data (register
    /// 3 holds the mask, register 1 the first free prefix). Results and their order are the
    /// runtime's: `-EINVAL` for a prefix length longer than the data, then `-EEXIST`,
    /// `-ENOENT`, `-ENOSPC`.
    fn lpm_routine(&mut self, key: RoutineKey, l: &MapLayout) -> Result<(), Diagnostic> {
        let key_size = self.map_key_sizes.get(key.map).copied().unwrap_or(0);
        let max = self.max_entries(key.map);
        let bits = 8 * key_size.saturating_sub(4);
        let region = self.region_operand(key.map, l)?;
        let level = self
            .map_levels
            .get(key.map)
            .copied()
            .unwrap_or(MemLevel::Emem);
        let t = RET_LO;
        let (plen, data) = (S::X(XFER_KEY), S::X(XFER_KEY + 1));
        let errno = |e: i64| S::C(e as u32);
        // A prefix length past the data: NULL, or -EINVAL.
        self.alu(Dest::None, plen, AluOp::Sub, S::C(bits + 1))?;
        let to_invalid = self.br(BrCond::Hs);
        let lookup = key.op == RoutineOp::Lookup;
        if lookup {
            self.imm32(Dest::Both(R_INDEX), 0);
        } else {
            // The mask: all ones shifted left by 32 - length (none for length 0), in the
            // data's byte order.
            self.imm32(Dest::Both(R_INDEX), u32::MAX);
            self.alu(Dest::Both(t), S::C(32), AluOp::Sub, plen)?;
            self.push(Insn::Alu {
                dst: Dest::None,
                a: Operand::None,
                op: AluOp::PassB,
                b: Operand::Gpr(Bank::B, t),
            });
            self.push(Insn::Shf {
                dst: Dest::Both(R_INDEX),
                a: Operand::None,
                op: ShfOp::None,
                b: Operand::Gpr(Bank::B, R_INDEX),
                sc: ShiftClass::Left,
                shift: INDIRECT_SHIFT,
            });
            self.mov(Dest::None, plen)?;
            let nonzero = self.br(BrCond::Ne);
            self.imm32(Dest::Both(R_INDEX), 0);
            self.bind(&[nonzero]);
            self.swap32(t, S::R(R_INDEX))?;
            self.mov(Dest::Both(R_INDEX), S::R(t))?;
            // No free prefix seen yet.
            self.imm32(Dest::Both(RET_HI), u32::MAX);
        }
        // Only the reads of 4 prefixes up to the high-water mark (every prefix in use lies
        // below it) are scanned.
        self.imm32(Dest::Both(R_ENTRY), l.count_offset + 4);
        self.mem_cmd(level, MemAction::Read, region, R_ENTRY, 2)?;
        self.mov(Dest::Both(R_LEFT), S::X(XFER_ENTRY))?;
        self.imm32(Dest::Both(R_ENTRY), 0);
        let to_end = self.br(BrCond::Eq);
        let top = self.items.len();
        self.mem_cmd(level, MemAction::Read, region, R_ENTRY, 6)?;
        let mut to_found = Vec::new();
        for j in 0..4u8 {
            let w = XFER_ENTRY + 4 * j;
            let mut skip = Vec::new();
            if lookup {
                // Longer than the best so far (which also skips free prefixes) ...
                self.alu(Dest::None, S::R(R_INDEX), AluOp::Sub, S::X(w))?;
                skip.push(self.br(BrCond::Hs));
                // ... no longer than the key's ...
                self.alu(Dest::Both(t), S::X(w), AluOp::Sub, S::C(1))?;
                self.alu(Dest::None, plen, AluOp::Sub, S::R(t))?;
                skip.push(self.br(BrCond::Lo));
                // ... and the key's data equal to the prefix under its mask.
                // (Two transfer registers cannot be one instruction's operands.)
                self.mov(Dest::Both(t), data)?;
                self.alu(Dest::Both(t), S::R(t), AluOp::Xor, S::X(w + 1))?;
                self.alu(Dest::None, S::R(t), AluOp::And, S::X(w + 2))?;
                skip.push(self.br(BrCond::Ne));
                self.mov(Dest::Both(R_INDEX), S::X(w))?;
                self.alu(
                    Dest::Both(RET_HI),
                    S::R(R_ENTRY),
                    AluOp::Add,
                    S::C(16 * j as u32),
                )?;
            } else {
                self.mov(Dest::None, S::X(w))?;
                let used = self.br(BrCond::Ne);
                // A free prefix: remember the first.
                self.alu(Dest::None, S::R(RET_HI), AluOp::Add, S::C(1))?;
                skip.push(self.br(BrCond::Ne));
                self.alu(
                    Dest::Both(RET_HI),
                    S::R(R_ENTRY),
                    AluOp::Add,
                    S::C(16 * j as u32),
                )?;
                skip.push(self.br(BrCond::Always));
                self.bind(&[used]);
                // The same length and the same masked data.
                self.alu(Dest::Both(t), S::X(w), AluOp::Sub, S::C(1))?;
                self.alu(Dest::None, S::R(t), AluOp::Xor, plen)?;
                skip.push(self.br(BrCond::Ne));
                self.alu(Dest::Both(t), data, AluOp::And, S::R(R_INDEX))?;
                self.alu(Dest::None, S::R(t), AluOp::Xor, S::X(w + 1))?;
                skip.push(self.br(BrCond::Ne));
                self.alu(
                    Dest::Both(R_ENTRY),
                    S::R(R_ENTRY),
                    AluOp::Add,
                    S::C(16 * j as u32),
                )?;
                to_found.push(self.br(BrCond::Always));
            }
            self.bind(&skip);
        }
        self.alu(Dest::Both(R_ENTRY), S::R(R_ENTRY), AluOp::Add, S::C(64))?;
        self.alu(Dest::Both(R_LEFT), S::R(R_LEFT), AluOp::Sub, S::C(1))?;
        self.push_branch(
            Insn::Br {
                cond: BrCond::Ne,
                target: 0,
                defer: 0,
            },
            Target::Here(top),
        );
        // Register 5 is now the offset of the first read past the high-water mark.
        self.bind(&[to_end]);
        // The value of the prefix at offset `reg`: the values follow the prefixes in order.
        let value_shift = l.value_stride.trailing_zeros().saturating_sub(4);
        match key.op {
            RoutineOp::Lookup => {
                self.mov(Dest::None, S::R(R_INDEX))?;
                let none = self.br(BrCond::Eq);
                self.shf(
                    Dest::Both(t),
                    S::R(RET_HI),
                    ShfOp::None,
                    ShiftClass::Left,
                    value_shift,
                )?;
                self.imm32(Dest::Both(R_ENTRY), l.value_offset);
                self.alu(Dest::Both(t), S::R(t), AluOp::Add, S::R(R_ENTRY))?;
                self.return_with(&[(RET_HI, S::C(l.region))])?;
                self.bind(&[none, to_invalid]);
                self.return_with(&[(RET_LO, S::C(0)), (RET_HI, S::C(0))])?;
            }
            RoutineOp::Delete => {
                self.return_with(&[(RET_LO, errno(-ENOENT))])?;
                self.bind(&to_found);
                self.mov(Dest::Xfer(XFER_ENTRY), S::C(0))?;
                self.mem_cmd(level, MemAction::Write, region, R_ENTRY, 2)?;
                self.imm32(Dest::Both(t), l.count_offset);
                self.imm32(Dest::Xfer(XFER_ENTRY), u32::MAX);
                self.mem_cmd(level, MemAction::AtomicAdd, region, t, 2)?;
                self.return_with(&[(RET_LO, S::C(0))])?;
                self.bind(&[to_invalid]);
                self.return_with(&[(RET_LO, errno(-EINVAL))])?;
            }
            RoutineOp::Update(flags) => {
                let mut to_value = Vec::new();
                if flags == 2 {
                    self.return_with(&[(RET_LO, errno(-ENOENT))])?;
                } else {
                    // A new prefix: room for it (the count and the high-water mark in one
                    // read), then the prefix, then the count.
                    self.imm32(Dest::Both(t), l.count_offset);
                    self.mem_cmd(level, MemAction::Read, region, t, 3)?;
                    self.imm32(Dest::Both(R_LEFT), max);
                    self.alu(Dest::None, S::X(XFER_ENTRY), AluOp::Sub, S::R(R_LEFT))?;
                    let to_full = self.br(BrCond::Hs);
                    // No free prefix below the mark: the first one past it, where the scan
                    // stopped.
                    self.alu(Dest::None, S::R(RET_HI), AluOp::Add, S::C(1))?;
                    let have_free = self.br(BrCond::Ne);
                    self.mov(Dest::Both(RET_HI), S::R(R_ENTRY))?;
                    self.bind(&[have_free]);
                    // Raise the mark past the read holding the new prefix.
                    self.shf(
                        Dest::Both(R_ENTRY),
                        S::R(RET_HI),
                        ShfOp::None,
                        ShiftClass::Right,
                        6,
                    )?;
                    self.alu(Dest::Both(R_ENTRY), S::R(R_ENTRY), AluOp::Add, S::C(1))?;
                    self.alu(Dest::None, S::X(XFER_ENTRY + 1), AluOp::Sub, S::R(R_ENTRY))?;
                    let kept = self.br(BrCond::Hs);
                    self.mov(Dest::Xfer(XFER_ENTRY), S::R(R_ENTRY))?;
                    self.alu(Dest::Both(R_LEFT), S::R(t), AluOp::Add, S::C(4))?;
                    self.mem_cmd(level, MemAction::Write, region, R_LEFT, 2)?;
                    self.bind(&[kept]);
                    self.alu(Dest::Xfer(XFER_ENTRY), plen, AluOp::Add, S::C(1))?;
                    self.alu(Dest::Xfer(XFER_ENTRY + 1), data, AluOp::And, S::R(R_INDEX))?;
                    self.mov(Dest::Xfer(XFER_ENTRY + 2), S::R(R_INDEX))?;
                    self.mov(Dest::Xfer(XFER_ENTRY + 3), data)?;
                    self.mem_cmd(level, MemAction::Write, region, RET_HI, 4)?;
                    self.mov(Dest::Xfer(XFER_ENTRY), S::C(1))?;
                    self.mem_cmd(level, MemAction::AtomicAdd, region, t, 2)?;
                    self.mov(Dest::Both(R_ENTRY), S::R(RET_HI))?;
                    to_value.push(self.br(BrCond::Always));
                    self.bind(&[to_full]);
                    self.return_with(&[(RET_LO, errno(-ENOSPC))])?;
                }
                self.bind(&to_found);
                if flags == 1 {
                    self.return_with(&[(RET_LO, errno(-EEXIST))])?;
                } else {
                    // The stored key becomes the update's: its data word.
                    self.alu(Dest::Both(t), S::R(R_ENTRY), AluOp::Add, S::C(12))?;
                    self.mov(Dest::Xfer(XFER_ENTRY), data)?;
                    self.mem_cmd(level, MemAction::Write, region, t, 2)?;
                }
                // A new or found prefix at `R_ENTRY`: answer with its value's offset.
                self.bind(&to_value);
                self.shf(
                    Dest::Both(R_ENTRY),
                    S::R(R_ENTRY),
                    ShfOp::None,
                    ShiftClass::Left,
                    value_shift,
                )?;
                self.imm32(Dest::Both(t), l.value_offset);
                self.alu(Dest::Both(R_ENTRY), S::R(R_ENTRY), AluOp::Add, S::R(t))?;
                self.return_with(&[(RET_LO, S::C(0)), (RET_HI, S::R(R_ENTRY))])?;
                self.bind(&[to_invalid]);
                self.return_with(&[(RET_LO, errno(-EINVAL))])?;
            }
        }
        Ok(())
    }

    /// `R_ENTRY += value_offset`, plus this context's copy of a per-CPU hash
    /// (`XFER_CONTEXT << log2(value_stride)`): the offset of the value the program sees.
    fn value_address(&mut self, l: &MapLayout) -> Result<(), Diagnostic> {
        self.alu(
            Dest::Both(R_ENTRY),
            S::R(R_ENTRY),
            AluOp::Add,
            S::C(l.value_offset),
        )?;
        if l.copies > 1 {
            self.shf(
                Dest::Both(RET_LO),
                S::X(XFER_CONTEXT),
                ShfOp::None,
                ShiftClass::Left,
                l.value_stride.trailing_zeros(),
            )?;
            self.alu(Dest::Both(R_ENTRY), S::R(R_ENTRY), AluOp::Add, S::R(RET_LO))?;
        }
        Ok(())
    }

    /// Zeroes every copy of the value of the entry at `R_ENTRY` of a per-CPU hash, in bursts
    /// of up to 64 bytes of zeroed write transfer registers: a deleted entry's values are
    /// zero, so that an insert that reuses it need write only its own context's copy.
    fn clear_copies(
        &mut self,
        l: &MapLayout,
        level: MemLevel,
        region: Operand,
    ) -> Result<(), Diagnostic> {
        let total = l.value_stride as u64 * l.copies as u64;
        let burst = total.min(64) as u32;
        for w in 0..burst / 4 {
            self.mov(Dest::Xfer(XFER_ENTRY + w as u8), S::C(0))?;
        }
        self.alu(
            Dest::Both(R_INDEX),
            S::R(R_ENTRY),
            AluOp::Add,
            S::C(l.value_offset),
        )?;
        self.imm32(Dest::Both(R_LEFT), (total / burst as u64) as u32);
        let top = self.items.len();
        self.mem_cmd(
            level,
            MemAction::Write,
            region,
            R_INDEX,
            burst.trailing_zeros() as u8,
        )?;
        self.alu(Dest::Both(R_INDEX), S::R(R_INDEX), AluOp::Add, S::C(burst))?;
        self.alu(Dest::Both(R_LEFT), S::R(R_LEFT), AluOp::Sub, S::C(1))?;
        self.push_branch(
            Insn::Br {
                cond: BrCond::Ne,
                target: 0,
                defer: 0,
            },
            Target::Here(top),
        );
        Ok(())
    }

    /// A command at `region:reg` with the data in the entry's transfer registers.
    fn mem_cmd(
        &mut self,
        level: MemLevel,
        action: MemAction,
        region: Operand,
        reg: u8,
        count: u8,
    ) -> Result<(), Diagnostic> {
        self.push(Insn::Cmd {
            level,
            action,
            xfer: XFER_ENTRY,
            count,
            a: region,
            b: Operand::Gpr(Bank::B, reg),
            sig: 1,
            swap: CtxSwap::Swap,
            mode: AddrMode::Region,
            token: 0,
        });
        Ok(())
    }
}
