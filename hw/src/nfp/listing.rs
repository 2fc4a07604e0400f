//! The assembler listing: one line per instruction in the style of Netronome's microcode
//! assembler (`alu[dst, a, +, b]`, `beq[.12], defer[1]`), and a program listing that shows
//! each word's address, its 64-bit encoding and its text, with the backend's comments.

use super::decode::decode;
use super::insn::*;
use std::fmt::Write;

fn target(t: u16) -> String {
    if t == EXIT_TARGET {
        ".exit".into()
    } else if t == TAIL_CALL_FAULT_TARGET {
        ".tail_call_fault".into()
    } else if t == MAP_HANDLE_FAULT_TARGET {
        ".map_handle_fault".into()
    } else {
        format!(".{t}")
    }
}

fn defer(d: u8) -> String {
    if d == 0 {
        String::new()
    } else {
        format!(", defer[{d}]")
    }
}

fn shift_text(sc: ShiftClass, shift: u8, indirect: bool) -> String {
    let amount = if indirect && shift == INDIRECT_SHIFT {
        "indirect".to_string()
    } else {
        shift.to_string()
    };
    match sc {
        ShiftClass::Left => format!("<<{amount}"),
        ShiftClass::Right | ShiftClass::DoubleRight => format!(">>{amount}"),
        ShiftClass::RightRotate => format!(">>rot{amount}"),
    }
}

/// The text of one instruction.
pub fn format_insn(insn: &Insn) -> String {
    match *insn {
        Insn::Alu { dst, a, op, b } => format!("alu[{dst}, {a}, {}, {b}]", op.name()),
        Insn::Shf {
            dst,
            a,
            op,
            b,
            sc,
            shift,
        } => {
            if sc == ShiftClass::DoubleRight {
                return format!("dbl_shf[{dst}, {a}, {b}, {}]", shift_text(sc, shift, true));
            }
            let op = match op {
                ShfOp::None => "B",
                ShfOp::And => "AND",
                ShfOp::Or => "OR",
                ShfOp::Ashr => "ASR",
            };
            format!(
                "alu_shf[{dst}, {a}, {op}, {b}, {}]",
                shift_text(sc, shift, true)
            )
        }
        Insn::LdField {
            dst,
            bmask,
            src,
            sc,
            shift,
            zero,
        } => format!(
            "ld_field{}[{dst}, {bmask:04b}, {src}, {}]",
            if zero { "_w_clr" } else { "" },
            shift_text(sc, shift, false)
        ),
        Insn::Immed {
            dst,
            imm,
            shift,
            width,
            inv,
        } => {
            let suffix = match width {
                ImmedWidth::All => "",
                ImmedWidth::Byte => "_b",
                ImmedWidth::Word => "_w",
            };
            format!(
                "immed{suffix}[{dst}, {}{imm:#x}, <<{}]",
                if inv { "~" } else { "" },
                shift as u32 * 8
            )
        }
        Insn::Br {
            cond,
            target: t,
            defer: d,
        } => format!("{}[{}]{}", cond.name(), target(t), defer(d)),
        Insn::BrBit {
            src,
            bit,
            set,
            target: t,
            defer: d,
        } => format!(
            "{}[{src}, {bit}, {}]{}",
            if set { "br_bset" } else { "br_bclr" },
            target(t),
            defer(d)
        ),
        Insn::BrByte {
            src,
            byte,
            value,
            eq,
            target: t,
            defer: d,
        } => format!(
            "{}[{src}, {byte}, {value:#x}, {}]{}",
            if eq { "br=byte" } else { "br!=byte" },
            target(t),
            defer(d)
        ),
        Insn::Cmd {
            level,
            action,
            xfer,
            count,
            a,
            b,
            sig,
            swap,
            mode,
            token,
        } => {
            let swap = match swap {
                CtxSwap::Swap => ", ctx_swap",
                CtxSwap::SwapDefer1 => ", ctx_swap, defer[1]",
                CtxSwap::SwapDefer2 => ", ctx_swap, defer[2]",
                CtxSwap::NoSwap => "",
            };
            let mode = match mode {
                AddrMode::Region => "",
                AddrMode::Implied => ", implied",
            };
            let token = if token != 0 {
                format!(", token[{token}]")
            } else {
                String::new()
            };
            format!(
                "mem_{}[{}, $xfer_{xfer}, {a}, {b}, {count}{mode}{token}], sig_done[{sig}]{swap}",
                level.name(),
                action.name()
            )
        }
        Insn::LocalCsrWr { csr, src } => format!("local_csr_wr[{csr:#x}, {src}]"),
        Insn::CtxArb => "ctx_arb[voluntary]".into(),
        Insn::Rtn { src, defer: d } => format!("rtn[{src}]{}", defer(d)),
        Insn::Mul { step, dst, a, b } => match step {
            MulStep::Start => format!("mul_step[{a}, {b}], 32x32_start"),
            MulStep::Step(n) => format!("mul_step[--, --], 32x32_step{n}"),
            MulStep::Last => format!("mul_step[{dst}, --], 32x32_last"),
            MulStep::Last2 => format!("mul_step[{dst}, --], 32x32_last2"),
        },
    }
}

/// A program listing: `address: word  text  ; comment`, one line per word, with a `.N:`
/// label before every branch target. Words that do not decode are shown as such.
pub fn program_listing(words: &[u64], comments: &[String]) -> String {
    let mut targets = std::collections::BTreeSet::new();
    for w in words {
        if let Some(t) = decode(*w).ok().and_then(|i| i.target()) {
            targets.insert(t);
        }
    }
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if targets.contains(&(i as u16)) {
            let _ = writeln!(out, ".{i}:");
        }
        let text = match decode(*w) {
            Ok(insn) => format_insn(&insn),
            Err(e) => format!("<invalid: {}>", e.message),
        };
        let comment = comments.get(i).filter(|c| !c.is_empty());
        match comment {
            Some(c) => {
                let _ = writeln!(out, "{i:5}: {w:016x}  {text:<56} ; {c}");
            }
            None => {
                let _ = writeln!(out, "{i:5}: {w:016x}  {text}");
            }
        }
    }
    out
}
