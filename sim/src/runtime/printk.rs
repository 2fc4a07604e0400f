//! `bpf_trace_printk` formatting, following the kernel's `bpf_bprintf_prepare` rules: at most
//! three conversions, only `%d %i %u %x %X` (with `l` or `ll`), `%c`, `%s`, `%p` and its
//! `%pK %px %pI4 %pi4 %pI6 %pi6 %ps %pS %pB` forms, optional `0 + - space` flags and a width,
//! and no precision. A format the kernel would refuse makes the helper return `-EINVAL` and
//! print nothing. Integer conversions without `l` print the low 32 bits, as the kernel casts
//! them. Plain `%p` in the kernel prints a hashed pointer that no simulation can reproduce;
//! here it prints the simulated address in hex.

/// A pointer argument the formatter must dereference (`%s`, `%pI4`...).
pub trait Deref {
    /// Reads up to `len` bytes at `addr`, or `None` if the address is not readable.
    fn read(&mut self, addr: u64, len: usize) -> Option<Vec<u8>>;
}

/// The kernel's output buffer size (`MAX_BPF_TRACE_PRINTK_SIZE`... the helper's 1 KiB buffer).
const BUF_SIZE: usize = 1024;

fn pad(s: String, width: usize, left: bool, zero: bool) -> String {
    if s.len() >= width {
        return s;
    }
    let fill = width - s.len();
    if left {
        format!("{s}{}", " ".repeat(fill))
    } else if zero {
        // Zero padding goes after a sign.
        let (sign, digits) = match s.strip_prefix('-').or_else(|| s.strip_prefix('+')) {
            Some(rest) => (&s[..1], rest.to_string()),
            None => ("", s.clone()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

/// The kernel would refuse the format (the helper returns `-EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused;

/// Formats `fmt` (the bytes up to its NUL) with `args`; `Err` when the kernel would refuse it.
pub fn format(fmt: &[u8], args: &[u64], mem: &mut dyn Deref) -> Result<String, Refused> {
    let end = fmt.iter().position(|b| *b == 0).ok_or(Refused)?;
    let fmt = &fmt[..end];
    let mut out = String::new();
    let mut next_arg = 0usize;
    let mut i = 0usize;
    let at = |i: usize| fmt.get(i).copied().unwrap_or(0);
    while i < fmt.len() {
        let c = fmt[i];
        if !(c.is_ascii_graphic() || c.is_ascii_whitespace()) {
            return Err(Refused);
        }
        if c != b'%' {
            out.push(c as char);
            i += 1;
            continue;
        }
        if at(i + 1) == b'%' {
            out.push('%');
            i += 2;
            continue;
        }
        if next_arg >= args.len() {
            return Err(Refused);
        }
        let arg = args[next_arg];
        next_arg += 1;
        i += 1;
        let (mut left, mut zero, mut plus, mut space) = (false, false, false, false);
        while matches!(at(i), b'0' | b'+' | b'-' | b' ') {
            match at(i) {
                b'0' => zero = true,
                b'+' => plus = true,
                b'-' => left = true,
                _ => space = true,
            }
            i += 1;
        }
        let mut width = 0usize;
        while at(i).is_ascii_digit() {
            width = width * 10 + (at(i) - b'0') as usize;
            i += 1;
        }
        let sign = |neg: bool, s: String| {
            if neg {
                format!("-{s}")
            } else if plus {
                format!("+{s}")
            } else if space {
                format!(" {s}")
            } else {
                s
            }
        };
        match at(i) {
            b'p' => {
                i += 1;
                let text = match at(i) {
                    b'I' | b'i' if matches!(at(i + 1), b'4' | b'6') => {
                        let v6 = at(i + 1) == b'6';
                        let colons = at(i) == b'I';
                        i += 2;
                        let n = if v6 { 16 } else { 4 };
                        match mem.read(arg, n) {
                            None => "(efault)".to_string(),
                            Some(b) if !v6 => format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]),
                            Some(b) => {
                                let groups: Vec<String> = b
                                    .chunks(2)
                                    .map(|w| format!("{:02x}{:02x}", w[0], w[1]))
                                    .collect();
                                groups.join(if colons { ":" } else { "" })
                            }
                        }
                    }
                    b'x' | b'K' | b's' | b'S' | b'B' => {
                        i += 1;
                        format!("{arg:016x}")
                    }
                    _ => format!("{arg:016x}"),
                };
                out.push_str(&pad(text, width, left, false));
            }
            b's' => {
                i += 1;
                let mut s = Vec::new();
                let mut addr = arg;
                // The kernel copies at most what is left of its scratch buffer; a bad pointer
                // prints as an empty string.
                while s.len() < BUF_SIZE {
                    match mem.read(addr, 1) {
                        Some(b) if b.first().is_some_and(|c| *c != 0) => s.push(b[0]),
                        _ => break,
                    }
                    addr = addr.wrapping_add(1);
                }
                out.push_str(&pad(
                    String::from_utf8_lossy(&s).into_owned(),
                    width,
                    left,
                    false,
                ));
            }
            b'c' => {
                i += 1;
                out.push_str(&pad(((arg as u8) as char).to_string(), width, left, false));
            }
            _ => {
                let mut long = 0;
                while at(i) == b'l' && long < 2 {
                    long += 1;
                    i += 1;
                }
                let conv = at(i);
                i += 1;
                let v = if long == 0 { arg as u32 as u64 } else { arg };
                let text = match conv {
                    b'd' | b'i' => {
                        let s = if long == 0 {
                            v as u32 as i32 as i64
                        } else {
                            v as i64
                        };
                        sign(s < 0, s.unsigned_abs().to_string())
                    }
                    b'u' => v.to_string(),
                    b'x' => format!("{v:x}"),
                    b'X' => format!("{v:X}"),
                    _ => return Err(Refused),
                };
                out.push_str(&pad(text, width, left, zero && !left));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoMem;
    impl Deref for NoMem {
        fn read(&mut self, _: u64, _: usize) -> Option<Vec<u8>> {
            None
        }
    }

    #[test]
    fn integers_and_widths() {
        let f = |s: &str, a: &[u64]| format(format!("{s}\0").as_bytes(), a, &mut NoMem);
        assert_eq!(f("x=%d", &[u64::MAX]).unwrap(), "x=-1");
        assert_eq!(f("%u", &[u64::MAX]).unwrap(), "4294967295");
        assert_eq!(f("%llu", &[u64::MAX]).unwrap(), "18446744073709551615");
        assert_eq!(f("%08x|%-4d|", &[0xbeef, 7]).unwrap(), "0000beef|7   |");
        assert_eq!(f("%lld %%", &[(-5i64) as u64]).unwrap(), "-5 %");
        assert!(f("%d %d %d %d", &[1, 2, 3]).is_err());
        assert!(f("%f", &[1]).is_err());
        assert!(format(b"no nul", &[], &mut NoMem).is_err());
    }
}
