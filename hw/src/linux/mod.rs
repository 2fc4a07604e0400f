//! The Linux kernel as the oracle: nicc loads an object's programs with raw `bpf()` calls, runs
//! packets through them with `BPF_PROG_TEST_RUN`, and reads and writes their maps, so that every
//! engine can be compared with what the kernel itself does.
//!
//! libbpf is not used: libbpf 1.x refuses the legacy `maps` sections much of the corpus has,
//! and nicc's object model already holds everything a loader needs. [`KernelObject::load`]
//! creates every map of the object (see [`maps`] for libbpf's adjustments it copies), then
//! loads the chosen programs, handing the map descriptors over as `fd_array` (see [`prog`]).
//! Everything owned by a [`KernelObject`] is released when it is dropped.
//!
//! The modules: [`sys`] (bpf()) and [`net_sys`] (sockets, namespaces) hold the system calls
//! and the only `unsafe` code; [`maps`] creates, dumps and seeds maps; [`prog`] loads
//! programs; [`test_run`] runs XDP programs; [`netlink`] attaches XDP programs to interfaces
//! and [`attach`] ties that to loaded objects, pins and maps found again later; [`error`] has
//! the error type.

pub mod attach;
pub mod error;
pub mod maps;
pub mod net_sys;
pub mod netlink;
pub mod prog;
pub mod sys;
pub mod test_run;

pub use error::KernelError;
pub use maps::possible_cpus;
pub use test_run::{TestRunResult, XdpCtx, MAX_PACKET, MIN_PACKET};

use frontend::mapdata::MapsSnapshot;
use frontend::object::ProgramKind;
use frontend::Object;
use maps::KernelMap;
use prog::LoadedProgram;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};

/// Checks that this process can use `bpf()`, by creating and closing a one-entry array map.
/// The error says why not, in words a user can act on.
pub fn kernel_available() -> Result<(), String> {
    let attr = sys::MapCreateAttr {
        map_type: frontend::object::MapType::Array.to_raw(),
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        map_name: maps::kernel_name("nicc_probe"),
        ..sys::MapCreateAttr::default()
    };
    match sys::MapFd::create(&attr, 1) {
        Ok(_map) => Ok(()),
        Err(e) => Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => format!(
                "bpf() is not permitted ({e}): run as root or give the process CAP_BPF \
                 (and CAP_NET_ADMIN for XDP), or lower kernel.unprivileged_bpf_disabled"
            ),
            Some(libc::ENOSYS) => format!(
                "this kernel has no bpf() system call ({e}): it was built without \
                 CONFIG_BPF_SYSCALL, or a seccomp filter blocks it"
            ),
            _ => format!("creating a test map with bpf() failed: {e}"),
        }),
    }
}

/// An object loaded into the kernel: its maps and the programs that were asked for.
#[derive(Debug)]
pub struct KernelObject {
    name: String,
    maps: Vec<KernelMap>,
    /// Indexed like `Object::programs`; `None` for programs not loaded.
    programs: Vec<Option<LoadedProgram>>,
}

/// A map a snapshot leaves out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedMap {
    pub name: String,
    pub reason: String,
}

impl KernelObject {
    /// Creates every map of `obj` and loads the programs at the given indices of
    /// `obj.programs`. A map the kernel will not create is an error only if one of these
    /// programs uses it; such maps are left out of snapshots.
    pub fn load(obj: &Object, programs: &[usize]) -> Result<KernelObject, KernelError> {
        KernelObject::load_bound(obj, programs, 0)
    }

    /// [`KernelObject::load`] with the maps and programs bound to device `ifindex` for hardware
    /// offload (0: not bound). Only a device whose driver offloads BPF accepts them.
    pub fn load_bound(
        obj: &Object,
        programs: &[usize],
        ifindex: u32,
    ) -> Result<KernelObject, KernelError> {
        let cpus = possible_cpus()?;
        let mut needed = vec![false; obj.maps.len()];
        for &index in programs {
            let prog = obj.programs.get(index).ok_or_else(|| {
                KernelError::Invalid(format!(
                    "program index {index} is out of range: `{}` has {} programs",
                    obj.name,
                    obj.programs.len()
                ))
            })?;
            for m in prog::map_references(obj, prog)? {
                needed[m] = true;
            }
        }
        // A map of maps needs its inner template.
        for (i, def) in obj.maps.iter().enumerate() {
            if let (true, Some(inner)) = (needed[i], def.inner) {
                if let Some(flag) = needed.get_mut(inner) {
                    *flag = true;
                }
            }
        }
        let maps = maps::create_maps(obj, cpus, &needed, ifindex)?;
        let mut loaded: Vec<Option<LoadedProgram>> =
            (0..obj.programs.len()).map(|_| None).collect();
        for &index in programs {
            if loaded[index].is_none() {
                loaded[index] = Some(prog::load_program(obj, index, &maps, ifindex)?);
            }
        }
        Ok(KernelObject {
            name: obj.name.clone(),
            maps,
            programs: loaded,
        })
    }

    fn program(&self, index: usize) -> Result<&LoadedProgram, KernelError> {
        self.programs
            .get(index)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                KernelError::Invalid(format!(
                    "program {index} of `{}` is not loaded (loaded: {:?})",
                    self.name,
                    self.loaded_programs()
                ))
            })
    }

    /// The indices of the loaded programs.
    pub fn loaded_programs(&self) -> Vec<usize> {
        (0..self.programs.len())
            .filter(|i| self.programs[*i].is_some())
            .collect()
    }

    /// The descriptor of a loaded program, for callers that attach it somewhere.
    pub fn program_fd(&self, index: usize) -> Option<RawFd> {
        self.programs
            .get(index)
            .and_then(Option::as_ref)
            .map(|p| p.fd.as_raw_fd())
    }

    /// The descriptor of map `index` of the object, when it was created.
    pub fn map_fd(&self, index: usize) -> Option<RawFd> {
        self.maps
            .get(index)
            .and_then(|m| m.fd.as_ref())
            .map(|m| m.raw())
    }

    /// Runs XDP program `program` (an index into `Object::programs`) once on `packet`, on CPU 0.
    /// See [`test_run`] for what the kernel does with the packet.
    pub fn test_run_xdp(
        &self,
        program: usize,
        packet: &[u8],
        ctx: &XdpCtx,
    ) -> Result<TestRunResult, KernelError> {
        let prog = self.program(program)?;
        if prog.kind != ProgramKind::Xdp {
            return Err(KernelError::Invalid(format!(
                "program `{}` is a {:?} program, not XDP",
                prog.name, prog.kind
            )));
        }
        test_run::run_xdp(prog.fd.as_raw_fd(), &prog.name, packet, ctx)
    }

    /// Times XDP program `program` on `packet` with `BPF_PROG_TEST_RUN` and a large `repeat`
    /// (see [`test_run`]): `duration_ns` of the result is the kernel's average per run,
    /// test-loop overhead included. For benchmarks only: the repeated runs feed the modified
    /// packet back in, so the packet and retval are those of the last run.
    pub fn time_xdp(
        &self,
        program: usize,
        packet: &[u8],
        repeat: u32,
    ) -> Result<TestRunResult, KernelError> {
        let prog = self.program(program)?;
        if prog.kind != ProgramKind::Xdp {
            return Err(KernelError::Invalid(format!(
                "program `{}` is a {:?} program, not XDP",
                prog.name, prog.kind
            )));
        }
        test_run::run_xdp_timed(prog.fd.as_raw_fd(), &prog.name, packet, repeat)
    }

    /// Every map's contents (see [`frontend::mapdata`] for the rules). Maps that cannot be
    /// dumped are left out; [`KernelObject::snapshot_report`] says which and why.
    pub fn snapshot(&self) -> Result<MapsSnapshot, KernelError> {
        self.snapshot_report().map(|(s, _)| s)
    }

    /// The snapshot together with the maps it leaves out: perf event arrays and ring buffers
    /// (streams, not state), maps of maps and socket maps (their values are kernel objects),
    /// queues, stacks and bloom filters (no keys to walk), and maps that were not created.
    /// Prog arrays give back the index of the program in each slot.
    pub fn snapshot_report(&self) -> Result<(MapsSnapshot, Vec<SkippedMap>), KernelError> {
        let ids: HashMap<u32, usize> = self
            .programs
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (p.id, i)))
            .collect();
        let mut snapshot = MapsSnapshot::default();
        let mut skipped = Vec::new();
        for map in &self.maps {
            if let Some(reason) = map.skip_reason() {
                skipped.push(SkippedMap {
                    name: map.def.name.clone(),
                    reason,
                });
                continue;
            }
            snapshot.maps.insert(map.def.name.clone(), map.dump(&ids)?);
        }
        Ok((snapshot, skipped))
    }

    /// Writes the entries of a snapshot into the maps of the same names. Entries the snapshot
    /// does not list are left as they are, so on a freshly loaded object the maps then hold
    /// exactly the snapshot. Prog-array values are program indices and must name loaded
    /// programs. Per-CPU entries take `per_cpu` values (missing CPUs zero) or a single `value`
    /// for CPU 0. Read-only global data is frozen: a snapshot may only repeat its contents.
    pub fn load_snapshot(&self, s: &MapsSnapshot) -> Result<(), KernelError> {
        let prog_fd = |index: usize| self.program_fd(index);
        for (name, contents) in &s.maps {
            let map = self
                .maps
                .iter()
                .find(|m| &m.def.name == name)
                .ok_or_else(|| {
                    KernelError::Invalid(format!(
                        "the snapshot has a map `{name}`, which `{}` does not define",
                        self.name
                    ))
                })?;
            map.seed(contents, &prog_fd)?;
        }
        Ok(())
    }
}
