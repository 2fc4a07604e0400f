//! Zero and sign extensions: what a 32-bit operation already guarantees, what it ignores,
//! masks that cannot change a value, and chains of sign extensions.
//!
//! A 32-bit operation reads only the low 32 bits of its operands and zero-extends its result.
//! So `mov.w32` (zero extension) is redundant on its operands and on its result, and a
//! constant operand of a 32-bit operation only matters through its low 32 bits. The analysis
//! knows how many low bits of a value can be non-zero; rules with a bit condition use that.

use super::{RuleSpec, RuleTable};

const BINARY: [&str; 13] = [
    "add", "sub", "mul", "div", "sdiv", "mod", "smod", "or", "and", "xor", "lsh", "rsh", "arsh",
];

/// Nodes that read only the low 32 bits of their one operand.
const UNARY_LOW32: [&str; 10] = [
    "neg.w32",
    "mov.w32",
    "movsx8.w32",
    "movsx16.w32",
    "movsx8.w64",
    "movsx16.w64",
    "movsx32.w64",
    "le16",
    "be16",
    "be32",
];

fn derive_low32(c: &[u64]) -> Option<Vec<u64>> {
    (c[0] > u32::MAX as u64).then(|| vec![c[0] & u32::MAX as u64])
}

pub fn table() -> RuleTable {
    let mut rules: Vec<RuleSpec> = Vec::new();
    for op in BINARY {
        rules.push(RuleSpec::new(
            format!("{op}-w32-ignores-zext-left"),
            format!("({op}.w32 (mov.w32 ?x) ?y)"),
            format!("({op}.w32 ?x ?y)"),
        ));
        rules.push(RuleSpec::new(
            format!("{op}-w32-ignores-zext-right"),
            format!("({op}.w32 ?x (mov.w32 ?y))"),
            format!("({op}.w32 ?x ?y)"),
        ));
        rules.push(
            RuleSpec::new(
                format!("{op}-w32-const-low-bits"),
                format!("({op}.w32 ?x ?c)"),
                format!("({op}.w32 ?x ?k)"),
            )
            .when_const(&["?c"])
            .deriving(&["?k"], derive_low32),
        );
    }
    for node in UNARY_LOW32 {
        rules.push(RuleSpec::new(
            format!("{node}-ignores-zext"),
            format!("({node} (mov.w32 ?x))"),
            format!("({node} ?x)"),
        ));
    }
    // Zero extension of a value that already fits is the value.
    rules.push(RuleSpec::new("zext-fits", "(mov.w32 ?x)", "?x").when_bits("?x", 32));
    rules.push(RuleSpec::new(
        "and-w64-low32-is-zext",
        "(and.w64 ?x 4294967295)",
        "(mov.w32 ?x)",
    ));
    for (mask, bits) in [(255u64, 8u32), (65535, 16), (4294967295, 32)] {
        for w in ["w32", "w64"] {
            rules.push(
                RuleSpec::new(
                    format!("and-{mask:#x}-fits-{w}"),
                    format!("(and.{w} ?x {mask})"),
                    "?x",
                )
                .when_bits("?x", bits),
            );
        }
    }
    // Sign extension of a value whose sign bit is clear is the value.
    for (node, bits) in [
        ("movsx8.w64", 7),
        ("movsx16.w64", 15),
        ("movsx32.w64", 31),
        ("movsx8.w32", 7),
        ("movsx16.w32", 15),
    ] {
        rules.push(
            RuleSpec::new(format!("{node}-of-small"), format!("({node} ?x)"), "?x")
                .when_bits("?x", bits),
        );
    }
    // Chains of sign extensions: the narrowest one decides.
    for (outer, inner) in [
        ("movsx8.w64", "movsx8.w64"),
        ("movsx16.w64", "movsx8.w64"),
        ("movsx16.w64", "movsx16.w64"),
        ("movsx32.w64", "movsx8.w64"),
        ("movsx32.w64", "movsx16.w64"),
        ("movsx32.w64", "movsx32.w64"),
    ] {
        rules.push(RuleSpec::new(
            format!("{outer}-of-{inner}"),
            format!("({outer} ({inner} ?x))"),
            format!("({inner} ?x)"),
        ));
    }
    // Truncating a 64-bit sign extension to 32 bits is the 32-bit sign extension.
    rules.push(RuleSpec::new(
        "zext-of-movsx8",
        "(mov.w32 (movsx8.w64 ?x))",
        "(movsx8.w32 ?x)",
    ));
    rules.push(RuleSpec::new(
        "zext-of-movsx16",
        "(mov.w32 (movsx16.w64 ?x))",
        "(movsx16.w32 ?x)",
    ));
    rules.push(RuleSpec::new(
        "zext-of-movsx32",
        "(mov.w32 (movsx32.w64 ?x))",
        "(mov.w32 ?x)",
    ));
    RuleTable {
        name: "extensions",
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    crate::egraph::rules::soundness::rule_table_tests!(table);
}
