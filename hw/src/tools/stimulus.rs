//! The line-oriented stimulus and result files of the generated testbenches (the format is
//! described in `backends::verilog::testbench`). Writing and parsing live here, beside the
//! drivers, so every simulator of the emitted RTL is fed and read the same way.

use std::fmt::Write;

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    if s.is_empty() {
        s.push_str("00");
    }
    s
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex string `{s}`"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("bad hex `{s}`: {e}")))
        .collect()
}

/// One packet of a stimulus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StimulusPacket {
    pub gap: u32,
    pub len: u16,
    pub ingress_ifindex: u32,
    pub rx_queue: u32,
    pub window: Vec<u8>,
}

/// What a testbench is told to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stimulus {
    /// Memory rows to seed: (memory, row, bytes).
    pub memory_rows: Vec<(u32, u32, Vec<u8>)>,
    /// `out_ready` per cycle from the first cycle after reset (then 1).
    pub ready: Vec<bool>,
    pub packets: Vec<StimulusPacket>,
}

impl Stimulus {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (k, row, bytes) in &self.memory_rows {
            let _ = writeln!(s, "mem {k} {row} {}", hex(bytes));
        }
        if !self.ready.is_empty() {
            let bits: String = self
                .ready
                .iter()
                .map(|&b| if b { '1' } else { '0' })
                .collect();
            let _ = writeln!(s, "ready {} {bits}", self.ready.len());
        }
        for p in &self.packets {
            let _ = writeln!(
                s,
                "pkt {} {} {} {} {}",
                p.gap,
                p.len,
                p.ingress_ifindex,
                p.rx_queue,
                hex(&p.window)
            );
        }
        s.push_str("end\n");
        s
    }
}

/// One packet leaving the design.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultPacket {
    pub cycle: u64,
    pub retval: u64,
    pub len: u16,
    pub window: Vec<u8>,
    /// `hw::pipeline::REDIRECT_*`.
    pub redirect_kind: u64,
    pub redirect_key: u64,
    pub redirect_value: Vec<u8>,
}

/// What a testbench reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestbenchResult {
    /// The cycle each packet was accepted at, by packet index.
    pub entries: Vec<u64>,
    pub outputs: Vec<ResultPacket>,
    /// Memory rows after the run: (memory, row, bytes).
    pub memory_rows: Vec<(u32, u32, Vec<u8>)>,
    pub cycles: u64,
}

impl TestbenchResult {
    pub fn parse(text: &str) -> Result<TestbenchResult, String> {
        let mut r = TestbenchResult::default();
        for (n, line) in text.lines().enumerate() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| -> Result<u64, String> {
                f.get(i)
                    .ok_or_else(|| format!("line {}: missing field {i}", n + 1))?
                    .parse::<u64>()
                    .map_err(|e| format!("line {}: {e}", n + 1))
            };
            match f.first().copied() {
                Some("in") => {
                    let i = num(1)? as usize;
                    if i != r.entries.len() {
                        return Err(format!("line {}: packet {i} accepted out of order", n + 1));
                    }
                    r.entries.push(num(2)?);
                }
                Some("out") => r.outputs.push(ResultPacket {
                    cycle: num(1)?,
                    retval: u64::from_str_radix(f.get(2).copied().unwrap_or(""), 16)
                        .map_err(|e| format!("line {}: {e}", n + 1))?,
                    len: num(3)? as u16,
                    window: unhex(f.get(4).copied().unwrap_or(""))?,
                    redirect_kind: num(5)?,
                    redirect_key: num(6)?,
                    redirect_value: unhex(f.get(7).copied().unwrap_or(""))?,
                }),
                Some("mem") => r.memory_rows.push((
                    num(1)? as u32,
                    num(2)? as u32,
                    unhex(f.get(3).copied().unwrap_or(""))?,
                )),
                Some("cycles") => r.cycles = num(1)?,
                None => {}
                Some(other) => return Err(format!("line {}: unknown record `{other}`", n + 1)),
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_parse_and_stimulus_prints() {
        let r = TestbenchResult::parse(
            "in 0 0\nout 3 0000000000000002 60 0a0b 2 7 01\nmem 0 1 ff00\ncycles 9\n",
        )
        .unwrap();
        assert_eq!(r.entries, vec![0]);
        assert_eq!(r.outputs[0].retval, 2);
        assert_eq!(r.outputs[0].window, vec![10, 11]);
        assert_eq!(
            (r.outputs[0].redirect_kind, r.outputs[0].redirect_key),
            (2, 7)
        );
        assert_eq!(r.outputs[0].redirect_value, vec![1]);
        assert_eq!(r.memory_rows, vec![(0, 1, vec![255, 0])]);
        assert_eq!(r.cycles, 9);
        let s = Stimulus {
            memory_rows: vec![(0, 2, vec![1])],
            ready: vec![true, false],
            packets: vec![StimulusPacket {
                gap: 0,
                len: 60,
                ingress_ifindex: 1,
                rx_queue: 0,
                window: vec![0xab],
            }],
        };
        assert_eq!(
            s.to_text(),
            "mem 0 2 01\nready 2 10\npkt 0 60 1 0 ab\nend\n"
        );
    }
}
