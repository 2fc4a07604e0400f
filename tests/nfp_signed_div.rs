//! Signed division and modulo (BPF_SDIV and BPF_SMOD of ISA v4) on the NFP model: the
//! conformance suite's signed tests use constants that the optimizer folds, so these programs
//! read their operands from memory and the microcode routine runs. Every pair of a set of
//! edge values (zero, ones, INT_MIN, INT_MAX, their neighbours) and pseudo-random words is
//! divided by the interpreter and by the compiled microcode, 32-bit with a register and with
//! a constant divisor; the results must be equal. The 64-bit forms of values that may be
//! negative are refused with a diagnostic that says so.

use backends::nfp::{compile_function, EntryKind};
use frontend::lift::{lift_program, LiftOptions};
use frontend::object::{Function as ObjFunction, Program, ProgramKind};
use frontend::Object;
use passes::pass::PassContext;
use passes::pipeline::{pipeline, PassManager};
use sim::nfp::{run_memory_nfp, NfpMachine};
use sim::runtime::{Runtime, RuntimeConfig};

fn object_of(asm: &str) -> (Object, Vec<frontend::insn::RawInsn>) {
    let insns = frontend::asm::assemble(asm).unwrap_or_else(|e| panic!("{asm}: {e:?}"));
    let obj = Object {
        name: "signed_div.o".into(),
        programs: vec![Program {
            name: "signed_div".into(),
            section: "test".into(),
            kind: ProgramKind::SocketFilter,
            functions: vec![ObjFunction {
                name: "signed_div".into(),
                section: "test".into(),
                start: 0,
                len: insns.len(),
                section_offset: 0,
            }],
            lines: Vec::new(),
            insns: insns.clone(),
        }],
        ..Object::default()
    };
    (obj, insns)
}

fn compile(obj: &Object) -> Result<backends::nfp::NfpProgram, frontend::Diagnostic> {
    let mut module = lift_program(obj, 0, &LiftOptions { inline_calls: true })?;
    let pipe = pipeline("nfp").unwrap();
    PassManager::new()
        .run(&pipe, &mut module, &mut PassContext::new(pipe.target))
        .map_err(|e| frontend::Diagnostic::new(e.to_string()))?;
    let entry = module.programs[0].func;
    compile_function(&module, entry, EntryKind::Memory)
}

fn operands() -> Vec<u32> {
    let mut v = vec![
        0,
        1,
        2,
        3,
        7,
        u32::MAX,
        u32::MAX - 1,
        0x8000_0000,
        0x8000_0001,
        0x7fff_ffff,
        0x7fff_fffe,
        0xffff_fff9,
    ];
    let mut state: u64 = 0x5d1f;
    for _ in 0..20 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        v.push((state >> 32) as u32);
    }
    v
}

#[test]
fn signed_32_bit_division_and_modulo_match_the_interpreter() {
    let programs = [
        "ldxw %r0, [%r1]\nldxw %r2, [%r1+4]\nsdiv32 %r0, %r2\nexit",
        "ldxw %r0, [%r1]\nldxw %r2, [%r1+4]\nsmod32 %r0, %r2\nexit",
        "ldxw %r0, [%r1]\nsdiv32 %r0, -3\nexit",
        "ldxw %r0, [%r1]\nsmod32 %r0, -3\nexit",
        "ldxw %r0, [%r1]\nsdiv32 %r0, 0x7fffffff\nexit",
    ];
    let mut runs = 0;
    for asm in programs {
        let (obj, raw) = object_of(asm);
        let prog = compile(&obj).unwrap_or_else(|d| panic!("{asm}: {d}"));
        let mut rt = Runtime::empty(RuntimeConfig::default());
        let machine = NfpMachine::load(&prog, &mut rt).unwrap();
        for &x in &operands() {
            for &y in &operands() {
                let mut mem: Vec<u8> = x.to_le_bytes().into_iter().chain(y.to_le_bytes()).collect();
                let mut mem2 = mem.clone();
                let want = sim::interp::run_with_memory(&raw, &mut mem).unwrap();
                let (got, _) = run_memory_nfp(&machine, &mut rt, &mut mem2)
                    .unwrap_or_else(|d| panic!("{asm} with {x:#x}, {y:#x}: {d}"));
                assert_eq!(got, want, "{asm} with {x:#x}, {y:#x}");
                runs += 1;
            }
        }
    }
    println!("{runs} signed divisions and remainders equal to the interpreter's");
}

#[test]
fn signed_64_bit_division_of_values_that_may_be_negative_is_refused() {
    let (obj, _) = object_of("ldxdw %r0, [%r1]\nldxdw %r2, [%r1+8]\nsdiv %r0, %r2\nexit");
    let err = compile(&obj).expect_err("64-bit signed division compiled");
    assert!(
        err.message.contains("64-bit sdiv") || err.message.contains("64-bit"),
        "{}",
        err.message
    );
    assert!(err.insn.is_some(), "the refusal names the instruction");
}
