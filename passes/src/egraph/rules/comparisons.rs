//! Branch conditions: the forms of a `brif` comparison that BPF and the hardware targets test
//! more cheaply.
//!
//! A comparison node is 1 when the branch is taken; `not` is the same branch with its
//! destinations swapped. The rules give a condition the forms a target can use without extra
//! instructions:
//! - testing `x & y` against zero is what `set` (BPF's `jset`) does by itself;
//! - `x ^ y` or `x - y` against zero is `x` against `y`;
//! - a 32-bit comparison reads only the low 32 bits of its operands, so a zero extension of an
//!   operand is redundant; and a 64-bit comparison of values that fit in 32 bits is a 32-bit
//!   one (31 bits for the signed conditions, so that neither operand reads as negative), which
//!   clang's `x <<= 32; x >>= 32; if x > k` idiom for older CPU versions turns into one jump;
//! - a constant belongs on the right, where the jump's immediate is; on the left it would need
//!   a register.

use super::{RuleSpec, RuleTable};
use ir::instructions::{cond_name, ALL_CONDS};
use ir::semantics::JmpCond;

/// The condition that holds for `(b, a)` exactly when `cond` holds for `(a, b)`.
fn mirrored(cond: JmpCond) -> JmpCond {
    match cond {
        JmpCond::Gt => JmpCond::Lt,
        JmpCond::Ge => JmpCond::Le,
        JmpCond::Lt => JmpCond::Gt,
        JmpCond::Le => JmpCond::Ge,
        JmpCond::Sgt => JmpCond::Slt,
        JmpCond::Sge => JmpCond::Sle,
        JmpCond::Slt => JmpCond::Sgt,
        JmpCond::Sle => JmpCond::Sge,
        symmetric @ (JmpCond::Eq | JmpCond::Ne | JmpCond::Set) => symmetric,
    }
}

fn is_signed(cond: JmpCond) -> bool {
    matches!(
        cond,
        JmpCond::Sgt | JmpCond::Sge | JmpCond::Slt | JmpCond::Sle
    )
}

pub fn table() -> RuleTable {
    let mut rules: Vec<RuleSpec> = Vec::new();
    for w in ["w32", "w64"] {
        rules.push(RuleSpec::new(
            format!("and-nonzero-is-set-{w}"),
            format!("(ne.{w} (and.{w} ?x ?y) 0)"),
            format!("(set.{w} ?x ?y)"),
        ));
        rules.push(RuleSpec::new(
            format!("and-zero-is-not-set-{w}"),
            format!("(eq.{w} (and.{w} ?x ?y) 0)"),
            format!("(not (set.{w} ?x ?y))"),
        ));
        for cond in ["eq", "ne"] {
            for op in ["xor", "sub"] {
                rules.push(RuleSpec::new(
                    format!("{op}-{cond}-zero-is-{cond}-{w}"),
                    format!("({cond}.{w} ({op}.{w} ?x ?y) 0)"),
                    format!("({cond}.{w} ?x ?y)"),
                ));
            }
        }
    }
    for cond in ALL_CONDS {
        let name = cond_name(cond);
        rules.push(RuleSpec::new(
            format!("{name}-w32-ignores-zext-left"),
            format!("({name}.w32 (mov.w32 ?x) ?y)"),
            format!("({name}.w32 ?x ?y)"),
        ));
        rules.push(RuleSpec::new(
            format!("{name}-w32-ignores-zext-right"),
            format!("({name}.w32 ?x (mov.w32 ?y))"),
            format!("({name}.w32 ?x ?y)"),
        ));
        let fits = if is_signed(cond) { 31 } else { 32 };
        rules.push(
            RuleSpec::new(
                format!("{name}-w64-of-narrow-values-is-w32"),
                format!("({name}.w64 ?x ?y)"),
                format!("({name}.w32 ?x ?y)"),
            )
            .when_bits("?x", fits)
            .when_bits("?y", fits),
        );
        for w in ["w32", "w64"] {
            rules.push(
                RuleSpec::new(
                    format!("{name}-constant-goes-right-{w}"),
                    format!("({name}.{w} ?c ?x)"),
                    format!("({}.{w} ?x ?c)", cond_name(mirrored(cond))),
                )
                .when_const(&["?c"]),
            );
        }
    }
    RuleTable {
        name: "comparisons",
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    crate::egraph::rules::soundness::rule_table_tests!(table);

    #[test]
    fn mirroring_twice_is_the_identity() {
        for cond in ALL_CONDS {
            assert_eq!(mirrored(mirrored(cond)), cond);
        }
    }
}
