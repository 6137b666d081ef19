//! Reaching the server for any play transport: DNS, TCP (the publisher's
//! dialer, every address raced) and TLS, each phase marked on the player.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
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

/// The size of each thread's read buffer.
const SCRATCH: usize = 64 << 10;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH].into_boxed_slice());
}

/// One read into the thread's scratch buffer, the bytes handed to `take`
/// within the same poll (the buffer is never held across a wait, so
/// 10,000 waiting players hold no read buffer, and one read takes all the
/// server wrote). `Ok(None)`: end of stream.
pub fn poll_read_scratch<T>(
    io: &mut Transport,
    cx: &mut Context<'_>,
    take: impl FnOnce(&[u8]) -> T,
) -> Poll<std::io::Result<Option<T>>> {
    SCRATCH_BUF.with_borrow_mut(|buf| {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(io).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Ok(None)),
            Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(take(rb.filled())))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
}
