//! Play-out load helper (not part of the product): N RTMP play viewers of
//! one stream, each a small task that does the handshake, connect,
//! createStream and play, then reads and acks until the time is up. Prints
//! how many viewers got media and the bytes each received.
//!
//! `cargo run --example playout_viewers -- 127.0.0.1:1935 live/STREAM 1000 30`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pushprobe::rtmp::amf0::Value;
use pushprobe::rtmp::chunk::write_message;
use pushprobe::rtmp::drive::handshake;
use pushprobe::rtmp::handshake::Role;
use pushprobe::rtmp::message::{COMMAND_AMF0, Command, Control, encode_control};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn viewer(addr: String, app: String, stream: String, until: Instant) -> anyhow::Result<u64> {
    let mut io = TcpStream::connect(&addr).await?;
    handshake(&mut io, Role::Client).await?;
    let mut out = BytesMut::new();
    let tc_url = Value::str(&format!("rtmp://{addr}/{app}"));
    let cmds = [
        (
            0,
            Command::new(
                "connect",
                1.0,
                Value::obj(&[("app", Value::str(&app)), ("tcUrl", tc_url)]),
                vec![],
            ),
        ),
        (0, Command::new("createStream", 2.0, Value::Null, vec![])),
        (
            1,
            Command::new("play", 3.0, Value::Null, vec![Value::str(&stream)]),
        ),
    ];
    for (sid, c) in cmds {
        write_message(&mut out, 128, 3, 0, COMMAND_AMF0, sid, &c.encode());
    }
    io.write_all(&out).await?;
    let mut buf = vec![0u8; 16384];
    let (mut got, mut acked) = (0u64, 0u64);
    while let Ok(r) = tokio::time::timeout_at(until.into(), io.read(&mut buf)).await {
        let n = r?;
        if n == 0 {
            break;
        }
        got += n as u64;
        // The ingest announces a 2.5 MB window: ack it as a client must.
        if got - acked >= 2_500_000 {
            acked = got;
            let (t, p) = encode_control(&Control::Ack(got as u32));
            let mut m = BytesMut::new();
            write_message(&mut m, 128, 2, 0, t, 0, &p);
            io.write_all(&m).await?;
        }
    }
    Ok(got)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, path, n, secs] = &args[..] else {
        anyhow::bail!("usage: playout_viewers ADDR APP/STREAM VIEWERS SECONDS");
    };
    let (app, stream) = path.split_once('/').unwrap_or(("live", path));
    let (n, secs): (usize, u64) = (n.parse()?, secs.parse()?);
    let until = Instant::now() + Duration::from_secs(secs);
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (addr, app, stream, failed) = (
            addr.clone(),
            app.to_string(),
            stream.to_string(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            match viewer(addr, app, stream, until).await {
                Ok(b) => b,
                Err(e) => {
                    if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("first viewer error: {e:#}");
                    }
                    0
                }
            }
        }));
    }
    let mut bytes = Vec::with_capacity(n);
    for t in tasks {
        bytes.push(t.await.unwrap_or(0));
    }
    bytes.sort_unstable();
    println!(
        "viewers {n} failed {} bytes min {} median {} max {}",
        failed.load(Ordering::Relaxed),
        bytes[0],
        bytes[n / 2],
        bytes[n - 1]
    );
    Ok(())
}
