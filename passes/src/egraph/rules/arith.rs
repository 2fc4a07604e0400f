//! Arithmetic and bitwise identities: neutral and absorbing operands, cancellation, negation,
//! BPF's defined division by zero, and moving and combining constants.
//!
//! Every identity that returns an operand unchanged returns it as a result of the operation's
//! width: at 32 bits that is `mov.w32 x` (zero extension), never `x` itself.

use super::{both_widths, RuleSpec, RuleTable};

/// The commutative operations whose constant operand is moved to the right.
const COMMUTATIVE: [&str; 5] = ["add", "mul", "and", "or", "xor"];

pub fn table() -> RuleTable {
    let mut rules: Vec<RuleSpec> = Vec::new();
    let mut add = |pair: [RuleSpec; 2]| rules.extend(pair);
    // Neutral operands.
    add(both_widths("add-zero", "(add.{w} ?x 0)", "(zx ?x)"));
    add(both_widths("sub-zero", "(sub.{w} ?x 0)", "(zx ?x)"));
    add(both_widths("or-zero", "(or.{w} ?x 0)", "(zx ?x)"));
    add(both_widths("xor-zero", "(xor.{w} ?x 0)", "(zx ?x)"));
    add(both_widths("and-ones", "(and.{w} ?x {ones})", "(zx ?x)"));
    add(both_widths("mul-one", "(mul.{w} ?x 1)", "(zx ?x)"));
    add(both_widths("div-one", "(div.{w} ?x 1)", "(zx ?x)"));
    add(both_widths("sdiv-one", "(sdiv.{w} ?x 1)", "(zx ?x)"));
    // Absorbing operands.
    add(both_widths("and-zero", "(and.{w} ?x 0)", "0"));
    add(both_widths("or-ones", "(or.{w} ?x {ones})", "{ones}"));
    add(both_widths("mul-zero", "(mul.{w} ?x 0)", "0"));
    add(both_widths("mod-one", "(mod.{w} ?x 1)", "0"));
    add(both_widths("smod-one", "(smod.{w} ?x 1)", "0"));
    // Signed overflow wraps, so the minimum divided by -1 is the minimum, as its negation is.
    add(both_widths(
        "sdiv-minus-one",
        "(sdiv.{w} ?x {ones})",
        "(neg.{w} ?x)",
    ));
    add(both_widths("smod-minus-one", "(smod.{w} ?x {ones})", "0"));
    add(both_widths(
        "mul-minus-one",
        "(mul.{w} ?x {ones})",
        "(neg.{w} ?x)",
    ));
    // Division by zero is defined in BPF: the quotient is 0, the remainder the dividend.
    add(both_widths("div-zero", "(div.{w} ?x 0)", "0"));
    add(both_widths("sdiv-zero", "(sdiv.{w} ?x 0)", "0"));
    add(both_widths("mod-zero", "(mod.{w} ?x 0)", "(zx ?x)"));
    add(both_widths("smod-zero", "(smod.{w} ?x 0)", "(zx ?x)"));
    // Self-cancellation and idempotence.
    add(both_widths("sub-self", "(sub.{w} ?x ?x)", "0"));
    add(both_widths("xor-self", "(xor.{w} ?x ?x)", "0"));
    add(both_widths("and-self", "(and.{w} ?x ?x)", "(zx ?x)"));
    add(both_widths("or-self", "(or.{w} ?x ?x)", "(zx ?x)"));
    add(both_widths(
        "add-sub-cancel",
        "(add.{w} (sub.{w} ?x ?y) ?y)",
        "(zx ?x)",
    ));
    add(both_widths(
        "sub-add-cancel",
        "(sub.{w} (add.{w} ?x ?y) ?y)",
        "(zx ?x)",
    ));
    add(both_widths(
        "sub-add-cancel-left",
        "(sub.{w} (add.{w} ?x ?y) ?x)",
        "(zx ?y)",
    ));
    add(both_widths(
        "xor-xor-cancel",
        "(xor.{w} (xor.{w} ?x ?y) ?y)",
        "(zx ?x)",
    ));
    add(both_widths(
        "and-or-absorb",
        "(and.{w} ?x (or.{w} ?x ?y))",
        "(zx ?x)",
    ));
    add(both_widths(
        "or-and-absorb",
        "(or.{w} ?x (and.{w} ?x ?y))",
        "(zx ?x)",
    ));
    // Negation.
    add(both_widths("neg-neg", "(neg.{w} (neg.{w} ?x))", "(zx ?x)"));
    add(both_widths(
        "sub-from-zero",
        "(sub.{w} 0 ?x)",
        "(neg.{w} ?x)",
    ));
    add(both_widths(
        "add-neg",
        "(add.{w} ?x (neg.{w} ?y))",
        "(sub.{w} ?x ?y)",
    ));
    add(both_widths(
        "sub-neg",
        "(sub.{w} ?x (neg.{w} ?y))",
        "(add.{w} ?x ?y)",
    ));
    add(both_widths(
        "neg-sub",
        "(neg.{w} (sub.{w} ?x ?y))",
        "(sub.{w} ?y ?x)",
    ));
    // Constants go to the right, where BPF encodes them as immediates, and constants of a
    // chain of the same operation are combined (the inner pair folds to one constant).
    for op in COMMUTATIVE {
        add(both_widths(
            &format!("{op}-const-right"),
            &format!("({op}.{{w}} ?c ?x)"),
            &format!("({op}.{{w}} ?x ?c)"),
        )
        .map(|r| r.when_const(&["?c"])));
        add(both_widths(
            &format!("{op}-const-combine"),
            &format!("({op}.{{w}} ({op}.{{w}} ?x ?a) ?b)"),
            &format!("({op}.{{w}} ?x ({op}.{{w}} ?a ?b))"),
        )
        .map(|r| r.when_const(&["?a", "?b"])));
    }
    RuleTable {
        name: "arith",
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    crate::egraph::rules::soundness::rule_table_tests!(table);
}
