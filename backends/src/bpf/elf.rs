//! Writes a module's compiled programs as a BPF ELF object, laid out the way clang lays one
//! out, so that nicc's frontend, the kernel samples' loader conventions and libbpf-style
//! loaders all find what they expect:
//!
//! - one executable section per program, named as the program's kind (which the lifter takes
//!   from the original section name), holding the entry function under a global `STT_FUNC`;
//! - `.text` with every function the programs call, each under a local `STT_FUNC`, reached by
//!   `call` instructions carrying `R_BPF_64_32` relocations against the callee's symbol (and
//!   `lddw` of a function address carrying `R_BPF_64_64`);
//! - a legacy `maps` section of 20-byte `struct bpf_map_def` records (type, key size, value
//!   size, max entries, flags) with one symbol per map, and `R_BPF_64_64` on every `lddw` that
//!   loads a map;
//! - one `.data`/`.rodata`/`.bss` section per global-data map, with its initial contents, and
//!   `R_BPF_64_64` against the section symbol on every `lddw` into it, the offset in the
//!   instruction's immediate (BPF objects use REL relocations, whose addend is implicit);
//! - `license` and, when known, `version`.
//!
//! - given the original's BTF ([`super::btf`]): `.BTF` as it was, BTF-defined maps in a
//!   `.maps` section laid out as the original's DATASEC says, and a symbol for every global
//!   variable BTF names; without it, every map is a legacy record.
//!
//! Program sections keep their original names when the caller passes them
//! ([`ObjectOptions::sections`]).

use super::branches::Reloc;
use super::btf::BtfCarry;
use super::compile_reachable;
use super::original_code::OriginalPrograms;
use frontend::insn::{encode_all, to_bytes, Imm64, Insn, SLOT};
use frontend::Diagnostic;
use ir::{FuncRef, MapRef, Module};
use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    elf, Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags,
    SymbolKind, SymbolScope,
};
use std::collections::HashMap;

/// What an object carries besides code and maps, which the IR does not record.
#[derive(Clone, Debug)]
pub struct ObjectOptions {
    /// The `license` section; GPL-only helpers need a GPL-compatible license.
    pub license: String,
    /// The `version` section (only old kprobe loaders read it).
    pub kernel_version: Option<u32>,
    /// The original section of each program, by entry function name: loaders derive the
    /// program type and attach point from it (`kprobe/sys_write`, `xdp_ttl`), so it is kept.
    /// Programs not listed go in the conventional section of their kind.
    pub sections: Vec<(String, String)>,
    /// The original `.BTF` and its DATASEC variables; with it, BTF-defined maps are written
    /// to `.maps` as in the original, and global variables get their symbols.
    pub btf: Option<BtfCarry>,
    /// The original programs' code: a one-function program whose original is shorter than
    /// nicc's code is written as the original (see [`super::original_code`]).
    pub originals: Option<OriginalPrograms>,
    /// How the code trades run time against size.
    pub code: super::CodeOptions,
}

impl Default for ObjectOptions {
    fn default() -> ObjectOptions {
        ObjectOptions {
            license: "GPL".to_string(),
            kernel_version: None,
            sections: Vec::new(),
            btf: None,
            originals: None,
            code: super::CodeOptions::default(),
        }
    }
}

impl ObjectOptions {
    /// Everything the original object says about itself: license, version, program sections
    /// and, given the original file's bytes, its BTF.
    pub fn from_original(
        obj: &frontend::Object,
        elf_bytes: Option<&[u8]>,
    ) -> Result<ObjectOptions, String> {
        Ok(ObjectOptions {
            license: obj.license.clone().unwrap_or_else(|| "GPL".to_string()),
            kernel_version: obj.kernel_version,
            sections: obj
                .programs
                .iter()
                .map(|p| (p.name.clone(), p.section.clone()))
                .collect(),
            btf: match elf_bytes {
                Some(bytes) => super::btf::carry_from_elf(bytes)?,
                None => None,
            },
            originals: Some(OriginalPrograms::from_object(obj)),
            code: super::CodeOptions::default(),
        })
    }
}

/// The size of one legacy `struct bpf_map_def` record.
const MAP_DEF_SIZE: usize = 20;

/// True for names the frontend (like libbpf) takes for global data sections.
fn is_global_data_name(name: &str) -> bool {
    [".data", ".rodata", ".bss"].iter().any(|p| {
        name == *p
            || name
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// The section a program of this kind goes in. The lifter names kinds in snake case
/// (`xdp`, `sched_cls`); where that is not itself a section prefix loaders recognize, the
/// conventional section name is used, so that reading the object back gives the same kind.
fn section_for_kind(kind: &str) -> String {
    use frontend::object::ProgramKind;
    const RENAMED: &[(&str, &str)] = &[
        ("socket_filter", "socket"),
        ("sched_cls", "classifier"),
        ("sched_act", "action"),
        ("sock_ops", "sockops"),
        ("cgroup_sock", "cgroup/sock"),
        ("cgroup_device", "cgroup/dev"),
        ("cgroup_sock_addr", "cgroup/bind4"),
        ("tracing", "fentry"),
    ];
    if let Some((_, section)) = RENAMED.iter().find(|(k, _)| *k == kind) {
        return section.to_string();
    }
    if kind.is_empty()
        || kind.starts_with('.')
        || ProgramKind::from_section(kind) == ProgramKind::Unknown
    {
        return "prog".to_string();
    }
    kind.to_string()
}

/// Writes the object with the default options.
pub fn write_object(module: &Module, name: &str) -> Result<Vec<u8>, Diagnostic> {
    write_object_with(module, name, &ObjectOptions::default())
}

/// Writes every program of `module`, with everything it calls and every map, as an object.
pub fn write_object_with(
    module: &Module,
    name: &str,
    options: &ObjectOptions,
) -> Result<Vec<u8>, Diagnostic> {
    let err = |m: String| Diagnostic::new(m).object(name.to_string());
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);

    // Compile everything first, so that a failure leaves nothing half written.
    let mut programs = Vec::new();
    let mut subprograms: Vec<FuncRef> = Vec::new();
    let mut codes = HashMap::new();
    for entry in &module.programs {
        let (c, order) = compile_reachable(module, entry.func, options.code)?;
        for f in order.iter().skip(1) {
            if !subprograms.contains(f) {
                subprograms.push(*f);
            }
        }
        codes.extend(c);
        programs.push(entry);
    }
    // A one-function program keeps its original code where that is shorter; a function
    // other programs also call stays nicc's, so that every caller sees one body.
    if let Some(originals) = &options.originals {
        for entry in &module.programs {
            let Some(code) = codes.get(&entry.func) else {
                continue;
            };
            let calls = code
                .relocs
                .iter()
                .any(|(_, r)| matches!(r, Reloc::Call(_) | Reloc::Func(_)));
            if calls || subprograms.contains(&entry.func) {
                continue;
            }
            let name = &module.functions[entry.func].name;
            if let Some(original) = originals.shorter_than(module, name, code.insns.len()) {
                codes.insert(entry.func, original);
            }
        }
    }

    // Maps: legacy records for real maps, sections for global data.
    let mut map_symbols: HashMap<MapRef, SymbolId> = HashMap::new();
    let mut data_symbols: HashMap<MapRef, SymbolId> = HashMap::new();
    let btf = options.btf.as_ref();
    let in_btf_maps =
        |name: &str| btf.is_some_and(|c| c.maps_section_size > 0 && c.map(name).is_some());
    // Inner map definitions of BTF map-in-maps are part of their outer map's BTF; the reader
    // makes them again from it.
    let btf_inner = |name: &str| {
        name.strip_suffix(".inner")
            .is_some_and(|outer| in_btf_maps(outer) || outer.ends_with(".inner"))
    };
    let plain: Vec<MapRef> = module
        .maps
        .iter()
        .filter(|(_, m)| m.data.is_none() && !in_btf_maps(&m.name) && !btf_inner(&m.name))
        .map(|(r, _)| r)
        .collect();
    if let Some(carry) = btf.filter(|c| c.maps_section_size > 0) {
        let section = obj.add_section(Vec::new(), b".maps".to_vec(), SectionKind::Data);
        obj.append_section_data(section, &vec![0; carry.maps_section_size as usize], 8);
        for (r, m) in module.maps.iter() {
            let Some(var) = carry.map(&m.name).filter(|_| m.data.is_none()) else {
                continue;
            };
            let sym = obj.add_symbol(Symbol {
                name: m.name.as_bytes().to_vec(),
                value: var.offset,
                size: var.size,
                kind: SymbolKind::Data,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: SymbolSection::Section(section),
                flags: SymbolFlags::None,
            });
            map_symbols.insert(r, sym);
        }
    }
    if let Some(carry) = btf {
        let s = obj.add_section(Vec::new(), b".BTF".to_vec(), SectionKind::Metadata);
        obj.append_section_data(s, &carry.btf, 4);
    }
    if !plain.is_empty() {
        let section = obj.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
        let mut bytes = Vec::new();
        for &r in &plain {
            let m = &module.maps[r];
            let offset = bytes.len() as u64;
            for field in [m.map_type, m.key_size, m.value_size, m.max_entries, m.flags] {
                bytes.extend_from_slice(&field.to_le_bytes());
            }
            let sym = obj.add_symbol(Symbol {
                name: m.name.as_bytes().to_vec(),
                value: offset,
                size: MAP_DEF_SIZE as u64,
                kind: SymbolKind::Data,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: SymbolSection::Section(section),
                flags: SymbolFlags::None,
            });
            map_symbols.insert(r, sym);
        }
        obj.append_section_data(section, &bytes, 4);
    }
    for (r, m) in module.maps.iter() {
        let Some(data) = &m.data else { continue };
        let section_name = if is_global_data_name(&m.name) {
            m.name.clone()
        } else {
            format!(".data.{}", m.name)
        };
        let size = data.len().max(m.value_size as usize);
        let section = if section_name.starts_with(".bss") && data.iter().all(|&b| b == 0) {
            let s = obj.add_section(
                Vec::new(),
                section_name.into_bytes(),
                SectionKind::UninitializedData,
            );
            obj.append_section_bss(s, size as u64, 8);
            s
        } else {
            let kind = if section_name.starts_with(".rodata") {
                SectionKind::ReadOnlyData
            } else {
                SectionKind::Data
            };
            let s = obj.add_section(Vec::new(), section_name.into_bytes(), kind);
            let mut bytes = data.clone();
            bytes.resize(size, 0);
            obj.append_section_data(s, &bytes, 8);
            s
        };
        data_symbols.insert(r, obj.section_symbol(section));
        add_btf_var_symbols(&mut obj, btf, section);
    }

    // Code: program sections, then `.text` for the subprograms.
    let mut func_symbols: HashMap<FuncRef, SymbolId> = HashMap::new();
    let mut placed: Vec<(SectionId, u64, FuncRef)> = Vec::new();
    let mut sections: HashMap<String, SectionId> = HashMap::new();
    for entry in &programs {
        let func_name = &module.functions[entry.func].name;
        let section_name = options
            .sections
            .iter()
            .find(|(f, _)| f == func_name)
            .map_or_else(|| section_for_kind(&entry.kind), |(_, s)| s.clone());
        let section = *sections.entry(section_name.clone()).or_insert_with(|| {
            obj.add_section(Vec::new(), section_name.into_bytes(), SectionKind::Text)
        });
        let offset = place(&mut obj, section, &codes[&entry.func].insns);
        let sym = add_func_symbol(&mut obj, module, entry.func, section, offset, &codes, true);
        func_symbols.insert(entry.func, sym);
        placed.push((section, offset, entry.func));
    }
    if !subprograms.is_empty() {
        let text = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
        for &f in &subprograms {
            let offset = place(&mut obj, text, &codes[&f].insns);
            if let std::collections::hash_map::Entry::Vacant(slot) = func_symbols.entry(f) {
                slot.insert(add_func_symbol(
                    &mut obj, module, f, text, offset, &codes, false,
                ));
            }
            placed.push((text, offset, f));
        }
    }

    // Relocations, now that every symbol exists.
    for (section, offset, f) in placed {
        for &(slot, reloc) in &codes[&f].relocs {
            let (symbol, r_type) = match reloc {
                Reloc::Map(m) => (map_symbols.get(&m).copied(), elf::R_BPF_64_64),
                Reloc::MapValue(m, _) => (data_symbols.get(&m).copied(), elf::R_BPF_64_64),
                Reloc::Call(t) => (func_symbols.get(&t).copied(), elf::R_BPF_64_32),
                Reloc::Func(t) => (func_symbols.get(&t).copied(), elf::R_BPF_64_64),
            };
            let Some(symbol) = symbol else {
                return Err(err(format!(
                    "function `{}` refers to {reloc:?}, which has no symbol (a map with initial data must be global data, and a plain map must not have data)",
                    module.functions[f].name
                )));
            };
            obj.add_relocation(
                section,
                Relocation {
                    offset: offset + (slot * SLOT) as u64,
                    symbol,
                    addend: 0,
                    flags: RelocationFlags::Elf { r_type },
                },
            )
            .map_err(|e| err(format!("cannot add a relocation: {e}")))?;
        }
    }

    let mut license = options.license.clone().into_bytes();
    license.push(0);
    let s = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    obj.append_section_data(s, &license, 1);
    add_btf_var_symbols(&mut obj, btf, s);
    if let Some(v) = options.kernel_version {
        let s = obj.add_section(Vec::new(), b"version".to_vec(), SectionKind::Data);
        obj.append_section_data(s, &v.to_le_bytes(), 4);
    }
    obj.write()
        .map_err(|e| err(format!("cannot write the ELF object: {e}")))
}

/// Defines a symbol for every variable the BTF's DATASEC of this section names (global data,
/// `__license`): libbpf finds each variable's ELF symbol by name when it finalizes BTF, and
/// refuses an object where one is missing.
fn add_btf_var_symbols(obj: &mut Object, btf: Option<&BtfCarry>, section: SectionId) {
    let section_name = obj.section(section).name().unwrap_or("").to_string();
    for var in btf.into_iter().flat_map(|c| c.vars_of(&section_name)) {
        obj.add_symbol(Symbol {
            name: var.name.as_bytes().to_vec(),
            value: var.offset,
            size: var.size,
            kind: SymbolKind::Data,
            scope: if var.global {
                SymbolScope::Dynamic
            } else {
                SymbolScope::Compilation
            },
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
    }
}

/// Appends a function's code to a section in its relocatable form: relocated `lddw`s carry
/// only their offset (clang's form), relocated calls `-1`.
fn place(obj: &mut Object, section: SectionId, insns: &[Insn]) -> u64 {
    let unrelocated: Vec<Insn> = insns
        .iter()
        .map(|i| match *i {
            Insn::Imm64 {
                dst,
                imm: Imm64::MapIdx(_) | Imm64::Func(_),
            } => Insn::Imm64 {
                dst,
                imm: Imm64::Value(0),
            },
            Insn::Imm64 {
                dst,
                imm: Imm64::MapIdxValue { offset, .. },
            } => Insn::Imm64 {
                dst,
                imm: Imm64::Value(offset as u64),
            },
            other => other,
        })
        .collect();
    let bytes = to_bytes(&encode_all(&unrelocated));
    obj.append_section_data(section, &bytes, SLOT as u64)
}

fn add_func_symbol(
    obj: &mut Object,
    module: &Module,
    f: FuncRef,
    section: SectionId,
    offset: u64,
    codes: &HashMap<FuncRef, super::branches::FunctionCode>,
    global: bool,
) -> SymbolId {
    obj.add_symbol(Symbol {
        name: module.functions[f].name.as_bytes().to_vec(),
        value: offset,
        size: (codes[&f].insns.len() * SLOT) as u64,
        kind: SymbolKind::Text,
        scope: if global {
            SymbolScope::Dynamic
        } else {
            SymbolScope::Compilation
        },
        weak: false,
        section: SymbolSection::Section(section),
        flags: SymbolFlags::None,
    })
}
