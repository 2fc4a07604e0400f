//! What every engine does around and during a run, apart from decoding its own instructions:
//! setting up the XDP frame and turning the final state into an [`XdpOutcome`], loads and
//! stores with the kernel's rewriting of context accesses, and the pointer values that
//! `lddw` map forms produce.
//!
//! The bytecode interpreter and the IR executor both call these, so the two engines cannot
//! disagree about what a context field holds, which region a map pointer names, or what a run
//! leaves behind: they differ only in how they walk their instructions.

use super::memory::{
    make_addr, read_le, split_addr, write_le, Access, Fault, REGION_CTX, REGION_MAP, REGION_PACKET,
};
use super::xdp::XDP_MD_SIZE;
use super::{ExecState, Runtime, XdpAction, XdpBuffer, XdpInput, XdpOutcome};
use frontend::object::MapType;

impl ExecState {
    /// The per-run state of one XDP run on `input`: the frame `BPF_PROG_TEST_RUN` builds, one
    /// live stack frame, nothing reserved. Fails (with the reason) when the packet does not fit
    /// the frame the kernel would build.
    pub fn for_xdp(input: &XdpInput) -> Result<ExecState, String> {
        Ok(ExecState::new(Some(XdpBuffer::new(input)?), Vec::new()))
    }

    /// The context pointer an XDP program receives in `r1`.
    pub fn ctx_pointer() -> u64 {
        make_addr(REGION_CTX, 0)
    }

    /// What an XDP run returning `r0` after `executed` instructions produced: the verdict,
    /// the packet and metadata as they stand, and the redirect target when the verdict is
    /// `XDP_REDIRECT`. Takes the frame out of the state.
    pub fn finish_xdp(&mut self, r0: u64, executed: u64) -> XdpOutcome {
        let action = XdpAction::from_retval(r0);
        let (packet, meta) = self
            .xdp
            .take()
            .map(|x| (x.packet().to_vec(), x.meta().to_vec()))
            .unwrap_or_default();
        XdpOutcome {
            retval: r0,
            action,
            packet,
            meta,
            redirect: if action == XdpAction::Redirect {
                self.redirect.take()
            } else {
                None
            },
            insns_executed: executed,
        }
    }

    /// A load of `bytes` bytes at offset `off` of `struct xdp_md`. The kernel rewrites these
    /// into loads of the real buffer's pointers and device fields, so `data`, `data_end` and
    /// `data_meta` give packet pointers.
    pub fn ctx_load(&self, off: u32, bytes: usize) -> Result<u64, Fault> {
        let Some(x) = self.xdp.as_ref() else {
            return Err(Fault::new("this run has no context to load from"));
        };
        if bytes != 4 || !off.is_multiple_of(4) || off as usize >= XDP_MD_SIZE {
            return Err(Fault::new(format!(
                "invalid access to the XDP context: {bytes} bytes at offset {off} (struct xdp_md has 4-byte fields at offsets 0 to 20)"
            )));
        }
        Ok(match off {
            0 => make_addr(REGION_PACKET, x.data as u32),
            4 => make_addr(REGION_PACKET, x.data_end as u32),
            8 => make_addr(REGION_PACKET, x.data_meta as u32),
            12 => x.ingress_ifindex as u64,
            16 => x.rx_queue_index as u64,
            // egress_ifindex is only readable by devmap programs, and is 0 outside them.
            _ => 0,
        })
    }
}

impl Runtime {
    /// Loads a little-endian value of `bytes` bytes (zero-extended) from `addr`. Context
    /// loads are rewritten as the kernel rewrites them; everything else is region-checked.
    pub fn load(&mut self, st: &mut ExecState, addr: u64, bytes: usize) -> Result<u64, Fault> {
        let (rid, off) = split_addr(addr);
        if rid == REGION_CTX {
            return st.ctx_load(off, bytes);
        }
        self.access(st, addr, bytes, Access::Read, |b| read_le(b))
    }

    /// Stores the low `bytes` bytes of `value` at `addr`, little-endian.
    pub fn store(
        &mut self,
        st: &mut ExecState,
        addr: u64,
        bytes: usize,
        value: u64,
    ) -> Result<(), Fault> {
        self.access(st, addr, bytes, Access::Write, |b| write_le(b, value))
    }

    /// Loads for a read-modify-write (an atomic operation), checking that the location is
    /// writable too, so an atomic on read-only memory faults before it reads.
    pub fn load_for_update(
        &mut self,
        st: &mut ExecState,
        addr: u64,
        bytes: usize,
    ) -> Result<u64, Fault> {
        self.access(st, addr, bytes, Access::Write, |b| read_le(b))
    }

    /// The map pointer `lddw rX, map` loads for map `index` of the object.
    pub fn map_handle(&self, index: i64) -> Result<u64, Fault> {
        let m = self.map_index(index)?;
        Ok(make_addr(REGION_MAP + m as u32, 0))
    }

    /// The pointer `lddw rX, map_value` loads: `offset` bytes into the single value of a
    /// direct-access array (global data). Other maps, and offsets past the value, are what
    /// the verifier rejects.
    pub fn map_value_address(&mut self, index: i64, offset: u32) -> Result<u64, Fault> {
        let m = self.map_index(index)?;
        let def = &self.maps()[m].def;
        if !matches!(def.map_type, MapType::Array | MapType::PercpuArray)
            || offset >= def.value_size
        {
            return Err(Fault::new(format!(
                "lddw takes the address of offset {offset} in map `{}`, which is not a direct-access array value of {} bytes",
                def.name, def.value_size
            )));
        }
        Ok(self.value_pointer(m, 0, 0) + offset as u64)
    }

    fn map_index(&self, index: i64) -> Result<usize, Fault> {
        let maps = self.maps().len();
        usize::try_from(index)
            .ok()
            .filter(|i| *i < maps)
            .ok_or_else(|| {
                Fault::new(format!(
                    "lddw refers to map {index}, but the object has {maps} maps"
                ))
            })
    }

    /// The map, slot and CPU a map value region (`Region::MapValue(n)`) stands for, so that an
    /// engine can tell which map a pointer points into.
    pub fn value_region(&self, n: usize) -> Option<(usize, u32, u32)> {
        self.value_regions
            .get(n)
            .map(|&(m, slot, cpu)| (m as usize, slot, cpu))
    }
}
