//! The host side of the native-object harness (`hw/harness/nicc_harness.c`): runs a program
//! of an object written by `nicc compile` in a separate process (natively, or under
//! qemu-user for aarch64) and answers every runtime callback of the object with nicc's one
//! runtime, exactly as the in-process JIT engine (`sim::native`) answers it, so results can be
//! compared with the interpreter's bit for bit.
//!
//! Memory that native code reaches inline (the XDP frame buffer, the stack frames, global
//! data) exists twice, in the harness and here; the protocol (described in the harness
//! source) carries the changed byte range of each block with every message, both ways, so
//! each side sees the other's writes before it runs again. Pointer values are the
//! interpreter's region pointers, as in the JIT, so helpers receive the very values the
//! interpreter gives them.

use backends::native::abi::{FAULT_BUDGET, FRAME_SIZE, MAX_FRAMES};
use frontend::object::LineInfo;
use frontend::Diagnostic;
use sim::runtime::helpers::{self, HelperOutcome};
use sim::runtime::memory::{
    make_addr, Access, Fault, MAX_CALL_FRAMES, REGION_FUNC, REGION_MEM, REGION_PACKET, REGION_STACK,
};
use sim::runtime::xdp::FRAME_SIZE as XDP_FRAME_SIZE;
use sim::runtime::{ExecState, Runtime, XdpInput, XdpOutcome};
use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command};

const OP_QUIT: u64 = 0;
const OP_SETUP: u64 = 1;
const OP_RUN: u64 = 2;
const OP_CALL: u64 = 3;
const OP_DONE: u64 = 4;
const OP_REPLY: u64 = 5;

const CB_LOAD: u64 = 0;
const CB_STORE: u64 = 1;
const CB_ATOMIC: u64 = 2;
const CB_ENTER_CALL: u64 = 3;
const CB_TAIL_CALL: u64 = 4;
const CB_MAP_VALUE_ADDR: u64 = 5;
const CB_HELPER: u64 = 6;

/// The helper id of `bpf_tail_call`.
const HELPER_TAIL_CALL: u64 = 12;

/// Block numbers, as the harness numbers them.
const FIRST_GLOBAL_BLOCK: usize = 1 + MAX_FRAMES;

/// A harness process running the programs of one module.
pub struct RemoteProgram {
    child: Child,
    to: BufWriter<ChildStdin>,
    from: BufReader<ChildStdout>,
    /// Each block as last exchanged with the harness.
    shadows: Vec<Vec<u8>>,
    /// Map names, by module map index, and whether global data may live in the map.
    map_names: Vec<String>,
    direct_maps: Vec<bool>,
    programs: usize,
    functions: usize,
    lines: HashMap<u32, LineInfo>,
    /// Messages exchanged so far (one per callback, plus two per run).
    pub round_trips: u64,
}

/// The state of one run while the harness executes it.
struct Run<'a> {
    rt: &'a mut Runtime,
    st: ExecState,
    /// Global data of each module map: (value, size), when the map has it.
    globals: Vec<Option<(u64, usize)>>,
    fault: Option<Fault>,
}

impl Run<'_> {
    /// Runs `f` on block `id` as the runtime holds it; `None` when the run has no such block.
    fn with_block<R>(&mut self, id: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if id == 0 {
            return self.st.xdp.as_mut().map(|x| f(&mut x.buf));
        }
        if id < FIRST_GLOBAL_BLOCK {
            return Some(f(&mut self.st.stacks[id - 1]));
        }
        let (value, size) = (*self.globals.get(id - FIRST_GLOBAL_BLOCK)?)?;
        // Global data is read and written here as a whole block, whatever the program may do
        // with it: the harness only sends changes native code was allowed to make.
        self.rt
            .access(&mut self.st, value, size, Access::Read, f)
            .ok()
    }
}

fn io_error(e: std::io::Error) -> String {
    format!("the harness process stopped talking: {e}")
}

impl RemoteProgram {
    /// Starts `command` (a harness linked with the object of `module`) and sends it the
    /// layout of the module's memory blocks.
    pub fn start(mut command: Command, module: &ir::Module) -> Result<RemoteProgram, String> {
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        let to = BufWriter::new(child.stdin.take().ok_or("no stdin pipe")?);
        let from = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);
        let direct_maps: Vec<bool> = module
            .maps
            .values()
            .map(|m| m.map_type == 2 || m.map_type == 6)
            .collect();
        let mut shadows = vec![vec![0u8; XDP_FRAME_SIZE]];
        shadows.extend((0..MAX_FRAMES).map(|_| vec![0u8; FRAME_SIZE as usize]));
        for (m, direct) in module.maps.values().zip(&direct_maps) {
            shadows.push(vec![0u8; if *direct { m.value_size as usize } else { 0 }]);
        }
        let mut lines = HashMap::new();
        for (_, f) in module.functions.iter() {
            for inst in f.insts() {
                let loc = f.srclocs[inst];
                if let Some(l) = module.line(loc) {
                    lines.entry(loc.insn).or_insert_with(|| LineInfo {
                        insn: loc.insn as usize,
                        file: l.file.clone(),
                        line: l.line,
                        column: l.column,
                        source: l.text.clone(),
                    });
                }
            }
        }
        let mut r = RemoteProgram {
            child,
            to,
            from,
            shadows,
            map_names: module.maps.values().map(|m| m.name.clone()).collect(),
            direct_maps,
            programs: module.programs.len(),
            functions: module.functions.len(),
            lines,
            round_trips: 0,
        };
        r.put(OP_SETUP)?;
        r.put(XDP_FRAME_SIZE as u64)?;
        r.put(make_addr(REGION_PACKET, 0))?;
        r.put(r.map_names.len() as u64)?;
        for i in 0..r.map_names.len() {
            let size = r.shadows[FIRST_GLOBAL_BLOCK + i].len() as u64;
            r.put(size)?;
        }
        r.put(r.functions as u64)?;
        for f in 0..r.functions {
            r.put(make_addr(REGION_FUNC + f as u32, 0))?;
        }
        Ok(r)
    }

    fn put(&mut self, v: u64) -> Result<(), String> {
        self.to.write_all(&v.to_le_bytes()).map_err(io_error)
    }

    fn get(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        self.from.read_exact(&mut b).map_err(io_error)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Sends the changed range of every block the run holds, and records it as exchanged.
    fn put_changes(&mut self, run: &mut Run) -> Result<(), String> {
        let mut changes = Vec::new();
        for id in 0..self.shadows.len() {
            let shadow = &mut self.shadows[id];
            let change = run.with_block(id, |b| {
                if b.len() != shadow.len() || b == shadow.as_slice() {
                    return None;
                }
                let lo = b.iter().zip(shadow.iter()).position(|(x, y)| x != y)?;
                let hi = b.len()
                    - b.iter()
                        .rev()
                        .zip(shadow.iter().rev())
                        .position(|(x, y)| x != y)?;
                shadow[lo..hi].copy_from_slice(&b[lo..hi]);
                Some((lo, b[lo..hi].to_vec()))
            });
            if let Some(Some((lo, bytes))) = change {
                changes.push((id, lo, bytes));
            }
        }
        self.put(changes.len() as u64)?;
        for (id, lo, bytes) in changes {
            self.put(id as u64)?;
            self.put(lo as u64)?;
            self.put(bytes.len() as u64)?;
            self.to.write_all(&bytes).map_err(io_error)?;
        }
        Ok(())
    }

    /// Applies the harness's changes to the runtime's blocks and to the shadows.
    fn get_changes(&mut self, run: &mut Run) -> Result<(), String> {
        let n = self.get()?;
        for _ in 0..n {
            let (id, lo, len) = (
                self.get()? as usize,
                self.get()? as usize,
                self.get()? as usize,
            );
            let Some(shadow) = self.shadows.get_mut(id) else {
                return Err(format!(
                    "the harness changed block {id}, which does not exist"
                ));
            };
            if lo > shadow.len() || len > shadow.len() - lo {
                return Err(format!(
                    "the harness changed bytes {lo}..{} of block {id}, which has {}",
                    lo + len,
                    shadow.len()
                ));
            }
            let mut bytes = vec![0u8; len];
            self.from.read_exact(&mut bytes).map_err(io_error)?;
            shadow[lo..lo + len].copy_from_slice(&bytes);
            // A block the run does not hold (the packet of a memory-mode run) is unchanged by
            // native code: its inline bounds are empty.
            run.with_block(id, |b| b[lo..lo + len].copy_from_slice(&bytes));
        }
        Ok(())
    }

    /// Answers one callback, as `sim::native` answers it.
    fn callback(
        &self,
        run: &mut Run,
        kind: u64,
        a: [u64; 6],
        depth: &mut u64,
    ) -> Result<u64, Fault> {
        let (rt, st) = (&mut *run.rt, &mut run.st);
        match kind {
            CB_LOAD => rt.load(st, a[0], a[1] as usize),
            CB_STORE => rt.store(st, a[0], a[1] as usize, a[2]).map(|_| 0),
            CB_ATOMIC => sim::native::atomic_update(rt, st, a[0], a[1], a[2], a[3], a[4]),
            CB_ENTER_CALL => {
                let d = *depth as usize;
                if d >= MAX_CALL_FRAMES {
                    return Err(Fault::new(format!(
                        "bpf-to-bpf call nesting exceeds {MAX_CALL_FRAMES} frames"
                    )));
                }
                st.stacks[d].fill(0);
                *depth += 1;
                st.depth = d + 1;
                Ok(0)
            }
            CB_TAIL_CALL => {
                match helpers::call(rt, st, HELPER_TAIL_CALL as i32, [a[0], a[1], a[2], 0, 0])? {
                    HelperOutcome::TailCall(p) if p < self.programs => Ok(p as u64 + 1),
                    HelperOutcome::TailCall(p) => Err(Fault::new(format!(
                        "tail call to program {p}, which the compiled module does not hold ({} programs)",
                        self.programs
                    ))),
                    HelperOutcome::TailCallFailed | HelperOutcome::Return(_) => Ok(0),
                }
            }
            CB_MAP_VALUE_ADDR => {
                let name = self
                    .map_names
                    .get(a[0] as usize)
                    .cloned()
                    .unwrap_or_default();
                let m = rt
                    .maps()
                    .iter()
                    .position(|m| m.def.name == name)
                    .ok_or_else(|| Fault::new(format!("map `{name}` is not in the runtime")))?;
                rt.map_value_address(m as i64, a[1] as u32)
            }
            CB_HELPER => {
                if a[0] == HELPER_TAIL_CALL {
                    return Err(Fault::new(
                        "bpf_tail_call as a plain helper call; the IR expresses tail calls with `tail_call`",
                    ));
                }
                match helpers::call(rt, st, a[0] as i32, [a[1], a[2], a[3], a[4], a[5]])? {
                    HelperOutcome::Return(v) => Ok(v),
                    HelperOutcome::TailCall(_) | HelperOutcome::TailCallFailed => Err(Fault::new(
                        "a helper other than bpf_tail_call asked for a tail call",
                    )),
                }
            }
            other => Err(Fault::new(format!(
                "the harness sent unknown callback {other}"
            ))),
        }
    }

    /// The packet bounds as pointer values (zero without a packet), as the JIT's context
    /// block holds them.
    fn packet_bounds(st: &ExecState) -> [u64; 3] {
        match st.xdp.as_ref() {
            Some(x) => [
                make_addr(REGION_PACKET, x.data as u32),
                make_addr(REGION_PACKET, x.data_end as u32),
                make_addr(REGION_PACKET, x.data_meta as u32),
            ],
            None => [0; 3],
        }
    }

    /// Runs program `program` (an index into the module's programs) on `st` with r1..r5 =
    /// `args`; returns r0 and the final state, or the fault as a diagnostic. A broken harness
    /// is an `Err` of the outer result.
    fn run(
        &mut self,
        program: usize,
        rt: &mut Runtime,
        st: ExecState,
        ctx_value: u64,
        args: [u64; 5],
    ) -> Result<Result<(u64, ExecState), Diagnostic>, String> {
        if program >= self.programs {
            return Err(format!("program {program} is not in the module"));
        }
        let mut st = st;
        let mut handles = Vec::new();
        let mut globals = Vec::new();
        let mut descs = Vec::new();
        for (i, name) in self.map_names.iter().enumerate() {
            let Some(m) = rt.maps().iter().position(|m| &m.def.name == name) else {
                return Ok(Err(Diagnostic::new(format!(
                    "the module uses map `{name}`, which the runtime does not have"
                ))));
            };
            handles.push(rt.map_handle(m as i64).unwrap_or(0));
            let size = self.shadows[FIRST_GLOBAL_BLOCK + i].len();
            let value = if self.direct_maps[i] {
                rt.map_value_address(m as i64, 0).ok()
            } else {
                None
            };
            // Global data the runtime holds with the size the module declared; anything else
            // stays with the runtime, reached through callbacks.
            let usable = value.filter(|v| {
                rt.maps()[m].def.value_size as usize == size
                    && rt.access(&mut st, *v, size, Access::Read, |_| ()).is_ok()
            });
            match usable {
                Some(v) => {
                    globals.push(Some((v, size)));
                    descs.push((v, u64::from(!rt.maps()[m].read_only())));
                }
                None => {
                    globals.push(None);
                    descs.push((0, 0));
                }
            }
        }
        let budget = rt.config.insn_budget;
        let (ingress, rxq) = st.xdp.as_ref().map_or((0, 0), |x| {
            (x.ingress_ifindex as u64, x.rx_queue_index as u64)
        });
        let bounds = Self::packet_bounds(&st);
        let mut run = Run {
            rt,
            st,
            globals,
            fault: None,
        };
        self.put(OP_RUN)?;
        self.put(program as u64)?;
        for a in args {
            self.put(a)?;
        }
        self.put(ctx_value)?;
        for b in bounds {
            self.put(b)?;
        }
        self.put(ingress)?;
        self.put(rxq)?;
        self.put(budget)?;
        for (h, (value, writable)) in handles.iter().zip(&descs) {
            self.put(*h)?;
            self.put(*value)?;
            self.put(*writable)?;
        }
        for d in 0..MAX_FRAMES {
            self.put(make_addr(REGION_STACK + d as u32, 0))?;
        }
        self.put_changes(&mut run)?;
        self.to.flush().map_err(io_error)?;
        self.round_trips += 1;
        loop {
            match self.get()? {
                OP_CALL => {
                    let kind = self.get()?;
                    let mut a = [0u64; 6];
                    for x in &mut a {
                        *x = self.get()?;
                    }
                    let mut depth = self.get()?;
                    let _insn = self.get()?;
                    self.get_changes(&mut run)?;
                    run.st.depth = (depth as usize).clamp(1, MAX_CALL_FRAMES);
                    let (result, fault) = match self.callback(&mut run, kind, a, &mut depth) {
                        Ok(v) => (v, 0),
                        Err(f) => {
                            run.fault = Some(f);
                            (0, 1)
                        }
                    };
                    self.put(OP_REPLY)?;
                    self.put(result)?;
                    self.put(fault)?;
                    self.put(depth)?;
                    for b in Self::packet_bounds(&run.st) {
                        self.put(b)?;
                    }
                    self.put_changes(&mut run)?;
                    self.to.flush().map_err(io_error)?;
                    self.round_trips += 1;
                }
                OP_DONE => {
                    let r0 = self.get()?;
                    let fault = self.get()?;
                    let insn = self.get()?;
                    let _depth = self.get()?;
                    self.get_changes(&mut run)?;
                    if fault == 0 {
                        return Ok(Ok((r0, run.st)));
                    }
                    let f = match (fault, run.fault.take()) {
                        (FAULT_BUDGET, _) => Fault::new(format!(
                            "loop budget of {budget} back-edges exceeded (an endless loop?)"
                        )),
                        (_, Some(f)) => f,
                        (code, None) => {
                            Fault::new(format!("native code reported fault code {code}"))
                        }
                    };
                    let mut d = Diagnostic::new(f.message);
                    if insn != u32::MAX as u64 {
                        d = d
                            .insn(insn as usize)
                            .line(self.lines.get(&(insn as u32)).cloned());
                    }
                    if let Some(h) = f.help {
                        d = d.help(h);
                    }
                    return Ok(Err(d));
                }
                other => return Err(format!("the harness sent message {other} out of turn")),
            }
        }
    }

    /// Runs program `program` as an XDP program on one packet, as `sim::native::run_xdp_native`
    /// does in process. The outer error means the harness failed, not the program.
    pub fn run_xdp(
        &mut self,
        program: usize,
        rt: &mut Runtime,
        input: &XdpInput,
    ) -> Result<Result<XdpOutcome, Diagnostic>, String> {
        let st = match ExecState::for_xdp(input) {
            Ok(st) => st,
            Err(m) => return Ok(Err(Diagnostic::new(m))),
        };
        let ctxp = ExecState::ctx_pointer();
        Ok(self
            .run(program, rt, st, ctxp, [ctxp, 0, 0, 0, 0])?
            .map(|(r0, mut st)| st.finish_xdp(r0, 0)))
    }

    /// Runs program `program` in conformance mode: r1 points to `mem` (or is 0 when `mem` is
    /// empty), r2 is its length; changes to `mem` are kept.
    pub fn run_with_memory(
        &mut self,
        program: usize,
        rt: &mut Runtime,
        mem: &mut [u8],
    ) -> Result<Result<u64, Diagnostic>, String> {
        let st = ExecState::new(None, mem.to_vec());
        let r1 = if mem.is_empty() {
            0
        } else {
            make_addr(REGION_MEM, 0)
        };
        Ok(self
            .run(program, rt, st, u64::MAX, [r1, mem.len() as u64, 0, 0, 0])?
            .map(|(r0, st)| {
                mem.copy_from_slice(&st.mem);
                r0
            }))
    }

    /// Tells the harness to exit and waits for it; fails when it did not exit cleanly.
    pub fn finish(mut self) -> Result<(), String> {
        self.put(OP_QUIT)?;
        self.to.flush().map_err(io_error)?;
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the harness exited with {status}"))
        }
    }
}

impl Drop for RemoteProgram {
    fn drop(&mut self) {
        // A harness left behind by a failed test must not outlive it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
