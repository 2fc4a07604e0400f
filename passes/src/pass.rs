//! The interface every transformation implements, and what passes share while a pipeline runs.
//!
//! A [`Pass`] rewrites a whole [`ir::Module`] in place and says whether it changed anything, so
//! the [`crate::pipeline::PassManager`] can time it, verify the IR after it, and report which
//! passes did work. Passes are whole-module (not per-function) because some of them need to see
//! callees (what a `call` may write) and because the e-graph optimizer works per module.
//!
//! The [`PassContext`] carries what is not IR: the target the pipeline prepares code for (the
//! e-graph optimizer extracts by that target's cost), counters that passes bump so reports can
//! say what each pass did, and analysis results that later stages query, such as which packet
//! accesses range analysis proved in bounds.

use ir::{FuncRef, Inst, Module, SrcLoc};
use std::collections::BTreeMap;
use std::fmt;

/// The machine the optimized IR is for. Passes that choose between equivalent forms (the
/// e-graph's extraction) ask the target which form is cheapest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// BPF bytecode for the kernel: cost is instruction count, and the output must still pass
    /// the kernel verifier.
    #[default]
    Bpf,
    /// Native code through Cranelift: cost is latency.
    Native,
    /// NFP-style microengines: cost is cycles.
    Nfp,
    /// A hardware pipeline: cost is area and logic depth.
    Hw,
}

impl Target {
    pub const ALL: [Target; 4] = [Target::Bpf, Target::Native, Target::Nfp, Target::Hw];

    pub fn name(self) -> &'static str {
        match self {
            Target::Bpf => "bpf",
            Target::Native => "native",
            Target::Nfp => "nfp",
            Target::Hw => "hw",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Named counters, kept sorted so that printed statistics are deterministic. Keys are
/// `pass.counter` (for example `dce.removed_insts`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statistics {
    counters: BTreeMap<String, u64>,
}

impl Statistics {
    /// Adds `n` to the counter `counter` of pass `pass`.
    pub fn add(&mut self, pass: &str, counter: &str, n: u64) {
        if n == 0 {
            return;
        }
        *self
            .counters
            .entry(format!("{pass}.{counter}"))
            .or_default() += n;
    }

    /// The value of a counter (`pass.counter`), zero when it was never bumped.
    pub fn get(&self, key: &str) -> u64 {
        self.counters.get(key).copied().unwrap_or(0)
    }

    /// Every counter, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counters.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

/// Analysis results that outlive the pass computing them, for later passes and backends.
///
/// The results describe the IR as it stood when they were computed. The pass manager drops
/// them when a later pass changes the module (unless that pass declares that it preserves
/// them), so whatever is still here after a pipeline describes the final IR.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalysisResults {
    /// For each function, every packet load, store or atomic in the layout, and whether range
    /// analysis proved it inside `[data, data_end)` on every path reaching it. Backends that
    /// check packet accesses at run time (native code, hardware) may drop the check for the
    /// proven ones. Filled by the `bounds-check` pass.
    pub packet_accesses: Option<BTreeMap<FuncRef, BTreeMap<Inst, bool>>>,
}

impl AnalysisResults {
    /// Whether the packet access `inst` of `func` was proven in bounds; `None` when no
    /// analysis result is available or `inst` is not a packet access.
    pub fn packet_access_in_bounds(&self, func: FuncRef, inst: Inst) -> Option<bool> {
        self.packet_accesses
            .as_ref()?
            .get(&func)?
            .get(&inst)
            .copied()
    }
}

/// What passes share during one pipeline run.
#[derive(Clone, Debug, Default)]
pub struct PassContext {
    pub target: Target,
    pub stats: Statistics,
    pub analyses: AnalysisResults,
}

impl PassContext {
    pub fn new(target: Target) -> PassContext {
        PassContext {
            target,
            ..PassContext::default()
        }
    }
}

/// Why a pass (or the verifier after it) gave up. Names the pass and, where known, the
/// function, the instruction and the BPF slot it came from, so the report points at code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassError {
    pub pass: String,
    pub function: Option<String>,
    pub inst: Option<Inst>,
    pub srcloc: Option<SrcLoc>,
    pub message: String,
}

impl PassError {
    /// An error of pass `pass` with no location.
    pub fn new(pass: impl Into<String>, message: impl Into<String>) -> PassError {
        PassError {
            pass: pass.into(),
            function: None,
            inst: None,
            srcloc: None,
            message: message.into(),
        }
    }

    /// The same error, located in function `name`.
    pub fn in_function(mut self, name: impl Into<String>) -> PassError {
        self.function = Some(name.into());
        self
    }

    /// The same error, located at `inst` (which came from BPF slot `srcloc`).
    pub fn at_inst(mut self, inst: Inst, srcloc: SrcLoc) -> PassError {
        self.inst = Some(inst);
        if !srcloc.is_none() {
            self.srcloc = Some(srcloc);
        }
        self
    }
}

impl fmt::Display for PassError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pass {}", self.pass)?;
        if let Some(name) = &self.function {
            write!(f, ", function %{name}")?;
        }
        if let Some(inst) = self.inst {
            write!(f, ", {inst}")?;
        }
        if let Some(loc) = self.srcloc {
            write!(f, " (BPF insn {})", loc.insn)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PassError {}

/// A transformation (or an analysis that records its results in the context) over a module.
pub trait Pass {
    /// The name pipelines and `nicc ir --after` use (`simplify-cfg`, `dce`).
    fn name(&self) -> &'static str;

    /// One sentence saying what the pass does, for `--help`.
    fn description(&self) -> &'static str;

    /// Runs the pass over every function of `module`. Returns whether the module changed.
    /// A pass that is not sure a rewrite is sound leaves the code as it is.
    fn run(&mut self, module: &mut Module, ctx: &mut PassContext) -> Result<bool, PassError>;

    /// True when the analysis results in the context stay valid after this pass changed the
    /// module (because the pass only records results, or keeps them up to date itself).
    fn preserves_analyses(&self) -> bool {
        false
    }
}
