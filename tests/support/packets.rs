//! Packets built to reach the interesting branches of the corpus's XDP programs: every common
//! L3/L4 combination, VLAN tags, IP options and fragments, TTL and hop-limit edges, and a range
//! of sizes. The pcap corpus is mostly exotic protocols, so without these most programs would
//! only ever see their "not IPv4, pass" path.

use etherparse::{PacketBuilder, VlanId};

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// IPv4 addresses the generated packets use; tests seed maps with some of them.
pub const V4_ADDRS: [[u8; 4]; 4] = [
    [10, 0, 0, 1],
    [192, 168, 1, 10],
    [198, 18, 0, 7],
    [8, 8, 8, 8],
];

fn build(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    f(&mut v);
    v
}

/// Returns the generated packets, deterministic and in a fixed order.
pub fn generated() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let payload_sizes = [0usize, 18, 200, 1400];
    for (n, src) in V4_ADDRS.iter().enumerate() {
        let dst = V4_ADDRS[(n + 1) % V4_ADDRS.len()];
        for &ttl in &[1u8, 64] {
            for (i, &size) in payload_sizes.iter().enumerate() {
                let payload = vec![(n * 16 + i) as u8; size];
                for &(sport, dport) in &[(12345u16, 53u16), (4000, 80), (53, 9), (1234, 4789)] {
                    out.push(build(|v| {
                        PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
                            .ipv4(*src, dst, ttl)
                            .udp(sport, dport)
                            .write(v, &payload)
                            .expect("udp packet")
                    }));
                    out.push(build(|v| {
                        PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
                            .ipv4(*src, dst, ttl)
                            .tcp(sport, dport, 1000 + i as u32, 65535)
                            .syn()
                            .write(v, &payload)
                            .expect("tcp packet")
                    }));
                }
                out.push(build(|v| {
                    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
                        .ipv4(*src, dst, ttl)
                        .icmpv4_echo_request(7, i as u16)
                        .write(v, &payload)
                        .expect("icmp packet")
                }));
            }
        }
        // The same flows behind one and two VLAN tags.
        out.push(build(|v| {
            PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
                .single_vlan(VlanId::try_new(100).expect("vlan id"))
                .ipv4(*src, dst, 64)
                .udp(1000, 2000)
                .write(v, &[0xab; 32])
                .expect("vlan packet")
        }));
        out.push(build(|v| {
            PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
                .double_vlan(
                    VlanId::try_new(10).expect("vlan id"),
                    VlanId::try_new(20).expect("vlan id"),
                )
                .ipv4(*src, dst, 64)
                .tcp(1000, 80, 1, 1024)
                .write(v, &[0xcd; 32])
                .expect("qinq packet")
        }));
    }
    // VLAN 4011 is the id prototype-kernel's xdp_vlan01 drops.
    out.push(build(|v| {
        PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
            .single_vlan(VlanId::try_new(4011).expect("vlan id"))
            .ipv4(V4_ADDRS[0], V4_ADDRS[1], 64)
            .udp(1000, 2000)
            .write(v, &[0xab; 32])
            .expect("vlan 4011 packet")
    }));
    let v6a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let v6b = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    for &hop in &[1u8, 64] {
        for &size in &[0usize, 64, 1200] {
            out.push(build(|v| {
                PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
                    .ipv6(v6a, v6b, hop)
                    .udp(5000, 53)
                    .write(v, &vec![0x66; size])
                    .expect("v6 udp")
            }));
            out.push(build(|v| {
                PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
                    .ipv6(v6b, v6a, hop)
                    .tcp(443, 5000, 9, 4096)
                    .write(v, &vec![0x77; size])
                    .expect("v6 tcp")
            }));
            out.push(build(|v| {
                PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
                    .ipv6(v6a, v6b, hop)
                    .icmpv6_echo_request(1, 2)
                    .write(v, &vec![0x88; size])
                    .expect("v6 icmp")
            }));
        }
    }
    // Hand-patched IPv4 variants that builders do not make: options, fragments, other
    // protocols (GRE, IP-in-IP), a wrong version, and a truncated header.
    let base = build(|v| {
        PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
            .ipv4(V4_ADDRS[0], V4_ADDRS[1], 64)
            .udp(7, 7)
            .write(v, &[0x11; 40])
            .expect("base packet")
    });
    let mut frag = base.clone();
    frag[14 + 6] = 0x20; // more fragments
    out.push(frag.clone());
    frag[14 + 6] = 0x00;
    frag[14 + 7] = 0x10; // fragment offset 16 * 8
    out.push(frag);
    for proto in [4u8, 41, 47, 50, 132] {
        let mut p = base.clone();
        p[14 + 9] = proto;
        out.push(p);
    }
    let mut opts = base.clone();
    opts[14] = 0x46; // IHL 6: the first four payload bytes read as options
    out.push(opts);
    let mut bad_version = base.clone();
    bad_version[14] = 0x65;
    out.push(bad_version);
    out.push(base[..14 + 12].to_vec());
    // ARP and a few Ethernet edge sizes.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&SRC_MAC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[0; 20]);
    out.push(arp);
    out.push(base[..14].to_vec());
    out.push(base[..15].to_vec());
    out
}
