//! The stimulus and result files of the shell testbench (`backends/src/verilog/shell_tb.v`
//! describes the commands): AXI4-Stream beats, AXI4-Lite reads, writes and polls, and the beats
//! and register values that come back. Packets are cut into beats here and reassembled from
//! beats here, so every simulator of a shell is fed and read the same way.

use std::fmt::Write;

/// One command of the shell testbench.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShellCommand {
    /// `m_axis_tready` from an LFSR: high when its low byte is below `threshold` (256 = always).
    Ready {
        seed: u32,
        threshold: u32,
    },
    /// Wait this many cycles.
    Idle(u32),
    /// One AXI4-Stream beat, offered `gap` cycles after the previous command ended.
    Beat {
        gap: u32,
        size: u16,
        src: u16,
        last: bool,
        /// The beat's bytes (byte 0 in `tdata[7:0]`), at most the bus width.
        data: Vec<u8>,
    },
    Write {
        addr: u32,
        data: u32,
    },
    Read {
        addr: u32,
    },
    /// Read `addr` until it holds `value`.
    Poll {
        addr: u32,
        value: u32,
    },
}

/// A whole stimulus for a bus of `data_width` bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellStimulus {
    pub data_width: u32,
    pub commands: Vec<ShellCommand>,
}

impl ShellStimulus {
    pub fn new(data_width: u32) -> ShellStimulus {
        ShellStimulus {
            data_width,
            commands: Vec::new(),
        }
    }

    /// Bytes per beat.
    pub fn beat_bytes(&self) -> usize {
        (self.data_width / 8) as usize
    }

    /// Appends `packet` as beats from port `src`, the first one offered `gap` cycles after the
    /// previous command; an empty packet is sent as one beat of size 0.
    pub fn packet(&mut self, packet: &[u8], src: u16, gap: u32) {
        let bb = self.beat_bytes().max(1);
        let size = packet.len().min(u16::MAX as usize) as u16;
        let chunks: Vec<&[u8]> = if packet.is_empty() {
            vec![&[][..]]
        } else {
            packet.chunks(bb).collect()
        };
        let n = chunks.len();
        for (k, chunk) in chunks.into_iter().enumerate() {
            self.commands.push(ShellCommand::Beat {
                gap: if k == 0 { gap } else { 0 },
                size,
                src,
                last: k + 1 == n,
                data: chunk.to_vec(),
            });
        }
    }

    pub fn to_text(&self) -> String {
        let digits = self.data_width.div_ceil(4) as usize;
        let mut s = String::new();
        for c in &self.commands {
            match c {
                ShellCommand::Ready { seed, threshold } => {
                    let _ = writeln!(s, "s {seed:x} {threshold}");
                }
                ShellCommand::Idle(n) => {
                    let _ = writeln!(s, "g {n}");
                }
                ShellCommand::Beat {
                    gap,
                    size,
                    src,
                    last,
                    data,
                } => {
                    // Most significant byte first, as `%h` reads a number.
                    let mut hex = String::with_capacity(digits);
                    for b in data.iter().rev() {
                        let _ = write!(hex, "{b:02x}");
                    }
                    let hex = format!("{hex:0>digits$}");
                    let _ = writeln!(s, "b {gap} {size:x} {src:x} {} {hex}", u8::from(*last));
                }
                ShellCommand::Write { addr, data } => {
                    let _ = writeln!(s, "w {addr:x} {data:x}");
                }
                ShellCommand::Read { addr } => {
                    let _ = writeln!(s, "r {addr:x}");
                }
                ShellCommand::Poll { addr, value } => {
                    let _ = writeln!(s, "p {addr:x} {value:x}");
                }
            }
        }
        s.push_str("e\n");
        s
    }
}

/// One beat that left the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutBeat {
    pub cycle: u64,
    pub src: u16,
    pub dst: u16,
    pub size: u16,
    pub last: bool,
    /// `tkeep`, bit i for byte i.
    pub keep: Vec<bool>,
    /// The beat's bytes, byte 0 first.
    pub data: Vec<u8>,
}

/// A packet reassembled from output beats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutPacket {
    pub src: u16,
    pub dst: u16,
    pub size: u16,
    pub bytes: Vec<u8>,
    /// The cycle its last beat left.
    pub cycle: u64,
}

/// What the shell testbench reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShellResult {
    /// The cycle each input beat was taken at.
    pub accepted: Vec<u64>,
    pub beats: Vec<OutBeat>,
    /// AXI4-Lite reads: (address, value), in order.
    pub reads: Vec<(u32, u32)>,
    pub cycles: u64,
}

fn hex_bytes_le(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("bad hex `{s}` (x or z bits in the output?)"));
    }
    let mut v: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect();
    v.reverse();
    Ok(v)
}

impl ShellResult {
    pub fn parse(text: &str) -> Result<ShellResult, String> {
        let mut r = ShellResult::default();
        let mut finished = false;
        for (n, line) in text.lines().enumerate() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let field = |i: usize| {
                f.get(i)
                    .copied()
                    .ok_or_else(|| format!("line {}: missing field {i}: `{line}`", n + 1))
            };
            let dec = |i: usize| -> Result<u64, String> {
                field(i)?
                    .parse::<u64>()
                    .map_err(|e| format!("line {}: {e}: `{line}`", n + 1))
            };
            let hex = |i: usize| -> Result<u64, String> {
                u64::from_str_radix(field(i)?, 16)
                    .map_err(|e| format!("line {}: {e}: `{line}`", n + 1))
            };
            match f.first().copied() {
                Some("a") => r.accepted.push(dec(1)?),
                Some("o") => {
                    let keep_bytes = hex_bytes_le(&format!(
                        "{}{}",
                        if field(6)?.len() % 2 == 1 { "0" } else { "" },
                        field(6)?
                    ))?;
                    let data = hex_bytes_le(field(7)?)?;
                    let keep = (0..data.len())
                        .map(|i| keep_bytes.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1))
                        .collect();
                    r.beats.push(OutBeat {
                        cycle: dec(1)?,
                        src: hex(2)? as u16,
                        dst: hex(3)? as u16,
                        size: hex(4)? as u16,
                        last: dec(5)? != 0,
                        keep,
                        data,
                    });
                }
                Some("r") => r.reads.push((hex(1)? as u32, hex(2)? as u32)),
                Some("cycles") => {
                    r.cycles = dec(1)?;
                    finished = true;
                }
                Some("timeout") => {
                    return Err(format!(
                        "the testbench gave up after {} cycles (the shell stopped making progress)",
                        dec(1)?
                    ))
                }
                None => {}
                Some(other) => return Err(format!("line {}: unknown record `{other}`", n + 1)),
            }
        }
        if !finished {
            return Err("the testbench ended without reporting its cycles".into());
        }
        Ok(r)
    }

    /// The packets the output beats form, in order; an error when a beat breaks the AXI4-Stream
    /// rules OpenNIC states (`tkeep` all ones except on the last beat, `tuser_*` constant).
    pub fn packets(&self) -> Result<Vec<OutPacket>, String> {
        let mut out = Vec::new();
        let mut cur: Option<OutPacket> = None;
        for (k, b) in self.beats.iter().enumerate() {
            let p = cur.get_or_insert_with(|| OutPacket {
                src: b.src,
                dst: b.dst,
                size: b.size,
                bytes: Vec::new(),
                cycle: b.cycle,
            });
            if (p.src, p.dst, p.size) != (b.src, b.dst, b.size) {
                return Err(format!("beat {k}: tuser changed in the middle of a packet"));
            }
            let kept = b.keep.iter().take_while(|&&x| x).count();
            if b.keep[kept..].iter().any(|&x| x) || (!b.last && kept != b.keep.len()) {
                return Err(format!("beat {k}: tkeep {:?} is not a prefix mask", b.keep));
            }
            p.bytes.extend_from_slice(&b.data[..kept]);
            p.cycle = b.cycle;
            if b.last {
                if let Some(p) = cur.take() {
                    if p.bytes.len() != p.size as usize {
                        return Err(format!(
                            "beat {k}: the packet has {} bytes but tuser_size says {}",
                            p.bytes.len(),
                            p.size
                        ));
                    }
                    out.push(p);
                }
            }
        }
        if cur.is_some() {
            return Err("the last packet has no tlast".into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_cut_into_beats_and_reassembled() {
        let mut s = ShellStimulus::new(32);
        s.packet(&[1, 2, 3, 4, 5, 6], 0x40, 2);
        s.commands.push(ShellCommand::Poll {
            addr: 0x20,
            value: 1,
        });
        assert_eq!(
            s.to_text(),
            "b 2 6 40 0 04030201\nb 0 6 40 1 00000605\np 20 1\ne\n"
        );
        let r = ShellResult::parse(
            "a 4\na 5\no 9 0040 0001 0006 0 f 04030201\no 10 0040 0001 0006 1 3 00000605\nr 00000020 00000001\ncycles 12\n",
        )
        .unwrap();
        assert_eq!(r.accepted, vec![4, 5]);
        assert_eq!(r.reads, vec![(0x20, 1)]);
        let p = r.packets().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].bytes, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!((p[0].src, p[0].dst, p[0].cycle), (0x40, 1, 10));
        assert!(ShellResult::parse("a 1\n").is_err(), "no cycles line");
        assert!(ShellResult::parse("timeout 5\n").is_err());
    }
}
