//! The native backend: optimized IR to machine code for x86-64 and aarch64 through Cranelift.
//!
//! - [`lower`]: IR to Cranelift IR, into any `cranelift_module::Module`;
//! - [`abi`]: the context block and the callbacks that native code and its host share;
//! - [`object`]: a relocatable ELF object and the C header that describes it.
//!
//! This crate generates code and never runs it: the in-process JIT lives in `sim::native`,
//! which lowers into a `cranelift_jit::JITModule` with [`lower::lower_module`] and
//! [`isa`]`(NativeTarget::Host)`. [`compile_module`] compiles for any target into memory and
//! returns what was generated (sizes, Cranelift IR text, imports), for inspection and tests.

pub mod abi;
pub mod lower;
pub mod object;

pub use lower::{lower_module, HelperLinkage, LowerOptions, Lowered, Regalloc};
pub use object::{c_header, write_object};

use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use frontend::Diagnostic;

/// The machine to generate code for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NativeTarget {
    /// The machine nicc runs on (for the JIT).
    Host,
    X86_64,
    Aarch64,
}

impl NativeTarget {
    /// The target triple of a named target (`None` for the host).
    pub fn triple(self) -> Option<&'static str> {
        match self {
            NativeTarget::Host => None,
            NativeTarget::X86_64 => Some("x86_64-unknown-linux-gnu"),
            NativeTarget::Aarch64 => Some("aarch64-unknown-linux-gnu"),
        }
    }

    /// The target of a command-line name (`x86_64`, `aarch64`, `host`).
    pub fn from_name(name: &str) -> Option<NativeTarget> {
        match name {
            "host" | "native" => Some(NativeTarget::Host),
            "x86_64" | "x86-64" | "amd64" => Some(NativeTarget::X86_64),
            "aarch64" | "arm64" => Some(NativeTarget::Aarch64),
            _ => None,
        }
    }
}

/// The instruction set for `target`, optimizing for speed. `pic` selects position-independent
/// code (objects); the JIT wants absolute addresses instead.
pub fn isa(target: NativeTarget, pic: bool) -> Result<OwnedTargetIsa, Diagnostic> {
    isa_with(target, pic, Regalloc::Backtracking)
}

/// [`isa`] with a choice of register allocator.
pub fn isa_with(
    target: NativeTarget,
    pic: bool,
    regalloc: Regalloc,
) -> Result<OwnedTargetIsa, Diagnostic> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v)
            .map_err(|e| Diagnostic::new(format!("cannot set Cranelift flag {k}={v}: {e}")))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", if pic { "true" } else { "false" })?;
    // Calls into the runtime may be anywhere in the address space.
    set(&mut flags, "use_colocated_libcalls", "false")?;
    let algorithm = match regalloc {
        Regalloc::Backtracking => "backtracking",
        Regalloc::SinglePass => "single_pass",
    };
    set(&mut flags, "regalloc_algorithm", algorithm)?;
    let builder = match target.triple() {
        None => cranelift_native::builder().map_err(|m| {
            Diagnostic::new(format!("this host is not supported by Cranelift: {m}"))
        })?,
        Some(t) => cranelift_codegen::isa::lookup_by_name(t)
            .map_err(|e| Diagnostic::new(format!("Cranelift cannot generate code for {t}: {e}")))?,
    };
    builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| Diagnostic::new(format!("cannot configure Cranelift for {target:?}: {e}")))
}

/// What [`compile_module`] generated.
#[derive(Clone, Debug)]
pub struct NativeArtifact {
    pub target: NativeTarget,
    /// The relocatable object (ELF), with one exported entry per program.
    pub object: Vec<u8>,
    /// The C header describing the entries, the context block and the maps.
    pub header: String,
    /// The linkage name of every IR function, indexed like `Module::functions`.
    pub symbols: Vec<String>,
    /// The size in bytes of every function's machine code, indexed like `symbols`.
    pub code_sizes: Vec<u64>,
    /// The runtime symbols the code needs.
    pub imports: Vec<String>,
    /// The Cranelift IR of every function, as text.
    pub clif: Vec<String>,
    /// Memory accesses lowered (unchecked, with an inline check, through the runtime).
    pub access_counts: (usize, usize, usize),
}

/// Compiles every function of `module` for `target` (helpers linked per symbol, as in an
/// object) and returns the object, its header and what went into them.
pub fn compile_module(
    module: &ir::Module,
    target: NativeTarget,
) -> Result<NativeArtifact, Diagnostic> {
    object::compile(module, target, &LowerOptions::default())
}

/// [`compile_module`] with lowering options, such as the packet accesses that range analysis
/// proved in bounds (helpers are linked per symbol whatever `options` say).
pub fn compile_module_with(
    module: &ir::Module,
    target: NativeTarget,
    options: &LowerOptions,
) -> Result<NativeArtifact, Diagnostic> {
    object::compile(module, target, options)
}
