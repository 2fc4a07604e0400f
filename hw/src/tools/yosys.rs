//! Yosys: `synth_xilinx` for LUT, flip-flop and block-RAM counts (`stat -json`, read from a
//! file written with `tee -q -o`), and the logic depth in LUT levels.
//!
//! The depth comes from a second, generic run (the coarse part of `synth`, which keeps each
//! memory whole as block RAM keeps it, then `techmap; abc -lut 6; ltp -noff`): after
//! `synth_xilinx` the flip-flops are Xilinx primitives that `ltp -noff` does not recognise, so
//! its paths run through them and mean nothing; in the generic netlist flip-flops are Yosys's
//! own cells, `-noff` cuts paths at them, and the longest path counts 6-input LUTs between
//! registers: the deepest stage's LUT levels. The same netlist, written as JSON, gives the
//! depth into every named register (`netlist_depth`), from which callers that know the
//! register names (the Verilog printer's) get each stage's depth.

use super::{probe, run_in, scratch_dir};
use serde_json::Value;
use std::collections::BTreeMap;

/// What synthesis gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynthReport {
    pub luts: u64,
    pub flip_flops: u64,
    /// Block RAM tiles (RAMB36 counted as 1, RAMB18 as one half, rounded up).
    pub brams: u64,
    /// LUTs used as distributed RAM.
    pub lutram_cells: u64,
    pub dsps: u64,
    pub carry_cells: u64,
    /// LUT levels of the longest path between registers, ports and memories: the deepest
    /// stage.
    pub lut_levels: u64,
    /// LUT levels into every named register of the generic netlist.
    pub register_depths: super::netlist_depth::RegisterDepths,
    pub cells_by_type: BTreeMap<String, u64>,
}

/// Probes Yosys; the version line or what is missing.
pub fn available() -> Result<String, String> {
    probe("yosys")
}

/// Synthesizes `verilog` with top module `top` for Xilinx 7-series/UltraScale LUT6 fabric.
pub fn synth_xilinx(top: &str, verilog: &str) -> Result<SynthReport, String> {
    available()?;
    let dir = scratch_dir("yosys")?;
    std::fs::write(dir.join("design.v"), verilog).map_err(|e| e.to_string())?;
    let script = format!(
        "read_verilog design.v; synth_xilinx -top {top} -flatten; tee -q -o stat.json stat -json"
    );
    let depth = format!(
        "read_verilog design.v; synth -top {top} -flatten -run begin:fine; opt -full; techmap; opt -fast; abc -lut 6; opt_clean; write_json depth.json; tee -q -o ltp.txt ltp -noff"
    );
    let result = run_in(&dir, "yosys", &["-q", "-p", &script])
        .and_then(|_| run_in(&dir, "yosys", &["-q", "-p", &depth]))
        .and_then(|_| {
            let stat = std::fs::read_to_string(dir.join("stat.json")).map_err(|e| e.to_string())?;
            let ltp = std::fs::read_to_string(dir.join("ltp.txt")).map_err(|e| e.to_string())?;
            let json =
                std::fs::read_to_string(dir.join("depth.json")).map_err(|e| e.to_string())?;
            let mut report = parse(top, &stat, &ltp)?;
            report.register_depths = super::netlist_depth::register_depths(&json, top)?;
            Ok(report)
        });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn parse(top: &str, stat: &str, ltp: &str) -> Result<SynthReport, String> {
    let v: Value = serde_json::from_str(stat).map_err(|e| format!("stat.json: {e}"))?;
    let module = v
        .get("modules")
        .and_then(|m| m.get(top).or_else(|| m.get(format!("\\{top}"))))
        .or_else(|| v.get("design"))
        .ok_or_else(|| format!("stat.json has no module `{top}`"))?;
    let mut r = SynthReport::default();
    if let Some(cells) = module.get("num_cells_by_type").and_then(|c| c.as_object()) {
        for (ty, n) in cells {
            let n = n.as_u64().unwrap_or(0);
            r.cells_by_type.insert(ty.clone(), n);
            let t = ty.as_str();
            if t.starts_with("LUT") && t.len() == 4 {
                r.luts += n;
            } else if t.starts_with("FD") {
                r.flip_flops += n;
            } else if t.starts_with("RAMB36") {
                r.brams += 2 * n;
            } else if t.starts_with("RAMB18") {
                r.brams += n;
            } else if t.starts_with("RAM") {
                r.lutram_cells += n;
            } else if t.starts_with("DSP") {
                r.dsps += n;
            } else if t.starts_with("CARRY") {
                r.carry_cells += n;
            }
        }
    }
    r.brams = r.brams.div_ceil(2);
    r.lut_levels = ltp
        .lines()
        .find_map(|l| {
            let i = l.find("length=")?;
            l[i + 7..]
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("ltp gave no path length: {ltp}"))?;
    Ok(r)
}
