//! The `nicc` command line: one subcommand per user job.

use clap::{Parser, Subcommand};
use nicc::commands::{
    self, bench::BenchArgs, bench_opt::BenchOptArgs, build::BuildArgs, check::CheckArgs,
    compile::CompileArgs, diff_kernel::DiffKernelArgs, ir::IrArgs, load::LoadArgs, opt::OptArgs,
    run::RunArgs, sim::SimArgs, synth::SynthArgs,
};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "nicc", version, about = "An eBPF/XDP offload compiler")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Disassemble every code section of an object, in llvm-objdump's syntax.
    Disasm {
        /// The BPF ELF object.
        object: PathBuf,
    },
    /// List the programs and maps of an object.
    Info {
        /// The BPF ELF object.
        object: PathBuf,
    },
    /// Print the IR of an object's programs, as lifted or after a pass (`--after PASS`).
    Ir(IrArgs),
    /// List the optimization passes and pipelines.
    Passes,
    /// Lift, optimize and re-emit an object as BPF that the kernel still accepts.
    Opt(OptArgs),
    /// For every program of a folder of objects: instructions before and after `nicc opt`,
    /// the time taken, kernel verifier acceptance, and kernel-versus-kernel results (root).
    BenchOpt(BenchOptArgs),
    /// Compile an object for a target: x86_64 or aarch64 objects, NFP microcode, Verilog.
    Compile(CompileArgs),
    /// Run an XDP program on the packets of a capture (JIT, interpreter or IR executor).
    Run(RunArgs),
    /// Run an XDP program on a cycle-accurate model of a hardware target.
    Sim(SimArgs),
    /// Say which programs (and which parts of them) fit a hardware target.
    Check(CheckArgs),
    /// Synthesize a program's Verilog pipeline with Yosys: resources, logic depth, clock.
    Synth(SynthArgs),
    /// Nanoseconds per packet of every engine, and of the kernel's JIT, on the same packets.
    Bench(BenchArgs),
    /// Compile every program of a folder of objects for several targets, in parallel: a
    /// table, a JSON report, and an exit status a build pipeline can act on.
    Build(BuildArgs),
    /// Attach an XDP program to a network interface, detach it, read and write its maps.
    Load(LoadArgs),
    /// Compare the interpreter with the running kernel on the same packets and maps.
    DiffKernel(DiffKernelArgs),
    /// Act as a plugin of the bpf_conformance runner: program hex on standard input, memory hex
    /// as the first argument, r0 in hex on standard output.
    ConformancePlugin {
        /// The memory handed to the program in r1 (length in r2), as hex bytes.
        memory: Option<String>,
        /// Plugin options the runner passes through; none are needed.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        options: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(text) => {
            // A reader that stops early (`nicc disasm x.o | head`) closes the pipe; that is
            // not an error worth a message, and certainly not a panic.
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|_| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the output: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(message) => {
            eprintln!("{}", message.trim_end());
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> Result<String, String> {
    match command {
        Command::Disasm { object } => commands::disasm::disasm(&object),
        Command::Info { object } => commands::info::info(&object),
        Command::Ir(args) => commands::ir::ir(&args),
        Command::Passes => Ok(commands::ir::describe_passes()),
        Command::Opt(args) => commands::opt::opt(&args),
        Command::BenchOpt(args) => commands::bench_opt::bench_opt(&args),
        Command::Compile(args) => commands::compile::compile(&args),
        Command::Sim(args) => commands::sim::sim(&args),
        Command::Check(args) => commands::check::check(&args),
        Command::Synth(args) => commands::synth::synth(&args),
        Command::Bench(args) => commands::bench::bench(&args),
        Command::Build(args) => commands::build::build(&args),
        Command::Load(args) => commands::load::load(&args),
        Command::Run(args) => {
            let out = commands::run::execute(&args)?;
            if args.json {
                serde_json::to_string(&out.report)
                    .map(|s| s + "\n")
                    .map_err(|e| e.to_string())
            } else {
                Ok(commands::run::format_text(&args, &out))
            }
        }
        Command::DiffKernel(args) => {
            let reports = commands::diff_kernel::execute(&args)?;
            let text = if args.json {
                serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())? + "\n"
            } else {
                format_diff(&reports)
            };
            if reports.iter().all(|r| r.is_clean()) {
                Ok(text)
            } else {
                Err(text)
            }
        }
        Command::ConformancePlugin { memory, options: _ } => {
            let mut program = String::new();
            std::io::stdin()
                .read_to_string(&mut program)
                .map_err(|e| format!("cannot read the program from standard input: {e}"))?;
            commands::conformance_plugin::run(&program, memory.as_deref())
                .map(|r0| format!("{r0:x}\n"))
        }
    }
}

fn format_diff(reports: &[nicc::kernel_diff::DiffReport]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for r in reports {
        match &r.kernel_refused {
            Some(reason) => {
                let _ = writeln!(
                    s,
                    "{} {}: the kernel refused the program: {}",
                    r.object,
                    r.program,
                    reason.trim_end()
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "{} {}: {} packets compared, {} refused by the kernel's test run, {} mismatches",
                    r.object,
                    r.program,
                    r.packets_compared,
                    r.packets_refused,
                    r.mismatches.len()
                );
                for m in &r.mismatches {
                    match m.packet {
                        Some(p) => {
                            let _ = writeln!(s, "  packet {p}: {}", m.what);
                        }
                        None => {
                            let _ = writeln!(s, "  {}", m.what);
                        }
                    }
                }
            }
        }
    }
    s
}
