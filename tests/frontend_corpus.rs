//! Reads the whole ELF corpus (real clang output from several projects) through the frontend's
//! object reader, so that the reader is tested on what it will meet rather than on objects we
//! made up: every good object reads or is rejected with a reason, every malformed one is
//! rejected, known facts (checked with llvm-objdump, llvm-readelf and bpftool) hold, and mutated
//! files never make the reader panic or hang.

mod support;

use frontend::elf::{read_file, read_object};
use frontend::object::{MapOrigin, MapType, Object};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn corpus() -> PathBuf {
    support::corpus().join("elf")
}

/// Every file under a corpus folder, sorted so that output is stable.
fn files(dir: &Path) -> Vec<PathBuf> {
    support::files_under(dir, &|_| true)
}

fn read(rel: &str) -> Object {
    read_file(&corpus().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A human-readable summary of what the reader found, for snapshots and eyeballing.
fn summary(o: &Object) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "object {}", o.name);
    let _ = writeln!(s, "license {:?} version {:?}", o.license, o.kernel_version);
    for p in &o.programs {
        let _ = writeln!(
            s,
            "program {} section {} kind {:?} insns {} lines {}",
            p.name,
            p.section,
            p.kind,
            p.insns.len(),
            p.lines.len()
        );
        if let Some(l) = p.lines.first() {
            let file = l.file.rsplit(['/', '\\']).next().unwrap_or("");
            let _ = writeln!(
                s,
                "  first line {file}:{}:{} {}",
                l.line,
                l.column,
                l.source.trim()
            );
        }
        for f in &p.functions {
            let _ = writeln!(
                s,
                "  fn {} ({}+{}) at {} len {}",
                f.name, f.section, f.section_offset, f.start, f.len
            );
        }
    }
    for (i, m) in o.maps.iter().enumerate() {
        let origin = match &m.origin {
            MapOrigin::Legacy => "legacy".to_string(),
            MapOrigin::Btf => "btf".to_string(),
            MapOrigin::GlobalData { section, read_only } => {
                format!("data {section} ro={read_only}")
            }
        };
        let _ = writeln!(
            s,
            "map {i} {} {:?} key {} value {} max {} flags {:#x} inner {:?} init {} ({origin})",
            m.name,
            m.map_type,
            m.key_size,
            m.value_size,
            m.max_entries,
            m.flags,
            m.inner,
            m.initial_value.as_ref().map_or(0, |v| v.len()),
        );
    }
    for c in &o.code_sections {
        let _ = writeln!(
            s,
            "code {} insns {} symbols {:?} relocations {}",
            c.name,
            c.insns.len(),
            c.symbols,
            c.relocations.len()
        );
    }
    s
}

#[test]
fn every_good_object_reads_or_is_rejected_with_a_reason() {
    let mut read_ok = 0;
    let (mut programs, mut maps, mut lines) = (0, 0, 0);
    let mut rejected = Vec::new();
    for path in support::valid_objects() {
        match read_file(&path) {
            Ok(o) => {
                read_ok += 1;
                programs += o.programs.len();
                maps += o.maps.len();
                lines += o.programs.iter().map(|p| p.lines.len()).sum::<usize>();
                assert!(!o.code_sections.is_empty(), "{}", path.display());
                for p in &o.programs {
                    assert!(!p.insns.is_empty(), "{}: {}", path.display(), p.name);
                    assert_eq!(p.functions[0].start, 0);
                    assert!(p.lines.windows(2).all(|w| w[0].insn <= w[1].insn));
                }
            }
            Err(e) => {
                assert!(e.help.is_some(), "{}: no help in {e}", path.display());
                rejected.push(format!("{}: {}", path.display(), e.message));
            }
        }
    }
    println!(
        "read {read_ok} objects: {programs} programs, {maps} maps, {lines} line records; rejected {}",
        rejected.len()
    );
    for r in &rejected {
        println!("  rejected {r}");
    }
    assert!(read_ok >= 130, "only {read_ok} objects read");
    // The two objects that call functions that are not in the object.
    assert!(rejected.len() <= 4, "{rejected:#?}");
}

#[test]
fn every_invalid_object_is_rejected() {
    let dir = corpus().join("invalid");
    let all = files(&dir);
    assert_eq!(all.len(), 11);
    for path in all {
        let started = Instant::now();
        let result = read_file(&path);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{} took {took:?}",
            path.display()
        );
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("timeout-"))
        {
            // This one is a well-formed object (a chain of 35 tail calls through an initialized
            // program array) that made a verifier time out; there is nothing wrong with the
            // file itself, so the reader must simply read it, and quickly.
            let o = result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(o.programs.len(), 36);
            continue;
        }
        match result {
            Ok(o) => panic!("{} was accepted:\n{}", path.display(), summary(&o)),
            Err(e) => {
                println!("{}: {took:?}\n{e}", path.display());
                assert!(!e.message.is_empty());
                assert!(e.help.is_some());
            }
        }
    }
}

#[test]
fn externs_are_rejected_with_the_symbol_name() {
    for (file, symbol) in [
        ("build/badrelo.o", "ebpf_map_update_elem"),
        ("build/externalfunction.o", "bpf_map_lookup_elem"),
    ] {
        let e = read_file(&corpus().join(file)).expect_err(file);
        assert!(e.message.contains(symbol), "{e}");
        assert_eq!(e.section.as_deref(), Some(".text"));
        assert!(e.insn.is_some());
    }
}

#[test]
fn xdp1_has_one_program_and_a_legacy_map() {
    let o = read("linux/xdp1_kern.o");
    assert_eq!(o.license.as_deref(), Some("GPL"));
    assert_eq!(o.programs.len(), 1);
    let p = &o.programs[0];
    assert_eq!((p.name.as_str(), p.section.as_str()), ("xdp_prog1", "xdp1"));
    assert_eq!(o.maps.len(), 1);
    let m = &o.maps[0];
    assert_eq!(m.name, "rxcnt");
    assert_eq!(m.map_type, MapType::PercpuArray);
    assert_eq!((m.key_size, m.value_size, m.max_entries), (4, 8, 256));
    assert_eq!(m.origin, MapOrigin::Legacy);
}

#[test]
fn global_variables_become_array_maps() {
    let o = read("build/global_variable.o");
    assert_eq!(o.programs.len(), 1);
    assert_eq!(o.programs[0].name, "func");
    let names: Vec<_> = o.maps.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, [".bss", ".rodata", ".data"]);
    assert!(o.maps.iter().all(|m| m.max_entries == 1 && m.key_size == 4));
    assert_eq!(o.maps[0].value_size, 8);
    assert_eq!(o.maps[0].initial_value, Some(vec![0; 8]));
    assert_eq!(o.maps[1].value_size, 4);
    assert_eq!(o.maps[2].value_size, 40);
    // `r2 = 4 ll` against .bss at slot 5: the second word of .bss.
    let p = &o.programs[0];
    assert_eq!((p.insns[5].src, p.insns[5].imm, p.insns[6].imm), (6, 0, 4));
    assert_eq!((p.insns[8].src, p.insns[8].imm), (6, 1));
    assert_eq!((p.insns[11].src, p.insns[11].imm), (6, 2));
}

#[test]
fn bpf_to_bpf_calls_are_linked() {
    let o = read("build/bpf2bpf.o");
    assert_eq!(o.programs.len(), 1);
    let p = &o.programs[0];
    assert_eq!(p.name, "func");
    let names: Vec<_> = p.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["func", "add2", "add1"]);
    // Every local call lands on the start of a function.
    for (pc, i) in p.insns.iter().enumerate() {
        if i.code == 0x85 && i.src == 1 {
            let target = pc as i64 + 1 + i.imm as i64;
            assert!(
                p.functions.iter().any(|f| f.start as i64 == target),
                "call at {pc} lands on {target}"
            );
        }
    }
    assert_eq!(p.insns.len(), 37 + 8 + 13);
    assert!(!p.lines.is_empty());
    assert!(
        p.lines.iter().any(|l| l.source.contains("add1")),
        "{:?}",
        p.lines
    );
}

#[test]
fn btf_maps_are_read_from_types() {
    let o = read("build/twomaps_btf.o");
    let names: Vec<_> = o.maps.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["map1", "map2"]);
    assert!(o.maps.iter().all(|m| m.origin == MapOrigin::Btf));
}

#[test]
fn line_info_has_real_source_lines() {
    let o = read("cilium-examples/xdp_bpf_bpfel.o");
    let p = &o.programs[0];
    assert!(!p.lines.is_empty());
    let first = &p.lines[0];
    assert!(first.file.ends_with(".c"), "{first:?}");
    assert!(first.line > 0 && !first.source.is_empty(), "{first:?}");
}

#[test]
fn summaries_match_snapshots() {
    for (snapshot, rel) in [
        ("bpf2bpf", "build/bpf2bpf.o"),
        ("global_variable", "build/global_variable.o"),
        ("map_in_map", "build/map_in_map.o"),
        ("xdp_filter", "suricata/xdp_filter.o"),
    ] {
        insta::assert_snapshot!(snapshot, summary(&read(rel)));
    }
}

#[test]
fn local_calls_land_on_function_starts_everywhere() {
    let mut calls = 0;
    for path in files(&corpus()) {
        let Ok(o) = read_file(&path) else { continue };
        for p in &o.programs {
            for (pc, i) in p.insns.iter().enumerate() {
                let local_call = i.code == 0x85 && i.src == 1;
                let func_addr = i.code == 0x18 && i.src == 4;
                if local_call || func_addr {
                    calls += 1;
                    let target = pc as i64 + 1 + i.imm as i64;
                    assert!(
                        p.functions.iter().any(|f| f.start as i64 == target),
                        "{}: {} slot {pc} targets {target}",
                        path.display(),
                        p.name
                    );
                }
            }
            // Functions tile the program without gaps or overlaps.
            let mut end = 0;
            for f in &p.functions {
                assert_eq!(f.start, end, "{}: {}", path.display(), p.name);
                end += f.len;
            }
            assert_eq!(end, p.insns.len());
        }
    }
    println!("{calls} linked local calls checked");
    assert!(calls >= 4);
}

/// A small deterministic PRNG (xorshift64*) so that the mutations are the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_objects_never_panic_or_hang() {
    let sources = [
        "build/bpf2bpf.o",
        "build/twomaps_btf.o",
        "build/global_variable.o",
        "linux/xdp1_kern.o",
        "cilium-examples/xdp_bpf_bpfel.o",
        "build/map_in_map.o",
    ];
    let originals: Vec<Vec<u8>> = sources
        .iter()
        .map(|s| std::fs::read(corpus().join(s)).expect("corpus file"))
        .collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    // NICC_FUZZ_ROUNDS raises the count for a longer local run.
    let rounds = std::env::var("NICC_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2000);
    for round in 0..rounds {
        let mut bytes = originals[round % originals.len()].clone();
        match rng.below(4) {
            0 => bytes.truncate(rng.below(bytes.len() + 1)),
            1 => {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            2 => {
                for _ in 0..1 + rng.below(16) {
                    let at = rng.below(bytes.len());
                    bytes[at] = rng.next() as u8;
                }
            }
            _ => {
                // Overwrite a 4- or 8-byte field with an extreme value, to hit offsets/counts.
                let at = rng.below(bytes.len().saturating_sub(8).max(1));
                let v: u64 = [0, u64::MAX, 0x7fff_ffff, 0x8000_0000, 0xffff][rng.below(5)];
                let n = if rng.below(2) == 0 { 4 } else { 8 };
                for (i, b) in v.to_le_bytes()[..n].iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
        }
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| read_object(&bytes, "mutant.o").is_ok());
        let took = started.elapsed();
        match result {
            Ok(true) => ok += 1,
            Ok(false) => err += 1,
            Err(_) => panic!("round {round}: read_object panicked"),
        }
        assert!(took < Duration::from_secs(1), "round {round} took {took:?}");
    }
    println!("mutants: {ok} read, {err} rejected");
}
