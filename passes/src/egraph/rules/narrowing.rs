//! 64-bit bitwise operations on values that fit in 32 bits, done at 32 bits.
//!
//! A 32-bit operation zero-extends its result, so when both operands of `or` or `xor` fit in
//! 32 bits, or the left operand of `and` does (its upper bits are zero, so the mask's upper
//! bits do not matter), the 64-bit operation computes the same value at 32 bits. For BPF that
//! matters because a 32-bit operation takes any 32-bit constant as its immediate, while a
//! 64-bit one sign-extends it: `x & 0xfffffffe` needs the mask in a register at 64 bits
//! (`w0 = -2; r1 &= r0`) but is one `w1 &= -2` at 32.
//!
//! The rules are sound for every target, but only the BPF pipeline runs them for now (see
//! [`super::rewrites_for`]): the other targets' reviewed reports would move with them, and
//! their owners should refresh those when they adopt the table.

use super::{RuleSpec, RuleTable};

pub fn table() -> RuleTable {
    let mut rules = vec![RuleSpec::new(
        "and-w64-of-narrow-is-w32",
        "(and.w64 ?x ?y)",
        "(and.w32 ?x ?y)",
    )
    .when_bits("?x", 32)];
    for op in ["or", "xor"] {
        rules.push(
            RuleSpec::new(
                format!("{op}-w64-of-narrow-is-w32"),
                format!("({op}.w64 ?x ?y)"),
                format!("({op}.w32 ?x ?y)"),
            )
            .when_bits("?x", 32)
            .when_bits("?y", 32),
        );
    }
    RuleTable {
        name: "narrowing",
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    crate::egraph::rules::soundness::rule_table_tests!(table);
}
