//! One test per verifier invariant (numbered as in `ir::verifier`'s module doc): each builds a
//! function or module that breaks exactly that invariant and checks that the verifier names it.

use cranelift_entity::EntityRef;
use ir::builder::FunctionBuilder;
use ir::function::{Function, MapDecl, Module, SrcLoc};
use ir::instructions::{AtomicOp, BinaryOp, InstructionData, Region, UnaryOp};
use ir::parse::{parse_function, parse_module};
use ir::semantics::{ByteOrder, JmpCond, Width};
use ir::types::{MemSize, Type};
use ir::verifier::{verify_function, verify_module, Location};
use ir::{Block, FuncRef, Inst, MapRef, StackSlot};

/// Parses a function, verifies it, and asserts that some error message contains `needle`.
fn fn_error(text: &str, needle: &str) {
    let f = parse_function(text).unwrap_or_else(|e| panic!("{e}"));
    check(verify_function(&f), needle);
}

fn module_error(text: &str, needle: &str) {
    let m = parse_module(text).unwrap_or_else(|e| panic!("{e}"));
    check(verify_module(&m), needle);
}

fn check(result: Result<(), ir::verifier::VerifierErrors>, needle: &str) {
    let errors = result.expect_err("the verifier accepted a broken function");
    let text = errors.to_string();
    assert!(text.contains(needle), "expected `{needle}` in:\n{text}");
}

/// A valid function, edited by `edit`, verified.
fn built(edit: impl FnOnce(&mut FunctionBuilder, Block, ir::Value)) -> Function {
    let mut f = Function::new("f", vec![Type::I64]);
    let mut b = FunctionBuilder::new(&mut f);
    let entry = b.create_block();
    b.switch_to_block(entry);
    let ctx = b.append_entry_params(entry)[0];
    edit(&mut b, entry, ctx);
    f
}

#[test]
fn valid_functions_pass() {
    let f = built(|b, _, ctx| {
        b.ret(ctx);
    });
    verify_function(&f).unwrap();
}

// ---- 1. Entry ----

#[test]
fn entry_params_must_match_function_params() {
    fn_error(
        "function %f(i64, i64) {\nblock0(v0: i64):\n return v0\n}",
        "do not match the function parameters",
    );
    fn_error(
        "function %f(i64) {\nblock0(v0: i8):\n v1 = iconst 0\n return v1\n}",
        "entry block parameters (i8)",
    );
}

#[test]
fn entry_block_is_not_a_branch_target() {
    fn_error(
        "function %f() {\nblock0:\n jump block1\nblock1:\n jump block0\n}",
        "branch to the entry block",
    );
}

#[test]
fn function_needs_a_block() {
    fn_error("function %f() {\n}", "function has no blocks");
}

// ---- 2. Layout ----

#[test]
fn layout_blocks_must_exist_in_the_dfg() {
    let mut f = built(|b, _, ctx| {
        b.ret(ctx);
    });
    f.layout.append_block(Block::new(7));
    check(
        verify_function(&f),
        "block7: block is in the layout but not in the DFG",
    );
}

#[test]
fn layout_insts_must_exist_in_the_dfg() {
    let mut f = built(|b, _, ctx| {
        b.ret(ctx);
    });
    let entry = f.entry_block().unwrap();
    let first = f.layout.first_inst(entry).unwrap();
    f.layout.insert_inst_before(Inst::new(40), first);
    check(
        verify_function(&f),
        "inst40: instruction is in the layout but not in the DFG",
    );
}

/// An instruction cannot be in two blocks: the layout has one node per instruction and
/// refuses to place an instruction that is already placed.
#[test]
#[should_panic(expected = "already in a block")]
fn an_instruction_cannot_be_in_two_blocks() {
    let mut f = built(|b, _, ctx| {
        b.ret(ctx);
    });
    let entry = f.entry_block().unwrap();
    let other = f.dfg.make_block();
    f.layout.append_block(other);
    let ret = f.layout.first_inst(entry).unwrap();
    f.layout.append_inst(ret, other);
}

// ---- 3. Terminators ----

#[test]
fn blocks_end_in_a_terminator() {
    fn_error(
        "function %f() {\nblock0:\n v0 = iconst 1\n}",
        "block does not end in a terminator",
    );
}

#[test]
fn terminators_only_end_blocks() {
    fn_error(
        "function %f() {\nblock0:\n v0 = iconst 1\n return v0\n return v0\n}",
        "terminator in the middle of a block",
    );
}

#[test]
fn blocks_are_not_empty() {
    fn_error(
        "function %f() {\nblock0:\n jump block1\nblock1:\n}",
        "block1: block is empty",
    );
}

// ---- 4. Definitions ----

#[test]
fn results_match_their_opcode() {
    let mut f = built(|b, _, ctx| {
        b.iconst(5);
        b.store(Region::Any, MemSize::U8, ctx, 0, ctx);
        b.ret(ctx);
    });
    let entry = f.entry_block().unwrap();
    let insts: Vec<_> = f.layout.block_insts(entry).collect();
    // Swap the data of the constant and the store without touching their results.
    let c = f.dfg.inst(insts[0]).clone();
    let s = f.dfg.inst(insts[1]).clone();
    *f.dfg.inst_mut(insts[0]) = s;
    *f.dfg.inst_mut(insts[1]) = c;
    check(
        verify_function(&f),
        "instruction defines no value, but v1 is attached",
    );
    check(verify_function(&f), "instruction must define a value");
}

/// Removing a block parameter detaches its value and leaves the branches that still pass it
/// for the verifier to report.
#[test]
fn removed_parameters_are_detached_and_reported() {
    let mut f = built(|b, entry, _| {
        let next = b.create_block();
        let v = b.iconst(1);
        b.jump(next, &[v]);
        b.switch_to_block(next);
        b.append_block_param(next, Type::I64);
        b.ret(v);
        let _ = entry;
    });
    let p = f.dfg.block_params(Block::new(1))[0];
    f.dfg.remove_block_param(Block::new(1), 0);
    check(verify_function(&f), "block1 takes 0 arguments, 1 given");
    assert_eq!(f.dfg.value_def(p), ir::ValueDef::Detached);
}

// ---- 5. Dominance ----

#[test]
fn uses_follow_definitions_in_a_block() {
    fn_error(
        "function %f() {\nblock0:\n v1 = add.w64 v0, v0\n v0 = iconst 1\n return v1\n}",
        "operand v0 (defined by inst1 in block0) does not dominate this use",
    );
}

#[test]
fn uses_are_dominated_across_blocks() {
    fn_error(
        "function %f(i64) {\nblock0(v0: i64):\n brif eq.w64 v0, v0, block1, block2\nblock1:\n v1 = iconst 1\n jump block3\nblock2:\n jump block3\nblock3:\n return v1\n}",
        "operand v1 (defined by inst1 in block1) does not dominate this use",
    );
    fn_error(
        "function %f(i64) {\nblock0(v0: i64):\n brif eq.w64 v0, v0, block1(v0), block2\nblock1(v1: i64):\n jump block2\nblock2:\n return v1\n}",
        "operand v1 (parameter of block1) does not dominate this use",
    );
}

#[test]
fn loops_may_use_values_from_dominating_headers() {
    let f = parse_function(
        "function %f(i64) {\nblock0(v0: i64):\n jump block1(v0)\nblock1(v1: i64):\n v2 = iconst 1\n v3 = sub.w64 v1, v2\n brif ne.w64 v3, v2, block2, block3\nblock2:\n jump block1(v3)\nblock3:\n return v3\n}",
    )
    .unwrap();
    verify_function(&f).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn uses_of_removed_instructions_are_caught() {
    let mut f = built(|b, _, ctx| {
        let one = b.iconst(1);
        let sum = b.binary(BinaryOp::Add, Width::W64, ctx, one);
        b.ret(sum);
    });
    let entry = f.entry_block().unwrap();
    let konst = f.layout.first_inst(entry).unwrap();
    f.remove_inst(konst);
    check(
        verify_function(&f),
        "operand v1 is defined by inst0, which is not in the layout",
    );
    let mut g = built(|b, _, ctx| {
        let one = b.iconst(1);
        b.ret(one);
        let _ = ctx;
    });
    let entry = g.entry_block().unwrap();
    let konst = g.layout.first_inst(entry).unwrap();
    g.dfg.detach_result(konst);
    check(verify_function(&g), "operand v1 has no definition");
}

#[test]
fn unreachable_blocks_are_allowed() {
    let f = parse_function(
        "function %f() {\nblock0:\n v0 = iconst 0\n return v0\nblock1:\n v1 = iconst 1\n jump block2(v1)\nblock2(v2: i64):\n return v2\n}",
    )
    .unwrap();
    verify_function(&f).unwrap_or_else(|e| panic!("{e}"));
}

// ---- 6. Branches ----

#[test]
fn branch_argument_counts_match() {
    fn_error(
        "function %f() {\nblock0:\n v0 = iconst 0\n jump block1(v0, v0)\nblock1(v1: i64):\n return v1\n}",
        "block1 takes 1 arguments, 2 given",
    );
}

#[test]
fn branch_argument_types_match() {
    fn_error(
        "function %f() {\nblock0:\n v0 = iconst 0\n jump block1(v0)\nblock1(v1: i32):\n return v0\n}",
        "argument v0 has type i64 but parameter v1 of block1 has type i32",
    );
}

#[test]
fn branch_destinations_are_in_the_layout() {
    let mut f = built(|b, _, ctx| {
        let next = b.create_block();
        b.jump(next, &[]);
        b.switch_to_block(next);
        b.ret(ctx);
    });
    f.layout.remove_block(Block::new(1));
    check(
        verify_function(&f),
        "destination block1 is not in the layout",
    );
}

// ---- 7. Operand types ----

#[test]
fn operands_are_i64() {
    fn_error(
        "function %f() {\nblock0:\n v0 = iconst 0\n jump block1(v0)\nblock1(v1: i32):\n v2 = add.w64 v1, v0\n return v2\n}",
        "operand v1 has type i32, not i64",
    );
}

// ---- 8. Operations ----

#[test]
fn byte_swaps_are_16_32_or_64_bits() {
    let f = built(|b, _, ctx| {
        let v = b.endian(ByteOrder::ToBe, 8, ctx);
        b.ret(v);
    });
    check(verify_function(&f), "byte swap of 8 bits");
}

#[test]
fn movsx32_is_64_bit_only() {
    fn_error(
        "function %f(i64) {\nblock0(v0: i64):\n v1 = movsx32.w32 v0\n return v1\n}",
        "movsx32 exists only at 64 bits",
    );
}

#[test]
fn sign_extending_loads_are_narrow() {
    fn_error(
        "function %f(i64) {\nblock0(v0: i64):\n v1 = load.any.u64.sx v0+0\n return v1\n}",
        "sign-extending load of 64 bits",
    );
}

#[test]
fn atomics_are_32_or_64_bits() {
    fn_error(
        "function %f(i64) {\nblock0(v0: i64):\n atomic.any.u16 add v0+0, v0\n return v0\n}",
        "atomic access of 16 bits",
    );
    fn_error(
        "function %f(i64) {\nblock0(v0: i64):\n v1 = cmpxchg.any.u8 v0+0, v0, v0\n return v1\n}",
        "atomic access of 8 bits",
    );
}

#[test]
fn atomics_avoid_packet_and_context() {
    fn_error(
        "function %f(i64) {\nblock0(v0: i64):\n atomic.packet.u32 add v0+0, v0\n return v0\n}",
        "atomic access to packet",
    );
    fn_error(
        "function %f(i64) {\nblock0(v0: i64):\n v1 = cmpxchg.ctx.u64 v0+0, v0, v0\n return v1\n}",
        "atomic access to ctx",
    );
}

#[test]
fn xchg_fetches() {
    let f = built(|b, _, ctx| {
        b.atomic(
            Region::Any,
            MemSize::U64,
            AtomicOp::Xchg,
            false,
            ctx,
            0,
            ctx,
        );
        b.ret(ctx);
    });
    check(verify_function(&f), "xchg always fetches");
}

#[test]
fn calls_pass_at_most_five_arguments() {
    fn_error(
        "function %f(i64) {\nblock0(v0: i64):\n v1 = call_helper 1(v0, v0, v0, v0, v0, v0)\n return v1\n}",
        "6 call arguments (at most 5)",
    );
}

// ---- 9. Stack slots ----

#[test]
fn stack_slots_must_be_declared() {
    let f = built(|b, _, ctx| {
        let a = b.stack_addr(StackSlot::new(3), 0);
        b.store(Region::Stack(StackSlot::new(4)), MemSize::U8, ctx, 0, a);
        b.ret(a);
    });
    check(verify_function(&f), "stack slot ss3 is not declared");
    check(verify_function(&f), "stack slot ss4 is not declared");
}

#[test]
fn stack_slots_have_a_sane_size() {
    fn_error(
        "function %f() {\n ss0 = stack 0\n ss1 = stack 513\nblock0:\n v0 = iconst 0\n return v0\n}",
        "ss0: size 0 is not between 1 and 512",
    );
    fn_error(
        "function %f() {\n ss0 = stack 513\nblock0:\n v0 = iconst 0\n return v0\n}",
        "size 513",
    );
}

#[test]
fn stack_addresses_point_into_their_slot() {
    fn_error(
        "function %f() {\n ss0 = stack 8\nblock0:\n v0 = stack_addr ss0+9\n return v0\n}",
        "offset 9 is outside the 8-byte slot ss0",
    );
}

#[test]
fn stack_accesses_stay_in_their_slot() {
    fn_error(
        "function %f() {\n ss0 = stack 8\nblock0:\n v0 = stack_addr ss0+8\n v1 = load.stack(ss0).u32 v0-2\n return v1\n}",
        "access of 4 bytes at 6 is outside the 8-byte slot ss0",
    );
    fn_error(
        "function %f() {\n ss0 = stack 8\n ss1 = stack 8\nblock0:\n v0 = stack_addr ss1+0\n v1 = load.stack(ss0).u32 v0+0\n return v1\n}",
        "stack(ss0) access through an address of ss1",
    );
}

// ---- 10. Module: every function, unique names ----

#[test]
fn module_reports_function_errors_and_duplicate_names() {
    module_error(
        "function %f() {\nblock0:\n v0 = iconst 0\n return v0\n}\nfunction %f() {\nblock0:\n v0 = iconst 0\n}",
        "fn1 has the same name as fn0",
    );
    module_error(
        "function %f() {\nblock0:\n v0 = iconst 0\n}",
        "function %f: block0: block does not end in a terminator",
    );
}

// ---- 11. References ----

#[test]
fn referenced_maps_and_functions_exist() {
    let mut m = Module::new();
    let f = built(|b, _, ctx| {
        let r = b.map_ref(MapRef::new(2));
        let v = b.load(
            Region::MapValue(Some(MapRef::new(3))),
            MemSize::U8,
            false,
            r,
            0,
        );
        let c = b.call(FuncRef::new(5), &[v]);
        b.ret(c);
        let _ = ctx;
    });
    m.add_function(f);
    check(verify_module(&m), "map2 does not exist");
    check(verify_module(&m), "map3 does not exist");
    check(verify_module(&m), "fn5 does not exist");
}

// ---- 12. Calls ----

#[test]
fn calls_match_the_callee() {
    module_error(
        "function fn0 %f(i64) {\nblock0(v0: i64):\n v1 = call fn1(v0)\n return v1\n}\nfunction fn1 %g(i64, i64) {\nblock0(v0: i64, v1: i64):\n return v1\n}",
        "fn1 takes 2 arguments, 1 given",
    );
}

#[test]
fn tail_calls_use_a_program_array() {
    module_error(
        "map0 = map \"h\" type 1 key 4 value 4 max 1\nfunction %f(i64) {\nblock0(v0: i64):\n tail_call v0, map0, v0\n return v0\n}",
        "map0 is not a program array",
    );
}

// ---- 13. Global data ----

#[test]
fn global_accesses_stay_in_the_value() {
    module_error(
        "map0 = map \".data\" type 2 key 4 value 8 max 1\nfunction %f() {\nblock0:\n v0 = map_value_addr map0+4\n v1 = load.global(map0).u64 v0+0\n return v1\n}",
        "access of 8 bytes at 4 is outside the 8-byte value of map0",
    );
    module_error(
        "map0 = map \".data\" type 2 key 4 value 8 max 1\nfunction %f() {\nblock0:\n v0 = map_value_addr map0+12\n return v0\n}",
        "offset 12 is outside the 8-byte value of map0",
    );
    module_error(
        "map0 = map \".data\" type 2 key 4 value 8 max 1\nmap1 = map \".bss\" type 2 key 4 value 8 max 1\nfunction %f() {\nblock0:\n v0 = map_value_addr map1+0\n v1 = load.global(map0).u8 v0+0\n return v1\n}",
        "global(map0) access through an address of map1",
    );
}

#[test]
fn initial_data_is_one_value_long() {
    let mut m = Module::new();
    let mut d = MapDecl::new(".data", 2, 4, 8, 1);
    d.data = Some(vec![1, 2, 3]);
    m.add_map(d);
    check(
        verify_module(&m),
        "map0: initial data is 3 bytes but the value is 8 bytes",
    );
}

// ---- 14. Programs ----

#[test]
fn program_entries_are_sound() {
    let mut m = Module::new();
    let f = m.add_function(built(|b, _, ctx| {
        b.ret(ctx);
    }));
    m.add_program(f, "xdp");
    m.add_program(f, "");
    m.add_program(FuncRef::new(9), "xdp");
    check(verify_module(&m), "program entry 1: empty program kind");
    check(verify_module(&m), "fn0 is listed as a program twice");
    check(verify_module(&m), "program entry 2: fn9 does not exist");
}

// ---- 15. Source lines ----

#[test]
fn source_lines_are_in_the_table() {
    let mut m = Module::new();
    m.add_function(built(|b, _, ctx| {
        b.set_srcloc(SrcLoc::with_line(3, 0));
        b.ret(ctx);
    }));
    check(
        verify_module(&m),
        "source line 0 is not in the line table (0 lines)",
    );
}

// ---- Reporting ----

#[test]
fn every_error_is_reported_with_its_instruction() {
    let f = built(|b, _, ctx| {
        let v = b.unary(UnaryOp::MovSx32, Width::W32, ctx);
        let w = b.load(Region::Any, MemSize::U64, true, v, 0);
        let next = b.create_block();
        b.brif(JmpCond::Eq, Width::W64, v, w, next, &[w], next, &[]);
        b.switch_to_block(next);
        b.ret(w);
    });
    let errors = verify_function(&f).unwrap_err();
    assert_eq!(errors.len(), 3, "{errors}");
    let first = &errors.0[0];
    assert_eq!(first.function.as_deref(), Some("f"));
    assert_eq!(first.location, Location::Inst(Inst::new(0)));
    assert_eq!(
        first.to_string(),
        "function %f: inst0 (v1 = movsx32.w32 v0): movsx32 exists only at 64 bits (use mov.w32)"
    );
    // The data of an instruction, not only its opcode, is in the message.
    assert!(matches!(
        f.dfg.inst(Inst::new(0)),
        InstructionData::Unary { .. }
    ));
}
