//! `nicc load`: put an XDP program on a real interface (generic, native or offload mode), pin
//! it, take it off again, and read or write the maps of the program an interface runs, in the
//! JSON format of `nicc run --maps-in/--maps-out`.
//!
//! The program stays attached when nicc exits; `nicc load maps` finds it again through the
//! interface (or through the pins) and the object it came from. Run it in the network
//! namespace of the interface (`ip netns exec NS nicc load ...`).

use hw::linux::attach::{detach_xdp, query_xdp};
use hw::linux::netlink::XdpMode;
use hw::linux::KernelObject;
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[command(subcommand)]
    pub action: LoadAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum LoadAction {
    /// Load an object's XDP program into the kernel and attach it to an interface.
    Attach {
        /// The BPF ELF object: clang's, or one `nicc opt` wrote.
        object: PathBuf,
        /// The interface to attach to.
        #[arg(long)]
        dev: String,
        /// The program: a function or section name (needed when the object holds several).
        #[arg(long)]
        program: Option<String>,
        /// Where the program runs: `generic` (any interface), `native` (in the driver) or
        /// `offload` (on the NIC; needs a driver that offloads BPF).
        #[arg(long, value_enum, default_value = "native")]
        mode: Mode,
        /// Seed the maps from this JSON file before attaching.
        #[arg(long)]
        maps_in: Option<PathBuf>,
        /// Pin the program and its maps in this directory of a BPF filesystem.
        #[arg(long)]
        pin: Option<PathBuf>,
        /// Optimize the object with nicc (the `bpf` pipeline) and load the re-emitted BPF.
        #[arg(long)]
        optimize: bool,
    },
    /// Remove the XDP program (of one mode, or all) from an interface.
    Detach {
        #[arg(long)]
        dev: String,
        #[arg(long, value_enum)]
        mode: Option<Mode>,
    },
    /// Show the XDP programs an interface runs.
    Show {
        #[arg(long)]
        dev: String,
    },
    /// Read (and optionally first write) the maps of the program an interface runs.
    Maps {
        /// The object the program was loaded from (it names and types the maps).
        object: PathBuf,
        /// The interface that runs the program.
        #[arg(long, conflicts_with = "pin", required_unless_present = "pin")]
        dev: Option<String>,
        /// The mode whose program to read, when the interface runs several.
        #[arg(long, value_enum)]
        mode: Option<Mode>,
        /// A directory `nicc load attach --pin` wrote, instead of an interface.
        #[arg(long)]
        pin: Option<PathBuf>,
        /// Write these map contents (JSON) before reading.
        #[arg(long)]
        write: Option<PathBuf>,
        /// Write the map contents to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Generic,
    Native,
    Offload,
}

impl Mode {
    fn xdp(self) -> XdpMode {
        match self {
            Mode::Generic => XdpMode::Generic,
            Mode::Native => XdpMode::Native,
            Mode::Offload => XdpMode::Offload,
        }
    }
}

pub fn load(args: &LoadArgs) -> Result<String, String> {
    hw::linux::kernel_available()?;
    match &args.action {
        LoadAction::Attach {
            object,
            dev,
            program,
            mode,
            maps_in,
            pin,
            optimize,
        } => {
            let mut obj = super::read_object(object)?;
            let mut note = String::new();
            if *optimize {
                let (bytes, programs, _, _) = super::opt::optimize(&obj, "bpf", false)?;
                obj = frontend::elf::read_object(&bytes, &obj.name).map_err(|d| {
                    format!("nicc cannot read back the object it optimized (a bug in nicc): {d}")
                })?;
                for p in programs {
                    let _ = writeln!(
                        note,
                        "optimized {}: {} -> {} BPF instructions",
                        p.name, p.insns_before, p.insns_after
                    );
                }
            }
            let index = super::select_program(&obj, program.as_deref())?;
            let name = obj.programs[index].name.clone();
            let ifindex = if *mode == Mode::Offload {
                hw::linux::attach::interface_index(dev).map_err(|e| e.to_string())?
            } else {
                0
            };
            let kernel = KernelObject::load_bound(&obj, &[index], ifindex).map_err(|e| {
                if *mode == Mode::Offload {
                    // Binding the first map to the device is where a device without BPF
                    // offload says no; the map itself is fine, so say what failed instead.
                    let what = match &e {
                        hw::linux::KernelError::MapCreate { map, source, .. } => {
                            format!("the kernel refused to bind map `{map}` to it ({source})")
                        }
                        other => other.to_string(),
                    };
                    format!(
                        "`{dev}` cannot take `{name}` for offload: {what}\nhelp: only a NIC \
                         whose driver offloads BPF (Netronome nfp) binds programs and maps; \
                         use --mode native to run it in the driver, or --mode generic"
                    )
                } else {
                    e.to_string()
                }
            })?;
            if let Some(path) = maps_in {
                let seed = super::read_maps(path)?;
                kernel
                    .load_snapshot(&seed)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let mut pinned = Vec::new();
            if let Some(dir) = pin {
                pinned = kernel.pin(dir).map_err(|e| e.to_string())?;
            }
            let ifindex = kernel
                .attach_xdp(index, dev, mode.xdp())
                .map_err(|e| e.to_string())?;
            let _ = writeln!(
                note,
                "attached {name} to {dev} (ifindex {ifindex}) in {} mode",
                mode.xdp().name()
            );
            for p in pinned {
                let _ = writeln!(note, "pinned {}", p.display());
            }
            Ok(note)
        }
        LoadAction::Detach { dev, mode } => {
            let removed = detach_xdp(dev, mode.map(Mode::xdp)).map_err(|e| e.to_string())?;
            if removed.is_empty() {
                return Ok(format!("{dev} runs no XDP program; nothing to detach\n"));
            }
            Ok(removed
                .iter()
                .map(|m| format!("detached the {} mode program from {dev}\n", m.name()))
                .collect())
        }
        LoadAction::Show { dev } => {
            let state = query_xdp(dev).map_err(|e| e.to_string())?;
            let attached = state.attached();
            if attached.is_empty() {
                return Ok(format!("{dev}: no XDP program\n"));
            }
            Ok(attached
                .iter()
                .map(|(m, id)| format!("{dev}: {} mode, program id {id}\n", m.name()))
                .collect())
        }
        LoadAction::Maps {
            object,
            dev,
            mode,
            pin,
            write,
            out,
        } => {
            let obj = super::read_object(object)?;
            let kernel = match (dev, pin) {
                (Some(dev), _) => {
                    KernelObject::from_interface(&obj, dev, mode.map(Mode::xdp))
                        .map_err(|e| e.to_string())?
                        .0
                }
                (None, Some(dir)) => {
                    KernelObject::from_pins(&obj, dir).map_err(|e| e.to_string())?
                }
                (None, None) => return Err("give --dev IFACE or --pin DIR".into()),
            };
            if let Some(path) = write {
                let seed = super::read_maps(path)?;
                kernel
                    .load_snapshot(&seed)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let snapshot = kernel.snapshot().map_err(|e| e.to_string())?;
            let text = serde_json::to_string_pretty(&snapshot).map_err(|e| e.to_string())? + "\n";
            match out {
                Some(path) => {
                    std::fs::write(path, &text)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    Ok(format!(
                        "wrote the contents of {} maps to {}\n",
                        snapshot.maps.len(),
                        path.display()
                    ))
                }
                None => Ok(text),
            }
        }
    }
}
