//! Tests of the whole optimizer on functions: the verifier accepts the result, the result
//! computes the same as the input (checked with a small evaluator of pure IR), and the
//! expected simplifications happen.

use super::*;
use ir::function::Function;
use ir::instructions::InstructionData;
use ir::semantics::{self, Width};
use ir::{BinaryOp, Module, UnaryOp, Value};
use proptest::prelude::*;
use std::collections::HashMap;

/// Runs a function made of pure instructions and branches on `args`. `None` when it uses an
/// instruction the evaluator does not model or runs too long.
fn eval(func: &Function, args: &[u64]) -> Option<u64> {
    let mut env: HashMap<Value, u64> = HashMap::new();
    let mut block = func.entry_block()?;
    let mut incoming: Vec<u64> = args.to_vec();
    for _ in 0..1000 {
        for (p, v) in func.dfg.block_params(block).iter().zip(&incoming) {
            env.insert(*p, *v);
        }
        let mut next = None;
        for inst in func.layout.block_insts(block) {
            let get = |v: &Value| env.get(v).copied();
            let result = match func.dfg.inst(inst) {
                InstructionData::Iconst { imm } => *imm as u64,
                InstructionData::Binary { op, width, args } => {
                    semantics::alu(op.alu_op(), *width, get(&args[0])?, get(&args[1])?)
                }
                InstructionData::Unary { op, width, arg } => op.eval(*width, get(arg)?),
                InstructionData::Endian { order, bits, arg } => {
                    semantics::byte_order(*order, *bits as u32, get(arg)?)
                }
                InstructionData::Return { value } => return get(value),
                InstructionData::Jump { dest } => {
                    let vals: Option<Vec<u64>> = dest.args.iter().map(get).collect();
                    next = Some((dest.block, vals?));
                    break;
                }
                InstructionData::Brif {
                    cond,
                    width,
                    args,
                    dests,
                } => {
                    let taken = semantics::compare(*cond, *width, get(&args[0])?, get(&args[1])?);
                    let dest = &dests[if taken { 0 } else { 1 }];
                    let vals: Option<Vec<u64>> = dest.args.iter().map(get).collect();
                    next = Some((dest.block, vals?));
                    break;
                }
                _ => return None,
            };
            env.insert(func.dfg.inst_result(inst)?, result);
        }
        let (b, vals) = next?;
        block = b;
        incoming = vals;
    }
    None
}

fn parse(text: &str) -> Module {
    let module = ir::parse::parse_module(text).unwrap_or_else(|e| panic!("bad test IR: {e}"));
    ir::verifier::verify_module(&module).unwrap_or_else(|e| panic!("test IR invalid: {e}"));
    module
}

fn pure_count(module: &Module) -> usize {
    module
        .functions
        .values()
        .flat_map(|f| f.insts().map(move |i| f.dfg.inst(i)))
        .filter(|d| rebuild::is_egraph_pure(d))
        .count()
}

/// Optimizes a copy of `module` for `target`, checks the verifier and the evaluator on
/// `inputs`, and returns the optimized module.
fn optimize_checked(
    module: &Module,
    target: CostTarget,
    inputs: &[Vec<u64>],
) -> (Module, EgraphStats) {
    let mut out = module.clone();
    let stats = optimize_module(&mut out, target, &RunnerLimits::default());
    assert_eq!(stats.rule_error, None);
    if let Err(e) = ir::verifier::verify_module(&out) {
        panic!(
            "invalid IR after the e-graph ({target:?}): {e}\nbefore:\n{}\nafter:\n{}",
            ir::write::module_to_string(module),
            ir::write::module_to_string(&out)
        );
    }
    for (fref, func) in module.functions.iter() {
        for args in inputs {
            let before = eval(func, args);
            let after = eval(&out.functions[fref], args);
            assert_eq!(
                before,
                after,
                "{target:?} changed the result on {args:x?}\nbefore:\n{}\nafter:\n{}",
                ir::write::module_to_string(module),
                ir::write::module_to_string(&out)
            );
        }
    }
    (out, stats)
}

fn sample_inputs() -> Vec<Vec<u64>> {
    let edges = [
        0u64,
        1,
        3,
        0xff,
        0xffff_ffff,
        0x8000_0000,
        u64::MAX,
        i64::MIN as u64,
        0x1234_5678_9abc_def0,
    ];
    let mut out = Vec::new();
    for &a in &edges {
        for &b in &edges {
            out.push(vec![a, b]);
        }
    }
    out
}

const MUL_ADD: &str = "
function %f(i64, i64) {
block0(v0: i64, v1: i64):
    v2 = iconst 8 @1
    v3 = mul.w64 v0, v2 @2
    v4 = iconst 0 @3
    v5 = add.w64 v3, v4 @4
    return v5 @5
}
";

#[test]
fn multiplication_by_eight_becomes_a_shift_and_add_zero_disappears() {
    let module = parse(MUL_ADD);
    for target in CostTarget::ALL {
        let (out, stats) = optimize_checked(&module, target, &sample_inputs());
        let text = ir::write::module_to_string(&out);
        assert!(text.contains("lsh.w64 v0,"), "{target:?}:\n{text}");
        assert!(!text.contains("add.w64"), "{target:?}:\n{text}");
        assert!(!text.contains("mul.w64"), "{target:?}:\n{text}");
        assert_eq!(stats.blocks_rewritten, 1);
        assert_eq!((stats.pure_before, stats.pure_after), (4, 2));
        // The shift reuses the multiply's instruction, so it keeps its location.
        assert!(
            text.contains("lsh.w64 v0, ") && text.contains("@2"),
            "{text}"
        );
    }
}

#[test]
fn address_chains_fold_to_one_offset() {
    let module = parse(
        "
function %f(i64, i64) {
block0(v0: i64, v1: i64):
    v2 = iconst 14
    v3 = add.w64 v0, v2
    v4 = iconst 20
    v5 = add.w64 v3, v4
    v6 = iconst 2
    v7 = sub.w64 v5, v6
    return v7
}
",
    );
    let (out, _) = optimize_checked(&module, CostTarget::BpfInsnCount, &sample_inputs());
    let text = ir::write::module_to_string(&out);
    assert!(text.contains("iconst 32"), "{text}");
    assert_eq!(pure_count(&out), 2, "{text}");
}

#[test]
fn values_used_in_other_blocks_stay_defined_and_constants_cross_blocks() {
    let module = parse(
        "
function %f(i64, i64) {
block0(v0: i64, v1: i64):
    v2 = iconst 4
    v3 = mov.w32 v0
    v4 = mov.w32 v3
    v5 = lsh.w64 v4, v2
    brif gt.w64 v0, v1, block1, block2(v5)
block1:
    v6 = add.w64 v5, v2
    v7 = mul.w64 v6, v2
    return v7
block2(v8: i64):
    v9 = add.w64 v8, v4
    return v9
}
",
    );
    for target in CostTarget::ALL {
        let (out, stats) = optimize_checked(&module, target, &sample_inputs());
        assert!(stats.blocks_rewritten >= 1, "{target:?}: {stats:?}");
        let text = ir::write::module_to_string(&out);
        // The double zero extension is one.
        assert_eq!(text.matches("mov.w32").count(), 1, "{target:?}:\n{text}");
    }
}

#[test]
fn a_second_run_changes_nothing() {
    let module = parse(MUL_ADD);
    for target in CostTarget::ALL {
        let (mut out, _) = optimize_checked(&module, target, &sample_inputs());
        let once = ir::write::module_to_string(&out);
        let stats = optimize_module(&mut out, target, &RunnerLimits::default());
        assert!(!stats.changed(), "{target:?}: {stats:?}");
        assert_eq!(ir::write::module_to_string(&out), once);
    }
}

#[test]
fn skeleton_order_is_kept_and_leaves_are_respected() {
    // The load and the helper call stay in order; the arithmetic on the load's result cannot
    // move above the load.
    let module = parse(
        "
function %f(i64) {
block0(v0: i64):
    v1 = load.ctx.u32 v0+0
    v2 = iconst 0
    v3 = add.w64 v1, v2
    v4 = mov.w32 v3
    v5 = call_helper 5()
    v6 = add.w64 v4, v5
    return v6
}
",
    );
    let mut out = module.clone();
    let stats = optimize_module(&mut out, CostTarget::BpfInsnCount, &RunnerLimits::default());
    ir::verifier::verify_module(&out).unwrap_or_else(|e| panic!("{e}"));
    let text = ir::write::module_to_string(&out);
    // `mov.w32` of a u32 load is the load itself, and `+ 0` disappears.
    assert!(text.contains("add.w64 v1, v5"), "{text}\n{stats:?}");
    assert!(text.find("load.ctx").unwrap() < text.find("call_helper").unwrap());
}

#[test]
fn pass_reports_to_the_context() {
    let mut module = parse(MUL_ADD);
    let mut ctx = PassContext::new(crate::pass::Target::Nfp);
    let mut pass = EgraphOptimizer::default();
    assert!(pass.run(&mut module, &mut ctx).unwrap());
    assert_eq!(ctx.stats.get("egraph.blocks_rewritten"), 1);
    assert_eq!(ctx.stats.get("egraph.pure_before"), 4);
    assert_eq!(ctx.stats.get("egraph.pure_after"), 2);
    assert!(!pass.run(&mut module, &mut ctx).unwrap());
}

/// One random pure instruction: an operator of the language over earlier values.
#[derive(Clone, Debug)]
enum RandomInst {
    Const(i64),
    /// A binary operation whose right operand is an earlier value or a fresh constant.
    Binary(BinaryOp, Width, usize, Result<usize, i64>),
    Unary(UnaryOp, Width, usize),
    Endian(ir::semantics::ByteOrder, u8, usize),
}

fn random_inst() -> impl Strategy<Value = RandomInst> {
    let width = prop_oneof![Just(Width::W32), Just(Width::W64)];
    let constant = || {
        prop_oneof![
            3 => proptest::sample::select(vec![
                0i64,
                1,
                -1,
                2,
                3,
                7,
                8,
                16,
                31,
                32,
                63,
                64,
                255,
                0xffff,
                0xffff_ffff,
                i64::MIN
            ]),
            1 => any::<i64>(),
        ]
    };
    let operand = prop_oneof![any::<usize>().prop_map(Ok), constant().prop_map(Err)];
    prop_oneof![
        constant().prop_map(RandomInst::Const),
        (
            proptest::sample::select(BinaryOp::ALL.to_vec()),
            width.clone(),
            any::<usize>(),
            operand
        )
            .prop_map(|(op, w, a, b)| RandomInst::Binary(op, w, a, b)),
        (
            proptest::sample::select(UnaryOp::ALL.to_vec()),
            width,
            any::<usize>()
        )
            .prop_filter_map("movsx32 exists only at 64 bits", |(op, w, a)| (!(op
                == UnaryOp::MovSx32
                && w == Width::W32))
                .then_some(RandomInst::Unary(op, w, a))),
        (
            proptest::sample::select(vec![
                ir::semantics::ByteOrder::ToLe,
                ir::semantics::ByteOrder::ToBe,
                ir::semantics::ByteOrder::Swap
            ]),
            proptest::sample::select(vec![16u8, 32, 64]),
            any::<usize>()
        )
            .prop_map(|(o, b, a)| RandomInst::Endian(o, b, a)),
    ]
}

/// A two-block function: block0 computes `first`, branches on two of its values, and block1
/// computes `second` from block0's values and returns a mix of both blocks' values.
fn build_random(first: &[RandomInst], second: &[RandomInst]) -> Module {
    use ir::builder::FunctionBuilder;
    let mut func = Function::new("random", vec![ir::Type::I64, ir::Type::I64]);
    let mut b = FunctionBuilder::new(&mut func);
    let entry = b.create_block();
    let next = b.create_block();
    let other = b.create_block();
    b.switch_to_block(entry);
    let mut values = b.append_entry_params(entry);
    fn emit(b: &mut FunctionBuilder, values: &mut Vec<Value>, inst: &RandomInst) {
        let pick = |i: usize| values[i % values.len()];
        let v = match *inst {
            RandomInst::Const(c) => b.iconst(c),
            RandomInst::Binary(op, w, x, y) => {
                let rhs = match y {
                    Ok(i) => pick(i),
                    Err(c) => b.iconst(c),
                };
                b.binary(op, w, pick(x), rhs)
            }
            RandomInst::Unary(op, w, x) => b.unary(op, w, pick(x)),
            RandomInst::Endian(o, bits, x) => b.endian(o, bits, pick(x)),
        };
        values.push(v);
    }
    for (i, inst) in first.iter().enumerate() {
        b.set_srcloc(ir::SrcLoc::new(i as u32));
        emit(&mut b, &mut values, inst);
    }
    let n = values.len();
    let (x, y) = (values[n - 1], values[n / 2]);
    b.brif(
        semantics::JmpCond::Gt,
        Width::W64,
        x,
        y,
        next,
        &[],
        other,
        &[x],
    );
    b.switch_to_block(other);
    let p = b.append_block_param(other, ir::Type::I64);
    b.ret(p);
    b.switch_to_block(next);
    for (i, inst) in second.iter().enumerate() {
        b.set_srcloc(ir::SrcLoc::new(100 + i as u32));
        emit(&mut b, &mut values, inst);
    }
    let last = *values.last().unwrap();
    let mixed = b.binary(BinaryOp::Xor, Width::W64, last, values[n / 3]);
    b.ret(mixed);
    let mut module = Module::new();
    module.add_function(func);
    module
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Random pure functions keep their meaning and verify after optimization for every
    /// target.
    #[test]
    fn random_functions_keep_their_meaning(
        first in proptest::collection::vec(random_inst(), 1..14),
        second in proptest::collection::vec(random_inst(), 0..8),
        inputs in proptest::collection::vec((any::<u64>(), any::<u64>()), 4),
    ) {
        let module = build_random(&first, &second);
        ir::verifier::verify_module(&module).unwrap();
        let mut all_inputs: Vec<Vec<u64>> = inputs.iter().map(|&(a, b)| vec![a, b]).collect();
        all_inputs.extend(sample_inputs().into_iter().take(20));
        for target in CostTarget::ALL {
            optimize_checked(&module, target, &all_inputs);
        }
    }
}

/// A function whose blocks would together build more e-nodes than
/// `RunnerLimits::function_nodes` allows: the first block is optimized, the others are left as
/// they are and counted as skipped, and the function still verifies and computes the same.
#[test]
fn the_function_budget_leaves_later_blocks_alone() {
    let text = "
function %f(i64) {
block0(v0: i64):
    v1 = iconst 3
    v2 = add.w64 v0, v1
    v3 = add.w64 v2, v1
    jump block1(v3)
block1(v4: i64):
    v5 = iconst 5
    v6 = add.w64 v4, v5
    v7 = add.w64 v6, v5
    jump block2(v7)
block2(v8: i64):
    v9 = iconst 7
    v10 = add.w64 v8, v9
    v11 = add.w64 v10, v9
    return v11
}
";
    let original = parse(text);
    let limits = RunnerLimits {
        function_nodes: 1,
        ..RunnerLimits::default()
    };
    let mut module = original.clone();
    let stats = optimize_module(&mut module, CostTarget::BpfInsnCount, &limits);
    ir::verifier::verify_module(&module).unwrap_or_else(|e| panic!("invalid after: {e}"));
    assert_eq!(stats.blocks_rewritten, 1, "{stats:?}");
    assert_eq!(
        stats.blocks_skipped.get(FUNCTION_BUDGET_SPENT),
        Some(&2),
        "{stats:?}"
    );
    // Only block0's two adds were folded into one.
    assert_eq!(pure_count(&module), pure_count(&original) - 1);
    for (fref, func) in original.functions.iter() {
        for x in [0u64, 1, 41, u64::MAX] {
            assert_eq!(eval(func, &[x]), eval(&module.functions[fref], &[x]));
        }
    }
    // With the default budget every block is rewritten.
    let mut module = original.clone();
    let stats = optimize_module(
        &mut module,
        CostTarget::BpfInsnCount,
        &RunnerLimits::default(),
    );
    assert_eq!(stats.blocks_rewritten, 3, "{stats:?}");
}

/// A branch that returns which way it went, after `cond`, for the comparison tests.
fn branch_program(body: &str, brif: &str) -> Module {
    parse(&format!(
        "
function %f(i64, i64) {{
block0(v0: i64, v1: i64):
{body}
    {brif}
block1:
    v100 = iconst 1
    return v100
block2:
    v101 = iconst 2
    return v101
}}
"
    ))
}

#[test]
fn a_zero_test_of_an_and_becomes_set_with_the_destinations_swapped() {
    let module = branch_program(
        "    v2 = iconst 4\n    v3 = and.w64 v0, v2\n    v4 = iconst 0",
        "brif eq.w64 v3, v4, block1, block2",
    );
    // In hardware an `and` with a constant is wiring, and a 32-bit equality over the masked
    // bits is cheaper than a 64-bit bit test; there the result is only checked for meaning.
    let (_, _) = optimize_checked(&module, CostTarget::HwAreaDepth, &sample_inputs());
    for target in [
        CostTarget::BpfInsnCount,
        CostTarget::NativeLatency,
        CostTarget::NfpCycles,
    ] {
        let (out, _) = optimize_checked(&module, target, &sample_inputs());
        let text = ir::write::module_to_string(&out);
        assert!(
            text.contains("brif set.w64 v0, v2, block2, block1"),
            "{target:?}:\n{text}"
        );
        assert!(!text.contains("and.w64"), "{target:?}:\n{text}");
    }
}

#[test]
fn a_wide_comparison_of_zero_extended_values_is_a_32_bit_one() {
    // clang's `r <<= 32; r >>= 32; if r > k` for CPU versions without 32-bit jumps.
    let module = branch_program(
        "    v2 = iconst 32\n    v3 = lsh.w64 v0, v2\n    v4 = rsh.w64 v3, v2\n    v5 = iconst 1000",
        "brif gt.w64 v4, v5, block1, block2",
    );
    for target in CostTarget::ALL {
        let (out, _) = optimize_checked(&module, target, &sample_inputs());
        let text = ir::write::module_to_string(&out);
        assert!(
            text.contains("brif gt.w32 v0, v5, block1, block2"),
            "{target:?}:\n{text}"
        );
        assert!(
            !text.contains("lsh") && !text.contains("rsh"),
            "{target:?}: the zero extension is gone\n{text}"
        );
    }
}

#[test]
fn signed_comparisons_narrow_only_when_no_operand_can_read_as_negative() {
    // A zero-extended operand may have bit 31 set: `sgt.w32` would read it as negative.
    let module = branch_program(
        "    v2 = mov.w32 v0\n    v3 = mov.w32 v1",
        "brif sgt.w64 v2, v3, block1, block2",
    );
    for target in CostTarget::ALL {
        let (out, _) = optimize_checked(&module, target, &sample_inputs());
        let text = ir::write::module_to_string(&out);
        assert!(text.contains("brif sgt.w64"), "{target:?}:\n{text}");
    }
}

#[test]
fn a_constant_on_the_left_of_a_comparison_moves_right() {
    let module = branch_program("    v2 = iconst 7", "brif lt.w64 v2, v0, block1, block2");
    let (out, _) = optimize_checked(&module, CostTarget::BpfInsnCount, &sample_inputs());
    let text = ir::write::module_to_string(&out);
    assert!(
        text.contains("brif gt.w64 v0, v2, block1, block2"),
        "{text}"
    );
}

#[test]
fn a_bpf_branch_tests_the_zero_extension_another_root_keeps() {
    // lathist's histogram step: the zero extension is passed on, so testing its source with a
    // 32-bit jump saves nothing and keeps the source live up to the branch.
    let module = parse(
        "
function %f(i64, i64) {
block0(v0: i64, v1: i64):
    v2 = rsh.w64 v0, v1
    v3 = mov.w32 v2
    v4 = iconst 255
    brif gt.w64 v3, v4, block1(v3), block2
block1(v10: i64):
    return v10
block2:
    v11 = iconst 2
    return v11
}
",
    );
    let (out, _) = optimize_checked(&module, CostTarget::BpfInsnCount, &sample_inputs());
    let text = ir::write::module_to_string(&out);
    assert!(
        text.contains("brif gt.w32 v3, v4, block1(v3), block2")
            || text.contains("brif gt.w64 v3, v4, block1(v3), block2"),
        "{text}"
    );
    // The shift, the extension, the constant 255 and block2's constant: nothing added.
    assert_eq!(pure_count(&out), 4, "{text}");
}

#[test]
fn a_mask_of_a_parameter_that_only_receives_narrow_loads_goes_for_bpf() {
    // xdp1's protocol field: a 16-bit load on either path, masked again after the join.
    let module = parse(
        "
function %f(i64, i64) {
block0(v0: i64, v1: i64):
    v2 = load.any.u16 v0+0
    brif eq.w64 v1, v1, block1(v2), block2
block2:
    v3 = load.any.u16 v0+2
    jump block1(v3)
block1(v4: i64):
    v5 = iconst 65535
    v6 = and.w64 v4, v5
    return v6
}
",
    );
    let mut out = module.clone();
    optimize_module(&mut out, CostTarget::BpfInsnCount, &RunnerLimits::default());
    ir::verifier::verify_module(&out).unwrap_or_else(|e| panic!("{e}"));
    let text = ir::write::module_to_string(&out);
    assert!(!text.contains("and.w64"), "{text}");
    assert!(text.contains("return v4"), "{text}");
    // Other targets do not consult the range analysis.
    let mut native = module.clone();
    optimize_module(
        &mut native,
        CostTarget::NativeLatency,
        &RunnerLimits::default(),
    );
    assert!(ir::write::module_to_string(&native).contains("and.w64"));
}

#[test]
fn a_bpf_mask_of_a_value_narrowed_in_another_block_is_a_32_bit_and() {
    // lathist: a zero extension in one block, shifted right and masked with 0xfffffffe in the
    // next; the 64-bit mask would need an lddw or a register, the 32-bit one is an immediate.
    let module = parse(
        "
function %f(i64, i64) {
block0(v0: i64, v1: i64):
    v2 = mov.w32 v0
    v3 = rsh.w64 v2, v1
    jump block1
block1:
    v4 = rsh.w64 v3, v1
    v5 = iconst 4294967294
    v6 = and.w64 v4, v5
    return v6
}
",
    );
    let (out, _) = optimize_checked(&module, CostTarget::BpfInsnCount, &sample_inputs());
    let text = ir::write::module_to_string(&out);
    assert!(text.contains("and.w32"), "{text}");
    assert!(!text.contains("and.w64"), "{text}");
}
