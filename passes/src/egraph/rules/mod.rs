//! Rewrite rules, split by topic, each topic a named table with its own tests.
//!
//! Rules are directional: each one turns a form into one that is simpler or that another rule
//! or a cost function can use, and none states a blanket algebraic law such as commutativity or
//! associativity, which would let the e-graph grow with every permutation of every sum (the
//! philosophy of Cranelift's mid-end rules). Constants are moved to the right-hand operand and
//! combined, so one canonical form is enough to match.
//!
//! A rule is data ([`RuleSpec`]): a left pattern, a right pattern, facts the left side's
//! variables must have ([`Need`]: a constant, or a value of at most `n` bits), and optionally a
//! function that computes constants the right side needs from the constants the left side
//! bound (the shift for a multiplication by a power of two). Keeping rules as data is what
//! makes the soundness test complete: it walks [`all_tables`], instantiates every rule with
//! random values and evaluates both sides with `ir::semantics`, so a rule cannot be added
//! without being tested.
//!
//! Being exact about BPF: a 32-bit operation zero-extends its result, so `add.w32 x, 0` is
//! `mov.w32 x`, not `x`; shifts mask their count; division by zero gives 0 and modulo by zero
//! the dividend; signed division overflow wraps.

pub mod address;
pub mod arith;
pub mod byteswap;
pub mod comparisons;
pub mod extensions;
pub mod narrowing;
pub mod shifts;
pub mod strength;

use super::analysis::{BpfAnalysis, BpfEGraph};
use super::language::{eval_node, BpfLang};
use egg::{Applier, ENodeOrVar, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};
use std::collections::HashMap;

/// A fact a left-side variable must have for the rule to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The variable's class is a known constant.
    Const,
    /// Every value of the variable's class is below `2^n`.
    Bits(u32),
}

/// Computes the right side's extra constants from the left side's constants (the values of the
/// `Need::Const` variables, in the order they were listed); `None` when the rule does not
/// apply to these constants.
pub type DeriveFn = fn(&[u64]) -> Option<Vec<u64>>;

/// One rewrite rule, as data. See the module documentation.
#[derive(Clone, Debug)]
pub struct RuleSpec {
    pub name: String,
    pub lhs: String,
    pub rhs: String,
    pub needs: Vec<(String, Need)>,
    /// Variables of the right side that `derive` computes.
    pub derived: Vec<String>,
    pub derive: Option<DeriveFn>,
}

impl RuleSpec {
    /// An unconditional rule.
    pub fn new(name: impl Into<String>, lhs: impl Into<String>, rhs: impl Into<String>) -> Self {
        RuleSpec {
            name: name.into(),
            lhs: lhs.into(),
            rhs: rhs.into(),
            needs: Vec::new(),
            derived: Vec::new(),
            derive: None,
        }
    }

    /// Requires the listed variables to be constants.
    pub fn when_const(mut self, vars: &[&str]) -> Self {
        self.needs
            .extend(vars.iter().map(|v| (v.to_string(), Need::Const)));
        self
    }

    /// Requires every value of `var` to fit in `bits` bits.
    pub fn when_bits(mut self, var: &str, bits: u32) -> Self {
        self.needs.push((var.to_string(), Need::Bits(bits)));
        self
    }

    /// Computes the right side's variables `vars` with `derive`.
    pub fn deriving(mut self, vars: &[&str], derive: DeriveFn) -> Self {
        self.derived = vars.iter().map(|v| v.to_string()).collect();
        self.derive = Some(derive);
        self
    }

    /// The variables that must be constants, in order.
    pub fn const_vars(&self) -> Vec<&str> {
        self.needs
            .iter()
            .filter(|(_, n)| *n == Need::Const)
            .map(|(v, _)| v.as_str())
            .collect()
    }

    /// Decides whether the rule applies to these constants (of [`RuleSpec::const_vars`]) and
    /// computes the derived constants.
    pub fn derive_constants(&self, constants: &[u64]) -> Option<Vec<u64>> {
        let derived = match self.derive {
            Some(f) => f(constants)?,
            None => Vec::new(),
        };
        (derived.len() == self.derived.len()).then_some(derived)
    }

    /// The parsed left and right patterns.
    pub fn patterns(&self) -> Result<(Pattern<BpfLang>, Pattern<BpfLang>), String> {
        let lhs: Pattern<BpfLang> = self
            .lhs
            .parse()
            .map_err(|e| format!("rule {}: left side: {e}", self.name))?;
        let rhs: Pattern<BpfLang> = self
            .rhs
            .parse()
            .map_err(|e| format!("rule {}: right side: {e}", self.name))?;
        Ok((lhs, rhs))
    }

    /// The egg rewrite for this rule.
    pub fn to_rewrite(&self) -> Result<Rewrite<BpfLang, BpfAnalysis>, String> {
        let (lhs, rhs) = self.patterns()?;
        let lhs_vars = lhs.vars();
        let var = |name: &str| -> Result<Var, String> {
            name.parse()
                .map_err(|e| format!("rule {}: variable {name}: {e:?}", self.name))
        };
        for v in rhs.vars() {
            if !lhs_vars.contains(&v) && !self.derived.iter().any(|d| var(d) == Ok(v)) {
                return Err(format!("rule {}: {v} is bound by neither side", self.name));
            }
        }
        if self.needs.is_empty() && self.derived.is_empty() {
            return Rewrite::new(self.name.clone(), lhs, rhs);
        }
        let needs = self
            .needs
            .iter()
            .map(|(v, n)| Ok((var(v)?, *n)))
            .collect::<Result<Vec<_>, String>>()?;
        for (v, _) in &needs {
            if !lhs_vars.contains(v) {
                return Err(format!("rule {}: condition on unbound {v}", self.name));
            }
        }
        let derived = self
            .derived
            .iter()
            .map(|v| var(v))
            .collect::<Result<Vec<_>, String>>()?;
        let applier = GuardedApplier {
            rhs,
            needs,
            derived,
            spec: self.clone(),
        };
        Rewrite::new(self.name.clone(), lhs, applier)
    }
}

/// Applies a rule's right side once its conditions hold, adding derived constants first.
struct GuardedApplier {
    rhs: Pattern<BpfLang>,
    needs: Vec<(Var, Need)>,
    derived: Vec<Var>,
    spec: RuleSpec,
}

impl Applier<BpfLang, BpfAnalysis> for GuardedApplier {
    fn apply_one(
        &self,
        egraph: &mut BpfEGraph,
        eclass: Id,
        subst: &Subst,
        searcher_ast: Option<&PatternAst<BpfLang>>,
        rule_name: Symbol,
    ) -> Vec<Id> {
        let mut constants = Vec::new();
        for (var, need) in &self.needs {
            let Some(&id) = subst.get(*var) else {
                return Vec::new();
            };
            let facts = egraph[id].data;
            match need {
                Need::Const => match facts.constant {
                    Some(c) => constants.push(c),
                    None => return Vec::new(),
                },
                Need::Bits(n) => {
                    if facts.bits > *n {
                        return Vec::new();
                    }
                }
            }
        }
        let Some(values) = self.spec.derive_constants(&constants) else {
            return Vec::new();
        };
        let mut subst = subst.clone();
        for (var, value) in self.derived.iter().zip(values) {
            let id = egraph.add(BpfLang::Const(value as i64));
            subst.insert(*var, id);
        }
        self.rhs
            .apply_one(egraph, eclass, &subst, searcher_ast, rule_name)
    }
}

/// A named group of rules on one topic.
#[derive(Clone, Debug)]
pub struct RuleTable {
    pub name: &'static str,
    pub rules: Vec<RuleSpec>,
}

/// The egg rewrites the optimizer runs for `target`: every table of [`all_tables`], and for BPF
/// also [`narrowing`], which the other targets do not run yet (its module says why).
pub fn rewrites_for(
    target: super::CostTarget,
) -> Result<Vec<Rewrite<BpfLang, BpfAnalysis>>, String> {
    let mut rewrites = all_rewrites()?;
    if target == super::CostTarget::BpfInsnCount {
        for rule in &narrowing::table().rules {
            rewrites.push(rule.to_rewrite()?);
        }
    }
    Ok(rewrites)
}

/// Every rule table the optimizer runs for every target.
pub fn all_tables() -> Vec<RuleTable> {
    vec![
        arith::table(),
        shifts::table(),
        extensions::table(),
        byteswap::table(),
        comparisons::table(),
        address::table(),
        strength::table(),
    ]
}

/// The egg rewrites of every table. A rule that does not compile is reported, not run.
pub fn all_rewrites() -> Result<Vec<Rewrite<BpfLang, BpfAnalysis>>, String> {
    all_tables()
        .iter()
        .flat_map(|t| t.rules.iter())
        .map(RuleSpec::to_rewrite)
        .collect()
}

/// Expands a rule template for both widths: `{w}` becomes `w32`/`w64`, `{ones}` the all-ones
/// constant of the width, and `(zx ?x)` the value `?x` as a result of that width (`?x` itself
/// at 64 bits, `mov.w32 ?x` at 32 bits, since a 32-bit result is zero-extended).
pub fn both_widths(name: &str, lhs: &str, rhs: &str) -> [RuleSpec; 2] {
    [32, 64].map(|bits| {
        let expand = |s: &str| expand_width(s, bits);
        RuleSpec::new(format!("{name}-w{bits}"), expand(lhs), expand(rhs))
    })
}

/// The template expansion of [`both_widths`] for one width.
pub fn expand_width(s: &str, bits: u32) -> String {
    let mut out = s
        .replace("{w}", if bits == 32 { "w32" } else { "w64" })
        .replace("{ones}", if bits == 32 { "4294967295" } else { "-1" });
    for var in ["?x", "?y", "?a", "?b"] {
        let from = format!("(zx {var})");
        let to = if bits == 32 {
            format!("(mov.w32 {var})")
        } else {
            var.to_string()
        };
        out = out.replace(&from, &to);
    }
    out
}

/// Evaluates a pattern as an expression, with `env` giving the values of its variables and
/// `ir::semantics` the meaning of its operators. `None` when a variable is unbound or the
/// pattern names a leaf value.
pub fn eval_pattern(pattern: &Pattern<BpfLang>, env: &HashMap<Var, u64>) -> Option<u64> {
    let nodes = pattern.ast.as_ref();
    let mut values: Vec<u64> = Vec::with_capacity(nodes.len());
    for node in nodes {
        let value = match node {
            ENodeOrVar::Var(v) => *env.get(v)?,
            ENodeOrVar::ENode(n) => {
                let args: Vec<u64> = n
                    .children()
                    .iter()
                    .map(|&c| values[usize::from(c)])
                    .collect();
                eval_node(n.op(), &args)?
            }
        };
        values.push(value);
    }
    values.last().copied()
}

use egg::Language as _;

/// The soundness harness shared by every table's tests.
#[cfg(test)]
pub(crate) mod soundness {
    use super::*;
    use crate::egraph::analysis::significant_bits;

    /// Values that break wrong rules: zero, one, all ones, sign bits, width boundaries, shift
    /// counts around the width, powers of two and masks.
    pub const EDGE_VALUES: [u64; 28] = [
        0,
        1,
        2,
        3,
        5,
        7,
        8,
        16,
        24,
        31,
        32,
        33,
        48,
        56,
        63,
        64,
        0x80,
        0xff,
        0xffff,
        0x8000,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x1_0000_0000,
        i64::MAX as u64,
        i64::MIN as u64,
        u64::MAX,
        0x1234_5678_9abc_def0,
    ];

    /// The outcome of instantiating one rule with one assignment.
    pub enum Outcome {
        /// The rule's conditions do not hold for these values.
        NotApplicable,
        Equal,
        Differ {
            lhs: u64,
            rhs: u64,
            env: String,
        },
    }

    /// A rule with its patterns and variables parsed once, for fast repeated evaluation.
    pub struct Prepared<'r> {
        pub rule: &'r RuleSpec,
        lhs: Pattern<BpfLang>,
        rhs: Pattern<BpfLang>,
        vars: Vec<Var>,
        bits: Vec<(Var, u32)>,
        const_vars: Vec<Var>,
        derived: Vec<Var>,
    }

    impl<'r> Prepared<'r> {
        pub fn new(rule: &'r RuleSpec) -> Prepared<'r> {
            let (lhs, rhs) = rule.patterns().unwrap_or_else(|e| panic!("{e}"));
            let var = |name: &str| name.parse::<Var>().unwrap();
            Prepared {
                rule,
                vars: lhs.vars(),
                bits: rule
                    .needs
                    .iter()
                    .filter_map(|(v, n)| match n {
                        Need::Bits(b) => Some((var(v), *b)),
                        Need::Const => None,
                    })
                    .collect(),
                const_vars: rule.const_vars().into_iter().map(var).collect(),
                derived: rule.derived.iter().map(|v| var(v)).collect(),
                lhs,
                rhs,
            }
        }

        pub fn var_count(&self) -> usize {
            self.vars.len()
        }

        /// Instantiates the rule with `values` (one per left-side variable, in the order of
        /// the pattern's variables, cycling if there are fewer; a variable with a bit
        /// condition is masked to fit it) and evaluates both sides.
        pub fn instantiate(&self, values: &[u64]) -> Outcome {
            let mut env = HashMap::new();
            for (i, v) in self.vars.iter().enumerate() {
                let mut value = values[i % values.len()];
                for (var, n) in &self.bits {
                    if var == v && significant_bits(value) > *n {
                        value &= (1u64 << n) - 1;
                    }
                }
                env.insert(*v, value);
            }
            let constants: Vec<u64> = self.const_vars.iter().map(|v| env[v]).collect();
            let Some(derived) = self.rule.derive_constants(&constants) else {
                return Outcome::NotApplicable;
            };
            for (var, value) in self.derived.iter().zip(derived) {
                env.insert(*var, value);
            }
            let l = eval_pattern(&self.lhs, &env).expect("left side evaluates");
            let r = eval_pattern(&self.rhs, &env).expect("right side evaluates");
            if l == r {
                return Outcome::Equal;
            }
            let mut names: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v:#x}")).collect();
            names.sort();
            Outcome::Differ {
                lhs: l,
                rhs: r,
                env: names.join(" "),
            }
        }
    }

    /// Instantiates one rule once; see [`Prepared::instantiate`].
    pub fn instantiate(rule: &RuleSpec, values: &[u64]) -> Outcome {
        Prepared::new(rule).instantiate(values)
    }

    /// Checks every rule of a table on the grid of edge values (every combination for up to
    /// three variables) and fails if a rule is wrong or never applies.
    pub fn check_table_on_edges(table: &RuleTable) {
        for rule in &table.rules {
            rule.to_rewrite().unwrap_or_else(|e| panic!("{e}"));
            let prepared = Prepared::new(rule);
            let n = prepared.var_count().max(1);
            let grid = EDGE_VALUES.len();
            let combos = grid.pow(n.min(3) as u32);
            let mut applied = 0;
            for k in 0..combos {
                let values: Vec<u64> = (0..n)
                    .map(|i| EDGE_VALUES[(k / grid.pow((i % 3) as u32) + i) % grid])
                    .collect();
                match prepared.instantiate(&values) {
                    Outcome::NotApplicable => {}
                    Outcome::Equal => applied += 1,
                    Outcome::Differ { lhs, rhs, env } => panic!(
                        "rule {} of table {} is unsound: {} gives {lhs:#x}, {} gives {rhs:#x} with {env}",
                        rule.name, table.name, rule.lhs, rule.rhs
                    ),
                }
            }
            assert!(
                applied > 0,
                "rule {} of table {} never applied on the edge values, so it is untested",
                rule.name,
                table.name
            );
        }
    }

    /// Checks every rule of a table on one random assignment; used from proptests.
    pub fn check_table_on(table: &RuleTable, values: &[u64]) -> Result<(), String> {
        for rule in &table.rules {
            if let Outcome::Differ { lhs, rhs, env } = instantiate(rule, values) {
                return Err(format!(
                    "rule {} of table {} is unsound: {} gives {lhs:#x}, {} gives {rhs:#x} with {env}",
                    rule.name, table.name, rule.lhs, rule.rhs
                ));
            }
        }
        Ok(())
    }

    use proptest::prelude::*;

    /// Random operands that favour the values rules get wrong.
    pub fn operand() -> impl Strategy<Value = u64> {
        prop_oneof![
            3 => any::<u64>(),
            2 => proptest::sample::select(EDGE_VALUES.to_vec()),
            2 => 0u64..80,
            1 => (0u32..64).prop_map(|k| 1u64 << k),
            1 => (0u32..64).prop_map(|k| (1u64 << k).wrapping_sub(1)),
            1 => (0u32..64).prop_map(|k| 1u64.wrapping_shl(k).wrapping_add(1)),
            1 => any::<u32>().prop_map(|v| v as u64),
            1 => any::<i32>().prop_map(|v| v as i64 as u64),
        ]
    }

    /// Operands for one rule instantiation (rules have at most four variables).
    pub fn operands() -> impl Strategy<Value = Vec<u64>> {
        proptest::collection::vec(operand(), 4)
    }

    /// Declares the edge-grid test and the proptest of a rule table module.
    macro_rules! rule_table_tests {
        ($table:path) => {
            #[test]
            fn every_rule_is_sound_on_edge_values() {
                $crate::egraph::rules::soundness::check_table_on_edges(&$table());
            }

            proptest::proptest! {
                #![proptest_config(proptest::test_runner::Config::with_cases(512))]
                #[test]
                fn every_rule_is_sound_on_random_values(
                    values in $crate::egraph::rules::soundness::operands()
                ) {
                    let table = $table();
                    let result = $crate::egraph::rules::soundness::check_table_on(&table, &values);
                    proptest::prop_assert!(result.is_ok(), "{}", result.unwrap_err());
                }
            }
        };
    }
    pub(crate) use rule_table_tests;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_rule_compiles_and_names_are_unique() {
        let mut names = HashSet::new();
        let mut count = 0;
        for table in all_tables() {
            assert!(!table.rules.is_empty(), "table {} is empty", table.name);
            for rule in &table.rules {
                rule.to_rewrite().unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    names.insert(rule.name.clone()),
                    "duplicate rule {}",
                    rule.name
                );
                count += 1;
            }
        }
        assert_eq!(all_rewrites().unwrap().len(), count);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1024))]
        /// The soundness property over every rule of every table, so that a new table is
        /// covered even before it has tests of its own.
        #[test]
        fn every_rule_of_every_table_is_sound(values in soundness::operands()) {
            for table in all_tables() {
                let result = soundness::check_table_on(&table, &values);
                proptest::prop_assert!(result.is_ok(), "{}", result.unwrap_err());
            }
        }
    }

    #[test]
    fn a_wrong_rule_is_caught() {
        // `add.w32 x, 0` is not `x`: the 32-bit result is zero-extended.
        let wrong = RuleSpec::new("wrong", "(add.w32 ?x 0)", "?x");
        let caught = soundness::EDGE_VALUES.iter().any(|&v| {
            matches!(
                soundness::instantiate(&wrong, &[v]),
                soundness::Outcome::Differ { .. }
            )
        });
        assert!(caught);
    }

    #[test]
    fn width_templates_expand() {
        let [w32, w64] = both_widths("and-ones", "(and.{w} ?x {ones})", "(zx ?x)");
        assert_eq!(w32.lhs, "(and.w32 ?x 4294967295)");
        assert_eq!(w32.rhs, "(mov.w32 ?x)");
        assert_eq!(w64.lhs, "(and.w64 ?x -1)");
        assert_eq!(w64.rhs, "?x");
        assert_eq!(w64.name, "and-ones-w64");
    }
}
