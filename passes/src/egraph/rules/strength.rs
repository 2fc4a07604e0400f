//! Strength reduction: multiplication, unsigned division and unsigned remainder by powers of
//! two become shifts and masks; multiplication by `2^k ± 1` becomes a shift and an add or
//! subtract.
//!
//! These rules only add alternatives; whether `x * 8` or `x << 3` is emitted is the cost
//! function's choice, so a target with a fast multiplier keeps it. At 32 bits a constant counts
//! through its low 32 bits only.

use super::{RuleSpec, RuleTable};

fn low(c: u64, bits: u32) -> u64 {
    if bits == 32 {
        c & u32::MAX as u64
    } else {
        c
    }
}

fn log2_of_power<const BITS: u32>(c: &[u64]) -> Option<Vec<u64>> {
    let c = low(c[0], BITS);
    c.is_power_of_two().then(|| vec![c.trailing_zeros() as u64])
}

fn mask_of_power<const BITS: u32>(c: &[u64]) -> Option<Vec<u64>> {
    let c = low(c[0], BITS);
    c.is_power_of_two().then(|| vec![c - 1])
}

/// `c = 2^k + 1` with `k >= 1`.
fn log2_of_power_plus_one<const BITS: u32>(c: &[u64]) -> Option<Vec<u64>> {
    let c = low(c[0], BITS);
    let p = c.wrapping_sub(1);
    (c > 2 && p.is_power_of_two()).then(|| vec![p.trailing_zeros() as u64])
}

/// `c = 2^k - 1` with `2 <= k < width` (at `k = width` the shift count would be masked).
fn log2_of_power_minus_one<const BITS: u32>(c: &[u64]) -> Option<Vec<u64>> {
    let c = low(c[0], BITS);
    let p = c.wrapping_add(1);
    (c > 2 && p.is_power_of_two() && p.trailing_zeros() < BITS)
        .then(|| vec![p.trailing_zeros() as u64])
}

pub fn table() -> RuleTable {
    let mut rules = Vec::new();
    macro_rules! per_width {
        ($bits:literal) => {
            rules.push(
                RuleSpec::new(
                    concat!("mul-pow2-w", $bits),
                    concat!("(mul.w", $bits, " ?x ?c)"),
                    concat!("(lsh.w", $bits, " ?x ?k)"),
                )
                .when_const(&["?c"])
                .deriving(&["?k"], log2_of_power::<$bits>),
            );
            rules.push(
                RuleSpec::new(
                    concat!("div-pow2-w", $bits),
                    concat!("(div.w", $bits, " ?x ?c)"),
                    concat!("(rsh.w", $bits, " ?x ?k)"),
                )
                .when_const(&["?c"])
                .deriving(&["?k"], log2_of_power::<$bits>),
            );
            rules.push(
                RuleSpec::new(
                    concat!("mod-pow2-w", $bits),
                    concat!("(mod.w", $bits, " ?x ?c)"),
                    concat!("(and.w", $bits, " ?x ?m)"),
                )
                .when_const(&["?c"])
                .deriving(&["?m"], mask_of_power::<$bits>),
            );
            rules.push(
                RuleSpec::new(
                    concat!("mul-pow2-plus-one-w", $bits),
                    concat!("(mul.w", $bits, " ?x ?c)"),
                    concat!("(add.w", $bits, " (lsh.w", $bits, " ?x ?k) ?x)"),
                )
                .when_const(&["?c"])
                .deriving(&["?k"], log2_of_power_plus_one::<$bits>),
            );
            rules.push(
                RuleSpec::new(
                    concat!("mul-pow2-minus-one-w", $bits),
                    concat!("(mul.w", $bits, " ?x ?c)"),
                    concat!("(sub.w", $bits, " (lsh.w", $bits, " ?x ?k) ?x)"),
                )
                .when_const(&["?c"])
                .deriving(&["?k"], log2_of_power_minus_one::<$bits>),
            );
        };
    }
    per_width!(32);
    per_width!(64);
    RuleTable {
        name: "strength",
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    crate::egraph::rules::soundness::rule_table_tests!(table);
}
