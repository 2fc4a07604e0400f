//! Address arithmetic: a pointer plus constants becomes the pointer plus one constant.
//!
//! Lifted code computes addresses as chains (`p + 14`, then `+ 20`, then `- 2`); folding the
//! constants leaves one addition, which a backend can fold into a load's offset. Only 64-bit
//! operations take part: pointers are 64-bit values. The rules keep the pointer as the left
//! operand, the form the kernel verifier tracks best.

use super::{RuleSpec, RuleTable};

fn derive_negated(c: &[u64]) -> Option<Vec<u64>> {
    // Subtracting the minimum is adding the minimum; the rewrite gains nothing there.
    (c[0] != i64::MIN as u64).then(|| vec![c[0].wrapping_neg()])
}

pub fn table() -> RuleTable {
    let rules = vec![
        RuleSpec::new(
            "ptr-add-add",
            "(add.w64 (add.w64 ?p ?a) ?b)",
            "(add.w64 ?p (add.w64 ?a ?b))",
        )
        .when_const(&["?a", "?b"]),
        RuleSpec::new(
            "ptr-add-sub",
            "(sub.w64 (add.w64 ?p ?a) ?b)",
            "(add.w64 ?p (sub.w64 ?a ?b))",
        )
        .when_const(&["?a", "?b"]),
        RuleSpec::new(
            "ptr-sub-add",
            "(add.w64 (sub.w64 ?p ?a) ?b)",
            "(add.w64 ?p (sub.w64 ?b ?a))",
        )
        .when_const(&["?a", "?b"]),
        RuleSpec::new(
            "ptr-sub-sub",
            "(sub.w64 (sub.w64 ?p ?a) ?b)",
            "(sub.w64 ?p (add.w64 ?a ?b))",
        )
        .when_const(&["?a", "?b"]),
        RuleSpec::new("ptr-sub-const", "(sub.w64 ?p ?c)", "(add.w64 ?p ?k)")
            .when_const(&["?c"])
            .deriving(&["?k"], derive_negated),
        // Differences of addresses based on the same pointer.
        RuleSpec::new("ptr-diff-base", "(sub.w64 (add.w64 ?p ?a) ?p)", "?a"),
        RuleSpec::new(
            "ptr-diff-offsets",
            "(sub.w64 (add.w64 ?p ?a) (add.w64 ?p ?b))",
            "(sub.w64 ?a ?b)",
        ),
    ];
    RuleTable {
        name: "address",
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    crate::egraph::rules::soundness::rule_table_tests!(table);
}
