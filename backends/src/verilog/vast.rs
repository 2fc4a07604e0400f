//! A small Verilog-2001 syntax tree and its printer: everything the pipeline backend emits is
//! built as a tree and printed here, never glued together from strings, so that precedence,
//! widths of literals and declarations are decided in one place (Calyx's approach).
//!
//! The tree only allows what the backend needs, and only in legal forms: part selects apply to
//! names (Verilog cannot slice an expression), every binary and conditional expression is
//! printed in parentheses, and literals carry their width.

use std::fmt::Write;

/// A unary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `~`
    Not,
    /// `!`
    LogicNot,
    /// `-`
    Neg,
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    /// `>>>`, arithmetic when the left operand is signed.
    Ashr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LogicAnd,
    LogicOr,
}

impl BinOp {
    fn text(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::And => "&",
            BinOp::Or => "|",
            BinOp::Xor => "^",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Ashr => ">>>",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::LogicAnd => "&&",
            BinOp::LogicOr => "||",
        }
    }
}

/// An expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Ident(String),
    /// A sized literal, printed in hexadecimal (`64'h2a`); widths over 64 bits hold `value`
    /// zero-extended.
    Lit {
        width: u32,
        value: u64,
    },
    /// `name[hi:lo]`.
    Slice {
        name: String,
        hi: u32,
        lo: u32,
    },
    /// `name[index]`: a bit of a vector or a word of a memory.
    Index {
        name: String,
        index: Box<Expr>,
    },
    /// `name[base +: width]`.
    PartSelect {
        name: String,
        base: Box<Expr>,
        width: u32,
    },
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `cond ? a : b`.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `{a, b, ...}`, most significant first.
    Concat(Vec<Expr>),
    /// `{n{e}}`.
    Repeat(u32, Box<Expr>),
    /// `$signed(e)`.
    Signed(Box<Expr>),
    /// An unsized decimal integer (`42`), for arithmetic on parameters.
    Int(u64),
    /// `name[base +: width]` with a width given by an expression of parameters.
    Part {
        name: String,
        base: Box<Expr>,
        width: Box<Expr>,
    },
    /// `{count{value}}` with a count given by an expression of parameters.
    Replicate(Box<Expr>, Box<Expr>),
}

impl Expr {
    pub fn ident(name: impl Into<String>) -> Expr {
        Expr::Ident(name.into())
    }

    pub fn lit(width: u32, value: u64) -> Expr {
        Expr::Lit { width, value }
    }

    pub fn slice(name: impl Into<String>, hi: u32, lo: u32) -> Expr {
        Expr::Slice {
            name: name.into(),
            hi,
            lo,
        }
    }

    pub fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
        Expr::Binary(op, Box::new(a), Box::new(b))
    }

    pub fn cond(c: Expr, a: Expr, b: Expr) -> Expr {
        Expr::Cond(Box::new(c), Box::new(a), Box::new(b))
    }

    pub fn bit_not(a: Expr) -> Expr {
        Expr::Unary(UnOp::Not, Box::new(a))
    }

    pub fn signed(a: Expr) -> Expr {
        Expr::Signed(Box::new(a))
    }

    pub fn repeat(n: u32, a: Expr) -> Expr {
        Expr::Repeat(n, Box::new(a))
    }

    pub fn int(v: u64) -> Expr {
        Expr::Int(v)
    }

    /// `name[base +: width]` for any expressions of `base` and `width`.
    pub fn part(name: impl Into<String>, base: Expr, width: Expr) -> Expr {
        Expr::Part {
            name: name.into(),
            base: Box::new(base),
            width: Box::new(width),
        }
    }

    pub fn replicate(count: Expr, a: Expr) -> Expr {
        Expr::Replicate(Box::new(count), Box::new(a))
    }

    pub fn index(name: impl Into<String>, index: Expr) -> Expr {
        Expr::Index {
            name: name.into(),
            index: Box::new(index),
        }
    }
}

/// The width of a declaration or port: a number of bits, or an expression of parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Width {
    Bits(u32),
    /// Printed as `[expr-1:0]`.
    Expr(Expr),
}

impl From<u32> for Width {
    fn from(bits: u32) -> Width {
        Width::Bits(bits)
    }
}

impl From<Expr> for Width {
    fn from(e: Expr) -> Width {
        Width::Expr(e)
    }
}

/// A statement inside an `always` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    /// `lhs <= rhs;`
    NonBlocking(Expr, Expr),
    If(Expr, Vec<Stmt>, Vec<Stmt>),
}

/// A port direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Input,
    Output,
}

/// A module port; outputs driven from an `always` block are `reg`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub dir: Dir,
    pub name: String,
    pub width: Width,
}

impl Port {
    pub fn new(dir: Dir, name: impl Into<String>, width: impl Into<Width>) -> Port {
        Port {
            dir,
            name: name.into(),
            width: width.into(),
        }
    }
}

/// A module item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Comment(String),
    Wire {
        name: String,
        width: u32,
    },
    Reg {
        name: String,
        width: u32,
    },
    /// A wire (`reg: false`) or register whose width is an expression of parameters.
    Decl {
        reg: bool,
        name: String,
        width: Width,
    },
    /// `localparam name = value;`
    LocalParam {
        name: String,
        value: Expr,
    },
    /// `reg [width-1:0] name [0:depth-1];` with both given by expressions of parameters.
    MemoryDecl {
        name: String,
        width: Width,
        depth: Expr,
    },
    /// Memory `name` of `depth` words, all zero at the start of simulation (and in the FPGA's
    /// configuration): `integer i; initial for (i = 0; i < depth; i = i + 1) name[i] = 0;`
    ZeroMemory {
        name: String,
        depth: u32,
    },
    /// `genvar var; generate for (var = 0; var < count; var = var + 1) begin : label ... end endgenerate`
    GenerateFor {
        var: String,
        count: Expr,
        label: String,
        items: Vec<Item>,
    },
    /// `reg [width-1:0] name [0:depth-1];`
    Memory {
        name: String,
        width: u32,
        depth: u32,
    },
    /// `assign lhs = rhs;`
    Assign(Expr, Expr),
    /// `always @(posedge clock) begin ... end`
    AlwaysPosedge {
        clock: String,
        body: Vec<Stmt>,
    },
    /// An instance of another module with named connections.
    Instance {
        module: String,
        name: String,
        params: Vec<(String, Expr)>,
        connections: Vec<(String, Expr)>,
    },
}

/// A module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    /// Lines of the header comment.
    pub doc: Vec<String>,
    /// Parameters with their defaults: `#(parameter NAME = value, ...)`.
    pub params: Vec<(String, Expr)>,
    pub ports: Vec<Port>,
    pub items: Vec<Item>,
}

fn range(width: u32) -> String {
    if width <= 1 {
        String::new()
    } else {
        format!("[{}:0] ", width - 1)
    }
}

fn range_of(width: &Width) -> String {
    match width {
        Width::Bits(b) => range(*b),
        Width::Expr(e) => format!("[{}-1:0] ", expr_to_string(e)),
    }
}

/// Prints an expression.
pub fn expr_to_string(e: &Expr) -> String {
    let mut s = String::new();
    write_expr(&mut s, e);
    s
}

fn write_expr(out: &mut String, e: &Expr) {
    match e {
        Expr::Ident(n) => out.push_str(n),
        Expr::Lit { width, value } => {
            let _ = write!(out, "{}'h{:x}", width.max(&1), value);
        }
        Expr::Slice { name, hi, lo } => {
            if hi == lo {
                let _ = write!(out, "{name}[{hi}]");
            } else {
                let _ = write!(out, "{name}[{hi}:{lo}]");
            }
        }
        Expr::Index { name, index } => {
            let _ = write!(out, "{name}[");
            write_expr(out, index);
            out.push(']');
        }
        Expr::PartSelect { name, base, width } => {
            let _ = write!(out, "{name}[");
            write_expr(out, base);
            let _ = write!(out, " +: {width}]");
        }
        Expr::Unary(op, a) => {
            out.push('(');
            out.push_str(match op {
                UnOp::Not => "~",
                UnOp::LogicNot => "!",
                UnOp::Neg => "-",
            });
            write_expr(out, a);
            out.push(')');
        }
        Expr::Binary(op, a, b) => {
            out.push('(');
            write_expr(out, a);
            let _ = write!(out, " {} ", op.text());
            write_expr(out, b);
            out.push(')');
        }
        Expr::Cond(c, a, b) => {
            out.push('(');
            write_expr(out, c);
            out.push_str(" ? ");
            write_expr(out, a);
            out.push_str(" : ");
            write_expr(out, b);
            out.push(')');
        }
        Expr::Concat(parts) => {
            out.push('{');
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, p);
            }
            out.push('}');
        }
        Expr::Repeat(n, a) => {
            let _ = write!(out, "{{{n}{{");
            write_expr(out, a);
            out.push_str("}}");
        }
        Expr::Signed(a) => {
            out.push_str("$signed(");
            write_expr(out, a);
            out.push(')');
        }
        Expr::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Expr::Part { name, base, width } => {
            let _ = write!(out, "{name}[");
            write_expr(out, base);
            out.push_str(" +: ");
            write_expr(out, width);
            out.push(']');
        }
        Expr::Replicate(n, a) => {
            out.push_str("{(");
            write_expr(out, n);
            out.push_str("){");
            write_expr(out, a);
            out.push_str("}}");
        }
    }
}

fn write_stmt(out: &mut String, s: &Stmt, indent: usize) {
    let pad = "  ".repeat(indent);
    match s {
        Stmt::NonBlocking(l, r) => {
            let _ = writeln!(out, "{pad}{} <= {};", expr_to_string(l), expr_to_string(r));
        }
        Stmt::If(c, t, f) => {
            let _ = writeln!(out, "{pad}if ({}) begin", expr_to_string(c));
            for s in t {
                write_stmt(out, s, indent + 1);
            }
            if f.is_empty() {
                let _ = writeln!(out, "{pad}end");
            } else {
                let _ = writeln!(out, "{pad}end else begin");
                for s in f {
                    write_stmt(out, s, indent + 1);
                }
                let _ = writeln!(out, "{pad}end");
            }
        }
    }
}

/// Prints a module.
pub fn module_to_string(m: &Module) -> String {
    let mut out = String::new();
    for line in &m.doc {
        let _ = writeln!(out, "// {line}");
    }
    if m.params.is_empty() {
        let _ = writeln!(out, "module {} (", m.name);
    } else {
        let _ = writeln!(out, "module {} #(", m.name);
        for (i, (name, value)) in m.params.iter().enumerate() {
            let comma = if i + 1 < m.params.len() { "," } else { "" };
            let _ = writeln!(out, "  parameter {name} = {}{comma}", expr_to_string(value));
        }
        let _ = writeln!(out, ") (");
    }
    for (i, p) in m.ports.iter().enumerate() {
        let dir = match p.dir {
            Dir::Input => "input  wire",
            Dir::Output => "output wire",
        };
        let comma = if i + 1 < m.ports.len() { "," } else { "" };
        let _ = writeln!(out, "  {dir} {}{}{comma}", range_of(&p.width), p.name);
    }
    let _ = writeln!(out, ");");
    write_items(&mut out, &m.items, 1);
    let _ = writeln!(out, "endmodule");
    out
}

fn write_items(out: &mut String, items: &[Item], indent: usize) {
    let pad = "  ".repeat(indent);
    for item in items {
        match item {
            Item::Decl { reg, name, width } => {
                let kind = if *reg { "reg" } else { "wire" };
                let _ = writeln!(out, "{pad}{kind} {}{name};", range_of(width));
            }
            Item::ZeroMemory { name, depth } => {
                let _ = writeln!(out, "{pad}integer {name}_init;");
                let _ = writeln!(
                    out,
                    "{pad}initial for ({name}_init = 0; {name}_init < {depth}; {name}_init = {name}_init + 1) {name}[{name}_init] = 0;"
                );
            }
            Item::LocalParam { name, value } => {
                let _ = writeln!(out, "{pad}localparam {name} = {};", expr_to_string(value));
            }
            Item::MemoryDecl { name, width, depth } => {
                let _ = writeln!(
                    out,
                    "{pad}reg {}{name} [0:{}-1];",
                    range_of(width),
                    expr_to_string(depth)
                );
            }
            Item::GenerateFor {
                var,
                count,
                label,
                items,
            } => {
                let _ = writeln!(out, "{pad}genvar {var};");
                let _ = writeln!(out, "{pad}generate");
                let _ = writeln!(
                    out,
                    "{pad}  for ({var} = 0; {var} < {}; {var} = {var} + 1) begin : {label}",
                    expr_to_string(count)
                );
                write_items(out, items, indent + 2);
                let _ = writeln!(out, "{pad}  end");
                let _ = writeln!(out, "{pad}endgenerate");
            }
            Item::Comment(c) => {
                let _ = writeln!(out, "{pad}// {c}");
            }
            Item::Wire { name, width } => {
                let _ = writeln!(out, "{pad}wire {}{name};", range(*width));
            }
            Item::Reg { name, width } => {
                let _ = writeln!(out, "{pad}reg {}{name};", range(*width));
            }
            Item::Memory { name, width, depth } => {
                let _ = writeln!(
                    out,
                    "{pad}reg {}{name} [0:{}];",
                    range(*width),
                    depth.saturating_sub(1)
                );
            }
            Item::Assign(l, r) => {
                let _ = writeln!(
                    out,
                    "{pad}assign {} = {};",
                    expr_to_string(l),
                    expr_to_string(r)
                );
            }
            Item::AlwaysPosedge { clock, body } => {
                let _ = writeln!(out, "{pad}always @(posedge {clock}) begin");
                for s in body {
                    write_stmt(out, s, indent + 1);
                }
                let _ = writeln!(out, "{pad}end");
            }
            Item::Instance {
                module,
                name,
                params,
                connections,
            } => {
                if params.is_empty() {
                    let _ = writeln!(out, "{pad}{module} {name} (");
                } else {
                    let _ = writeln!(out, "{pad}{module} #(");
                    for (i, (p, v)) in params.iter().enumerate() {
                        let comma = if i + 1 < params.len() { "," } else { "" };
                        let _ = writeln!(out, "{pad}  .{p}({}){comma}", expr_to_string(v));
                    }
                    let _ = writeln!(out, "{pad}) {name} (");
                }
                for (i, (p, v)) in connections.iter().enumerate() {
                    let comma = if i + 1 < connections.len() { "," } else { "" };
                    let _ = writeln!(out, "{pad}  .{p}({}){comma}", expr_to_string(v));
                }
                let _ = writeln!(out, "{pad});");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_print_fully_parenthesized_with_sized_literals() {
        let e = Expr::cond(
            Expr::bin(BinOp::Lt, Expr::ident("a"), Expr::lit(64, 10)),
            Expr::Concat(vec![Expr::lit(32, 0), Expr::slice("b", 31, 0)]),
            Expr::signed(Expr::ident("c")),
        );
        assert_eq!(
            expr_to_string(&e),
            "((a < 64'ha) ? {32'h0, b[31:0]} : $signed(c))"
        );
    }

    #[test]
    fn a_module_prints_ports_declarations_and_always_blocks() {
        let m = Module {
            name: "m".into(),
            doc: vec!["doc".into()],
            params: vec![],
            ports: vec![
                Port::new(Dir::Input, "clk", 1),
                Port::new(Dir::Output, "q", 8),
            ],
            items: vec![
                Item::Reg {
                    name: "r".into(),
                    width: 8,
                },
                Item::Assign(Expr::ident("q"), Expr::ident("r")),
                Item::AlwaysPosedge {
                    clock: "clk".into(),
                    body: vec![Stmt::NonBlocking(
                        Expr::ident("r"),
                        Expr::bin(BinOp::Add, Expr::ident("r"), Expr::lit(8, 1)),
                    )],
                },
            ],
        };
        assert_eq!(
            module_to_string(&m),
            "// doc\nmodule m (\n  input  wire clk,\n  output wire [7:0] q\n);\n  reg [7:0] r;\n  assign q = r;\n  always @(posedge clk) begin\n    r <= (r + 8'h1);\n  end\nendmodule\n"
        );
    }
}
