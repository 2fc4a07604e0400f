//! BTF carried over from the original object, so that BTF-defined maps keep their types.
//!
//! Re-emission changes code, never types: every map, key and value type and every global
//! variable of the original is still what the program uses. So the original `.BTF` section is
//! copied as it is, and the BTF-defined maps go back into a `.maps` section of the original
//! size, each under its symbol at the offset the BTF `DATASEC` gives it, which is how
//! libbpf-style loaders (and nicc's own reader) match map symbols with their BTF definitions.
//! `.BTF.ext` is not carried: its function and line records name instruction offsets of the
//! original code, which no longer exist.
//!
//! The sections are found by a small ELF64 reader of our own (section headers and their
//! names only, every offset bounds-checked), because nicc's frontend keeps the parsed BTF,
//! not its bytes, and the `object` crate is built here for writing only.

use frontend::btf::{Btf, Extra, KIND_VAR};

/// What the original object's BTF contributes to the re-emitted one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BtfCarry {
    /// The `.BTF` section, byte for byte.
    pub btf: Vec<u8>,
    /// The size of the original `.maps` section (0 when there was none).
    pub maps_section_size: u64,
    /// Every variable of every DATASEC (`.maps`, `.data`, `.bss`, `.rodata`...): loaders
    /// find each one's ELF symbol by name, so the writer defines them all.
    pub vars: Vec<BtfVar>,
}

/// One variable of a DATASEC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfVar {
    /// The DATASEC's (and so the ELF section's) name.
    pub section: String,
    pub name: String,
    pub offset: u64,
    pub size: u64,
    /// True for global linkage, false for `static` variables.
    pub global: bool,
}

impl BtfCarry {
    /// The `.maps` variable of the map named `name`, if it is BTF-defined.
    pub fn map(&self, name: &str) -> Option<&BtfVar> {
        self.vars
            .iter()
            .find(|v| v.section == ".maps" && v.name == name)
    }

    /// The variables of the DATASEC named `section`.
    pub fn vars_of<'a>(&'a self, section: &'a str) -> impl Iterator<Item = &'a BtfVar> + 'a {
        self.vars.iter().filter(move |v| v.section == section)
    }
}

/// A section of an ELF file: name, type and contents (empty for `SHT_NOBITS`).
struct Section<'a> {
    name: &'a str,
    size: u64,
    bytes: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The sections of a little-endian ELF64 file, or `None` when it is not one or is damaged.
fn sections(elf: &[u8]) -> Option<Vec<Section<'_>>> {
    if elf.get(0..4)? != b"\x7fELF" || *elf.get(4)? != 2 || *elf.get(5)? != 1 {
        return None;
    }
    let shoff = usize::try_from(u64_at(elf, 0x28)?).ok()?;
    let shentsize = u16_at(elf, 0x3a)? as usize;
    let shnum = u16_at(elf, 0x3c)? as usize;
    let shstrndx = u16_at(elf, 0x3e)? as usize;
    if shentsize < 64 {
        return None;
    }
    let header = |k: usize| -> Option<(u32, u32, u64, u64)> {
        let at = shoff.checked_add(k.checked_mul(shentsize)?)?;
        Some((
            u32_at(elf, at)?,
            u32_at(elf, at + 4)?,
            u64_at(elf, at + 0x18)?,
            u64_at(elf, at + 0x20)?,
        ))
    };
    let contents = |ty: u32, off: u64, size: u64| -> Option<&[u8]> {
        const SHT_NOBITS: u32 = 8;
        if ty == SHT_NOBITS {
            return Some(&[]);
        }
        let off = usize::try_from(off).ok()?;
        elf.get(off..off.checked_add(usize::try_from(size).ok()?)?)
    };
    let (_, st, so, ss) = header(shstrndx)?;
    let names = contents(st, so, ss)?;
    let mut out = Vec::new();
    for k in 0..shnum {
        let (name_off, ty, off, size) = header(k)?;
        let name_bytes = names.get(name_off as usize..)?;
        let end = name_bytes.iter().position(|&c| c == 0)?;
        let name = std::str::from_utf8(&name_bytes[..end]).ok()?;
        out.push(Section {
            name,
            size,
            bytes: contents(ty, off, size)?,
        });
    }
    Some(out)
}

/// Reads the BTF to carry from the original object's bytes. `Ok(None)` when the object has
/// no `.BTF`; an error when it has one that cannot be read.
pub fn carry_from_elf(elf: &[u8]) -> Result<Option<BtfCarry>, String> {
    let Some(sections) = sections(elf) else {
        return Err("the original object's section headers cannot be read".into());
    };
    let Some(btf_section) = sections.iter().find(|s| s.name == ".BTF") else {
        return Ok(None);
    };
    let maps_section_size = sections
        .iter()
        .find(|s| s.name == ".maps")
        .map_or(0, |s| s.size);
    let mut carry = BtfCarry {
        btf: btf_section.bytes.to_vec(),
        maps_section_size,
        vars: Vec::new(),
    };
    let btf = Btf::parse(btf_section.bytes).map_err(|e| format!("the original `.BTF`: {e}"))?;
    for id in 1..=btf.len() as u32 {
        let Some(sec) = btf.get(id) else { continue };
        let Extra::Datasec(vars) = &sec.extra else {
            continue;
        };
        let section = btf.string(sec.name_off).unwrap_or("").to_string();
        for v in vars {
            let Some(var) = btf.get(v.type_id).filter(|t| t.kind == KIND_VAR) else {
                continue;
            };
            carry.vars.push(BtfVar {
                section: section.clone(),
                name: btf.string(var.name_off).unwrap_or("").to_string(),
                offset: v.offset as u64,
                size: v.size as u64,
                global: !matches!(var.extra, Extra::Var { linkage: 0 }),
            });
        }
    }
    Ok(Some(carry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_or_foreign_files_give_errors_not_panics() {
        for bytes in [
            &b""[..],
            b"\x7fELF",
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            &[0xffu8; 200],
        ] {
            assert!(carry_from_elf(bytes).is_err());
        }
    }
}
