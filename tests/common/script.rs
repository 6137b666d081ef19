//! Scripted RTMP servers for tests: a real server handshake and chunk
//! stream, then whatever misbehaviour (or echo) a test needs.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::BytesMut;
use pushprobe::rtmp::amf0::{self, Value};
use pushprobe::rtmp::chunk::{self, ChunkDecoder};
use pushprobe::rtmp::handshake::Handshaker;
use pushprobe::rtmp::message::{self, COMMAND_AMF0, CSID_COMMAND, Command as Cmd, Control};

/// What a scripted server saw, for assertions after the run.
#[derive(Default)]
pub struct Seen {
    pub connections: AtomicU64,
    /// Window acknowledgements the client sent.
    pub acks: AtomicU64,
    /// Messages of any kind the client sent after the handshake.
    pub messages: AtomicU64,
    /// Connections whose script has returned (what it counted is final).
    pub finished: AtomicU64,
}

/// A scripted server: one thread accepting on 127.0.0.1:0, one thread per
/// connection running `script`. Threads end with their connection (reads time
/// out after 20 s), and with the test process at the latest.
pub struct Server {
    pub port: u16,
    pub seen: Arc<Seen>,
}

impl Server {
    pub fn start(script: impl Fn(Peer) -> io::Result<()> + Send + Sync + 'static) -> Server {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
    }

    pub fn start_on(
        listener: TcpListener,
        script: impl Fn(Peer) -> io::Result<()> + Send + Sync + 'static,
    ) -> Server {
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let script = Arc::new(script);
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(stream) = conn else { continue };
                s.connections.fetch_add(1, Relaxed);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(20)));
                let (script, seen) = (script.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = script(Peer::new(stream, seen.clone()));
                    seen.finished.fetch_add(1, Relaxed);
                });
            }
        });
        Server { port, seen }
    }

    pub fn url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.port)
    }
}

/// The server side of one connection: a blocking socket, a chunk decoder for
/// what the client sends and the chunk size we send with.
pub struct Peer {
    pub s: TcpStream,
    buf: BytesMut,
    dec: ChunkDecoder,
    out_chunk: u32,
    seen: Arc<Seen>,
}

impl Peer {
    pub fn new(s: TcpStream, seen: Arc<Seen>) -> Peer {
        Peer {
            s,
            buf: BytesMut::new(),
            dec: ChunkDecoder::new(1 << 20),
            out_chunk: chunk::DEFAULT_CHUNK_SIZE,
            seen,
        }
    }

    pub fn read_some(&mut self) -> io::Result<()> {
        let mut tmp = [0u8; 16 * 1024];
        let n = self.s.read(&mut tmp)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }

    /// Reads C0+C1, completes a real server handshake.
    pub fn handshake(&mut self) -> io::Result<()> {
        let mut hs = Handshaker::server();
        loop {
            self.read_some()?;
            let bytes = self.buf.split();
            let step = hs.feed(&bytes).map_err(io::Error::other)?;
            self.s.write_all(&step.send)?;
            if let Some(left) = step.done {
                self.buf.extend_from_slice(&left);
                return Ok(());
            }
        }
    }

    /// The next command from the client; control messages on the way are
    /// applied (chunk size) or counted (acks).
    pub fn command(&mut self) -> io::Result<Cmd> {
        loop {
            let m = match self.dec.decode(&mut self.buf).map_err(io::Error::other)? {
                Some(m) => m,
                None => {
                    self.read_some()?;
                    continue;
                }
            };
            self.seen.messages.fetch_add(1, Relaxed);
            match message::parse_control(m.type_id, &m.payload).map_err(io::Error::other)? {
                Some(Control::SetChunkSize(n)) => {
                    self.dec.set_chunk_size(n).map_err(io::Error::other)?
                }
                Some(Control::Ack(_)) => {
                    self.seen.acks.fetch_add(1, Relaxed);
                }
                Some(_) => {}
                None if m.type_id == COMMAND_AMF0 => {
                    return Cmd::parse(m.type_id, &m.payload).map_err(io::Error::other);
                }
                None => {}
            }
        }
    }

    /// Reads (and counts) whatever the client sends until it closes.
    pub fn drain(&mut self) -> io::Result<()> {
        loop {
            match self.command() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    pub fn send(&mut self, type_id: u8, stream_id: u32, payload: &[u8]) -> io::Result<()> {
        let mut out = BytesMut::new();
        chunk::write_message(
            &mut out,
            self.out_chunk,
            CSID_COMMAND,
            0,
            type_id,
            stream_id,
            payload,
        );
        self.s.write_all(&out)
    }

    pub fn control(&mut self, c: &Control) -> io::Result<()> {
        let (type_id, payload) = message::encode_control(c);
        let mut out = BytesMut::new();
        chunk::write_message(
            &mut out,
            self.out_chunk,
            message::CSID_CONTROL,
            0,
            type_id,
            0,
            &payload,
        );
        self.s.write_all(&out)?;
        if let Control::SetChunkSize(n) = c {
            self.out_chunk = (*n).max(1);
        }
        Ok(())
    }

    pub fn reply(&mut self, stream_id: u32, cmd: &Cmd) -> io::Result<()> {
        self.send(COMMAND_AMF0, stream_id, &cmd.encode())
    }

    /// Raw AMF0 values as one command message (for malformed commands).
    pub fn reply_values(&mut self, stream_id: u32, values: &[Value]) -> io::Result<()> {
        let mut out = BytesMut::new();
        amf0::encode(values, &mut out);
        self.send(COMMAND_AMF0, stream_id, &out)
    }

    pub fn expect(&mut self, name: &str) -> io::Result<Cmd> {
        loop {
            let c = self.command()?;
            if c.name == name {
                return Ok(c);
            }
        }
    }

    pub fn connect_ok(&mut self) -> io::Result<()> {
        self.expect("connect")?;
        self.answer_connect()
    }

    /// The `_result` of connect, once its command was read.
    pub fn answer_connect(&mut self) -> io::Result<()> {
        let info = Value::obj(&[
            ("level", Value::str("status")),
            ("code", Value::str("NetConnection.Connect.Success")),
            ("description", Value::str("ok")),
        ]);
        self.reply(0, &Cmd::new("_result", 1.0, Value::Null, vec![info]))
    }

    pub fn create_stream_ok(&mut self) -> io::Result<()> {
        let c = self.expect("createStream")?;
        self.reply(
            0,
            &Cmd::new(
                "_result",
                c.transaction_id,
                Value::Null,
                vec![Value::Number(1.0)],
            ),
        )
    }

    pub fn publish_start(&mut self) -> io::Result<()> {
        self.expect("publish")?;
        self.reply(1, &on_status("status", "NetStream.Publish.Start"))
    }

    /// Handshake, connect, createStream and publish, all answered well.
    pub fn accept_publish(&mut self) -> io::Result<()> {
        self.handshake()?;
        self.connect_ok()?;
        self.create_stream_ok()?;
        self.publish_start()
    }

    /// Keeps the connection open without reading, for at most `d`. The sleep
    /// is the behaviour under test (a server that stops reading), not a wait.
    pub fn hold(self, d: Duration) -> io::Result<()> {
        std::thread::sleep(d);
        Ok(())
    }
}

pub fn on_status(level: &str, code: &str) -> Cmd {
    Cmd::new(
        "onStatus",
        0.0,
        Value::Null,
        vec![Value::obj(&[
            ("level", Value::str(level)),
            ("code", Value::str(code)),
            ("description", Value::str("scripted")),
        ])],
    )
}

impl Peer {
    /// Reads and discards until the client closes: a server that never answers.
    pub fn hold_reading(&mut self) -> io::Result<()> {
        let mut tmp = [0u8; 4096];
        while self.s.read(&mut tmp)? > 0 {}
        Ok(())
    }
}
