//! The native engine: runs IR compiled to machine code by Cranelift's JIT on the runtime every
//! other engine uses, so its results can be compared with the interpreter's bit for bit.
//!
//! # The memory model, and why
//!
//! Native code keeps the interpreter's pointer values: a pointer is `region << 32 | offset`
//! ([`crate::runtime::memory`]), exactly as the interpreter and the IR executor compute it.
//! Each region that native code reaches inline (the packet, the stack frames, global data) has
//! a *bias* in the context block ([`backends::native::abi::NativeCtx`]), and the host address
//! of a value is `value + bias`. The alternative, real host addresses as pointer values, was
//! rejected for three reasons:
//!
//! 1. **Identical results.** Programs do compare, subtract, store and return pointers; with
//!    region pointers every such value is the interpreter's, so a verdict, a packet or a map
//!    snapshot cannot differ because a pointer does.
//! 2. **One runtime.** Helpers receive the very values the interpreter gives them, so maps and
//!    helpers run unchanged from [`crate::runtime::helpers`]: there is no translation of
//!    host addresses back into regions and no second copy of any helper.
//! 3. **Nothing is lost on speed.** An access proven safe is `load [value + bias]`, the same
//!    single add a host pointer would need to be formed; an access that is not proven is one
//!    subtract and compare against bounds held in the context block (packet: `data_meta` and
//!    `data_end`; stack: the 512-byte frame), and only what fails it, or what has no inline
//!    bounds (map values returned by lookups, unknown pointers), calls the runtime, which
//!    checks it as the interpreter does and faults with the interpreter's message.
//!
//! Host addresses handed to native code must stay put while a packet runs. They do: the frame
//! buffer (4096 bytes), the stacks (eight 512-byte frames) and array map storage are allocated
//! once and never resized during a run, and hash-like maps preallocate their value slab as the
//! kernel preallocates elements ([`crate::runtime::MapState::storage_is_stable`]), so the
//! value a lookup returns is reached inline through `ctx->value_regions` from then on. Only the
//! values of a hash map too large to preallocate may move (an insert grows the slab): their
//! entries are emptied after every helper that may insert, and native code then goes through
//! the runtime until the next lookup fills the entry again.
//!
//! # Helper calls
//!
//! A call of a helper the ABI names goes straight to that helper's own entry point
//! ([`cb_helper_direct`], one instance per helper id, so no switch on the id), which hands
//! the arguments to [`crate::runtime::helpers::call`], the same code every engine runs; any
//! other id goes through the dispatcher [`cb_helper`]. That path allocates nothing for the
//! helpers XDP programs call per packet (map lookup, update and delete, redirects,
//! head/meta/tail adjustment, checksums, clocks): keys are read onto the host stack (straight
//! from a live stack frame or the packet when they lie inside it), hash keys hash with a
//! multiply-rotate hasher, and a lookup result is registered in the value-region table once.
//! A lookup whose map native code knows and whose key lies in its own frame (most lookups:
//! the key is a local variable) calls [`cb_map_lookup`] with the map's index and the key's
//! offset in the frame instead: the host then neither decodes a map pointer nor checks the
//! key's region, and runs the helper's own lookup on the key
//! ([`crate::runtime::helpers::map_lookup_with_key`]).
//! Lookups in array maps of up to [`abi::LOOKUP_CACHE_MAX_ENTRIES`] entries make no call
//! after the first for a key: native code reads the pointer value and the host address of the
//! value from `ctx->lookup_cache`, and reads and writes the value at that address, the
//! counterpart of the kernel's inlined `array_map_gen_lookup`.
//!
//! # Executable memory
//!
//! `cranelift-jit` maps code pages read-write while it writes them and, in
//! `finalize_definitions`, turns them read-execute before any function pointer is handed out;
//! memory is never writable and executable at once. A test (`sim/tests/native.rs`) reads
//! `/proc/self/maps` to check the mapping of a compiled function.
//!
//! # What the engine does not model
//!
//! `XdpOutcome::insns_executed` is 0: native code does not count instructions. Runaway loops
//! are stopped by a back-edge budget equal to `RuntimeConfig::insn_budget`, which stops no
//! program the interpreter finishes (each back-edge is at least one BPF instruction).

// The workspace-wide error type `Diagnostic` is returned by value, as every stage does.
#![allow(clippy::result_large_err)]

use crate::runtime::helpers::{self, HelperOutcome};
use crate::runtime::memory::{
    make_addr, Access, Fault, MAX_CALL_FRAMES, REGION_FUNC, REGION_MEM, REGION_PACKET,
    REGION_STACK, STACK_SIZE,
};
use crate::runtime::{ExecState, Runtime, XdpInput, XdpOutcome};
use backends::native::abi::{
    self, AtomicCode, GlobalDesc, NativeCtx, RegionDesc, ValueRegionDesc, VALUE_REGION_BASE,
};
use backends::native::{isa_with, lower_module, HelperLinkage, LowerOptions, NativeTarget};
use cranelift_codegen::entity::EntityRef;
use cranelift_jit::{JITBuilder, JITModule};
use frontend::object::LineInfo;
use frontend::Diagnostic;
use ir::{FuncRef, Module};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The helper id of `bpf_tail_call`.
const HELPER_TAIL_CALL: u64 = 12;

/// The native signature of an IR function with up to five parameters.
type Entry0 = unsafe extern "C" fn(*mut NativeCtx) -> u64;
type Entry1 = unsafe extern "C" fn(*mut NativeCtx, u64) -> u64;
type Entry2 = unsafe extern "C" fn(*mut NativeCtx, u64, u64) -> u64;
type Entry3 = unsafe extern "C" fn(*mut NativeCtx, u64, u64, u64) -> u64;
type Entry4 = unsafe extern "C" fn(*mut NativeCtx, u64, u64, u64, u64) -> u64;
type Entry5 = unsafe extern "C" fn(*mut NativeCtx, u64, u64, u64, u64, u64) -> u64;

/// A compiled native function and its parameter count.
#[derive(Clone, Copy)]
struct NativeFn {
    ptr: *const u8,
    nparams: usize,
}

impl NativeFn {
    /// Calls the function with `args` (missing parameters are 0).
    ///
    /// # Safety
    /// `ptr` must be a function compiled by [`JitProgram::new`] with `nparams` parameters, its
    /// module still alive, and `ctx` a context block whose tables cover the module's maps and
    /// functions and whose `host` is the live [`Engine`] of this run.
    unsafe fn call(self, ctx: *mut NativeCtx, a: [u64; 5]) -> u64 {
        // SAFETY: the caller guarantees that `ptr` is a finalized function with this many
        // parameters, compiled with the platform's C calling convention.
        unsafe {
            match self.nparams {
                0 => std::mem::transmute::<*const u8, Entry0>(self.ptr)(ctx),
                1 => std::mem::transmute::<*const u8, Entry1>(self.ptr)(ctx, a[0]),
                2 => std::mem::transmute::<*const u8, Entry2>(self.ptr)(ctx, a[0], a[1]),
                3 => std::mem::transmute::<*const u8, Entry3>(self.ptr)(ctx, a[0], a[1], a[2]),
                4 => {
                    std::mem::transmute::<*const u8, Entry4>(self.ptr)(ctx, a[0], a[1], a[2], a[3])
                }
                _ => std::mem::transmute::<*const u8, Entry5>(self.ptr)(
                    ctx, a[0], a[1], a[2], a[3], a[4],
                ),
            }
        }
    }
}

/// A module compiled for this machine, ready to run one of its functions.
pub struct JitProgram {
    /// Owns the executable memory; `None` only while dropping.
    jit: Option<JITModule>,
    entry: FuncRef,
    functions: Vec<NativeFn>,
    /// Entry function of every program of the module, for tail calls.
    programs: Vec<FuncRef>,
    /// Map names, by module map index (runtime maps are found by name).
    map_names: Vec<String>,
    /// Maps whose value global data may live in (array maps), by module map index.
    direct_maps: Vec<bool>,
    /// Source lines by BPF instruction index, for diagnostics.
    lines: HashMap<u32, LineInfo>,
    name: String,
    /// Memory accesses lowered (unchecked, inline check, runtime).
    pub access_counts: (usize, usize, usize),
    /// Imported runtime symbols the code calls.
    pub imports: Vec<String>,
}

impl std::fmt::Debug for JitProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitProgram")
            .field("name", &self.name)
            .field("functions", &self.functions.len())
            .field("access_counts", &self.access_counts)
            .finish()
    }
}

impl Drop for JitProgram {
    fn drop(&mut self) {
        if let Some(jit) = self.jit.take() {
            // SAFETY: the function pointers into this module live only in `self.functions`,
            // which is being dropped with it, and no run is in progress (a run borrows `self`).
            unsafe { jit.free_memory() };
        }
    }
}

/// Errors of Cranelift's module layer, as diagnostics.
fn module_error(e: cranelift_module::ModuleError, name: &str) -> Diagnostic {
    Diagnostic::new(format!("JIT compilation failed: {e}")).program(name.to_string())
}

impl JitProgram {
    /// Compiles every function of `module` for this machine; [`run_xdp_native`] runs `entry`.
    pub fn new(module: &Module, entry: FuncRef) -> Result<JitProgram, Diagnostic> {
        JitProgram::with_options(module, entry, &LowerOptions::default())
    }

    /// [`JitProgram::new`] with lowering options (accesses proven safe by range analysis).
    pub fn with_options(
        module: &Module,
        entry: FuncRef,
        options: &LowerOptions,
    ) -> Result<JitProgram, Diagnostic> {
        let Some(func) = module.functions.get(entry) else {
            return Err(Diagnostic::new(format!(
                "function {entry} does not exist (the module has {} functions)",
                module.functions.len()
            )));
        };
        let name = func.name.clone();
        if let Some((_, f)) = module.functions.iter().find(|(_, f)| f.params.len() > 5) {
            return Err(Diagnostic::new(format!(
                "function `{}` has {} parameters; BPF functions take at most 5",
                f.name,
                f.params.len()
            )));
        }
        let isa = isa_with(NativeTarget::Host, false, options.regalloc)
            .map_err(|d| d.program(name.clone()))?;
        let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        let callbacks: [(&str, *const u8); 8] = [
            (abi::SYM_MAP_LOOKUP, cb_map_lookup as *const u8),
            (abi::SYM_LOAD, cb_load as *const u8),
            (abi::SYM_STORE, cb_store as *const u8),
            (abi::SYM_ATOMIC, cb_atomic as *const u8),
            (abi::SYM_ENTER_CALL, cb_enter_call as *const u8),
            (abi::SYM_TAIL_CALL, cb_tail_call as *const u8),
            (abi::SYM_MAP_VALUE_ADDR, cb_map_value_addr as *const u8),
            (abi::SYM_HELPER, cb_helper as *const u8),
        ];
        builder.symbols(callbacks);
        builder.symbols(direct_helper_symbols());
        let mut jit = JITModule::new(builder);
        let options = LowerOptions {
            helpers: HelperLinkage::Named,
            frame_key_lookups: true,
            ..options.clone()
        };
        let lowered = match lower_module(&mut jit, module, &options) {
            Ok(l) => l,
            Err(d) => {
                // SAFETY: nothing was finalized, so no pointer into the module exists.
                unsafe { jit.free_memory() };
                let prog = d.program.clone().unwrap_or(name);
                return Err(d.program(prog));
            }
        };
        if let Err(e) = jit.finalize_definitions() {
            // SAFETY: finalizing failed, so no function pointer was handed out.
            unsafe { jit.free_memory() };
            return Err(module_error(e, &name));
        }
        let functions = module
            .functions
            .iter()
            .map(|(f, func)| NativeFn {
                ptr: jit.get_finalized_function(lowered.functions[f.index()]),
                nparams: func.params.len(),
            })
            .collect();
        let mut lines = HashMap::new();
        for (_, f) in module.functions.iter() {
            for inst in f.insts() {
                let loc = f.srclocs[inst];
                if let Some(l) = module.line(loc) {
                    lines.entry(loc.insn).or_insert_with(|| LineInfo {
                        insn: loc.insn as usize,
                        file: l.file.clone(),
                        line: l.line,
                        column: l.column,
                        source: l.text.clone(),
                    });
                }
            }
        }
        Ok(JitProgram {
            jit: Some(jit),
            entry,
            functions,
            programs: module.programs.iter().map(|p| p.func).collect(),
            map_names: module.maps.values().map(|m| m.name.clone()).collect(),
            direct_maps: module
                .maps
                .values()
                .map(|m| m.map_type == 2 || m.map_type == 6)
                .collect(),
            lines,
            name,
            access_counts: lowered.access_counts,
            imports: lowered.imports,
        })
    }

    /// The name of the entry function.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host address of the compiled entry function (for tests of the code mapping).
    pub fn entry_address(&self) -> usize {
        self.functions[self.entry.index()].ptr as usize
    }
}

/// The state of one run, reached by the callbacks through `NativeCtx::host`.
struct Engine<'a> {
    program: &'a JitProgram,
    rt: &'a mut Runtime,
    st: ExecState,
    fault: Option<Fault>,
    /// `ctx->value_regions`: the map values native code reaches inline, by value region
    /// number. Entry 0 always exists (native code reads it in place of one out of range).
    values: Vec<ValueRegionDesc>,
    /// Entries whose storage a map update may move (hash-like maps grow their slab); they are
    /// invalidated after every helper that might insert.
    movable: Vec<usize>,
    /// `ctx->lookup_cache`: per module map, the results of array lookups by key (allocated
    /// once, never resized), and the pointers native code reads.
    lookup_tables: Vec<Option<Vec<u64>>>,
    lookup_pointers: Vec<*const u64>,
    /// The module map index of each runtime map, by runtime map index (`None` for maps the
    /// module does not use).
    module_map: Vec<Option<usize>>,
    /// The runtime map index of each module map (the other direction).
    runtime_maps: Vec<usize>,
}

/// Helpers that never insert into a map, so map value storage cannot move during them. Every
/// other helper invalidates the inline entries of maps whose storage grows.
fn keeps_map_storage(helper: u64) -> bool {
    matches!(
        helper,
        1 | 3
            | 5
            | 6
            | 7
            | 8
            | 23
            | 25
            | 28
            | 42
            | 44
            | 51
            | 54
            | 65
            | 69
            | 121
            | 125
            | 160
            | 188
            | 189
            | 190
            | 195
            | 208
    )
}

/// Maps whose value storage is allocated once and never moves: arrays, and hash maps whose
/// elements the runtime preallocates ([`crate::runtime::MapState::storage_is_stable`]).
fn stable_storage(map: &crate::runtime::MapState) -> bool {
    map.storage_is_stable()
}

/// Array maps, whose lookup result depends on the key alone (what the lookup cache needs).
fn array_storage(t: frontend::object::MapType) -> bool {
    matches!(
        t,
        frontend::object::MapType::Array | frontend::object::MapType::PercpuArray
    )
}

impl Engine<'_> {
    /// Makes the map value that pointer value `v` points into reachable inline, when `v` is a
    /// map value pointer; the entry matches what [`Runtime::access`] allows for that value.
    fn register_value(&mut self, ctx: &mut NativeCtx, v: u64) {
        let rid = v >> 32;
        let Some(n) = rid
            .checked_sub(VALUE_REGION_BASE)
            .filter(|n| *n < (1 << 24))
            .map(|n| n as usize)
        else {
            return;
        };
        // An entry still filled is current: nothing moved its value since it was filled.
        if self.values.get(n).is_some_and(|d| d.host != 0) {
            return;
        }
        let Some((m, slot, cpu)) = self.rt.value_region(n) else {
            return;
        };
        let Some(map) = self.rt.map_mut(m) else {
            return;
        };
        let read_only = map.read_only();
        let stable = stable_storage(map);
        let Some(value) = map.value_mut(slot, cpu) else {
            return;
        };
        let desc = ValueRegionDesc {
            host: value.as_mut_ptr() as u64,
            read_limit: value.len() as u32,
            write_limit: if read_only { 0 } else { value.len() as u32 },
        };
        if self.values.len() <= n {
            self.values.resize(n + 1, ValueRegionDesc::default());
        }
        self.values[n] = desc;
        if !stable && !self.movable.contains(&n) {
            self.movable.push(n);
        }
        self.publish_values(ctx);
    }

    /// Remembers what `bpf_map_lookup_elem(handle, key)` returned, when the map has a lookup
    /// cache: array lookups always give the same pointer value for the same key.
    fn cache_lookup(&mut self, handle: u64, key: u64, v: u64) {
        if v == 0 {
            return;
        }
        let Ok(m) = self.rt.map_of_pointer(handle) else {
            return;
        };
        let Some(&Some(i)) = self.module_map.get(m) else {
            return;
        };
        if !matches!(self.lookup_tables.get(i), Some(Some(_))) {
            return;
        }
        let Ok(k) = self.rt.load(&mut self.st, key, 4) else {
            return;
        };
        let host = self.direct_value_host(v);
        if let Some(Some(table)) = self.lookup_tables.get_mut(i) {
            let at = k as usize * 2;
            if let Some(e) = table.get_mut(at..at + 2) {
                e[0] = v;
                e[1] = host;
            }
        }
    }

    /// The host address of the map value pointer value `v` points to (at offset 0), when the
    /// program may read and write the whole value there for the rest of the run: the map's
    /// storage never moves and the map is writable. 0 otherwise.
    fn direct_value_host(&mut self, v: u64) -> u64 {
        if v & 0xffff_ffff != 0 {
            return 0;
        }
        let Some(n) = (v >> 32)
            .checked_sub(VALUE_REGION_BASE)
            .filter(|n| *n < (1 << 24))
            .map(|n| n as usize)
        else {
            return 0;
        };
        let Some((m, slot, cpu)) = self.rt.value_region(n) else {
            return 0;
        };
        let Some(map) = self.rt.map_mut(m) else {
            return 0;
        };
        if map.read_only() || !stable_storage(map) {
            return 0;
        }
        let size = map.def.value_size as usize;
        match map.value_mut(slot, cpu) {
            Some(value) if value.len() >= size => value.as_mut_ptr() as u64,
            _ => 0,
        }
    }

    /// The body of [`cb_map_lookup`].
    fn lookup_frame_key(
        &mut self,
        c: &mut NativeCtx,
        map: usize,
        key_offset: usize,
    ) -> Result<u64, Fault> {
        let frame = self.st.depth.saturating_sub(1);
        let m = self.runtime_maps.get(map).copied().unwrap_or(usize::MAX);
        let key_size = self
            .rt
            .maps()
            .get(m)
            .map_or(usize::MAX, |d| d.def.key_size as usize);
        let mut buf = [0u8; abi::FRAME_KEY_MAX as usize];
        let key = key_offset
            .checked_add(key_size)
            .and_then(|end| self.st.stacks.get(frame)?.get(key_offset..end))
            .filter(|k| k.len() <= buf.len());
        let Some(key) = key else {
            // The pointer values the program passed: the map's handle and the key's address.
            let handle = self.rt.map_handle(m as i64).unwrap_or(0);
            let key = make_addr(REGION_STACK + frame as u32, key_offset as u32);
            return helper_in_engine(self, c, 1, [handle, key, 0, 0, 0]);
        };
        let key = &mut buf[..key.len()];
        key.copy_from_slice(&self.st.stacks[frame][key_offset..key_offset + key.len()]);
        let v = helpers::map_lookup_with_key(self.rt, m, key)?;
        self.register_value(c, v);
        Ok(v)
    }

    /// Invalidates the entries of maps whose storage may have moved.
    fn invalidate_movable(&mut self, ctx: &mut NativeCtx) {
        if self.movable.is_empty() {
            return;
        }
        for n in self.movable.drain(..) {
            if let Some(e) = self.values.get_mut(n) {
                *e = ValueRegionDesc::default();
            }
        }
        self.publish_values(ctx);
    }

    /// Points the context block at the table (which may have been reallocated).
    fn publish_values(&self, ctx: &mut NativeCtx) {
        ctx.value_regions = self.values.as_ptr();
        ctx.value_region_count = self.values.len() as u64;
    }

    /// Brings the runtime's view of the call depth up to date before it checks an access.
    fn sync_in(&mut self, ctx: &NativeCtx) {
        self.st.depth = (ctx.depth as usize).clamp(1, MAX_CALL_FRAMES);
    }

    /// Copies the packet bounds, which helpers may have moved, into the context block.
    fn sync_out(&self, ctx: &mut NativeCtx) {
        if let Some(x) = self.st.xdp.as_ref() {
            ctx.pkt_data = make_addr(REGION_PACKET, x.data as u32);
            ctx.pkt_end = make_addr(REGION_PACKET, x.data_end as u32);
            ctx.pkt_meta = make_addr(REGION_PACKET, x.data_meta as u32);
        }
    }

    fn fail(&mut self, ctx: &mut NativeCtx, f: Fault) -> u64 {
        self.fault = Some(f);
        ctx.fault = abi::FAULT_CALLBACK;
        0
    }
}

/// Runs a callback body with the context block and the engine, turning a fault or a panic
/// into `ctx->fault`.
///
/// # Safety
/// `ctx` must be the context block of a run of [`run_native`], whose `host` points to that
/// run's live [`Engine`], and native code must not touch either while the callback runs (it is
/// suspended in the call).
#[inline(always)]
unsafe fn with_engine(
    ctx: *mut NativeCtx,
    f: impl FnOnce(&mut Engine, &mut NativeCtx) -> Result<u64, Fault>,
) -> u64 {
    // SAFETY: guaranteed by the caller; the engine and the block are distinct objects.
    let (ctx, eng) = unsafe {
        let ctx = &mut *ctx;
        let eng = &mut *(ctx.host as *mut Engine);
        (ctx, eng)
    };
    eng.sync_in(ctx);
    let r = catch_unwind(AssertUnwindSafe(|| f(eng, ctx)));
    match r {
        Ok(Ok(v)) => v,
        Ok(Err(fault)) => eng.fail(ctx, fault),
        Err(_) => eng.fail(
            ctx,
            Fault::new("internal error: the runtime panicked in a callback"),
        ),
    }
}

/// `nicc_map_lookup`: `bpf_map_lookup_elem` with the map given by its module index and the
/// key by its offset in the caller's frame, which native code found to hold the whole key.
/// The key is copied out of the frame and looked up by
/// [`helpers::map_lookup_with_key`], the helper's own code after it has read its operands;
/// the result is made reachable inline as after the helper. Anything unexpected (a map or
/// frame the engine does not have) goes through the helper with the pointer values the
/// program passed, so the fault, if any, is the helper's.
extern "C" fn cb_map_lookup(ctx: *mut NativeCtx, map: u64, key_offset: u64) -> u64 {
    // SAFETY: only native code of a run calls this, with its context block.
    unsafe {
        with_engine(ctx, |e, c| {
            e.lookup_frame_key(c, map as usize, key_offset as usize)
        })
    }
}

extern "C" fn cb_load(ctx: *mut NativeCtx, addr: u64, size: u64) -> u64 {
    // SAFETY: only native code of a run calls this, with its context block.
    unsafe { with_engine(ctx, |e, _| e.rt.load(&mut e.st, addr, size as usize)) }
}

extern "C" fn cb_store(ctx: *mut NativeCtx, addr: u64, size: u64, value: u64) -> u64 {
    // SAFETY: only native code of a run calls this, with its context block.
    unsafe {
        with_engine(ctx, |e, _| {
            e.rt.store(&mut e.st, addr, size as usize, value).map(|_| 0)
        })
    }
}

extern "C" fn cb_atomic(
    ctx: *mut NativeCtx,
    addr: u64,
    size: u64,
    op: u64,
    value: u64,
    expected: u64,
) -> u64 {
    // SAFETY: only native code of a run calls this, with its context block.
    unsafe {
        with_engine(ctx, |e, _| {
            atomic_update(e.rt, &mut e.st, addr, size, op, value, expected)
        })
    }
}

/// What the `nicc_atomic` callback does on the runtime: a checked read-modify-write of `size`
/// bytes at `addr` with operation `op` (an [`AtomicCode`]), returning the old contents. Public
/// so that every host of native code (this engine, the harness that runs objects under
/// qemu-user) answers the callback the same way.
pub fn atomic_update(
    rt: &mut Runtime,
    st: &mut ExecState,
    addr: u64,
    size: u64,
    op: u64,
    value: u64,
    expected: u64,
) -> Result<u64, Fault> {
    let Some(code) = AtomicCode::from_u64(op) else {
        return Err(Fault::new(format!("unknown atomic operation code {op}")));
    };
    let size_ir = ir::MemSize::from_bytes(size as u32)
        .ok_or_else(|| Fault::new(format!("atomic access of {size} bytes")))?;
    let old = rt.load_for_update(st, addr, size as usize)?;
    let new = match code {
        AtomicCode::CmpXchg => {
            let bits = size_ir.bits();
            (ir::semantics::truncate(expected, bits) == old)
                .then(|| ir::semantics::truncate(value, bits))
        }
        AtomicCode::Add => Some(ir::AtomicOp::Add.apply(size_ir, old, value)),
        AtomicCode::Or => Some(ir::AtomicOp::Or.apply(size_ir, old, value)),
        AtomicCode::And => Some(ir::AtomicOp::And.apply(size_ir, old, value)),
        AtomicCode::Xor => Some(ir::AtomicOp::Xor.apply(size_ir, old, value)),
        AtomicCode::Xchg => Some(ir::AtomicOp::Xchg.apply(size_ir, old, value)),
    };
    if let Some(v) = new {
        rt.store(st, addr, size as usize, v)?;
    }
    Ok(old)
}

extern "C" fn cb_enter_call(ctx: *mut NativeCtx) -> u64 {
    // SAFETY: only native code of a run calls this, with its context block.
    unsafe {
        with_engine(ctx, |e, c| {
            let depth = c.depth as usize;
            if depth >= MAX_CALL_FRAMES {
                return Err(Fault::new(format!(
                    "bpf-to-bpf call nesting exceeds {MAX_CALL_FRAMES} frames"
                )));
            }
            e.st.stacks[depth].fill(0);
            c.depth += 1;
            e.st.depth = depth + 1;
            Ok(0)
        })
    }
}

extern "C" fn cb_tail_call(ctx: *mut NativeCtx, ctx_arg: u64, map: u64, index: u64) -> u64 {
    // SAFETY: only native code of a run calls this, with its context block.
    let outcome = unsafe {
        with_engine(ctx, |e, _| {
            match helpers::call(e.rt, &mut e.st, HELPER_TAIL_CALL as i32, [ctx_arg, map, index, 0, 0])? {
                HelperOutcome::TailCall(p) => match e.program.programs.get(p) {
                    Some(f) => Ok(f.index() as u64 + 1),
                    None => Err(Fault::new(format!(
                        "tail call to program {p}, which the compiled module does not hold ({} programs)",
                        e.program.programs.len()
                    ))),
                },
                HelperOutcome::TailCallFailed | HelperOutcome::Return(_) => Ok(0),
            }
        })
    };
    if outcome == 0 {
        return 0;
    }
    // The target runs in the caller's frame, as the kernel reuses it, and its result becomes
    // the result of the function that made the tail call.
    // SAFETY: as above; the engine is not borrowed across the nested native call.
    // SAFETY: as above. The function is copied out before the nested call, so no reference
    // to the engine or the block is held while the target's callbacks borrow them.
    unsafe {
        let f = {
            let eng = &*((*ctx).host as *const Engine);
            eng.program.functions[(outcome - 1) as usize]
        };
        let r = f.call(ctx, [ctx_arg, 0, 0, 0, 0]);
        if (*ctx).fault == 0 {
            (*ctx).tail_result = r;
        }
    }
    1
}

extern "C" fn cb_map_value_addr(ctx: *mut NativeCtx, map: u64, offset: u64) -> u64 {
    // SAFETY: only native code of a run calls this, with its context block.
    unsafe {
        with_engine(ctx, |e, _| {
            let name = e
                .program
                .map_names
                .get(map as usize)
                .cloned()
                .unwrap_or_default();
            let m = runtime_map_index(e.rt, &name)
                .ok_or_else(|| Fault::new(format!("map `{name}` is not in the runtime")))?;
            e.rt.map_value_address(m as i64, offset as u32)
        })
    }
}

extern "C" fn cb_helper(
    ctx: *mut NativeCtx,
    id: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> u64 {
    let args = [a1, a2, a3, a4, a5];
    // SAFETY: only native code of a run calls this, with its context block.
    unsafe { with_engine(ctx, |e, c| helper_in_engine(e, c, id, args)) }
}

/// The entry point of one helper (`nicc_helper_<name>`): the same body as [`cb_helper`] with
/// the id a constant, so that every test of the id folds away and the call of the helper's
/// own function is direct.
extern "C" fn cb_helper_direct<const ID: u64>(
    ctx: *mut NativeCtx,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> u64 {
    let args = [a1, a2, a3, a4, a5];
    // SAFETY: only native code of a run calls this, with its context block. The closure
    // names `ID` itself, so that its body (which runs apart, under `catch_unwind`) is
    // compiled with the id a constant.
    unsafe { with_engine(ctx, |e, c| helper_in_engine(e, c, ID, args)) }
}

/// Instantiates [`cb_helper_direct`] for each id, as (symbol, address) pairs.
macro_rules! direct_helpers {
    ($($id:literal)*) => {
        [$((abi::helper_symbol($id), cb_helper_direct::<$id> as *const u8)),*]
    };
}

/// The helpers that have an entry point of their own: every id [`abi::helper_name`] names
/// (a test checks that the two lists agree).
fn direct_helper_symbols() -> Vec<(String, *const u8)> {
    direct_helpers!(
        1 2 3 5 6 7 8 12 23 25 28 42 44 51 54 65 69 87 88 89 121 125 130 131 132 133 160
        188 189 190 195 208
    )
    .into_iter()
    .collect()
}

/// Helpers that move the packet bounds, after which the context block gets the new ones.
fn moves_packet_bounds(helper: u64) -> bool {
    matches!(helper, 44 | 54 | 65)
}

/// A helper call from native code, on the engine of the run: the runtime's helper, then what
/// the engine keeps in step with it (value table, packet bounds, lookup cache).
#[inline(always)]
fn helper_in_engine(
    e: &mut Engine,
    c: &mut NativeCtx,
    id: u64,
    args: [u64; 5],
) -> Result<u64, Fault> {
    if id == HELPER_TAIL_CALL {
        return Err(Fault::new(
            "bpf_tail_call as a plain helper call; the IR expresses tail calls with `tail_call`",
        ));
    }
    let r = helpers::call(e.rt, &mut e.st, id as i32, args);
    // Whatever the helper did before failing, stale entries must go.
    if !keeps_map_storage(id) {
        e.invalidate_movable(c);
    }
    let r = r?;
    if moves_packet_bounds(id) {
        e.sync_out(c);
    }
    match r {
        HelperOutcome::Return(v) => {
            if id == 1 || id == 195 {
                e.register_value(c, v);
            }
            if id == 1 {
                e.cache_lookup(args[0], args[1], v);
            }
            Ok(v)
        }
        HelperOutcome::TailCall(_) | HelperOutcome::TailCallFailed => Err(Fault::new(
            "a helper other than bpf_tail_call asked for a tail call",
        )),
    }
}

fn runtime_map_index(rt: &Runtime, name: &str) -> Option<usize> {
    rt.maps().iter().position(|m| m.def.name == name)
}

/// Names the program and the object in a diagnostic, as the other engines do.
fn place(program: &JitProgram, d: Diagnostic, rt: &Runtime) -> Diagnostic {
    let d = d.program(program.name.clone());
    if rt.object_name().is_empty() {
        d
    } else {
        d.object(rt.object_name().to_string())
    }
}

/// A run set up once and entered any number of times: the context block, its tables and the
/// engine state, on the heap so that the addresses native code holds stay put.
///
/// Entering again does what `BPF_PROG_TEST_RUN` does with a repeat count: the program runs
/// on the frame as the previous run left it (a packet it rewrote stays rewritten, moved
/// packet bounds stay moved) and the maps keep what it stored. Only the bookkeeping of one
/// entry is reset: the live frame count, the fault flag and the loop budget. This is how
/// `nicc bench` times the JIT without per-packet setup; [`run_xdp_native`] prepares, enters
/// once and finishes.
pub struct PreparedRun<'a> {
    program: &'a JitProgram,
    engine: Box<Engine<'a>>,
    ctx: Box<NativeCtx>,
    /// The tables the context block points into; kept alive (and unmoved) with it.
    _handles: Vec<u64>,
    _globals: Vec<GlobalDesc>,
    _func_values: Vec<u64>,
    args: [u64; 5],
    /// `RuntimeConfig::insn_budget`, the loop budget of every entry.
    budget: u64,
}

impl<'a> PreparedRun<'a> {
    /// Sets up `program` on `st` with r1..r5 = `args` and the context value `ctx_value`.
    fn new(
        program: &'a JitProgram,
        rt: &'a mut Runtime,
        st: ExecState,
        ctx_value: u64,
        args: [u64; 5],
    ) -> Result<PreparedRun<'a>, Diagnostic> {
        // Map handles and global data, found by name as the IR executor does.
        let mut handles = Vec::with_capacity(program.map_names.len());
        let mut runtime_index = Vec::with_capacity(program.map_names.len());
        for name in &program.map_names {
            match runtime_map_index(rt, name) {
                Some(m) => {
                    handles.push(rt.map_handle(m as i64).unwrap_or(0));
                    runtime_index.push(Some(m));
                }
                None => {
                    return Err(place(
                        program,
                        Diagnostic::new(format!(
                            "the module uses map `{name}`, which the runtime does not have"
                        )),
                        rt,
                    ))
                }
            }
        }
        let mut st = st;
        let mut globals = vec![GlobalDesc::default(); program.map_names.len()];
        for (i, g) in globals.iter_mut().enumerate() {
            let (Some(m), true) = (runtime_index[i], program.direct_maps[i]) else {
                continue;
            };
            let Ok(value) = rt.map_value_address(m as i64, 0) else {
                continue;
            };
            let size = rt.maps()[m].def.value_size as usize;
            let host = rt.access(&mut st, value, size, Access::Read, |b| {
                b.as_mut_ptr() as u64
            });
            if let Ok(host) = host {
                g.value = value;
                g.bias = host.wrapping_sub(value);
                g.writable = u64::from(!rt.maps()[m].read_only());
            }
        }
        let func_values: Vec<u64> = (0..program.functions.len())
            .map(|i| make_addr(REGION_FUNC + i as u32, 0))
            .collect();
        let mut ctx = Box::new(NativeCtx::new(RegionDesc::default()));
        for (d, frame) in ctx.frames.iter_mut().enumerate() {
            let value = make_addr(REGION_STACK + d as u32, 0);
            frame.value = value;
            frame.bias = (st.stacks[d].as_mut_ptr() as u64).wrapping_sub(value);
            debug_assert_eq!(st.stacks[d].len(), STACK_SIZE);
        }
        ctx.ctx_value = ctx_value;
        if let Some(x) = st.xdp.as_mut() {
            ctx.pkt_bias = (x.buf.as_mut_ptr() as u64).wrapping_sub(make_addr(REGION_PACKET, 0));
            ctx.ingress_ifindex = x.ingress_ifindex as u64;
            ctx.rx_queue_index = x.rx_queue_index as u64;
        }
        ctx.budget = rt.config.insn_budget;
        let ctx_budget = ctx.budget;
        ctx.map_handles = handles.as_ptr();
        ctx.globals = globals.as_ptr();
        ctx.func_values = func_values.as_ptr();
        let globals_values: Vec<u64> = globals
            .iter()
            .filter(|g| g.value != 0)
            .map(|g| g.value)
            .collect();
        let mut values = Vec::with_capacity(64);
        values.push(ValueRegionDesc::default());
        let mut module_map = vec![None; rt.maps().len()];
        let mut lookup_tables = Vec::with_capacity(runtime_index.len());
        for (i, m) in runtime_index.iter().enumerate() {
            let table = m.and_then(|m| {
                if let Some(e) = module_map.get_mut(m) {
                    *e = Some(i);
                }
                let d = &rt.maps()[m].def;
                (array_storage(d.map_type)
                    && d.key_size == 4
                    && d.max_entries <= abi::LOOKUP_CACHE_MAX_ENTRIES)
                    .then(|| vec![0u64; 2 * d.max_entries as usize])
            });
            lookup_tables.push(table);
        }
        let lookup_pointers: Vec<*const u64> = lookup_tables
            .iter()
            .map(|t| t.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()))
            .collect();
        let mut engine = Box::new(Engine {
            program,
            rt,
            st,
            fault: None,
            values,
            movable: Vec::new(),
            lookup_tables,
            lookup_pointers,
            module_map,
            runtime_maps: runtime_index
                .iter()
                .map(|m| m.unwrap_or(usize::MAX))
                .collect(),
        });
        ctx.lookup_cache = engine.lookup_pointers.as_ptr();
        engine.publish_values(&mut ctx);
        for v in globals_values {
            engine.register_value(&mut ctx, v);
        }
        engine.sync_out(&mut ctx);
        let eng_ptr: *mut Engine = &mut *engine;
        ctx.host = eng_ptr as *mut u8;
        Ok(PreparedRun {
            program,
            engine,
            ctx,
            _handles: handles,
            _globals: globals,
            _func_values: func_values,
            args,
            budget: ctx_budget,
        })
    }

    /// Enters the program once and returns r0, or the fault as a diagnostic.
    #[inline]
    pub fn run(&mut self) -> Result<u64, Diagnostic> {
        let program = self.program;
        let ctx: *mut NativeCtx = &mut *self.ctx;
        // SAFETY: `ctx` is the boxed block of this run; nothing else refers to it now.
        unsafe {
            (*ctx).depth = 1;
            (*ctx).fault = 0;
            (*ctx).budget = self.budget;
        }
        // Callbacks read the depth from the context block; a fault was taken out by
        // `fault_diagnostic`, so there is nothing else to reset.
        let entry = program.functions[program.entry.index()];
        // SAFETY: the entry was compiled by `program`, whose module is alive for this borrow;
        // the context block's tables (`_handles`, `_globals`, `_func_values`) cover every map
        // and function of the module and live as long as `self`; `host` is the boxed engine,
        // which this function does not touch until the call returns; the stacks and the frame
        // buffer the biases point into are owned by the engine's `st` and are never resized.
        let r0 = unsafe { entry.call(ctx, self.args) };
        if self.ctx.fault != 0 {
            return Err(self.fault_diagnostic());
        }
        Ok(r0)
    }

    /// Enters the program `n` times (at least once) and returns the last r0: the loop a
    /// benchmark times. Per entry it does what `BPF_PROG_TEST_RUN`'s loop does around the
    /// kernel's program: the bookkeeping of one entry (live frames, fault flag, loop budget,
    /// three stores the semantics need), the call, and the test of the fault flag.
    #[inline(never)]
    pub fn run_repeated(&mut self, n: u64) -> Result<u64, Diagnostic> {
        let program = self.program;
        let entry = program.functions[program.entry.index()];
        let ctx: *mut NativeCtx = &mut *self.ctx;
        let (args, budget) = (self.args, self.budget);
        let mut r0 = 0;
        for _ in 0..n.max(1) {
            // SAFETY: as in `run`: the entry belongs to `program`, whose module outlives this
            // borrow, and the context block with every table it points to lives in `self`.
            unsafe {
                (*ctx).depth = 1;
                (*ctx).fault = 0;
                (*ctx).budget = budget;
                r0 = entry.call(ctx, args);
                if (*ctx).fault != 0 {
                    return Err(self.fault_diagnostic());
                }
            }
        }
        Ok(r0)
    }

    fn fault_diagnostic(&mut self) -> Diagnostic {
        let ctx = &self.ctx;
        let engine = &mut self.engine;
        let fault = match (ctx.fault, engine.fault.take()) {
            (abi::FAULT_BUDGET, _) => Fault::new(format!(
                "loop budget of {} back-edges exceeded (an endless loop?)",
                engine.rt.config.insn_budget
            ))
            .help("raise RuntimeConfig::insn_budget if the program really needs more"),
            (_, Some(f)) => f,
            (code, None) => Fault::new(format!("native code reported fault code {code}")),
        };
        let mut d = Diagnostic::new(fault.message);
        if ctx.insn != u32::MAX as u64 {
            d = d
                .insn(ctx.insn as usize)
                .line(self.program.lines.get(&(ctx.insn as u32)).cloned());
        }
        if let Some(h) = fault.help {
            d = d.help(h);
        }
        place(self.program, d, engine.rt)
    }

    /// The per-run state as the last entry left it.
    pub fn into_state(self) -> ExecState {
        let PreparedRun { engine, .. } = self;
        engine.st
    }

    /// The outcome of an XDP run that returned `r0` (the frame as it stands now).
    pub fn finish_xdp(self, r0: u64) -> XdpOutcome {
        let mut st = self.into_state();
        st.finish_xdp(r0, 0)
    }
}

/// Runs `program` on `st` with r1..r5 = `args` and returns r0, or the fault as a diagnostic.
fn run_native(
    program: &JitProgram,
    rt: &mut Runtime,
    st: ExecState,
    ctx_value: u64,
    args: [u64; 5],
) -> Result<(u64, ExecState), Diagnostic> {
    let mut run = PreparedRun::new(program, rt, st, ctx_value, args)?;
    let r0 = run.run()?;
    Ok((r0, run.into_state()))
}

/// Sets up an XDP run of the entry of `program` on `input`, to be entered with
/// [`PreparedRun::run`] as often as wanted (see [`PreparedRun`] for what persists).
pub fn prepare_xdp_native<'a>(
    program: &'a JitProgram,
    rt: &'a mut Runtime,
    input: &XdpInput,
) -> Result<PreparedRun<'a>, Diagnostic> {
    let st = ExecState::for_xdp(input).map_err(|m| place(program, Diagnostic::new(m), rt))?;
    let ctxp = ExecState::ctx_pointer();
    PreparedRun::new(program, rt, st, ctxp, [ctxp, 0, 0, 0, 0])
}

/// Runs the entry of `program` as an XDP program on one packet, like
/// [`crate::interp::run_xdp`] runs bytecode: same runtime, same frame, same outcome.
pub fn run_xdp_native(
    program: &JitProgram,
    rt: &mut Runtime,
    input: &XdpInput,
) -> Result<XdpOutcome, Diagnostic> {
    let mut run = prepare_xdp_native(program, rt, input)?;
    let r0 = run.run()?;
    Ok(run.finish_xdp(r0))
}

/// Runs the entry of `program` in conformance mode: r1 points to `mem` (or is 0 when `mem` is
/// empty), r2 is its length; returns r0. Changes to `mem` are kept.
pub fn run_native_with_memory_in(
    program: &JitProgram,
    rt: &mut Runtime,
    mem: &mut [u8],
) -> Result<u64, Diagnostic> {
    let st = ExecState::new(None, mem.to_vec());
    let r1 = if mem.is_empty() {
        0
    } else {
        make_addr(REGION_MEM, 0)
    };
    let (r0, st) = run_native(program, rt, st, u64::MAX, [r1, mem.len() as u64, 0, 0, 0])?;
    mem.copy_from_slice(&st.mem);
    Ok(r0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_helper_has_a_direct_entry_point() {
        let direct: Vec<String> = direct_helper_symbols()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        let named: Vec<String> = (0..1024)
            .filter(|id| abi::helper_name(*id).is_some())
            .map(abi::helper_symbol)
            .collect();
        assert_eq!(direct, named);
    }
}
