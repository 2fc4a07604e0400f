//! The model of a BPF object after reading: programs linked as libbpf links them, the maps they
//! use (legacy `maps`, BTF `.maps` and global data), and line information for diagnostics.
//!
//! Every later stage (interpreter, kernel loader, lifting) consumes this model, never the ELF
//! file. Map references inside programs are already resolved to indices into
//! [`Object::maps`] (`lddw` with the `BPF_PSEUDO_MAP_IDX` and `BPF_PSEUDO_MAP_IDX_VALUE` forms),
//! so a program is self-contained; a loader swaps indices for descriptors.

use crate::insn::RawInsn;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A whole object file.
#[derive(Clone, Debug, Default)]
pub struct Object {
    /// The file name, for messages.
    pub name: String,
    /// The `license` section, when present (the kernel needs "GPL" for some helpers).
    pub license: Option<String>,
    /// The `version` section, when present (old kprobe programs).
    pub kernel_version: Option<u32>,
    pub programs: Vec<Program>,
    pub maps: Vec<MapDef>,
    /// Every executable section as it stands in the file (unlinked, relocations not applied),
    /// for the disassembler and for messages that cite section offsets.
    pub code_sections: Vec<CodeSection>,
}

/// An executable section as it stands in the file.
#[derive(Clone, Debug, Default)]
pub struct CodeSection {
    pub name: String,
    pub insns: Vec<RawInsn>,
    /// Every named symbol defined in this section (functions and `LBB` labels): (slot offset,
    /// name), sorted by offset then name.
    pub symbols: Vec<(usize, String)>,
    /// Relocations in this section: (slot offset, symbol name).
    pub relocations: Vec<(usize, String)>,
}

impl Object {
    /// Finds a program by function name or, failing that, by section name.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs
            .iter()
            .find(|p| p.name == name)
            .or_else(|| self.programs.iter().find(|p| p.section == name))
    }

    pub fn map_by_name(&self, name: &str) -> Option<(usize, &MapDef)> {
        self.maps.iter().enumerate().find(|(_, m)| m.name == name)
    }
}

/// One program: an entry function in a program section, linked with the `.text` subprograms it
/// calls (appended after it, call offsets fixed up), as libbpf does.
#[derive(Clone, Debug)]
pub struct Program {
    /// The entry function's symbol name (or the section name if the symbol is missing).
    pub name: String,
    /// The ELF section it came from, e.g. `xdp` or `kprobe/sys_write`.
    pub section: String,
    pub kind: ProgramKind,
    /// The linked code, one entry per 8-byte slot.
    pub insns: Vec<RawInsn>,
    /// The functions inside `insns`: the entry first, then appended subprograms.
    pub functions: Vec<Function>,
    /// BTF line information, sorted by slot index in `insns`.
    pub lines: Vec<LineInfo>,
}

impl Program {
    /// The source line that covers slot `index`: the last line record at or before it.
    pub fn line_at(&self, index: usize) -> Option<&LineInfo> {
        let pos = self.lines.partition_point(|l| l.insn <= index);
        pos.checked_sub(1).map(|p| &self.lines[p])
    }

    /// The function that contains slot `index`.
    pub fn function_at(&self, index: usize) -> Option<&Function> {
        self.functions
            .iter()
            .find(|f| (f.start..f.start + f.len).contains(&index))
    }
}

/// A function inside a linked program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    /// The section it was defined in (`.text` for subprograms).
    pub section: String,
    /// First slot in the linked program.
    pub start: usize,
    /// Length in slots.
    pub len: usize,
    /// First slot within its own section, for relating messages to `llvm-objdump` output.
    pub section_offset: usize,
}

/// A BTF `.BTF.ext` line record mapped onto a linked program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineInfo {
    /// Slot index in the linked program.
    pub insn: usize,
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// The text of the source line, as the object's BTF string table holds it.
    pub source: String,
}

impl fmt::Display for LineInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The program type, decided from the section name as libbpf does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProgramKind {
    SocketFilter,
    Kprobe,
    SchedCls,
    SchedAct,
    Tracepoint,
    Xdp,
    PerfEvent,
    CgroupSkb,
    CgroupSock,
    LwtIn,
    LwtOut,
    LwtXmit,
    SockOps,
    SkSkb,
    CgroupDevice,
    SkMsg,
    RawTracepoint,
    CgroupSockAddr,
    Tracing,
    StructOps,
    Lsm,
    Syscall,
    Netfilter,
    /// A section we could not classify; still decoded, never run.
    Unknown,
}

impl ProgramKind {
    /// The kernel's `enum bpf_prog_type` value.
    pub fn prog_type(self) -> u32 {
        match self {
            ProgramKind::Unknown => 0,
            ProgramKind::SocketFilter => 1,
            ProgramKind::Kprobe => 2,
            ProgramKind::SchedCls => 3,
            ProgramKind::SchedAct => 4,
            ProgramKind::Tracepoint => 5,
            ProgramKind::Xdp => 6,
            ProgramKind::PerfEvent => 7,
            ProgramKind::CgroupSkb => 8,
            ProgramKind::CgroupSock => 9,
            ProgramKind::LwtIn => 10,
            ProgramKind::LwtOut => 11,
            ProgramKind::LwtXmit => 12,
            ProgramKind::SockOps => 13,
            ProgramKind::SkSkb => 14,
            ProgramKind::CgroupDevice => 15,
            ProgramKind::SkMsg => 16,
            ProgramKind::RawTracepoint => 17,
            ProgramKind::CgroupSockAddr => 18,
            ProgramKind::Tracing => 26,
            ProgramKind::StructOps => 27,
            ProgramKind::Lsm => 29,
            ProgramKind::Syscall => 31,
            ProgramKind::Netfilter => 32,
        }
    }

    /// Classifies a section name by its prefix, following libbpf's section table.
    pub fn from_section(section: &str) -> ProgramKind {
        const TABLE: &[(&str, ProgramKind)] = &[
            ("xdp", ProgramKind::Xdp),
            ("socket", ProgramKind::SocketFilter),
            ("kprobe", ProgramKind::Kprobe),
            ("kretprobe", ProgramKind::Kprobe),
            ("uprobe", ProgramKind::Kprobe),
            ("uretprobe", ProgramKind::Kprobe),
            ("ksyscall", ProgramKind::Kprobe),
            ("kretsyscall", ProgramKind::Kprobe),
            ("usdt", ProgramKind::Kprobe),
            ("tc", ProgramKind::SchedCls),
            ("classifier", ProgramKind::SchedCls),
            ("action", ProgramKind::SchedAct),
            ("tracepoint", ProgramKind::Tracepoint),
            ("tp", ProgramKind::Tracepoint),
            ("raw_tracepoint", ProgramKind::RawTracepoint),
            ("raw_tp", ProgramKind::RawTracepoint),
            ("tp_btf", ProgramKind::Tracing),
            ("fentry", ProgramKind::Tracing),
            ("fexit", ProgramKind::Tracing),
            ("fmod_ret", ProgramKind::Tracing),
            ("iter", ProgramKind::Tracing),
            ("perf_event", ProgramKind::PerfEvent),
            ("cgroup_skb", ProgramKind::CgroupSkb),
            ("cgroup/skb", ProgramKind::CgroupSkb),
            ("cgroup/sock", ProgramKind::CgroupSock),
            ("cgroup/dev", ProgramKind::CgroupDevice),
            ("cgroup/bind", ProgramKind::CgroupSockAddr),
            ("cgroup/connect", ProgramKind::CgroupSockAddr),
            ("cgroup/sendmsg", ProgramKind::CgroupSockAddr),
            ("cgroup/recvmsg", ProgramKind::CgroupSockAddr),
            ("lwt_in", ProgramKind::LwtIn),
            ("lwt_out", ProgramKind::LwtOut),
            ("lwt_xmit", ProgramKind::LwtXmit),
            ("sockops", ProgramKind::SockOps),
            ("sk_skb", ProgramKind::SkSkb),
            ("sk_msg", ProgramKind::SkMsg),
            ("struct_ops", ProgramKind::StructOps),
            ("lsm", ProgramKind::Lsm),
            ("syscall", ProgramKind::Syscall),
            ("netfilter", ProgramKind::Netfilter),
        ];
        // The longest matching prefix wins, so that `tp_btf/x` is not taken for `tp`. A bare
        // prefix is enough (`xdp1`, `xdp_fwd`, `socket1`): the kernel samples' loader matched
        // section names that way, and the corpus is full of such names.
        TABLE
            .iter()
            .filter(|(prefix, _)| section.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, kind)| *kind)
            .unwrap_or(ProgramKind::Unknown)
    }
}

/// The kernel's `enum bpf_map_type`, with the types nicc knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapType {
    Hash,
    Array,
    ProgArray,
    PerfEventArray,
    PercpuHash,
    PercpuArray,
    StackTrace,
    CgroupArray,
    LruHash,
    LruPercpuHash,
    LpmTrie,
    ArrayOfMaps,
    HashOfMaps,
    Devmap,
    Sockmap,
    Cpumap,
    Xskmap,
    Sockhash,
    CgroupStorage,
    ReuseportSockarray,
    PercpuCgroupStorage,
    Queue,
    Stack,
    SkStorage,
    DevmapHash,
    StructOps,
    Ringbuf,
    InodeStorage,
    TaskStorage,
    BloomFilter,
    UserRingbuf,
    CgrpStorage,
    Arena,
    /// A type number this version of nicc does not know.
    Other(u32),
}

impl MapType {
    const KNOWN: [MapType; 33] = [
        MapType::Hash,
        MapType::Array,
        MapType::ProgArray,
        MapType::PerfEventArray,
        MapType::PercpuHash,
        MapType::PercpuArray,
        MapType::StackTrace,
        MapType::CgroupArray,
        MapType::LruHash,
        MapType::LruPercpuHash,
        MapType::LpmTrie,
        MapType::ArrayOfMaps,
        MapType::HashOfMaps,
        MapType::Devmap,
        MapType::Sockmap,
        MapType::Cpumap,
        MapType::Xskmap,
        MapType::Sockhash,
        MapType::CgroupStorage,
        MapType::ReuseportSockarray,
        MapType::PercpuCgroupStorage,
        MapType::Queue,
        MapType::Stack,
        MapType::SkStorage,
        MapType::DevmapHash,
        MapType::StructOps,
        MapType::Ringbuf,
        MapType::InodeStorage,
        MapType::TaskStorage,
        MapType::BloomFilter,
        MapType::UserRingbuf,
        MapType::CgrpStorage,
        MapType::Arena,
    ];

    /// From the kernel's type number (1 is `BPF_MAP_TYPE_HASH`).
    pub fn from_raw(raw: u32) -> MapType {
        match raw {
            1..=33 => MapType::KNOWN[raw as usize - 1],
            other => MapType::Other(other),
        }
    }

    pub fn to_raw(self) -> u32 {
        match self {
            MapType::Other(raw) => raw,
            known => {
                MapType::KNOWN
                    .iter()
                    .position(|k| *k == known)
                    .expect("every named type is in KNOWN") as u32
                    + 1
            }
        }
    }

    /// True for the per-CPU types, whose values the user space sees once per CPU.
    pub fn is_per_cpu(self) -> bool {
        matches!(
            self,
            MapType::PercpuArray
                | MapType::PercpuHash
                | MapType::LruPercpuHash
                | MapType::PercpuCgroupStorage
        )
    }
}

/// Where a map definition came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapOrigin {
    /// A `struct bpf_map_def` record in a legacy `maps` section.
    Legacy,
    /// A BTF-defined map in `.maps`.
    Btf,
    /// A global-data section (`.data`, `.rodata`, `.bss` and their suffixed forms), which
    /// libbpf turns into a single-entry array map.
    GlobalData { section: String, read_only: bool },
}

/// One map the object defines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub name: String,
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// For maps of maps: the index of the map whose definition inner maps follow.
    pub inner: Option<usize>,
    /// The initial value of entry 0 of a global-data map (zeroes for `.bss`).
    pub initial_value: Option<Vec<u8>>,
    pub origin: MapOrigin,
}
