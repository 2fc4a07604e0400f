//! Tail calls on the NFP model: the corpus's `tail_call.o` has a `caller` that tail-calls slot
//! 0 of a program array and a `callee` returning 42. Compiled with its possible targets
//! linked into one code store, the caller must give the interpreter's verdict on every probe
//! packet both with the slot holding the callee (the callee's code runs) and with the slot
//! empty (the call falls through).

mod support;

use backends::nfp::link::compile_linked;
use frontend::lift::{lift_program, LiftOptions};
use frontend::object::ProgramKind;
use passes::pass::PassContext;
use passes::pipeline::{pipeline, PassManager};
use sim::nfp::{run_xdp_nfp, NfpMachine};
use sim::runtime::{Runtime, RuntimeConfig, XdpInput};

#[test]
fn tail_calls_jump_to_the_linked_program_and_failures_fall_through() {
    let path = support::corpus().join("elf/build/tail_call.o");
    let obj = frontend::elf::read_file(&path).unwrap();
    let index_of = |name: &str| {
        obj.programs
            .iter()
            .position(|p| p.name == name)
            .unwrap_or_else(|| panic!("{} has no program {name}", path.display()))
    };
    let (caller, callee) = (index_of("caller"), index_of("callee"));
    let lift = |p: usize| -> Result<ir::Module, frontend::Diagnostic> {
        let mut module = lift_program(&obj, p, &LiftOptions { inline_calls: true })?;
        let pipe = pipeline("nfp").unwrap();
        PassManager::new()
            .run(&pipe, &mut module, &mut PassContext::new(pipe.target))
            .map_err(|e| frontend::Diagnostic::new(e.to_string()))?;
        Ok(module)
    };
    let candidates: Vec<usize> = obj
        .programs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind == ProgramKind::Xdp)
        .map(|(i, _)| i)
        .collect();
    let prog = compile_linked(&lift, caller, &candidates).unwrap_or_else(|d| panic!("{d}"));
    assert!(
        prog.comments.iter().any(|c| c.contains("tail call target")),
        "the callee is not linked in:\n{}",
        prog.listing()
    );
    let packets = support::packets::generated();
    let mut verdicts = Vec::new();
    for filled in [true, false] {
        let runtime = || {
            let mut rt = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
            if filled {
                rt.map_by_name_mut("map")
                    .unwrap()
                    .set(&0u32.to_le_bytes(), &(callee as u32).to_le_bytes())
                    .unwrap();
            }
            rt
        };
        let (mut rt_bc, mut rt_nfp) = (runtime(), runtime());
        let machine = NfpMachine::load(&prog, &mut rt_nfp).unwrap();
        for (k, pkt) in packets.iter().enumerate() {
            let input = XdpInput::new(pkt.clone());
            let want = sim::interp::run_xdp(&obj, caller, &mut rt_bc, &input)
                .map(|o| o.retval)
                .map_err(|d| d.message);
            let got = run_xdp_nfp(&machine, &mut rt_nfp, &input)
                .map(|(o, _)| o.retval)
                .map_err(|d| d.message);
            assert_eq!(got, want, "packet {k}, program array slot filled: {filled}");
            if k == 0 {
                verdicts.push(got);
            }
        }
    }
    println!(
        "{} packets each way; first verdicts with the slot filled and empty: {verdicts:?}",
        packets.len()
    );
    // With the slot filled the callee's 42 comes back; empty, the caller's own verdict.
    assert_eq!(verdicts[0], Ok(42));
    assert_ne!(verdicts[1], Ok(42));
}

/// A tail call to a program that is not in the code store (a program that does not compile
/// for the NFP target is not linked) must not fall through to the caller's own verdict, which
/// the kernel would never give: the packet stops with a fault that names the program. The
/// caller is linked here without the callee among its possible targets, which is what the
/// linker does when the callee does not compile; the interpreter runs the callee (42).
#[test]
fn a_tail_call_to_a_program_that_is_not_linked_faults_with_its_name() {
    let path = support::corpus().join("elf/build/tail_call.o");
    let obj = frontend::elf::read_file(&path).unwrap();
    let index_of = |name: &str| obj.programs.iter().position(|p| p.name == name).unwrap();
    let (caller, callee) = (index_of("caller"), index_of("callee"));
    let lift = |p: usize| -> Result<ir::Module, frontend::Diagnostic> {
        let mut module = lift_program(&obj, p, &LiftOptions { inline_calls: true })?;
        let pipe = pipeline("nfp").unwrap();
        PassManager::new()
            .run(&pipe, &mut module, &mut PassContext::new(pipe.target))
            .map_err(|e| frontend::Diagnostic::new(e.to_string()))?;
        Ok(module)
    };
    let prog = compile_linked(&lift, caller, &[caller]).unwrap_or_else(|d| panic!("{d}"));
    assert!(
        !prog.comments.iter().any(|c| c.contains("tail call target")),
        "the callee was linked although it is not a candidate"
    );
    let runtime = || {
        let mut rt = Runtime::new(&obj, RuntimeConfig::default()).unwrap();
        rt.map_by_name_mut("map")
            .unwrap()
            .set(&0u32.to_le_bytes(), &(callee as u32).to_le_bytes())
            .unwrap();
        rt
    };
    let (mut rt_bc, mut rt_nfp) = (runtime(), runtime());
    let machine = NfpMachine::load(&prog, &mut rt_nfp).unwrap();
    let input = XdpInput::new(support::packets::generated()[0].clone());
    let want = sim::interp::run_xdp(&obj, caller, &mut rt_bc, &input).map(|o| o.retval);
    assert_eq!(want.map_err(|d| d.message), Ok(42));
    let err = run_xdp_nfp(&machine, &mut rt_nfp, &input)
        .map(|(o, _)| o.retval)
        .expect_err("the tail call fell through instead of faulting");
    println!("{err}");
    assert!(
        err.message.contains(&format!(
            "chose program {callee} of the object, which is not in this code store"
        )),
        "unexpected fault: {}",
        err.message
    );
    assert!(err.help.is_some(), "the fault says what to do");
}
