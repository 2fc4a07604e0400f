//! The printer of the IR text format (the grammar is in [`crate::parse`]).
//!
//! Printing is deterministic: the same module always gives the same bytes, entities are printed
//! by their numbers, and nothing depends on hash order. The parser reads everything printed
//! here back into an equal module, so the text is also a serialization format for tests and
//! snapshots.

use crate::dfg::DataFlowGraph;
use crate::entities::{FuncRef, Inst};
use crate::function::{Function, LineInfo, MapDecl, Module};
use crate::instructions::{cond_name, endian_name, BlockCall, InstructionData};
use crate::types::width_name;
use std::fmt::{self, Write};

/// The column at which source locations start, so that they line up.
const SRCLOC_COLUMN: usize = 44;

/// Prints a whole module.
pub fn module_to_string(module: &Module) -> String {
    let mut s = String::new();
    write_module(&mut s, module).expect("writing to a String cannot fail");
    s
}

/// Prints one function on its own (without a `fnN` reference in its header).
pub fn function_to_string(func: &Function) -> String {
    let mut s = String::new();
    write_function(&mut s, func, None).expect("writing to a String cannot fail");
    s
}

/// Prints one instruction as it appears in a function body, without indentation or source
/// location (`v3 = add.w64 v1, v2`). Diagnostics use it to show the offending instruction.
pub fn inst_to_string(func: &Function, inst: Inst) -> String {
    let mut s = String::new();
    write_inst(&mut s, &func.dfg, inst).expect("writing to a String cannot fail");
    s
}

pub fn write_module(w: &mut dyn Write, module: &Module) -> fmt::Result {
    let mut sections = 0;
    if !module.programs.is_empty() {
        for p in &module.programs {
            write!(w, "program {} ", p.func)?;
            write_quoted(w, &p.kind)?;
            writeln!(w)?;
        }
        sections += 1;
    }
    if !module.maps.is_empty() {
        if sections > 0 {
            writeln!(w)?;
        }
        for (r, m) in module.maps.iter() {
            write!(w, "{r} = ")?;
            write_map(w, m)?;
            writeln!(w)?;
        }
        sections += 1;
    }
    if !module.lines.is_empty() {
        if sections > 0 {
            writeln!(w)?;
        }
        for (i, l) in module.lines.iter().enumerate() {
            write!(w, "line{i} = ")?;
            write_line_info(w, l)?;
            writeln!(w)?;
        }
        sections += 1;
    }
    for (r, f) in module.functions.iter() {
        if sections > 0 {
            writeln!(w)?;
        }
        write_function(w, f, Some(r))?;
        sections += 1;
    }
    Ok(())
}

fn write_map(w: &mut dyn Write, m: &MapDecl) -> fmt::Result {
    write!(w, "map ")?;
    write_quoted(w, &m.name)?;
    write!(
        w,
        " type {} key {} value {} max {}",
        m.map_type, m.key_size, m.value_size, m.max_entries
    )?;
    if m.flags != 0 {
        write!(w, " flags {}", m.flags)?;
    }
    if let Some(data) = &m.data {
        write!(w, " data \"")?;
        for b in data {
            write!(w, "{b:02x}")?;
        }
        write!(w, "\"")?;
    }
    Ok(())
}

fn write_line_info(w: &mut dyn Write, l: &LineInfo) -> fmt::Result {
    write_quoted(w, &l.file)?;
    write!(w, " {}:{} ", l.line, l.column)?;
    write_quoted(w, &l.text)
}

/// Writes a string literal; `\\`, `\"`, `\n`, `\t`, `\r` and `\xNN` (other ASCII control
/// characters) are the escapes, everything else is written as it is.
pub fn write_quoted(w: &mut dyn Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    for c in s.chars() {
        match c {
            '\\' => w.write_str("\\\\")?,
            '"' => w.write_str("\\\"")?,
            '\n' => w.write_str("\\n")?,
            '\t' => w.write_str("\\t")?,
            '\r' => w.write_str("\\r")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(w, "\\x{:02x}", c as u32)?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

/// True when a function name can be printed bare after `%`.
pub(crate) fn is_bare_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Prints a function; `fref` is its reference in a module, printed in the header.
pub fn write_function(w: &mut dyn Write, func: &Function, fref: Option<FuncRef>) -> fmt::Result {
    write!(w, "function ")?;
    if let Some(r) = fref {
        write!(w, "{r} ")?;
    }
    w.write_char('%')?;
    if is_bare_name(&func.name) {
        w.write_str(&func.name)?;
    } else {
        write_quoted(w, &func.name)?;
    }
    w.write_char('(')?;
    for (i, t) in func.params.iter().enumerate() {
        if i > 0 {
            w.write_str(", ")?;
        }
        write!(w, "{t}")?;
    }
    writeln!(w, ") {{")?;
    for (ss, data) in func.stack_slots.iter() {
        writeln!(w, "    {ss} = stack {}", data.size)?;
    }
    for block in func.layout.blocks() {
        write!(w, "{block}")?;
        let params = func.dfg.block_params(block);
        if !params.is_empty() {
            w.write_char('(')?;
            for (i, &p) in params.iter().enumerate() {
                if i > 0 {
                    w.write_str(", ")?;
                }
                write!(w, "{p}: {}", func.dfg.value_type(p))?;
            }
            w.write_char(')')?;
        }
        writeln!(w, ":")?;
        for inst in func.layout.block_insts(block) {
            let mut line = String::from("    ");
            write_inst(&mut line, &func.dfg, inst)?;
            let loc = func.srclocs[inst];
            if !loc.is_none() {
                let pad = SRCLOC_COLUMN.saturating_sub(line.len()).max(1);
                line.extend(std::iter::repeat_n(' ', pad));
                write!(line, "{loc}")?;
            }
            writeln!(w, "{line}")?;
        }
    }
    writeln!(w, "}}")
}

fn write_offset(w: &mut dyn Write, offset: i32) -> fmt::Result {
    if offset < 0 {
        write!(w, "{offset}")
    } else {
        write!(w, "+{offset}")
    }
}

fn write_block_call(w: &mut dyn Write, call: &BlockCall) -> fmt::Result {
    write!(w, "{}", call.block)?;
    if !call.args.is_empty() {
        write_value_list(w, &call.args)?;
    }
    Ok(())
}

fn write_value_list(w: &mut dyn Write, values: &[crate::entities::Value]) -> fmt::Result {
    w.write_char('(')?;
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            w.write_str(", ")?;
        }
        write!(w, "{v}")?;
    }
    w.write_char(')')
}

/// Writes `vN = ` (when the instruction has a result) and the instruction.
pub fn write_inst(w: &mut dyn Write, dfg: &DataFlowGraph, inst: Inst) -> fmt::Result {
    if let Some(v) = dfg.inst_result(inst) {
        write!(w, "{v} = ")?;
    }
    match dfg.inst(inst) {
        InstructionData::Iconst { imm } => write!(w, "iconst {imm}"),
        InstructionData::Binary { op, width, args } => write!(
            w,
            "{}.{} {}, {}",
            op.name(),
            width_name(*width),
            args[0],
            args[1]
        ),
        InstructionData::Unary { op, width, arg } => {
            write!(w, "{}.{} {arg}", op.name(), width_name(*width))
        }
        InstructionData::Endian { order, bits, arg } => match endian_name(*order, *bits) {
            Some(name) => write!(w, "{name} {arg}"),
            // An invalid width cannot be parsed back; the verifier reports it, and printing it
            // in a recognisable form keeps the diagnostic readable.
            None => write!(w, "endian.{order:?}.{bits} {arg}"),
        },
        InstructionData::Load {
            region,
            size,
            signed,
            base,
            offset,
        } => {
            write!(w, "load.{region}.{size}")?;
            if *signed {
                w.write_str(".sx")?;
            }
            write!(w, " {base}")?;
            write_offset(w, *offset)
        }
        InstructionData::Store {
            region,
            size,
            base,
            offset,
            value,
        } => {
            write!(w, "store.{region}.{size} {base}")?;
            write_offset(w, *offset)?;
            write!(w, ", {value}")
        }
        InstructionData::Atomic {
            region,
            size,
            op,
            fetch,
            base,
            offset,
            value,
        } => {
            write!(w, "atomic.{region}.{size} {}", op.name())?;
            if *fetch {
                w.write_str(".fetch")?;
            }
            write!(w, " {base}")?;
            write_offset(w, *offset)?;
            write!(w, ", {value}")
        }
        InstructionData::CmpXchg {
            region,
            size,
            base,
            offset,
            expected,
            replacement,
        } => {
            write!(w, "cmpxchg.{region}.{size} {base}")?;
            write_offset(w, *offset)?;
            write!(w, ", {expected}, {replacement}")
        }
        InstructionData::StackAddr { slot, offset } => {
            write!(w, "stack_addr {slot}")?;
            write_offset(w, *offset)
        }
        InstructionData::MapRef { map } => write!(w, "map_ref {map}"),
        InstructionData::MapValueAddr { map, offset } => {
            write!(w, "map_value_addr {map}")?;
            write_offset(w, *offset)
        }
        InstructionData::FuncAddr { func } => write!(w, "func_addr {func}"),
        InstructionData::CallHelper { helper, args } => {
            write!(w, "call_helper {helper}")?;
            write_value_list(w, args)
        }
        InstructionData::Call { func, args } => {
            write!(w, "call {func}")?;
            write_value_list(w, args)
        }
        InstructionData::TailCall { ctx, map, index } => {
            write!(w, "tail_call {ctx}, {map}, {index}")
        }
        InstructionData::Jump { dest } => {
            w.write_str("jump ")?;
            write_block_call(w, dest)
        }
        InstructionData::Brif {
            cond,
            width,
            args,
            dests,
        } => {
            write!(
                w,
                "brif {}.{} {}, {}, ",
                cond_name(*cond),
                width_name(*width),
                args[0],
                args[1]
            )?;
            write_block_call(w, &dests[0])?;
            w.write_str(", ")?;
            write_block_call(w, &dests[1])
        }
        InstructionData::Return { value } => write!(w, "return {value}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        write_quoted(&mut s, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(s, r#""a\"b\\c\nd\x01é""#);
    }

    #[test]
    fn bare_names() {
        assert!(is_bare_name("xdp_prog1"));
        assert!(is_bare_name("foo.cold"));
        assert!(!is_bare_name(""));
        assert!(!is_bare_name("a b"));
    }
}
