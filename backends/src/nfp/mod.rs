//! Optimized IR to NFP-style microcode (the instruction set lives in `hw::nfp`).
//!
//! The backend takes one program's entry function after the `nfp` pipeline (bpf-to-bpf calls
//! inlined) and produces the code-store words the simulator executes:
//!
//! 1. [`shapes`]: which 32-bit halves of each 64-bit value are compile-time constants
//!    (region words of pointers, zero high halves of 32-bit results and of values the range
//!    analysis of `passes::range` bounds below 2^32);
//! 2. [`regalloc`]: linear-scan allocation of the remaining halves onto the general-purpose
//!    registers (written to both banks), with block parameters and their arguments coalesced;
//! 3. [`isel`]: instruction selection with symbolic branch targets, parallel moves for block
//!    arguments (in defer slots, shared between edges that carry the same moves), loaded
//!    values read straight from transfer registers, counter updates as one memory add, the
//!    division and 64-bit shift routines, the prologue;
//! 4. layout here: branch targets become addresses, every instruction is encoded, and the
//!    limits of the target (code store, map memory) are checked, with the excess named;
//! 5. [`link`]: programs a tail call may reach are placed in the same code store.
//!
//! [`kernel_offload`] says what the Linux kernel's own NFP offload would accept, for the
//! coverage comparison. Maps are placed in the chip's memories by size: small ones (global
//! data, counters) in the cluster local scratch, medium ones in the internal memory, the rest
//! in external memory. Arrays, per-CPU arrays and hashes (one copy per hardware context),
//! global data, and hashes with keys up to 32 bytes are laid out in chip memory
//! ([`map_layout`]) and operated on by microcode (`isel::map_ops`); the other maps and all
//! other helpers are commands to the memory unit's lookup engine, which the simulator serves
//! with the shared
//! runtime (see `sim::nfp`).

pub mod isel;
pub mod kernel_offload;
pub mod link;
pub mod regalloc;
pub mod shapes;

use frontend::Diagnostic;
use hw::nfp::abi::{
    MapLayout, MapPlacement, Relocation, PERCPU_COPIES, REGION_CHIP_MAP, REGION_CHIP_MAP_END,
    STACK_SIZE,
};
use hw::nfp::{
    encode, program_listing, Insn, MemLevel, CODE_STORE_WORDS, EXIT_TARGET,
    MAP_HANDLE_FAULT_TARGET, TAIL_CALL_FAULT_TARGET,
};
use isel::{Item, Selector, Target};
pub use shapes::EntryKind;
use std::collections::HashMap;

/// Bytes of cluster local scratch a map may take to be placed there.
pub const CLS_MAP_LIMIT: u64 = 16 * 1024;
/// Bytes of internal memory a map may take to be placed there.
pub const IMEM_MAP_LIMIT: u64 = 1024 * 1024;
/// Bytes of external memory the model offers to maps (2 GiB of DRAM on an Agilio card).
pub const EMEM_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// A program compiled for the NFP model.
#[derive(Clone, Debug)]
pub struct NfpProgram {
    pub name: String,
    /// The code-store words.
    pub words: Vec<u64>,
    /// The instruction of each word (what the words decode to).
    pub insns: Vec<Insn>,
    /// Per word: the BPF instruction index it implements (`u32::MAX` for the prologue).
    pub bpf_insn: Vec<u32>,
    /// Per word: what IR instruction it starts, for the listing.
    pub comments: Vec<String>,
    /// Words the loader patches with runtime values.
    pub relocations: Vec<Relocation>,
    /// Words whose `immed` holds a code-store address (routine return addresses), which
    /// linking moves with the program.
    pub code_addresses: Vec<usize>,
    /// Where each map of the module lives.
    pub maps: Vec<MapPlacement>,
    pub entry: EntryKind,
    /// Branches into other programs (tail calls): (word, object program index), resolved by
    /// [`link::link_programs`].
    pub program_branches: Vec<(usize, usize)>,
    /// Registers the allocator used at most at once (out of 26).
    pub registers: usize,
    /// Local-memory address registers the stack window uses.
    pub lm_windows: usize,
    /// How many of the words are map routines (`isel::map_ops`): code that is the same for
    /// every program using the map, which a chip would ship once rather than per program,
    /// so density figures count it apart from the program's own words.
    pub routine_words: usize,
}

impl NfpProgram {
    /// The assembler listing with addresses, words, text and the IR instruction (and BPF
    /// index) each word starts.
    pub fn listing(&self) -> String {
        let comments: Vec<String> = self
            .comments
            .iter()
            .zip(&self.bpf_insn)
            .map(|(c, b)| {
                if c.is_empty() {
                    String::new()
                } else if *b == u32::MAX {
                    c.clone()
                } else {
                    format!("{c} (bpf {b})")
                }
            })
            .collect();
        program_listing(&self.words, &comments)
    }
}

/// The memory level a map of `bytes` bytes is placed in.
pub fn placement_level(bytes: u64) -> MemLevel {
    if bytes <= CLS_MAP_LIMIT {
        MemLevel::Cls
    } else if bytes <= IMEM_MAP_LIMIT {
        MemLevel::Imem
    } else {
        MemLevel::Emem
    }
}

/// The chip-memory layout of map `index`, when its operations run as microcode routines
/// (arrays, per-CPU arrays, global data, hashes and per-CPU hashes with keys up to
/// [`MAX_CHIP_HASH_KEY`] bytes, LPM tries up to [`MAX_CHIP_LPM_ENTRIES`] prefixes of IPv4
/// size); `None` when the lookup engine serves it from the shared runtime.
///
/// LRU hashes stay with the lookup engine on purpose. Until a table is full a hash routine
/// would give the same contents, but the kernel evicts in ways a simpler policy cannot
/// match: a CPU refills its local free list in batches of `target_free` nodes and shrinks the
/// inactive list by the shortfall, so several unreferenced elements go at once, and with more
/// than one CPU this can start before the map holds `max_entries` elements; an update of an
/// existing key of an `LRU_HASH` takes a fresh node and so can evict when the map is full.
/// `sim::runtime::lru` reproduces those lists node for node; a microcode routine that did
/// not would change which keys survive, and the differential test (cilium's
/// `xdp_stats_map`, 16 entries, sees more source addresses than that) would show it.
pub fn map_layout(index: usize, m: &ir::MapDecl) -> Option<MapLayout> {
    let region = REGION_CHIP_MAP.checked_add(u32::try_from(index).ok()?)?;
    if region >= REGION_CHIP_MAP_END {
        return None;
    }
    let (kind, copies) = match m.map_type {
        2 => ("array", 1),
        6 => ("percpu_array", PERCPU_COPIES),
        1 => return hash_layout(region, m, 1),
        5 => return hash_layout(region, m, PERCPU_COPIES),
        11 => return lpm_layout(region, m),
        _ => return None,
    };
    // Values are 8-byte aligned (BPF map values are) and strides powers of two, so that the
    // microcode shifts instead of multiplying.
    let value_stride = m.value_size.max(8).checked_next_power_of_two()?;
    let slot_stride = value_stride.checked_mul(copies)?;
    Some(MapLayout {
        kind: kind.to_string(),
        region,
        slot_stride,
        value_stride,
        copies,
        capacity: 0,
        entry_stride: 0,
        key_offset: 0,
        value_offset: 0,
        count_offset: 0,
    })
}

/// Longest hash key the microcode routines handle: the key's words and the entry read for
/// comparing it share the 24 free read transfer registers (8 and 16 of them).
pub const MAX_CHIP_HASH_KEY: u32 = 32;

/// The layout of a hash map in chip memory (see `hw::nfp::abi::MapLayout`) with `copies`
/// values per entry (1, or [`PERCPU_COPIES`] for a per-CPU hash), when its key is at most
/// [`MAX_CHIP_HASH_KEY`] bytes; other hashes stay with the lookup engine.
fn hash_layout(region: u32, m: &ir::MapDecl, copies: u32) -> Option<MapLayout> {
    if m.key_size == 0 || m.key_size > MAX_CHIP_HASH_KEY {
        return None;
    }
    let key_words = hw::nfp::abi::chip_key_pieces(m.key_size).len() as u32;
    let key8 = (key_words * 4 + 7) & !7;
    let value8 = m.value_size.checked_add(7)? & !7;
    let (value_offset, value_stride) = if copies > 1 {
        // The copies start past the insert's burst (the header and key rounded up to a power
        // of two), and each is a power of two so that a context's copy is a shift away.
        (
            (8 + key8).next_power_of_two(),
            value8.max(8).checked_next_power_of_two()?,
        )
    } else {
        (8 + key8, value8)
    };
    let entry_stride = value_stride
        .checked_mul(copies)?
        .checked_add(value_offset)?
        .checked_next_power_of_two()?;
    let capacity = m
        .max_entries
        .max(1)
        .checked_mul(2)?
        .checked_next_power_of_two()?;
    let count_offset = capacity.checked_mul(entry_stride)?;
    count_offset.checked_add(8)?;
    Some(MapLayout {
        kind: if copies > 1 { "percpu_hash" } else { "hash" }.to_string(),
        region,
        slot_stride: 0,
        value_stride,
        copies,
        capacity,
        entry_stride,
        key_offset: 8,
        value_offset,
        count_offset,
    })
}

/// Most prefixes an LPM trie may hold to live in chip memory: the routines scan the whole
/// table (see `hw::nfp::abi::MapLayout`), one read command per 4 prefixes, so a larger trie
/// stays with the lookup engine.
pub const MAX_CHIP_LPM_ENTRIES: u32 = 256;

/// The layout of an LPM trie in chip memory: address data of 1, 2 or 4 bytes (IPv4 and
/// smaller, each read by one command) and at most [`MAX_CHIP_LPM_ENTRIES`] prefixes.
fn lpm_layout(region: u32, m: &ir::MapDecl) -> Option<MapLayout> {
    if !matches!(m.key_size, 5 | 6 | 8)
        || m.max_entries == 0
        || m.max_entries > MAX_CHIP_LPM_ENTRIES
    {
        return None;
    }
    let capacity = m.max_entries.div_ceil(4) * 4;
    let value_stride = (m.value_size.checked_add(7)? & !7)
        .max(16)
        .checked_next_power_of_two()?;
    let value_offset = capacity * 16;
    let count_offset = value_offset.checked_add(capacity.checked_mul(value_stride)?)?;
    Some(MapLayout {
        kind: "lpm_trie".to_string(),
        region,
        slot_stride: 0,
        value_stride,
        copies: 1,
        capacity,
        entry_stride: 16,
        key_offset: 0,
        value_offset,
        count_offset,
    })
}

/// Places every map of `module`.
pub fn place_maps(module: &ir::Module) -> Result<Vec<MapPlacement>, Diagnostic> {
    let mut out = Vec::new();
    let mut total = 0u64;
    for (i, (_, m)) in module.maps.iter().enumerate() {
        let layout = map_layout(i, m);
        let bytes = match &layout {
            Some(l) if l.has_table() => l.count_offset as u64 + 8,
            Some(l) => l.slot_stride as u64 * m.max_entries.max(1) as u64,
            None => {
                let entry = (m.key_size as u64 + m.value_size as u64 + 7) & !7;
                entry * m.max_entries.max(1) as u64
            }
        };
        total += bytes;
        out.push(MapPlacement {
            name: m.name.clone(),
            map_type: m.map_type,
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries: m.max_entries,
            memory: placement_level(bytes).name().to_string(),
            bytes,
            layout,
        });
    }
    if total > EMEM_BYTES {
        return Err(Diagnostic::new(format!(
            "the maps take {total} bytes, {} more than the {EMEM_BYTES} bytes of external memory",
            total - EMEM_BYTES
        )));
    }
    Ok(out)
}

/// Map types the NFP target supports.
pub fn map_type_supported(t: u32) -> bool {
    // hash, array, prog_array, perf_event_array, percpu_hash, percpu_array, lru_hash,
    // lru_percpu_hash, lpm_trie, devmap, cpumap, xskmap, devmap_hash
    matches!(t, 1 | 2 | 3 | 4 | 5 | 6 | 9 | 10 | 11 | 14 | 16 | 17 | 25)
}

/// Stack slot offsets in the 512-byte frame: from the top down, 8-byte aligned when they
/// all fit that way, packed otherwise.
fn slot_offsets(func: &ir::Function) -> Result<Vec<u32>, Diagnostic> {
    if let Some(out) = func.stack_slot_offsets(STACK_SIZE) {
        return Ok(out);
    }
    let total = func.stack_slot_bytes();
    Err(Diagnostic::new(format!(
        "the stack slots take {total} bytes, {} more than the {STACK_SIZE}-byte frame in local memory",
        total.saturating_sub(STACK_SIZE as u64)
    ))
    .program(func.name.clone()))
}

/// Compiles function `entry` of `module` (a program entry, calls inlined).
pub fn compile_function(
    module: &ir::Module,
    entry: ir::FuncRef,
    kind: EntryKind,
) -> Result<NfpProgram, Diagnostic> {
    compile_function_with(module, entry, kind, &[])
}

/// [`compile_function`] where a tail call may land in any of the object's programs
/// `tail_targets` (indices into the object's programs), which [`link::link_programs`] places
/// in the same code store.
pub fn compile_function_with(
    module: &ir::Module,
    entry: ir::FuncRef,
    kind: EntryKind,
    tail_targets: &[usize],
) -> Result<NfpProgram, Diagnostic> {
    let Some(func) = module.functions.get(entry) else {
        return Err(Diagnostic::new(format!("function {entry} does not exist")));
    };
    let name = func.name.clone();
    for (_, m) in module.maps.iter() {
        if !map_type_supported(m.map_type) {
            return Err(Diagnostic::new(format!(
                "map `{}` has type {}, which the NFP target does not support",
                m.name, m.map_type
            ))
            .program(name.clone())
            .help("the NFP target supports hash, array, per-CPU hash and array, LRU hash, LPM trie, program, perf event and redirect maps"));
        }
    }
    let maps = place_maps(module).map_err(|d| d.program(name.clone()))?;
    let levels: Vec<MemLevel> = maps
        .iter()
        .map(|m| match m.memory.as_str() {
            "cls" => MemLevel::Cls,
            "imem" => MemLevel::Imem,
            _ => MemLevel::Emem,
        })
        .collect();
    let types: Vec<u32> = maps.iter().map(|m| m.map_type).collect();
    let slots = slot_offsets(func)?;
    let order = regalloc::reverse_postorder(func);
    let ranges = passes::range::RangeAnalysis::compute(func, kind == EntryKind::Xdp);
    let regions: Vec<Option<u32>> = maps
        .iter()
        .map(|m| m.layout.as_ref().map(|l| l.region))
        .collect();
    let shapes = shapes::analyze(func, &order, kind, &slots, &ranges, &regions);
    let alloc = regalloc::allocate(func, &order, &shapes).map_err(|e| {
        let d = Diagnostic::new(format!(
            "the program needs {} registers at once, {} more than the {} general-purpose registers a context has for values (spilling to local memory is not implemented)",
            e.needed,
            e.needed - e.available,
            e.available
        ))
        .program(name.clone());
        match e.inst.map(|i| func.srclocs[i].insn) {
            Some(i) if i != u32::MAX => d.insn(i as usize),
            _ => d,
        }
    })?;
    let layouts: Vec<Option<MapLayout>> = maps.iter().map(|m| m.layout.clone()).collect();
    let mut sel = Selector::new(func, &shapes, &alloc, &levels, &types);
    sel.layouts = layouts;
    sel.map_entries = maps.iter().map(|m| m.max_entries).collect();
    sel.map_value_sizes = maps.iter().map(|m| m.value_size).collect();
    sel.map_key_sizes = maps.iter().map(|m| m.key_size).collect();
    sel.entry = kind;
    sel.tail_targets = tail_targets.to_vec();
    let mut block_items: HashMap<ir::Block, usize> = HashMap::new();
    let mut body: Vec<(ir::Block, usize)> = Vec::new();
    for (i, &b) in order.iter().enumerate() {
        body.push((b, sel.items.len()));
        sel.block(b, order.get(i + 1).copied())?;
    }
    let before_routines = sel.items.len();
    sel.emit_routines()?;
    let routine_words = sel.items.len() - before_routines;
    let prologue = sel.prologue(kind)?;
    let offset = prologue.len();
    let mut items: Vec<Item> = prologue;
    for (b, start) in &body {
        block_items.insert(*b, start + offset);
    }
    items.append(&mut sel.items);
    let mut stub_starts = Vec::new();
    for (stub, _) in std::mem::take(&mut sel.stubs) {
        stub_starts.push(items.len());
        items.extend(stub);
    }
    if items.len() > CODE_STORE_WORDS {
        return Err(Diagnostic::new(format!(
            "the program is {} instructions, {} more than the {CODE_STORE_WORDS}-word code store of a microengine",
            items.len(),
            items.len() - CODE_STORE_WORDS
        ))
        .program(name));
    }
    let mut out = NfpProgram {
        name: name.clone(),
        words: Vec::with_capacity(items.len()),
        insns: Vec::with_capacity(items.len()),
        bpf_insn: Vec::with_capacity(items.len()),
        comments: Vec::with_capacity(items.len()),
        relocations: Vec::new(),
        code_addresses: Vec::new(),
        maps,
        entry: kind,
        registers: alloc.max_live,
        lm_windows: sel.lm_used.iter().filter(|u| **u).count(),
        routine_words,
        program_branches: Vec::new(),
    };
    for (i, mut item) in items.into_iter().enumerate() {
        if let Some(t) = item.target {
            let addr = match t {
                Target::Exit => EXIT_TARGET as usize,
                Target::TailCallFault => TAIL_CALL_FAULT_TARGET as usize,
                Target::MapHandleFault => MAP_HANDLE_FAULT_TARGET as usize,
                Target::Block(b) => *block_items.get(&b).ok_or_else(|| {
                    Diagnostic::new(format!("internal: branch to {b}, which was not laid out"))
                        .program(name.clone())
                })?,
                Target::Stub(k) => stub_starts[k],
                Target::Here(k) => k + offset,
                Target::Routine(k) => {
                    sel.routines.get(k).and_then(|r| r.1).ok_or_else(|| {
                        Diagnostic::new(format!("internal: routine {k} was not emitted"))
                            .program(name.clone())
                    })? + offset
                }
                Target::Program(p) => {
                    out.program_branches.push((i, p));
                    0
                }
            };
            item.insn.set_target(addr as u16);
        }
        if let Some(t) = item.code_address {
            let addr = match t {
                Target::Here(k) => k + offset,
                _ => {
                    return Err(Diagnostic::new(
                        "internal: a code address that is not a label of the program",
                    )
                    .program(name.clone()))
                }
            };
            if let Insn::Immed { imm, .. } = &mut item.insn {
                *imm = addr as u16;
            }
            out.code_addresses.push(i);
        }
        let word = encode(&item.insn).map_err(|e| {
            let d = Diagnostic::new(format!(
                "internal: cannot encode {}: {e}",
                hw::nfp::format_insn(&item.insn)
            ))
            .program(name.clone());
            if item.bpf != u32::MAX {
                d.insn(item.bpf as usize)
            } else {
                d
            }
        })?;
        if let Some((map, half)) = item.reloc {
            out.relocations.push(Relocation { word: i, map, half });
        }
        out.words.push(word);
        out.insns.push(item.insn);
        out.bpf_insn.push(item.bpf);
        out.comments.push(item.comment);
    }
    Ok(out)
}
