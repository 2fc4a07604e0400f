//! The parser of the IR text format.
//!
//! Tests, snapshots and the command line write IR as text; this module reads it back. Whatever
//! [`crate::write`] prints parses into an equal module, and printing that module gives the same
//! bytes. Block and value numbers are kept as written (a gap in the numbering becomes a value
//! or block that nothing defines), so a function does not get renumbered by a round trip.
//!
//! The parser checks what it must to build a well-formed data structure: every value, block,
//! stack slot, map and function named exists and is defined once, and every number fits its
//! field. Everything else (types, dominance, terminators, region rules) is the verifier's job,
//! so that hand-written test input can exercise each verifier check. No input makes the parser
//! panic; every rejection is a [`ParseError`] with a line and a column.
//!
//! # Grammar
//!
//! Whitespace and newlines separate tokens and are otherwise insignificant; `;` starts a comment
//! that runs to the end of the line. `INT` is a decimal (or `0x` hexadecimal) integer with an
//! optional leading `-`; `STRING` is a double-quoted string with the escapes `\\`, `\"`, `\n`,
//! `\t`, `\r` and `\xNN`. Entity names are a prefix and a decimal number without leading zeros:
//! `vN` (value), `blockN`, `ssN` (stack slot), `fnN` (function), `mapN`, `lineN` (line table).
//!
//! ```text
//! module    := item*
//! item      := "program" fnN STRING                       ; a program entry and its kind
//!            | mapN "=" "map" STRING "type" INT "key" INT "value" INT "max" INT
//!                  ["flags" INT] ["data" STRING]          ; data: the initial value, in hex
//!            | lineN "=" STRING INT ":" INT STRING         ; file, line:column, source text
//!            | function
//! function  := "function" [fnN] "%" (NAME | STRING) "(" [type ("," type)*] ")" "{"
//!                  (ssN "=" "stack" INT)*
//!                  (blockN ["(" vN ":" type ("," vN ":" type)* ")"] ":" inst*)*
//!              "}"
//! type      := "i8" | "i16" | "i32" | "i64"
//! inst      := [vN "="] op [srcloc]
//! srcloc    := "@" INT [":" INT]                           ; BPF slot index, line table index
//! op        := "iconst" INT
//!            | BINOP "." width vN "," vN                   ; add sub mul div sdiv mod smod
//!                                                          ; or and xor lsh rsh arsh
//!            | UNOP "." width vN                           ; neg mov movsx8 movsx16 movsx32
//!            | ENDIAN vN                                   ; le16 le32 le64 be16 be32 be64
//!                                                          ; bswap16 bswap32 bswap64
//!            | "load" "." region "." size [".sx"] addr
//!            | "store" "." region "." size addr "," vN
//!            | "atomic" "." region "." size AOP [".fetch"] addr "," vN
//!                                                          ; AOP: add or and xor xchg
//!            | "cmpxchg" "." region "." size addr "," vN "," vN
//!            | "stack_addr" ssN offset
//!            | "map_ref" mapN
//!            | "map_value_addr" mapN offset
//!            | "func_addr" fnN
//!            | "call_helper" INT "(" [vN ("," vN)*] ")"
//!            | "call" fnN "(" [vN ("," vN)*] ")"
//!            | "tail_call" vN "," mapN "," vN
//!            | "jump" dest
//!            | "brif" COND "." width vN "," vN "," dest "," dest
//!                                                          ; COND: eq ne gt ge lt le
//!                                                          ; sgt sge slt sle set
//!            | "return" vN
//! width     := "w32" | "w64"
//! size      := "u8" | "u16" | "u32" | "u64"
//! region    := "packet" | "ctx" | "any" | "stack" "(" ssN ")"
//!            | "map_value" "(" (mapN | "?") ")" | "global" "(" mapN ")"
//! addr      := vN offset
//! offset    := "+" INT | INT                               ; a bare INT must be negative
//! dest      := blockN ["(" [vN ("," vN)*] ")"]
//! NAME      := [A-Za-z0-9_.]+
//! ```
//!
//! In a module, `fnN` in a function header may be left out; functions are numbered in the
//! order they appear, and a written `fnN` must match that order. Maps and lines must likewise
//! be numbered `map0, map1, ...` and `line0, line1, ...` in order, and so must stack slots.

use crate::entities::{Block, FuncRef, MapRef, StackSlot, Value};
use crate::function::{Function, LineInfo, MapDecl, Module, ProgramEntry, SrcLoc};
use crate::instructions::{
    cond_from_name, endian_from_name, AtomicOp, BinaryOp, BlockCall, InstructionData, Region,
    UnaryOp,
};
use crate::types::{width_from_name, MemSize, Type};
use std::collections::HashSet;
use std::fmt;

/// The largest entity number accepted. Value and block numbers are kept as written, so a
/// number is also an allocation size; this bound keeps hostile input from exhausting memory.
pub const MAX_ENTITY_NUMBER: u32 = 1 << 20;

/// Why text could not be parsed, and where (1-based line and column, in characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole module.
pub fn parse_module(text: &str) -> Result<Module, ParseError> {
    let mut p = Parser::new(text)?;
    p.module()
}

/// Parses a single function (a `function` item and nothing else). Map and function references
/// in it are not checked, since there is no module to check them against.
pub fn parse_function(text: &str) -> Result<Function, ParseError> {
    let mut p = Parser::new(text)?;
    if !p.at_keyword("function") {
        return Err(p.error("expected `function`"));
    }
    let (_, func) = p.function()?;
    if let Some(t) = p.peek() {
        return Err(p.error_at(t, "expected the end of the input after the function"));
    }
    Ok(func)
}

// ---- Lexer ----

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Int(i128),
    Str(String),
    /// `%name` or `%"name"`.
    FuncName(String),
    Punct(char),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: u32,
    column: u32,
}

fn lex(text: &str) -> Result<(Vec<Token>, (u32, u32)), ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    let err = |line, column, message: String| ParseError {
        line,
        column,
        message,
    };
    // Advances over one character, keeping line and column up to date.
    macro_rules! bump {
        () => {{
            if chars[i] == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    while i < chars.len() {
        let c = chars[i];
        let (tl, tc) = (line, col);
        if c.is_whitespace() {
            bump!();
        } else if c == ';' {
            while i < chars.len() && chars[i] != '\n' {
                bump!();
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut s = String::new();
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                s.push(chars[i]);
                bump!();
            }
            toks.push(Token {
                tok: Tok::Ident(s),
                line: tl,
                column: tc,
            });
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let negative = c == '-';
            if negative {
                bump!();
            }
            let hex = chars[i] == '0' && matches!(chars.get(i + 1), Some('x' | 'X'));
            if hex {
                bump!();
                bump!();
            }
            let radix = if hex { 16 } else { 10 };
            let mut value: i128 = 0;
            let mut digits = 0;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                let d = chars[i]
                    .to_digit(radix)
                    .ok_or_else(|| err(line, col, format!("invalid digit `{}`", chars[i])))?;
                value = value
                    .checked_mul(radix as i128)
                    .and_then(|v| v.checked_add(d as i128))
                    .filter(|v| *v <= u64::MAX as i128)
                    .ok_or_else(|| err(tl, tc, "integer is too large".to_string()))?;
                digits += 1;
                bump!();
            }
            if digits == 0 {
                return Err(err(tl, tc, "expected digits after `0x`".to_string()));
            }
            toks.push(Token {
                tok: Tok::Int(if negative { -value } else { value }),
                line: tl,
                column: tc,
            });
        } else if c == '"' {
            bump!();
            let s = lex_string(&chars, &mut i, &mut line, &mut col)?;
            toks.push(Token {
                tok: Tok::Str(s),
                line: tl,
                column: tc,
            });
        } else if c == '%' {
            bump!();
            let name = if i < chars.len() && chars[i] == '"' {
                bump!();
                lex_string(&chars, &mut i, &mut line, &mut col)?
            } else {
                let mut s = String::new();
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    s.push(chars[i]);
                    bump!();
                }
                if s.is_empty() {
                    return Err(err(tl, tc, "expected a function name after `%`".into()));
                }
                s
            };
            toks.push(Token {
                tok: Tok::FuncName(name),
                line: tl,
                column: tc,
            });
        } else if "=,(){}:.+@?".contains(c) {
            bump!();
            toks.push(Token {
                tok: Tok::Punct(c),
                line: tl,
                column: tc,
            });
        } else {
            return Err(err(
                tl,
                tc,
                format!("unexpected character `{}`", c.escape_debug()),
            ));
        }
    }
    Ok((toks, (line, col)))
}

/// Reads a string literal whose opening quote has been consumed.
fn lex_string(
    chars: &[char],
    i: &mut usize,
    line: &mut u32,
    col: &mut u32,
) -> Result<String, ParseError> {
    let mut s = String::new();
    let err = |line, column, message: &str| ParseError {
        line,
        column,
        message: message.to_string(),
    };
    loop {
        let Some(&c) = chars.get(*i) else {
            return Err(err(*line, *col, "unterminated string"));
        };
        if c == '\n' {
            return Err(err(*line, *col, "newline in a string (write `\\n`)"));
        }
        *i += 1;
        *col += 1;
        match c {
            '"' => return Ok(s),
            '\\' => {
                let Some(&e) = chars.get(*i) else {
                    return Err(err(*line, *col, "unterminated string"));
                };
                *i += 1;
                *col += 1;
                match e {
                    '\\' => s.push('\\'),
                    '"' => s.push('"'),
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    'x' => {
                        let hex: String = chars.iter().skip(*i).take(2).collect();
                        let byte = (hex.len() == 2)
                            .then(|| u8::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .filter(|b| *b < 0x80)
                            .ok_or_else(|| {
                                err(*line, *col, "`\\x` needs two hex digits below 80")
                            })?;
                        *i += 2;
                        *col += 2;
                        s.push(byte as char);
                    }
                    _ => return Err(err(*line, *col - 1, "unknown escape in a string")),
                }
            }
            c => s.push(c),
        }
    }
}

// ---- Parser ----

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    end: (u32, u32),
}

/// A reference to check once the whole module has been read.
struct Pending {
    line: u32,
    column: u32,
    what: Ref,
}

enum Ref {
    Func(FuncRef),
    Map(MapRef),
}

/// Per-function parser state: what has been defined and what has been referenced.
#[derive(Default)]
struct FuncState {
    defined_values: HashSet<u32>,
    used_values: Vec<(u32, u32, u32)>,
    defined_blocks: HashSet<u32>,
    used_blocks: Vec<(u32, u32, u32)>,
}

type PResult<T> = Result<T, ParseError>;

impl Parser {
    fn new(text: &str) -> PResult<Parser> {
        let (toks, end) = lex(text)?;
        Ok(Parser { toks, pos: 0, end })
    }

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek_tok(&self) -> Option<&Tok> {
        self.peek().map(|t| &t.tok)
    }

    fn peek_tok_at(&self, ahead: usize) -> Option<&Tok> {
        self.toks.get(self.pos + ahead).map(|t| &t.tok)
    }

    /// The position of the next token (or the end of the input).
    fn here(&self) -> (u32, u32) {
        self.peek().map(|t| (t.line, t.column)).unwrap_or(self.end)
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        let (line, column) = self.here();
        let found = match self.peek_tok() {
            None => "the end of the input".to_string(),
            Some(t) => describe(t),
        };
        ParseError {
            line,
            column,
            message: format!("{}, found {found}", message.into()),
        }
    }

    fn error_at(&self, t: &Token, message: impl Into<String>) -> ParseError {
        ParseError {
            line: t.line,
            column: t.column,
            message: message.into(),
        }
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn at_punct(&self, c: char) -> bool {
        self.peek_tok() == Some(&Tok::Punct(c))
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if self.at_punct(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, c: char) -> PResult<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{c}`")))
        }
    }

    fn at_keyword(&self, kw: &str) -> bool {
        matches!(self.peek_tok(), Some(Tok::Ident(s)) if s == kw)
    }

    fn expect_keyword(&mut self, kw: &str) -> PResult<()> {
        if self.at_keyword(kw) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected `{kw}`")))
        }
    }

    fn ident(&mut self, what: &str) -> PResult<(String, Token)> {
        match self.peek().cloned() {
            Some(
                t @ Token {
                    tok: Tok::Ident(_), ..
                },
            ) => {
                self.pos += 1;
                let Tok::Ident(s) = &t.tok else {
                    unreachable!("matched an identifier")
                };
                Ok((s.clone(), t))
            }
            _ => Err(self.error(format!("expected {what}"))),
        }
    }

    fn string(&mut self) -> PResult<String> {
        match self.peek_tok().cloned() {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.error("expected a string")),
        }
    }

    fn int(&mut self, what: &str) -> PResult<(i128, Token)> {
        match self.peek().cloned() {
            Some(
                t @ Token {
                    tok: Tok::Int(_), ..
                },
            ) => {
                self.pos += 1;
                let Tok::Int(v) = t.tok else {
                    unreachable!("matched an integer")
                };
                Ok((v, t))
            }
            _ => Err(self.error(format!("expected {what}"))),
        }
    }

    fn u32(&mut self, what: &str) -> PResult<u32> {
        let (v, t) = self.int(what)?;
        u32::try_from(v)
            .map_err(|_| self.error_at(&t, format!("{what} must fit in 32 bits unsigned")))
    }

    fn i32_offset(&mut self) -> PResult<i32> {
        // `+N` for a non-negative offset, a negative integer for a negative one.
        let plus = self.eat_punct('+');
        let (v, t) = self.int("an offset")?;
        if plus && v < 0 {
            return Err(self.error_at(&t, "write a negative offset without `+`"));
        }
        if !plus && v >= 0 {
            return Err(self.error_at(&t, "a non-negative offset is written `+N`"));
        }
        i32::try_from(v).map_err(|_| self.error_at(&t, "offset must fit in 32 bits signed"))
    }

    /// An entity number after `prefix`, as in `v12`.
    fn entity(&mut self, prefix: &str, what: &str) -> PResult<(u32, Token)> {
        let msg = format!("expected {what} (`{prefix}N`)");
        let Some(t) = self.peek().cloned() else {
            return Err(self.error(msg));
        };
        let Tok::Ident(s) = &t.tok else {
            return Err(self.error(msg));
        };
        let Some(n) = entity_number(s, prefix) else {
            return Err(self.error(msg));
        };
        self.pos += 1;
        if n > MAX_ENTITY_NUMBER {
            return Err(self.error_at(&t, format!("{s} is numbered above {MAX_ENTITY_NUMBER}")));
        }
        Ok((n, t))
    }

    fn at_entity(&self, prefix: &str) -> bool {
        matches!(self.peek_tok(), Some(Tok::Ident(s)) if entity_number(s, prefix).is_some())
    }

    fn ty(&mut self) -> PResult<Type> {
        let (name, t) = self.ident("a type")?;
        Type::from_name(&name).ok_or_else(|| self.error_at(&t, format!("unknown type `{name}`")))
    }

    // ---- Module ----

    fn module(&mut self) -> PResult<Module> {
        let mut module = Module::new();
        let mut pending = Vec::new();
        while let Some(t) = self.peek().cloned() {
            match &t.tok {
                Tok::Ident(s) if s == "program" => {
                    self.pos += 1;
                    let (n, ft) = self.entity("fn", "a function")?;
                    pending.push(Pending {
                        line: ft.line,
                        column: ft.column,
                        what: Ref::Func(FuncRef::from_u32(n)),
                    });
                    let kind = self.string()?;
                    module.programs.push(ProgramEntry {
                        func: FuncRef::from_u32(n),
                        kind,
                    });
                }
                Tok::Ident(s) if s == "function" => {
                    let (fref, mut func_pending) = self.function_in_module()?;
                    if let Some((n, ft)) = fref {
                        if n as usize != module.functions.len() {
                            return Err(self.error_at(
                                &ft,
                                format!(
                                    "functions must be numbered in order: expected fn{}",
                                    module.functions.len()
                                ),
                            ));
                        }
                    }
                    pending.append(&mut func_pending.1);
                    module.functions.push(func_pending.0);
                }
                Tok::Ident(s) if entity_number(s, "map").is_some() => {
                    let (n, mt) = self.entity("map", "a map")?;
                    if n as usize != module.maps.len() {
                        return Err(self.error_at(
                            &mt,
                            format!(
                                "maps must be numbered in order: expected map{}",
                                module.maps.len()
                            ),
                        ));
                    }
                    self.expect_punct('=')?;
                    module.maps.push(self.map_decl()?);
                }
                Tok::Ident(s) if entity_number(s, "line").is_some() => {
                    let (n, lt) = self.entity("line", "a line")?;
                    if n as usize != module.lines.len() {
                        return Err(self.error_at(
                            &lt,
                            format!(
                                "lines must be numbered in order: expected line{}",
                                module.lines.len()
                            ),
                        ));
                    }
                    self.expect_punct('=')?;
                    let file = self.string()?;
                    let line = self.u32("a line number")?;
                    self.expect_punct(':')?;
                    let column = self.u32("a column number")?;
                    let text = self.string()?;
                    module.lines.push(LineInfo {
                        file,
                        line,
                        column,
                        text,
                    });
                }
                _ => return Err(self.error("expected `program`, `mapN`, `lineN` or `function`")),
            }
        }
        for p in pending {
            let (ok, name) = match p.what {
                Ref::Func(f) => (module.functions.is_valid(f), f.to_string()),
                Ref::Map(m) => (module.maps.is_valid(m), m.to_string()),
            };
            if !ok {
                return Err(ParseError {
                    line: p.line,
                    column: p.column,
                    message: format!("{name} is not defined"),
                });
            }
        }
        Ok(module)
    }

    fn map_decl(&mut self) -> PResult<MapDecl> {
        self.expect_keyword("map")?;
        let name = self.string()?;
        self.expect_keyword("type")?;
        let map_type = self.u32("a map type")?;
        self.expect_keyword("key")?;
        let key_size = self.u32("a key size")?;
        self.expect_keyword("value")?;
        let value_size = self.u32("a value size")?;
        self.expect_keyword("max")?;
        let max_entries = self.u32("a maximum entry count")?;
        let mut decl = MapDecl::new(name, map_type, key_size, value_size, max_entries);
        if self.at_keyword("flags") {
            self.pos += 1;
            decl.flags = self.u32("map flags")?;
        }
        if self.at_keyword("data") {
            self.pos += 1;
            let here = self.peek().cloned();
            let hex = self.string()?;
            let bytes = decode_hex(&hex).ok_or_else(|| match &here {
                Some(t) => self.error_at(t, "map data must be an even number of hex digits"),
                None => self.error("expected map data"),
            })?;
            decl.data = Some(bytes);
        }
        Ok(decl)
    }

    /// A function inside a module, with the map and function references to check later.
    #[allow(clippy::type_complexity)]
    fn function_in_module(&mut self) -> PResult<(Option<(u32, Token)>, (Function, Vec<Pending>))> {
        let start = self.pos;
        self.expect_keyword("function")?;
        let fref = if self.at_entity("fn") {
            Some(self.entity("fn", "a function")?)
        } else {
            None
        };
        self.pos = start;
        let (_, func, pending) = self.function_with_refs()?;
        Ok((fref, (func, pending)))
    }

    fn function(&mut self) -> PResult<(Option<u32>, Function)> {
        let (n, f, _) = self.function_with_refs()?;
        Ok((n, f))
    }

    fn function_with_refs(&mut self) -> PResult<(Option<u32>, Function, Vec<Pending>)> {
        self.expect_keyword("function")?;
        let fref = if self.at_entity("fn") {
            Some(self.entity("fn", "a function")?.0)
        } else {
            None
        };
        let name = match self.next() {
            Some(Token {
                tok: Tok::FuncName(n),
                ..
            }) => n,
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.error("expected a function name (`%name`)"));
            }
        };
        self.expect_punct('(')?;
        let mut params = Vec::new();
        if !self.eat_punct(')') {
            loop {
                params.push(self.ty()?);
                if self.eat_punct(')') {
                    break;
                }
                self.expect_punct(',')?;
            }
        }
        self.expect_punct('{')?;
        let mut func = Function::new(name, params);
        let mut st = FuncState::default();
        let mut pending = Vec::new();
        while self.at_entity("ss") {
            let (n, t) = self.entity("ss", "a stack slot")?;
            if n as usize != func.stack_slots.len() {
                return Err(self.error_at(
                    &t,
                    format!(
                        "stack slots must be numbered in order: expected ss{}",
                        func.stack_slots.len()
                    ),
                ));
            }
            self.expect_punct('=')?;
            self.expect_keyword("stack")?;
            let size = self.u32("a stack slot size")?;
            func.create_stack_slot(size);
        }
        let mut current: Option<Block> = None;
        loop {
            if self.eat_punct('}') {
                break;
            }
            if self.peek().is_none() {
                return Err(self.error("expected `}` at the end of the function"));
            }
            // A block header is `blockN:` or `blockN(`; anything else is an instruction.
            if self.at_entity("block") && matches!(self.peek_tok_at(1), Some(Tok::Punct(':' | '(')))
            {
                current = Some(self.block_header(&mut func, &mut st)?);
                continue;
            }
            let Some(block) = current else {
                return Err(self.error("expected a block header (`blockN:`) before instructions"));
            };
            self.inst(&mut func, &mut st, &mut pending, block)?;
        }
        for (n, line, column) in &st.used_values {
            if !st.defined_values.contains(n) {
                return Err(ParseError {
                    line: *line,
                    column: *column,
                    message: format!("v{n} is not defined"),
                });
            }
        }
        for (n, line, column) in &st.used_blocks {
            if !st.defined_blocks.contains(n) {
                return Err(ParseError {
                    line: *line,
                    column: *column,
                    message: format!("block{n} is not defined"),
                });
            }
        }
        Ok((fref, func, pending))
    }

    fn block_header(&mut self, func: &mut Function, st: &mut FuncState) -> PResult<Block> {
        let (n, t) = self.entity("block", "a block")?;
        if !st.defined_blocks.insert(n) {
            return Err(self.error_at(&t, format!("block{n} is defined twice")));
        }
        let block = func.dfg.ensure_block(n as usize);
        func.layout.append_block(block);
        if self.eat_punct('(') {
            loop {
                let (v, vt) = self.entity("v", "a value")?;
                self.expect_punct(':')?;
                let ty = self.ty()?;
                if !st.defined_values.insert(v) {
                    return Err(self.error_at(&vt, format!("v{v} is defined twice")));
                }
                func.dfg.append_block_param_at(block, v as usize, ty);
                if self.eat_punct(')') {
                    break;
                }
                self.expect_punct(',')?;
            }
        }
        self.expect_punct(':')?;
        Ok(block)
    }

    fn use_value(&mut self, st: &mut FuncState) -> PResult<Value> {
        let (n, t) = self.entity("v", "a value")?;
        st.used_values.push((n, t.line, t.column));
        Ok(Value::from_u32(n))
    }

    fn value_list(&mut self, st: &mut FuncState) -> PResult<Vec<Value>> {
        self.expect_punct('(')?;
        let mut out = Vec::new();
        if self.eat_punct(')') {
            return Ok(out);
        }
        loop {
            out.push(self.use_value(st)?);
            if self.eat_punct(')') {
                return Ok(out);
            }
            self.expect_punct(',')?;
        }
    }

    fn block_call(&mut self, func: &mut Function, st: &mut FuncState) -> PResult<BlockCall> {
        let (n, t) = self.entity("block", "a block")?;
        st.used_blocks.push((n, t.line, t.column));
        let block = func.dfg.ensure_block(n as usize);
        let args = if self.at_punct('(') {
            self.value_list(st)?
        } else {
            Vec::new()
        };
        Ok(BlockCall::new(block, args))
    }

    fn stack_slot(&mut self, func: &Function) -> PResult<StackSlot> {
        let (n, t) = self.entity("ss", "a stack slot")?;
        let ss = StackSlot::from_u32(n);
        if !func.stack_slots.is_valid(ss) {
            return Err(self.error_at(&t, format!("{ss} is not declared")));
        }
        Ok(ss)
    }

    fn map(&mut self, pending: &mut Vec<Pending>) -> PResult<MapRef> {
        let (n, t) = self.entity("map", "a map")?;
        let m = MapRef::from_u32(n);
        pending.push(Pending {
            line: t.line,
            column: t.column,
            what: Ref::Map(m),
        });
        Ok(m)
    }

    fn func_ref(&mut self, pending: &mut Vec<Pending>) -> PResult<FuncRef> {
        let (n, t) = self.entity("fn", "a function")?;
        let f = FuncRef::from_u32(n);
        pending.push(Pending {
            line: t.line,
            column: t.column,
            what: Ref::Func(f),
        });
        Ok(f)
    }

    fn region(&mut self, func: &Function, pending: &mut Vec<Pending>) -> PResult<Region> {
        let (name, t) = self.ident("a memory region")?;
        Ok(match name.as_str() {
            "packet" => Region::Packet,
            "ctx" => Region::Ctx,
            "any" => Region::Any,
            "stack" => {
                self.expect_punct('(')?;
                let ss = self.stack_slot(func)?;
                self.expect_punct(')')?;
                Region::Stack(ss)
            }
            "map_value" => {
                self.expect_punct('(')?;
                let m = if self.eat_punct('?') {
                    None
                } else {
                    Some(self.map(pending)?)
                };
                self.expect_punct(')')?;
                Region::MapValue(m)
            }
            "global" => {
                self.expect_punct('(')?;
                let m = self.map(pending)?;
                self.expect_punct(')')?;
                Region::Global(m)
            }
            _ => return Err(self.error_at(&t, format!("unknown memory region `{name}`"))),
        })
    }

    fn mem_size(&mut self) -> PResult<MemSize> {
        let (name, t) = self.ident("an access size")?;
        MemSize::from_name(&name)
            .ok_or_else(|| self.error_at(&t, format!("unknown access size `{name}`")))
    }

    fn width(&mut self) -> PResult<crate::semantics::Width> {
        let (name, t) = self.ident("a width")?;
        width_from_name(&name).ok_or_else(|| self.error_at(&t, format!("unknown width `{name}`")))
    }

    /// `.REGION.SIZE` after a memory opcode.
    fn region_and_size(
        &mut self,
        func: &Function,
        pending: &mut Vec<Pending>,
    ) -> PResult<(Region, MemSize)> {
        self.expect_punct('.')?;
        let region = self.region(func, pending)?;
        self.expect_punct('.')?;
        let size = self.mem_size()?;
        Ok((region, size))
    }

    fn inst(
        &mut self,
        func: &mut Function,
        st: &mut FuncState,
        pending: &mut Vec<Pending>,
        block: Block,
    ) -> PResult<()> {
        let result = if self.at_entity("v") && self.peek_tok_at(1) == Some(&Tok::Punct('=')) {
            let (n, t) = self.entity("v", "a value")?;
            self.pos += 1;
            Some((n, t))
        } else {
            None
        };
        let (op, op_tok) = self.ident("an instruction")?;
        let data = self.inst_data(&op, &op_tok, func, st, pending)?;
        let loc = if self.eat_punct('@') {
            let here = self.peek().cloned();
            let insn = self.u32("a BPF instruction index")?;
            if insn == u32::MAX {
                if let Some(t) = &here {
                    return Err(self.error_at(t, "instruction index 4294967295 means no location"));
                }
            }
            let line = if self.eat_punct(':') {
                Some(self.u32("a line table index")?)
            } else {
                None
            };
            SrcLoc { insn, line }
        } else {
            SrcLoc::NONE
        };
        let result_type = data.result_type();
        let inst = func.dfg.make_inst_without_result(data);
        match (result, result_type) {
            (Some((n, t)), Some(ty)) => {
                if !st.defined_values.insert(n) {
                    return Err(self.error_at(&t, format!("v{n} is defined twice")));
                }
                func.dfg.attach_result_at(inst, n as usize, ty);
            }
            (Some((_, t)), None) => {
                return Err(self.error_at(&t, format!("`{op}` defines no value")));
            }
            (None, Some(_)) => {
                return Err(self.error_at(
                    &op_tok,
                    format!("`{op}` defines a value: write `vN = {op} ...`"),
                ));
            }
            (None, None) => {}
        }
        func.layout.append_inst(inst, block);
        func.srclocs[inst] = loc;
        Ok(())
    }

    fn inst_data(
        &mut self,
        op: &str,
        op_tok: &Token,
        func: &mut Function,
        st: &mut FuncState,
        pending: &mut Vec<Pending>,
    ) -> PResult<InstructionData> {
        if let Some(bop) = BinaryOp::from_name(op) {
            self.expect_punct('.')?;
            let width = self.width()?;
            let a = self.use_value(st)?;
            self.expect_punct(',')?;
            let b = self.use_value(st)?;
            return Ok(InstructionData::Binary {
                op: bop,
                width,
                args: [a, b],
            });
        }
        if let Some(uop) = UnaryOp::from_name(op) {
            self.expect_punct('.')?;
            let width = self.width()?;
            let arg = self.use_value(st)?;
            return Ok(InstructionData::Unary {
                op: uop,
                width,
                arg,
            });
        }
        if let Some((order, bits)) = endian_from_name(op) {
            let arg = self.use_value(st)?;
            return Ok(InstructionData::Endian { order, bits, arg });
        }
        Ok(match op {
            "iconst" => {
                let (v, t) = self.int("a constant")?;
                let imm = if v < 0 {
                    i64::try_from(v).ok()
                } else {
                    u64::try_from(v).ok().map(|u| u as i64)
                }
                .ok_or_else(|| self.error_at(&t, "constant must fit in 64 bits"))?;
                InstructionData::Iconst { imm }
            }
            "load" => {
                let (region, size) = self.region_and_size(func, pending)?;
                let signed = if self.eat_punct('.') {
                    self.expect_keyword("sx")?;
                    true
                } else {
                    false
                };
                let base = self.use_value(st)?;
                let offset = self.i32_offset()?;
                InstructionData::Load {
                    region,
                    size,
                    signed,
                    base,
                    offset,
                }
            }
            "store" => {
                let (region, size) = self.region_and_size(func, pending)?;
                let base = self.use_value(st)?;
                let offset = self.i32_offset()?;
                self.expect_punct(',')?;
                let value = self.use_value(st)?;
                InstructionData::Store {
                    region,
                    size,
                    base,
                    offset,
                    value,
                }
            }
            "atomic" => {
                let (region, size) = self.region_and_size(func, pending)?;
                let (name, t) = self.ident("an atomic operation")?;
                let aop = AtomicOp::from_name(&name).ok_or_else(|| {
                    self.error_at(&t, format!("unknown atomic operation `{name}`"))
                })?;
                let fetch = if self.eat_punct('.') {
                    self.expect_keyword("fetch")?;
                    true
                } else {
                    false
                };
                let base = self.use_value(st)?;
                let offset = self.i32_offset()?;
                self.expect_punct(',')?;
                let value = self.use_value(st)?;
                InstructionData::Atomic {
                    region,
                    size,
                    op: aop,
                    fetch,
                    base,
                    offset,
                    value,
                }
            }
            "cmpxchg" => {
                let (region, size) = self.region_and_size(func, pending)?;
                let base = self.use_value(st)?;
                let offset = self.i32_offset()?;
                self.expect_punct(',')?;
                let expected = self.use_value(st)?;
                self.expect_punct(',')?;
                let replacement = self.use_value(st)?;
                InstructionData::CmpXchg {
                    region,
                    size,
                    base,
                    offset,
                    expected,
                    replacement,
                }
            }
            "stack_addr" => {
                let slot = self.stack_slot(func)?;
                let offset = self.i32_offset()?;
                InstructionData::StackAddr { slot, offset }
            }
            "map_ref" => InstructionData::MapRef {
                map: self.map(pending)?,
            },
            "map_value_addr" => {
                let map = self.map(pending)?;
                let offset = self.i32_offset()?;
                InstructionData::MapValueAddr { map, offset }
            }
            "func_addr" => InstructionData::FuncAddr {
                func: self.func_ref(pending)?,
            },
            "call_helper" => {
                let helper = self.u32("a helper id")?;
                let args = self.value_list(st)?;
                InstructionData::CallHelper { helper, args }
            }
            "call" => {
                let f = self.func_ref(pending)?;
                let args = self.value_list(st)?;
                InstructionData::Call { func: f, args }
            }
            "tail_call" => {
                let ctx = self.use_value(st)?;
                self.expect_punct(',')?;
                let map = self.map(pending)?;
                self.expect_punct(',')?;
                let index = self.use_value(st)?;
                InstructionData::TailCall { ctx, map, index }
            }
            "jump" => InstructionData::Jump {
                dest: self.block_call(func, st)?,
            },
            "brif" => {
                let (name, t) = self.ident("a condition")?;
                let cond = cond_from_name(&name)
                    .ok_or_else(|| self.error_at(&t, format!("unknown condition `{name}`")))?;
                self.expect_punct('.')?;
                let width = self.width()?;
                let a = self.use_value(st)?;
                self.expect_punct(',')?;
                let b = self.use_value(st)?;
                self.expect_punct(',')?;
                let then_dest = self.block_call(func, st)?;
                self.expect_punct(',')?;
                let else_dest = self.block_call(func, st)?;
                InstructionData::Brif {
                    cond,
                    width,
                    args: [a, b],
                    dests: [then_dest, else_dest],
                }
            }
            "return" => InstructionData::Return {
                value: self.use_value(st)?,
            },
            _ => return Err(self.error_at(op_tok, format!("unknown instruction `{op}`"))),
        })
    }
}

/// The number in an entity name (`v12` with prefix `v` is 12); `None` when the name is not
/// the prefix followed by a canonical decimal number.
fn entity_number(s: &str, prefix: &str) -> Option<u32> {
    let digits = s.strip_prefix(prefix)?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    // Too many digits for a u32 still names an entity, just an invalid one; saturate so that
    // the caller reports it as out of range.
    Some(digits.parse::<u32>().unwrap_or(u32::MAX))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Int(v) => format!("`{v}`"),
        Tok::Str(_) => "a string".to_string(),
        Tok::FuncName(n) => format!("`%{n}`"),
        Tok::Punct(c) => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_line_and_column() {
        let e =
            parse_function("function %f(i64) {\nblock0(v0: i64):\n    return v1\n}").unwrap_err();
        assert_eq!((e.line, e.column), (3, 12));
        assert!(e.message.contains("v1 is not defined"), "{e}");
        let e = parse_function("function %f() {\nblock0:\n  v1 = frob v0\n}").unwrap_err();
        assert_eq!((e.line, e.column), (3, 8));
        assert!(e.message.contains("unknown instruction"), "{e}");
    }

    #[test]
    fn definitions_must_be_unique() {
        let e =
            parse_function("function %f(i64) {\nblock0(v0: i64):\n v0 = iconst 1\n return v0\n}")
                .unwrap_err();
        assert!(e.message.contains("defined twice"), "{e}");
        let e = parse_function("function %f() {\nblock0:\n v0 = iconst 1\n return v0\nblock0:\n}")
            .unwrap_err();
        assert!(e.message.contains("block0 is defined twice"), "{e}");
    }

    #[test]
    fn results_must_match_the_opcode() {
        let e = parse_function("function %f() {\nblock0:\n iconst 1\n}").unwrap_err();
        assert!(e.message.contains("defines a value"), "{e}");
        let e = parse_function("function %f() {\nblock0:\n v0 = iconst 1\n v1 = return v0\n}")
            .unwrap_err();
        assert!(e.message.contains("defines no value"), "{e}");
    }

    #[test]
    fn numbers_are_range_checked() {
        for text in [
            "function %f() {\nblock0:\n v0 = iconst 18446744073709551616\n}",
            "function %f() {\nblock0:\n v0 = iconst -9223372036854775809\n}",
            "function %f() {\n ss0 = stack 4294967296\n}",
            "function %f() {\nblock0:\n v99999999999 = iconst 1\n}",
            "function %f() {\nblock0:\n v1048577 = iconst 1\n}",
        ] {
            assert!(parse_function(text).is_err(), "{text}");
        }
        let f = parse_function(
            "function %f() {\nblock0:\n v0 = iconst 0xffffffffffffffff\n return v0\n}",
        )
        .unwrap();
        assert!(crate::write::function_to_string(&f).contains("iconst -1"));
    }

    #[test]
    fn modules_check_map_and_function_references() {
        let e = parse_module("function %f() {\nblock0:\n v0 = map_ref map0\n return v0\n}")
            .unwrap_err();
        assert!(e.message.contains("map0 is not defined"), "{e}");
        let e = parse_module(
            "program fn1 \"xdp\"\nfunction %f() {\nblock0:\n v0 = iconst 0\n return v0\n}",
        )
        .unwrap_err();
        assert!(e.message.contains("fn1 is not defined"), "{e}");
        let e = parse_module("map1 = map \"m\" type 1 key 4 value 4 max 1").unwrap_err();
        assert!(e.message.contains("expected map0"), "{e}");
    }

    #[test]
    fn strings_and_names_unescape() {
        let m = parse_module(
            "line0 = \"a\\\"b.c\" 3:4 \"x\\ty\\x01\"\nmap0 = map \"m\" type 2 key 4 value 2 max 1 flags 128 data \"0aff\"\nfunction %\"odd name\"() {\nblock0:\n v0 = iconst 0\n return v0\n}",
        )
        .unwrap();
        assert_eq!(m.lines[0].file, "a\"b.c");
        assert_eq!(m.lines[0].text, "x\ty\u{1}");
        assert_eq!(m.maps[MapRef::from_u32(0)].data, Some(vec![0x0a, 0xff]));
        assert_eq!(m.maps[MapRef::from_u32(0)].flags, 128);
        assert_eq!(m.functions[FuncRef::from_u32(0)].name, "odd name");
    }

    #[test]
    fn entity_names_are_canonical() {
        assert_eq!(entity_number("v12", "v"), Some(12));
        assert_eq!(entity_number("v012", "v"), None);
        assert_eq!(entity_number("v", "v"), None);
        assert_eq!(entity_number("map_ref", "map"), None);
        assert_eq!(entity_number("block0", "block"), Some(0));
    }
}
