//! The doctor's five checks as pure functions: facts in, a [`Step`] out, in
//! the order of Tencent's push failure checklist (seeds 000/001).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::classify::{Outcome, Verdict};
use crate::clock::{human, rfc3339};
use crate::publish::conn::DialError;
use crate::sign::{self, Expiry, Keys, PushUrl, SecretCheck};

pub use crate::sign::TENCENT_PUSH_SUFFIXES as TENCENT_SUFFIXES;

/// Step names, in checklist order; step `n` is `NAMES[n - 1]`.
/// Step 6, "play back", runs only when a play URL or play domain is given.
pub const NAMES: [&str; 7] = [
    "cname", "network", "txtime", "txsecret", "push", "play", "codecs",
];

/// How one check went. Lowercase in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub step: u8,
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do about it; `None` when there is nothing to do.
    pub fix: Option<String>,
}

impl Step {
    fn new(step: u8, status: Status, detail: String, fix: Option<String>) -> Step {
        Step {
            step,
            name: NAMES[usize::from(step.clamp(1, 7)) - 1],
            status,
            detail,
            fix,
        }
    }

    /// A check not run because an earlier one rules it out.
    pub fn skipped(step: u8, why: &str) -> Step {
        Step::new(step, Status::Skip, format!("not run: {why}"), None)
    }
}

/// The CNAME chain of the push host, as far as DNS told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chain {
    /// The host is an IP address or localhost: no CNAME applies.
    NotApplicable,
    /// The CNAME targets in order (lowercase, no trailing dot); empty when the host has none.
    Found(Vec<String>),
    /// The chain could not be read, and why.
    Unknown(String),
}

/// What DNS said about the push host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFacts {
    /// The addresses a push dials, in dialing order, or why there are none.
    pub addrs: Result<Vec<SocketAddr>, String>,
    pub chain: Chain,
    /// The flags that forced the addresses (`--resolve ...`), if any.
    pub forced: Option<String>,
}

/// `name` ends at one of `suffixes` (with or without a leading dot; case-insensitive).
pub fn ends_with_suffix(name: &str, suffixes: &[String]) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    suffixes.iter().any(|s| {
        let s = s.trim_matches('.').to_ascii_lowercase();
        !s.is_empty() && (name == s || name.ends_with(&format!(".{s}")))
    })
}

fn arrows(host: &str, chain: &[String]) -> String {
    std::iter::once(host)
        .chain(chain.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn expected(suffixes: &[String]) -> String {
    suffixes
        .iter()
        .map(|s| format!("*.{}", s.trim_matches('.')))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Step 1: the host resolves, and its CNAME chain reaches a push target.
/// A chain passes when any name in it ends with one of `suffixes` (assigned
/// targets may CNAME further into the CDN).
pub fn cname_step(host: &str, dns: &DnsFacts, suffixes: &[String]) -> Step {
    let fail = |detail: String| {
        Step::new(
            1,
            Status::Fail,
            detail,
            Some(Outcome::DnsFailure.fix().into()),
        )
    };
    if let (Some(f), Ok(addrs)) = (&dns.forced, &dns.addrs) {
        return forced_step(host, f, addrs, &dns.chain, suffixes);
    }
    let ip = match (&dns.addrs, &dns.chain) {
        (Err(e), Chain::Found(chain)) if !chain.is_empty() => {
            return fail(format!(
                "{}, which does not resolve: {e}",
                arrows(host, chain)
            ));
        }
        (Err(e), _) => return fail(format!("{host} does not resolve: {e}")),
        (Ok(addrs), _) => addrs
            .iter()
            .map(|a| a.ip().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    match &dns.chain {
        Chain::NotApplicable if host.parse::<std::net::IpAddr>().is_ok() => Step::new(
            1,
            Status::Skip,
            format!("{host} is an IP address: no name to resolve, no CNAME to check"),
            None,
        ),
        Chain::NotApplicable => Step::new(
            1,
            Status::Skip,
            format!("{host} resolves to {ip}; a local name has no CNAME to check"),
            None,
        ),
        Chain::Unknown(why) => Step::new(
            1,
            Status::Skip,
            format!("{host} resolves to {ip}; CNAME not checked: {why}"),
            Some(format!("check it by hand: dig CNAME {host}")),
        ),
        Chain::Found(chain) if chain.is_empty() => Step::new(
            1,
            Status::Fail,
            format!("{host} resolves to {ip} but has no CNAME"),
            Some(format!(
                "add a CNAME from {host} to the push target the CSS console shows for it ({})",
                expected(suffixes)
            )),
        ),
        Chain::Found(chain) if chain.iter().any(|n| ends_with_suffix(n, suffixes)) => Step::new(
            1,
            Status::Pass,
            format!("{} ({ip})", arrows(host, chain)),
            None,
        ),
        Chain::Found(chain) => Step::new(
            1,
            Status::Warn,
            format!(
                "{} ({ip}): not a push target ({})",
                arrows(host, chain),
                expected(suffixes)
            ),
            Some(
                "point the CNAME at the push target from the CSS console, or pass --expect-cname SUFFIX for another ingest"
                    .into(),
            ),
        ),
    }
}

/// Step 1 when `--resolve` / `--connect-to` chose the addresses (a domain
/// tested before its DNS is live): what DNS says today, as a warning unless
/// the CNAME already reaches a push target.
fn forced_step(
    host: &str,
    forced: &str,
    addrs: &[SocketAddr],
    chain: &Chain,
    suffixes: &[String],
) -> Step {
    let ips: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let head = format!("addresses forced by {forced} ({})", ips.join(", "));
    let (status, dns) = match chain {
        Chain::Found(c) if c.iter().any(|n| ends_with_suffix(n, suffixes)) => {
            (Status::Pass, format!("DNS: {}", arrows(host, c)))
        }
        Chain::Found(c) if !c.is_empty() => (
            Status::Warn,
            format!(
                "DNS: {}, not a push target ({})",
                arrows(host, c),
                expected(suffixes)
            ),
        ),
        Chain::Found(_) => (
            Status::Warn,
            format!("DNS: {host} has no CNAME to a push target yet"),
        ),
        Chain::NotApplicable => (Status::Skip, "no CNAME applies to this host".into()),
        Chain::Unknown(why) => (Status::Warn, format!("CNAME not checked: {why}")),
    };
    let fix = (status == Status::Warn).then(|| {
        format!(
            "before going live, add the CNAME from {host} to its push target ({}) and run doctor again without --resolve",
            expected(suffixes)
        )
    });
    Step::new(1, status, format!("{head}; {dns}"), fix)
}

/// Step 2: a TCP connect to each address the push may dial, and how long
/// each took. All connect: pass; some fail: a warning naming each dead one
/// (a push still gets through, one edge is down); all fail: fail.
pub fn network_step(
    probes: &[(SocketAddr, Result<Duration, DialError>)],
    timeout: Duration,
) -> Step {
    let dead: Vec<&(SocketAddr, Result<Duration, DialError>)> =
        probes.iter().filter(|(_, r)| r.is_err()).collect();
    let live: Vec<String> = probes
        .iter()
        .filter_map(|(a, r)| {
            r.as_ref()
                .ok()
                .map(|took| format!("connected to {a} in {:.1} ms", took.as_secs_f64() * 1e3))
        })
        .collect();
    match (dead.as_slice(), probes.len()) {
        ([], _) => Step::new(2, Status::Pass, live.join("; "), None),
        ([(addr, Err(e))], 1) => network_failure(*addr, e, timeout),
        _ if dead.len() == probes.len() => Step::new(
            2,
            Status::Fail,
            format!(
                "every address failed: {}",
                dead.iter()
                    .map(|(a, r)| dead_detail(*a, r, timeout))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Some(Outcome::ConnectFailed.fix().into()),
        ),
        _ => Step::new(
            2,
            Status::Warn,
            format!(
                "{} of {} addresses failed: {}; {}",
                dead.len(),
                probes.len(),
                dead.iter()
                    .map(|(a, r)| dead_detail(*a, r, timeout))
                    .collect::<Vec<_>>()
                    .join("; "),
                live.join("; ")
            ),
            Some(format!(
                "a push reaches a live address, but clients that pick {} fail: report the dead edge to whoever runs the ingest",
                dead.iter()
                    .map(|(a, _)| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ),
    }
}

fn dead_detail(addr: SocketAddr, r: &Result<Duration, DialError>, timeout: Duration) -> String {
    match r {
        Ok(_) => format!("{addr} connected"),
        Err(e) => format!("{addr} {}", network_failure(addr, e, timeout).detail),
    }
}

/// Step 2 when the only address failed.
fn network_failure(addr: SocketAddr, e: &DialError, timeout: Duration) -> Step {
    let port = addr.port();
    match e {
        DialError::Refused(_) => Step::new(
            2,
            Status::Fail,
            format!(
                "connection refused: nothing listens on port {port} at {}",
                addr.ip()
            ),
            Some(Outcome::ConnectionRefused.fix().into()),
        ),
        DialError::ConnectTimeout(_) => Step::new(
            2,
            Status::Fail,
            format!(
                "no answer on port {port} at {} in {} s: a firewall probably drops it",
                addr.ip(),
                timeout.as_secs_f64()
            ),
            Some(Outcome::ConnectTimeout.fix().into()),
        ),
        e => Step::new(
            2,
            Status::Fail,
            e.to_string(),
            Some("check the network path to the ingest (routing, VPN, proxy)".into()),
        ),
    }
}

/// Step 3: txTime is not expired, and leaves at least the 12 hours Tencent advises.
pub fn txtime_step(url: &PushUrl, now: u64) -> Step {
    let resign = "sign a new URL valid for 12-24 h: pushprobe url --expires-in 24h";
    let Some(raw) = url.tx_time() else {
        return Step::new(
            3,
            Status::Warn,
            "the URL has no txTime: a domain with push authentication refuses it".into(),
            Some(Outcome::UnsignedUrl.fix().into()),
        );
    };
    let expiry = match url.expiry() {
        Ok(Some(e)) => e,
        Ok(None) | Err(_) => {
            return Step::new(
                3,
                Status::Fail,
                format!("txTime {raw:?} is not hexadecimal Unix seconds"),
                Some(resign.into()),
            );
        }
    };
    let when = format!("txTime {raw} = {}", rfc3339(expiry));
    match sign::expiry_status(expiry, now) {
        Expiry::Expired(ago) => Step::new(
            3,
            Status::Fail,
            format!("{when}: expired {} ago", human(ago)),
            Some(Outcome::ExpiredUrl.fix().into()),
        ),
        Expiry::Short(left) => Step::new(
            3,
            Status::Warn,
            format!(
                "{when}: {} left, under the 12 h Tencent advises; a dropped push cannot reconnect once it expires",
                human(left)
            ),
            Some(resign.into()),
        ),
        Expiry::Valid(left) => Step::new(
            3,
            Status::Pass,
            format!("{when}: valid for {}", human(left)),
            None,
        ),
    }
}

/// Step 4: txSecret is MD5(key + stream + txTime) for the primary or backup key.
pub fn secret_step(url: &PushUrl, keys: &Keys) -> Step {
    match sign::check_secret(url, keys) {
        SecretCheck::Primary => Step::new(
            4,
            Status::Pass,
            "txSecret matches the primary key".into(),
            None,
        ),
        SecretCheck::Backup => Step::new(
            4,
            Status::Pass,
            "txSecret matches the backup key (not the primary)".into(),
            None,
        ),
        SecretCheck::Mismatch => Step::new(
            4,
            Status::Fail,
            "txSecret matches neither the primary nor the backup key given".into(),
            Some(Outcome::BadSecret.fix().into()),
        ),
        SecretCheck::NoTxSecret => Step::new(
            4,
            Status::Warn,
            "the URL has no txSecret: a domain with push authentication refuses it".into(),
            Some(Outcome::UnsignedUrl.fix().into()),
        ),
        SecretCheck::NoTxTime if url.tx_secret().is_none() => Step::new(
            4,
            Status::Warn,
            "the URL has no txSecret: a domain with push authentication refuses it".into(),
            Some(Outcome::UnsignedUrl.fix().into()),
        ),
        SecretCheck::NoTxTime => Step::new(
            4,
            Status::Skip,
            "cannot check txSecret without a txTime".into(),
            Some(Outcome::UnsignedUrl.fix().into()),
        ),
        SecretCheck::NoKey => Step::new(
            4,
            Status::Skip,
            "no key given, so txSecret cannot be checked".into(),
            Some("set PUSHPROBE_KEY (and PUSHPROBE_BACKUP_KEY) to the domain's push keys".into()),
        ),
    }
}

/// Step 5: the short real push, as classified; txSecret redacted unless `show_secrets`.
pub fn push_step(v: &Verdict, show_secrets: bool) -> Step {
    let evidence = v
        .evidence
        .iter()
        .map(|e| {
            if show_secrets {
                e.clone()
            } else {
                sign::redact_query_in(e)
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let certainty = if v.certain { "" } else { " (not certain)" };
    let detail = format!("{}{certainty}: {evidence}", v.outcome.name());
    if v.outcome == Outcome::Accepted {
        Step::new(5, Status::Pass, detail, None)
    } else if v.outcome == Outcome::Cancelled {
        // Stopped by the user: no verdict on the push either way.
        Step::new(5, Status::Skip, detail, None)
    } else {
        Step::new(5, Status::Fail, detail, Some(v.fix.into()))
    }
}

/// Step 6, play back: the stream just pushed, played from the play URL.
/// `None`: the push was not accepted, so there was nothing to play.
pub fn play_step(played: Option<&crate::play::PlayResult>) -> Step {
    let Some(r) = played else {
        return Step::skipped(6, "the push was not accepted (step 5)");
    };
    let detail = crate::play::report::verdict_line(r);
    if r.cancelled && !r.started() {
        return Step::new(6, Status::Skip, detail, None);
    }
    if r.kept_up(None) {
        return Step::new(6, Status::Pass, detail, None);
    }
    let fix = if r.started() {
        "playback started but stalled or broke off: check the path from the edge to you and the CDN's relay of the stream"
    } else {
        "the push was accepted but does not play: check that the play domain is bound to this push domain (CNAME to the play target), the app and stream names, and play authentication"
    };
    Step::new(6, Status::Fail, detail, Some(fix.into()))
}

/// Step 7, codecs: the `smoke --codecs` matrix as one step. Pass when every
/// codec asked for was accepted in some framing; warn when one was only
/// accepted with the server silent about its FourCC (players may get no
/// video); fail otherwise, naming the codecs refused.
pub fn codecs_step(
    rows: &[crate::probe::codecs::Row],
    codecs: &[crate::codec::VideoCodec],
) -> Step {
    use crate::probe::codecs::{self, Cell};
    let detail = rows
        .iter()
        .map(|r| format!("{} {} {}", r.codec, r.framing, r.cell.name()))
        .collect::<Vec<_>>()
        .join(", ");
    if codecs::passed(rows, codecs) {
        return Step::new(7, Status::Pass, detail, None);
    }
    let open: Vec<String> = codecs
        .iter()
        .filter(|c| {
            rows.iter()
                .any(|r| r.codec == **c && r.cell == Cell::Unconfirmed)
        })
        .map(|c| c.to_string())
        .collect();
    let refused: Vec<String> = codecs
        .iter()
        .filter(|c| {
            !rows
                .iter()
                .any(|r| r.codec == **c && matches!(r.cell, Cell::Accepted | Cell::Unconfirmed))
        })
        .map(|c| c.to_string())
        .collect();
    if refused.is_empty() {
        let fix = format!(
            "the server took {} without confirming the FourCC in its connect _result: play it back (--play URL) to see whether video arrives",
            open.join(", ")
        );
        return Step::new(7, Status::Warn, detail, Some(fix));
    }
    let fix = format!(
        "the domain does not take {}: enable HEVC/AV1 for the push domain, try --legacy-codec-id, or push H.264",
        refused.join(", ")
    );
    Step::new(7, Status::Fail, detail, Some(fix))
}

/// The first failing step's name, else "ok with warnings" or "ok".
pub fn overall(steps: &[Step]) -> &'static str {
    if let Some(s) = steps.iter().find(|s| s.status == Status::Fail) {
        s.name
    } else if steps.iter().any(|s| s.status == Status::Warn) {
        "ok with warnings"
    } else {
        "ok"
    }
}

/// True when any step failed (exit 1).
pub fn any_failed(steps: &[Step]) -> bool {
    steps.iter().any(|s| s.status == Status::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::Phase;
    use crate::secret::Secret;
    use crate::sign::{Scheme, UrlSpec};

    const NOW: u64 = 1_700_000_000;
    const HOST: &str = "livepush.example.com";

    fn tencent() -> Vec<String> {
        TENCENT_SUFFIXES.iter().map(|s| s.to_string()).collect()
    }

    fn addr() -> SocketAddr {
        "203.0.113.7:1935".parse().unwrap()
    }

    fn dns(addr: Result<SocketAddr, &str>, chain: Chain) -> DnsFacts {
        DnsFacts {
            addrs: addr.map(|a| vec![a]).map_err(str::to_string),
            forced: None,
            chain,
        }
    }

    fn found(names: &[&str]) -> Chain {
        Chain::Found(names.iter().map(|s| s.to_string()).collect())
    }

    fn key(k: &str) -> Secret {
        Secret::new(k.to_string())
    }

    fn signed(expiry: u64) -> PushUrl {
        let spec = UrlSpec {
            scheme: Scheme::Rtmp,
            domain: HOST.into(),
            port: None,
            app: "live".into(),
            stream: "s1".into(),
        };
        sign::sign_url(&spec, &key("primary"), expiry).unwrap()
    }

    #[test]
    fn cname_table() {
        let cases: Vec<(&str, DnsFacts, Vec<String>, Status, &str)> = vec![
            (
                HOST,
                dns(Ok(addr()), found(&["abc.tlivepush.com"])),
                tencent(),
                Status::Pass,
                "livepush.example.com -> abc.tlivepush.com (203.0.113.7)",
            ),
            (
                HOST,
                dns(
                    Ok(addr()),
                    found(&["abc.livepush.myqcloud.com", "edge.cdn.example.net"]),
                ),
                tencent(),
                Status::Pass,
                "-> abc.livepush.myqcloud.com -> edge.cdn.example.net",
            ),
            (
                HOST,
                dns(Ok(addr()), found(&["edge.othercdn.net"])),
                tencent(),
                Status::Warn,
                "not a push target (*.tlivepush.com, *.tlivecdn.com, *.livepush.myqcloud.com)",
            ),
            (
                HOST,
                dns(Ok(addr()), found(&["edge.othercdn.net"])),
                vec!["othercdn.net".into()],
                Status::Pass,
                "-> edge.othercdn.net",
            ),
            (
                HOST,
                dns(Ok(addr()), found(&[])),
                tencent(),
                Status::Fail,
                "resolves to 203.0.113.7 but has no CNAME",
            ),
            (
                HOST,
                dns(Ok(addr()), Chain::Unknown("query timed out".into())),
                tencent(),
                Status::Skip,
                "CNAME not checked: query timed out",
            ),
            (
                "127.0.0.1",
                dns(Ok("127.0.0.1:1935".parse().unwrap()), Chain::NotApplicable),
                tencent(),
                Status::Skip,
                "127.0.0.1 is an IP address",
            ),
            (
                "localhost",
                dns(Ok("127.0.0.1:1935".parse().unwrap()), Chain::NotApplicable),
                tencent(),
                Status::Skip,
                "localhost resolves to 127.0.0.1",
            ),
            (
                "push.example.invalid",
                dns(Err("Name or service not known"), found(&[])),
                tencent(),
                Status::Fail,
                "push.example.invalid does not resolve: Name or service not known",
            ),
            (
                HOST,
                dns(Err("NXDOMAIN"), found(&["gone.tlivepush.com"])),
                tencent(),
                Status::Fail,
                "livepush.example.com -> gone.tlivepush.com, which does not resolve",
            ),
        ];
        for (i, (host, facts, suffixes, status, detail)) in cases.into_iter().enumerate() {
            let s = cname_step(host, &facts, &suffixes);
            assert_eq!((s.step, s.name), (1, "cname"));
            assert_eq!(s.status, status, "case {i}: {s:?}");
            assert!(s.detail.contains(detail), "case {i}: {:?}", s.detail);
            if matches!(status, Status::Warn | Status::Fail) {
                assert!(s.fix.is_some(), "case {i} has a fix");
            }
        }
        let no_cname = cname_step(HOST, &dns(Ok(addr()), found(&[])), &tencent());
        assert!(no_cname.fix.unwrap().starts_with("add a CNAME"));
    }

    #[test]
    fn forced_addresses_report_dns_without_failing() {
        let forced = |chain| DnsFacts {
            addrs: Ok(vec![addr()]),
            chain,
            forced: Some("--resolve livepush.example.com:1935:203.0.113.7".into()),
        };
        let early = cname_step(HOST, &forced(found(&[])), &tencent());
        assert_eq!(early.status, Status::Warn, "{early:?}");
        assert_eq!(
            early.detail,
            "addresses forced by --resolve livepush.example.com:1935:203.0.113.7 (203.0.113.7:1935); \
             DNS: livepush.example.com has no CNAME to a push target yet"
        );
        assert!(early.fix.unwrap().contains("without --resolve"));
        let live = cname_step(HOST, &forced(found(&["abc.tlivepush.com"])), &tencent());
        assert_eq!(live.status, Status::Pass, "{live:?}");
        assert!(
            live.detail
                .ends_with("DNS: livepush.example.com -> abc.tlivepush.com")
        );
    }

    #[test]
    fn suffixes_match_whole_labels() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(ends_with_suffix(
            "a.TLIVEPUSH.com.",
            &s(&[".tlivepush.com"])
        ));
        assert!(ends_with_suffix("a.tlivepush.com", &s(&["tlivepush.com"])));
        assert!(!ends_with_suffix(
            "a.nottlivepush.com",
            &s(&[".tlivepush.com"])
        ));
        assert!(!ends_with_suffix("a.example.com", &s(&[""])));
    }

    #[test]
    fn network_table() {
        let a = addr();
        let t = Duration::from_secs(5);
        let ok = network_step(&[(a, Ok(Duration::from_micros(1500)))], t);
        assert_eq!(
            (ok.status, ok.detail.as_str()),
            (Status::Pass, "connected to 203.0.113.7:1935 in 1.5 ms")
        );
        let refused = network_step(&[(a, Err(DialError::Refused(a)))], t);
        assert_eq!(refused.status, Status::Fail);
        assert!(
            refused
                .detail
                .contains("refused: nothing listens on port 1935"),
            "{refused:?}"
        );
        let dropped = network_step(&[(a, Err(DialError::ConnectTimeout(a)))], t);
        assert_eq!(dropped.status, Status::Fail);
        assert!(
            dropped
                .detail
                .contains("no answer on port 1935 at 203.0.113.7 in 5 s: a firewall"),
            "{dropped:?}"
        );
        assert_eq!(dropped.fix.as_deref(), Some(Outcome::ConnectTimeout.fix()));
        let other = network_step(
            &[(
                a,
                Err(DialError::Connect {
                    addr: a,
                    source: std::io::ErrorKind::NetworkUnreachable.into(),
                }),
            )],
            t,
        );
        assert_eq!(other.status, Status::Fail);
    }

    #[test]
    fn one_dead_edge_of_three_warns_naming_it_all_dead_fails() {
        let t = Duration::from_secs(5);
        let e = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let (a, b, c) = (
            e("203.0.113.7:1935"),
            e("203.0.113.8:1935"),
            e("[2001:db8::9]:1935"),
        );
        let ms = Duration::from_millis;
        let one_dead = network_step(
            &[
                (a, Ok(ms(2))),
                (b, Err(DialError::Refused(b))),
                (c, Ok(ms(3))),
            ],
            t,
        );
        assert_eq!(one_dead.status, Status::Warn, "{one_dead:?}");
        assert_eq!(
            one_dead.detail,
            "1 of 3 addresses failed: 203.0.113.8:1935 connection refused: nothing listens on port 1935 at 203.0.113.8; \
             connected to 203.0.113.7:1935 in 2.0 ms; connected to [2001:db8::9]:1935 in 3.0 ms"
        );
        assert!(one_dead.fix.unwrap().contains("203.0.113.8:1935"));
        let all_dead = network_step(
            &[
                (a, Err(DialError::Refused(a))),
                (b, Err(DialError::ConnectTimeout(b))),
            ],
            t,
        );
        assert_eq!(all_dead.status, Status::Fail);
        assert!(
            all_dead
                .detail
                .starts_with("every address failed: 203.0.113.7:1935 connection refused"),
            "{all_dead:?}"
        );
        assert!(
            all_dead
                .detail
                .contains("203.0.113.8:1935 no answer on port 1935"),
            "{all_dead:?}"
        );
        let all_live = network_step(&[(a, Ok(ms(1))), (c, Ok(ms(2)))], t);
        assert_eq!(all_live.status, Status::Pass);
        assert_eq!(
            all_live.detail,
            "connected to 203.0.113.7:1935 in 1.0 ms; connected to [2001:db8::9]:1935 in 2.0 ms"
        );
    }

    #[test]
    fn txtime_table() {
        let cases = [
            (NOW + 86_400, Status::Pass, "valid for 1 day 0 h"),
            (
                NOW + 3 * 3600,
                Status::Warn,
                "3 h 0 min left, under the 12 h",
            ),
            (NOW - 7200, Status::Fail, "expired 2 h 0 min ago"),
            (NOW, Status::Fail, "expired 0 s ago"),
        ];
        for (expiry, status, detail) in cases {
            let s = txtime_step(&signed(expiry), NOW);
            assert_eq!((s.step, s.name), (3, "txtime"));
            assert_eq!(s.status, status, "{s:?}");
            assert!(s.detail.contains(detail), "{:?}", s.detail);
            assert!(
                s.detail.contains(&sign::tx_time_hex(expiry)),
                "{:?}",
                s.detail
            );
        }
        let unsigned = PushUrl::parse("rtmp://h/live/s").unwrap();
        assert_eq!(txtime_step(&unsigned, NOW).status, Status::Warn);
        let bad = PushUrl::parse("rtmp://h/live/s?txTime=zz").unwrap();
        assert_eq!(txtime_step(&bad, NOW).status, Status::Fail);
    }

    #[test]
    fn secret_table() {
        let url = signed(NOW + 86_400);
        let keys = |p: Option<&str>, b: Option<&str>| Keys {
            primary: p.map(key),
            backup: b.map(key),
        };
        let cases = [
            (
                url.clone(),
                keys(Some("primary"), None),
                Status::Pass,
                "primary",
            ),
            (
                url.clone(),
                keys(Some("old"), Some("primary")),
                Status::Pass,
                "backup",
            ),
            (
                url.clone(),
                keys(Some("wrong"), None),
                Status::Fail,
                "matches neither",
            ),
            (url.clone(), keys(None, None), Status::Skip, "no key given"),
            (
                PushUrl::parse("rtmp://h/live/s").unwrap(),
                keys(Some("primary"), None),
                Status::Warn,
                "no txSecret",
            ),
            (
                PushUrl::parse("rtmp://h/live/s?txTime=6553F100").unwrap(),
                keys(Some("primary"), None),
                Status::Warn,
                "no txSecret",
            ),
            (
                PushUrl::parse("rtmp://h/live/s?txSecret=abc").unwrap(),
                keys(Some("primary"), None),
                Status::Skip,
                "without a txTime",
            ),
        ];
        for (i, (u, k, status, detail)) in cases.into_iter().enumerate() {
            let s = secret_step(&u, &k);
            assert_eq!((s.step, s.name), (4, "txsecret"));
            assert_eq!(s.status, status, "case {i}: {s:?}");
            assert!(s.detail.contains(detail), "case {i}: {:?}", s.detail);
        }
    }

    fn verdict(outcome: Outcome, evidence: &str, certain: bool) -> Verdict {
        Verdict {
            outcome,
            evidence: vec![evidence.to_string()],
            step: outcome.step(),
            fix: outcome.fix(),
            phase: Some(Phase::Publish),
            certain,
        }
    }

    #[test]
    fn push_step_redacts_and_names_outcome() {
        let ok = push_step(
            &verdict(
                Outcome::Accepted,
                "server answered NetStream.Publish.Start",
                true,
            ),
            false,
        );
        assert_eq!(ok.status, Status::Pass);
        assert_eq!(
            ok.detail,
            "accepted: server answered NetStream.Publish.Start"
        );
        assert_eq!(ok.fix, None);
        let leak = "server refused at publish: error X \"s?txSecret=abc123&txTime=1\"";
        let bad = push_step(&verdict(Outcome::ExpiredUrl, leak, true), false);
        assert_eq!(bad.status, Status::Fail);
        assert!(bad.detail.starts_with("expired_url: "), "{bad:?}");
        assert!(!bad.detail.contains("abc123"), "{bad:?}");
        assert_eq!(bad.fix.as_deref(), Some(Outcome::ExpiredUrl.fix()));
        let shown = push_step(&verdict(Outcome::ExpiredUrl, leak, true), true);
        assert!(shown.detail.contains("abc123"));
        let unsure = push_step(&verdict(Outcome::Refused, "closed", false), false);
        assert!(
            unsure.detail.starts_with("refused (not certain): "),
            "{unsure:?}"
        );
    }

    #[test]
    fn overall_verdict() {
        let step = |n: u8, status| Step::new(n, status, String::new(), None);
        let all = |s: [Status; 5]| {
            (1..=5)
                .zip(s)
                .map(|(n, st)| step(n, st))
                .collect::<Vec<_>>()
        };
        use Status::*;
        assert_eq!(overall(&all([Pass, Pass, Pass, Pass, Pass])), "ok");
        assert_eq!(overall(&all([Skip, Pass, Pass, Skip, Pass])), "ok");
        assert_eq!(
            overall(&all([Warn, Pass, Warn, Pass, Pass])),
            "ok with warnings"
        );
        assert_eq!(overall(&all([Warn, Fail, Pass, Fail, Skip])), "network");
        assert_eq!(overall(&all([Pass, Pass, Fail, Pass, Fail])), "txtime");
        assert!(any_failed(&all([Pass, Pass, Pass, Pass, Fail])));
        assert!(!any_failed(&all([Warn, Skip, Pass, Pass, Pass])));
        assert_eq!(Step::skipped(5, "x").name, "push");
    }
}
