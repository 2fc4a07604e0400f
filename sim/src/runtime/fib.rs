//! A user-configured forwarding table for `bpf_fib_lookup`, which in the kernel consults the
//! host's routing tables and neighbour caches. The simulation has neither, so the user states
//! the routes (prefix, output device, gateway, the neighbour's MAC, the device's MAC and MTU)
//! and the helper answers as the kernel's `bpf_ipv4_fib_lookup` / `bpf_ipv6_fib_lookup` do:
//! the same checks in the same order, the same `BPF_FIB_LKUP_RET_*` codes, and the same fields
//! of `struct bpf_fib_lookup` written at each exit.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub const BPF_FIB_LKUP_RET_SUCCESS: i64 = 0;
pub const BPF_FIB_LKUP_RET_BLACKHOLE: i64 = 1;
pub const BPF_FIB_LKUP_RET_UNREACHABLE: i64 = 2;
pub const BPF_FIB_LKUP_RET_PROHIBIT: i64 = 3;
pub const BPF_FIB_LKUP_RET_NOT_FWDED: i64 = 4;
pub const BPF_FIB_LKUP_RET_FWD_DISABLED: i64 = 5;
pub const BPF_FIB_LKUP_RET_NO_NEIGH: i64 = 7;
pub const BPF_FIB_LKUP_RET_FRAG_NEEDED: i64 = 8;
pub const BPF_FIB_LKUP_RET_NO_SRC_ADDR: i64 = 9;

pub const BPF_FIB_LOOKUP_DIRECT: u64 = 1 << 0;
pub const BPF_FIB_LOOKUP_OUTPUT: u64 = 1 << 1;
pub const BPF_FIB_LOOKUP_SKIP_NEIGH: u64 = 1 << 2;
pub const BPF_FIB_LOOKUP_TBID: u64 = 1 << 3;
pub const BPF_FIB_LOOKUP_SRC: u64 = 1 << 4;
pub const BPF_FIB_LOOKUP_MARK: u64 = 1 << 5;
const ALL_FLAGS: u64 = 0x3f;

/// `sizeof(struct bpf_fib_lookup)`.
pub const FIB_LOOKUP_SIZE: usize = 64;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// What a route does with matching traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    #[default]
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
    /// A route to a local address: not forwarded.
    Local,
}

/// One route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// `10.0.0.0/24` or `2001:db8::/64`.
    pub prefix: String,
    /// Output device.
    pub ifindex: u32,
    /// Next hop, if not directly connected.
    #[serde(default)]
    pub gateway: Option<String>,
    /// MAC of the neighbour (the gateway, or the destination itself); absent means the
    /// neighbour is not resolved and the lookup answers `NO_NEIGH`.
    #[serde(default)]
    pub dmac: Option<String>,
    /// MAC of the output device.
    #[serde(default = "zero_mac")]
    pub smac: String,
    /// MTU of the output device.
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    #[serde(default)]
    pub kind: RouteKind,
    /// Route priority (`rt_metric`); lower wins among equal prefixes.
    #[serde(default)]
    pub metric: u32,
    /// Preferred source address, for `BPF_FIB_LOOKUP_SRC`.
    #[serde(default)]
    pub src: Option<String>,
}

fn zero_mac() -> String {
    "00:00:00:00:00:00".into()
}
fn default_mtu() -> u32 {
    1500
}

/// The forwarding table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fib {
    #[serde(default)]
    pub routes: Vec<Route>,
    /// `net.ipv4.conf.*.forwarding`; when off every IPv4 lookup answers `FWD_DISABLED`.
    #[serde(default = "yes")]
    pub ipv4_forwarding: bool,
    /// `net.ipv6.conf.all.forwarding`.
    #[serde(default = "yes")]
    pub ipv6_forwarding: bool,
    /// Extra device indices that exist without routes (1, loopback, always exists).
    #[serde(default)]
    pub devices: Vec<u32>,
}

fn yes() -> bool {
    true
}

impl Default for Fib {
    fn default() -> Self {
        Fib {
            routes: Vec::new(),
            ipv4_forwarding: true,
            ipv6_forwarding: true,
            devices: Vec::new(),
        }
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!(
            "{s:?} is not a MAC address (six hex bytes separated by ':')"
        ));
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
    }
    Ok(mac)
}

/// A route in parsed form.
#[derive(Clone, Debug)]
struct Parsed {
    net: IpAddr,
    plen: u32,
    gateway: Option<IpAddr>,
    dmac: Option<[u8; 6]>,
    smac: [u8; 6],
    src: Option<IpAddr>,
}

fn parse_route(r: &Route) -> Result<Parsed, String> {
    let (addr, plen) = r
        .prefix
        .split_once('/')
        .ok_or_else(|| format!("route prefix {:?} needs a /length", r.prefix))?;
    let net: IpAddr = addr
        .parse()
        .map_err(|_| format!("route prefix {:?} has no valid address", r.prefix))?;
    let plen: u32 = plen
        .parse()
        .map_err(|_| format!("route prefix {:?} has no valid length", r.prefix))?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    if plen > max {
        return Err(format!(
            "route prefix {:?} is longer than {max} bits",
            r.prefix
        ));
    }
    let ip = |s: &Option<String>| -> Result<Option<IpAddr>, String> {
        s.as_ref()
            .map(|g| g.parse().map_err(|_| format!("{g:?} is not an IP address")))
            .transpose()
    };
    let gateway = ip(&r.gateway)?;
    let src = ip(&r.src)?;
    if gateway.is_some_and(|g| g.is_ipv4() != net.is_ipv4()) {
        return Err(format!(
            "route {:?}: gateway family differs from the prefix's",
            r.prefix
        ));
    }
    Ok(Parsed {
        net,
        plen,
        gateway,
        dmac: r.dmac.as_deref().map(parse_mac).transpose()?,
        smac: parse_mac(&r.smac)?,
        src,
    })
}

fn bits(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => (u32::from(*v) as u128) << 96,
        IpAddr::V6(v) => u128::from(*v),
    }
}

fn covers(net: &IpAddr, plen: u32, a: &IpAddr) -> bool {
    if net.is_ipv4() != a.is_ipv4() {
        return false;
    }
    if plen == 0 {
        return true;
    }
    let mask = !0u128 << (128 - plen);
    bits(net) & mask == bits(a) & mask
}

impl Fib {
    /// Checks every route parses.
    pub fn validate(&self) -> Result<(), String> {
        self.routes
            .iter()
            .try_for_each(|r| parse_route(r).map(|_| ()))
    }

    fn device_exists(&self, ifindex: u32) -> bool {
        ifindex == 1
            || self.devices.contains(&ifindex)
            || self.routes.iter().any(|r| r.ifindex == ifindex)
    }

    /// Runs `bpf_fib_lookup` on a 64-byte `struct bpf_fib_lookup`, updating it in place, and
    /// returns the helper's return value.
    pub fn lookup(&self, params: &mut [u8], flags: u64) -> i64 {
        if params.len() < FIB_LOOKUP_SIZE {
            return -super::EINVAL;
        }
        if flags & !ALL_FLAGS != 0 {
            return -super::EINVAL;
        }
        let family = params[0];
        let v4 = match family {
            AF_INET => true,
            AF_INET6 => false,
            _ => return -super::EAFNOSUPPORT,
        };
        let ifindex = u32::from_le_bytes([params[8], params[9], params[10], params[11]]);
        if !self.device_exists(ifindex) {
            return -super::ENODEV;
        }
        if (v4 && !self.ipv4_forwarding) || (!v4 && !self.ipv6_forwarding) {
            return BPF_FIB_LKUP_RET_FWD_DISABLED;
        }
        let dst: IpAddr = if v4 {
            IpAddr::from([params[32], params[33], params[34], params[35]])
        } else {
            let mut a = [0u8; 16];
            a.copy_from_slice(&params[32..48]);
            IpAddr::from(a)
        };
        // Longest prefix first, then the lowest metric, then the first configured.
        let best = self
            .routes
            .iter()
            .filter_map(|r| parse_route(r).ok().map(|p| (r, p)))
            .filter(|(_, p)| covers(&p.net, p.plen, &dst))
            .min_by_key(|(r, p)| (std::cmp::Reverse(p.plen), r.metric));
        let Some((route, p)) = best else {
            return BPF_FIB_LKUP_RET_NOT_FWDED;
        };
        match route.kind {
            RouteKind::Unicast => {}
            RouteKind::Blackhole => return BPF_FIB_LKUP_RET_BLACKHOLE,
            RouteKind::Unreachable => return BPF_FIB_LKUP_RET_UNREACHABLE,
            RouteKind::Prohibit => return BPF_FIB_LKUP_RET_PROHIBIT,
            RouteKind::Local => return BPF_FIB_LKUP_RET_NOT_FWDED,
        }
        // XDP lookups always check the MTU against `tot_len`.
        let tot_len = u16::from_le_bytes([params[6], params[7]]) as u32;
        let mtu = route.mtu;
        if tot_len > mtu {
            params[6..8].copy_from_slice(&(mtu as u16).to_le_bytes());
            return BPF_FIB_LKUP_RET_FRAG_NEEDED;
        }
        params[12..16].copy_from_slice(&route.metric.to_le_bytes());
        params[8..12].copy_from_slice(&route.ifindex.to_le_bytes());
        if flags & BPF_FIB_LOOKUP_SRC != 0 {
            match p.src {
                Some(IpAddr::V4(s)) if v4 => params[16..20].copy_from_slice(&s.octets()),
                Some(IpAddr::V6(s)) if !v4 => params[16..32].copy_from_slice(&s.octets()),
                _ => return BPF_FIB_LKUP_RET_NO_SRC_ADDR,
            }
        }
        match p.gateway {
            Some(IpAddr::V4(g)) => params[32..36].copy_from_slice(&g.octets()),
            Some(IpAddr::V6(g)) => params[32..48].copy_from_slice(&g.octets()),
            None => {}
        }
        if flags & BPF_FIB_LOOKUP_SKIP_NEIGH == 0 {
            let Some(dmac) = p.dmac else {
                return BPF_FIB_LKUP_RET_NO_NEIGH;
            };
            params[58..64].copy_from_slice(&dmac);
        }
        params[52..58].copy_from_slice(&p.smac);
        // h_vlan_proto and h_vlan_TCI are cleared; mtu_result (a union with tot_len) is set.
        params[48..52].fill(0);
        if mtu != 0 {
            params[6..8].copy_from_slice(&(mtu as u16).to_le_bytes());
        }
        BPF_FIB_LKUP_RET_SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fib() -> Fib {
        Fib {
            routes: vec![
                Route {
                    prefix: "10.0.0.0/8".into(),
                    ifindex: 2,
                    gateway: Some("192.168.1.1".into()),
                    dmac: Some("02:00:00:00:00:01".into()),
                    smac: "02:00:00:00:00:02".into(),
                    mtu: 1500,
                    kind: RouteKind::Unicast,
                    metric: 0,
                    src: None,
                },
                Route {
                    prefix: "10.1.0.0/16".into(),
                    ifindex: 3,
                    gateway: None,
                    dmac: None,
                    smac: "02:00:00:00:00:03".into(),
                    mtu: 9000,
                    kind: RouteKind::Unicast,
                    metric: 0,
                    src: None,
                },
            ],
            ..Fib::default()
        }
    }

    fn params(dst: [u8; 4]) -> [u8; 64] {
        let mut p = [0u8; 64];
        p[0] = AF_INET;
        p[8..12].copy_from_slice(&1u32.to_le_bytes());
        p[32..36].copy_from_slice(&dst);
        p
    }

    #[test]
    fn longest_prefix_gateway_and_neighbour() {
        let f = fib();
        let mut p = params([10, 2, 3, 4]);
        assert_eq!(f.lookup(&mut p, 0), BPF_FIB_LKUP_RET_SUCCESS);
        assert_eq!(&p[8..12], &2u32.to_le_bytes());
        assert_eq!(&p[32..36], &[192, 168, 1, 1]);
        assert_eq!(&p[52..58], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(&p[58..64], &[2, 0, 0, 0, 0, 1]);
        let mut p = params([10, 1, 3, 4]);
        assert_eq!(f.lookup(&mut p, 0), BPF_FIB_LKUP_RET_NO_NEIGH);
        assert_eq!(&p[8..12], &3u32.to_le_bytes());
        let mut p = params([11, 0, 0, 1]);
        assert_eq!(f.lookup(&mut p, 0), BPF_FIB_LKUP_RET_NOT_FWDED);
        let mut p = params([10, 0, 0, 1]);
        p[8] = 9;
        assert_eq!(f.lookup(&mut p, 0), -super::super::ENODEV);
        let mut p = params([10, 0, 0, 1]);
        p[6..8].copy_from_slice(&1600u16.to_le_bytes());
        assert_eq!(f.lookup(&mut p, 0), BPF_FIB_LKUP_RET_FRAG_NEEDED);
        assert_eq!(&p[6..8], &1500u16.to_le_bytes());
    }
}
