//! Dialing per Happy Eyeballs v2 (RFC 8305): every address the host resolves
//! to, families interleaved, a new attempt 250 ms after the previous one
//! while earlier ones are pending (at once when one fails), the first
//! connection wins and the others are closed. Every attempt is evidence.
//!
//! The order and the schedule are pure ([`order`], [`Schedule`]); [`connect`]
//! is the one place that races sockets.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use crate::clock::millis;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::Failure;
use super::conn::{self, DialError};

/// RFC 8305's recommended Connection Attempt Delay.
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Test-only hook: a hosts file (`ADDR NAME...` lines, `#` comments) that
/// replaces the system resolver for every name, so tests can make a name
/// resolve to `::1` then `127.0.0.1` whatever this machine's /etc/hosts says.
pub const TEST_HOSTS_ENV: &str = "PUSHPROBE_TEST_HOSTS";

/// Which address families to dial (`-4` / `-6`, as curl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

impl Family {
    pub fn from_flags(ipv4: bool, ipv6: bool) -> Family {
        match (ipv4, ipv6) {
            (true, false) => Family::V4,
            (false, true) => Family::V6,
            _ => Family::Any,
        }
    }
    fn admits(self, a: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        }
    }
    fn flag(self) -> &'static str {
        match self {
            Family::Any => "",
            Family::V4 => "IPv4 (-4)",
            Family::V6 => "IPv6 (-6)",
        }
    }
}

/// Where names resolve: the system (getaddrinfo, as any other program), or a
/// fixed table (tests; the [`TEST_HOSTS_ENV`] hook).
#[derive(Debug, Clone, Default)]
pub enum Resolver {
    #[default]
    System,
    /// Lowercase name without trailing dot -> addresses in order.
    Table(Arc<HashMap<String, Vec<IpAddr>>>),
}

impl Resolver {
    /// Parses hosts-file text: `ADDR NAME...` per line, `#` starts a comment;
    /// a name on several lines gets their addresses in line order.
    pub fn from_hosts(text: &str) -> Result<Resolver, String> {
        let mut table: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(addr) = words.next() else { continue };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("line {}: {addr:?} is not an IP address", n + 1))?;
            for name in words {
                table.entry(normalize(name)).or_default().push(ip);
            }
        }
        Ok(Resolver::Table(Arc::new(table)))
    }

    /// A table from pairs, for tests.
    pub fn table(entries: &[(&str, &[IpAddr])]) -> Resolver {
        Resolver::Table(Arc::new(
            entries
                .iter()
                .map(|(n, a)| (normalize(n), a.to_vec()))
                .collect(),
        ))
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The [`TEST_HOSTS_ENV`] table, read once per process.
fn test_hosts() -> Option<&'static Result<Resolver, String>> {
    static HOSTS: OnceLock<Option<Result<Resolver, String>>> = OnceLock::new();
    HOSTS
        .get_or_init(|| {
            let path = std::env::var_os(TEST_HOSTS_ENV)?;
            let shown = std::path::Path::new(&path).display().to_string();
            Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| Resolver::from_hosts(&t))
                    .map_err(|e| format!("{TEST_HOSTS_ENV}={shown}: {e}")),
            )
        })
        .as_ref()
}

/// How a push reaches its host: the resolver, the families allowed, and
/// addresses forced by `--connect-to` / `--resolve` (curl's semantics).
#[derive(Debug, Clone, Default)]
pub struct DialOptions {
    pub family: Family,
    pub resolver: Resolver,
    pub connect_to: Vec<ConnectTo>,
    pub resolve: Vec<Resolve>,
}

/// Why forced entries could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForceError {
    #[error(
        "--resolve {0:?}: expected HOST:PORT:ADDR[,ADDR...] (e.g. push.example.com:1935:203.0.113.7)"
    )]
    Resolve(String),
    #[error(
        "--connect-to {0:?}: expected HOST:PORT:ADDR:PORT2 (any part but the colons may be empty)"
    )]
    ConnectTo(String),
}

/// `--resolve HOST:PORT:ADDR[,ADDR...]`: connections to HOST:PORT go to these
/// addresses; HOST `*` matches any host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    pub host: String,
    pub port: u16,
    pub addrs: Vec<IpAddr>,
    /// As given, for the evidence.
    pub given: String,
}

/// `--connect-to HOST:PORT:ADDR:PORT2`: connections to HOST:PORT go to
/// ADDR:PORT2 instead (empty HOST or PORT: any; empty ADDR or PORT2: keep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub to_host: Option<String>,
    pub to_port: Option<u16>,
    pub given: String,
}

/// `ADDR` or `[ADDR]`.
fn ip_of(s: &str) -> Option<IpAddr> {
    s.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

impl Resolve {
    pub fn parse(s: &str) -> Result<Resolve, ForceError> {
        let err = || ForceError::Resolve(s.to_string());
        let mut parts = s.splitn(3, ':');
        let (Some(host), Some(port), Some(addrs)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        let port = port.parse().map_err(|_| err())?;
        let addrs = addrs
            .split(',')
            .map(|a| ip_of(a.trim()).ok_or_else(err))
            .collect::<Result<Vec<_>, _>>()?;
        if host.is_empty() {
            return Err(err());
        }
        Ok(Resolve {
            host: normalize(host),
            port,
            addrs,
            given: s.to_string(),
        })
    }
    fn matches(&self, host: &str, port: u16) -> bool {
        (self.host == "*" || self.host == normalize(host)) && self.port == port
    }
}

impl ConnectTo {
    pub fn parse(s: &str) -> Result<ConnectTo, ForceError> {
        let err = || ForceError::ConnectTo(s.to_string());
        let (host, rest) = s.split_once(':').ok_or_else(err)?;
        let (port, target) = rest.split_once(':').ok_or_else(err)?;
        let (to_host, to_port) = match target.strip_prefix('[') {
            Some(v6) => {
                let (addr, tail) = v6.split_once(']').ok_or_else(err)?;
                (addr, tail.strip_prefix(':').ok_or_else(err)?)
            }
            None => target.rsplit_once(':').ok_or_else(err)?,
        };
        let opt_port = |p: &str| match p {
            "" => Ok(None),
            p => p.parse().map(Some).map_err(|_| err()),
        };
        let opt_host = |h: &str| (!h.is_empty()).then(|| normalize(h));
        Ok(ConnectTo {
            host: opt_host(host),
            port: opt_port(port)?,
            to_host: opt_host(to_host),
            to_port: opt_port(to_port)?,
            given: s.to_string(),
        })
    }
}

impl DialOptions {
    /// Parses `--resolve` and `--connect-to` values.
    pub fn forced(
        family: Family,
        resolve: &[String],
        connect_to: &[String],
    ) -> Result<DialOptions, ForceError> {
        Ok(DialOptions {
            family,
            resolver: Resolver::System,
            resolve: resolve
                .iter()
                .map(|s| Resolve::parse(s))
                .collect::<Result<_, _>>()?,
            connect_to: connect_to
                .iter()
                .map(|s| ConnectTo::parse(s))
                .collect::<Result<_, _>>()?,
        })
    }

    /// These options with every `--resolve` address list rotated left by `n`
    /// (publisher `n` of a load run dials address `n mod count` first: round
    /// robin, each still falling back to the others).
    pub fn rotated(&self, n: u64) -> DialOptions {
        let mut out = self.clone();
        for r in &mut out.resolve {
            let len = r.addrs.len();
            if len > 1 {
                r.addrs.rotate_left((n % len as u64) as usize);
            }
        }
        out
    }

    /// These options forced to exactly `addr` (as `--connect-to ::ADDR:PORT`).
    pub fn only(&self, addr: SocketAddr) -> DialOptions {
        let ip = match addr.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        DialOptions {
            family: Family::Any,
            resolver: self.resolver.clone(),
            connect_to: vec![ConnectTo {
                host: None,
                port: None,
                to_host: Some(addr.ip().to_string()),
                to_port: Some(addr.port()),
                given: format!("::{ip}:{}", addr.port()),
            }],
            resolve: Vec::new(),
        }
    }

    /// True when some `--resolve` entry has several addresses to spread over.
    pub fn spreads(&self) -> bool {
        self.resolve.iter().any(|r| r.addrs.len() > 1)
    }
}

/// What resolution gave: addresses in dialing order, and the flags that
/// forced them, if any (`--connect-to ...`, `--resolve ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub addrs: Vec<SocketAddr>,
    pub forced: Option<String>,
}

/// Resolves `host:port` for dialing: `--connect-to` first (maybe a new host
/// and port), then `--resolve` for that host and port, else [`resolve`].
pub async fn resolve_forced(
    host: &str,
    port: u16,
    opts: &DialOptions,
    timeout: Duration,
) -> Result<Resolved, DialError> {
    let mut forced: Vec<String> = Vec::new();
    let (mut host, mut port) = (host.to_string(), port);
    if let Some(c) = opts.connect_to.iter().find(|c| {
        c.host.as_deref().is_none_or(|h| h == normalize(&host)) && c.port.is_none_or(|p| p == port)
    }) {
        forced.push(format!("--connect-to {}", c.given));
        host = c.to_host.clone().unwrap_or(host);
        port = c.to_port.unwrap_or(port);
    }
    let addrs = match opts.resolve.iter().find(|r| r.matches(&host, port)) {
        Some(r) => {
            forced.push(format!("--resolve {}", r.given));
            let all: Vec<SocketAddr> = r
                .addrs
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect();
            let kept: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| opts.family.admits(a))
                .collect();
            if kept.is_empty() {
                return Err(DialError::Dns {
                    host,
                    detail: format!(
                        "no {} address among {}",
                        opts.family.flag(),
                        join(all.iter().map(|a| a.ip().to_string()))
                    ),
                });
            }
            kept
        }
        None => resolve(&host, port, opts, timeout).await?,
    };
    Ok(Resolved {
        addrs,
        forced: (!forced.is_empty()).then(|| forced.join(", ")),
    })
}

/// Every address `host` resolves to, deduplicated, restricted to the family
/// and ordered for dialing ([`order`]). Bounded by `timeout`.
pub async fn resolve(
    host: &str,
    port: u16,
    opts: &DialOptions,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, DialError> {
    let dns = |detail: String| DialError::Dns {
        host: host.to_string(),
        detail,
    };
    let found: Vec<SocketAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        let resolver = match (&opts.resolver, test_hosts()) {
            (Resolver::System, Some(Err(e))) => return Err(dns(e.clone())),
            (Resolver::System, Some(Ok(hook))) => hook,
            (r, _) => r,
        };
        match resolver {
            Resolver::Table(t) => t
                .get(&normalize(host))
                .ok_or_else(|| dns("no such name in the resolver's table".into()))?
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect(),
            Resolver::System => {
                let lookup = tokio::net::lookup_host((host, port));
                match tokio::time::timeout(timeout, lookup).await {
                    Err(_) => return Err(DialError::DnsTimeout(host.to_string())),
                    Ok(Err(e)) => return Err(dns(e.to_string())),
                    Ok(Ok(addrs)) => addrs.collect(),
                }
            }
        }
    };
    let ordered = order(&found, opts.family);
    if ordered.is_empty() {
        let detail = if found.is_empty() {
            "no addresses".to_string()
        } else {
            format!(
                "no {} address among {}",
                opts.family.flag(),
                join(found.iter().map(|a| a.ip().to_string()))
            )
        };
        return Err(dns(detail));
    }
    Ok(ordered)
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// RFC 8305 §4: duplicates dropped, other families filtered out, then the
/// families interleaved, starting with the family of the resolver's first
/// answer (one address of it first, then one of the other, and so on).
pub fn order(addrs: &[SocketAddr], family: Family) -> Vec<SocketAddr> {
    let mut kept: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
    for a in addrs {
        if family.admits(a) && !kept.contains(a) {
            kept.push(*a);
        }
    }
    let Some(first) = kept.first() else {
        return kept;
    };
    let first_v6 = first.is_ipv6();
    let (mut lead, mut other): (VecDeque<SocketAddr>, VecDeque<SocketAddr>) =
        kept.iter().partition(|a| a.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(kept.len());
    while !lead.is_empty() || !other.is_empty() {
        out.extend(lead.pop_front());
        out.extend(other.pop_front());
    }
    out
}

/// RFC 8305 §5 as a state machine over instants passed in: which address to
/// start and when. An attempt starts `delay` after the previous one, or at
/// once when an attempt fails.
#[derive(Debug, Clone)]
pub struct Schedule {
    queue: VecDeque<SocketAddr>,
    delay: Duration,
    next_at: Instant,
}

impl Schedule {
    pub fn new(ordered: &[SocketAddr], delay: Duration, now: Instant) -> Schedule {
        Schedule {
            queue: ordered.iter().copied().collect(),
            delay,
            next_at: now,
        }
    }

    /// The next address to dial when one is due at `now`.
    pub fn due(&mut self, now: Instant) -> Option<SocketAddr> {
        if now < self.next_at {
            return None;
        }
        let a = self.queue.pop_front()?;
        self.next_at = now + self.delay;
        Some(a)
    }

    /// An attempt failed at `now`: the next may start at once.
    pub fn failed(&mut self, now: Instant) {
        self.next_at = self.next_at.min(now);
    }

    /// When the next attempt is due; `None` once every address was started.
    pub fn next_at(&self) -> Option<Instant> {
        (!self.queue.is_empty()).then_some(self.next_at)
    }
}

/// How one connection attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Connected,
    Refused,
    Timeout,
    Error(String),
    /// Closed unfinished (or just connected) because another address won.
    Cancelled,
}

impl AttemptResult {
    pub fn name(&self) -> &'static str {
        match self {
            AttemptResult::Connected => "connected",
            AttemptResult::Refused => "refused",
            AttemptResult::Timeout => "timeout",
            AttemptResult::Error(_) => "error",
            AttemptResult::Cancelled => "cancelled",
        }
    }
    /// A failure of the address itself (not connected, not cancelled).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            AttemptResult::Refused | AttemptResult::Timeout | AttemptResult::Error(_)
        )
    }
    fn from_error(e: DialError) -> AttemptResult {
        match e {
            DialError::Refused(_) => AttemptResult::Refused,
            DialError::ConnectTimeout(_) => AttemptResult::Timeout,
            DialError::Connect { source, .. } => AttemptResult::Error(source.to_string()),
            other => AttemptResult::Error(other.to_string()),
        }
    }
}

impl std::fmt::Display for AttemptResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptResult::Connected => f.write_str("connected"),
            AttemptResult::Refused => f.write_str("refused"),
            AttemptResult::Timeout => f.write_str("timed out"),
            AttemptResult::Error(e) => write!(f, "error: {e}"),
            AttemptResult::Cancelled => f.write_str("cancelled: another address connected first"),
        }
    }
}

/// One TCP connection attempt, as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub addr: SocketAddr,
    pub result: AttemptResult,
    /// When it started, from the start of the first attempt.
    pub started: Duration,
    /// How long it took to end.
    pub took: Duration,
}

/// One address and why it failed, in [`Failure::TcpMixed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddrError {
    pub addr: SocketAddr,
    pub error: String,
}

/// The failure when no attempt connected: `TcpRefused` / `TcpTimeout` /
/// `TcpError` only when every address failed that same way, else
/// `TcpMixed` naming each address and its error.
pub fn failure(attempts: &[Attempt]) -> Failure {
    let failed: Vec<&Attempt> = attempts.iter().filter(|a| a.result.is_failure()).collect();
    let uniform = failed.windows(2).all(|w| w[0].result == w[1].result);
    match failed.first().map(|a| &a.result) {
        Some(AttemptResult::Refused) if uniform => Failure::TcpRefused,
        Some(AttemptResult::Timeout) if uniform => Failure::TcpTimeout,
        Some(AttemptResult::Error(e)) if uniform => Failure::TcpError { detail: e.clone() },
        None => Failure::TcpError {
            detail: "no address to connect to".into(),
        },
        Some(_) => Failure::TcpMixed {
            attempts: failed
                .iter()
                .map(|a| AddrError {
                    addr: a.addr,
                    error: a.result.to_string(),
                })
                .collect(),
        },
    }
}

type Pending = Pin<Box<dyn Future<Output = Result<TcpStream, DialError>> + Send>>;

/// Races connections to `ordered` per the [`Schedule`], each attempt bounded
/// by `timeout`. Appends every attempt to `attempts`. The winner's socket is
/// returned; the others are closed (dropped) and recorded as cancelled.
pub async fn connect(
    ordered: &[SocketAddr],
    timeout: Duration,
    send_buffer: Option<u32>,
    attempts: &mut Vec<Attempt>,
) -> Result<(TcpStream, SocketAddr), Failure> {
    let began = Instant::now();
    let base = attempts.len();
    let mut schedule = Schedule::new(ordered, ATTEMPT_DELAY, began);
    // (index into `attempts`, its connect future)
    let mut pending: Vec<(usize, Pending)> = Vec::new();
    loop {
        let now = Instant::now();
        while let Some(addr) = schedule.due(now) {
            attempts.push(Attempt {
                addr,
                result: AttemptResult::Cancelled,
                started: now - began,
                took: Duration::ZERO,
            });
            let fut = conn::connect_tcp(addr, timeout, send_buffer);
            pending.push((attempts.len() - 1, Box::pin(fut)));
        }
        if pending.is_empty() {
            return Err(failure(&attempts[base..]));
        }
        let finished = std::future::poll_fn(|cx| {
            for (i, (_, fut)) in pending.iter_mut().enumerate() {
                if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                    return Poll::Ready((i, r));
                }
            }
            Poll::Pending
        });
        let wake = schedule.next_at();
        tokio::select! {
            (i, r) = finished => {
                let (idx, _) = pending.swap_remove(i);
                let now = Instant::now();
                let a = &mut attempts[idx];
                a.took = now - began - a.started;
                match r {
                    Ok(stream) => {
                        a.result = AttemptResult::Connected;
                        let addr = a.addr;
                        for (idx, _) in pending.drain(..) {
                            let l = &mut attempts[idx];
                            l.took = now - began - l.started;
                        }
                        return Ok((stream, addr));
                    }
                    Err(e) => {
                        a.result = AttemptResult::from_error(e);
                        schedule.failed(now);
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.unwrap_or(began)), if wake.is_some() => {}
        }
    }
}

/// One line per attempt: `dial      127.0.0.1:1935 refused after 0.2 ms (started at 250.1 ms)`.
pub fn write_attempts(out: &mut impl std::io::Write, attempts: &[Attempt]) -> std::io::Result<()> {
    for a in attempts {
        writeln!(
            out,
            "dial      {} {} after {:.1} ms (started at {:.1} ms)",
            a.addr,
            a.result,
            millis(a.took),
            millis(a.started)
        )?;
    }
    Ok(())
}

/// `remote    ADDR` when a connection was made, and `(forced by --resolve ...)`
/// when flags chose the address.
pub fn write_remote(
    out: &mut impl std::io::Write,
    remote: Option<SocketAddr>,
    forced: Option<&str>,
) -> std::io::Result<()> {
    match (remote, forced) {
        (Some(a), None) => writeln!(out, "remote    {a}"),
        (Some(a), Some(f)) => writeln!(out, "remote    {a} (forced by {f})"),
        (None, Some(f)) => writeln!(out, "remote    none connected (addresses forced by {f})"),
        (None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|s| a(s)).collect()
    }

    #[test]
    fn order_interleaves_families_starting_with_the_first() {
        let mixed = addrs(&[
            "[2001:db8::1]:1935",
            "[2001:db8::2]:1935",
            "[2001:db8::3]:1935",
            "192.0.2.1:1935",
            "192.0.2.2:1935",
        ]);
        assert_eq!(
            order(&mixed, Family::Any),
            addrs(&[
                "[2001:db8::1]:1935",
                "192.0.2.1:1935",
                "[2001:db8::2]:1935",
                "192.0.2.2:1935",
                "[2001:db8::3]:1935",
            ])
        );
        let v4_first = addrs(&["192.0.2.1:1935", "[::1]:1935", "[::2]:1935"]);
        assert_eq!(
            order(&v4_first, Family::Any),
            addrs(&["192.0.2.1:1935", "[::1]:1935", "[::2]:1935"])
        );
        assert_eq!(
            order(&mixed, Family::V4),
            addrs(&["192.0.2.1:1935", "192.0.2.2:1935"])
        );
        assert_eq!(order(&mixed, Family::V6).len(), 3);
        assert!(order(&addrs(&["192.0.2.1:1"]), Family::V6).is_empty());
        let dup = addrs(&["[::1]:1", "127.0.0.1:1", "[::1]:1", "127.0.0.1:1"]);
        assert_eq!(order(&dup, Family::Any), addrs(&["[::1]:1", "127.0.0.1:1"]));
    }

    #[test]
    fn schedule_starts_every_250ms_or_at_once_after_a_failure() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let list = addrs(&["[::1]:1", "127.0.0.1:1", "[::2]:1", "127.0.0.2:1"]);
        let mut s = Schedule::new(&list, ATTEMPT_DELAY, t0);
        assert_eq!(s.due(t0), Some(list[0]));
        assert_eq!(s.due(t0), None, "one at a time");
        assert_eq!(s.next_at(), Some(t0 + ms(250)));
        assert_eq!(s.due(t0 + ms(249)), None);
        assert_eq!(s.due(t0 + ms(250)), Some(list[1]));
        // The second fails 10 ms in: the third starts at once.
        s.failed(t0 + ms(260));
        assert_eq!(s.next_at(), Some(t0 + ms(260)));
        assert_eq!(s.due(t0 + ms(260)), Some(list[2]));
        assert_eq!(s.next_at(), Some(t0 + ms(510)));
        // A failure never delays what is already due.
        s.failed(t0 + ms(600));
        assert_eq!(s.next_at(), Some(t0 + ms(510)));
        assert_eq!(s.due(t0 + ms(600)), Some(list[3]));
        assert_eq!(s.next_at(), None, "every address started");
        assert_eq!(s.due(t0 + ms(10_000)), None);
    }

    fn attempt(addr: &str, result: AttemptResult) -> Attempt {
        Attempt {
            addr: a(addr),
            result,
            started: Duration::ZERO,
            took: Duration::from_millis(1),
        }
    }

    #[test]
    fn failure_is_uniform_only_when_every_address_failed_alike() {
        use AttemptResult::*;
        let refused = [attempt("[::1]:1", Refused), attempt("127.0.0.1:1", Refused)];
        assert_eq!(failure(&refused), Failure::TcpRefused);
        let timeouts = [attempt("[::1]:1", Timeout), attempt("127.0.0.1:1", Timeout)];
        assert_eq!(failure(&timeouts), Failure::TcpTimeout);
        let one_error = [attempt("[::1]:1", Error("unreachable".into()))];
        assert_eq!(
            failure(&one_error),
            Failure::TcpError {
                detail: "unreachable".into()
            }
        );
        let mixed = [attempt("[::1]:1", Refused), attempt("127.0.0.1:1", Timeout)];
        let f = failure(&mixed);
        assert_eq!(
            f.to_string(),
            "TCP connect failed on every address: [::1]:1 refused; 127.0.0.1:1 timed out"
        );
        assert_eq!(f.phase(), super::super::Phase::Tcp);
    }

    #[test]
    fn hosts_text_and_table_lookups() {
        let r = Resolver::from_hosts("# test\n::1 Edge.Test other\n127.0.0.1 edge.test. # v4\n\n")
            .unwrap();
        let Resolver::Table(t) = &r else {
            panic!("{r:?}")
        };
        let want: Vec<IpAddr> = vec!["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        assert_eq!(t["edge.test"], want);
        assert_eq!(t["other"], want[..1]);
        let bad = Resolver::from_hosts("1.2.3 x").unwrap_err();
        assert!(bad.contains("line 1") && bad.contains("\"1.2.3\""), "{bad}");
    }

    #[tokio::test]
    async fn resolve_filters_families_and_names_what_it_found() {
        let v6: IpAddr = "::1".parse().unwrap();
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let opts = |family| DialOptions {
            family,
            resolver: Resolver::table(&[("edge.test", &[v6, v4]), ("v4.test", &[v4])]),
            ..Default::default()
        };
        let t = Duration::from_secs(1);
        assert_eq!(
            resolve("EDGE.test", 9, &opts(Family::Any), t)
                .await
                .unwrap(),
            addrs(&["[::1]:9", "127.0.0.1:9"])
        );
        assert_eq!(
            resolve("edge.test", 9, &opts(Family::V4), t).await.unwrap(),
            addrs(&["127.0.0.1:9"])
        );
        let e = resolve("v4.test", 9, &opts(Family::V6), t)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "DNS lookup of v4.test failed: no IPv6 (-6) address among 127.0.0.1"
        );
        assert!(resolve("nx.test", 9, &opts(Family::Any), t).await.is_err());
        assert_eq!(
            resolve("::1", 9, &opts(Family::Any), t).await.unwrap(),
            addrs(&["[::1]:9"])
        );
    }

    #[test]
    fn resolve_and_connect_to_parse_as_curl() {
        let r = Resolve::parse("Push.Example.com:1935:127.0.0.2,[::1]").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("push.example.com", 1935));
        assert_eq!(
            r.addrs,
            [
                "127.0.0.2".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert!(
            Resolve::parse("*:443:::1")
                .unwrap()
                .matches("any.host", 443)
        );
        for bad in ["h:1935", "h:x:1.2.3.4", ":1935:1.2.3.4", "h:1935:not-an-ip"] {
            let e = Resolve::parse(bad).unwrap_err();
            assert!(e.to_string().contains("HOST:PORT:ADDR"), "{bad}: {e}");
        }
        let c = ConnectTo::parse("push.example.com:1935:[::1]:19350").unwrap();
        assert_eq!(c.to_host.as_deref(), Some("::1"));
        assert_eq!((c.port, c.to_port), (Some(1935), Some(19350)));
        let any = ConnectTo::parse("::edge.example.net:").unwrap();
        assert_eq!((any.host, any.port, any.to_port), (None, None, None));
        assert_eq!(any.to_host.as_deref(), Some("edge.example.net"));
        assert!(ConnectTo::parse("h:1935:x").is_err());
        assert!(ConnectTo::parse("h:port:x:1").is_err());
    }

    #[tokio::test]
    async fn forced_addresses_keep_the_host_and_say_so() {
        let t = Duration::from_secs(1);
        let opts = DialOptions::forced(
            Family::Any,
            &["push.example.com:1935:127.0.0.2,127.0.0.3".into()],
            &[],
        )
        .unwrap();
        let r = resolve_forced("push.example.com", 1935, &opts, t)
            .await
            .unwrap();
        assert_eq!(r.addrs, addrs(&["127.0.0.2:1935", "127.0.0.3:1935"]));
        assert_eq!(
            r.forced.as_deref(),
            Some("--resolve push.example.com:1935:127.0.0.2,127.0.0.3")
        );
        // Another port is not forced (and an IP literal resolves to itself).
        let other = resolve_forced("127.0.0.9", 80, &opts, t).await.unwrap();
        assert_eq!(
            (other.addrs, other.forced),
            (addrs(&["127.0.0.9:80"]), None)
        );
        // Round robin for load: publisher n dials address n mod 2 first.
        let rot = resolve_forced("push.example.com", 1935, &opts.rotated(3), t)
            .await
            .unwrap();
        assert_eq!(rot.addrs, addrs(&["127.0.0.3:1935", "127.0.0.2:1935"]));
        assert!(opts.spreads());
        // --connect-to moves host and port, then --resolve applies to the target.
        let opts = DialOptions::forced(
            Family::V4,
            &["edge.example.net:19350:127.0.0.4".into()],
            &["push.example.com:1935:edge.example.net:19350".into()],
        )
        .unwrap();
        let r = resolve_forced("push.example.com", 1935, &opts, t)
            .await
            .unwrap();
        assert_eq!(r.addrs, addrs(&["127.0.0.4:19350"]));
        assert_eq!(
            r.forced.as_deref(),
            Some(
                "--connect-to push.example.com:1935:edge.example.net:19350, --resolve edge.example.net:19350:127.0.0.4"
            )
        );
        let v6_only = DialOptions::forced(Family::V6, &["h:1:127.0.0.1".into()], &[]).unwrap();
        let e = resolve_forced("h", 1, &v6_only, t).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("no IPv6 (-6) address among 127.0.0.1"),
            "{e}"
        );
    }

    /// A port with nothing listening (bound, then closed).
    fn closed_port(ip: &str) -> SocketAddr {
        std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[tokio::test]
    async fn first_refused_then_the_next_connects_at_once() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = closed_port("::1");
        let list = [dead, live.local_addr().unwrap()];
        let mut attempts = Vec::new();
        let (_s, addr) = connect(&list, Duration::from_secs(5), None, &mut attempts)
            .await
            .unwrap();
        assert_eq!(addr, list[1]);
        assert_eq!(attempts.len(), 2, "{attempts:?}");
        assert_eq!(attempts[0].result, AttemptResult::Refused);
        assert_eq!(attempts[1].result, AttemptResult::Connected);
        // Started on the refusal, not 250 ms later (a loaded machine may
        // take a while to deliver the refusal itself: compare to it).
        assert!(
            attempts[1].started < attempts[0].took + ATTEMPT_DELAY,
            "{attempts:?}"
        );
    }

    /// A listener with a backlog of 1 whose queue is filled: connects to it
    /// get no answer (a black hole on loopback).
    async fn black_hole() -> (SocketAddr, Vec<TcpStream>, tokio::net::TcpListener) {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = sock.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for _ in 0..8 {
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await
            {
                held.push(s);
            }
        }
        (addr, held, listener)
    }

    #[tokio::test]
    async fn black_hole_first_then_the_next_wins_after_the_delay() {
        let (hole, _held, _l) = black_hole().await;
        let live = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let list = [hole, live.local_addr().unwrap()];
        let mut attempts = Vec::new();
        let timeout = Duration::from_secs(10);
        let (_s, addr) = connect(&list, timeout, None, &mut attempts).await.unwrap();
        assert_eq!(addr, list[1]);
        assert_eq!(attempts[0].result, AttemptResult::Cancelled, "{attempts:?}");
        assert_eq!(attempts[1].result, AttemptResult::Connected);
        // The second started after the attempt delay, well before the
        // first's timeout.
        assert!(attempts[1].started >= ATTEMPT_DELAY, "{attempts:?}");
        assert!(attempts[1].started < timeout, "{attempts:?}");
    }

    #[tokio::test]
    async fn every_address_failing_differently_is_mixed() {
        let (hole, _held, _l) = black_hole().await;
        let dead = closed_port("::1");
        let mut attempts = Vec::new();
        let timeout = Duration::from_millis(700);
        let f = connect(&[dead, hole], timeout, None, &mut attempts)
            .await
            .unwrap_err();
        match &f {
            Failure::TcpMixed { attempts: each } => {
                assert_eq!(each.len(), 2);
                assert_eq!((each[0].addr, each[0].error.as_str()), (dead, "refused"));
                assert_eq!((each[1].addr, each[1].error.as_str()), (hole, "timed out"));
            }
            other => panic!("{other:?}"),
        }
        // As `--json` names them (`probe::report::AttemptReport`).
        assert_eq!(attempts[0].result.name(), "refused");
        assert_eq!(attempts[1].result.name(), "timeout");
        assert_eq!(attempts[1].addr, hole);
        let mut text = Vec::new();
        write_attempts(&mut text, &attempts).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.starts_with(&format!("dial      {dead} refused after ")),
            "{text}"
        );
        assert!(
            text.contains(&format!("dial      {hole} timed out after ")),
            "{text}"
        );
    }
}
