//! What the Linux kernel's own NFP offload (drivers/net/ethernet/netronome/nfp/bpf/) would
//! say about a program, so that nicc's coverage can be compared with it program by program.
//!
//! The rules are the ones `../shared/design/targets.md` lists from the driver's `verifier.c`
//! (helper and exit checks), `jit.c` (which instructions have a translation) and `offload.c`
//! (which maps can be allocated on the card):
//!
//! - ALU: every 32- and 64-bit operation except modulo; signed division and modulo do not
//!   exist; division only by a constant (the JIT lowers it to a reciprocal multiply, and
//!   refuses a divisor in a register). Multiplication is accepted here whatever the operands:
//!   the driver accepts it when the verifier proves both operands fit in 32 bits, which this
//!   static check cannot see, so it gives the kernel the benefit of the doubt.
//! - Memory: loads and stores of 1, 2, 4 and 8 bytes; of the atomics only a (non-fetching)
//!   add.
//! - Helpers: `map_lookup_elem`, `map_update_elem`, `map_delete_elem`, `get_prandom_u32`,
//!   `xdp_adjust_head`, `xdp_adjust_tail` and `perf_event_output`; so no tail calls, no
//!   redirects, no clock, no FIB lookup and no checksum helpers.
//! - Maps: hash and array only (plus the perf event array `perf_event_output` writes to),
//!   and an entry (key and value, each rounded up to 8 bytes) of at most 64 bytes.
//! - bpf-to-bpf calls are accepted (the driver supports subprograms since Linux 5.1); kernel
//!   functions and helper calls through a register are not.
//!
//! The first rule a program breaks is reported with its instruction index, as the driver's
//! verifier log would name it.

use frontend::insn::{decode_all, AtomicOp, CallTarget, Imm64, Insn, Operand};
use frontend::object::MapType;
use frontend::Object;
use ir::semantics::AluOp;

/// Helpers the kernel's NFP offload translates, by id.
pub const KERNEL_NFP_HELPERS: [i32; 7] = [1, 2, 3, 7, 25, 44, 65];

/// Largest entry (key plus value, each rounded up to 8 bytes) the offload's maps take.
pub const KERNEL_NFP_MAX_ENTRY_BYTES: u32 = 64;

/// `Ok` when the kernel's NFP offload would take program `index` of `obj`, else the first
/// reason it would not.
pub fn kernel_offload_verdict(obj: &Object, index: usize) -> Result<(), String> {
    let Some(prog) = obj.programs.get(index) else {
        return Err(format!("program {index} does not exist"));
    };
    let insns = decode_all(&prog.insns).map_err(|e| format!("does not decode: {e:?}"))?;
    let mut maps_used: Vec<usize> = Vec::new();
    for (i, insn) in insns.iter().enumerate() {
        let at = |what: String| format!("{what} (instruction {i})");
        match *insn {
            Insn::Alu { op, src, .. } => match op {
                AluOp::Mod | AluOp::SMod => return Err(at("modulo".into())),
                AluOp::SDiv => return Err(at("signed division".into())),
                AluOp::Div if matches!(src, Operand::Reg(_)) => {
                    return Err(at("division by a register".into()))
                }
                _ => {}
            },
            Insn::LoadAbs { .. } | Insn::LoadInd { .. } => {
                return Err(at("legacy packet load".into()))
            }
            Insn::Atomic { op, fetch, .. } if op != AtomicOp::Add || fetch => {
                return Err(at(format!(
                    "atomic {op:?}{}",
                    if fetch { " with fetch" } else { "" }
                )));
            }
            Insn::Imm64 { imm, .. } => match imm {
                Imm64::MapIdx(m) | Imm64::MapIdxValue { index: m, .. } => {
                    maps_used.push(m.max(0) as usize)
                }
                Imm64::Func(_) => return Err(at("function address (callback)".into())),
                Imm64::BtfId { .. } => return Err(at("kernel variable address".into())),
                _ => {}
            },
            Insn::Call(CallTarget::Helper(id)) if !KERNEL_NFP_HELPERS.contains(&id) => {
                let name = crate::native::abi::helper_name(id as u32).unwrap_or("unknown");
                return Err(at(format!("helper {id} ({name})")));
            }
            Insn::Call(CallTarget::Kfunc(_)) => return Err(at("kernel function call".into())),
            Insn::Call(CallTarget::Register(_)) => {
                return Err(at("helper call through a register".into()))
            }
            _ => {}
        }
    }
    maps_used.sort_unstable();
    maps_used.dedup();
    for m in maps_used {
        let Some(def) = obj.maps.get(m) else {
            return Err(format!("map {m} does not exist"));
        };
        if !matches!(
            def.map_type,
            MapType::Hash | MapType::Array | MapType::PerfEventArray
        ) {
            return Err(format!("map `{}` of type {:?}", def.name, def.map_type));
        }
        let entry = def.key_size.div_ceil(8) * 8 + def.value_size.div_ceil(8) * 8;
        if def.map_type != MapType::PerfEventArray && entry > KERNEL_NFP_MAX_ENTRY_BYTES {
            return Err(format!(
                "map `{}` has {entry}-byte entries (more than {KERNEL_NFP_MAX_ENTRY_BYTES})",
                def.name
            ));
        }
    }
    Ok(())
}
