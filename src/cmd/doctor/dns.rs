//! DNS facts for the doctor: the addresses a push dials (through
//! `dial::resolve`, exactly as `push` does) and the host's CNAME
//! chain (hickory, one CNAME query per hop, at most [`MAX_HOPS`], the whole
//! walk bounded by the timeout).

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{ConnectionProvider, Resolver, TokioResolver};

use super::steps::{Chain, DnsFacts};
use crate::publish::conn::{Dial, DialError};
use crate::publish::dial::{self, DialOptions};

/// Longest CNAME chain we follow.
pub const MAX_HOPS: usize = 10;

/// False for IP literals and localhost names: no CNAME applies to them.
pub fn cname_applies(host: &str) -> bool {
    let h = normalize(host);
    h.parse::<IpAddr>().is_err() && h != "localhost" && !h.ends_with(".localhost")
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Resolves the host as the push will and reads its CNAME chain, concurrently.
pub async fn gather(d: &Dial, opts: &DialOptions) -> DnsFacts {
    let (addrs, chain) = tokio::join!(
        dial::resolve_forced(&d.host, d.port, opts, d.timeout),
        system_chain(&d.host, d.timeout)
    );
    let forced = addrs.as_ref().ok().and_then(|r| r.forced.clone());
    DnsFacts {
        forced,
        addrs: addrs.map(|r| r.addrs).map_err(|e| match e {
            DialError::Dns { detail, .. } => detail,
            DialError::DnsTimeout(_) => {
                format!("no answer from DNS in {} s", d.timeout.as_secs_f64())
            }
            other => other.to_string(),
        }),
        chain,
    }
}

/// The CNAME chain through the system's DNS servers (resolv.conf).
pub async fn system_chain(host: &str, timeout: Duration) -> Chain {
    if !cname_applies(host) {
        return Chain::NotApplicable;
    }
    let mut builder = match TokioResolver::builder_tokio() {
        Ok(b) => b,
        Err(e) => {
            return Chain::Unknown(format!("cannot read the system DNS configuration: {e}"));
        }
    };
    builder.options_mut().timeout = timeout;
    match builder.build() {
        Ok(resolver) => chain(&resolver, host, timeout).await,
        Err(e) => Chain::Unknown(format!("cannot set up a DNS resolver: {e}")),
    }
}

/// Follows CNAMEs from `host` with `resolver`; the whole walk within `timeout`.
pub async fn chain<P: ConnectionProvider>(
    resolver: &Resolver<P>,
    host: &str,
    timeout: Duration,
) -> Chain {
    match tokio::time::timeout(timeout, walk(resolver, host)).await {
        Ok(c) => c,
        Err(_) => Chain::Unknown(format!("no CNAME answer in {} s", timeout.as_secs_f64())),
    }
}

async fn walk<P: ConnectionProvider>(resolver: &Resolver<P>, host: &str) -> Chain {
    let start = normalize(host);
    let mut name = start.clone();
    let mut chain: Vec<String> = Vec::new();
    loop {
        let target = match resolver.lookup(format!("{name}."), RecordType::CNAME).await {
            Ok(lookup) => lookup.answers().iter().find_map(|r| match &r.data {
                RData::CNAME(c) if normalize(&r.name.to_ascii()) == name => {
                    Some(normalize(&c.0.to_ascii()))
                }
                _ => None,
            }),
            Err(e) if e.is_no_records_found() => None,
            Err(e) => return Chain::Unknown(format!("CNAME query for {name} failed: {e}")),
        };
        let Some(target) = target else {
            return Chain::Found(chain);
        };
        if target == start || chain.contains(&target) {
            return Chain::Unknown(format!("CNAME loop: {name} -> {target}"));
        }
        if chain.len() == MAX_HOPS {
            return Chain::Unknown(format!("more than {MAX_HOPS} CNAME hops"));
        }
        chain.push(target.clone());
        name = target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::SocketAddr;

    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::proto::op::{Message, ResponseCode};
    use hickory_resolver::proto::rr::rdata::CNAME;
    use hickory_resolver::proto::rr::{Name, Record};
    use tokio::net::UdpSocket;

    /// A DNS server on loopback: CNAME answers from `table`, NXDOMAIN for
    /// names starting `nx.`, an empty answer (NODATA) for the rest; silent
    /// when `table` is `None`.
    async fn fake_dns(table: Option<HashMap<String, String>>) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
                let (Some(table), Ok(q)) = (&table, Message::from_vec(&buf[..n])) else {
                    continue;
                };
                let Some(query) = q.queries.first().cloned() else {
                    continue;
                };
                let mut resp = Message::response(q.metadata.id, q.metadata.op_code);
                resp.metadata.recursion_desired = true;
                resp.metadata.recursion_available = true;
                resp.add_query(query.clone());
                let qname = normalize(&query.name().to_ascii());
                match table.get(&qname) {
                    Some(target) if query.query_type() == RecordType::CNAME => {
                        let target = Name::from_ascii(format!("{target}.")).unwrap();
                        resp.add_answer(Record::from_rdata(
                            query.name().clone(),
                            60,
                            RData::CNAME(CNAME(target)),
                        ));
                    }
                    _ if qname.starts_with("nx.") => {
                        resp.metadata.response_code = ResponseCode::NXDomain;
                    }
                    _ => {}
                }
                let _ = sock.send_to(&resp.to_vec().unwrap(), peer).await;
            }
        });
        addr
    }

    fn resolver_at(addr: SocketAddr) -> Resolver<TokioRuntimeProvider> {
        let mut ns = NameServerConfig::udp(addr.ip());
        ns.connections[0].port = addr.port();
        let config = ResolverConfig::from_name_servers(vec![ns]);
        let mut b = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
        b.options_mut().timeout = Duration::from_millis(500);
        b.build().unwrap()
    }

    fn table(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    async fn walk_at(t: Option<HashMap<String, String>>, host: &str) -> Chain {
        let r = resolver_at(fake_dns(t).await);
        chain(&r, host, Duration::from_secs(2)).await
    }

    #[tokio::test]
    async fn follows_a_chain_to_its_end() {
        let t = table(&[
            ("push.example.com", "Alias.Example.NET"),
            ("alias.example.net", "abc.tlivepush.com"),
        ]);
        assert_eq!(
            walk_at(t.clone(), "PUSH.example.com.").await,
            Chain::Found(vec!["alias.example.net".into(), "abc.tlivepush.com".into()])
        );
        assert_eq!(walk_at(t, "plain.example.com").await, Chain::Found(vec![]));
        assert_eq!(
            walk_at(table(&[]), "nx.example.com").await,
            Chain::Found(vec![])
        );
    }

    #[tokio::test]
    async fn stops_at_loops_and_long_chains() {
        let t = table(&[
            ("a.example.com", "b.example.com"),
            ("b.example.com", "a.example.com"),
        ]);
        let looped = walk_at(t, "a.example.com").await;
        assert_eq!(
            looped,
            Chain::Unknown("CNAME loop: b.example.com -> a.example.com".into())
        );
        let hops: Vec<(String, String)> = (0..=MAX_HOPS)
            .map(|i| {
                (
                    format!("h{i}.example.com"),
                    format!("h{}.example.com", i + 1),
                )
            })
            .collect();
        let as_table = |n: usize| Some(hops[..n].iter().cloned().collect::<HashMap<_, _>>());
        match walk_at(as_table(MAX_HOPS), "h0.example.com").await {
            Chain::Found(c) => assert_eq!(c.len(), MAX_HOPS),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            walk_at(as_table(MAX_HOPS + 1), "h0.example.com").await,
            Chain::Unknown(format!("more than {MAX_HOPS} CNAME hops"))
        );
    }

    #[tokio::test]
    async fn silent_server_is_unknown_within_the_timeout() {
        let r = resolver_at(fake_dns(None).await);
        let started = std::time::Instant::now();
        let c = chain(&r, "push.example.com", Duration::from_millis(300)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(c, Chain::Unknown(_)), "{c:?}");
    }

    #[test]
    fn ip_literals_and_localhost_have_no_cname() {
        for h in ["127.0.0.1", "::1", "localhost", "LOCALHOST.", "a.localhost"] {
            assert!(!cname_applies(h), "{h}");
        }
        for h in [
            "livepush.example.com",
            "push.example.invalid",
            "localhost.example.com",
        ] {
            assert!(cname_applies(h), "{h}");
        }
    }
}
