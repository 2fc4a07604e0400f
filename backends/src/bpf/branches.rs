//! Labels, jump offsets and fall-through.
//!
//! The instruction selector emits [`MachInsn`]s whose jumps name labels and whose map, global
//! data, call and function-address references name IR entities. This module removes jumps to
//! the very next instruction, turns labels into slot offsets (a `lddw` takes two slots), and
//! leaves the entity references as relocations for the linker or the ELF writer to fill in.

use frontend::insn::{CallTarget, Imm64, Insn, Operand, Reg};
use ir::semantics::{JmpCond, Width};
use ir::{FuncRef, MapRef};

/// A position in the code that jumps can name.
pub type Label = u32;

/// An instruction before branch resolution.
#[derive(Clone, Debug)]
pub enum MachInsn {
    /// A finished instruction.
    Insn(Insn),
    Label(Label),
    Ja(Label),
    Jcc {
        width: Width,
        cond: JmpCond,
        dst: Reg,
        src: Operand,
        target: Label,
    },
    /// `call` of a bpf-to-bpf function.
    Call(FuncRef),
    /// `lddw dst, map`.
    LoadMap {
        dst: Reg,
        map: MapRef,
    },
    /// `lddw dst, map value + offset` (global data).
    LoadMapValue {
        dst: Reg,
        map: MapRef,
        offset: u32,
    },
    /// `lddw dst, function address`.
    LoadFunc {
        dst: Reg,
        func: FuncRef,
    },
}

impl MachInsn {
    /// The instruction slots this takes once resolved: none for a label, two for a `lddw`.
    pub fn slots(&self) -> usize {
        match self {
            MachInsn::Label(_) => 0,
            MachInsn::LoadMap { .. }
            | MachInsn::LoadMapValue { .. }
            | MachInsn::LoadFunc { .. }
            | MachInsn::Insn(Insn::Imm64 { .. }) => 2,
            _ => 1,
        }
    }
}

/// What an instruction slot refers to, to be resolved when functions are placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reloc {
    Map(MapRef),
    MapValue(MapRef, u32),
    Call(FuncRef),
    Func(FuncRef),
}

/// The code of one function: instructions by slot (an `lddw`'s second slot is
/// [`Insn::Imm64Tail`]) and the slots that need relocation.
#[derive(Clone, Debug, Default)]
pub struct FunctionCode {
    pub insns: Vec<Insn>,
    pub relocs: Vec<(usize, Reloc)>,
}

/// Why branch resolution failed: a jump too far for its offset field.
pub struct BranchError {
    pub message: String,
}

/// Resolves labels into offsets.
pub fn resolve(code: Vec<MachInsn>) -> Result<FunctionCode, BranchError> {
    let code = drop_jumps_to_next(drop_unreachable(code));
    // Slot of every label.
    let mut label_slot = std::collections::HashMap::new();
    let mut slot = 0usize;
    for m in &code {
        match m {
            MachInsn::Label(l) => {
                label_slot.insert(*l, slot);
            }
            MachInsn::LoadMap { .. }
            | MachInsn::LoadMapValue { .. }
            | MachInsn::LoadFunc { .. } => slot += 2,
            MachInsn::Insn(i @ Insn::Imm64 { .. }) => slot += frontend::insn::encode(i).len(),
            MachInsn::Insn(Insn::Imm64Tail) => {}
            _ => slot += 1,
        }
    }
    let mut out = FunctionCode::default();
    let offset_to = |target: &Label, here: usize| -> Result<i64, BranchError> {
        let t = label_slot.get(target).ok_or_else(|| BranchError {
            message: format!("internal error: jump to an undefined label {target}"),
        })?;
        Ok(*t as i64 - (here as i64 + 1))
    };
    for m in code {
        let here = out.insns.len();
        match m {
            MachInsn::Label(_) => {}
            MachInsn::Insn(i) => {
                out.insns.push(i);
                if matches!(i, Insn::Imm64 { .. }) {
                    out.insns.push(Insn::Imm64Tail);
                }
            }
            MachInsn::Ja(l) => {
                let off = offset_to(&l, here)?;
                let long = i16::try_from(off).is_err();
                out.insns.push(Insn::Ja {
                    off: i32::try_from(off).map_err(|_| BranchError {
                        message: format!("jump of {off} slots does not fit a `gotol`"),
                    })?,
                    long,
                });
            }
            MachInsn::Jcc {
                width,
                cond,
                dst,
                src,
                target,
            } => {
                let off = offset_to(&target, here)?;
                let off = i16::try_from(off).map_err(|_| BranchError {
                    message: format!(
                        "conditional jump of {off} slots exceeds the 16-bit offset of BPF jumps"
                    ),
                })?;
                out.insns.push(Insn::Jmp {
                    width,
                    cond,
                    dst,
                    src,
                    off,
                });
            }
            MachInsn::Call(f) => {
                out.relocs.push((here, Reloc::Call(f)));
                out.insns.push(Insn::Call(CallTarget::Local(-1)));
            }
            MachInsn::LoadMap { dst, map } => {
                out.relocs.push((here, Reloc::Map(map)));
                out.insns.push(Insn::Imm64 {
                    dst,
                    imm: Imm64::MapIdx(map.as_u32() as i32),
                });
                out.insns.push(Insn::Imm64Tail);
            }
            MachInsn::LoadMapValue { dst, map, offset } => {
                out.relocs.push((here, Reloc::MapValue(map, offset)));
                out.insns.push(Insn::Imm64 {
                    dst,
                    imm: Imm64::MapIdxValue {
                        index: map.as_u32() as i32,
                        offset,
                    },
                });
                out.insns.push(Insn::Imm64Tail);
            }
            MachInsn::LoadFunc { dst, func } => {
                out.relocs.push((here, Reloc::Func(func)));
                out.insns.push(Insn::Imm64 {
                    dst,
                    imm: Imm64::Func(-1),
                });
                out.insns.push(Insn::Imm64Tail);
            }
        }
    }
    Ok(out)
}

/// Removes instructions no path from the entry reaches. Edges that return directly can leave
/// a return block with no jump or fall-through into it, and the kernel verifier rejects a
/// program with unreachable instructions.
pub(crate) fn drop_unreachable(code: Vec<MachInsn>) -> Vec<MachInsn> {
    let mut label_at = std::collections::HashMap::new();
    for (k, m) in code.iter().enumerate() {
        if let MachInsn::Label(l) = m {
            label_at.insert(*l, k);
        }
    }
    let mut reached = vec![false; code.len()];
    let mut work = vec![0usize];
    while let Some(k) = work.pop() {
        if k >= code.len() || reached[k] {
            continue;
        }
        reached[k] = true;
        match &code[k] {
            MachInsn::Insn(Insn::Exit) => {}
            MachInsn::Ja(l) => work.extend(label_at.get(l)),
            MachInsn::Jcc { target, .. } => {
                work.push(k + 1);
                work.extend(label_at.get(target));
            }
            _ => work.push(k + 1),
        }
    }
    code.into_iter()
        .zip(reached)
        .filter(|(m, r)| *r || matches!(m, MachInsn::Label(_)))
        .map(|(m, _)| m)
        .collect()
}

/// Removes every `ja L` that is followed, through labels only, by `L`.
pub(crate) fn drop_jumps_to_next(code: Vec<MachInsn>) -> Vec<MachInsn> {
    let mut out = Vec::with_capacity(code.len());
    for (k, m) in code.iter().enumerate() {
        if let MachInsn::Ja(l) = m {
            let falls_through = code[k + 1..]
                .iter()
                .take_while(|n| matches!(n, MachInsn::Label(_)))
                .any(|n| matches!(n, MachInsn::Label(x) if x == l));
            if falls_through {
                continue;
            }
        }
        out.push(m.clone());
    }
    out
}

/// A label no instruction of `code` defines or jumps to, for a clean-up that adds a block.
pub fn fresh_label(code: &[MachInsn]) -> Label {
    code.iter()
        .filter_map(|m| match m {
            MachInsn::Label(l) | MachInsn::Ja(l) | MachInsn::Jcc { target: l, .. } => Some(*l),
            _ => None,
        })
        .max()
        .map_or(0, |l| l + 1)
}
