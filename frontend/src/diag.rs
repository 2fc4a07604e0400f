//! Diagnostics in the style of a compiler error, shared by every stage that rejects a program.
//!
//! A diagnostic names where the problem is (object, program, section, instruction index and,
//! when BTF line info has it, the C source line) and what would fix it, so that a user can act
//! on it without reading nicc's source.

use crate::object::LineInfo;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Diagnostic {
    /// What is wrong, as one sentence without a trailing period.
    pub message: String,
    /// The object file name.
    pub object: Option<String>,
    /// The ELF section.
    pub section: Option<String>,
    /// The program (entry function) name.
    pub program: Option<String>,
    /// The slot index, in the section for frontend errors and in the linked program otherwise.
    pub insn: Option<usize>,
    /// The C source line, from BTF line info.
    pub line: Option<LineInfo>,
    /// What would make it work.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            ..Diagnostic::default()
        }
    }
    pub fn object(mut self, name: impl Into<String>) -> Self {
        self.object = Some(name.into());
        self
    }
    pub fn section(mut self, name: impl Into<String>) -> Self {
        self.section = Some(name.into());
        self
    }
    pub fn program(mut self, name: impl Into<String>) -> Self {
        self.program = Some(name.into());
        self
    }
    pub fn insn(mut self, index: usize) -> Self {
        self.insn = Some(index);
        self
    }
    pub fn line(mut self, line: Option<LineInfo>) -> Self {
        self.line = line;
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Fills in what a backend does not know about the program it rejected: the program and
    /// section names and, when the diagnostic names an instruction (a slot of the linked
    /// program) and BTF line info covers it, the C source line. What is already set stays.
    /// A diagnostic about another program (a tail-call target, say) is left as it is.
    pub fn with_source(mut self, program: &crate::object::Program) -> Self {
        if self.program.as_ref().is_some_and(|p| *p != program.name) {
            return self;
        }
        self.program.get_or_insert_with(|| program.name.clone());
        self.section.get_or_insert_with(|| program.section.clone());
        if self.line.is_none() {
            self.line = self.insn.and_then(|i| program.line_at(i).cloned());
        }
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        let mut place = Vec::new();
        if let Some(o) = &self.object {
            place.push(o.clone());
        }
        if let Some(p) = &self.program {
            place.push(format!("program `{p}`"));
        }
        if let Some(s) = &self.section {
            place.push(format!("section `{s}`"));
        }
        if let Some(i) = self.insn {
            place.push(format!("instruction {i}"));
        }
        if !place.is_empty() {
            writeln!(f, "  --> {}", place.join(", "))?;
        }
        if let Some(l) = &self.line {
            let num = l.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, "  {pad} at {l}")?;
            writeln!(f, "  {pad} |")?;
            writeln!(f, "  {num} | {}", l.source.trim_end())?;
            writeln!(f, "  {pad} |")?;
        }
        if let Some(h) = &self.help {
            writeln!(f, "  = help: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}
