//! The errors of the kernel oracle. A refused program carries the verifier's log, because the
//! log is the kernel's reason and nothing else explains a refusal; a packet the test-run
//! facility will not take is its own variant, so differential tests can count it apart from
//! real failures.

use frontend::Diagnostic;
use std::io;

/// Why talking to the kernel failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// `bpf()` is not usable here at all.
    #[error("the kernel's bpf() is not available: {0}")]
    Unavailable(String),

    /// The verifier (or the loader before it) refused a program.
    #[error("the kernel refused program `{program}` ({}){}", errno_text(.source), last_line(.log))]
    ProgramRefused {
        program: String,
        source: io::Error,
        /// The tail of the verifier log (the kernel keeps the end when the log overflows).
        log: String,
    },

    /// A map could not be created.
    #[error("cannot create map `{map}` ({}): {hint}", errno_text(.source))]
    MapCreate {
        map: String,
        source: io::Error,
        hint: String,
    },

    /// `BPF_PROG_TEST_RUN` does not take this packet (before any program runs).
    #[error("the kernel's XDP test run does not take a {len}-byte packet: {reason}")]
    PacketRejected { len: usize, reason: String },

    /// Any other failing system call, with what nicc was doing.
    #[error("{what} failed ({})", errno_text(.source))]
    Syscall { what: String, source: io::Error },

    /// A request nicc can tell is wrong without asking the kernel.
    #[error("{0}")]
    Invalid(String),
}

impl KernelError {
    /// The verifier log of a refused program.
    pub fn verifier_log(&self) -> Option<&str> {
        match self {
            KernelError::ProgramRefused { log, .. } => Some(log),
            _ => None,
        }
    }

    /// The line of the verifier log that states the reason: the last one that is not part of
    /// the statistics the verifier prints at the end.
    pub fn verifier_reason(&self) -> Option<&str> {
        self.verifier_log().and_then(reason_line)
    }

    /// The last `lines` lines of the verifier log of a refused program, for messages that
    /// need more than the reason line.
    pub fn verifier_log_tail(&self, lines: usize) -> Option<String> {
        let log = self.verifier_log()?;
        let all: Vec<&str> = log.lines().collect();
        Some(all[all.len().saturating_sub(lines)..].join("\n"))
    }

    pub(crate) fn syscall(what: impl Into<String>, source: io::Error) -> KernelError {
        KernelError::Syscall {
            what: what.into(),
            source,
        }
    }
}

/// A kernel error as a compiler-style diagnostic, for the command line.
impl From<&KernelError> for Diagnostic {
    fn from(e: &KernelError) -> Diagnostic {
        match e {
            KernelError::ProgramRefused { program, .. } => Diagnostic::new(format!(
                "the kernel verifier refused the program: {}",
                e.verifier_reason().unwrap_or("(no verifier log)")
            ))
            .program(program.clone()),
            KernelError::MapCreate { map, source, hint } => Diagnostic::new(format!(
                "the kernel would not create map `{map}` ({})",
                errno_text(source)
            ))
            .help(hint.clone()),
            KernelError::Unavailable(_) => Diagnostic::new(e.to_string())
                .help("run as root, or give the process CAP_BPF and CAP_NET_ADMIN"),
            other => Diagnostic::new(other.to_string()),
        }
    }
}

/// `EACCES: Permission denied` style text for an OS error.
pub(crate) fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{}: {}", errno_name(code), strip_os_suffix(e)),
        None => e.to_string(),
    }
}

fn strip_os_suffix(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The symbolic names of the errno values `bpf()` returns.
pub(crate) fn errno_name(code: i32) -> String {
    let name = match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::EPROTO => "EPROTO",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        // The kernel-internal ENOTSUPP, which some bpf() paths leak to user space.
        524 => "ENOTSUPP",
        _ => return format!("errno {code}"),
    };
    name.to_string()
}

/// The last log line that is neither empty nor one of the verifier's closing statistics
/// (`processed N insns ...`, `verification time ...`, `stack depth ...`). Some messages lack
/// their newline, so the statistics can also start in the middle of the reason's line.
fn reason_line(log: &str) -> Option<&str> {
    const STATS: [&str; 3] = ["processed ", "verification time", "stack depth"];
    log.lines()
        .rev()
        .map(|l| match l.find("processed ") {
            Some(i) if i > 0 && l[i..].contains(" insns (limit ") => l[..i].trim(),
            _ => l.trim(),
        })
        .find(|l| !l.is_empty() && !STATS.iter().any(|s| l.starts_with(s)))
}

fn last_line(log: &str) -> String {
    match reason_line(log) {
        Some(line) => format!(": {line}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::reason_line;

    #[test]
    fn the_reason_is_the_line_before_the_statistics() {
        let log = "0: R1=ctx() R10=fp0\n0: (bf) r0 = r2\nR2 !read_ok\n\
                   processed 1 insns (limit 1000000) max_states_per_insn 0\n";
        assert_eq!(reason_line(log), Some("R2 !read_ok"));
        let glued = "3: (85) call bpf_tail_call#12\nexpected prog array map for tail \
                     callprocessed 3 insns (limit 1000000) max_states_per_insn 0\n";
        assert_eq!(
            reason_line(glued),
            Some("expected prog array map for tail call")
        );
        assert_eq!(reason_line(""), None);
    }
}
