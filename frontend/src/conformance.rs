//! Reads the `.data` test files of the bpf_conformance suite, so that nicc's engines can be
//! checked against the same cases as every other BPF runtime.
//!
//! A file is a series of sections, each opened by a `-- name` line: `asm` (the program in the
//! conformance syntax, see [`crate::asm`]), `raw` (the program as slot words, `0x...` one a
//! line, or as eight hex bytes a line), `mem` (hex bytes of the memory the program gets in
//! `r1`), `result` (the expected `r0`), `error` (the expected failure, possibly empty), `c`
//! (the C source the program came from) and `no register offset` (a note that the test cannot
//! run with the memory length in `r2`). Lines starting with `#` before the first section are
//! comments. A section name the suite does not define is kept in
//! [`ConformanceTest::unknown_sections`] and makes [`program_of`] fail, since the runner
//! rejects such a file.

use crate::asm::assemble;
use crate::insn::RawInsn;
use std::path::Path;

/// One conformance test file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConformanceTest {
    /// The file name without its `.data` extension.
    pub name: String,
    /// The `-- asm` section, verbatim.
    pub asm: Option<String>,
    /// The `-- raw` section as little-endian slot words.
    pub raw: Option<Vec<u64>>,
    /// The `-- mem` section's bytes (empty when absent).
    pub mem: Vec<u8>,
    /// The expected return value.
    pub result: Option<u64>,
    /// The expected error text; `Some("")` when the section is present but empty.
    pub error: Option<String>,
    /// The `-- c` section, verbatim.
    pub c: Option<String>,
    /// The `-- no register offset` section: present when the memory length must not be passed
    /// in `r2`; its text is the reason, possibly empty.
    pub no_register_offset: Option<String>,
    /// Sections the suite does not define, as (line number, header text).
    pub unknown_sections: Vec<(usize, String)>,
    /// The comment lines before the first section, without their `#`.
    pub comments: Vec<String>,
}

/// Why a conformance file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name}: line {line}: {message}")]
pub struct ParseError {
    pub name: String,
    pub line: usize,
    pub message: String,
}

fn hex_byte(token: &str) -> Option<u8> {
    let t = token
        .strip_prefix("0x")
        .or_else(|| token.strip_prefix("0X"))
        .unwrap_or(token);
    if t.is_empty() || t.len() > 2 {
        return None;
    }
    u8::from_str_radix(t, 16).ok()
}

fn parse_u64(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => match t.strip_prefix('-') {
            Some(dec) => dec.parse::<u64>().ok().map(|v| v.wrapping_neg()),
            None => t.parse::<u64>().ok(),
        },
    }
}

/// A section as found in the file: header line number, name, and numbered body lines.
type RawSection<'a> = (usize, String, Vec<(usize, &'a str)>);

/// Parses the text of a `.data` file. `name` becomes [`ConformanceTest::name`].
pub fn parse(name: &str, text: &str) -> Result<ConformanceTest, ParseError> {
    let mut test = ConformanceTest {
        name: name.to_string(),
        ..ConformanceTest::default()
    };
    // The sections in order, with the line number of each body line.
    let mut sections: Vec<RawSection> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if let Some(header) = line.strip_prefix("--") {
            sections.push((number, header.trim().to_string(), Vec::new()));
        } else if let Some((_, _, body)) = sections.last_mut() {
            body.push((number, line));
        } else if let Some(comment) = line.trim().strip_prefix('#') {
            test.comments.push(comment.trim().to_string());
        } else if !line.trim().is_empty() {
            return Err(ParseError {
                name: name.to_string(),
                line: number,
                message: format!("text before the first `-- section` line: `{line}`"),
            });
        }
    }
    let err = |line: usize, message: String| ParseError {
        name: name.to_string(),
        line,
        message,
    };
    for (header_line, header, body) in sections {
        let joined = || {
            let mut s: String = body.iter().map(|(_, l)| format!("{l}\n")).collect();
            // Trailing blank lines are layout, not content.
            while s.ends_with("\n\n") {
                s.pop();
            }
            s
        };
        let content = || {
            body.iter()
                .map(|(n, l)| (*n, l.split('#').next().unwrap_or("").trim()))
                .filter(|(_, l)| !l.is_empty())
        };
        match header.as_str() {
            "asm" => test.asm = Some(joined()),
            "c" => test.c = Some(joined()),
            "error" => test.error = Some(joined().trim().to_string()),
            "no register offset" => test.no_register_offset = Some(joined().trim().to_string()),
            "result" => {
                let mut values = content();
                let Some((n, value)) = values.next() else {
                    return Err(err(header_line, "empty `-- result` section".into()));
                };
                test.result = Some(
                    parse_u64(value)
                        .ok_or_else(|| err(n, format!("`{value}` is not a result value")))?,
                );
                if let Some((n, extra)) = values.next() {
                    return Err(err(n, format!("unexpected `{extra}` after the result")));
                }
            }
            "mem" => {
                for (n, line) in content() {
                    for token in line.split_whitespace() {
                        test.mem.push(
                            hex_byte(token)
                                .ok_or_else(|| err(n, format!("`{token}` is not a hex byte")))?,
                        );
                    }
                }
            }
            "raw" => {
                let mut words = Vec::new();
                for (n, line) in content() {
                    let tokens: Vec<&str> = line.split_whitespace().collect();
                    let word = if tokens.len() == 1 {
                        parse_u64(tokens[0])
                    } else if tokens.len() == 8 {
                        let bytes: Option<Vec<u8>> = tokens.iter().map(|t| hex_byte(t)).collect();
                        bytes.map(|b| {
                            let mut a = [0u8; 8];
                            a.copy_from_slice(&b);
                            u64::from_le_bytes(a)
                        })
                    } else {
                        None
                    };
                    words.push(word.ok_or_else(|| {
                        err(
                            n,
                            format!("`{line}` is neither a 0x slot word nor eight hex bytes"),
                        )
                    })?);
                }
                test.raw = Some(words);
            }
            _ => test
                .unknown_sections
                .push((header_line, format!("-- {header}"))),
        }
    }
    Ok(test)
}

/// Reads and parses a `.data` file.
pub fn read(path: &Path) -> Result<ConformanceTest, ParseError> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = std::fs::read_to_string(path).map_err(|e| ParseError {
        name: name.clone(),
        line: 0,
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    parse(&name, &text)
}

/// The program of a test: the `-- raw` words when present (they are what the runner loads),
/// otherwise the assembled `-- asm` section.
pub fn program_of(test: &ConformanceTest) -> Result<Vec<RawInsn>, String> {
    if let Some((line, header)) = test.unknown_sections.first() {
        return Err(format!(
            "{}: line {line}: unknown directive `{header}`",
            test.name
        ));
    }
    if let Some(words) = &test.raw {
        return Ok(words.iter().map(|w| RawInsn::from_word(*w)).collect());
    }
    match &test.asm {
        Some(asm) => assemble(asm).map_err(|e| {
            // Lines are counted within the asm section; say so.
            format!("{}: asm line {}: {}", test.name, e.line, e.message)
        }),
        None => Err(format!(
            "{}: the test has neither `-- asm` nor `-- raw`",
            test.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_kind_of_section() {
        let text = "# Copyright\n-- asm\nmov %r0, 1\nexit\n-- raw\n0x00000001000000b7\n\
                    95 00 00 00 00 00 00 00\n-- mem\naa BB\n0c\n-- result\n0x1\n-- error\n\n\
                    -- no register offset\ncall instruction\n-- c\nint f() { return 1; }\n";
        let t = parse("t", text).unwrap();
        assert_eq!(t.asm.as_deref(), Some("mov %r0, 1\nexit\n"));
        assert_eq!(t.raw, Some(vec![0x0000_0001_0000_00b7, 0x95]));
        assert_eq!(t.mem, vec![0xaa, 0xbb, 0x0c]);
        assert_eq!(t.result, Some(1));
        assert_eq!(t.error.as_deref(), Some(""));
        assert_eq!(t.no_register_offset.as_deref(), Some("call instruction"));
        assert_eq!(t.c.as_deref(), Some("int f() { return 1; }\n"));
        assert_eq!(t.comments, vec!["Copyright".to_string()]);
        assert_eq!(program_of(&t).unwrap().len(), 2);
    }

    #[test]
    fn unknown_sections_make_the_program_fail() {
        let t = parse(
            "t",
            "-- asm\n-- Unknown directive\n-- error\nInvalid register\n",
        )
        .unwrap();
        assert_eq!(
            t.unknown_sections,
            vec![(2, "-- Unknown directive".to_string())]
        );
        assert!(program_of(&t).unwrap_err().contains("unknown directive"));
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        assert!(parse("t", "-- result\nzz\n").is_err());
        assert!(parse("t", "-- mem\n1ff\n").is_err());
        assert!(parse("t", "-- raw\n01 02\n").is_err());
        assert!(parse("t", "stray\n-- asm\n").is_err());
    }
}
