//! Test support: data-driven pass tests in the style of Cranelift's filetests.
//!
//! A test gives the input IR as text and the IR expected after running one pass, also as
//! text. [`check_pass`] parses the input, verifies it, runs the pass, verifies the result and
//! compares the printed result with the expected text after parsing and printing that too, so
//! spacing and source-location columns in the expectation do not matter.

use crate::pass::{Pass, PassContext};
use ir::write::module_to_string;

/// Parses `text` as a module and checks that it verifies.
pub fn parse_verified(text: &str) -> ir::Module {
    let module = ir::parse::parse_module(text).unwrap_or_else(|e| panic!("bad test IR: {e}"));
    if let Err(errors) = ir::verifier::verify_module(&module) {
        panic!("test input does not verify:\n{errors}");
    }
    module
}

/// Runs `pass` on `input` and checks the result is `expected`; returns the pass context so a
/// test can also look at statistics and analysis results.
pub fn check_pass(mut pass: impl Pass, input: &str, expected: &str) -> PassContext {
    let mut module = parse_verified(input);
    let mut ctx = PassContext::default();
    let changed = pass
        .run(&mut module, &mut ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    if let Err(errors) = ir::verifier::verify_module(&module) {
        panic!(
            "IR invalid after {}:\n{errors}\n{}",
            pass.name(),
            module_to_string(&module)
        );
    }
    let got = module_to_string(&module);
    let want = module_to_string(&parse_verified(expected));
    assert_eq!(got, want, "{} gave\n{got}\nexpected\n{want}", pass.name());
    let unchanged = module_to_string(&parse_verified(input)) == got;
    assert_eq!(
        changed,
        !unchanged,
        "{} reported changed={changed} but the text says otherwise",
        pass.name()
    );
    ctx
}
