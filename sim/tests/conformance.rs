//! Runs every test of the BPF conformance suite (`/work/shared/corpus/conformance`) through
//! `sim::interp::run_with_memory` and checks `r0` against `-- result`.
//!
//! The suite's `-- asm` sections need an assembler. Until `frontend::asm` lands, this file
//! carries a small one for exactly the syntax the suite uses (it builds typed `Insn` values and
//! encodes them with `frontend::insn::encode_all`, so no opcode bits are spelled out here);
//! tests with a `-- raw` section use the raw words instead, and negative tests with `-- raw`
//! must fail to run.

use frontend::insn::{encode_all, AtomicOp, CallTarget, Imm64, Insn, Operand, RawInsn, Reg, Size};
use ir::semantics::{AluOp, ByteOrder, JmpCond, Width};
use std::collections::HashMap;
use std::path::Path;

const ROOT: &str = "/work/shared/corpus/conformance";

/// The sections of one `.data` file.
fn sections(text: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- ") {
            cur = Some(name.trim().to_string());
            out.entry(name.trim().to_string()).or_default();
        } else if let Some(c) = &cur {
            let s = out.entry(c.clone()).or_default();
            s.push_str(line);
            s.push('\n');
        }
    }
    out
}

fn num(tok: &str) -> Result<i128, String> {
    let t = tok.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = if let Some(h) = t.strip_prefix("0x") {
        i128::from_str_radix(h, 16)
    } else {
        t.parse::<i128>()
    }
    .map_err(|_| format!("bad number {tok:?}"))?;
    Ok(if neg { -v } else { v })
}

fn imm32(tok: &str) -> Result<i32, String> {
    Ok(num(tok)? as u32 as i32)
}

fn reg(tok: &str) -> Result<Reg, String> {
    let t = tok.trim();
    let n = t
        .strip_prefix("%r")
        .ok_or_else(|| format!("expected a register, got {t:?}"))?;
    n.parse::<u8>()
        .map(Reg)
        .map_err(|_| format!("bad register {t:?}"))
}

/// Parses `[%rN+off]` / `[%rN-off]` / `[%rN]`.
fn mem(tok: &str) -> Result<(Reg, i16), String> {
    let t = tok
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("expected [reg+off], got {tok:?}"))?;
    let split = t[1..].find(['+', '-']).map(|i| i + 1);
    match split {
        Some(i) => Ok((reg(&t[..i])?, num(&t[i..])? as i16)),
        None => Ok((reg(t)?, 0)),
    }
}

fn operand(tok: &str) -> Result<Operand, String> {
    if tok.trim().starts_with('%') {
        Ok(Operand::Reg(reg(tok)?))
    } else {
        Ok(Operand::Imm(imm32(tok)?))
    }
}

fn size_of(s: &str) -> Option<Size> {
    Some(match s {
        "b" => Size::B,
        "h" => Size::H,
        "w" => Size::W,
        "dw" => Size::DW,
        _ => return None,
    })
}

/// A parsed line whose jump offset may still name a label.
struct Line {
    insn: Insn,
    label: Option<String>,
}

fn assemble(text: &str) -> Result<Vec<RawInsn>, String> {
    let mut lines: Vec<Line> = Vec::new();
    let mut labels: HashMap<String, usize> = HashMap::new();
    let mut slot = 0usize;
    for raw in text.lines() {
        let l = raw.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        if let Some(name) = l.strip_suffix(':') {
            labels.insert(name.trim().to_string(), slot);
            continue;
        }
        let (mn, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        let args: Vec<&str> = if rest.trim().is_empty() {
            vec![]
        } else {
            rest.split(',').map(str::trim).collect()
        };
        let (insn, label) = parse(mn, rest.trim(), &args)?;
        slot += if matches!(insn, Insn::Imm64 { .. }) {
            2
        } else {
            1
        };
        lines.push(Line { insn, label });
    }
    // The suite's assembler lets jumps name `exit` without defining it: the last instruction.
    labels
        .entry("exit".to_string())
        .or_insert(slot.saturating_sub(1));
    let mut out = Vec::new();
    let mut pc = 0usize;
    for l in lines {
        let mut insn = l.insn;
        if let Some(label) = l.label {
            let target = *labels
                .get(&label)
                .ok_or_else(|| format!("unknown label {label}"))? as i64;
            let off = target - pc as i64 - 1;
            match &mut insn {
                Insn::Ja { off: o, .. } => *o = off as i32,
                Insn::Jmp { off: o, .. } => *o = off as i16,
                Insn::Call(CallTarget::Local(o)) => *o = off as i32,
                _ => {}
            }
        }
        pc += if matches!(insn, Insn::Imm64 { .. }) {
            2
        } else {
            1
        };
        out.extend(encode_all(&[insn]));
    }
    Ok(out)
}

/// A jump target: a label or a numeric offset.
fn target(tok: &str) -> (i64, Option<String>) {
    match num(tok) {
        Ok(v) => (v as i64, None),
        Err(_) => (0, Some(tok.trim().to_string())),
    }
}

fn parse(mn: &str, rest: &str, a: &[&str]) -> Result<(Insn, Option<String>), String> {
    let need = |n: usize| {
        if a.len() == n {
            Ok(())
        } else {
            Err(format!("{mn} takes {n} operands, got {a:?}"))
        }
    };
    let alu_ops: &[(&str, AluOp)] = &[
        ("add", AluOp::Add),
        ("sub", AluOp::Sub),
        ("mul", AluOp::Mul),
        ("div", AluOp::Div),
        ("sdiv", AluOp::SDiv),
        ("mod", AluOp::Mod),
        ("smod", AluOp::SMod),
        ("or", AluOp::Or),
        ("and", AluOp::And),
        ("lsh", AluOp::Lsh),
        ("rsh", AluOp::Rsh),
        ("arsh", AluOp::Arsh),
        ("xor", AluOp::Xor),
        ("mov", AluOp::Mov),
        ("neg", AluOp::Neg),
    ];
    let jmp_ops: &[(&str, JmpCond)] = &[
        ("jeq", JmpCond::Eq),
        ("jne", JmpCond::Ne),
        ("jgt", JmpCond::Gt),
        ("jge", JmpCond::Ge),
        ("jlt", JmpCond::Lt),
        ("jle", JmpCond::Le),
        ("jsgt", JmpCond::Sgt),
        ("jsge", JmpCond::Sge),
        ("jslt", JmpCond::Slt),
        ("jsle", JmpCond::Sle),
        ("jset", JmpCond::Set),
    ];
    let (base, width) = match mn.strip_suffix("32") {
        Some(b) if !b.is_empty() && !b.ends_with("swap") && !b.starts_with("movsx") => {
            (b, Width::W32)
        }
        _ => (mn, Width::W64),
    };
    if let Some((_, op)) = alu_ops.iter().find(|(n, _)| *n == base) {
        if *op == AluOp::Neg {
            need(1)?;
            return Ok((
                Insn::Alu {
                    width,
                    op: *op,
                    dst: reg(a[0])?,
                    src: Operand::Imm(0),
                },
                None,
            ));
        }
        need(2)?;
        return Ok((
            Insn::Alu {
                width,
                op: *op,
                dst: reg(a[0])?,
                src: operand(a[1])?,
            },
            None,
        ));
    }
    if let Some((_, cond)) = jmp_ops.iter().find(|(n, _)| *n == base) {
        need(3)?;
        let (off, label) = target(a[2]);
        return Ok((
            Insn::Jmp {
                width,
                cond: *cond,
                dst: reg(a[0])?,
                src: operand(a[1])?,
                off: off as i16,
            },
            label,
        ));
    }
    if let Some(spec) = mn.strip_prefix("movsx") {
        need(2)?;
        let (op, width) = match spec {
            "832" => (AluOp::MovSx8, Width::W32),
            "864" => (AluOp::MovSx8, Width::W64),
            "1632" => (AluOp::MovSx16, Width::W32),
            "1664" => (AluOp::MovSx16, Width::W64),
            "3264" => (AluOp::MovSx32, Width::W64),
            _ => return Err(format!("unknown {mn}")),
        };
        return Ok((
            Insn::Alu {
                width,
                op,
                dst: reg(a[0])?,
                src: Operand::Reg(reg(a[1])?),
            },
            None,
        ));
    }
    for (prefix, order) in [
        ("be", ByteOrder::ToBe),
        ("le", ByteOrder::ToLe),
        ("bswap", ByteOrder::Swap),
        ("swap", ByteOrder::Swap),
    ] {
        if let Some(bits) = mn.strip_prefix(prefix).and_then(|b| b.parse::<u32>().ok()) {
            need(1)?;
            return Ok((
                Insn::Endian {
                    order,
                    bits,
                    dst: reg(a[0])?,
                },
                None,
            ));
        }
    }
    match mn {
        "exit" => return Ok((Insn::Exit, None)),
        "lddw" => {
            need(2)?;
            let v = num(a[1])? as u64;
            return Ok((
                Insn::Imm64 {
                    dst: reg(a[0])?,
                    imm: Imm64::Value(v),
                },
                None,
            ));
        }
        "ja" | "ja32" => {
            need(1)?;
            let (off, label) = target(a[0]);
            return Ok((
                Insn::Ja {
                    off: off as i32,
                    long: mn == "ja32",
                },
                label,
            ));
        }
        "call" => {
            if let Some(l) = rest.strip_prefix("local") {
                return Ok((Insn::Call(CallTarget::Local(0)), Some(l.trim().to_string())));
            }
            if rest.starts_with('%') {
                return Ok((Insn::Call(CallTarget::Register(reg(rest)?)), None));
            }
            return Ok((Insn::Call(CallTarget::Helper(imm32(rest)?)), None));
        }
        "lock" => {
            let mut words = rest.split_whitespace();
            let mut first = words.next().unwrap_or("");
            let fetch = first == "fetch";
            if fetch {
                first = words.next().unwrap_or("");
            }
            let ops = rest
                .split_once(char::is_whitespace)
                .map(|x| x.1)
                .unwrap_or("");
            let ops = if fetch {
                ops.trim()
                    .split_once(char::is_whitespace)
                    .map(|x| x.1)
                    .unwrap_or("")
            } else {
                ops
            };
            let parts: Vec<&str> = ops.split(',').map(str::trim).collect();
            if parts.len() != 2 {
                return Err(format!("bad lock operands {rest:?}"));
            }
            let (name, size) = match first.strip_suffix("32") {
                Some(n) => (n, Size::W),
                None => (first, Size::DW),
            };
            let op = match name {
                "add" => AtomicOp::Add,
                "or" => AtomicOp::Or,
                "and" => AtomicOp::And,
                "xor" => AtomicOp::Xor,
                "xchg" => AtomicOp::Xchg,
                "cmpxchg" => AtomicOp::CmpXchg,
                _ => return Err(format!("unknown atomic {first}")),
            };
            let (dst, off) = mem(parts[0])?;
            let fetch = fetch || matches!(op, AtomicOp::Xchg | AtomicOp::CmpXchg);
            return Ok((
                Insn::Atomic {
                    size,
                    op,
                    fetch,
                    dst,
                    src: reg(parts[1])?,
                    off,
                },
                None,
            ));
        }
        _ => {}
    }
    if let Some(s) = mn.strip_prefix("ldxs").and_then(size_of) {
        need(2)?;
        let (src, off) = mem(a[1])?;
        return Ok((
            Insn::Load {
                size: s,
                signed: true,
                dst: reg(a[0])?,
                src,
                off,
            },
            None,
        ));
    }
    if let Some(s) = mn.strip_prefix("ldx").and_then(size_of) {
        need(2)?;
        let (src, off) = mem(a[1])?;
        return Ok((
            Insn::Load {
                size: s,
                signed: false,
                dst: reg(a[0])?,
                src,
                off,
            },
            None,
        ));
    }
    if let Some(s) = mn.strip_prefix("stx").and_then(size_of) {
        need(2)?;
        let (dst, off) = mem(a[0])?;
        return Ok((
            Insn::StoreReg {
                size: s,
                dst,
                src: reg(a[1])?,
                off,
            },
            None,
        ));
    }
    if let Some(s) = mn.strip_prefix("st").and_then(size_of) {
        need(2)?;
        let (dst, off) = mem(a[0])?;
        return Ok((
            Insn::StoreImm {
                size: s,
                dst,
                off,
                imm: imm32(a[1])?,
            },
            None,
        ));
    }
    Err(format!("unknown mnemonic {mn:?}"))
}

fn hex_bytes(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("mem byte"))
        .collect()
}

fn raw_words(text: &str) -> Vec<RawInsn> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.iter().all(|l| l.starts_with("0x")) {
        return lines
            .iter()
            .map(|l| RawInsn::from_word(u64::from_str_radix(&l[2..], 16).expect("raw word")))
            .collect();
    }
    // Space-separated bytes, eight per slot.
    let bytes: Vec<u8> = lines.iter().flat_map(|l| hex_bytes(l)).collect();
    frontend::insn::slots(&bytes).unwrap_or_default()
}

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .expect("conformance corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_conformance_test_passes() {
    let tests = files("tests");
    assert_eq!(tests.len(), 313, "the suite has 313 tests");
    let mut failures = Vec::new();
    for path in &tests {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let s = sections(&text);
        let prog = match (s.get("raw"), s.get("asm")) {
            (Some(raw), _) => raw_words(raw),
            (None, Some(asm)) => match assemble(asm) {
                Ok(p) => p,
                Err(e) => {
                    failures.push(format!("{name}: assembler: {e}"));
                    continue;
                }
            },
            _ => {
                failures.push(format!("{name}: no program"));
                continue;
            }
        };
        let mut memory = s.get("mem").map(|m| hex_bytes(m)).unwrap_or_default();
        let got = sim::interp::run_with_memory(&prog, &mut memory);
        match (s.get("result"), s.contains_key("error"), got) {
            (Some(want), false, Ok(r0)) => {
                let want = num(want.trim()).expect("result") as u64;
                if r0 != want {
                    failures.push(format!("{name}: r0 = {r0:#x}, expected {want:#x}"));
                }
            }
            (Some(_), false, Err(d)) => failures.push(format!("{name}: {d}")),
            (_, _, Ok(r0)) => failures.push(format!("{name}: expected an error, got {r0:#x}")),
            (_, _, Err(_)) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} conformance tests failed:\n{}",
        failures.len(),
        tests.len(),
        failures.join("\n")
    );
}

/// Negative tests given as raw slots must be refused (they violate encoding rules).
#[test]
fn negative_raw_tests_fail() {
    let mut checked = 0;
    for path in files("negative") {
        let text = std::fs::read_to_string(&path).unwrap();
        let s = sections(&text);
        let Some(raw) = s.get("raw") else { continue };
        let prog = raw_words(raw);
        let mut m = Vec::new();
        let r = sim::interp::run_with_memory(&prog, &mut m);
        assert!(r.is_err(), "{} ran: {r:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} negative raw tests");
}
