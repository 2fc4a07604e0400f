//! Loading one linked program with `BPF_PROG_LOAD`.
//!
//! Map references need no rewriting: the object model already expresses them as
//! `BPF_PSEUDO_MAP_IDX` and `BPF_PSEUDO_MAP_IDX_VALUE` immediates (indices into the object's
//! maps), which is exactly what the kernel resolves through the `fd_array` attribute (Linux
//! 5.14 and later). The loader passes the map descriptors in object order as `fd_array`, after
//! checking through the decoder that every index is in range, since the kernel would otherwise
//! read past the array.
//!
//! The program is first loaded without a verifier log, as libbpf does: a log slows the verifier
//! down, and a log that overflows its buffer turns success into `ENOSPC`. Only a refusal is
//! loaded again with a log, whose tail (the kernel keeps the end of an overflowing log) becomes
//! the error.

use super::error::KernelError;
use super::maps::{kernel_name, KernelMap};
use super::sys::{self, ProgLoad};
use frontend::insn::{decode_all, to_bytes, Imm64, Insn};
use frontend::object::{Program, ProgramKind};
use frontend::Object;
use std::os::fd::OwnedFd;

/// `BPF_F_XDP_HAS_FRAGS`: the program copes with multi-buffer packets.
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
/// `enum bpf_attach_type` values for XDP programs.
const BPF_XDP_DEVMAP: u32 = 33;
const BPF_XDP_CPUMAP: u32 = 35;

/// The verifier log buffer for a refused program. The log of a large program runs to many
/// megabytes; the kernel keeps the tail, and the tail holds the reason.
const LOG_SIZE: usize = 4 << 20;

/// A program the kernel accepted.
#[derive(Debug)]
pub(crate) struct LoadedProgram {
    pub name: String,
    pub kind: ProgramKind,
    pub fd: OwnedFd,
    /// The kernel's id, which prog-array lookups return.
    pub id: u32,
}

/// The indices of the maps a program refers to, in order of first use, checked against the
/// object. A slot the decoder refuses would be refused by the verifier as well, so it is an
/// error here too.
pub(crate) fn map_references(obj: &Object, prog: &Program) -> Result<Vec<usize>, KernelError> {
    let insns = decode_all(&prog.insns).map_err(|e| {
        KernelError::Invalid(format!("program `{}` does not decode: {e}", prog.name))
    })?;
    let mut used = Vec::new();
    for (slot, insn) in insns.iter().enumerate() {
        let Insn::Imm64 { imm, .. } = insn else {
            continue;
        };
        let index = match *imm {
            Imm64::MapIdx(index) | Imm64::MapIdxValue { index, .. } => index,
            Imm64::MapFd(_) | Imm64::MapValue { .. } => {
                return Err(KernelError::Invalid(format!(
                    "program `{}` instruction {slot} holds a raw map descriptor; linked \
                     programs refer to maps by index",
                    prog.name
                )))
            }
            _ => continue,
        };
        let index = usize::try_from(index)
            .ok()
            .filter(|i| *i < obj.maps.len())
            .ok_or_else(|| {
                KernelError::Invalid(format!(
                    "program `{}` instruction {slot} refers to map {index}, but the object \
                     has {} maps",
                    prog.name,
                    obj.maps.len()
                ))
            })?;
        if !used.contains(&index) {
            used.push(index);
        }
    }
    Ok(used)
}

/// The expected attach type and program flags libbpf derives from an XDP section name.
fn xdp_attach(section: &str) -> (u32, u32) {
    let flags = if section.starts_with("xdp.frags") {
        BPF_F_XDP_HAS_FRAGS
    } else {
        0
    };
    let attach = match section.rsplit('/').next() {
        Some("devmap") if section.contains('/') => BPF_XDP_DEVMAP,
        Some("cpumap") if section.contains('/') => BPF_XDP_CPUMAP,
        _ => 0,
    };
    (attach, flags)
}

/// Loads program `index` of `obj`, whose maps are `maps`; a non-zero `ifindex` binds it to
/// that device for hardware offload.
///
/// The license is the object's `license` section; an object without one is loaded with an
/// empty license, as libbpf does, so GPL-only helpers are refused for it as they would be in
/// production. `kern_version` is the object's `version` section or 0.
pub(crate) fn load_program(
    obj: &Object,
    index: usize,
    maps: &[KernelMap],
    ifindex: u32,
) -> Result<LoadedProgram, KernelError> {
    let prog = obj.programs.get(index).ok_or_else(|| {
        KernelError::Invalid(format!(
            "program index {index} is out of range: `{}` has {} programs",
            obj.name,
            obj.programs.len()
        ))
    })?;
    for m in map_references(obj, prog)? {
        if maps[m].fd.is_none() {
            return Err(KernelError::Invalid(format!(
                "program `{}` uses map `{}`, which was not created: {}",
                prog.name,
                maps[m].def.name,
                maps[m].not_created.as_deref().unwrap_or("unknown reason")
            )));
        }
    }
    let fd_array: Vec<i32> = maps
        .iter()
        .map(|m| m.fd.as_ref().map_or(-1, |fd| fd.raw()))
        .collect();
    let insns = to_bytes(&prog.insns);
    let mut license = obj.license.clone().unwrap_or_default().into_bytes();
    license.retain(|b| *b != 0);
    license.push(0);
    let (expected_attach_type, prog_flags) = if prog.kind == ProgramKind::Xdp {
        xdp_attach(&prog.section)
    } else {
        (0, 0)
    };
    let request = ProgLoad {
        prog_type: prog.kind.prog_type(),
        expected_attach_type,
        prog_flags,
        insns: &insns,
        license: &license,
        kern_version: obj.kernel_version.unwrap_or(0),
        name: kernel_name(&prog.name),
        ifindex,
        fd_array: &fd_array,
    };
    let fd = match sys::prog_load(&request, None) {
        Ok(fd) => fd,
        Err(first) => {
            let mut log = vec![0u8; LOG_SIZE];
            match sys::prog_load(&request, Some(&mut log)) {
                // A refusal that does not happen again with a log is unexpected, but the
                // program is loaded, which is what was asked.
                Ok(fd) => fd,
                Err(second) => {
                    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]).into_owned();
                    // An overflowing log reports ENOSPC; the first error is the real one.
                    let source = if second.raw_os_error() == Some(libc::ENOSPC) {
                        first
                    } else {
                        second
                    };
                    return Err(KernelError::ProgramRefused {
                        program: prog.name.clone(),
                        source,
                        log: text,
                    });
                }
            }
        }
    };
    let id = sys::prog_id(&fd).map_err(|e| {
        KernelError::syscall(format!("asking the id of program `{}`", prog.name), e)
    })?;
    Ok(LoadedProgram {
        name: prog.name.clone(),
        kind: prog.kind,
        fd,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_sections_choose_attach_type_and_flags() {
        assert_eq!(xdp_attach("xdp"), (0, 0));
        assert_eq!(xdp_attach("xdp/devmap"), (BPF_XDP_DEVMAP, 0));
        assert_eq!(xdp_attach("xdp/cpumap"), (BPF_XDP_CPUMAP, 0));
        assert_eq!(xdp_attach("xdp.frags"), (0, BPF_F_XDP_HAS_FRAGS));
        assert_eq!(
            xdp_attach("xdp.frags/devmap"),
            (BPF_XDP_DEVMAP, BPF_F_XDP_HAS_FRAGS)
        );
    }
}
