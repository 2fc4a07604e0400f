//! `nicc compile --target x86_64|aarch64`: the command writes a relocatable object and its C
//! header; the header is what a C dataplane reads (snapshot); and x86-64 objects, linked by
//! `cc` with the C harness (`hw/harness/nicc_harness.c`) and run as ordinary processes whose
//! callbacks the shared runtime answers, match the interpreter on the conformance suite and on
//! every kernel-accepted XDP program of the corpus over every corpus packet. Compile times per
//! program are printed (total and median).

#[path = "support/native_remote.rs"]
mod native_remote;
#[path = "support/object_diff.rs"]
mod object_diff;
mod support;

use hw::qemu::Arch;
use nicc::commands::compile::{CompileArgs, CompileTarget};
use object_diff::{conformance_suite, run_corpus_programs, summarize, toolchain};

fn xdp1() -> std::path::PathBuf {
    support::corpus().join("elf/linux/xdp1_kern.o")
}

#[test]
fn compile_command_writes_object_and_header_and_reports_each_program() {
    let dir = hw::qemu::scratch_dir("compile-cmd").unwrap();
    for (target, machine) in [
        (CompileTarget::X86_64, 0x3eu16),
        (CompileTarget::Aarch64, 0xb7),
    ] {
        let out = dir.join(format!("xdp1_{target:?}.o"));
        let text = nicc::commands::compile::compile(&CompileArgs {
            object: xdp1(),
            target,
            output: out.clone(),
            program: None,
            pipeline: None,
        })
        .unwrap_or_else(|e| panic!("{target:?}: {e}"));
        println!("{text}");
        let obj = std::fs::read(&out).unwrap();
        assert_eq!(&obj[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([obj[16], obj[17]]), 1, "relocatable");
        assert_eq!(u16::from_le_bytes([obj[18], obj[19]]), machine);
        let header = std::fs::read_to_string(out.with_extension("h")).unwrap();
        assert!(header.contains("uint64_t nicc_prog_xdp_prog1(struct nicc_ctx *ctx, uint64_t r1);"));
        assert!(text.contains("pipeline native"), "{text}");
        assert!(
            text.contains("program xdp_prog1 (xdp): entry nicc_prog_xdp_prog1,"),
            "{text}"
        );
        assert!(text.contains("imports: "), "{text}");
        assert!(text.contains("nicc_helper_map_lookup_elem"), "{text}");
        assert!(text.contains(" ms"), "{text}");
    }
    // A program that does not exist is an error naming the programs there are.
    let err = nicc::commands::compile::compile(&CompileArgs {
        object: xdp1(),
        target: CompileTarget::X86_64,
        output: dir.join("none.o"),
        program: Some("no_such_program".into()),
        pipeline: None,
    })
    .unwrap_err();
    assert!(err.contains("xdp_prog1"), "{err}");
}

#[test]
fn generated_header_of_xdp1() {
    let obj = frontend::elf::read_file(&xdp1()).unwrap();
    let c = nicc::commands::compile_native::compile_native(
        &obj,
        None,
        "native",
        backends::native::NativeTarget::X86_64,
    )
    .unwrap();
    insta::assert_snapshot!("xdp1_kern_header", c.artifact.header);
}

#[test]
fn conformance_suite_as_linked_x86_64_objects_matches_the_interpreter() {
    let tc = toolchain(Arch::X86_64);
    let dir = hw::qemu::scratch_dir("conformance-x86_64").unwrap();
    let r = conformance_suite(&tc, &dir);
    println!(
        "conformance (x86_64 objects linked with the C harness): {} tests, {} compared, {} not lifted, {} mismatches",
        r.tests,
        r.compared,
        r.not_lifted.len(),
        r.mismatches.len()
    );
    assert!(r.mismatches.is_empty(), "{}", r.mismatches.join("\n"));
    assert!(r.compared >= 300, "only {} tests compared", r.compared);
}

#[test]
fn kernel_accepted_corpus_programs_as_linked_x86_64_objects_match_the_interpreter() {
    let tc = toolchain(Arch::X86_64);
    let dir = hw::qemu::scratch_dir("corpus-x86_64").unwrap();
    let packets = support::engine_diff::corpus_packets();
    let mut run = run_corpus_programs(&tc, &dir, packets);
    println!(
        "{} kernel-accepted XDP programs, {} linked as x86_64 objects and compared over {} packet runs ({} faulted in both, {} harness round trips), {} failures",
        run.programs,
        run.compared,
        run.runs,
        run.both_faulted,
        run.round_trips,
        run.failures.len()
    );
    println!(
        "x86_64 compile time per program (lift + native pipeline + code generation): {}",
        summarize(&mut run.compile_times)
    );
    assert!(
        run.compared >= 20,
        "only {} programs were compared",
        run.compared
    );
    assert!(run.failures.is_empty(), "{}", run.failures.join("\n"));
}
