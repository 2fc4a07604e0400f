//! Shifts: zero counts, counts the hardware masks anyway, chains of constant shifts, and
//! shift pairs that are masks or sign extensions.
//!
//! BPF masks a shift count to the operand width (63 or 31), so an explicit `and 63` on a count
//! is redundant, and a constant count can always be brought into range, which the kernel
//! verifier requires of an immediate count.

use super::{both_widths, RuleSpec, RuleTable};

/// Shift count mask and width for `w32`/`w64`.
fn width_of(bits: u32) -> (u64, u64) {
    (bits as u64 - 1, bits as u64)
}

fn derive_masked_count_32(c: &[u64]) -> Option<Vec<u64>> {
    (c[0] > 31).then(|| vec![c[0] & 31])
}

fn derive_masked_count_64(c: &[u64]) -> Option<Vec<u64>> {
    (c[0] > 63).then(|| vec![c[0] & 63])
}

/// Two logical shifts in the same direction by constants: one shift by the sum, if the sum
/// is still inside the width.
fn derive_sum_in_range<const BITS: u32>(c: &[u64]) -> Option<Vec<u64>> {
    let (mask, width) = width_of(BITS);
    let sum = (c[0] & mask) + (c[1] & mask);
    (sum < width).then(|| vec![sum])
}

/// Two logical shifts in the same direction whose counts add up to the width or more: every
/// bit is shifted out.
fn sum_out_of_range<const BITS: u32>(c: &[u64]) -> Option<Vec<u64>> {
    let (mask, width) = width_of(BITS);
    ((c[0] & mask) + (c[1] & mask) >= width).then(Vec::new)
}

/// Two arithmetic right shifts: the counts add up, saturating at the top bit.
fn derive_arsh_sum<const BITS: u32>(c: &[u64]) -> Option<Vec<u64>> {
    let (mask, _) = width_of(BITS);
    Some(vec![((c[0] & mask) + (c[1] & mask)).min(mask)])
}

/// `(x << k) >> k` keeps the low `width - k` bits: the mask to `and` with.
fn derive_low_mask<const BITS: u32>(c: &[u64]) -> Option<Vec<u64>> {
    let (mask, _) = width_of(BITS);
    let k = c[0] & mask;
    let all = if BITS == 32 {
        u32::MAX as u64
    } else {
        u64::MAX
    };
    Some(vec![all >> k])
}

/// `(x >> k) << k` clears the low `k` bits.
fn derive_high_mask<const BITS: u32>(c: &[u64]) -> Option<Vec<u64>> {
    let (mask, _) = width_of(BITS);
    let k = c[0] & mask;
    let all = if BITS == 32 {
        u32::MAX as u64
    } else {
        u64::MAX
    };
    Some(vec![(all << k) & all])
}

pub fn table() -> RuleTable {
    let mut rules: Vec<RuleSpec> = Vec::new();
    for op in ["lsh", "rsh", "arsh"] {
        rules.extend(both_widths(
            &format!("{op}-zero"),
            &format!("({op}.{{w}} ?x 0)"),
            "(zx ?x)",
        ));
        rules.extend(both_widths(
            &format!("{op}-of-zero"),
            &format!("({op}.{{w}} 0 ?x)"),
            "0",
        ));
        // The count is masked by the operation itself.
        for (bits, mask) in [(32, 31), (64, 63)] {
            for and in ["and.w32", "and.w64"] {
                rules.push(RuleSpec::new(
                    format!("{op}-count-mask-{and}-w{bits}"),
                    format!("({op}.w{bits} ?x ({and} ?y {mask}))"),
                    format!("({op}.w{bits} ?x ?y)"),
                ));
            }
            rules.push(
                RuleSpec::new(
                    format!("{op}-count-in-range-w{bits}"),
                    format!("({op}.w{bits} ?x ?c)"),
                    format!("({op}.w{bits} ?x ?k)"),
                )
                .when_const(&["?c"])
                .deriving(
                    &["?k"],
                    if bits == 32 {
                        derive_masked_count_32
                    } else {
                        derive_masked_count_64
                    },
                ),
            );
        }
    }
    // Chains of constant shifts.
    for op in ["lsh", "rsh"] {
        rules.push(
            RuleSpec::new(
                format!("{op}-{op}-combine-w32"),
                format!("({op}.w32 ({op}.w32 ?x ?a) ?b)"),
                format!("({op}.w32 ?x ?k)"),
            )
            .when_const(&["?a", "?b"])
            .deriving(&["?k"], derive_sum_in_range::<32>),
        );
        rules.push(
            RuleSpec::new(
                format!("{op}-{op}-combine-w64"),
                format!("({op}.w64 ({op}.w64 ?x ?a) ?b)"),
                format!("({op}.w64 ?x ?k)"),
            )
            .when_const(&["?a", "?b"])
            .deriving(&["?k"], derive_sum_in_range::<64>),
        );
        rules.push(
            RuleSpec::new(
                format!("{op}-{op}-out-w32"),
                format!("({op}.w32 ({op}.w32 ?x ?a) ?b)"),
                "0",
            )
            .when_const(&["?a", "?b"])
            .deriving(&[], sum_out_of_range::<32>),
        );
        rules.push(
            RuleSpec::new(
                format!("{op}-{op}-out-w64"),
                format!("({op}.w64 ({op}.w64 ?x ?a) ?b)"),
                "0",
            )
            .when_const(&["?a", "?b"])
            .deriving(&[], sum_out_of_range::<64>),
        );
    }
    rules.push(
        RuleSpec::new(
            "arsh-arsh-combine-w32",
            "(arsh.w32 (arsh.w32 ?x ?a) ?b)",
            "(arsh.w32 ?x ?k)",
        )
        .when_const(&["?a", "?b"])
        .deriving(&["?k"], derive_arsh_sum::<32>),
    );
    rules.push(
        RuleSpec::new(
            "arsh-arsh-combine-w64",
            "(arsh.w64 (arsh.w64 ?x ?a) ?b)",
            "(arsh.w64 ?x ?k)",
        )
        .when_const(&["?a", "?b"])
        .deriving(&["?k"], derive_arsh_sum::<64>),
    );
    // Shift pairs that are masks.
    rules.push(
        RuleSpec::new(
            "lsh-rsh-mask-w32",
            "(rsh.w32 (lsh.w32 ?x ?c) ?c)",
            "(and.w32 ?x ?m)",
        )
        .when_const(&["?c"])
        .deriving(&["?m"], derive_low_mask::<32>),
    );
    rules.push(
        RuleSpec::new(
            "lsh-rsh-mask-w64",
            "(rsh.w64 (lsh.w64 ?x ?c) ?c)",
            "(and.w64 ?x ?m)",
        )
        .when_const(&["?c"])
        .deriving(&["?m"], derive_low_mask::<64>),
    );
    rules.push(RuleSpec::new(
        "lsh-rsh-32-is-zext",
        "(rsh.w64 (lsh.w64 ?x 32) 32)",
        "(mov.w32 ?x)",
    ));
    rules.push(
        RuleSpec::new(
            "rsh-lsh-mask-w32",
            "(lsh.w32 (rsh.w32 ?x ?c) ?c)",
            "(and.w32 ?x ?m)",
        )
        .when_const(&["?c"])
        .deriving(&["?m"], derive_high_mask::<32>),
    );
    rules.push(
        RuleSpec::new(
            "rsh-lsh-mask-w64",
            "(lsh.w64 (rsh.w64 ?x ?c) ?c)",
            "(and.w64 ?x ?m)",
        )
        .when_const(&["?c"])
        .deriving(&["?m"], derive_high_mask::<64>),
    );
    // Shift pairs that are sign extensions.
    for (k, ext) in [(56, "movsx8.w64"), (48, "movsx16.w64"), (32, "movsx32.w64")] {
        rules.push(RuleSpec::new(
            format!("lsh-arsh-{k}-is-{ext}"),
            format!("(arsh.w64 (lsh.w64 ?x {k}) {k})"),
            format!("({ext} ?x)"),
        ));
    }
    for (k, ext) in [(24, "movsx8.w32"), (16, "movsx16.w32")] {
        rules.push(RuleSpec::new(
            format!("lsh-arsh-{k}-is-{ext}"),
            format!("(arsh.w32 (lsh.w32 ?x {k}) {k})"),
            format!("({ext} ?x)"),
        ));
    }
    // A logical right shift of a value already below 2^k by k or more gives zero.
    for k in [8u32, 16, 32] {
        rules.push(
            RuleSpec::new(
                format!("rsh-all-bits-{k}"),
                format!("(rsh.w64 ?x {k})"),
                "0",
            )
            .when_bits("?x", k),
        );
    }
    RuleTable {
        name: "shifts",
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    crate::egraph::rules::soundness::rule_table_tests!(table);
}
