//! Putting a loaded object on a real interface and finding it again later.
//!
//! A program attached with [`KernelObject::attach_xdp`] keeps running after nicc exits: the
//! interface holds the program and the program holds its maps. A later nicc process reaches
//! the maps again in one of two ways, both giving back a [`KernelObject`] whose snapshot and
//! seeding work exactly as for a freshly loaded object:
//!
//! - [`KernelObject::from_interface`]: ask the interface (netlink) which program runs there,
//!   open it by id, and match the maps it uses to the object's definitions by the name the
//!   loader gave them (the first 15 bytes) and their sizes;
//! - [`KernelObject::from_pins`]: open what [`KernelObject::pin`] left in a BPF filesystem.

use super::maps::{kernel_name, KernelMap};
use super::netlink::{self, XdpMode};
use super::prog::LoadedProgram;
use super::sys::{self, MapFd};
use super::{net_sys, possible_cpus, KernelError, KernelObject};
use frontend::object::ProgramKind;
use frontend::Object;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The index of interface `name` in this process's network namespace, with an error that says
/// what to check.
pub fn interface_index(name: &str) -> Result<u32, KernelError> {
    net_sys::ifindex(name).map_err(|e| {
        KernelError::Invalid(format!(
            "there is no network interface `{name}` here ({e}); `ip link` lists them, and an \
             interface in another network namespace needs `ip netns exec NS nicc ...`"
        ))
    })
}

/// The name a pinned file takes for an object name: bpffs refuses `/`.
fn pin_name(name: &str) -> String {
    name.replace('/', "_")
}

impl KernelObject {
    /// Attaches loaded XDP program `program` (an index into `Object::programs`) to interface
    /// `interface` in `mode`, replacing the program that mode ran there. Returns the
    /// interface index.
    pub fn attach_xdp(
        &self,
        program: usize,
        interface: &str,
        mode: XdpMode,
    ) -> Result<u32, KernelError> {
        let prog = self.program(program)?;
        if prog.kind != ProgramKind::Xdp {
            return Err(KernelError::Invalid(format!(
                "program `{}` is a {:?} program; only XDP programs attach to an interface",
                prog.name, prog.kind
            )));
        }
        let ifindex = interface_index(interface)?;
        netlink::attach(ifindex, prog.fd.as_raw_fd(), mode).map_err(|e| match mode {
            XdpMode::Offload => KernelError::Invalid(format!(
                "`{interface}` cannot run `{}` in offload mode: {e}. Only a NIC whose driver \
                 offloads BPF programs (Netronome nfp) can; use --mode native to run it in the \
                 driver, or --mode generic on any interface",
                prog.name
            )),
            XdpMode::Native => KernelError::Invalid(format!(
                "`{interface}` cannot run `{}` in native mode: {e}. Its driver may lack XDP \
                 support or refuse the program's needs (frame size, multi-buffer); use --mode \
                 generic, which works on every interface",
                prog.name
            )),
            XdpMode::Generic => e,
        })?;
        Ok(ifindex)
    }

    /// Pins every loaded program at `dir/<program>` and every created map at
    /// `dir/maps/<map>`; `dir` must be in a BPF filesystem. Returns the paths.
    pub fn pin(&self, dir: &Path) -> Result<Vec<PathBuf>, KernelError> {
        let maps_dir = dir.join("maps");
        std::fs::create_dir_all(&maps_dir).map_err(|e| {
            KernelError::Invalid(format!(
                "cannot create {} ({e}); pins live in a BPF filesystem: \
                 `mount -t bpf bpf /sys/fs/bpf`",
                maps_dir.display()
            ))
        })?;
        let mut paths = Vec::new();
        let mut pin = |fd: i32, path: PathBuf| -> Result<(), KernelError> {
            sys::obj_pin(fd, &path).map_err(|e| {
                let hint = if e.raw_os_error() == Some(libc::EPERM) {
                    " (is it in a BPF filesystem? `mount -t bpf bpf DIR`)"
                } else if e.raw_os_error() == Some(libc::EEXIST) {
                    " (something is pinned there already; remove it first)"
                } else {
                    ""
                };
                KernelError::syscall(format!("pinning at {}{hint}", path.display()), e)
            })?;
            paths.push(path);
            Ok(())
        };
        for p in self.programs.iter().flatten() {
            pin(p.fd.as_raw_fd(), dir.join(pin_name(&p.name)))?;
        }
        for m in &self.maps {
            if let Some(fd) = &m.fd {
                pin(fd.raw(), maps_dir.join(pin_name(&m.def.name)))?;
            }
        }
        Ok(paths)
    }

    /// The program `mode` runs on `interface` (any mode when `None`), with the maps it uses,
    /// matched to `obj`, whose program of the same name it must be.
    pub fn from_interface(
        obj: &Object,
        interface: &str,
        mode: Option<XdpMode>,
    ) -> Result<(KernelObject, XdpMode), KernelError> {
        let ifindex = interface_index(interface)?;
        let state = netlink::query(ifindex)?;
        let (mode, id) = match mode {
            Some(m) => (
                m,
                state.program(m).ok_or_else(|| {
                    KernelError::Invalid(format!(
                        "`{interface}` runs no XDP program in {} mode (attached: {})",
                        m.name(),
                        describe(&state)
                    ))
                })?,
            ),
            None => match state.attached().as_slice() {
                [one] => *one,
                [] => {
                    return Err(KernelError::Invalid(format!(
                        "`{interface}` runs no XDP program; attach one with `nicc load attach`"
                    )))
                }
                _ => {
                    return Err(KernelError::Invalid(format!(
                        "`{interface}` runs several XDP programs ({}); choose one with --mode",
                        describe(&state)
                    )))
                }
            },
        };
        let fd = sys::prog_fd_by_id(id)
            .map_err(|e| KernelError::syscall(format!("opening program id {id}"), e))?;
        let (name, map_ids) = sys::prog_maps(fd.as_raw_fd())
            .map_err(|e| KernelError::syscall(format!("reading program id {id}"), e))?;
        let index = obj
            .programs
            .iter()
            .position(|p| kernel_name(&p.name) == kernel_name(&name))
            .ok_or_else(|| {
                KernelError::Invalid(format!(
                    "`{interface}` runs program `{name}` (id {id}), which `{}` does not define; \
                     give the object it was loaded from",
                    obj.name
                ))
            })?;
        let cpus = possible_cpus()?;
        let mut found: Vec<Option<MapFd>> = (0..obj.maps.len()).map(|_| None).collect();
        for map_id in map_ids {
            let fd = sys::map_fd_by_id(map_id)
                .map_err(|e| KernelError::syscall(format!("opening map id {map_id}"), e))?;
            let info = sys::map_info(fd.as_raw_fd())
                .map_err(|e| KernelError::syscall(format!("reading map id {map_id}"), e))?;
            let slot = obj.maps.iter().position(|d| {
                kernel_name(&d.name) == kernel_name(&info.name)
                    && d.key_size == info.key_size
                    && d.value_size == info.value_size
            });
            if let Some(slot) = slot {
                found[slot] =
                    Some(MapFd::from_existing(fd, cpus).map_err(|e| {
                        KernelError::syscall(format!("reading map id {map_id}"), e)
                    })?);
            }
        }
        let loaded = LoadedProgram {
            name: obj.programs[index].name.clone(),
            kind: obj.programs[index].kind,
            fd,
            id,
        };
        Ok((assemble(obj, index, loaded, found), mode))
    }

    /// What [`KernelObject::pin`] left in `dir`, matched to `obj`.
    pub fn from_pins(obj: &Object, dir: &Path) -> Result<KernelObject, KernelError> {
        let cpus = possible_cpus()?;
        let mut program = None;
        for (index, p) in obj.programs.iter().enumerate() {
            let path = dir.join(pin_name(&p.name));
            if !path.exists() {
                continue;
            }
            let fd = sys::obj_get(&path)
                .map_err(|e| KernelError::syscall(format!("opening {}", path.display()), e))?;
            let id = sys::prog_id(&fd)
                .map_err(|e| KernelError::syscall(format!("reading {}", path.display()), e))?;
            program = Some((
                index,
                LoadedProgram {
                    name: p.name.clone(),
                    kind: p.kind,
                    fd,
                    id,
                },
            ));
            break;
        }
        let (index, loaded) = program.ok_or_else(|| {
            KernelError::Invalid(format!(
                "{} holds no pinned program of `{}`",
                dir.display(),
                obj.name
            ))
        })?;
        let mut found: Vec<Option<MapFd>> = (0..obj.maps.len()).map(|_| None).collect();
        for (slot, def) in obj.maps.iter().enumerate() {
            let path = dir.join("maps").join(pin_name(&def.name));
            if path.exists() {
                let fd = sys::obj_get(&path)
                    .map_err(|e| KernelError::syscall(format!("opening {}", path.display()), e))?;
                found[slot] =
                    Some(MapFd::from_existing(fd, cpus).map_err(|e| {
                        KernelError::syscall(format!("reading {}", path.display()), e)
                    })?);
            }
        }
        Ok(assemble(obj, index, loaded, found))
    }
}

/// A [`KernelObject`] of one loaded program and the maps found for it.
fn assemble(
    obj: &Object,
    index: usize,
    loaded: LoadedProgram,
    found: Vec<Option<MapFd>>,
) -> KernelObject {
    let maps = obj
        .maps
        .iter()
        .zip(found)
        .map(|(def, fd)| KernelMap {
            def: def.clone(),
            not_created: fd
                .is_none()
                .then(|| "the attached program does not use it".to_string()),
            fd,
        })
        .collect();
    let mut programs: Vec<Option<LoadedProgram>> = (0..obj.programs.len()).map(|_| None).collect();
    programs[index] = Some(loaded);
    KernelObject {
        name: obj.name.clone(),
        maps,
        programs,
    }
}

fn describe(state: &netlink::XdpState) -> String {
    let list: Vec<String> = state
        .attached()
        .iter()
        .map(|(m, id)| format!("{} id {id}", m.name()))
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// Removes the program `mode` runs on `interface`; with no mode, every XDP program there.
/// Returns the modes that had a program.
pub fn detach_xdp(interface: &str, mode: Option<XdpMode>) -> Result<Vec<XdpMode>, KernelError> {
    let ifindex = interface_index(interface)?;
    let state = netlink::query(ifindex)?;
    let mut removed = Vec::new();
    for (m, _) in state.attached() {
        if mode.is_none_or(|want| want == m) {
            netlink::detach(ifindex, m)?;
            removed.push(m);
        }
    }
    Ok(removed)
}

/// The programs `interface` runs, by mode.
pub fn query_xdp(interface: &str) -> Result<netlink::XdpState, KernelError> {
    netlink::query(interface_index(interface)?)
}
