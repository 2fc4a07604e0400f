//! Running native objects written by `nicc compile` as real programs: link an object with the
//! C harness (`hw/harness/nicc_harness.c`) into a static executable and start it, directly
//! when it is for this machine, or under qemu-user when it is for aarch64.
//!
//! The harness forwards every runtime callback of the object to its parent over stdin and
//! stdout, so the parent decides every helper and map result with nicc's one runtime; this
//! module only finds the tools, builds the executable and starts it. The tools come from
//! Debian packages: `gcc-aarch64-linux-gnu` (the cross compiler and linker) and `qemu-user`
//! (`qemu-aarch64`); for x86-64, the host's `cc`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The C source of the harness, compiled together with each object.
pub const HARNESS_SOURCE: &str = include_str!("../harness/nicc_harness.c");

/// An architecture whose objects can be linked and run here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The name `nicc compile --target` uses.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Whether this machine runs the architecture's code itself.
    fn is_host(self) -> bool {
        match self {
            Arch::X86_64 => cfg!(target_arch = "x86_64"),
            Arch::Aarch64 => cfg!(target_arch = "aarch64"),
        }
    }
}

/// The compiler (and linker) for an architecture and what runs its executables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    pub arch: Arch,
    /// The C compiler driver, which also links.
    pub cc: String,
    /// The emulator executables run under (`qemu-aarch64`), or `None` to run them directly.
    pub runner: Option<String>,
}

/// Runs `program --version` and says what is wrong when it cannot.
fn probe(program: &str, package: &str) -> Result<(), String> {
    match Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{program} --version` failed ({s})")),
        Err(e) => Err(format!(
            "`{program}` cannot be run ({e}); install the Debian package `{package}`"
        )),
    }
}

impl Toolchain {
    /// The tools for `arch`, checked to run; the error names the missing package.
    pub fn find(arch: Arch) -> Result<Toolchain, String> {
        if arch.is_host() {
            probe("cc", "gcc")?;
            return Ok(Toolchain {
                arch,
                cc: "cc".into(),
                runner: None,
            });
        }
        match arch {
            Arch::Aarch64 => {
                probe("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")?;
                probe("qemu-aarch64", "qemu-user")?;
                Ok(Toolchain {
                    arch,
                    cc: "aarch64-linux-gnu-gcc".into(),
                    runner: Some("qemu-aarch64".into()),
                })
            }
            Arch::X86_64 => {
                probe("x86_64-linux-gnu-gcc", "gcc-x86-64-linux-gnu")?;
                probe("qemu-x86_64", "qemu-user")?;
                Ok(Toolchain {
                    arch,
                    cc: "x86_64-linux-gnu-gcc".into(),
                    runner: Some("qemu-x86_64".into()),
                })
            }
        }
    }

    /// Links `object` (written by `nicc compile`) with the harness into the static executable
    /// `exe`, compiling the harness with `header` (the object's generated header) included.
    pub fn build_harness(&self, object: &Path, header: &Path, exe: &Path) -> Result<(), String> {
        let harness = exe.with_extension("harness.o");
        self.compile_harness(header, &harness)?;
        self.link(&harness, object, exe)
    }

    /// Compiles the harness with `header` included into the object `out`. The harness
    /// depends on nothing but the header, so objects whose headers are equal can share it.
    /// Warnings are errors, so a header that C cannot use fails here.
    pub fn compile_harness(&self, header: &Path, out: &Path) -> Result<(), String> {
        let source = out.with_extension("c");
        std::fs::write(&source, HARNESS_SOURCE)
            .map_err(|e| format!("cannot write {}: {e}", source.display()))?;
        self.run_cc(
            &[
                "-std=gnu11".as_ref(),
                "-O2".as_ref(),
                "-Wall".as_ref(),
                "-Werror".as_ref(),
                "-c".as_ref(),
                "-include".as_ref(),
                header.as_os_str(),
                source.as_os_str(),
                "-o".as_ref(),
                out.as_os_str(),
            ],
            "compile the harness",
        )
    }

    /// Links a compiled harness and `object` into the static executable `exe`.
    pub fn link(&self, harness: &Path, object: &Path, exe: &Path) -> Result<(), String> {
        self.run_cc(
            &[
                "-static".as_ref(),
                harness.as_os_str(),
                object.as_os_str(),
                "-o".as_ref(),
                exe.as_os_str(),
            ],
            &format!("link {} with the harness", object.display()),
        )
    }

    fn run_cc(&self, args: &[&std::ffi::OsStr], what: &str) -> Result<(), String> {
        let out = Command::new(&self.cc)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.cc))?;
        if !out.status.success() {
            return Err(format!(
                "{} could not {what}:\n{}",
                self.cc,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// The command that runs executable `exe` (under the emulator when there is one), with
    /// stdin and stdout piped for the harness protocol and stderr inherited.
    pub fn command(&self, exe: &Path) -> Command {
        let mut cmd = match &self.runner {
            Some(r) => {
                let mut c = Command::new(r);
                c.arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd
    }
}

/// A fresh directory under the system's temporary directory for build products.
pub fn scratch_dir(tag: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("nicc-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}
