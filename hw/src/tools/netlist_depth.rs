//! LUT levels per register, measured on the netlist Yosys makes (`write_json` after the
//! coarse part of `synth -flatten`, generic techmapping and `abc -lut 6`), so that the depth of
//! every pipeline stage can be set beside the delay model's prediction for it.
//!
//! Yosys's own `ltp -noff` gives only the single longest path of a design; a pipeline has one
//! budget per stage, and the scheduler has to know which stage is deep and why. Here every
//! flip-flop input is given the number of 6-input LUTs on the longest path that reaches it from
//! a flip-flop output or an input port, and the flip-flops are grouped by the name Yosys kept
//! for the signal they drive (`r3_n17`, `mem0[5]`, `v2`): the Verilog printer's names, which
//! say which stage a register belongs to.

use serde_json::Value;
use std::collections::BTreeMap;

/// The deepest path into each named register of a netlist, in LUT levels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterDepths {
    /// Register name (without the bit index) to the LUT levels of its deepest input.
    pub by_register: BTreeMap<String, u32>,
    /// The deepest path into an output port, in LUT levels.
    pub outputs: u32,
}

impl RegisterDepths {
    /// The deepest of all paths.
    pub fn deepest(&self) -> u32 {
        self.by_register
            .values()
            .copied()
            .max()
            .unwrap_or(0)
            .max(self.outputs)
    }
}

/// A bit of the netlist: Yosys numbers signals from 2; constants are strings.
fn bit_id(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// True for the flip-flop and latch cells of Yosys's generic library (`$_DFF_P_`,
/// `$_SDFFCE_PP0P_`, `$dff`, `$_DLATCH_P_`, ...) and for memories whose read ports are all
/// clocked: their outputs start paths and their inputs end them. A memory kept whole
/// (`memory -nomap`) is what block RAM is on the FPGA, a registered read; mapping it to
/// flip-flops instead would measure multiplexer trees the real design does not have (and
/// costs Yosys ten times the time).
fn is_register_cell(kind: &str, cell: &Value) -> bool {
    if kind == "$mem_v2" || kind == "$mem" {
        return cell
            .get("parameters")
            .and_then(|p| p.get("RD_CLK_ENABLE"))
            .and_then(Value::as_str)
            .is_some_and(|bits| bits.chars().all(|b| b == '1'));
    }
    kind.contains("DFF") || kind.contains("dff") || kind.contains("DLATCH") || kind == "$ff"
}

/// The clock inputs of registers and memories, which no logic path ends at.
fn is_clock_port(port: &str) -> bool {
    matches!(port, "C" | "CLK" | "RD_CLK" | "WR_CLK")
}

/// The register name a netname stands for: `mem0[5]` for a memory word, `r3_n17` for bit 4 of
/// `r3_n17` (Yosys names nets, not bits).
fn register_name(net: &str) -> String {
    net.trim_start_matches('\\').to_string()
}

/// Measures `top` in the JSON netlist `json`.
pub fn register_depths(json: &str, top: &str) -> Result<RegisterDepths, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("netlist JSON: {e}"))?;
    let module = v
        .get("modules")
        .and_then(|m| m.get(top))
        .ok_or_else(|| format!("the netlist has no module `{top}`"))?;
    let empty = serde_json::Map::new();
    let cells = module
        .get("cells")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    // Which cell drives each bit, the bits each cell's output depends on, and the bits at
    // which paths end (a register's inputs; a memory's write ports).
    let mut driver: BTreeMap<u64, usize> = BTreeMap::new();
    let mut inputs_of: Vec<Vec<u64>> = Vec::with_capacity(cells.len());
    let mut ends_of: Vec<Vec<u64>> = Vec::with_capacity(cells.len());
    let mut is_register: Vec<bool> = Vec::with_capacity(cells.len());
    for (index, cell) in cells.values().enumerate() {
        let kind = cell.get("type").and_then(Value::as_str).unwrap_or("");
        let register = is_register_cell(kind, cell);
        let memory = kind == "$mem_v2" || kind == "$mem";
        let dirs = cell.get("port_directions").and_then(Value::as_object);
        let conns = cell.get("connections").and_then(Value::as_object);
        let (mut ins, mut ends) = (Vec::new(), Vec::new());
        if let (Some(dirs), Some(conns)) = (dirs, conns) {
            for (port, bits) in conns {
                let dir = dirs.get(port).and_then(Value::as_str).unwrap_or("input");
                for bit in bits.as_array().into_iter().flatten().filter_map(bit_id) {
                    if dir == "output" {
                        driver.insert(bit, index);
                    } else if is_clock_port(port) {
                        continue;
                    } else if register || (memory && port.starts_with("WR_")) {
                        ends.push(bit);
                    } else {
                        // An unregistered memory read is logic from its read address on.
                        ins.push(bit);
                    }
                }
            }
        }
        inputs_of.push(ins);
        ends_of.push(ends);
        is_register.push(register);
    }
    // LUT levels at each cell's output, computed in an order where a cell's inputs come first
    // (an explicit stack: no recursion on large netlists). A combinational loop, which a
    // pipeline has none of, would be cut where it closes.
    let mut level: Vec<Option<u32>> = vec![None; inputs_of.len()];
    let mut on_stack = vec![false; inputs_of.len()];
    let level_of_bit = |level: &Vec<Option<u32>>, bit: u64| -> Option<u32> {
        match driver.get(&bit) {
            None => Some(0),
            Some(&c) if is_register[c] => Some(0),
            Some(&c) => level[c],
        }
    };
    for start in 0..inputs_of.len() {
        if is_register[start] || level[start].is_some() {
            continue;
        }
        let mut stack = vec![start];
        while let Some(&c) = stack.last() {
            on_stack[c] = true;
            let pending: Vec<usize> = inputs_of[c]
                .iter()
                .filter_map(|b| driver.get(b).copied())
                .filter(|&d| !is_register[d] && level[d].is_none() && !on_stack[d])
                .collect();
            if pending.is_empty() {
                let deepest = inputs_of[c]
                    .iter()
                    .map(|&b| level_of_bit(&level, b).unwrap_or(0))
                    .max()
                    .unwrap_or(0);
                level[c] = Some(deepest + 1);
                on_stack[c] = false;
                stack.pop();
            } else {
                stack.extend(pending);
            }
        }
    }
    // Name every register cell by the net its output drives.
    let mut name_of_bit: BTreeMap<u64, String> = BTreeMap::new();
    if let Some(nets) = module.get("netnames").and_then(Value::as_object) {
        for (name, net) in nets {
            if name.starts_with('$') {
                continue;
            }
            for bit in net
                .get("bits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(bit_id)
            {
                name_of_bit
                    .entry(bit)
                    .or_insert_with(|| register_name(name));
            }
        }
    }
    let mut depths = RegisterDepths::default();
    for (index, cell) in cells.values().enumerate() {
        if ends_of[index].is_empty() {
            continue;
        }
        let deepest = ends_of[index]
            .iter()
            .map(|&b| level_of_bit(&level, b).unwrap_or(0))
            .max()
            .unwrap_or(0);
        // A memory is named by its Verilog name; a flip-flop by the net its output drives.
        let memory = cell
            .get("parameters")
            .and_then(|p| p.get("MEMID"))
            .and_then(Value::as_str)
            .map(register_name);
        let q = cell
            .get("connections")
            .and_then(|c| c.get("Q"))
            .and_then(Value::as_array)
            .and_then(|bits| bits.first())
            .and_then(bit_id);
        let name = memory
            .or_else(|| q.and_then(|b| name_of_bit.get(&b).cloned()))
            .unwrap_or_else(|| "(unnamed)".to_string());
        let slot = depths.by_register.entry(name).or_insert(0);
        *slot = (*slot).max(deepest);
    }
    if let Some(ports) = module.get("ports").and_then(Value::as_object) {
        for port in ports.values() {
            if port.get("direction").and_then(Value::as_str) != Some("output") {
                continue;
            }
            for bit in port
                .get("bits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(bit_id)
            {
                depths.outputs = depths.outputs.max(level_of_bit(&level, bit).unwrap_or(0));
            }
        }
    }
    Ok(depths)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two LUTs in a chain between register `a` and register `b`, one LUT to the output port.
    const CHAIN: &str = r#"{"modules": {"t": {
        "ports": {"clk": {"direction": "input", "bits": [2]},
                  "x": {"direction": "input", "bits": [3]},
                  "y": {"direction": "output", "bits": [7]}},
        "cells": {
          "ra": {"type": "$_DFF_P_", "port_directions": {"C": "input", "D": "input", "Q": "output"},
                 "connections": {"C": [2], "D": [3], "Q": [4]}},
          "l1": {"type": "$lut", "port_directions": {"A": "input", "Y": "output"},
                 "connections": {"A": [4, 3], "Y": [5]}},
          "l2": {"type": "$lut", "port_directions": {"A": "input", "Y": "output"},
                 "connections": {"A": [5, "1"], "Y": [6]}},
          "rb": {"type": "$_DFFE_PP_", "port_directions": {"C": "input", "D": "input", "E": "input", "Q": "output"},
                 "connections": {"C": [2], "D": [6], "E": [3], "Q": [8]}},
          "l3": {"type": "$lut", "port_directions": {"A": "input", "Y": "output"},
                 "connections": {"A": [8], "Y": [7]}}
        },
        "netnames": {"a": {"bits": [4]}, "b": {"bits": [8]}, "$auto$1": {"bits": [5]}}
    }}}"#;

    #[test]
    fn levels_count_luts_between_registers() {
        let d = register_depths(CHAIN, "t").unwrap();
        assert_eq!(d.by_register.get("a"), Some(&0), "{d:?}");
        assert_eq!(d.by_register.get("b"), Some(&2), "{d:?}");
        assert_eq!(d.outputs, 1);
        assert_eq!(d.deepest(), 2);
    }

    /// A LUT into a memory's write data, and the memory's read data through a LUT into a
    /// register; `RD_CLK_ENABLE` says whether the read port is registered.
    fn memory_netlist(rd_clk_enable: &str) -> String {
        format!(
            r#"{{"modules": {{"t": {{
            "ports": {{"clk": {{"direction": "input", "bits": [2]}},
                      "x": {{"direction": "input", "bits": [3]}}}},
            "cells": {{
              "l1": {{"type": "$lut", "port_directions": {{"A": "input", "Y": "output"}},
                     "connections": {{"A": [3], "Y": [4]}}}},
              "m": {{"type": "$mem_v2",
                    "parameters": {{"MEMID": "\\mem0", "RD_CLK_ENABLE": "{rd_clk_enable}"}},
                    "port_directions": {{"RD_CLK": "input", "RD_ADDR": "input", "RD_DATA": "output",
                                        "WR_CLK": "input", "WR_DATA": "input"}},
                    "connections": {{"RD_CLK": [2], "RD_ADDR": [3], "RD_DATA": [5],
                                    "WR_CLK": [2], "WR_DATA": [4]}}}},
              "l2": {{"type": "$lut", "port_directions": {{"A": "input", "Y": "output"}},
                     "connections": {{"A": [5], "Y": [6]}}}},
              "r": {{"type": "$_DFF_P_", "port_directions": {{"C": "input", "D": "input", "Q": "output"}},
                    "connections": {{"C": [2], "D": [6], "Q": [7]}}}}
            }},
            "netnames": {{"q": {{"bits": [7]}}}}
        }}}}}}"#
        )
    }

    #[test]
    fn a_registered_memory_read_starts_a_path_and_its_write_ends_one() {
        let d = register_depths(&memory_netlist("1"), "t").unwrap();
        assert_eq!(d.by_register.get("mem0"), Some(&1), "{d:?}");
        assert_eq!(d.by_register.get("q"), Some(&1), "{d:?}");
        // An unregistered read is logic: the path from its address runs through it into `q`,
        // while the path into its write data still ends at the memory.
        let d = register_depths(&memory_netlist("0"), "t").unwrap();
        assert_eq!(d.by_register.get("mem0"), Some(&1), "{d:?}");
        assert_eq!(d.by_register.get("q"), Some(&2), "{d:?}");
    }

    #[test]
    fn a_missing_module_is_an_error() {
        let err = register_depths(CHAIN, "u").unwrap_err();
        assert!(err.contains("`u`"), "{err}");
        assert!(register_depths("not json", "t").is_err());
    }
}
