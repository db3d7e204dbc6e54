//! Ports for units: `runner.unit_ports` (a range such as `20000-20999`), and picking a free one
//! for a unit about to start. A port is free when nothing of this process has handed it out to a
//! unit still running, no live unit lease of this host holds it (other nodes on the host: the
//! caller says which), and it can be bound now (on every address, as the unit may bind it). The
//! lease table has the last word: a port is the unit's once its lease row holds it (unique per
//! host and port, `lease::take_port`).
//!
//! Does not own: putting the port in the unit's environment (`process`), the lease rows
//! (`lease`).

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// A range of ports, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange {
            first: 20000,
            last: 20999,
        }
    }
}

impl PortRange {
    /// `A-B` with 1024 ≤ A ≤ B ≤ 65535, or one port `A`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (first, last) = text.split_once('-').unwrap_or((text, text));
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("{p:?} is not a port (1024 to 65535)"))
        };
        let (first, last) = (port(first)?, port(last)?);
        if first < 1024 {
            return Err(format!(
                "{first} is a privileged port: the range must start at 1024 or above"
            ));
        }
        if first > last {
            return Err(format!(
                "{first}-{last} is empty: the first port must not be above the last"
            ));
        }
        Ok(PortRange { first, last })
    }

    /// How many ports it holds.
    pub fn size(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RangeVisitor;
        impl Visitor<'_> for RangeVisitor {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a range of ports such as \"20000-20999\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<PortRange, E> {
                PortRange::parse(text).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, port: u64) -> Result<PortRange, E> {
                PortRange::parse(&port.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, port: i64) -> Result<PortRange, E> {
                PortRange::parse(&port.to_string()).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(RangeVisitor)
    }
}

/// Ports this process has handed out to units still holding them, whichever runner did (tests
/// run several in one process).
static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port handed out to a unit; given back when dropped.
#[derive(Debug)]
pub(crate) struct Port(u16);

impl Port {
    pub fn number(&self) -> u16 {
        self.0
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if let Ok(mut taken) = TAKEN.lock() {
            taken.remove(&self.0);
        }
    }
}

/// A free port of `range`, none of `busy` (held by other units of this host): `preferred` (the
/// unit's last port, so its address stays) if it is free, else the first free one from a place
/// that moves on with each pick, so a port just given back is not handed out again at once. None
/// if every port of the range is in use.
pub(crate) fn pick(range: PortRange, preferred: Option<u16>, busy: &BTreeSet<u16>) -> Option<Port> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let start = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let candidates = preferred
        .filter(|p| range.contains(*p))
        .into_iter()
        .chain((0..range.size()).map(|i| range.first + ((start + i) % range.size()) as u16));
    for port in candidates {
        if taken.contains(&port) || busy.contains(&port) || !bindable(port) {
            continue;
        }
        taken.insert(port);
        return Some(Port(port));
    }
    None
}

/// Whether `port` can be bound on every address now.
fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_range_and_refuses_what_is_not_one() {
        assert_eq!(
            PortRange::parse("20000-20999").unwrap(),
            PortRange {
                first: 20000,
                last: 20999
            }
        );
        assert_eq!(PortRange::parse("30000").unwrap().size(), 1);
        for bad in ["", "a-b", "20999-20000", "80-90", "20000-70000", "1-2-3"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hands_out_free_ports_once_and_takes_them_back() {
        let range = PortRange::parse("41000-41003").unwrap();
        let held = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 41001)).ok();
        let none = BTreeSet::new();
        let picked: Vec<Port> = std::iter::from_fn(|| pick(range, None, &none))
            .take(5)
            .collect();
        let mut numbers: Vec<u16> = picked.iter().map(Port::number).collect();
        numbers.sort();
        let expected: Vec<u16> = (41000..=41003)
            .filter(|p| held.is_none() || *p != 41001)
            .collect();
        assert_eq!(numbers, expected, "each free port once, none in use");
        let first = numbers[0];
        drop(picked);
        assert_eq!(
            pick(range, Some(first), &none).map(|p| p.number()),
            Some(first)
        );
    }

    #[test]
    fn never_hands_out_a_port_another_unit_of_the_host_holds() {
        let range = PortRange::parse("41010-41012").unwrap();
        let busy: BTreeSet<u16> = [41010, 41011].into();
        let picked = pick(range, Some(41010), &busy).map(|p| p.number());
        assert_eq!(picked, Some(41012));
        let all: BTreeSet<u16> = (41010..=41012).collect();
        assert!(pick(range, None, &all).is_none());
    }
}
