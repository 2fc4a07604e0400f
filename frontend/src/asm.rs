//! An assembler (and the matching printer) for the `-- asm` syntax of the bpf_conformance test
//! files, the ubpf-style syntax the public conformance runner reads.
//!
//! The conformance suite writes its programs in this syntax (`mov %r0, 1`, `ldxdw %r0,
//! [%r1+2]`, `jne %r1, 15, label`, `lock fetch add [%r10-8], %r1`), so nicc needs it to run
//! the suite, and a printer for it to write programs the runner's tools can read back.
//!
//! The syntax, one instruction or label per line, `#` starting a comment:
//!
//! - ALU: `add`, `sub`, `mul`, `div`, `sdiv`, `mod`, `smod`, `or`, `and`, `xor`, `lsh`, `rsh`,
//!   `arsh`, `mov` with a destination register and a register or immediate source; a `32`
//!   suffix selects the 32-bit class, no suffix or `64` the 64-bit one. `neg` takes one
//!   register. `movsx832`, `movsx864`, `movsx1632`, `movsx1664`, `movsx3264` sign-extend
//!   (source bits, then class width). Byte swaps: `le16/32/64`, `be16/32/64`, `bswap16/32/64`
//!   (also spelt `swap16/32/64`).
//! - Memory: `ldx{b,h,w,dw} %rD, [%rS+off]`, `ldxs{b,h,w}` (sign-extending),
//!   `st{b,h,w,dw} [%rD+off], imm`, `stx{b,h,w,dw} [%rD+off], %rS`, `lddw %rD, imm64`; legacy
//!   packet loads `ldabs{b,h,w} imm` and `ldind{b,h,w} %rS, imm`.
//! - Atomics: `lock [fetch] {add,and,or,xor,xchg,cmpxchg}[32] [%rD+off], %rS`.
//! - Jumps: `ja target`, `ja32 target` (or `gotol`), `jeq/jne/jgt/jge/jlt/jle/jsgt/jsge/jslt/
//!   jsle/jset[32] %rD, %rS|imm, target`, where a target is a label or a signed slot offset
//!   (`+3`, `-2`); the first `exit` is also the label `exit` unless one is declared.
//! - Calls: `call imm` (helper), `call helper imm`, `call local target`, `call runtime imm`
//!   (kernel function), `call %rN` or `callx %rN` (encoded as LLVM does, with the register in
//!   the immediate; the decoder also accepts the conformance runner's source-field form).
//!
//! Pseudo 64-bit loads, which the runner cannot write, print and read as `lddw %r1, map_fd 5`,
//! `map_value 5, 8`, `btf_id 5, 0`, `func +3`, `map_idx 5` and `map_idx_value 5, 8`, so that
//! every decodable program survives [`format_asm`] and [`assemble`].
//!
//! Numbers are decimal or `0x` hexadecimal with an optional sign. A 32-bit immediate must be a
//! signed 32-bit decimal or a hexadecimal that fits in 32 bits (`0xffffffff` is -1); offsets
//! must fit in 16 signed bits. Every instruction is built as an [`Insn`] and encoded by
//! [`crate::insn::encode`], so the assembler never writes a slot the decoder would reject.

use crate::insn::{encode, AtomicOp, CallTarget, Imm64, Insn, Operand, RawInsn, Reg, Size};
use ir::semantics::{AluOp, ByteOrder, JmpCond, Width};
use std::collections::HashMap;
use std::fmt;

/// Why a program did not assemble, and on which line (1-based, counting every line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsmError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for AsmError {}

/// A jump or call target before labels are resolved.
#[derive(Clone, Debug)]
enum Target {
    Offset(i64),
    Label(String),
}

/// Which field of an instruction a resolved target goes into.
#[derive(Clone, Copy, Debug)]
enum TargetField {
    /// The 16-bit offset of `ja` and conditional jumps.
    Off16,
    /// The 32-bit immediate of `ja32` and local calls.
    Imm32,
}

/// One parsed line: the instruction (with a placeholder target) and the target to patch.
struct Pending {
    line: usize,
    slot: usize,
    insn: Insn,
    target: Option<(Target, TargetField)>,
}

type Result<T> = std::result::Result<T, String>;

/// Parses an integer literal: optional sign, then decimal or `0x` hexadecimal. The second
/// value tells whether it was hexadecimal, since ranges differ.
fn parse_int(text: &str) -> Result<(i128, bool)> {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (hex, body) = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(rest) => (true, rest),
        None => (false, digits),
    };
    let radix = if hex { 16 } else { 10 };
    if body.is_empty() || body.len() > 40 || !body.chars().all(|c| c.is_digit(radix)) {
        return Err(format!("`{text}` is not a number"));
    }
    let value = i128::from_str_radix(body, radix).map_err(|_| format!("`{text}` is too large"))?;
    Ok((if negative { -value } else { value }, hex))
}

/// A 32-bit immediate: signed decimal, or hexadecimal whose bits fit in 32.
fn parse_imm32(text: &str) -> Result<i32> {
    let (v, hex) = parse_int(text)?;
    if (i32::MIN as i128..=i32::MAX as i128).contains(&v) {
        Ok(v as i32)
    } else if hex && (0..=u32::MAX as i128).contains(&v) {
        Ok(v as u32 as i32)
    } else {
        Err(format!(
            "immediate {text} is out of the 32-bit range (-2147483648 to 2147483647, or up to \
             0xffffffff in hexadecimal)"
        ))
    }
}

/// A 64-bit immediate for `lddw`: anything that fits in 64 bits, signed or not.
fn parse_imm64(text: &str) -> Result<u64> {
    let (v, _) = parse_int(text)?;
    if (i64::MIN as i128..=u64::MAX as i128).contains(&v) {
        Ok(v as u64)
    } else {
        Err(format!("immediate {text} does not fit in 64 bits"))
    }
}

fn parse_off16(text: &str) -> Result<i16> {
    let (v, _) = parse_int(text)?;
    i16::try_from(v)
        .map_err(|_| format!("offset {text} is out of the 16-bit signed range (-32768 to 32767)"))
}

fn parse_reg(text: &str) -> Result<Reg> {
    let t = text.trim();
    let n = t
        .strip_prefix("%r")
        .filter(|n| !n.is_empty() && n.len() <= 3 && n.chars().all(|c| c.is_ascii_digit()))
        .and_then(|n| n.parse::<u8>().ok());
    match n {
        Some(n) if n <= 10 => Ok(Reg(n)),
        _ => Err(format!(
            "Invalid register: `{t}` (registers are %r0 to %r10)"
        )),
    }
}

/// A register or an immediate, the second operand of ALU and jump instructions.
fn parse_operand(text: &str) -> Result<Operand> {
    if text.trim_start().starts_with('%') {
        parse_reg(text).map(Operand::Reg)
    } else {
        parse_imm32(text).map(Operand::Imm)
    }
}

/// `[%r1+2]`, `[%r10-8]` or `[%r1]` (spaces allowed inside the brackets).
fn parse_mem(text: &str) -> Result<(Reg, i16)> {
    let t = text.trim();
    let inner = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| {
            format!("Failed to decode register and offset: expected `[%rN+offset]`, found `{t}`")
        })?;
    let inner = inner.trim();
    match inner.find(['+', '-']) {
        Some(p) => {
            let reg = parse_reg(&inner[..p])?;
            let off = parse_off16(&inner[p..].replace(' ', ""))?;
            Ok((reg, off))
        }
        None => Ok((parse_reg(inner)?, 0)),
    }
}

fn is_label(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fn parse_target(text: &str) -> Result<Target> {
    let t = text.trim();
    if is_label(t) {
        return Ok(Target::Label(t.to_string()));
    }
    match parse_int(t) {
        Ok((v, _)) if i64::try_from(v).is_ok() => Ok(Target::Offset(v as i64)),
        _ => Err(format!(
            "`{t}` is neither a label nor a slot offset such as +3 or -2"
        )),
    }
}

fn expect_operands(mnemonic: &str, operands: &[&str], count: usize) -> Result<()> {
    if operands.len() == count {
        Ok(())
    } else {
        Err(format!(
            "Invalid number of operands for mnemonic: {mnemonic} (expects {count}, found {})",
            operands.len()
        ))
    }
}

fn size_suffix(s: &str) -> Option<Size> {
    match s {
        "b" => Some(Size::B),
        "h" => Some(Size::H),
        "w" => Some(Size::W),
        "dw" => Some(Size::DW),
        _ => None,
    }
}

fn alu_op(name: &str) -> Option<AluOp> {
    Some(match name {
        "add" => AluOp::Add,
        "sub" => AluOp::Sub,
        "mul" => AluOp::Mul,
        "div" => AluOp::Div,
        "sdiv" => AluOp::SDiv,
        "mod" => AluOp::Mod,
        "smod" => AluOp::SMod,
        "or" => AluOp::Or,
        "and" => AluOp::And,
        "xor" => AluOp::Xor,
        "lsh" => AluOp::Lsh,
        "rsh" => AluOp::Rsh,
        "arsh" => AluOp::Arsh,
        "mov" => AluOp::Mov,
        "neg" => AluOp::Neg,
        _ => return None,
    })
}

fn jmp_cond(name: &str) -> Option<JmpCond> {
    Some(match name {
        "jeq" => JmpCond::Eq,
        "jne" => JmpCond::Ne,
        "jgt" => JmpCond::Gt,
        "jge" => JmpCond::Ge,
        "jlt" => JmpCond::Lt,
        "jle" => JmpCond::Le,
        "jsgt" => JmpCond::Sgt,
        "jsge" => JmpCond::Sge,
        "jslt" => JmpCond::Slt,
        "jsle" => JmpCond::Sle,
        "jset" => JmpCond::Set,
        _ => return None,
    })
}

/// Splits a name into its base and width suffix: `add32` is 32-bit, `add` and `add64` 64-bit.
fn width_of(name: &str) -> (&str, Width) {
    if let Some(base) = name.strip_suffix("32") {
        (base, Width::W32)
    } else if let Some(base) = name.strip_suffix("64") {
        (base, Width::W64)
    } else {
        (name, Width::W64)
    }
}

/// Splits operands on commas (a memory operand never contains one).
fn split_operands(text: &str) -> Vec<&str> {
    let t = text.trim();
    if t.is_empty() {
        Vec::new()
    } else {
        t.split(',').map(str::trim).collect()
    }
}

/// Parses one instruction (without its label) into an [`Insn`] and an unresolved target.
fn parse_insn(mnemonic: &str, rest: &str) -> Result<(Insn, Option<(Target, TargetField)>)> {
    let ops = split_operands(rest);
    let m = mnemonic;
    if m == "lock" {
        return parse_lock(rest);
    }
    if m == "exit" {
        expect_operands(m, &ops, 0)?;
        return Ok((Insn::Exit, None));
    }
    if m == "call" || m == "callx" {
        return parse_call(m, rest);
    }
    if m == "ja" {
        expect_operands(m, &ops, 1)?;
        return Ok((
            Insn::Ja {
                off: 0,
                long: false,
            },
            Some((parse_target(ops[0])?, TargetField::Off16)),
        ));
    }
    if m == "ja32" || m == "gotol" {
        expect_operands(m, &ops, 1)?;
        return Ok((
            Insn::Ja { off: 0, long: true },
            Some((parse_target(ops[0])?, TargetField::Imm32)),
        ));
    }
    if m == "lddw" {
        return parse_lddw(&ops);
    }
    // Byte swaps: the width is in the name and the register is the only operand.
    for (prefix, order) in [
        ("le", ByteOrder::ToLe),
        ("be", ByteOrder::ToBe),
        ("bswap", ByteOrder::Swap),
        ("swap", ByteOrder::Swap),
    ] {
        if let Some(bits) = m.strip_prefix(prefix) {
            if let Ok(bits @ (16 | 32 | 64)) = bits.parse::<u32>() {
                expect_operands(m, &ops, 1)?;
                return Ok((
                    Insn::Endian {
                        order,
                        bits,
                        dst: parse_reg(ops[0])?,
                    },
                    None,
                ));
            }
        }
    }
    if let Some(rest) = m.strip_prefix("movsx") {
        let (op, width) = match rest {
            "832" => (AluOp::MovSx8, Width::W32),
            "864" => (AluOp::MovSx8, Width::W64),
            "1632" => (AluOp::MovSx16, Width::W32),
            "1664" => (AluOp::MovSx16, Width::W64),
            "3264" => (AluOp::MovSx32, Width::W64),
            _ => {
                return Err(format!(
                    "Invalid mnemonic: {m} (sign-extending moves are movsx832, movsx864, \
                     movsx1632, movsx1664 and movsx3264)"
                ))
            }
        };
        expect_operands(m, &ops, 2)?;
        let src = parse_reg(ops[1]).map_err(|e| format!("{e}; {m} needs a register source"))?;
        return Ok((
            Insn::Alu {
                width,
                op,
                dst: parse_reg(ops[0])?,
                src: Operand::Reg(src),
            },
            None,
        ));
    }
    if let Some(size) = m.strip_prefix("ldxs").and_then(size_suffix) {
        if size == Size::DW {
            return Err(format!(
                "Invalid mnemonic: {m} (there is no sign-extending 64-bit load)"
            ));
        }
        expect_operands(m, &ops, 2)?;
        let (src, off) = parse_mem(ops[1])?;
        return Ok((
            Insn::Load {
                size,
                signed: true,
                dst: parse_reg(ops[0])?,
                src,
                off,
            },
            None,
        ));
    }
    if let Some(size) = m.strip_prefix("ldx").and_then(size_suffix) {
        expect_operands(m, &ops, 2)?;
        let (src, off) = parse_mem(ops[1])?;
        return Ok((
            Insn::Load {
                size,
                signed: false,
                dst: parse_reg(ops[0])?,
                src,
                off,
            },
            None,
        ));
    }
    if let Some(size) = m.strip_prefix("stx").and_then(size_suffix) {
        expect_operands(m, &ops, 2)?;
        let (dst, off) = parse_mem(ops[0])?;
        return Ok((
            Insn::StoreReg {
                size,
                dst,
                src: parse_reg(ops[1])?,
                off,
            },
            None,
        ));
    }
    if let Some(size) = m.strip_prefix("st").and_then(size_suffix) {
        expect_operands(m, &ops, 2)?;
        let (dst, off) = parse_mem(ops[0])?;
        return Ok((
            Insn::StoreImm {
                size,
                dst,
                off,
                imm: parse_imm32(ops[1])?,
            },
            None,
        ));
    }
    if let Some(size) = m.strip_prefix("ldabs").and_then(size_suffix) {
        if size == Size::DW {
            return Err(format!(
                "Invalid mnemonic: {m} (packet loads are b, h or w)"
            ));
        }
        expect_operands(m, &ops, 1)?;
        return Ok((
            Insn::LoadAbs {
                size,
                imm: parse_imm32(ops[0])?,
            },
            None,
        ));
    }
    if let Some(size) = m.strip_prefix("ldind").and_then(size_suffix) {
        if size == Size::DW {
            return Err(format!(
                "Invalid mnemonic: {m} (packet loads are b, h or w)"
            ));
        }
        expect_operands(m, &ops, 2)?;
        return Ok((
            Insn::LoadInd {
                size,
                src: parse_reg(ops[0])?,
                imm: parse_imm32(ops[1])?,
            },
            None,
        ));
    }
    let (base, width) = width_of(m);
    if let Some(cond) = jmp_cond(base) {
        expect_operands(m, &ops, 3)?;
        return Ok((
            Insn::Jmp {
                width,
                cond,
                dst: parse_reg(ops[0])?,
                src: parse_operand(ops[1])?,
                off: 0,
            },
            Some((parse_target(ops[2])?, TargetField::Off16)),
        ));
    }
    if let Some(op) = alu_op(base) {
        let dst;
        let src = if op == AluOp::Neg {
            expect_operands(m, &ops, 1)?;
            dst = parse_reg(ops[0])?;
            Operand::Imm(0)
        } else {
            expect_operands(m, &ops, 2)?;
            dst = parse_reg(ops[0])?;
            parse_operand(ops[1])?
        };
        return Ok((
            Insn::Alu {
                width,
                op,
                dst,
                src,
            },
            None,
        ));
    }
    Err(format!("Invalid mnemonic: {m}"))
}

/// `lock [fetch] op[32] [%rD+off], %rS`.
fn parse_lock(rest: &str) -> Result<(Insn, Option<(Target, TargetField)>)> {
    let rest = rest.trim();
    let (first, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let (fetch, name, operands) = if first == "fetch" {
        let after = after.trim();
        let (name, ops) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
        (true, name, ops)
    } else {
        (false, first, after)
    };
    let ops = split_operands(operands);
    if name.is_empty() || ops.len() != 2 {
        return Err(format!(
            "Invalid number of operands for lock: expected `lock [fetch] <op> [%rD+off], %rS`, \
             found `lock {rest}`"
        ));
    }
    let (base, width) = width_of(name);
    let op = match base {
        "add" => AtomicOp::Add,
        "and" => AtomicOp::And,
        "or" => AtomicOp::Or,
        "xor" => AtomicOp::Xor,
        "xchg" => AtomicOp::Xchg,
        "cmpxchg" => AtomicOp::CmpXchg,
        _ => {
            return Err(format!(
                "Invalid mnemonic: lock {name} (atomic operations are add, and, or, xor, xchg \
                 and cmpxchg, with an optional 32 suffix)"
            ))
        }
    };
    let (dst, off) = parse_mem(ops[0])?;
    let src = parse_reg(ops[1])?;
    let size = match width {
        Width::W32 => Size::W,
        Width::W64 => Size::DW,
    };
    // Exchanges always return the old value, whether or not `fetch` is written.
    let fetch = fetch || matches!(op, AtomicOp::Xchg | AtomicOp::CmpXchg);
    Ok((
        Insn::Atomic {
            size,
            op,
            fetch,
            dst,
            src,
            off,
        },
        None,
    ))
}

/// `call imm`, `call helper imm`, `call local target`, `call runtime imm`, `call %rN`,
/// `callx %rN`.
fn parse_call(m: &str, rest: &str) -> Result<(Insn, Option<(Target, TargetField)>)> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (mode, operand) = match words.as_slice() {
        [op] => (if m == "callx" { "register" } else { "helper" }, *op),
        [mode, op] if m == "call" => (*mode, *op),
        _ => {
            return Err(format!(
            "Invalid number of operands for mnemonic: {m} (expects `call [helper|local|runtime] \
                 <target>` or `call %rN`)"
        ))
        }
    };
    if operand.starts_with('%') || mode == "register" {
        if mode != "helper" && mode != "register" {
            return Err(format!("Invalid call mode: {mode} cannot take a register"));
        }
        return Ok((Insn::Call(CallTarget::Register(parse_reg(operand)?)), None));
    }
    match mode {
        "helper" => Ok((Insn::Call(CallTarget::Helper(parse_imm32(operand)?)), None)),
        "runtime" => Ok((Insn::Call(CallTarget::Kfunc(parse_imm32(operand)?)), None)),
        "local" => Ok((
            Insn::Call(CallTarget::Local(0)),
            Some((parse_target(operand)?, TargetField::Imm32)),
        )),
        _ => Err(format!(
            "Invalid call mode: {mode} (modes are helper, local and runtime)"
        )),
    }
}

/// `lddw %rD, imm64` and the pseudo forms (`map_fd 5`, `map_value 5, 8`, ...).
fn parse_lddw(ops: &[&str]) -> Result<(Insn, Option<(Target, TargetField)>)> {
    if ops.len() < 2 {
        return Err(format!(
            "Invalid number of operands for mnemonic: lddw (expects 2, found {})",
            ops.len()
        ));
    }
    let dst = parse_reg(ops[0])?;
    let (kind, first) = match ops[1].split_once(char::is_whitespace) {
        Some((kind, value)) => (kind, value.trim()),
        None => ("", ops[1]),
    };
    let second = || -> Result<u32> {
        let text = ops.get(2).ok_or_else(|| {
            format!("Invalid number of operands for mnemonic: lddw ({kind} needs two values)")
        })?;
        parse_imm32(text).map(|v| v as u32)
    };
    let count = |n: usize| expect_operands("lddw", ops, n);
    let imm = match kind {
        "" => {
            count(2)?;
            Imm64::Value(parse_imm64(first)?)
        }
        "map_fd" => {
            count(2)?;
            Imm64::MapFd(parse_imm32(first)?)
        }
        "map_value" => {
            count(3)?;
            Imm64::MapValue {
                fd: parse_imm32(first)?,
                offset: second()?,
            }
        }
        "btf_id" => {
            count(3)?;
            Imm64::BtfId {
                id: parse_imm32(first)?,
                extra: second()?,
            }
        }
        "func" => {
            count(2)?;
            Imm64::Func(parse_imm32(first)?)
        }
        "map_idx" => {
            count(2)?;
            Imm64::MapIdx(parse_imm32(first)?)
        }
        "map_idx_value" => {
            count(3)?;
            Imm64::MapIdxValue {
                index: parse_imm32(first)?,
                offset: second()?,
            }
        }
        other => {
            return Err(format!(
                "unknown lddw kind `{other}` (kinds are map_fd, map_value, btf_id, func, \
                 map_idx and map_idx_value)"
            ))
        }
    };
    Ok((Insn::Imm64 { dst, imm }, None))
}

/// Assembles a program in the conformance `-- asm` syntax into instruction slots.
pub fn assemble(text: &str) -> std::result::Result<Vec<RawInsn>, AsmError> {
    let mut labels: HashMap<String, (usize, usize)> = HashMap::new();
    let mut first_exit: Option<usize> = None;
    let mut pending: Vec<Pending> = Vec::new();
    let mut slot = 0usize;
    for (index, raw_line) in text.lines().enumerate() {
        let line = index + 1;
        let err = |message: String| AsmError { line, message };
        let code = raw_line.split('#').next().unwrap_or("").trim();
        if code.is_empty() {
            continue;
        }
        if code.starts_with("--") {
            return Err(err(format!(
                "unknown directive `{code}` (a conformance file section header inside the \
                 program?)"
            )));
        }
        let (first, rest) = code.split_once(char::is_whitespace).unwrap_or((code, ""));
        let mut body = (first, rest);
        if let Some(label) = first.strip_suffix(':') {
            if !is_label(label) {
                return Err(err(format!("`{label}` is not a valid label name")));
            }
            if let Some((previous, _)) = labels.get(label) {
                return Err(err(format!(
                    "Duplicate label `{label}` (first declared on line {previous})"
                )));
            }
            labels.insert(label.to_string(), (line, slot));
            let rest = rest.trim();
            if rest.is_empty() {
                continue;
            }
            body = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        }
        let (insn, target) = parse_insn(body.0, body.1).map_err(err)?;
        if insn == Insn::Exit && first_exit.is_none() {
            first_exit = Some(slot);
        }
        let width = if matches!(insn, Insn::Imm64 { .. }) {
            2
        } else {
            1
        };
        pending.push(Pending {
            line,
            slot,
            insn,
            target,
        });
        slot += width;
    }
    let mut out = Vec::with_capacity(slot);
    for p in pending {
        let mut insn = p.insn;
        if let Some((target, field)) = p.target {
            let err = |message: String| AsmError {
                line: p.line,
                message,
            };
            let offset = match target {
                Target::Offset(off) => off,
                Target::Label(name) => {
                    let dest = match labels.get(&name) {
                        Some((_, dest)) => *dest,
                        None if name == "exit" && first_exit.is_some() => {
                            first_exit.unwrap_or_default()
                        }
                        None => {
                            return Err(err(format!(
                                "Invalid label: `{name}` is not declared in this program"
                            )))
                        }
                    };
                    dest as i64 - p.slot as i64 - 1
                }
            };
            match (field, &mut insn) {
                (TargetField::Off16, Insn::Ja { off, .. }) => {
                    *off = i16::try_from(offset).map_err(|_| {
                        err(format!(
                            "jump offset {offset} does not fit in 16 bits; use ja32"
                        ))
                    })? as i32;
                }
                (TargetField::Off16, Insn::Jmp { off, .. }) => {
                    *off = i16::try_from(offset).map_err(|_| {
                        err(format!("jump offset {offset} does not fit in 16 bits"))
                    })?;
                }
                (TargetField::Imm32, Insn::Ja { off, .. })
                | (TargetField::Imm32, Insn::Call(CallTarget::Local(off))) => {
                    *off = i32::try_from(offset).map_err(|_| {
                        err(format!("target offset {offset} does not fit in 32 bits"))
                    })?;
                }
                _ => return Err(err("internal error: target on a non-branch".to_string())),
            }
        }
        out.extend(encode(&insn));
    }
    Ok(out)
}

fn asm_reg(r: Reg) -> String {
    format!("%r{}", r.0)
}

fn asm_operand(src: Operand) -> String {
    match src {
        Operand::Reg(r) => asm_reg(r),
        Operand::Imm(i) => i.to_string(),
    }
}

fn asm_mem(base: Reg, off: i16) -> String {
    if off >= 0 {
        format!("[%r{}+{}]", base.0, off)
    } else {
        format!("[%r{}{}]", base.0, off)
    }
}

fn asm_size(size: Size) -> &'static str {
    match size {
        Size::B => "b",
        Size::H => "h",
        Size::W => "w",
        Size::DW => "dw",
    }
}

fn asm_offset(off: i64) -> String {
    if off >= 0 {
        format!("+{off}")
    } else {
        off.to_string()
    }
}

fn alu_name(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "add",
        AluOp::Sub => "sub",
        AluOp::Mul => "mul",
        AluOp::Div => "div",
        AluOp::SDiv => "sdiv",
        AluOp::Mod => "mod",
        AluOp::SMod => "smod",
        AluOp::Or => "or",
        AluOp::And => "and",
        AluOp::Xor => "xor",
        AluOp::Lsh => "lsh",
        AluOp::Rsh => "rsh",
        AluOp::Arsh => "arsh",
        AluOp::Mov => "mov",
        AluOp::Neg => "neg",
        AluOp::MovSx8 => "movsx8",
        AluOp::MovSx16 => "movsx16",
        AluOp::MovSx32 => "movsx32",
    }
}

fn jmp_name(cond: JmpCond) -> &'static str {
    match cond {
        JmpCond::Eq => "jeq",
        JmpCond::Ne => "jne",
        JmpCond::Gt => "jgt",
        JmpCond::Ge => "jge",
        JmpCond::Lt => "jlt",
        JmpCond::Le => "jle",
        JmpCond::Sgt => "jsgt",
        JmpCond::Sge => "jsge",
        JmpCond::Slt => "jslt",
        JmpCond::Sle => "jsle",
        JmpCond::Set => "jset",
    }
}

/// Prints one instruction in the conformance syntax, or `None` for the second slot of `lddw`.
pub fn format_asm_insn(insn: &Insn) -> Option<String> {
    Some(match *insn {
        Insn::Alu {
            width,
            op,
            dst,
            src,
        } => {
            let suffix = if width == Width::W32 { "32" } else { "" };
            match op {
                AluOp::Neg => format!("neg{suffix} {}", asm_reg(dst)),
                AluOp::MovSx8 | AluOp::MovSx16 | AluOp::MovSx32 => {
                    // movsx names carry both widths: source bits, then the class.
                    let class = if width == Width::W32 { "32" } else { "64" };
                    format!(
                        "{}{class} {}, {}",
                        alu_name(op),
                        asm_reg(dst),
                        asm_operand(src)
                    )
                }
                _ => format!(
                    "{}{suffix} {}, {}",
                    alu_name(op),
                    asm_reg(dst),
                    asm_operand(src)
                ),
            }
        }
        Insn::Endian { order, bits, dst } => {
            let name = match order {
                ByteOrder::ToLe => "le",
                ByteOrder::ToBe => "be",
                ByteOrder::Swap => "bswap",
            };
            format!("{name}{bits} {}", asm_reg(dst))
        }
        Insn::Imm64 { dst, imm } => {
            let d = asm_reg(dst);
            match imm {
                Imm64::Value(v) => format!("lddw {d}, {v:#x}"),
                Imm64::MapFd(fd) => format!("lddw {d}, map_fd {fd}"),
                Imm64::MapValue { fd, offset } => {
                    format!("lddw {d}, map_value {fd}, {offset:#x}")
                }
                Imm64::BtfId { id, extra } => format!("lddw {d}, btf_id {id}, {extra:#x}"),
                Imm64::Func(off) => format!("lddw {d}, func {off}"),
                Imm64::MapIdx(i) => format!("lddw {d}, map_idx {i}"),
                Imm64::MapIdxValue { index, offset } => {
                    format!("lddw {d}, map_idx_value {index}, {offset:#x}")
                }
            }
        }
        Insn::Imm64Tail => return None,
        Insn::LoadAbs { size, imm } => format!("ldabs{} {imm}", asm_size(size)),
        Insn::LoadInd { size, src, imm } => {
            format!("ldind{} {}, {imm}", asm_size(size), asm_reg(src))
        }
        Insn::Load {
            size,
            signed,
            dst,
            src,
            off,
        } => format!(
            "ldx{}{} {}, {}",
            if signed { "s" } else { "" },
            asm_size(size),
            asm_reg(dst),
            asm_mem(src, off)
        ),
        Insn::StoreImm {
            size,
            dst,
            off,
            imm,
        } => format!("st{} {}, {imm}", asm_size(size), asm_mem(dst, off)),
        Insn::StoreReg {
            size,
            dst,
            src,
            off,
        } => format!(
            "stx{} {}, {}",
            asm_size(size),
            asm_mem(dst, off),
            asm_reg(src)
        ),
        Insn::Atomic {
            size,
            op,
            fetch,
            dst,
            src,
            off,
        } => {
            let name = match op {
                AtomicOp::Add => "add",
                AtomicOp::And => "and",
                AtomicOp::Or => "or",
                AtomicOp::Xor => "xor",
                AtomicOp::Xchg => "xchg",
                AtomicOp::CmpXchg => "cmpxchg",
            };
            let fetch = if fetch && !matches!(op, AtomicOp::Xchg | AtomicOp::CmpXchg) {
                "fetch "
            } else {
                ""
            };
            let suffix = if size == Size::W { "32" } else { "" };
            format!(
                "lock {fetch}{name}{suffix} {}, {}",
                asm_mem(dst, off),
                asm_reg(src)
            )
        }
        Insn::Ja { off, long } => {
            let name = if long { "ja32" } else { "ja" };
            format!("{name} {}", asm_offset(off as i64))
        }
        Insn::Jmp {
            width,
            cond,
            dst,
            src,
            off,
        } => {
            let suffix = if width == Width::W32 { "32" } else { "" };
            format!(
                "{}{suffix} {}, {}, {}",
                jmp_name(cond),
                asm_reg(dst),
                asm_operand(src),
                asm_offset(off as i64)
            )
        }
        Insn::Call(target) => match target {
            CallTarget::Helper(id) => format!("call {id}"),
            CallTarget::Local(off) => format!("call local {}", asm_offset(off as i64)),
            CallTarget::Kfunc(id) => format!("call runtime {id}"),
            CallTarget::Register(r) => format!("call {}", asm_reg(r)),
        },
        Insn::Exit => "exit".to_string(),
    })
}

/// Prints a decoded program in the conformance syntax, one instruction a line, with jump
/// targets as slot offsets, so that `assemble(&format_asm(x))` encodes `x` again.
pub fn format_asm(insns: &[Insn]) -> String {
    let mut out = String::new();
    for insn in insns {
        if let Some(line) = format_asm_insn(insn) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::decode_all;

    fn words(text: &str) -> Vec<u64> {
        assemble(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .iter()
            .map(|r| r.to_word())
            .collect()
    }

    /// (source, expected slot words), encodings checked against the conformance files' `-- raw`
    /// sections and the RFC 9669 opcode table.
    const TABLE: &[(&str, &[u64])] = &[
        ("mov %r0, 1", &[0x0000_0001_0000_00b7]),
        ("mov32 %r0, 0xffffffff", &[0xffff_ffff_0000_00b4]),
        ("add32 %r0, %r1", &[0x0000_0000_0000_100c]),
        ("ldxdw %r0, [%r1+2]", &[0x0000_0000_0002_1079]),
        ("stxw [%r10-4], %r1", &[0x0000_0000_fffc_1a63]),
        ("sth [%r0], 0x1234", &[0x0000_1234_0000_006a]),
        (
            "lddw %r0, 0x1122334455667788",
            &[0x5566_7788_0000_0018, 0x1122_3344_0000_0000],
        ),
        ("jne %r1, 15, +3", &[0x0000_000f_0003_0155]),
        ("jslt32 %r1, %r2, -1", &[0x0000_0000_ffff_21ce]),
        ("ja +2", &[0x0000_0000_0002_0005]),
        ("ja32 +2", &[0x0000_0002_0000_0006]),
        ("call 5", &[0x0000_0005_0000_0085]),
        ("call local +1", &[0x0000_0001_0000_1085]),
        ("call runtime 7", &[0x0000_0007_0000_2085]),
        // callx follows LLVM (register in the immediate); the runner uses the source field,
        // which the decoder accepts too.
        ("call %r2", &[0x0000_0002_0000_008d]),
        ("lock fetch add [%r10-8], %r1", &[0x0000_0001_fff8_1adb]),
        ("lock add32 [%r10-4], %r1", &[0x0000_0000_fffc_1ac3]),
        ("lock cmpxchg32 [%r10-8], %r1", &[0x0000_00f1_fff8_1ac3]),
        ("lock xchg [%r10-8], %r1", &[0x0000_00e1_fff8_1adb]),
        ("be16 %r0", &[0x0000_0010_0000_00dc]),
        ("le32 %r0", &[0x0000_0020_0000_00d4]),
        ("bswap64 %r0", &[0x0000_0040_0000_00d7]),
        ("swap16 %r0", &[0x0000_0010_0000_00d7]),
        ("movsx832 %r0, %r1", &[0x0000_0000_0008_10bc]),
        ("movsx3264 %r0, %r1", &[0x0000_0000_0020_10bf]),
        ("ldxsb %r0, [%r10-1]", &[0x0000_0000_ffff_a091]),
        ("sdiv %r0, 3", &[0x0000_0003_0001_0037]),
        ("smod32 %r0, %r1", &[0x0000_0000_0001_109c]),
        ("neg %r0", &[0x0000_0000_0000_0087]),
        ("neg32 %r0", &[0x0000_0000_0000_0084]),
        ("exit", &[0x0000_0000_0000_0095]),
        ("ldabsw 0x10", &[0x0000_0010_0000_0020]),
        ("ldindb %r2, 4", &[0x0000_0004_0000_2050]),
        ("mov %r0, -1 # comment", &[0xffff_ffff_0000_00b7]),
    ];

    #[test]
    fn encodes_like_the_conformance_runner() {
        for (text, expected) in TABLE {
            assert_eq!(words(text), expected.to_vec(), "{text}");
        }
    }

    #[test]
    fn labels_resolve_forwards_and_backwards() {
        let text = "mov %r0, 0\nja L2\nL1:\nexit\nL2:\njeq %r0, 0, L1\ncall local f\nf:\nexit\n";
        let w = words(text);
        assert_eq!(w[1], 0x0000_0000_0001_0005);
        assert_eq!(w[3], 0x0000_0000_fffe_0015);
        assert_eq!(w[4], 0x0000_0000_0000_1085);
        // `exit` names the first exit instruction when no such label is declared.
        assert_eq!(
            words("jeq %r1, 0, exit\nmov %r0, 1\nexit")[0],
            0x0000_0000_0001_0115
        );
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        for (text, line, needle) in [
            ("ldxq %r0, %r1", 1, "Invalid mnemonic"),
            ("mov %r0, 1\nlddw %r0", 2, "Invalid number of operands"),
            ("or %r0, %r50", 1, "Invalid register"),
            ("ldxb %r0, %r1", 1, "Failed to decode register and offset"),
            ("ldxb %r0, [%r1+0x10000]", 1, "16-bit"),
            ("mov32 %r0, 2147483648", 1, "32-bit range"),
            ("mov32 %r0, 0x100000000", 1, "32-bit range"),
            ("ja NOT_A_LABEL\nexit", 1, "Invalid label"),
            ("lock or [%r10-8]", 1, "Invalid number of operands for lock"),
            ("lock", 1, "Invalid number of operands for lock"),
            ("-- Unknown directive", 1, "unknown directive"),
            ("x:\nx:\nexit", 2, "Duplicate label"),
            ("ja +40000", 1, "16 bits"),
        ] {
            let e = assemble(text).expect_err(text);
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn printed_programs_assemble_back() {
        let text = "mov %r0, 0\nlddw %r1, map_value 3, 8\nlock fetch or32 [%r1+4], %r2\n\
                    ldxsh %r3, [%r1-2]\njset32 %r3, 7, -3\ncall local -5\nstdw [%r10-8], -1\n\
                    movsx1664 %r4, %r3\nldindh %r4, -4\nexit\n";
        let raw = assemble(text).unwrap();
        let insns = decode_all(&raw).unwrap();
        let printed = format_asm(&insns);
        assert_eq!(assemble(&printed).unwrap(), raw, "{printed}");
    }

    /// Truncated and corrupted lines must give errors, never panics.
    #[test]
    fn garbage_never_panics() {
        let noise = [
            "",
            " ",
            ",",
            "[",
            "]",
            "%r",
            "+",
            "-",
            "0x",
            "é",
            ":",
            "#",
            "lock",
            "99999999999999999999999",
        ];
        for (text, _) in TABLE {
            for cut in 0..=text.len() {
                if !text.is_char_boundary(cut) {
                    continue;
                }
                for n in noise {
                    let _ = assemble(&format!("{}{n}", &text[..cut]));
                    let _ = assemble(&format!("{n}{}", &text[cut..]));
                }
            }
        }
    }
}
