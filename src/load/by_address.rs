//! Per remote address counts of a load run: how many publishers connected to
//! each address, how many of those failed, and how many connection attempts
//! to it failed (a dead edge the dialer fell back from). Folded from records,
//! merged exactly across shards, rendered as a text table.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::classify::Outcome;

/// What one publisher's dialing left for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherAddrs {
    /// The address its (last) connection went to.
    pub remote: Option<SocketAddr>,
    /// Addresses whose connection attempt failed (refused, timeout, error),
    /// once per failed attempt, over all its attempts.
    pub failed: Vec<SocketAddr>,
}

/// The counts of one remote address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressCounts {
    /// Publishers whose connection went to this address.
    pub publishers: u64,
    /// Of those, publishers whose outcome was not `accepted`.
    pub failed: u64,
    /// Connection attempts to this address that failed.
    pub dial_failures: u64,
}

/// Remote address (`IP:PORT`) -> its counts, sorted by address text.
pub type ByAddress = BTreeMap<String, AddressCounts>;

/// Adds one publisher.
pub fn fold(into: &mut ByAddress, addrs: &PublisherAddrs, outcome: Outcome) {
    if let Some(remote) = addrs.remote {
        let c = into.entry(remote.to_string()).or_default();
        c.publishers = c.publishers.saturating_add(1);
        if outcome != Outcome::Accepted {
            c.failed = c.failed.saturating_add(1);
        }
    }
    for a in &addrs.failed {
        let c = into.entry(a.to_string()).or_default();
        c.dial_failures = c.dial_failures.saturating_add(1);
    }
}

/// Adds another summary's counts (exact: sums per address).
pub fn merge(into: &mut ByAddress, from: &ByAddress) {
    for (addr, n) in from {
        let c = into.entry(addr.clone()).or_default();
        c.publishers = c.publishers.saturating_add(n.publishers);
        c.failed = c.failed.saturating_add(n.failed);
        c.dial_failures = c.dial_failures.saturating_add(n.dial_failures);
    }
}

/// The text table; nothing when no address was recorded.
pub fn write_text(out: &mut impl Write, by: &ByAddress) -> io::Result<()> {
    if by.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n{:<42}{:>12}{:>10}{:>15}",
        "remote address", "publishers", "failed", "dial failures"
    )?;
    for (addr, c) in by {
        writeln!(
            out,
            "  {:<40}{:>12}{:>10}{:>15}",
            addr, c.publishers, c.failed, c.dial_failures
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn rec(remote: Option<&str>, failed: &[&str]) -> PublisherAddrs {
        PublisherAddrs {
            remote: remote.map(a),
            failed: failed.iter().map(|s| a(s)).collect(),
        }
    }

    #[test]
    fn folds_and_merges_exactly() {
        let records = [
            (
                rec(Some("127.0.0.1:1935"), &["[::1]:1935"]),
                Outcome::Accepted,
            ),
            (rec(Some("127.0.0.1:1935"), &[]), Outcome::BadSecret),
            (rec(Some("127.0.0.2:1935"), &[]), Outcome::Accepted),
            (
                rec(None, &["[::1]:1935", "127.0.0.3:1935"]),
                Outcome::ConnectFailed,
            ),
        ];
        let mut whole = ByAddress::new();
        for (r, o) in &records {
            fold(&mut whole, r, *o);
        }
        let want = |p, f, d| AddressCounts {
            publishers: p,
            failed: f,
            dial_failures: d,
        };
        assert_eq!(whole["127.0.0.1:1935"], want(2, 1, 0));
        assert_eq!(whole["127.0.0.2:1935"], want(1, 0, 0));
        assert_eq!(whole["[::1]:1935"], want(0, 0, 2));
        assert_eq!(whole["127.0.0.3:1935"], want(0, 0, 1));
        // Any split into shards merges back to the whole.
        for split in 0..=records.len() {
            let (mut x, mut y) = (ByAddress::new(), ByAddress::new());
            for (r, o) in &records[..split] {
                fold(&mut x, r, *o);
            }
            for (r, o) in &records[split..] {
                fold(&mut y, r, *o);
            }
            let mut merged = ByAddress::new();
            merge(&mut merged, &x);
            merge(&mut merged, &y);
            assert_eq!(merged, whole, "split at {split}");
        }
        let mut text = Vec::new();
        write_text(&mut text, &whole).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("remote address"), "{text}");
        let line = text.lines().find(|l| l.contains("127.0.0.1:1935")).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols, ["127.0.0.1:1935", "2", "1", "0"]);
        let mut none = Vec::new();
        write_text(&mut none, &ByAddress::new()).unwrap();
        assert!(none.is_empty());
    }
}
