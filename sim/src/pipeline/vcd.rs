//! Waveforms of a pipeline run in the Value Change Dump format (IEEE 1364 section 18), so a
//! run of the simulator can be opened in GTKWave beside a Verilator trace of the emitted RTL.
//! The signals carry the Verilog names (`vB` valid bits, `rB_nK` pipeline registers), and each
//! cycle is 10 time units: the rising edge at `10 * cycle`, the falling edge 5 units later.
//!
//! Deviation from the design note: the format is written here directly rather than through the
//! `vcd` crate, because the writer needs only headers and value changes (about sixty lines) and
//! adding a dependency to the shared manifest was not worth it for that.

use super::exec::{PipelineSim, Val};
use std::fmt::Write;

/// Collects value changes cycle by cycle and renders the file at the end.
pub struct VcdWriter {
    signals: Vec<(String, u32)>,
    body: String,
    last: Vec<Option<String>>,
}

fn code(i: usize) -> String {
    // Identifier codes are printable ASCII from '!' to '~', in base 94.
    let mut n = i;
    let mut s = String::new();
    loop {
        s.push((b'!' + (n % 94) as u8) as char);
        n /= 94;
        if n == 0 {
            break;
        }
    }
    s
}

fn bits_of(v: &Val, width: u32) -> String {
    let mut s = String::with_capacity(width as usize);
    for i in (0..width).rev() {
        let bit = match v {
            Val::Bits(x) => i < 64 && (x >> i) & 1 == 1,
            Val::Bytes(b) => b
                .get((i / 8) as usize)
                .is_some_and(|byte| (byte >> (i % 8)) & 1 == 1),
        };
        s.push(if bit { '1' } else { '0' });
    }
    s
}

impl VcdWriter {
    /// A writer for the signals of `sim`'s block.
    pub fn new(sim: &PipelineSim) -> VcdWriter {
        let block = sim.block;
        let mut signals = vec![
            ("clk".to_string(), 1),
            ("in_valid".to_string(), 1),
            ("out_ready".to_string(), 1),
        ];
        for b in 1..=block.stages {
            signals.push((format!("v{b}"), 1));
        }
        for r in block.registers() {
            signals.push((
                format!("r{}_n{}", r.boundary, r.node),
                block.node(r.node).shape.bits(),
            ));
        }
        let n = signals.len();
        VcdWriter {
            signals,
            body: String::new(),
            last: vec![None; n],
        }
    }

    fn change(&mut self, i: usize, value: String) {
        if self.last[i].as_ref() != Some(&value) {
            let width = self.signals[i].1;
            if width == 1 {
                let _ = writeln!(self.body, "{value}{}", code(i));
            } else {
                let _ = writeln!(self.body, "b{value} {}", code(i));
            }
            self.last[i] = Some(value);
        }
    }

    /// Records the state after a cycle: the inputs of that cycle, then the registers as the
    /// rising edge left them.
    pub fn record(&mut self, sim: &PipelineSim, in_valid: bool, out_ready: bool) {
        let cycle = sim.cycle.saturating_sub(1);
        let _ = writeln!(self.body, "#{}", cycle * 10);
        self.change(0, "1".into());
        self.change(1, if in_valid { "1" } else { "0" }.into());
        self.change(2, if out_ready { "1" } else { "0" }.into());
        let block = sim.block;
        for b in 1..=block.stages {
            let v = if sim.valid(b) { "1" } else { "0" };
            self.change(2 + b as usize, v.into());
        }
        let base = 3 + block.stages as usize;
        for (k, r) in block.registers().iter().enumerate() {
            let width = block.node(r.node).shape.bits();
            let value = sim
                .register(r.boundary, r.node)
                .map(|v| bits_of(v, width))
                .unwrap_or_else(|| "0".repeat(width as usize));
            self.change(base + k, value);
        }
        let _ = writeln!(self.body, "#{}", cycle * 10 + 5);
        self.change(0, "0".into());
    }

    /// The whole file.
    pub fn finish(&self, module: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "$version nicc pipeline simulator $end");
        let _ = writeln!(s, "$timescale 1ns $end");
        let _ = writeln!(s, "$scope module {module} $end");
        for (i, (name, width)) in self.signals.iter().enumerate() {
            let _ = writeln!(s, "$var wire {width} {} {name} $end", code(i));
        }
        let _ = writeln!(s, "$upscope $end\n$enddefinitions $end");
        s.push_str(&self.body);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_codes_are_distinct_printable_ascii() {
        let codes: std::collections::HashSet<String> = (0..10_000).map(code).collect();
        assert_eq!(codes.len(), 10_000);
        assert!(codes
            .iter()
            .all(|c| c.bytes().all(|b| (b'!'..=b'~').contains(&b))));
    }

    #[test]
    fn values_print_most_significant_bit_first() {
        assert_eq!(bits_of(&Val::Bits(0b101), 4), "0101");
        assert_eq!(
            bits_of(&Val::Bytes(vec![0x01, 0x80]), 16),
            "1000000000000001"
        );
    }
}
