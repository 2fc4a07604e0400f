//! The original program's own code, kept where nicc's is longer.
//!
//! The backend's code is usually shorter than clang's, but not always: a select that clang
//! computes speculatively before its branch, or a value clang keeps in the one callee-saved
//! register nicc's allocators spend elsewhere, can cost nicc an instruction or two. An
//! optimizer should never make a program worse, so the ELF writer compares, for every program
//! that is one function, the instructions it compiled with the instructions the original
//! object had, and writes the original's when they are fewer.
//!
//! The original's code is reused only when it can be written back exactly: its map and
//! global-data references are `lddw` in the frontend's `BPF_PSEUDO_MAP_IDX` forms, and the
//! map at each index must be the module's map of the same index and name (lifting keeps the
//! object's order), so each becomes the same relocation the selector would emit. Programs
//! with bpf-to-bpf calls, function addresses, legacy packet loads or kernel-variable loads
//! are not candidates. The code is the one the kernel already accepted, and the lifted IR is
//! its meaning, so both choices compute the same thing.

use super::branches::{FunctionCode, Reloc};
use frontend::insn::{decode_all, CallTarget, Imm64, Insn};
use ir::{MapRef, Module};

/// The decoded code of every program of the original object, with its map names.
#[derive(Clone, Debug, Default)]
pub struct OriginalPrograms {
    /// `(entry function name, code by slot)`.
    programs: Vec<(String, Vec<Insn>)>,
    /// The name of the map at each index of `frontend::Object::maps`.
    maps: Vec<String>,
}

impl OriginalPrograms {
    /// The programs of `obj` whose code decodes (others are simply not candidates).
    pub fn from_object(obj: &frontend::Object) -> OriginalPrograms {
        OriginalPrograms {
            programs: obj
                .programs
                .iter()
                .filter_map(|p| Some((p.name.clone(), decode_all(&p.insns).ok()?)))
                .collect(),
            maps: obj.maps.iter().map(|m| m.name.clone()).collect(),
        }
    }

    /// The original code of the program whose entry function is `name`, as relocatable
    /// function code for `module`, when it exists, is self-contained and is shorter than
    /// `slots`.
    pub fn shorter_than(&self, module: &Module, name: &str, slots: usize) -> Option<FunctionCode> {
        let (_, insns) = self.programs.iter().find(|(n, _)| n == name)?;
        if insns.len() >= slots {
            return None;
        }
        self.relocatable(module, insns)
    }

    /// `insns` with a relocation on every map reference, or `None` when some instruction
    /// cannot be written back as it is.
    fn relocatable(&self, module: &Module, insns: &[Insn]) -> Option<FunctionCode> {
        let mut relocs = Vec::new();
        for (slot, insn) in insns.iter().enumerate() {
            match *insn {
                Insn::Imm64 { imm, .. } => {
                    let reloc = match imm {
                        Imm64::Value(_) => continue,
                        Imm64::MapIdx(k) => Reloc::Map(self.map(module, k)?),
                        Imm64::MapIdxValue { index, offset } => {
                            Reloc::MapValue(self.map(module, index)?, offset)
                        }
                        Imm64::MapFd(_)
                        | Imm64::MapValue { .. }
                        | Imm64::BtfId { .. }
                        | Imm64::Func(_) => return None,
                    };
                    relocs.push((slot, reloc));
                }
                Insn::Call(CallTarget::Helper(_)) => {}
                Insn::Call(_) | Insn::LoadAbs { .. } | Insn::LoadInd { .. } => return None,
                _ => {}
            }
        }
        Some(FunctionCode {
            insns: insns.to_vec(),
            relocs,
        })
    }

    /// The module's map for the original's map index `k`, if it is the same map.
    fn map(&self, module: &Module, k: i32) -> Option<MapRef> {
        let k = usize::try_from(k).ok()?;
        let name = self.maps.get(k)?;
        let r = MapRef::from_u32(u32::try_from(k).ok()?);
        (module.maps.get(r)?.name == *name).then_some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontend::insn::{Operand, Reg};
    use ir::semantics::{AluOp, Width};

    fn module_with_map(name: &str) -> Module {
        let text = format!(
            "program fn0 \"xdp\"\n\nmap0 = map \"{name}\" type 2 key 4 value 8 max 4\n\nfunction fn0 %p(i64) {{\nblock0(v0: i64):\n    v1 = iconst 2\n    return v1\n}}\n"
        );
        ir::parse::parse_module(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn originals(code: Vec<Insn>) -> OriginalPrograms {
        OriginalPrograms {
            programs: vec![("p".to_string(), code)],
            maps: vec!["counts".to_string()],
        }
    }

    fn ret(imm: i32) -> Vec<Insn> {
        vec![
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Mov,
                dst: Reg::R0,
                src: Operand::Imm(imm),
            },
            Insn::Exit,
        ]
    }

    #[test]
    fn shorter_original_code_is_kept_with_its_map_relocations() {
        let module = module_with_map("counts");
        let mut code = vec![
            Insn::Imm64 {
                dst: Reg(1),
                imm: Imm64::MapIdx(0),
            },
            Insn::Imm64Tail,
        ];
        code.extend(ret(2));
        let o = originals(code);
        let kept = o.shorter_than(&module, "p", 5).expect("4 slots beat 5");
        assert_eq!(kept.insns.len(), 4);
        assert_eq!(kept.relocs, vec![(0, Reloc::Map(MapRef::from_u32(0)))]);
        assert!(
            o.shorter_than(&module, "p", 4).is_none(),
            "a tie keeps nicc's"
        );
        assert!(o.shorter_than(&module, "q", 9).is_none(), "no such program");
    }

    #[test]
    fn a_map_of_another_name_or_a_call_is_not_written_back() {
        let module = module_with_map("other");
        let mut code = vec![
            Insn::Imm64 {
                dst: Reg(1),
                imm: Imm64::MapIdx(0),
            },
            Insn::Imm64Tail,
        ];
        code.extend(ret(2));
        assert!(originals(code).shorter_than(&module, "p", 9).is_none());
        let module = module_with_map("counts");
        let mut code = vec![Insn::Call(CallTarget::Local(1))];
        code.extend(ret(2));
        assert!(originals(code).shorter_than(&module, "p", 9).is_none());
    }
}
