//! The golden interpreter: executes decoded BPF instructions with the Linux kernel's semantics
//! on the shared runtime.
//!
//! Arithmetic, comparisons and byte swaps come from `ir::semantics`, so the interpreter cannot
//! disagree with constant folding or the hardware models. Every memory access goes through the
//! runtime's region checks; anything the kernel's verifier would have rejected, or that would
//! crash, ends the run with a `Diagnostic` naming the program, the instruction index and the C
//! source line. Programs are decoded once per runtime and reused for every packet.
//!
//! Two entry points: [`run_xdp`] runs an XDP program of an object on one packet, as
//! `BPF_PROG_TEST_RUN` with `repeat=1` does; [`run_with_memory`] is the conformance-suite mode,
//! where the program gets a pointer to a memory buffer in `r1` and its length in `r2`.

// The workspace-wide error type `Diagnostic` is returned by value, as every stage does.
#![allow(clippy::result_large_err)]

use crate::runtime::helpers::{self, HelperOutcome};
use crate::runtime::memory::{
    make_addr, split_addr, Fault, Region, MAX_CALL_FRAMES, REGION_FUNC, REGION_MEM,
};
use crate::runtime::{Decoded, ExecState, Runtime, RuntimeConfig, XdpInput, XdpOutcome};
use frontend::insn::{decode_all, AtomicOp, CallTarget, Imm64, Insn, Operand, RawInsn, Reg, Size};
use frontend::object::ProgramKind;
use frontend::{Diagnostic, Object};
use ir::semantics::{alu, byte_order, compare, sign_extend, truncate, AluOp, Width};
use std::sync::Arc;

pub use crate::runtime::{Redirect, XdpAction as Action};

/// Where the code being executed came from, for diagnostics and tail calls.
#[derive(Clone, Copy)]
enum Source<'a> {
    Object(&'a Object),
    Raw,
}

/// A caller's state saved across a bpf-to-bpf call.
#[derive(Clone)]
struct Frame {
    prog: usize,
    insns: Arc<Vec<Insn>>,
    ret_pc: usize,
    saved: [u64; 4],
}

/// Why a run stopped early.
enum Stop {
    Fault(Fault),
    /// A legacy packet load out of bounds: the program returns 0, as in the kernel.
    ReturnZero,
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Stop {
        Stop::Fault(f)
    }
}

struct Machine<'a> {
    src: Source<'a>,
    rt: &'a mut Runtime,
    st: ExecState,
    regs: [u64; 11],
    frames: Vec<Frame>,
    prog: usize,
    insns: Arc<Vec<Insn>>,
    pc: usize,
    executed: u64,
    budget: u64,
}

/// Decodes program `index` of `obj`, or returns the runtime's cached decoding.
fn program_code(
    rt: &mut Runtime,
    obj: &Object,
    index: usize,
) -> Result<Arc<Vec<Insn>>, Diagnostic> {
    let Some(prog) = obj.programs.get(index) else {
        return Err(Diagnostic::new(format!(
            "program index {index} does not exist (the object has {} programs)",
            obj.programs.len()
        ))
        .object(obj.name.clone()));
    };
    if rt.decoded.len() < obj.programs.len() {
        rt.decoded.resize(obj.programs.len(), None);
    }
    if let Some(Some(d)) = rt.decoded.get(index) {
        if d.raw == prog.insns {
            return Ok(d.insns.clone());
        }
    }
    let insns = decode_all(&prog.insns).map_err(|e| {
        Diagnostic::new(format!("cannot decode instruction: {}", e.kind))
            .object(obj.name.clone())
            .program(prog.name.clone())
            .section(prog.section.clone())
            .insn(e.index)
            .line(prog.line_at(e.index).cloned())
            .help(e.kind.help())
    })?;
    let insns = Arc::new(insns);
    rt.decoded[index] = Some(Decoded {
        raw: prog.insns.clone(),
        insns: insns.clone(),
    });
    Ok(insns)
}

fn size_bits(size: Size) -> u32 {
    size.bytes() as u32 * 8
}

impl<'a> Machine<'a> {
    fn diagnostic(&self, fault: Fault) -> Diagnostic {
        let mut d = Diagnostic::new(fault.message).insn(self.pc);
        if let Source::Object(obj) = self.src {
            d = d.object(obj.name.clone());
            if let Some(p) = obj.programs.get(self.prog) {
                d = d
                    .program(p.name.clone())
                    .section(p.section.clone())
                    .line(p.line_at(self.pc).cloned());
            }
        }
        match fault.help {
            Some(h) => d.help(h),
            None => d,
        }
    }

    fn reg(&self, r: Reg) -> u64 {
        self.regs[r.0 as usize]
    }

    fn set(&mut self, r: Reg, v: u64) -> Result<(), Fault> {
        if r.0 == 10 {
            return Err(Fault::new("the frame pointer r10 is read-only"));
        }
        self.regs[r.0 as usize] = v;
        Ok(())
    }

    fn operand(&self, o: Operand) -> u64 {
        match o {
            Operand::Reg(r) => self.reg(r),
            Operand::Imm(i) => i as i64 as u64,
        }
    }

    fn load(&mut self, addr: u64, size: Size) -> Result<u64, Fault> {
        self.rt.load(&mut self.st, addr, size.bytes())
    }

    fn store(&mut self, addr: u64, size: Size, value: u64) -> Result<(), Fault> {
        self.rt.store(&mut self.st, addr, size.bytes(), value)
    }

    /// A legacy `LD_ABS`/`LD_IND` load: big-endian, and out of bounds ends the program with 0.
    fn legacy_load(&mut self, off: i32, size: Size) -> Result<u64, Stop> {
        let n = size.bytes();
        let bytes = if self.st.xdp.is_some() {
            return Err(Stop::Fault(Fault::new(
                "legacy packet loads (LD_ABS/LD_IND) are not allowed in XDP programs",
            )));
        } else {
            let mem = &self.st.mem;
            let Ok(start) = usize::try_from(off) else {
                return Err(Stop::ReturnZero);
            };
            match start.checked_add(n).and_then(|end| mem.get(start..end)) {
                Some(b) => b.to_vec(),
                None => return Err(Stop::ReturnZero),
            }
        };
        Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64))
    }

    fn atomic(
        &mut self,
        size: Size,
        op: AtomicOp,
        fetch: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    ) -> Result<(), Fault> {
        let addr = self.reg(dst).wrapping_add(off as i64 as u64);
        let width = if size == Size::DW {
            Width::W64
        } else {
            Width::W32
        };
        let bits = size_bits(size);
        let old = self.load_rw(addr, size)?;
        let s = self.reg(src);
        let new = match op {
            AtomicOp::Add => Some(alu(AluOp::Add, width, old, s)),
            AtomicOp::Or => Some(alu(AluOp::Or, width, old, s)),
            AtomicOp::And => Some(alu(AluOp::And, width, old, s)),
            AtomicOp::Xor => Some(alu(AluOp::Xor, width, old, s)),
            AtomicOp::Xchg => Some(truncate(s, bits)),
            AtomicOp::CmpXchg => compare(ir::semantics::JmpCond::Eq, width, self.regs[0], old)
                .then(|| truncate(s, bits)),
        };
        if let Some(v) = new {
            self.store(addr, size, v)?;
        }
        match op {
            AtomicOp::CmpXchg => self.regs[0] = old,
            AtomicOp::Xchg => self.set(src, old)?,
            _ if fetch => self.set(src, old)?,
            _ => {}
        }
        Ok(())
    }

    /// Reads for a read-modify-write, checking the location is also writable.
    fn load_rw(&mut self, addr: u64, size: Size) -> Result<u64, Fault> {
        self.rt.load_for_update(&mut self.st, addr, size.bytes())
    }

    fn local_call(&mut self, target: i64) -> Result<(), Fault> {
        if self.frames.len() + 1 >= MAX_CALL_FRAMES {
            return Err(Fault::new(format!(
                "bpf-to-bpf call nesting exceeds {MAX_CALL_FRAMES} frames"
            )));
        }
        let len = self.insns.len() as i64;
        if target < 0 || target >= len {
            return Err(Fault::new(format!(
                "call target {target} is outside the program (0..{len})"
            )));
        }
        self.frames.push(Frame {
            prog: self.prog,
            insns: self.insns.clone(),
            ret_pc: self.pc + 1,
            saved: [self.regs[6], self.regs[7], self.regs[8], self.regs[9]],
        });
        let depth = self.frames.len();
        self.st.depth = depth + 1;
        self.st.stacks[depth].fill(0);
        self.regs[10] = ExecState::frame_pointer(depth);
        self.pc = target as usize;
        Ok(())
    }

    fn helper_call(&mut self, id: i32) -> Result<(), Stop> {
        let args = [
            self.regs[1],
            self.regs[2],
            self.regs[3],
            self.regs[4],
            self.regs[5],
        ];
        match helpers::call(self.rt, &mut self.st, id, args)? {
            HelperOutcome::Return(v) => {
                self.regs[0] = v;
                self.pc += 1;
            }
            HelperOutcome::TailCallFailed => self.pc += 1,
            HelperOutcome::TailCall(p) => {
                let Source::Object(obj) = self.src else {
                    return Err(Fault::new("tail calls need an object with programs").into());
                };
                let code = program_code(self.rt, obj, p).map_err(|d| {
                    Fault::new(format!(
                        "tail call target program {p} is invalid: {}",
                        d.message
                    ))
                })?;
                self.prog = p;
                self.insns = code;
                self.pc = 0;
            }
        }
        Ok(())
    }

    /// Executes until the entry function exits; returns `r0`.
    fn run(&mut self) -> Result<u64, Stop> {
        loop {
            self.executed += 1;
            if self.executed > self.budget {
                return Err(Fault::new(format!(
                    "instruction budget of {} exceeded (an endless loop?)",
                    self.budget
                ))
                .help("raise RuntimeConfig::insn_budget if the program really needs more")
                .into());
            }
            let Some(&insn) = self.insns.get(self.pc) else {
                return Err(Fault::new(format!(
                    "execution ran past the end of the program (instruction {} of {})",
                    self.pc,
                    self.insns.len()
                ))
                .into());
            };
            let mut next = self.pc + 1;
            match insn {
                Insn::Alu {
                    width,
                    op,
                    dst,
                    src,
                } => {
                    let v = alu(op, width, self.reg(dst), self.operand(src));
                    self.set(dst, v)?;
                }
                Insn::Endian { order, bits, dst } => {
                    let v = byte_order(order, bits, self.reg(dst));
                    self.set(dst, v)?;
                }
                Insn::Imm64 { dst, imm } => {
                    let v = self.imm64(imm)?;
                    self.set(dst, v)?;
                    next = self.pc + 2;
                }
                Insn::Imm64Tail => {
                    return Err(
                        Fault::new("jump into the second slot of a 64-bit immediate load").into(),
                    )
                }
                Insn::LoadAbs { size, imm } => {
                    self.regs[0] = self.legacy_load(imm, size)?;
                }
                Insn::LoadInd { size, src, imm } => {
                    let off = (self.reg(src) as u32 as i32).wrapping_add(imm);
                    self.regs[0] = self.legacy_load(off, size)?;
                }
                Insn::Load {
                    size,
                    signed,
                    dst,
                    src,
                    off,
                } => {
                    let addr = self.reg(src).wrapping_add(off as i64 as u64);
                    let mut v = self.load(addr, size)?;
                    if signed {
                        v = sign_extend(v, size_bits(size));
                    }
                    self.set(dst, v)?;
                }
                Insn::StoreImm {
                    size,
                    dst,
                    off,
                    imm,
                } => {
                    let addr = self.reg(dst).wrapping_add(off as i64 as u64);
                    self.store(addr, size, imm as i64 as u64)?;
                }
                Insn::StoreReg {
                    size,
                    dst,
                    src,
                    off,
                } => {
                    let addr = self.reg(dst).wrapping_add(off as i64 as u64);
                    let v = self.reg(src);
                    self.store(addr, size, v)?;
                }
                Insn::Atomic {
                    size,
                    op,
                    fetch,
                    dst,
                    src,
                    off,
                } => {
                    self.atomic(size, op, fetch, dst, src, off)?;
                }
                Insn::Ja { off, .. } => {
                    next = self.jump_target(off as i64)?;
                }
                Insn::Jmp {
                    width,
                    cond,
                    dst,
                    src,
                    off,
                } => {
                    if compare(cond, width, self.reg(dst), self.operand(src)) {
                        next = self.jump_target(off as i64)?;
                    }
                }
                Insn::Call(target) => match target {
                    CallTarget::Helper(id) => {
                        self.helper_call(id)?;
                        continue;
                    }
                    CallTarget::Local(off) => {
                        self.local_call(self.pc as i64 + 1 + off as i64)?;
                        continue;
                    }
                    CallTarget::Kfunc(id) => {
                        return Err(Fault::new(format!(
                            "kfunc calls (BTF id {id}) are not supported by the interpreter"
                        ))
                        .into())
                    }
                    CallTarget::Register(r) => {
                        let v = self.reg(r);
                        let (rid, off) = split_addr(v);
                        if let Region::Func(pc) = Region::of(rid) {
                            let _ = off;
                            self.local_call(pc as i64)?;
                        } else if let Ok(id) = i32::try_from(v as i64) {
                            self.helper_call(id)?;
                        } else {
                            return Err(Fault::new(format!(
                                    "callx through {r} = {v:#x}, which is neither a function nor a helper id"
                                ))
                                .into());
                        }
                        continue;
                    }
                },
                Insn::Exit => match self.frames.pop() {
                    None => return Ok(self.regs[0]),
                    Some(f) => {
                        self.regs[6..10].copy_from_slice(&f.saved);
                        self.st.depth = self.frames.len() + 1;
                        self.regs[10] = ExecState::frame_pointer(self.frames.len());
                        self.prog = f.prog;
                        self.insns = f.insns;
                        next = f.ret_pc;
                    }
                },
            }
            self.pc = next;
        }
    }

    fn jump_target(&self, off: i64) -> Result<usize, Fault> {
        let t = self.pc as i64 + 1 + off;
        if t < 0 || t >= self.insns.len() as i64 {
            return Err(Fault::new(format!(
                "jump to instruction {t}, outside the program (0..{})",
                self.insns.len()
            )));
        }
        Ok(t as usize)
    }

    fn imm64(&mut self, imm: Imm64) -> Result<u64, Fault> {
        Ok(match imm {
            Imm64::Value(v) => v,
            Imm64::MapFd(i) | Imm64::MapIdx(i) => self.rt.map_handle(i as i64)?,
            Imm64::MapValue { fd: i, offset } | Imm64::MapIdxValue { index: i, offset } => {
                self.rt.map_value_address(i as i64, offset)?
            }
            Imm64::Func(off) => {
                let t = self.pc as i64 + 1 + off as i64;
                if t < 0 || t >= self.insns.len() as i64 {
                    return Err(Fault::new(format!(
                        "function address {t} is outside the program"
                    )));
                }
                make_addr(REGION_FUNC + t as u32, 0)
            }
            Imm64::BtfId { id, .. } => {
                return Err(Fault::new(format!(
                    "lddw of kernel variable BTF id {id} is not supported by the interpreter"
                )))
            }
        })
    }
}

/// Runs XDP program `program` (an index into `obj.programs`) on one packet.
pub fn run_xdp(
    obj: &Object,
    program: usize,
    rt: &mut Runtime,
    input: &XdpInput,
) -> Result<XdpOutcome, Diagnostic> {
    let code = program_code(rt, obj, program)?;
    let prog = &obj.programs[program];
    if !matches!(prog.kind, ProgramKind::Xdp | ProgramKind::Unknown) {
        return Err(Diagnostic::new(format!(
            "program `{}` is a {:?} program, not an XDP program",
            prog.name, prog.kind
        ))
        .object(obj.name.clone())
        .program(prog.name.clone()));
    }
    let st = ExecState::for_xdp(input).map_err(|m| {
        Diagnostic::new(m)
            .object(obj.name.clone())
            .program(prog.name.clone())
    })?;
    let budget = rt.config.insn_budget;
    let mut m = Machine {
        src: Source::Object(obj),
        rt,
        st,
        regs: [0; 11],
        frames: Vec::new(),
        prog: program,
        insns: code,
        pc: 0,
        executed: 0,
        budget,
    };
    m.regs[1] = ExecState::ctx_pointer();
    m.regs[10] = ExecState::frame_pointer(0);
    let r0 = match m.run() {
        Ok(v) => v,
        Err(Stop::ReturnZero) => 0,
        Err(Stop::Fault(f)) => return Err(m.diagnostic(f)),
    };
    Ok(m.st.finish_xdp(r0, m.executed))
}

/// Runs raw instructions in conformance mode: `r1` points to `mem` (or is 0 when `mem` is
/// empty), `r2` is its length; returns `r0`. Changes the program makes to `mem` are kept.
pub fn run_with_memory(insns: &[RawInsn], mem: &mut [u8]) -> Result<u64, Diagnostic> {
    let mut rt = Runtime::empty(RuntimeConfig::default());
    run_with_memory_in(&mut rt, insns, mem)
}

/// [`run_with_memory`] on a given runtime (for its clock, PRNG and trace output).
pub fn run_with_memory_in(
    rt: &mut Runtime,
    insns: &[RawInsn],
    mem: &mut [u8],
) -> Result<u64, Diagnostic> {
    let code = decode_all(insns).map_err(|e| {
        Diagnostic::new(format!("cannot decode instruction: {}", e.kind))
            .insn(e.index)
            .help(e.kind.help())
    })?;
    if code.is_empty() {
        return Err(Diagnostic::new("the program has no instructions"));
    }
    let budget = rt.config.insn_budget;
    let mut m = Machine {
        src: Source::Raw,
        rt,
        st: ExecState::new(None, mem.to_vec()),
        regs: [0; 11],
        frames: Vec::new(),
        prog: 0,
        insns: Arc::new(code),
        pc: 0,
        executed: 0,
        budget,
    };
    m.regs[1] = if mem.is_empty() {
        0
    } else {
        make_addr(REGION_MEM, 0)
    };
    m.regs[2] = mem.len() as u64;
    m.regs[10] = ExecState::frame_pointer(0);
    let r0 = match m.run() {
        Ok(v) => v,
        Err(Stop::ReturnZero) => 0,
        Err(Stop::Fault(f)) => return Err(m.diagnostic(f)),
    };
    mem.copy_from_slice(&m.st.mem);
    Ok(r0)
}
