//! The client's address: the socket's peer, or, when that peer is a trusted proxy, the first
//! untrusted address of the configured forwarding header read from the right (the nearest
//! hop first). Used by `cdniip` and the access log.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};

use crate::auth::settings::ClientAddressSettings;
use crate::config::Problem;

/// An address block, `10.0.0.0/8` or a single address (also `cdniip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { net, bits })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// How the client's address is found.
#[derive(Debug, Clone, Default)]
pub struct ClientAddress {
    header: Option<HeaderName>,
    trusted: Vec<Cidr>,
}

impl ClientAddress {
    pub fn new(settings: &ClientAddressSettings, problems: &mut Vec<Problem>) -> ClientAddress {
        let header = settings.header.as_deref().and_then(|name| {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(h) => Some(h),
                Err(_) => {
                    problems.push(Problem::new(
                        "auth.client_address.header",
                        format!("\"{name}\" is not a header name: write e.g. x-forwarded-for"),
                    ));
                    None
                }
            }
        });
        let mut trusted = Vec::new();
        for (i, text) in settings.trusted_proxies.iter().enumerate() {
            match Cidr::parse(text) {
                Some(c) => trusted.push(c),
                None => problems.push(Problem::new(
                    format!("auth.client_address.trusted_proxies[{i}]"),
                    format!("\"{text}\" is not an address or CIDR block: write e.g. 10.0.0.0/8"),
                )),
            }
        }
        if header.is_some() && trusted.is_empty() {
            problems.push(Problem::new(
                "auth.client_address.trusted_proxies",
                "is empty while a header is set: list the proxies whose header is believed",
            ));
        }
        ClientAddress { header, trusted }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client's address for a connection from `peer` with `headers`.
    pub fn find(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        let Some(name) = &self.header else {
            return Some(peer);
        };
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut hops: Vec<&str> = Vec::new();
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else {
                return Some(peer);
            };
            hops.extend(text.split(',').map(str::trim));
        }
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Past a hop we cannot read, nothing is believed.
                return Some(client);
            };
            client = ip;
            if !self.trusts(ip) {
                return Some(ip);
            }
        }
        Some(client)
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1` or `[2001:db8::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn chains() {
        let settings = ClientAddressSettings {
            header: Some("x-forwarded-for".into()),
            trusted_proxies: vec!["10.0.0.0/8".into(), "::1".into(), "192.0.2.7".into()],
        };
        let mut problems = Vec::new();
        let ca = ClientAddress::new(&settings, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let cases: &[(&str, &[&str], &str)] = &[
            ("203.0.113.5", &["1.1.1.1"], "203.0.113.5"),
            ("10.1.1.1", &[], "10.1.1.1"),
            ("10.1.1.1", &["198.51.100.9"], "198.51.100.9"),
            (
                "10.1.1.1",
                &["6.6.6.6, 198.51.100.9, 10.2.2.2"],
                "198.51.100.9",
            ),
            (
                "10.1.1.1",
                &["6.6.6.6", "198.51.100.9, 10.2.2.2"],
                "198.51.100.9",
            ),
            ("10.1.1.1", &["10.3.3.3, 10.2.2.2"], "10.3.3.3"),
            ("10.1.1.1", &["6.6.6.6, junk, 10.2.2.2"], "10.2.2.2"),
            ("::1", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("::ffff:10.1.1.1", &["198.51.100.9:5000"], "198.51.100.9"),
            ("192.0.2.7", &["192.0.2.8"], "192.0.2.8"),
        ];
        for (peer, header, want) in cases {
            let mut map = HeaderMap::new();
            for value in *header {
                map.append("x-forwarded-for", value.parse().expect("value"));
            }
            assert_eq!(
                ca.find(Some(ip(peer)), &map),
                Some(ip(want)),
                "{peer} {header:?}"
            );
        }
        let plain = ClientAddress::default();
        let mut map = HeaderMap::new();
        map.append("x-forwarded-for", "6.6.6.6".parse().expect("value"));
        assert_eq!(plain.find(Some(ip("10.1.1.1")), &map), Some(ip("10.1.1.1")));
        assert_eq!(plain.find(None, &map), None);
    }

    #[test]
    fn bad_settings() {
        let mut problems = Vec::new();
        ClientAddress::new(
            &ClientAddressSettings {
                header: Some("bad header".into()),
                trusted_proxies: vec!["10.0.0.0/33".into(), "nope".into()],
            },
            &mut problems,
        );
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "auth.client_address.header",
                "auth.client_address.trusted_proxies[0]",
                "auth.client_address.trusted_proxies[1]"
            ]
        );
    }
}
