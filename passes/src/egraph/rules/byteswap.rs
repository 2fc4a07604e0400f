//! Byte-order conversions: swapping twice, truncating conversions, and what a conversion
//! ignores.
//!
//! On a little-endian machine `le16`/`le32` truncate (zero-extend the low 16 or 32 bits),
//! `le64` is the identity, and `be*`/`bswap*` swap the low 16, 32 or 64 bits and zero-extend.
//! So swapping twice at the same width leaves the low bits, not the whole value: `be16 (be16
//! x)` is `le16 x`, and only the 64-bit pair is the identity.

use super::{RuleSpec, RuleTable};

pub fn table() -> RuleTable {
    let mut rules: Vec<RuleSpec> = Vec::new();
    let swaps = [
        ("be", "be"),
        ("bswap", "bswap"),
        ("be", "bswap"),
        ("bswap", "be"),
    ];
    for (outer, inner) in swaps {
        rules.push(RuleSpec::new(
            format!("{outer}16-{inner}16"),
            format!("({outer}16 ({inner}16 ?x))"),
            "(le16 ?x)",
        ));
        rules.push(RuleSpec::new(
            format!("{outer}32-{inner}32"),
            format!("({outer}32 ({inner}32 ?x))"),
            "(mov.w32 ?x)",
        ));
        rules.push(RuleSpec::new(
            format!("{outer}64-{inner}64"),
            format!("({outer}64 ({inner}64 ?x))"),
            "?x",
        ));
    }
    // `le32` is a zero extension and `le16` a 16-bit mask; the canonical forms are the ALU
    // ones, which the other tables know about.
    rules.push(RuleSpec::new("le32-is-zext", "(le32 ?x)", "(mov.w32 ?x)"));
    rules.push(RuleSpec::new(
        "le16-is-mask",
        "(le16 ?x)",
        "(and.w64 ?x 65535)",
    ));
    rules.push(RuleSpec::new("le16-fits", "(le16 ?x)", "?x").when_bits("?x", 16));
    // A 16-bit conversion reads only the low 16 bits.
    for conv in ["le16", "be16", "bswap16"] {
        rules.push(RuleSpec::new(
            format!("{conv}-ignores-mask"),
            format!("({conv} (and.w64 ?x 65535))"),
            format!("({conv} ?x)"),
        ));
        rules.push(RuleSpec::new(
            format!("{conv}-ignores-le16"),
            format!("({conv} (le16 ?x))"),
            format!("({conv} ?x)"),
        ));
    }
    for conv in ["bswap32", "le32", "bswap16"] {
        rules.push(RuleSpec::new(
            format!("{conv}-ignores-zext"),
            format!("({conv} (mov.w32 ?x))"),
            format!("({conv} ?x)"),
        ));
    }
    RuleTable {
        name: "byteswap",
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    crate::egraph::rules::soundness::rule_table_tests!(table);
}
