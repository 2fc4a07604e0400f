//! Inlining of bpf-to-bpf calls, on the lifted IR.
//!
//! Some targets (hardware pipelines, the NFP) have no call instruction, and optimizations see
//! more when a subprogram's body sits in its caller. Inlining is done on the IR rather than on
//! BPF because the callee's frame then simply becomes further stack slots of the caller and
//! its parameters become the call's arguments, with no register juggling: the call's block is
//! split after the call, the callee's blocks are copied in between, and each `return v` of the
//! copy jumps to the continuation with `v` as its parameter.
//!
//! Callees are inlined bottom-up (a callee's own calls first), so each call site is inlined
//! once. BPF forbids recursion; a call cycle is reported as an error. Functions whose address
//! is taken (callbacks of `bpf_loop` and friends) are kept; every other subprogram disappears.

use cranelift_entity::EntityRef;
use ir::function::Function;
use ir::instructions::{BlockCall, InstructionData, Region};
use ir::types::Type;
use ir::{Block, FuncRef, Inst, StackSlot, Value};
use std::collections::HashMap;

/// Adds `base` to every function reference of `func` (for moving a program's functions, numbered
/// from 0, into a module that already holds others).
pub fn renumber_func_refs(func: &mut Function, base: usize) {
    if base == 0 {
        return;
    }
    remap_func_refs(func, &|f| FuncRef::new(f.index() + base));
}

fn remap_func_refs(func: &mut Function, map: &dyn Fn(FuncRef) -> FuncRef) {
    let insts: Vec<Inst> = func.insts().collect();
    for inst in insts {
        match func.dfg.inst_mut(inst) {
            InstructionData::Call { func: f, .. } | InstructionData::FuncAddr { func: f } => {
                *f = map(*f)
            }
            _ => {}
        }
    }
}

/// The most IR instructions a function may grow to by inlining: about what the kernel would
/// take as BPF (1,000,000 instructions, `BPF_COMPLEXITY_LIMIT_INSNS`).
pub const MAX_INLINED_INSTS: usize = 1_000_000;

fn calls_in(func: &Function) -> Vec<(Inst, FuncRef)> {
    func.insts()
        .filter_map(|i| match func.dfg.inst(i) {
            InstructionData::Call { func: f, .. } => Some((i, *f)),
            _ => None,
        })
        .collect()
}

/// Inlines every `call` in `funcs` (index 0 is the program entry, references are indices) and
/// drops the functions nothing refers to any more.
pub fn inline_calls(funcs: &mut Vec<Function>) -> Result<(), String> {
    let n = funcs.len();
    // Postorder of the call graph: callees before callers; a function met again while still on
    // the path is a cycle.
    let mut order = Vec::new();
    let mut state = vec![0u8; n]; // 0 new, 1 on the path, 2 done
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, Vec<usize>)> = vec![(root, callees(&funcs[root]))];
        state[root] = 1;
        while let Some((f, rest)) = stack.last_mut() {
            match rest.pop() {
                Some(c) if c >= n => {
                    return Err(format!(
                        "function {} calls fn{c}, which does not exist",
                        funcs[*f].name
                    ))
                }
                Some(c) if state[c] == 1 => {
                    return Err(format!(
                        "recursive call from {} to {}: BPF does not allow recursion",
                        funcs[*f].name, funcs[c].name
                    ))
                }
                Some(c) if state[c] == 0 => {
                    state[c] = 1;
                    let cs = callees(&funcs[c]);
                    stack.push((c, cs));
                }
                Some(_) => {}
                None => {
                    state[*f] = 2;
                    order.push(*f);
                    stack.pop();
                }
            }
        }
    }
    // Every call site gets its own copy of the callee, so a chain of functions that each
    // call the next twice doubles at every level: the size is checked before each copy.
    let mut size: Vec<usize> = funcs.iter().map(|f| f.insts().count()).collect();
    for f in order {
        for (inst, callee) in calls_in(&funcs[f]) {
            let grown = size[f] + size[callee.index()];
            if grown > MAX_INLINED_INSTS {
                return Err(format!(
                    "inlining the calls of {} would make it more than {MAX_INLINED_INSTS} IR \
                     instructions (each call site gets its own copy of {}); compile it for a \
                     target that keeps calls (bpf, native), or call big subprograms from fewer \
                     places",
                    funcs[f].name,
                    funcs[callee.index()].name
                ));
            }
            let body = funcs[callee.index()].clone();
            inline_one(&mut funcs[f], inst, &body);
            size[f] = grown;
        }
    }
    // Keep the entry and whatever is reachable through function addresses.
    let mut keep = vec![false; n];
    keep[0] = true;
    let mut work = vec![0];
    while let Some(f) = work.pop() {
        for i in funcs[f].insts() {
            if let Some(r) = funcs[f].dfg.inst(i).func_ref() {
                if r.index() < n && !keep[r.index()] {
                    keep[r.index()] = true;
                    work.push(r.index());
                }
            }
        }
    }
    let mut new_index = vec![usize::MAX; n];
    let mut next = 0;
    for (i, k) in keep.iter().enumerate() {
        if *k {
            new_index[i] = next;
            next += 1;
        }
    }
    let old = std::mem::take(funcs);
    for (i, mut f) in old.into_iter().enumerate() {
        if keep[i] {
            remap_func_refs(&mut f, &|r| FuncRef::new(new_index[r.index()]));
            funcs.push(f);
        }
    }
    Ok(())
}

fn callees(func: &Function) -> Vec<usize> {
    calls_in(func).into_iter().map(|(_, f)| f.index()).collect()
}

/// Replaces `call` (in `caller`) by a copy of `callee`'s body.
fn inline_one(caller: &mut Function, call: Inst, callee: &Function) {
    let InstructionData::Call { args, .. } = caller.dfg.inst(call).clone() else {
        return;
    };
    let Some(call_block) = caller.layout.inst_block(call) else {
        return;
    };
    let Some(callee_entry) = callee.entry_block() else {
        return;
    };
    let call_loc = caller.srclocs[call];
    // The continuation: everything after the call, taking the return value as a parameter.
    let cont = caller.dfg.make_block();
    caller.layout.insert_block_after(cont, call_block);
    if let Some(next) = caller.layout.next_inst(call) {
        caller.layout.split_block(cont, next);
    }
    let ret = caller.dfg.append_block_param(cont, Type::I64);
    if let Some(result) = caller.dfg.inst_result(call) {
        caller.dfg.replace_uses(result, ret);
    }
    caller.remove_inst(call);
    // Entities of the copy.
    let mut slots: HashMap<StackSlot, StackSlot> = HashMap::new();
    for (ss, data) in callee.stack_slots.iter() {
        slots.insert(ss, caller.create_stack_slot(data.size));
    }
    let mut blocks: HashMap<Block, Block> = HashMap::new();
    let mut values: HashMap<Value, Value> = HashMap::new();
    for (v, a) in callee.dfg.block_params(callee_entry).iter().zip(&args) {
        values.insert(*v, *a);
    }
    let mut after = call_block;
    for blk in callee.layout.blocks() {
        let nb = caller.dfg.make_block();
        caller.layout.insert_block_after(nb, after);
        after = nb;
        blocks.insert(blk, nb);
        if blk != callee_entry {
            for &p in callee.dfg.block_params(blk) {
                let np = caller.dfg.append_block_param(nb, callee.dfg.value_type(p));
                values.insert(p, np);
            }
        }
    }
    // Copy instructions first, then rewrite their operands, because a use may come before its
    // definition in layout order.
    let mut copies = Vec::new();
    for blk in callee.layout.blocks() {
        for inst in callee.layout.block_insts(blk) {
            let ni = caller.dfg.make_inst(callee.dfg.inst(inst).clone());
            caller.layout.append_inst(ni, blocks[&blk]);
            caller.srclocs[ni] = callee.srclocs[inst];
            if let (Some(old), Some(new)) =
                (callee.dfg.inst_result(inst), caller.dfg.inst_result(ni))
            {
                values.insert(old, new);
            }
            copies.push(ni);
        }
    }
    for ni in copies {
        let mut data = caller.dfg.inst(ni).clone();
        data.map_args(|v| values.get(&v).copied().unwrap_or(v));
        for d in data.branch_destinations_mut() {
            d.block = blocks.get(&d.block).copied().unwrap_or(d.block);
        }
        match &mut data {
            InstructionData::StackAddr { slot, .. } => *slot = slots[slot],
            InstructionData::Load { region, .. }
            | InstructionData::Store { region, .. }
            | InstructionData::Atomic { region, .. }
            | InstructionData::CmpXchg { region, .. } => {
                if let Region::Stack(ss) = region {
                    *ss = slots[ss];
                }
            }
            _ => {}
        }
        if let InstructionData::Return { value } = data {
            data = InstructionData::Jump {
                dest: BlockCall::new(cont, vec![value]),
            };
        }
        caller.dfg.replace_inst(ni, data);
    }
    // The call's block now jumps into the copy.
    let jump = caller.dfg.make_inst(InstructionData::Jump {
        dest: BlockCall::new(blocks[&callee_entry], Vec::new()),
    });
    caller.layout.append_inst(jump, call_block);
    caller.srclocs[jump] = call_loc;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IR text of `fn0` calling `fn1` twice, `fn1` calling `fn2` twice, and so on down to a
    /// leaf `fn{depth}`.
    fn doubling_chain(depth: usize) -> Vec<Function> {
        let mut text = String::new();
        for i in 0..depth {
            let n = i + 1;
            text.push_str(&format!(
                "function fn{i} %f{i}(i64) {{\nblock0(v0: i64):\n    v1 = call fn{n}(v0)\n    \
                 v2 = call fn{n}(v1)\n    return v2\n}}\n"
            ));
        }
        text.push_str(&format!(
            "function fn{depth} %f{depth}(i64) {{\nblock0(v0: i64):\n    return v0\n}}\n"
        ));
        let module = ir::parse::parse_module(&text).expect("parses");
        module.functions.values().cloned().collect()
    }

    /// Forty levels would be 2^40 copies of the leaf if nothing stopped it; the size check
    /// refuses it before the copies are made, naming the function.
    #[test]
    fn a_doubling_call_chain_is_refused_before_it_grows() {
        let mut funcs = doubling_chain(40);
        let err = inline_calls(&mut funcs).expect_err("refused");
        assert!(err.contains("more than 1000000 IR instructions"), "{err}");
    }

    /// A short chain still inlines completely: one function with no call left.
    #[test]
    fn a_short_doubling_chain_inlines_completely() {
        let mut funcs = doubling_chain(5);
        inline_calls(&mut funcs).expect("inlines");
        assert_eq!(funcs.len(), 1);
        assert!(calls_in(&funcs[0]).is_empty());
    }
}
