//! A compact reader for the BPF Type Format, as far as nicc needs it.
//!
//! Two things in a BPF object are only described in BTF: the maps of the `.maps` section (whose
//! sizes and types are encoded in the *types* of the map variables, not in their bytes) and the
//! line information of `.BTF.ext` (which ties instructions to C source lines for diagnostics).
//! This module parses the `.BTF` header, type table and string table, and the line-info part of
//! `.BTF.ext`. Every offset, count and type id comes from the file, so every read is bounds
//! checked and every chain of type references is followed a bounded number of steps: a hostile
//! file produces an error message, never a panic or an endless loop.

use std::collections::HashMap;

/// The magic number both `.BTF` and `.BTF.ext` start with.
const MAGIC: u16 = 0xeb9f;

/// How many typedef/qualifier/pointer steps a type chain may take before we call it a cycle.
const MAX_CHAIN: usize = 64;

pub const KIND_INT: u8 = 1;
pub const KIND_PTR: u8 = 2;
pub const KIND_ARRAY: u8 = 3;
pub const KIND_STRUCT: u8 = 4;
pub const KIND_UNION: u8 = 5;
pub const KIND_ENUM: u8 = 6;
pub const KIND_FWD: u8 = 7;
pub const KIND_TYPEDEF: u8 = 8;
pub const KIND_VOLATILE: u8 = 9;
pub const KIND_CONST: u8 = 10;
pub const KIND_RESTRICT: u8 = 11;
pub const KIND_FUNC: u8 = 12;
pub const KIND_FUNC_PROTO: u8 = 13;
pub const KIND_VAR: u8 = 14;
pub const KIND_DATASEC: u8 = 15;
pub const KIND_FLOAT: u8 = 16;
pub const KIND_DECL_TAG: u8 = 17;
pub const KIND_TYPE_TAG: u8 = 18;
pub const KIND_ENUM64: u8 = 19;

/// A member of a struct or union, or a parameter of a function prototype (offset 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name_off: u32,
    pub type_id: u32,
    /// Bit offset (with the bitfield size in the top byte when the kind flag is set).
    pub offset: u32,
}

/// One variable of a DATASEC: its VAR type id and where it sits in the section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecVar {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

/// The kind-specific part of a type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extra {
    None,
    Int(u32),
    Array {
        elem: u32,
        index: u32,
        nelems: u32,
    },
    Members(Vec<Member>),
    /// Enumerators are not needed by nicc; only their count is kept.
    Enumerators(usize),
    Var {
        linkage: u32,
    },
    Datasec(Vec<SecVar>),
    DeclTag {
        component: i32,
    },
}

/// One BTF type record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type {
    pub kind: u8,
    pub name_off: u32,
    pub vlen: u16,
    pub kind_flag: bool,
    /// The size for sized kinds, the referenced type id for the others.
    pub size_or_type: u32,
    pub extra: Extra,
}

/// A parsed `.BTF` section.
#[derive(Clone, Debug, Default)]
pub struct Btf {
    /// Type id `n` is `types[n - 1]`; id 0 is `void`.
    types: Vec<Type>,
    strings: Vec<u8>,
}

/// A little-endian cursor over a byte slice that reports running out of bytes as an error.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("{what} runs past the end of its table"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The sub-slice `[base + off, base + off + len)` of `bytes`, if it is inside.
fn sub(bytes: &[u8], base: usize, off: u32, len: u32) -> Option<&[u8]> {
    let start = base.checked_add(off as usize)?;
    let end = start.checked_add(len as usize)?;
    bytes.get(start..end)
}

/// Reads a NUL-terminated string at `off` of a string table.
fn string_at(strings: &[u8], off: u32) -> Option<&str> {
    let rest = strings.get(off as usize..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

impl Btf {
    /// Parses a `.BTF` section.
    pub fn parse(bytes: &[u8]) -> Result<Btf, String> {
        let magic = read_u16(bytes, 0).ok_or("the section is shorter than a BTF header")?;
        if magic != MAGIC {
            return Err(format!(
                "bad BTF magic {magic:#06x} (expected {MAGIC:#06x}, little-endian)"
            ));
        }
        let header = |at| read_u32(bytes, at).ok_or("the BTF header is truncated");
        let hdr_len = header(4)?;
        let (type_off, type_len) = (header(8)?, header(12)?);
        let (str_off, str_len) = (header(16)?, header(20)?);
        if hdr_len < 24 {
            return Err(format!(
                "BTF header length {hdr_len} is shorter than 24 bytes"
            ));
        }
        let base = hdr_len as usize;
        let type_bytes = sub(bytes, base, type_off, type_len)
            .ok_or("the BTF type table lies outside the section")?;
        let strings = sub(bytes, base, str_off, str_len)
            .ok_or("the BTF string table lies outside the section")?;
        let mut cur = Cursor::new(type_bytes);
        let mut types = Vec::new();
        while cur.remaining() > 0 {
            types.push(parse_type(&mut cur, types.len() + 1)?);
        }
        Ok(Btf {
            types,
            strings: strings.to_vec(),
        })
    }

    /// The type with this id (`None` for `void` and for ids past the table).
    pub fn get(&self, id: u32) -> Option<&Type> {
        (id as usize).checked_sub(1).and_then(|i| self.types.get(i))
    }

    /// The number of types (the largest valid id).
    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// A string of the string table, `None` if the offset is bogus.
    pub fn string(&self, off: u32) -> Option<&str> {
        string_at(&self.strings, off)
    }

    /// The name of a type, or "" for anonymous types and bogus offsets.
    pub fn name(&self, id: u32) -> &str {
        self.get(id)
            .and_then(|t| self.string(t.name_off))
            .unwrap_or("")
    }

    /// Follows typedefs and qualifiers (volatile, const, restrict, type tags) to the type they
    /// stand for. Returns the id reached, or `None` on a cycle or a dangling id.
    pub fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..MAX_CHAIN {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Some(id),
            }
        }
        None
    }

    /// The size in bytes of a type, as `sizeof` would give it.
    pub fn size_of(&self, id: u32) -> Option<u64> {
        self.size_of_depth(id, 0)
    }

    fn size_of_depth(&self, id: u32, depth: usize) -> Option<u64> {
        if depth > MAX_CHAIN {
            return None;
        }
        let id = self.resolve(id)?;
        let t = self.get(id)?;
        match t.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT
            | KIND_DATASEC => Some(t.size_or_type as u64),
            KIND_PTR => Some(8),
            KIND_ARRAY => match t.extra {
                Extra::Array { elem, nelems, .. } => self
                    .size_of_depth(elem, depth + 1)?
                    .checked_mul(nelems as u64),
                _ => None,
            },
            KIND_VAR => self.size_of_depth(t.size_or_type, depth + 1),
            _ => None,
        }
    }

    /// The variables of the DATASEC with this name, if there is one.
    pub fn datasec(&self, name: &str) -> Option<&[SecVar]> {
        self.types.iter().find_map(|t| match &t.extra {
            Extra::Datasec(vars)
                if t.kind == KIND_DATASEC && self.string(t.name_off) == Some(name) =>
            {
                Some(vars.as_slice())
            }
            _ => None,
        })
    }

    /// The members of a struct or union (after resolving typedefs and qualifiers).
    pub fn members(&self, id: u32) -> Option<&[Member]> {
        let t = self.get(self.resolve(id)?)?;
        match (&t.extra, t.kind) {
            (Extra::Members(m), KIND_STRUCT | KIND_UNION) => Some(m.as_slice()),
            _ => None,
        }
    }
}

/// Parses one type record at the cursor; `id` is only used in messages.
fn parse_type(cur: &mut Cursor, id: usize) -> Result<Type, String> {
    let what = format!("BTF type {id}");
    let name_off = cur.u32(&what)?;
    let info = cur.u32(&what)?;
    let size_or_type = cur.u32(&what)?;
    let vlen = (info & 0xffff) as u16;
    let kind = ((info >> 24) & 0x1f) as u8;
    let kind_flag = info >> 31 != 0;
    // Each record's variable part is at most 65535 entries of at most 12 bytes, and `take`
    // refuses to read past the table, so a bogus count fails instead of allocating.
    let members = |cur: &mut Cursor, with_offset: bool| -> Result<Vec<Member>, String> {
        let entry = if with_offset { 12 } else { 8 };
        if (vlen as usize) * entry > cur.remaining() {
            return Err(format!("{what} has more members than its table holds"));
        }
        (0..vlen)
            .map(|_| {
                Ok(Member {
                    name_off: cur.u32(&what)?,
                    type_id: cur.u32(&what)?,
                    offset: if with_offset { cur.u32(&what)? } else { 0 },
                })
            })
            .collect()
    };
    let extra = match kind {
        KIND_INT => Extra::Int(cur.u32(&what)?),
        KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
        | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => Extra::None,
        KIND_ARRAY => Extra::Array {
            elem: cur.u32(&what)?,
            index: cur.u32(&what)?,
            nelems: cur.u32(&what)?,
        },
        KIND_STRUCT | KIND_UNION => Extra::Members(members(cur, true)?),
        KIND_FUNC_PROTO => Extra::Members(members(cur, false)?),
        KIND_ENUM => {
            cur.take(vlen as usize * 8, &what)?;
            Extra::Enumerators(vlen as usize)
        }
        KIND_ENUM64 => {
            cur.take(vlen as usize * 12, &what)?;
            Extra::Enumerators(vlen as usize)
        }
        KIND_VAR => Extra::Var {
            linkage: cur.u32(&what)?,
        },
        KIND_DATASEC => {
            if (vlen as usize) * 12 > cur.remaining() {
                return Err(format!("{what} has more variables than its table holds"));
            }
            let vars = (0..vlen)
                .map(|_| {
                    Ok(SecVar {
                        type_id: cur.u32(&what)?,
                        offset: cur.u32(&what)?,
                        size: cur.u32(&what)?,
                    })
                })
                .collect::<Result<_, String>>()?;
            Extra::Datasec(vars)
        }
        KIND_DECL_TAG => Extra::DeclTag {
            component: cur.u32(&what)? as i32,
        },
        other => return Err(format!("{what} has unknown kind {other}")),
    };
    Ok(Type {
        kind,
        name_off,
        vlen,
        kind_flag,
        size_or_type,
        extra,
    })
}

/// One line record of `.BTF.ext`, still in section terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineRecord {
    /// Byte offset of the instruction in its section.
    pub insn_off: u32,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub source: String,
}

/// Parses the line-info part of a `.BTF.ext` section: for each code section name, its line
/// records. Function info and CO-RE relocations are skipped (nicc does not need them).
pub fn parse_line_info(ext: &[u8], btf: &Btf) -> Result<HashMap<String, Vec<LineRecord>>, String> {
    let magic = read_u16(ext, 0).ok_or("the section is shorter than a .BTF.ext header")?;
    if magic != MAGIC {
        return Err(format!("bad .BTF.ext magic {magic:#06x}"));
    }
    let header = |at| read_u32(ext, at).ok_or("the .BTF.ext header is truncated");
    let hdr_len = header(4)?;
    if hdr_len < 24 {
        return Err(format!(
            ".BTF.ext header length {hdr_len} is shorter than 24"
        ));
    }
    let (line_off, line_len) = (header(16)?, header(20)?);
    let mut out: HashMap<String, Vec<LineRecord>> = HashMap::new();
    if line_len == 0 {
        return Ok(out);
    }
    let table = sub(ext, hdr_len as usize, line_off, line_len)
        .ok_or("the .BTF.ext line-info table lies outside the section")?;
    let mut cur = Cursor::new(table);
    let rec_size = cur.u32("the line-info record size")? as usize;
    if rec_size < 16 {
        return Err(format!(
            "line-info record size {rec_size} is below 16 bytes"
        ));
    }
    while cur.remaining() > 0 {
        let sec_name_off = cur.u32("a line-info section header")?;
        let count = cur.u32("a line-info section header")? as usize;
        let section = btf
            .string(sec_name_off)
            .ok_or_else(|| {
                format!("line-info section name offset {sec_name_off} is not in the string table")
            })?
            .to_string();
        let bytes = count
            .checked_mul(rec_size)
            .filter(|&n| n <= cur.remaining())
            .ok_or_else(|| {
                format!(
                    "line info of `{section}` claims {count} records, more than the table holds"
                )
            })?;
        let records = cur.take(bytes, "line info")?;
        let list = out.entry(section).or_default();
        for rec in records.chunks_exact(rec_size) {
            let field = |at| read_u32(rec, at).unwrap_or(0);
            let (insn_off, file_off, line_off, line_col) =
                (field(0), field(4), field(8), field(12));
            // A bogus string offset loses the text, not the whole object: line info only
            // decorates messages.
            list.push(LineRecord {
                insn_off,
                file: btf.string(file_off).unwrap_or("").to_string(),
                line: line_col >> 10,
                column: line_col & 0x3ff,
                source: btf.string(line_off).unwrap_or("").to_string(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a `.BTF` section from raw type words and a string table.
    fn build(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        let type_len = (types.len() * 4) as u32;
        for word in [24, 0, type_len, type_len, strings.len() as u32] {
            out.extend_from_slice(&u32::to_le_bytes(word));
        }
        for t in types {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn sizes_follow_typedefs_and_arrays() {
        let strings = b"\0int\0u32\0";
        // 1: int (4 bytes), 2: typedef u32 -> 1, 3: array of 10 x 2, 4: ptr -> 3.
        let types = [
            1,
            (KIND_INT as u32) << 24,
            4,
            32,
            5,
            (KIND_TYPEDEF as u32) << 24,
            1,
            0,
            (KIND_ARRAY as u32) << 24,
            0,
            2,
            1,
            10,
            0,
            (KIND_PTR as u32) << 24,
            3,
        ];
        let btf = Btf::parse(&build(&types, strings)).expect("valid BTF");
        assert_eq!(btf.len(), 4);
        assert_eq!(btf.name(1), "int");
        assert_eq!(btf.size_of(2), Some(4));
        assert_eq!(btf.size_of(3), Some(40));
        assert_eq!(btf.size_of(4), Some(8));
    }

    #[test]
    fn typedef_cycles_and_truncation_are_errors_not_hangs() {
        // 1: typedef -> 2, 2: typedef -> 1.
        let types = [
            0,
            (KIND_TYPEDEF as u32) << 24,
            2,
            0,
            (KIND_TYPEDEF as u32) << 24,
            1,
        ];
        let bytes = build(&types, b"\0");
        let btf = Btf::parse(&bytes).expect("valid layout");
        assert_eq!(btf.size_of(1), None);
        for cut in 0..bytes.len() {
            let _ = Btf::parse(&bytes[..cut]);
        }
    }
}
