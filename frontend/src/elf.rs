//! Reads a clang-built BPF ELF object into the [`Object`] model, doing what libbpf does before
//! it loads anything: finding the programs, linking each with the `.text` subprograms it calls,
//! collecting map definitions (legacy `maps`, BTF `.maps`, global data), resolving relocations
//! into map indices, and attaching BTF line information.
//!
//! The input is untrusted: every offset, size, count and index read from the file is checked
//! before use, arithmetic on file values is checked, and the work done is bounded by the file's
//! size. Anything we cannot make sense of becomes a [`Diagnostic`] saying what is wrong and what
//! to do about it, never a panic.

// The public signatures are fixed by the shared `Diagnostic` type, which is large; errors are
// the cold path of reading an object, so passing them by value costs nothing that matters.
#![allow(clippy::result_large_err)]

use crate::btf::{self, Btf};
use crate::diag::Diagnostic;
use crate::insn::{self, RawInsn, SLOT};
use crate::object::{
    CodeSection, Function, LineInfo, MapDef, MapOrigin, MapType, Object, Program, ProgramKind,
};
use goblin::container::{Container, Ctx, Endian};
use goblin::elf::reloc::RelocSection;
use goblin::elf::section_header::{
    SectionHeader, SHF_EXECINSTR, SHT_NOBITS, SHT_REL, SHT_RELA, SHT_SYMTAB,
};
use goblin::elf::sym::{self, Symtab};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// `e_machine` of BPF objects.
const EM_BPF: u16 = 247;

/// BPF relocation types, as clang and the kernel's `linux/elf-em.h` users number them.
const R_BPF_64_64: u32 = 1;
const R_BPF_64_32: u32 = 10;

/// Pseudo source-register values of `call` and `lddw` (kernel `include/uapi/linux/bpf.h`).
const PSEUDO_CALL: u8 = 1;
const PSEUDO_FUNC: u8 = 4;
const PSEUDO_MAP_IDX: u8 = 5;
const PSEUDO_MAP_IDX_VALUE: u8 = 6;

const OPCODE_LDDW: u8 = 0x18;
const OPCODE_CALL: u8 = 0x85;

/// A cap on the total number of linked instruction slots across all programs. Linking copies
/// subprograms once per program that calls them, so a hostile object with many entry points
/// calling one big subprogram could otherwise make us allocate far more than its size.
const MAX_LINKED_SLOTS: usize = 1 << 24;

/// The most instructions one linked program may have: the kernel refuses more from any user
/// (`BPF_COMPLEXITY_LIMIT_INSNS`, 1,000,000 in include/linux/bpf.h), so nothing after the
/// reader has to cope with more.
pub const MAX_PROGRAM_SLOTS: usize = 1_000_000;

/// Reads an object file from disk; the file name (without directories) names it in messages.
pub fn read_file(path: &Path) -> Result<Object, Diagnostic> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostic::new(format!("cannot read `{}`: {e}", path.display()))
            .object(name.clone())
            .help("check the path and the file's permissions")
    })?;
    read_object(&bytes, &name)
}

/// Reads only the executable sections of an object, as they stand in the file, without
/// resolving maps or linking calls. The disassembler uses this so that an object whose
/// relocations cannot be resolved (a call to an undefined function, say) can still be shown.
pub fn read_code_sections(bytes: &[u8], name: &str) -> Result<Vec<CodeSection>, Diagnostic> {
    let elf = Elf::parse(bytes, name)?;
    let code = elf.code_sections()?;
    Ok(code.iter().map(|c| elf.code_section(c)).collect())
}

/// Reads a BPF object from its bytes. `name` is used in messages and as [`Object::name`].
pub fn read_object(bytes: &[u8], name: &str) -> Result<Object, Diagnostic> {
    let elf = Elf::parse(bytes, name)?;
    let mut object = Object {
        name: name.to_string(),
        ..Object::default()
    };
    object.license = elf.license();
    object.kernel_version = elf.version()?;
    let maps = elf.collect_maps()?;
    object.maps = maps.defs.clone();
    let lines = elf.line_info()?;
    let code = elf.code_sections()?;
    object.code_sections = code.iter().map(|c| elf.code_section(c)).collect();
    elf.check_lines(&lines, &code)?;
    let relocated = code
        .iter()
        .map(|c| elf.relocate(c, &maps))
        .collect::<Result<Vec<_>, _>>()?;
    object.programs = elf.link_programs(&code, &relocated, &lines)?;
    Ok(object)
}

/// One section header with its name and (for sections with file contents) its bytes.
struct Section<'a> {
    name: String,
    header: SectionHeader,
    data: &'a [u8],
}

/// One symbol with its name resolved.
#[derive(Clone, Debug)]
struct Symbol {
    name: String,
    value: u64,
    size: u64,
    shndx: usize,
    kind: u8,
    bind: u8,
}

/// One relocation entry of a REL or RELA section.
#[derive(Clone, Copy, Debug)]
struct Reloc {
    offset: u64,
    sym: usize,
    rtype: u32,
    addend: i64,
}

/// The parsed ELF skeleton: sections, symbols and relocations, all validated.
struct Elf<'a> {
    name: &'a str,
    sections: Vec<Section<'a>>,
    symbols: Vec<Symbol>,
    /// Relocations by the index of the section they apply to.
    relocs: HashMap<usize, Vec<Reloc>>,
}

/// A function (or a whole program section without function symbols) inside a code section.
#[derive(Clone, Debug)]
struct Func {
    name: String,
    start: usize,
    len: usize,
    global: bool,
}

/// An executable section, split into slots, with its functions.
struct Code {
    index: usize,
    raw: Vec<RawInsn>,
    functions: Vec<Func>,
    relocation_names: Vec<(usize, String)>,
}

/// Where a call or function-address instruction points: a code section index and a slot.
type Target = (usize, usize);

/// A code section after relocation: maps resolved, calls pointing at their targets.
struct Relocated {
    insns: Vec<RawInsn>,
    targets: BTreeMap<usize, Target>,
}

/// The maps of an object and how to find them from symbols.
struct Maps {
    defs: Vec<MapDef>,
    /// Legacy maps by (section index, byte offset of their record).
    legacy: HashMap<(usize, u64), usize>,
    /// BTF maps by variable name and by byte offset in `.maps`.
    btf_by_name: HashMap<String, usize>,
    btf_by_offset: HashMap<u64, usize>,
    btf_section: Option<usize>,
    /// Global-data maps by section index.
    data: HashMap<usize, usize>,
}

fn is_global_data(name: &str) -> bool {
    [".data", ".rodata", ".bss"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

fn is_legacy_maps(name: &str) -> bool {
    name == "maps" || name.starts_with("maps/")
}

impl<'a> Elf<'a> {
    fn err(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(message).object(self.name)
    }

    fn parse(bytes: &'a [u8], name: &'a str) -> Result<Elf<'a>, Diagnostic> {
        let fail = |m: String, h: &str| Err(Diagnostic::new(m).object(name).help(h));
        const NOT_BPF: &str = "nicc reads relocatable BPF objects: build with `clang -O2 -g -target bpf -c file.c -o file.o`";
        if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
            return fail(
                "not an ELF file (no ELF magic or too short)".into(),
                NOT_BPF,
            );
        }
        if bytes[4] != 2 || bytes[5] != 1 {
            return fail(
                "not a 64-bit little-endian ELF file".into(),
                "build with `clang -target bpfel` (big-endian BPF objects are not supported)",
            );
        }
        let header = goblin::elf::Elf::parse_header(bytes)
            .map_err(|e| Diagnostic::new(format!("bad ELF header: {e}")).object(name))?;
        if header.e_machine != EM_BPF {
            return fail(
                format!("ELF machine is {} rather than BPF (247)", header.e_machine),
                NOT_BPF,
            );
        }
        let ctx = Ctx::new(Container::Big, Endian::Little);
        let shoff = usize::try_from(header.e_shoff).unwrap_or(usize::MAX);
        if shoff == 0 {
            return fail("the file has no section headers".into(), NOT_BPF);
        }
        if header.e_shentsize != 64 {
            return fail(
                format!(
                    "section header size is {} rather than 64",
                    header.e_shentsize
                ),
                "the file is damaged; rebuild it",
            );
        }
        let table_end = (header.e_shnum as usize)
            .max(1)
            .checked_mul(64)
            .and_then(|n| n.checked_add(shoff));
        if table_end.is_none_or(|end| end > bytes.len()) {
            return fail(
                format!(
                    "the section header table ({} entries at offset {:#x}) goes past the end of the file ({:#x} bytes)",
                    header.e_shnum,
                    header.e_shoff,
                    bytes.len()
                ),
                "the file is truncated or damaged; rebuild it",
            );
        }
        // With more than 0xff00 sections the count is kept in section 0's size; goblin reads
        // it there, and refuses counts the file cannot hold.
        let headers =
            SectionHeader::parse(bytes, shoff, header.e_shnum as usize, ctx).map_err(|e| {
                Diagnostic::new(format!("cannot read the section headers: {e}"))
                    .object(name)
                    .help("the file is truncated or damaged; rebuild it")
            })?;
        let mut shstrndx = header.e_shstrndx as usize;
        if shstrndx == 0xffff {
            shstrndx = headers.first().map_or(0, |h| h.sh_link as usize);
        }
        let Some(shstr) = headers.get(shstrndx) else {
            return fail(
                format!("section-name table index {shstrndx} does not exist"),
                "the file is damaged; rebuild it",
            );
        };
        let shstr_data = file_range(bytes, shstr.sh_offset, shstr.sh_size).ok_or_else(|| {
            Diagnostic::new("the section-name table lies outside the file")
                .object(name)
                .help("the file is truncated or damaged; rebuild it")
        })?;
        let mut sections = Vec::with_capacity(headers.len());
        for (i, h) in headers.into_iter().enumerate() {
            let sname = if i == 0 {
                Some("")
            } else {
                c_string(shstr_data, h.sh_name as u64)
            };
            let sname = sname.ok_or_else(|| {
                Diagnostic::new(format!(
                    "section {i} has a name offset ({:#x}) outside the section-name table",
                    h.sh_name
                ))
                .object(name)
                .help("the file is damaged; rebuild it")
            })?;
            let data = if h.sh_type == SHT_NOBITS || i == 0 {
                &[][..]
            } else {
                file_range(bytes, h.sh_offset, h.sh_size).ok_or_else(|| {
                    Diagnostic::new(format!(
                        "section `{sname}` (offset {:#x}, size {:#x}) extends past the end of the file ({:#x} bytes)",
                        h.sh_offset,
                        h.sh_size,
                        bytes.len()
                    ))
                    .object(name)
                    .section(sname)
                    .help("the file is truncated or damaged; rebuild it")
                })?
            };
            sections.push(Section {
                name: sname.to_string(),
                header: h,
                data,
            });
        }
        let mut elf = Elf {
            name,
            sections,
            symbols: Vec::new(),
            relocs: HashMap::new(),
        };
        elf.symbols = elf.read_symbols(bytes, ctx)?;
        elf.relocs = elf.read_relocs(bytes, ctx)?;
        Ok(elf)
    }

    /// The public view of a code section: its slots, labels and relocations.
    fn code_section(&self, c: &Code) -> CodeSection {
        CodeSection {
            name: self.sections[c.index].name.clone(),
            insns: c.raw.clone(),
            symbols: self.labels_in(c.index),
            relocations: c.relocation_names.clone(),
        }
    }

    /// Every named symbol defined in a section, as (slot, name) sorted by slot then name:
    /// functions and the `LBB` labels clang leaves in, which is what llvm-objdump prints as
    /// headers and branch targets. Section and file symbols name no place of their own.
    fn labels_in(&self, section: usize) -> Vec<(usize, String)> {
        let mut labels: Vec<(usize, String)> = self
            .symbols
            .iter()
            .filter(|y| {
                y.shndx == section
                    && !y.name.is_empty()
                    && y.kind != sym::STT_SECTION
                    && y.kind != sym::STT_FILE
            })
            .map(|y| ((y.value / SLOT as u64) as usize, y.name.clone()))
            .collect();
        labels.sort();
        labels
    }

    fn read_symbols(&self, bytes: &[u8], ctx: Ctx) -> Result<Vec<Symbol>, Diagnostic> {
        let tables: Vec<&Section> = self
            .sections
            .iter()
            .filter(|s| s.header.sh_type == SHT_SYMTAB)
            .collect();
        let symtab = match tables.as_slice() {
            [] => return Ok(Vec::new()),
            [one] => *one,
            _ => {
                return Err(self
                    .err("the file has more than one symbol table")
                    .help("relocatable objects have exactly one `.symtab`; rebuild the file"))
            }
        };
        let damaged = |m: String| {
            self.err(m)
                .section(symtab.name.clone())
                .help("the symbol table is damaged; rebuild the object with clang")
        };
        if symtab.header.sh_entsize != sym::sym64::SIZEOF_SYM as u64 {
            return Err(damaged(format!(
                "symbol entry size is {} rather than {}",
                symtab.header.sh_entsize,
                sym::sym64::SIZEOF_SYM
            )));
        }
        let strtab = self
            .sections
            .get(symtab.header.sh_link as usize)
            .ok_or_else(|| {
                damaged(format!(
                    "the symbol table links to string table {}, which does not exist",
                    symtab.header.sh_link
                ))
            })?;
        let count = symtab.data.len() / sym::sym64::SIZEOF_SYM;
        let table = Symtab::parse(bytes, symtab.header.sh_offset as usize, count, ctx)
            .map_err(|e| damaged(format!("cannot read the symbol table: {e}")))?;
        let mut out = Vec::with_capacity(count);
        for (i, s) in table.iter().enumerate() {
            let name = c_string(strtab.data, s.st_name as u64).ok_or_else(|| {
                damaged(format!(
                    "symbol {i} has a name offset ({:#x}) outside the string table",
                    s.st_name
                ))
            })?;
            let kind = sym::st_type(s.st_info);
            // Section symbols carry no name of their own; tools show the section's name.
            let name = if kind == sym::STT_SECTION && name.is_empty() {
                self.sections
                    .get(s.st_shndx)
                    .map_or("", |sec| sec.name.as_str())
            } else {
                name
            };
            out.push(Symbol {
                name: name.to_string(),
                value: s.st_value,
                size: s.st_size,
                shndx: s.st_shndx,
                kind,
                bind: sym::st_bind(s.st_info),
            });
        }
        Ok(out)
    }

    fn read_relocs(
        &self,
        bytes: &[u8],
        ctx: Ctx,
    ) -> Result<HashMap<usize, Vec<Reloc>>, Diagnostic> {
        let mut out: HashMap<usize, Vec<Reloc>> = HashMap::new();
        for s in &self.sections {
            let is_rela = match s.header.sh_type {
                SHT_REL => false,
                SHT_RELA => true,
                _ => continue,
            };
            let target = s.header.sh_info as usize;
            // Every assembler names a relocation section after the section it patches; a
            // mismatch means the section table was damaged (a fuzzed file in the corpus has
            // a renamed debug section), so the relocations cannot be trusted either.
            let expected = s
                .name
                .strip_prefix(if is_rela { ".rela" } else { ".rel" })
                .unwrap_or("");
            let target_name = self.sections.get(target).map_or("", |t| t.name.as_str());
            if !s.name.is_empty() && expected != target_name {
                return Err(self
                    .err(format!(
                        "relocation section `{}` applies to section {target} (`{target_name}`), not to the section its name implies",
                        s.name
                    ))
                    .section(s.name.clone())
                    .help("the section table is damaged; rebuild the object"));
            }
            // Only relocations of code matter to us; those of BTF, debug info and frame tables
            // describe addresses that a loader never patches.
            let patches_code = self
                .sections
                .get(target)
                .is_some_and(|t| t.header.sh_flags & SHF_EXECINSTR as u64 != 0);
            if !patches_code {
                continue;
            }
            let entsize = if is_rela { 24 } else { 16 };
            if s.data.len() % entsize != 0 {
                return Err(self
                    .err(format!(
                        "relocation section size {} is not a multiple of {entsize}",
                        s.data.len()
                    ))
                    .section(s.name.clone())
                    .help("the file is damaged; rebuild it"));
            }
            let table = RelocSection::parse(
                bytes,
                s.header.sh_offset as usize,
                s.data.len(),
                is_rela,
                ctx,
            )
            .map_err(|e| {
                self.err(format!("cannot read relocations: {e}"))
                    .section(s.name.clone())
                    .help("the file is damaged; rebuild it")
            })?;
            let list = out.entry(target).or_default();
            for r in table.iter() {
                list.push(Reloc {
                    offset: r.r_offset,
                    sym: r.r_sym,
                    rtype: r.r_type,
                    addend: r.r_addend.unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    fn section_by_name(&self, name: &str) -> Option<(usize, &Section<'a>)> {
        self.sections
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
    }

    fn license(&self) -> Option<String> {
        let (_, s) = self.section_by_name("license")?;
        let end = s.data.iter().position(|&b| b == 0).unwrap_or(s.data.len());
        Some(String::from_utf8_lossy(&s.data[..end]).into_owned())
    }

    fn version(&self) -> Result<Option<u32>, Diagnostic> {
        let Some((_, s)) = self.section_by_name("version") else {
            return Ok(None);
        };
        match <[u8; 4]>::try_from(s.data) {
            Ok(b) => Ok(Some(u32::from_le_bytes(b))),
            Err(_) => Err(self
                .err(format!(
                    "the `version` section is {} bytes long rather than 4",
                    s.data.len()
                ))
                .section("version")
                .help("declare it as `u32 _version SEC(\"version\") = LINUX_VERSION_CODE;`")),
        }
    }

    fn btf(&self) -> Result<Option<Btf>, Diagnostic> {
        let Some((_, s)) = self.section_by_name(".BTF") else {
            return Ok(None);
        };
        Btf::parse(s.data).map(Some).map_err(|e| {
            self.err(format!("malformed BTF: {e}"))
                .section(".BTF")
                .help("rebuild the object with a recent clang, or strip BTF with `llvm-objcopy --remove-section .BTF --remove-section .BTF.ext`")
        })
    }

    /// Collects the maps: legacy `maps` sections, then BTF `.maps`, then global data.
    fn collect_maps(&self) -> Result<Maps, Diagnostic> {
        let mut maps = Maps {
            defs: Vec::new(),
            legacy: HashMap::new(),
            btf_by_name: HashMap::new(),
            btf_by_offset: HashMap::new(),
            btf_section: None,
            data: HashMap::new(),
        };
        for (index, s) in self.sections.iter().enumerate() {
            if is_legacy_maps(&s.name) {
                self.legacy_maps(index, s, &mut maps)?;
            }
        }
        if let Some((index, _)) = self.section_by_name(".maps") {
            maps.btf_section = Some(index);
            self.btf_maps(&mut maps)?;
        }
        for (index, s) in self.sections.iter().enumerate() {
            let alloc = s.header.sh_flags & goblin::elf::section_header::SHF_ALLOC as u64 != 0;
            let exec = s.header.sh_flags & SHF_EXECINSTR as u64 != 0;
            if !is_global_data(&s.name) || !alloc || exec || s.header.sh_size == 0 {
                continue;
            }
            // The kernel refuses array values of KMALLOC_MAX_SIZE or more (kernel/bpf/
            // arraymap.c, `array_map_alloc_check`), 4 MiB with 4 KiB pages (include/linux/
            // slab.h). A `.bss` is zeroes the file does not hold, so without this bound a
            // hostile header would make nicc allocate whatever size it claims.
            const MAX_GLOBAL_DATA: u64 = 4 << 20;
            if s.header.sh_size >= MAX_GLOBAL_DATA {
                return Err(self
                    .err(format!(
                        "global data section `{}` is {} bytes; the kernel holds at most {} bytes \
                         of global data per section",
                        s.name,
                        s.header.sh_size,
                        MAX_GLOBAL_DATA - 1
                    ))
                    .section(s.name.clone())
                    .help("make the global variables smaller, or keep large tables in maps"));
            }
            let Ok(value_size) = u32::try_from(s.header.sh_size) else {
                return Err(self
                    .err(format!(
                        "global data section `{}` is {} bytes, too large for a map value",
                        s.name, s.header.sh_size
                    ))
                    .section(s.name.clone())
                    .help("make the global variables smaller"));
            };
            let initial = if s.header.sh_type == SHT_NOBITS {
                vec![0; value_size as usize]
            } else {
                s.data.to_vec()
            };
            maps.data.insert(index, maps.defs.len());
            maps.defs.push(MapDef {
                name: s.name.clone(),
                map_type: MapType::Array,
                key_size: 4,
                value_size,
                max_entries: 1,
                flags: 0,
                inner: None,
                initial_value: Some(initial),
                origin: MapOrigin::GlobalData {
                    section: s.name.clone(),
                    read_only: s.name.starts_with(".rodata"),
                },
            });
        }
        Ok(maps)
    }

    /// Reads `struct bpf_map_def` records; as in libbpf, the record size is the section size
    /// divided by the number of map symbols in the section.
    fn legacy_maps(&self, index: usize, s: &Section, maps: &mut Maps) -> Result<(), Diagnostic> {
        let mut syms: Vec<&Symbol> = self
            .symbols
            .iter()
            .filter(|y| {
                y.shndx == index
                    && y.kind != sym::STT_SECTION
                    && y.kind != sym::STT_FILE
                    && !y.name.is_empty()
            })
            .collect();
        syms.sort_by(|a, b| a.value.cmp(&b.value).then(a.name.cmp(&b.name)));
        if syms.is_empty() {
            if s.data.is_empty() {
                return Ok(());
            }
            return Err(self
                .err(format!("map section `{}` has no map symbols", s.name))
                .section(s.name.clone())
                .help(
                    "give every map a name: `struct bpf_map_def SEC(\"maps\") my_map = {...};`",
                ));
        }
        let record = s.data.len() / syms.len();
        if record * syms.len() != s.data.len() || record < 16 {
            return Err(self
                .err(format!(
                    "map section `{}` is {} bytes for {} map symbols, which is not a whole number of map definitions of at least 16 bytes",
                    s.name,
                    s.data.len(),
                    syms.len()
                ))
                .section(s.name.clone())
                .help("define each map as one `struct bpf_map_def`, or move to BTF-defined maps in `.maps`"));
        }
        let first = maps.defs.len();
        for y in &syms {
            let bytes = usize::try_from(y.value)
                .ok()
                .filter(|v| v % record == 0)
                .and_then(|v| s.data.get(v..v.checked_add(record)?))
                .ok_or_else(|| {
                    self.err(format!(
                        "map symbol `{}` at offset {} does not start a {record}-byte map definition inside `{}`",
                        y.name, y.value, s.name
                    ))
                    .section(s.name.clone())
                    .help("the symbol table is damaged; rebuild the object")
                })?;
            let field = |i: usize| {
                bytes
                    .get(i * 4..i * 4 + 4)
                    .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            };
            let map_type = MapType::from_raw(field(0));
            // The samples' loader reads an `inner_map_idx` after the flags, counted among the
            // maps of this section in offset order.
            let inner = (matches!(map_type, MapType::ArrayOfMaps | MapType::HashOfMaps)
                && record >= 24)
                .then(|| field(5) as usize)
                .filter(|&i| i < syms.len())
                .map(|i| first + i);
            maps.legacy.insert((index, y.value), maps.defs.len());
            maps.defs.push(MapDef {
                name: y.name.clone(),
                map_type,
                key_size: field(1),
                value_size: field(2),
                max_entries: field(3),
                flags: field(4),
                inner,
                initial_value: None,
                origin: MapOrigin::Legacy,
            });
        }
        Ok(())
    }

    /// Reads the BTF-defined maps of `.maps`, in DATASEC order.
    fn btf_maps(&self, maps: &mut Maps) -> Result<(), Diagnostic> {
        let help = "define maps as `struct { __uint(type, ...); __type(key, ...); ... } name SEC(\".maps\");` and build with `-g`";
        let Some(btf) = self.btf()? else {
            return Err(self
                .err("the object has a `.maps` section but no `.BTF` to describe it")
                .section(".maps")
                .help(help));
        };
        let Some(vars) = btf.datasec(".maps") else {
            return Err(self
                .err("the BTF has no DATASEC for `.maps`")
                .section(".maps")
                .help(help));
        };
        for v in vars {
            let var = btf.get(v.type_id).filter(|t| t.kind == btf::KIND_VAR);
            let Some(var) = var else {
                return Err(self
                    .err(format!(
                        "`.maps` entry type {} is not a variable",
                        v.type_id
                    ))
                    .section(".maps")
                    .help(help));
            };
            let name = btf.string(var.name_off).unwrap_or("").to_string();
            let index = self.btf_map(&btf, var.size_or_type, &name, maps)?;
            maps.btf_by_name.insert(name, index);
            maps.btf_by_offset.insert(v.offset as u64, index);
        }
        Ok(())
    }

    /// Reads one BTF map definition struct and appends it (and its inner map, if any).
    fn btf_map(
        &self,
        btf: &Btf,
        type_id: u32,
        name: &str,
        maps: &mut Maps,
    ) -> Result<usize, Diagnostic> {
        let bad = |what: String| {
            self.err(format!("BTF map `{name}`: {what}"))
                .section(".maps")
                .help("use the libbpf map macros: `__uint(type, BPF_MAP_TYPE_HASH); __type(key, u32); __type(value, u64); __uint(max_entries, 16);`")
        };
        let members = btf
            .members(type_id)
            .ok_or_else(|| bad("the definition is not a struct".into()))?;
        let mut def = MapDef {
            name: name.to_string(),
            map_type: MapType::Other(0),
            key_size: 0,
            value_size: 0,
            max_entries: 0,
            flags: 0,
            inner: None,
            initial_value: None,
            origin: MapOrigin::Btf,
        };
        let mut inner_type = None;
        let mut has_values = false;
        for m in members {
            let mname = btf.string(m.name_off).unwrap_or("");
            // `__uint(field, N)` is `int (*field)[N]`: the value is the array's length.
            let uint = || -> Result<u32, Diagnostic> {
                let ptr = btf
                    .get(btf.resolve(m.type_id).unwrap_or(0))
                    .filter(|t| t.kind == btf::KIND_PTR)
                    .ok_or_else(|| bad(format!("member `{mname}` is not a pointer to an array")))?;
                match btf.get(btf.resolve(ptr.size_or_type).unwrap_or(0)) {
                    Some(btf::Type {
                        kind: btf::KIND_ARRAY,
                        extra: btf::Extra::Array { nelems, .. },
                        ..
                    }) => Ok(*nelems),
                    _ => Err(bad(format!(
                        "member `{mname}` is not a pointer to an array"
                    ))),
                }
            };
            // `__type(field, T)` is `T *field`: the size is T's.
            let pointee_size = || -> Result<u32, Diagnostic> {
                let ptr = btf
                    .get(btf.resolve(m.type_id).unwrap_or(0))
                    .filter(|t| t.kind == btf::KIND_PTR)
                    .ok_or_else(|| bad(format!("member `{mname}` is not a pointer")))?;
                btf.size_of(ptr.size_or_type)
                    .and_then(|s| u32::try_from(s).ok())
                    .ok_or_else(|| bad(format!("the size of the `{mname}` type is unknown")))
            };
            match mname {
                "type" => def.map_type = MapType::from_raw(uint()?),
                "max_entries" => def.max_entries = uint()?,
                "map_flags" => def.flags = uint()?,
                "key_size" => def.key_size = uint()?,
                "value_size" => def.value_size = uint()?,
                "key" => def.key_size = pointee_size()?,
                "value" => def.value_size = pointee_size()?,
                "values" => {
                    // libbpf: the slots of maps of maps and program arrays hold 4-byte ids.
                    has_values = true;
                    // `__array(values, struct inner)` is a zero-length array of pointers to
                    // the inner map's definition (or to a function prototype for program
                    // arrays, which have no inner definition).
                    let arr = btf.get(btf.resolve(m.type_id).unwrap_or(0));
                    if let Some(btf::Type {
                        kind: btf::KIND_ARRAY,
                        extra: btf::Extra::Array { elem, .. },
                        ..
                    }) = arr
                    {
                        if let Some(ptr) = btf
                            .get(btf.resolve(*elem).unwrap_or(0))
                            .filter(|t| t.kind == btf::KIND_PTR)
                        {
                            if btf.members(ptr.size_or_type).is_some() {
                                inner_type = Some(ptr.size_or_type);
                            }
                        }
                    }
                }
                // Pinning, NUMA node and map_extra do not change what the map holds.
                _ => {}
            }
        }
        if has_values && def.value_size == 0 {
            def.value_size = 4;
        }
        let index = maps.defs.len();
        maps.defs.push(def);
        if let Some(inner) = inner_type {
            // An inner definition that itself has `values` would recurse without end on a
            // hostile file; real objects never nest more than one level, so stop there.
            if name.matches(".inner").count() < 4 {
                let inner_index = self.btf_map(btf, inner, &format!("{name}.inner"), maps)?;
                maps.defs[index].inner = Some(inner_index);
            }
        }
        Ok(index)
    }

    /// Reads the `.BTF.ext` line records, by section name.
    fn line_info(&self) -> Result<HashMap<String, Vec<btf::LineRecord>>, Diagnostic> {
        let Some((_, ext)) = self.section_by_name(".BTF.ext") else {
            return Ok(HashMap::new());
        };
        let Some(btf) = self.btf()? else {
            return Ok(HashMap::new());
        };
        btf::parse_line_info(ext.data, &btf).map_err(|e| {
            self.err(format!("malformed line information: {e}"))
                .section(".BTF.ext")
                .help("rebuild the object with a recent clang, or strip it with `llvm-objcopy --remove-section .BTF.ext`")
        })
    }

    /// Line records must point at instructions of existing code sections: a record elsewhere
    /// means the BTF does not describe this code, and any message citing it would mislead.
    fn check_lines(
        &self,
        lines: &HashMap<String, Vec<btf::LineRecord>>,
        code: &[Code],
    ) -> Result<(), Diagnostic> {
        let mut names: Vec<&String> = lines.keys().collect();
        names.sort();
        for name in names {
            let Some(c) = code.iter().find(|c| &self.sections[c.index].name == name) else {
                return Err(self
                    .err(format!("line information refers to code section `{name}`, which does not exist"))
                    .section(".BTF.ext")
                    .help("the BTF does not match the code; rebuild the object, or strip it with `llvm-objcopy --remove-section .BTF.ext`"));
            };
            for r in &lines[name] {
                let slot = (r.insn_off / SLOT as u32) as usize;
                if r.insn_off % SLOT as u32 != 0 || slot >= c.raw.len() {
                    return Err(self
                        .err(format!(
                            "line information for byte offset {:#x} of `{name}` is not at an instruction of that section ({} instructions)",
                            r.insn_off,
                            c.raw.len()
                        ))
                        .section(".BTF.ext")
                        .help("the BTF does not match the code; rebuild the object, or strip it with `llvm-objcopy --remove-section .BTF.ext`"));
                }
            }
        }
        Ok(())
    }

    /// Splits every executable section into slots and finds its functions.
    fn code_sections(&self) -> Result<Vec<Code>, Diagnostic> {
        let mut out = Vec::new();
        for (index, s) in self.sections.iter().enumerate() {
            if s.header.sh_flags & SHF_EXECINSTR as u64 == 0 {
                continue;
            }
            let raw = insn::slots(s.data).map_err(|e| {
                self.err(format!(
                    "code section is not a whole number of instructions: {}",
                    e.kind
                ))
                .section(s.name.clone())
                .help("the file is damaged; rebuild it")
            })?;
            let mut funcs: Vec<Func> = Vec::new();
            for y in self
                .symbols
                .iter()
                .filter(|y| y.shndx == index && y.kind == sym::STT_FUNC)
            {
                let bad = |what: &str| {
                    self.err(format!(
                        "function symbol `{}` (offset {:#x}, size {:#x}) {what}",
                        y.name, y.value, y.size
                    ))
                    .section(s.name.clone())
                    .help("the symbol table is damaged; rebuild the object with clang")
                };
                if y.value % SLOT as u64 != 0 || y.size % SLOT as u64 != 0 {
                    return Err(bad("is not aligned to 8-byte instructions"));
                }
                let end = y.value.checked_add(y.size);
                if end.is_none_or(|e| e > s.data.len() as u64) {
                    return Err(bad("extends past the end of its section"));
                }
                funcs.push(Func {
                    name: y.name.clone(),
                    start: (y.value / SLOT as u64) as usize,
                    len: (y.size / SLOT as u64) as usize,
                    global: y.bind != sym::STB_LOCAL,
                });
            }
            funcs.sort_by(|a, b| a.start.cmp(&b.start).then(a.name.cmp(&b.name)));
            funcs.dedup_by_key(|f| f.start);
            // Old compilers leave sizes at zero: such a function runs to the next one.
            for i in 0..funcs.len() {
                if funcs[i].len == 0 {
                    let next = funcs.get(i + 1).map_or(raw.len(), |f| f.start);
                    funcs[i].len = next - funcs[i].start;
                }
            }
            let mut relocation_names: Vec<(usize, String)> = self
                .relocs
                .get(&index)
                .into_iter()
                .flatten()
                .map(|r| {
                    let name = self.symbols.get(r.sym).map_or("", |y| y.name.as_str());
                    ((r.offset / SLOT as u64) as usize, name.to_string())
                })
                .collect();
            relocation_names.sort();
            out.push(Code {
                index,
                raw,
                functions: funcs,
                relocation_names,
            });
        }
        Ok(out)
    }

    /// Applies the relocations of one code section: map references become map indices, calls
    /// and function addresses get their targets recorded for linking.
    fn relocate(&self, code: &Code, maps: &Maps) -> Result<Relocated, Diagnostic> {
        let section = &self.sections[code.index].name;
        let mut insns = code.raw.clone();
        let mut targets = BTreeMap::new();
        let mut relocated = HashSet::new();
        for r in self.relocs.get(&code.index).into_iter().flatten() {
            let slot = (r.offset / SLOT as u64) as usize;
            let here = |m: String| self.err(m).section(section.clone()).insn(slot);
            if r.offset % SLOT as u64 != 0 || slot >= insns.len() {
                return Err(here(format!(
                    "relocation at byte offset {:#x} is not at an instruction of the section",
                    r.offset
                ))
                .help("the file is damaged; rebuild it"));
            }
            let Some(y) = self.symbols.get(r.sym) else {
                return Err(here(format!(
                    "relocation refers to symbol {}, which does not exist",
                    r.sym
                ))
                .help("the file is damaged; rebuild it"));
            };
            let ins = insns[slot];
            if r.rtype != R_BPF_64_64 && r.rtype != R_BPF_64_32 {
                return Err(here(format!(
                    "unsupported relocation type {} against `{}` in code",
                    r.rtype, y.name
                ))
                .help("only R_BPF_64_64 (lddw) and R_BPF_64_32 (call) relocations can appear in BPF code; rebuild with clang -target bpf"));
            }
            if y.shndx == 0 {
                let what = if ins.code == OPCODE_CALL {
                    format!("call to `{}`, which is not defined in this object", y.name)
                } else {
                    format!(
                        "reference to `{}`, which is not defined in this object",
                        y.name
                    )
                };
                return Err(here(what).help(
                    "define the function or variable in this object (BPF has no dynamic linking; extern kfuncs, ksyms and kconfig variables are not supported by nicc); helpers are called by number, e.g. through bpf_helpers.h",
                ));
            }
            let target = self.sections.get(y.shndx).filter(|_| y.shndx < 0xff00);
            let Some(target) = target else {
                return Err(here(format!(
                    "relocation against `{}`, whose section index {} is not a section of this object",
                    y.name, y.shndx
                ))
                .help("absolute and common symbols cannot be referenced from BPF code; define the variable normally"));
            };
            let target_is_code = target.header.sh_flags & SHF_EXECINSTR as u64 != 0;
            match ins.code {
                OPCODE_LDDW => {
                    if slot + 1 >= insns.len() {
                        return Err(here(
                            "64-bit load at the end of the section has no second slot".into(),
                        )
                        .help("the file is damaged; rebuild it"));
                    }
                    if target_is_code {
                        let at = (y.value as i64)
                            .checked_add(ins.imm as i64)
                            .and_then(|b| b.checked_add(r.addend))
                            .filter(|b| b % SLOT as i64 == 0 && *b >= 0)
                            .map(|b| (b / SLOT as i64) as usize);
                        let Some(at) = at else {
                            return Err(here(format!(
                                "function address of `{}` is not at an instruction",
                                y.name
                            ))
                            .help("the file is damaged; rebuild it"));
                        };
                        targets.insert(slot, (y.shndx, at));
                        insns[slot].src = PSEUDO_FUNC;
                    } else if let Some(&m) = maps.legacy.get(&(y.shndx, y.value)).or_else(|| {
                        (maps.btf_section == Some(y.shndx))
                            .then(|| {
                                maps.btf_by_name
                                    .get(&y.name)
                                    .or(maps.btf_by_offset.get(&y.value))
                            })
                            .flatten()
                    }) {
                        insns[slot].src = PSEUDO_MAP_IDX;
                        insns[slot].imm = m as i32;
                        insns[slot + 1].imm = 0;
                    } else if let Some(&m) = maps.data.get(&y.shndx) {
                        // libbpf: the offset is the symbol's value plus the addend clang left
                        // in the instruction's immediate.
                        let offset = (y.value as i64)
                            .checked_add(ins.imm as i64)
                            .and_then(|o| o.checked_add(r.addend))
                            .and_then(|o| u32::try_from(o).ok());
                        let Some(offset) = offset else {
                            return Err(here(format!(
                                "offset into `{}` is out of range",
                                target.name
                            ))
                            .help("the file is damaged; rebuild it"));
                        };
                        insns[slot].src = PSEUDO_MAP_IDX_VALUE;
                        insns[slot].imm = m as i32;
                        insns[slot + 1].imm = offset as i32;
                    } else {
                        return Err(here(format!(
                            "64-bit load refers to `{}` in section `{}`, which is neither a map, global data nor code",
                            y.name, target.name
                        ))
                        .help("reference only maps (in `maps` or `.maps`), globals in .data/.rodata/.bss, or functions"));
                    }
                }
                OPCODE_CALL => {
                    if !target_is_code {
                        return Err(here(format!(
                            "call to `{}`, which is in non-code section `{}`",
                            y.name, target.name
                        ))
                        .help("the file is damaged; rebuild it"));
                    }
                    // Clang encodes calls to global functions as `call -1` against the
                    // function's symbol, and calls to static ones against the section symbol
                    // with the callee's slot minus one: in both cases the callee is
                    // value / 8 + imm + 1.
                    let at = (y.value / SLOT as u64)
                        .checked_add_signed(ins.imm as i64 + 1)
                        .and_then(|a| usize::try_from(a).ok());
                    let Some(at) = at else {
                        return Err(here(format!(
                            "call target in `{}` is before the section start",
                            target.name
                        ))
                        .help("the file is damaged; rebuild it"));
                    };
                    targets.insert(slot, (y.shndx, at));
                    insns[slot].src = PSEUDO_CALL;
                }
                other => {
                    return Err(here(format!(
                        "relocation against `{}` at an instruction with opcode {other:#04x}, which is neither a 64-bit load nor a call",
                        y.name
                    ))
                    .help("the file is damaged or was not built for BPF; rebuild it with clang -target bpf"));
                }
            }
            relocated.insert(slot);
        }
        // Calls inside one section need no relocation: the immediate is already relative.
        for (slot, ins) in code.raw.iter().enumerate() {
            if relocated.contains(&slot) {
                continue;
            }
            let local = (ins.code == OPCODE_CALL && ins.src == PSEUDO_CALL)
                || (ins.code == OPCODE_LDDW && ins.src == PSEUDO_FUNC);
            if local {
                let at = (slot as i64 + 1 + ins.imm as i64).try_into().ok();
                let Some(at) = at else {
                    return Err(self
                        .err("bpf-to-bpf call target is before the section start")
                        .section(section.clone())
                        .insn(slot)
                        .help("the file is damaged; rebuild it"));
                };
                targets.insert(slot, (code.index, at));
            }
        }
        Ok(Relocated { insns, targets })
    }

    /// Builds the programs: each entry function with the subprograms it reaches.
    fn link_programs(
        &self,
        code: &[Code],
        relocated: &[Relocated],
        lines: &HashMap<String, Vec<btf::LineRecord>>,
    ) -> Result<Vec<Program>, Diagnostic> {
        let by_section: HashMap<usize, usize> =
            code.iter().enumerate().map(|(i, c)| (c.index, i)).collect();
        // Program sections are the executable ones other than `.text`; an object whose only
        // code is in `.text` (some test objects) gets its global functions there as programs.
        let has_program_sections = code
            .iter()
            .any(|c| self.sections[c.index].name != ".text" && !c.raw.is_empty());
        let mut programs = Vec::new();
        let mut budget = MAX_LINKED_SLOTS;
        for (ci, c) in code.iter().enumerate() {
            let section = &self.sections[c.index].name;
            let is_text = section == ".text";
            if c.raw.is_empty() || (is_text && has_program_sections) {
                continue;
            }
            let mut entries: Vec<Func> = c.functions.iter().filter(|f| f.global).cloned().collect();
            if entries.is_empty() && !is_text {
                // Old objects: the whole section is one program, named after a symbol at its
                // start when there is one.
                let name = self
                    .symbols
                    .iter()
                    .find(|y| {
                        y.shndx == c.index
                            && y.value == 0
                            && y.bind != sym::STB_LOCAL
                            && !y.name.is_empty()
                    })
                    .map_or(section.clone(), |y| y.name.clone());
                let len = c
                    .functions
                    .first()
                    .filter(|f| f.start == 0)
                    .map_or(c.raw.len(), |f| f.len);
                entries.push(Func {
                    name,
                    start: 0,
                    len,
                    global: true,
                });
            }
            for entry in entries {
                let program =
                    self.link_one(ci, &entry, code, relocated, &by_section, lines, &mut budget)?;
                programs.push(program);
            }
        }
        Ok(programs)
    }

    #[allow(clippy::too_many_arguments)]
    fn link_one(
        &self,
        ci: usize,
        entry: &Func,
        code: &[Code],
        relocated: &[Relocated],
        by_section: &HashMap<usize, usize>,
        lines: &HashMap<String, Vec<btf::LineRecord>>,
        budget: &mut usize,
    ) -> Result<Program, Diagnostic> {
        let entry_section = self.sections[code[ci].index].name.clone();
        let mut insns: Vec<RawInsn> = Vec::new();
        let mut functions: Vec<Function> = Vec::new();
        // Placed functions by (code index, first slot in section) -> index in `functions`.
        let mut placed: HashMap<(usize, usize), usize> = HashMap::new();
        // Each queued function: (code index, func) and the linked start it will get.
        let mut queue: Vec<(usize, Func)> = vec![(ci, entry.clone())];
        let mut next = 0;
        placed.insert((ci, entry.start), 0);
        while next < queue.len() {
            let (qci, f) = queue[next].clone();
            next += 1;
            let sec = &code[qci];
            let rel = &relocated[qci];
            let sname = self.sections[sec.index].name.clone();
            if f.len > *budget {
                return Err(self
                    .err("linking the programs would produce more code than nicc accepts")
                    .section(sname)
                    .help("split the object into smaller ones"));
            }
            *budget -= f.len;
            let start = insns.len();
            if start + f.len > MAX_PROGRAM_SLOTS {
                return Err(self
                    .err(format!(
                        "program `{}` links to more than {MAX_PROGRAM_SLOTS} instructions (the \
                         kernel's BPF_COMPLEXITY_LIMIT_INSNS), so no kernel would load it",
                        entry.name
                    ))
                    .section(entry_section.clone())
                    .program(entry.name.clone())
                    .help("split the program with tail calls, or move work out of it"));
            }
            let end = f.start + f.len;
            insns.extend_from_slice(&rel.insns[f.start..end]);
            functions.push(Function {
                name: f.name.clone(),
                section: sname.clone(),
                start,
                len: f.len,
                section_offset: f.start,
            });
            // Queue callees so that their linked positions are known once we reach them; the
            // immediates are fixed in a second pass below.
            for (&slot, &(tsec, tslot)) in rel.targets.range(f.start..end) {
                let Some(&tci) = by_section.get(&tsec) else {
                    return Err(self
                        .err("call into a section that holds no code")
                        .section(sname.clone())
                        .insn(slot)
                        .help("the file is damaged; rebuild it"));
                };
                // A target inside a function already placed (for example the body of a
                // program section without function symbols) is reached there, not copied.
                let inside = |(c, g): &(usize, Func)| {
                    *c == tci && g.start <= tslot && tslot < g.start + g.len
                };
                if !code[tci]
                    .functions
                    .iter()
                    .any(|g| g.start <= tslot && tslot < g.start + g.len)
                    && queue.iter().any(inside)
                {
                    continue;
                }
                let tfunc = self.function_at(&code[tci], tslot).ok_or_else(|| {
                    self.err(format!(
                        "call target (slot {tslot} of `{}`) is outside that section",
                        self.sections[code[tci].index].name
                    ))
                    .section(sname.clone())
                    .insn(slot)
                    .help("the file is damaged; rebuild it")
                })?;
                if let std::collections::hash_map::Entry::Vacant(v) =
                    placed.entry((tci, tfunc.start))
                {
                    v.insert(queue.len());
                    queue.push((tci, tfunc));
                }
            }
        }
        // Every queued function was appended in queue order, so queue index = function index.
        for (fi, (qci, f)) in queue.iter().enumerate() {
            let rel = &relocated[*qci];
            let base = functions[fi].start;
            for (&slot, &(tsec, tslot)) in rel.targets.range(f.start..f.start + f.len) {
                let tci = by_section[&tsec];
                let covered = code[tci]
                    .functions
                    .iter()
                    .any(|g| g.start <= tslot && tslot < g.start + g.len);
                let found = if covered {
                    self.function_at(&code[tci], tslot)
                        .and_then(|g| placed.get(&(tci, g.start)).map(|&i| (i, g.start)))
                } else {
                    queue
                        .iter()
                        .position(|(c, g)| *c == tci && g.start <= tslot && tslot < g.start + g.len)
                        .map(|i| (i, queue[i].1.start))
                };
                let Some((target_fi, target_start)) = found else {
                    continue;
                };
                let linked_target = functions[target_fi].start + (tslot - target_start);
                let pc = base + (slot - f.start);
                let imm = linked_target as i64 - (pc as i64 + 1);
                insns[pc].imm = i32::try_from(imm).map_err(|_| {
                    self.err("linked program is too large for a call offset")
                        .section(functions[fi].section.clone())
                        .insn(slot)
                        .help("split the program")
                })?;
            }
        }
        let mut line_infos: Vec<LineInfo> = Vec::new();
        for func in &functions {
            let Some(records) = lines.get(&func.section) else {
                continue;
            };
            for r in records {
                let slot = (r.insn_off / SLOT as u32) as usize;
                if (func.section_offset..func.section_offset + func.len).contains(&slot) {
                    line_infos.push(LineInfo {
                        insn: func.start + slot - func.section_offset,
                        file: r.file.clone(),
                        line: r.line,
                        column: r.column,
                        source: r.source.clone(),
                    });
                }
            }
        }
        line_infos.sort_by_key(|l| l.insn);
        let mut program = Program {
            name: entry.name.clone(),
            section: entry_section.clone(),
            kind: ProgramKind::from_section(&entry_section),
            insns,
            functions,
            lines: line_infos,
        };
        if let Err(e) = insn::decode_all(&program.insns) {
            let func = program.function_at(e.index);
            let (section, slot) = func.map_or((entry_section.clone(), e.index), |f| {
                (f.section.clone(), f.section_offset + e.index - f.start)
            });
            return Err(self
                .err(format!("cannot decode instruction: {}", e.kind))
                .program(program.name.clone())
                .section(section)
                .insn(slot)
                .line(program.line_at(e.index).cloned())
                .help(e.kind.help()));
        }
        program.lines.dedup();
        Ok(program)
    }

    /// The function of a code section that a call to `slot` enters: the one starting there, or
    /// (for code without function symbols) a stand-in running to the next function.
    fn function_at(&self, code: &Code, slot: usize) -> Option<Func> {
        if slot >= code.raw.len() {
            return None;
        }
        if let Some(f) = code
            .functions
            .iter()
            .find(|f| f.start <= slot && slot < f.start + f.len)
        {
            return Some(f.clone());
        }
        let end = code
            .functions
            .iter()
            .map(|f| f.start)
            .filter(|&s| s > slot)
            .min()
            .unwrap_or(code.raw.len());
        let sname = &self.sections[code.index].name;
        Some(Func {
            name: format!("{sname}+{slot}"),
            start: slot,
            len: end - slot,
            global: false,
        })
    }
}

/// The bytes `[offset, offset + size)` of the file, if they are inside it.
fn file_range(bytes: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    bytes.get(start..end)
}

/// A NUL-terminated UTF-8 string at `offset` of a string table.
fn c_string(table: &[u8], offset: u64) -> Option<&str> {
    let rest = table.get(usize::try_from(offset).ok()?..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 little-endian header with the given machine and no sections.
    fn header(machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2; // ELFCLASS64
        h[5] = 1; // ELFDATA2LSB
        h[6] = 1; // EV_CURRENT
        h[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        h[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        h
    }

    #[test]
    fn rejects_what_is_not_a_bpf_object() {
        for (bytes, needle) in [
            (Vec::new(), "not an ELF file"),
            (b"\x7fELF".to_vec(), "not an ELF file"),
            (header(62), "rather than BPF"),
            (header(EM_BPF), "no section headers"),
        ] {
            let e = read_object(&bytes, "t.o").expect_err(needle);
            assert!(e.message.contains(needle), "{e}");
            assert!(e.help.is_some());
            assert_eq!(e.object.as_deref(), Some("t.o"));
        }
    }

    #[test]
    fn a_section_table_past_the_end_is_an_error() {
        let mut h = header(EM_BPF);
        h[40..48].copy_from_slice(&u64::MAX.to_le_bytes()); // e_shoff
        h[60..62].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
        let e = read_object(&h, "t.o").expect_err("bad table");
        assert!(e.message.contains("section header table"), "{e}");
    }

    #[test]
    fn global_data_names_follow_libbpf() {
        assert!(is_global_data(".rodata.str1.1"));
        assert!(is_global_data(".bss"));
        assert!(is_global_data(".data.counters"));
        assert!(!is_global_data(".database"));
        assert!(!is_global_data(".debug_info"));
        assert!(is_legacy_maps("maps/xdp"));
        assert!(!is_legacy_maps(".maps"));
    }
}
