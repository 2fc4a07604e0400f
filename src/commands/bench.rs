//! `nicc bench`: nanoseconds per packet of every engine on the same packets, side by side: the
//! nicc JIT with and without the optimizer, the nicc interpreter, and the kernel's JIT through
//! `BPF_PROG_TEST_RUN` with its test loop measured and subtracted. See [`crate::bench`] for
//! how each is timed. rbpf, a dev-dependency, is only in `cargo bench --bench engines`.

use crate::bench::{
    bench_program, kernel_accepted, pass_only_object, render_table, sample_packets, BenchConfig,
    Row, INTERP, JIT_CHECKED, JIT_LOOP, JIT_NATIVE, JIT_NET, JIT_NONE, JIT_RA1, KERNEL,
    KERNEL_LOOP, KERNEL_NET,
};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A folder of objects (searched recursively for `.o` files), or one object.
    pub input: Option<PathBuf>,
    /// Capture files (or folders of them) whose packets every engine runs; by default the
    /// corpus captures beside the repository (`../shared/corpus/pcap`).
    #[arg(long)]
    pub pcap: Vec<PathBuf>,
    /// At most this many distinct packets, evenly spaced over the captures.
    #[arg(long, default_value_t = 256)]
    pub max_packets: usize,
    /// Runs per packet for the JITs.
    #[arg(long, default_value_t = BenchConfig::default().repeat)]
    pub repeat: u32,
    /// Runs per packet for the interpreter.
    #[arg(long, default_value_t = BenchConfig::default().interp_repeat)]
    pub interp_repeat: u32,
    /// Measurements per packet; the fastest counts.
    #[arg(long, default_value_t = BenchConfig::default().rounds)]
    pub rounds: u32,
}

/// Every file under `path` (or `path` itself) passing `keep`, sorted.
pub fn files_under(path: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| format!("cannot list {}: {e}", d.display()))?;
        for entry in entries {
            let p = entry
                .map_err(|e| format!("cannot list {}: {e}", d.display()))?
                .path();
            if p.is_dir() {
                stack.push(p);
            } else if keep(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The packets of every capture under `paths`, sampled to at most `max`.
pub fn packets_from_captures(paths: &[PathBuf], max: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut packets = Vec::new();
    for path in paths {
        for file in files_under(path, &|p| {
            p.extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
        })? {
            // A capture nicc cannot read (another link type, a damaged file) adds nothing.
            if let Ok(capture) = sim::pcap::read_file(&file) {
                packets.extend(capture.ethernet().map(|p| p.data.clone()));
            }
        }
    }
    Ok(sample_packets(packets, max))
}

/// Benchmarks every kernel-accepted XDP program of the objects under `input` on `packets`;
/// rows are in path order, then program order.
pub fn bench_objects(
    input: &Path,
    packets: &[Vec<u8>],
    config: &BenchConfig,
) -> Result<Vec<Row>, String> {
    hw::linux::kernel_available().map_err(|why| {
        format!("nicc bench times the kernel's JIT, and bpf() is not usable: {why}")
    })?;
    let pass_only = hw::linux::KernelObject::load(&pass_only_object(), &[0])
        .map_err(|e| format!("the kernel refused the two-instruction program: {e}"))?;
    let objects = files_under(input, &|p| p.extension().is_some_and(|e| e == "o"))?;
    let mut rows = Vec::new();
    for path in objects {
        // Objects nicc cannot read are for `nicc check`; the benchmark skips them.
        let Ok(obj) = frontend::elf::read_file(&path) else {
            continue;
        };
        // Relative to the folder given, or the file name when one object was given.
        let label = match path.strip_prefix(input) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            ),
        };
        for (index, kernel) in kernel_accepted(&obj) {
            rows.push(bench_program(
                &label, &obj, index, &kernel, &pass_only, packets, config,
            ));
        }
    }
    Ok(rows)
}

/// The time columns `nicc bench` prints.
pub const COLUMNS: [&str; 10] = [
    JIT_NATIVE,
    JIT_LOOP,
    JIT_NET,
    JIT_CHECKED,
    JIT_RA1,
    JIT_NONE,
    INTERP,
    KERNEL,
    KERNEL_LOOP,
    KERNEL_NET,
];

/// The ratio columns `nicc bench` prints. Like is compared with like: the two net figures
/// (each engine's time minus its own loop, measured on the same two-instruction program),
/// the two gross ones, then the JIT against itself without one optimization at a time.
pub const RATIOS: [(&str, &str); 5] = [
    (JIT_NET, KERNEL_NET),
    (JIT_NATIVE, KERNEL),
    (JIT_NATIVE, JIT_CHECKED),
    (JIT_NATIVE, JIT_RA1),
    (JIT_NATIVE, JIT_NONE),
];

pub fn bench(args: &BenchArgs) -> Result<String, String> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let input = args.input.clone().unwrap_or_else(|| corpus.join("elf"));
    let pcaps = if args.pcap.is_empty() {
        vec![corpus.join("pcap")]
    } else {
        args.pcap.clone()
    };
    let packets = packets_from_captures(&pcaps, args.max_packets)?;
    if packets.is_empty() {
        return Err(format!(
            "no usable packets (Ethernet frames of {} to {} bytes) in {}",
            hw::linux::MIN_PACKET,
            hw::linux::MAX_PACKET,
            pcaps
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let config = BenchConfig {
        repeat: args.repeat,
        interp_repeat: args.interp_repeat,
        rounds: args.rounds,
    };
    let rows = bench_objects(&input, &packets, &config)?;
    if rows.is_empty() {
        return Err(format!(
            "no XDP program under {} is accepted by the kernel",
            input.display()
        ));
    }
    let mut out = format!(
        "ns per packet, {} packets, {} runs per packet (interpreter {}), fastest of {} rounds\n\n",
        packets.len(),
        config.repeat,
        config.interp_repeat,
        config.rounds
    );
    out.push_str(&render_table(&rows, &COLUMNS, &RATIOS));
    Ok(out)
}
