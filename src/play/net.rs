//! Reaching the server for any play transport: DNS, TCP (the publisher's
//! dialer, every address raced) and TLS, each phase marked on the player.

use tokio::time::Instant;

use super::{Failure, Phase, PlayConfig, PlayUrl, Player};
use crate::publish::conn::{self, Dial, Transport};
use crate::publish::dial;

/// Connects to `u`'s host and port (TLS for rtmps/https).
pub async fn dial(
    cfg: &PlayConfig,
    u: &PlayUrl,
    player: &mut Player<'_>,
) -> Result<Transport, Failure> {
    let failed = |phase: Phase, detail: String| Failure::Dial { phase, detail };
    let resolved = dial::resolve_forced(&u.host, u.port, &cfg.dial, cfg.timeout)
        .await
        .map_err(|e| failed(Phase::Dns, e.to_string()))?;
    player.mark(Phase::Dns, Instant::now());
    let mut attempts = Vec::new();
    let (tcp, _addr) = dial::connect(&resolved.addrs, cfg.timeout, None, &mut attempts)
        .await
        .map_err(|f| failed(Phase::Tcp, f.to_string()))?;
    player.mark(Phase::Tcp, Instant::now());
    if !u.tls {
        return Ok(Transport::Tcp(tcp));
    }
    let d = Dial {
        host: u.host.clone(),
        port: u.port,
        tls: true,
        insecure: cfg.insecure,
        timeout: cfg.timeout,
    };
    let t = conn::start_tls(tcp, &d)
        .await
        .map_err(|e| failed(Phase::Tls, e.to_string()))?;
    player.mark(Phase::Tls, Instant::now());
    Ok(t)
}
