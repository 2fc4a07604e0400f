//! Packet captures in and out.
//!
//! Reading goes through `pcap-parser`, which copes with the malformed captures that real corpora
//! are full of: a capture whose tail is damaged yields the packets before the damage and a
//! warning, never a panic. Writing is a few lines of our own, because the legacy pcap format is
//! two fixed headers and nothing else.

use pcap_parser::pcapng::Block;
use pcap_parser::{LegacyPcapSlice, PcapBlockOwned, PcapNGSlice};
use std::io::{self, Write};
use std::path::Path;

/// `LINKTYPE_ETHERNET`, the only link type an XDP program sees.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub ts_sec: u32,
    /// Microseconds (or nanoseconds for nanosecond captures, which we write back as micro).
    pub ts_usec: u32,
    /// The link type of the interface the packet was captured on.
    pub linktype: u32,
    /// The captured bytes (possibly fewer than the packet had on the wire).
    pub data: Vec<u8>,
    /// The length on the wire.
    pub orig_len: u32,
}

/// The packets of a capture, and what could not be read.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    pub packets: Vec<Packet>,
    /// Problems met while reading (a truncated record, an unknown block); reading stops at the
    /// first damaged record because the record boundaries after it cannot be trusted.
    pub warnings: Vec<String>,
}

impl Capture {
    /// The packets captured on Ethernet interfaces.
    pub fn ethernet(&self) -> impl Iterator<Item = &Packet> {
        self.packets
            .iter()
            .filter(|p| p.linktype == LINKTYPE_ETHERNET)
    }
}

/// Reads a pcap or pcapng file.
pub fn read_file(path: &Path) -> Result<Capture, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read capture {}: {e}", path.display()))?;
    read_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a pcap or pcapng capture held in memory.
pub fn read_bytes(bytes: &[u8]) -> Result<Capture, String> {
    let mut capture = Capture::default();
    if let Ok(slice) = PcapNGSlice::from_slice(bytes) {
        // Each interface description block fixes the link type of the packets that name it.
        let mut linktypes: Vec<u32> = Vec::new();
        for (n, block) in slice.enumerate() {
            match block {
                Ok(PcapBlockOwned::NG(Block::SectionHeader(_))) => linktypes.clear(),
                Ok(PcapBlockOwned::NG(Block::InterfaceDescription(idb))) => {
                    linktypes.push(idb.linktype.0 as u32)
                }
                Ok(PcapBlockOwned::NG(Block::EnhancedPacket(epb))) => {
                    let caplen = (epb.caplen as usize).min(epb.data.len());
                    let ts = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                    capture.packets.push(Packet {
                        ts_sec: (ts / 1_000_000) as u32,
                        ts_usec: (ts % 1_000_000) as u32,
                        linktype: linktypes.get(epb.if_id as usize).copied().unwrap_or(0),
                        data: epb.data[..caplen].to_vec(),
                        orig_len: epb.origlen,
                    })
                }
                Ok(PcapBlockOwned::NG(Block::SimplePacket(spb))) => {
                    let caplen = (spb.origlen as usize).min(spb.data.len());
                    capture.packets.push(Packet {
                        ts_sec: 0,
                        ts_usec: 0,
                        linktype: linktypes.first().copied().unwrap_or(0),
                        data: spb.data[..caplen].to_vec(),
                        orig_len: spb.origlen,
                    })
                }
                Ok(_) => {}
                Err(e) => {
                    capture.warnings.push(format!(
                        "pcapng block {n} is damaged ({e:?}); reading stopped"
                    ));
                    break;
                }
            }
        }
        return Ok(capture);
    }
    let slice = LegacyPcapSlice::from_slice(bytes)
        .map_err(|_| "not a pcap or pcapng capture (unknown header)".to_string())?;
    let linktype = slice.header.network.0 as u32;
    for (n, block) in slice.enumerate() {
        match block {
            Ok(PcapBlockOwned::Legacy(b)) => {
                let caplen = (b.caplen as usize).min(b.data.len());
                capture.packets.push(Packet {
                    ts_sec: b.ts_sec,
                    ts_usec: b.ts_usec,
                    linktype,
                    data: b.data[..caplen].to_vec(),
                    orig_len: b.origlen,
                })
            }
            Ok(_) => {}
            Err(e) => {
                capture.warnings.push(format!(
                    "pcap record {n} is damaged ({e:?}); reading stopped"
                ));
                break;
            }
        }
    }
    Ok(capture)
}

/// Writes packets as a legacy little-endian microsecond pcap file.
pub fn write<W: Write>(mut out: W, linktype: u32, packets: &[Packet]) -> io::Result<()> {
    let snaplen = packets
        .iter()
        .map(|p| p.data.len() as u32)
        .max()
        .unwrap_or(0)
        .max(65535);
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&0i32.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&snaplen.to_le_bytes());
    header.extend_from_slice(&linktype.to_le_bytes());
    out.write_all(&header)?;
    for p in packets {
        let len = p.data.len() as u32;
        let mut rec = Vec::with_capacity(16 + p.data.len());
        rec.extend_from_slice(&p.ts_sec.to_le_bytes());
        rec.extend_from_slice(&p.ts_usec.to_le_bytes());
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&p.orig_len.max(len).to_le_bytes());
        rec.extend_from_slice(&p.data);
        out.write_all(&rec)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_captures_read_back() {
        let packets = vec![
            Packet {
                ts_sec: 1,
                ts_usec: 2,
                linktype: LINKTYPE_ETHERNET,
                data: vec![0xaa; 60],
                orig_len: 60,
            },
            Packet {
                ts_sec: 3,
                ts_usec: 4,
                linktype: LINKTYPE_ETHERNET,
                data: vec![1, 2, 3],
                orig_len: 1500,
            },
        ];
        let mut buf = Vec::new();
        write(&mut buf, LINKTYPE_ETHERNET, &packets).unwrap();
        let back = read_bytes(&buf).unwrap();
        assert!(back.warnings.is_empty());
        assert_eq!(back.packets, packets);
    }

    #[test]
    fn a_damaged_tail_keeps_the_packets_before_it() {
        let packets = vec![
            Packet {
                ts_sec: 1,
                ts_usec: 0,
                linktype: LINKTYPE_ETHERNET,
                data: vec![7; 20],
                orig_len: 20,
            };
            3
        ];
        let mut buf = Vec::new();
        write(&mut buf, LINKTYPE_ETHERNET, &packets).unwrap();
        buf.truncate(buf.len() - 5);
        let back = read_bytes(&buf).unwrap();
        assert_eq!(back.packets.len(), 2);
        assert_eq!(back.warnings.len(), 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_bytes(b"Lice is not a capture").is_err());
        assert!(read_bytes(&[]).is_err());
    }
}
