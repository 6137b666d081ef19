//! A shaping TCP proxy for tests (this kernel has no netem or tbf): added
//! delay each way, a bandwidth cap from client to server, and on demand a
//! stall (stops reading and forwarding) or a reset (SO_LINGER 0 close).
//!
//! Blocking threads, a small receive buffer and a bounded queue per
//! direction, so a capped or stalled path pushes back on the client within
//! a few hundred KB, as a slow uplink does. The TCP connect itself is
//! answered by the kernel here: it is not delayed.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the path is impaired.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    /// Added to every byte, each way.
    pub delay: Duration,
    /// Cap on client -> server throughput, in bit/s.
    pub up_bps: Option<u64>,
}

#[derive(Default)]
struct Ctl {
    stalled: AtomicBool,
    reset: AtomicBool,
    /// Bytes read from clients (client -> server direction).
    up_bytes: AtomicU64,
    /// Every socket of every connection, to reset them.
    sockets: Mutex<Vec<TcpStream>>,
}

/// The proxy: listens on 127.0.0.1:0 and forwards each connection to `upstream`.
pub struct Shaper {
    pub port: u16,
    ctl: Arc<Ctl>,
}

/// Receive buffer of the proxy's sockets: small, so back pressure is quick.
const RCVBUF: usize = 16 * 1024;
/// Read size and queue depth per direction (at most ~64 KB in flight).
const PIECE: usize = 8 * 1024;
const QUEUE: usize = 8;

impl Shaper {
    pub fn start(upstream: SocketAddr, shape: Shape) -> Shaper {
        let listener = small_buffer_listener();
        let port = listener.local_addr().unwrap().port();
        let ctl = Arc::new(Ctl::default());
        let c = ctl.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                if c.reset.load(SeqCst) {
                    continue; // dropped: the client sees a close
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = server.set_nodelay(true);
                let _ = client.set_nodelay(true);
                {
                    let mut all = c.sockets.lock().unwrap();
                    all.push(client.try_clone().unwrap());
                    all.push(server.try_clone().unwrap());
                }
                pipe(&c, &client, &server, shape.delay, shape.up_bps, true);
                pipe(&c, &server, &client, shape.delay, None, false);
            }
        });
        Shaper { port, ctl }
    }

    pub fn url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.port)
    }

    /// Bytes the clients sent so far (read by the proxy).
    pub fn up_bytes(&self) -> u64 {
        self.ctl.up_bytes.load(SeqCst)
    }

    /// Waits until the clients sent more than `n` bytes; false after `within`.
    pub fn wait_up_bytes(&self, n: u64, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.up_bytes() > n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// From now on nothing is read or forwarded, either way; sockets stay open.
    pub fn stall(&self) {
        self.ctl.stalled.store(true, SeqCst);
    }

    /// Closes every connection with SO_LINGER 0: each peer gets a TCP reset.
    pub fn reset(&self) {
        self.ctl.reset.store(true, SeqCst);
        let all = std::mem::take(&mut *self.ctl.sockets.lock().unwrap());
        for s in &all {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
        // Wake the blocked readers; the last clone of each socket to drop
        // closes it, and with linger 0 the close is a reset.
        for s in &all {
            let _ = s.shutdown(Shutdown::Read);
        }
    }
}

fn small_buffer_listener() -> TcpListener {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(RCVBUF).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(128).unwrap();
    s.into()
}

/// One direction: a reader thread queues pieces stamped with their due
/// time; a writer thread sends each when due, paced to `bps`.
fn pipe(
    ctl: &Arc<Ctl>,
    from: &TcpStream,
    to: &TcpStream,
    delay: Duration,
    bps: Option<u64>,
    upstream: bool,
) {
    let _ = socket2::SockRef::from(to).set_recv_buffer_size(RCVBUF);
    let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(QUEUE);
    let (from, ctl_r) = (from.try_clone().unwrap(), ctl.clone());
    std::thread::spawn(move || read_side(from, tx, delay, &ctl_r, upstream));
    let (to, ctl_w) = (to.try_clone().unwrap(), ctl.clone());
    std::thread::spawn(move || write_side(to, rx, bps, &ctl_w));
}

/// Sleeps while stalled; false once reset (the thread should end).
fn hold_while_stalled(ctl: &Ctl) -> bool {
    while ctl.stalled.load(SeqCst) && !ctl.reset.load(SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    !ctl.reset.load(SeqCst)
}

fn read_side(
    mut from: TcpStream,
    tx: SyncSender<(Instant, Vec<u8>)>,
    delay: Duration,
    ctl: &Ctl,
    upstream: bool,
) {
    let mut buf = vec![0u8; PIECE];
    loop {
        if !hold_while_stalled(ctl) {
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        if ctl.reset.load(SeqCst) {
            return;
        }
        if upstream {
            ctl.up_bytes.fetch_add(n as u64, SeqCst);
        }
        // An empty piece is the end of the stream.
        if tx
            .send((Instant::now() + delay, buf[..n].to_vec()))
            .is_err()
            || n == 0
        {
            return;
        }
    }
}

fn write_side(mut to: TcpStream, rx: Receiver<(Instant, Vec<u8>)>, bps: Option<u64>, ctl: &Ctl) {
    let mut next_free = Instant::now();
    while let Ok((due, piece)) = rx.recv() {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if !hold_while_stalled(ctl) {
            return;
        }
        if piece.is_empty() {
            let _ = to.shutdown(Shutdown::Write);
            return;
        }
        if let Some(bps) = bps {
            // Pace: this piece may leave once the previous ones have had
            // their time on the capped link.
            let now = Instant::now();
            if next_free > now {
                std::thread::sleep(next_free - now);
            }
            next_free =
                next_free.max(now) + Duration::from_secs_f64(piece.len() as f64 * 8.0 / bps as f64);
        }
        if to.write_all(&piece).is_err() {
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
    }
}
