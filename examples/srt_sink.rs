//! Bench and test tooling, not part of pushprobe: an SRT listener that
//! accepts every caller and discards what it sends, so `load` over SRT has
//! a many-caller peer (srt-live-transmit takes one caller per process).
//!
//! Usage: `srt_sink [ADDR]` (default 127.0.0.1:0). Prints
//! `srt sink listening on ADDR`, then on SIGINT/SIGTERM
//! `srt sink: N callers, B bytes` and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use srt_tokio::SrtListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let udp = tokio::net::UdpSocket::bind(&addr).await?;
    let local = udp.local_addr()?;
    let (_listener, mut incoming) = SrtListener::builder().socket(udp).bind(local).await?;
    println!("srt sink listening on {local}");
    let callers = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let (c, b) = (callers.clone(), bytes.clone());
    let accept = tokio::spawn(async move {
        while let Some(req) = incoming.incoming().next().await {
            let Ok(mut socket) = req.accept(None).await else {
                continue;
            };
            c.fetch_add(1, Ordering::Relaxed);
            let b = b.clone();
            tokio::spawn(async move {
                while let Some(Ok((_, data))) = socket.next().await {
                    b.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    accept.abort();
    println!(
        "srt sink: {} callers, {} bytes",
        callers.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed)
    );
    Ok(())
}
