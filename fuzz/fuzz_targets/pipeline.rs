//! Any bytes as an object, through everything a build does: lift, every optimization pipeline
//! with the IR verifier after each pass, and the BPF and native backends. Every stage may
//! refuse; none may panic, and what a pass produces must verify.
#![no_main]

use passes::pass::PassContext;
use passes::pipeline::{pipeline, PassManager};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(obj) = frontend::elf::read_object(data, "fuzz.o") else {
        return;
    };
    let Ok(lifted) = frontend::lift::lift_object(&obj, &frontend::lift::LiftOptions::default())
    else {
        return;
    };
    for name in ["bpf", "native", "nfp", "hw"] {
        let mut module = lifted.clone();
        let pipe = pipeline(name).expect("named pipeline");
        let mut ctx = PassContext::new(pipe.target);
        // Lifted IR verifies, and every pass must keep it so: a pipeline error here is a bug
        // in the lifter or a pass, not a refusal of the input.
        if let Err(e) = PassManager::new()
            .verify_each(true)
            .run(&pipe, &mut module, &mut ctx)
        {
            panic!("pipeline {name} failed on lifted IR: {e}");
        }
        match name {
            "bpf" => {
                let _ = backends::bpf::emit_object(&module, "fuzz.o");
            }
            "native" => {
                let _ = backends::native::compile_module(
                    &module,
                    backends::native::NativeTarget::X86_64,
                );
            }
            _ => {}
        }
    }
});
