//! Session tests: the ingest on a real 127.0.0.1:0 socket, driven by a
//! scripted client built from the crate's own RTMP pieces.

use std::time::{Duration, SystemTime};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::timeout;

use super::*;
use crate::errcode::{Errcode, SubErrcode};
use crate::notify::{Notifier, NotifyConfig};
use crate::rtmp::amf0::{self, Value};
use crate::rtmp::chunk::{ChunkDecoder, Message, write_message};
use crate::rtmp::handshake::Handshaker;
use crate::rtmp::message::{
    AUDIO, COMMAND_AMF0, Command, Control, StatusReply, UserControl, VIDEO, encode_control,
    parse_control,
};
use crate::secret::Secret;
use crate::sign::{self, Scheme, UrlSpec};

const WAIT: Duration = Duration::from_secs(5);

struct Client {
    io: TcpStream,
    dec: ChunkDecoder,
    buf: BytesMut,
    chunk: u32,
}

impl Client {
    async fn handshaken(addr: SocketAddr) -> Client {
        let mut io = TcpStream::connect(addr).await.unwrap();
        let (mut hs, c0c1) = Handshaker::client().unwrap();
        io.write_all(&c0c1).await.unwrap();
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            let n = timeout(WAIT, io.read_buf(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "server closed during the handshake");
            let step = hs.feed(&buf).unwrap();
            buf.clear();
            io.write_all(&step.send).await.unwrap();
            if let Some(rest) = step.done {
                buf.extend_from_slice(&rest);
                break;
            }
        }
        Client {
            io,
            dec: ChunkDecoder::new(1 << 24),
            buf,
            chunk: 128,
        }
    }

    /// Handshake, connect to `app`, createStream.
    async fn ready(addr: SocketAddr, app: &str) -> Client {
        let mut c = Client::handshaken(addr).await;
        let tc_url = format!("rtmp://{addr}/{app}");
        c.connect(app, &tc_url).await;
        c.command(
            0,
            Command::new("releaseStream", 2.0, Value::Null, vec![Value::str("x")]),
        )
        .await;
        c.command(0, Command::new("createStream", 3.0, Value::Null, vec![]))
            .await;
        loop {
            let r = c.expect_command().await.unwrap();
            if r.transaction_id == 3.0 {
                assert_eq!(r.name, "_result");
                assert_eq!(r.args, vec![Value::Number(1.0)]);
                return c;
            }
        }
    }

    async fn connect(&mut self, app: &str, tc_url: &str) {
        let obj = Value::obj(&[("app", Value::str(app)), ("tcUrl", Value::str(tc_url))]);
        self.command(0, Command::new("connect", 1.0, obj, vec![]))
            .await;
        let r = self.expect_command().await.unwrap();
        assert_eq!(r.name, "_result");
        assert_eq!(r.status().unwrap().code, "NetConnection.Connect.Success");
    }

    async fn send(&mut self, csid: u32, type_id: u8, stream_id: u32, payload: &[u8]) {
        let mut out = BytesMut::new();
        write_message(&mut out, self.chunk, csid, 0, type_id, stream_id, payload);
        self.io.write_all(&out).await.unwrap();
    }

    async fn control(&mut self, c: Control) {
        let (t, p) = encode_control(&c);
        self.send(2, t, 0, &p).await;
        if let Control::SetChunkSize(n) = c {
            self.chunk = n;
        }
    }

    async fn command(&mut self, stream_id: u32, c: Command) {
        self.send(3, COMMAND_AMF0, stream_id, &c.encode()).await;
    }

    /// The next message, or None when the server closed (or reset).
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(m) = self.dec.decode(&mut self.buf).unwrap() {
                if let Ok(Some(Control::SetChunkSize(n))) = parse_control(m.type_id, &m.payload) {
                    self.dec.set_chunk_size(n).unwrap();
                }
                return Some(m);
            }
            match timeout(WAIT, self.io.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(_)) => {}
                Err(_) => panic!("server neither answered nor closed"),
            }
        }
    }

    async fn expect_command(&mut self) -> Option<Command> {
        loop {
            let m = self.next().await?;
            if m.type_id == COMMAND_AMF0 {
                return Some(Command::parse(m.type_id, &m.payload).unwrap());
            }
        }
    }

    /// Publishes and returns the onStatus, or None when the server closed first.
    async fn publish(&mut self, name: &str) -> Option<StatusReply> {
        let args = vec![Value::str(name), Value::str("live")];
        self.command(1, Command::new("publish", 5.0, Value::Null, args))
            .await;
        loop {
            let c = self.expect_command().await?;
            if c.name == "onStatus" {
                return c.status();
            }
        }
    }

    /// True when the server closes within WAIT (whatever it sent first).
    async fn closed(&mut self) -> bool {
        let mut sink = [0u8; 4096];
        loop {
            match timeout(WAIT, self.io.read(&mut sink)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn record_for(h: &IngestHandle, stream: &str) -> Record {
    eventually(&format!("a record for {stream}"), || {
        h.state()
            .registry()
            .records()
            .into_iter()
            .find(|r| r.stream == stream)
    })
    .await
}

fn avc_sequence_header() -> Vec<u8> {
    // The built-in 640x360 fixture's.
    crate::flv::default_fixture()
        .video_sequence_header
        .unwrap()
        .data
        .to_vec()
}

#[tokio::test]
async fn publish_is_accepted_listed_and_recorded_on_delete_stream() {
    let h = spawn(IngestConfig::default()).await.unwrap();
    let mut c = Client::ready(h.rtmp_addr, "live").await;
    let status = c.publish("cam?foo=bar").await.unwrap();
    assert_eq!(status.code, "NetStream.Publish.Start");
    let mut meta = BytesMut::new();
    amf0::encode(
        &[Value::str("@setDataFrame"), Value::str("onMetaData")],
        &mut meta,
    );
    c.send(5, crate::rtmp::message::DATA_AMF0, 1, &meta).await;
    c.send(6, VIDEO, 1, &avc_sequence_header()).await;
    c.send(4, AUDIO, 1, &[0xAF, 1, 2, 3]).await;
    let want = (meta.len() + avc_sequence_header().len() + 4) as u64;
    let s = eventually("bytes counted", || {
        h.state()
            .registry()
            .streams()
            .into_iter()
            .find(|s| s.stream == "cam" && s.bytes == want)
    })
    .await;
    assert_eq!(s.app, "live");
    assert_eq!(s.query, "foo=bar");
    assert_eq!((s.width, s.height), (640, 360));
    c.command(
        1,
        Command::new("deleteStream", 6.0, Value::Null, vec![Value::Number(1.0)]),
    )
    .await;
    // The push ends at deleteStream; the client closes the connection.
    let r = record_for(&h, "cam").await;
    assert_eq!(
        (r.errcode, r.sub_errcode),
        (Errcode(1), SubErrcode(0)),
        "{r:?}"
    );
    assert!(r.errmsg.contains("deleteStream"), "{}", r.errmsg);
    assert!(h.state().registry().streams().is_empty());
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_closes_that_connection_only() {
    let h = spawn(IngestConfig::default()).await.unwrap();
    let mut bad = Client::handshaken(h.rtmp_addr).await;
    bad.io.write_all(&[0xFF; 64]).await.unwrap();
    assert!(bad.closed().await);
    let mut good = Client::ready(h.rtmp_addr, "live").await;
    assert_eq!(
        good.publish("ok").await.unwrap().code,
        "NetStream.Publish.Start"
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_handshake_closes() {
    let h = spawn(IngestConfig::default()).await.unwrap();
    let mut io = TcpStream::connect(h.rtmp_addr).await.unwrap();
    io.write_all(&[0x47; 1537]).await.unwrap();
    let mut sink = [0u8; 64];
    let n = timeout(WAIT, io.read(&mut sink)).await.unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn short_amf_command_and_command_before_connect_close() {
    let h = spawn(IngestConfig::default()).await.unwrap();
    // One AMF value only: rml_rtmp would panic here.
    let mut one = BytesMut::new();
    amf0::encode(&[Value::str("connect")], &mut one);
    let mut c = Client::handshaken(h.rtmp_addr).await;
    c.send(3, COMMAND_AMF0, 0, &one).await;
    assert!(c.closed().await);
    // Truncated AMF.
    let mut c = Client::handshaken(h.rtmp_addr).await;
    c.send(3, COMMAND_AMF0, 0, &[2, 0, 9, b'a']).await;
    assert!(c.closed().await);
    // publish before connect.
    let mut c = Client::handshaken(h.rtmp_addr).await;
    let args = vec![Value::str("s"), Value::str("live")];
    c.command(1, Command::new("publish", 5.0, Value::Null, args))
        .await;
    assert!(c.closed().await);
    // The server is still fine.
    let mut c = Client::ready(h.rtmp_addr, "live").await;
    assert!(c.publish("after").await.unwrap().code.ends_with("Start"));
    assert!(h.state().registry().records().is_empty());
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_chunk_sizes_close_and_big_ones_are_flagged() {
    let h = spawn(IngestConfig::default()).await.unwrap();
    for raw in [0u32, 0x8000_0000, 0xFFFF_FFFF] {
        let mut c = Client::handshaken(h.rtmp_addr).await;
        c.send(2, 1, 0, &raw.to_be_bytes()).await;
        assert!(c.closed().await, "chunk size {raw:#x}");
    }
    let mut c = Client::ready(h.rtmp_addr, "live").await;
    c.control(Control::SetChunkSize(16384)).await;
    assert!(c.publish("big").await.unwrap().code.ends_with("Start"));
    c.send(6, VIDEO, 1, &vec![0x27; 12000]).await;
    let s = eventually("flagged stream", || {
        h.state()
            .registry()
            .streams()
            .into_iter()
            .find(|s| s.bytes == 12000)
    })
    .await;
    assert_eq!(s.flags, vec!["chunk_size_over_8192"]);
    drop(c);
    let r = record_for(&h, "big").await;
    assert_eq!(r.errcode, Errcode(1));
    assert_eq!(r.flags, vec!["chunk_size_over_8192"]);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn duplicate_is_refused_with_601_and_the_first_stays() {
    let config = IngestConfig {
        reject_with_status: true,
        ..IngestConfig::default()
    };
    let h = spawn(config).await.unwrap();
    let mut first = Client::ready(h.rtmp_addr, "live").await;
    assert!(first.publish("dup").await.unwrap().code.ends_with("Start"));
    let mut second = Client::ready(h.rtmp_addr, "live").await;
    let status = second.publish("dup").await.unwrap();
    assert_eq!(status.code, "NetStream.Publish.BadName");
    assert_eq!(status.description, "Already publishing");
    assert_eq!(status.level, "error");
    assert!(second.closed().await);
    let r = record_for(&h, "dup").await;
    assert_eq!((r.errcode, r.sub_errcode), (Errcode(18), SubErrcode(601)));
    let live = h.state().registry().streams();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].client, first.io.local_addr().unwrap().to_string());
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn replace_mode_ends_the_first_push() {
    let config = IngestConfig {
        duplicate: DuplicateMode::Replace,
        ..IngestConfig::default()
    };
    let h = spawn(config).await.unwrap();
    let mut first = Client::ready(h.rtmp_addr, "live").await;
    assert!(first.publish("r").await.unwrap().code.ends_with("Start"));
    let mut second = Client::ready(h.rtmp_addr, "live").await;
    assert!(second.publish("r").await.unwrap().code.ends_with("Start"));
    assert!(first.closed().await);
    let r = record_for(&h, "r").await;
    assert_eq!(r.errcode, Errcode::ENDED_BY_COMMAND);
    assert_eq!(r.errmsg, "replaced by a new push");
    assert_eq!(r.client, first.io.local_addr().unwrap().to_string());
    let live = h.state().registry().streams();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].client, second.io.local_addr().unwrap().to_string());
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn auth_refusals_are_recorded_with_their_sub_codes() {
    let key = Secret::new("primary-key".into());
    let config = IngestConfig {
        keys: Keys {
            primary: Some(key.clone()),
            backup: None,
        },
        reject_with_status: true,
        disabled: vec!["banned".into()],
        ..IngestConfig::default()
    };
    let h = spawn(config).await.unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let url = |stream: &str, key: &Secret, expiry: u64| {
        let spec = UrlSpec {
            scheme: Scheme::Rtmp,
            domain: h.rtmp_addr.to_string(),
            port: None,
            app: "live".into(),
            stream: stream.into(),
        };
        sign::sign_url(&spec, key, expiry).unwrap().publish_name()
    };
    let other = Secret::new("other".into());
    let cases = [
        (
            url("expired", &key, now - 60),
            "live",
            501,
            "txTime expired",
        ),
        ("unsigned".to_string(), "live", 500, "no txTime"),
        (
            url("missigned", &other, now + 3600),
            "live",
            503,
            "neither key",
        ),
        (
            "nosecret?txTime=FFFFFFFF".into(),
            "live",
            502,
            "no txSecret",
        ),
        (url("banned", &key, now + 3600), "live", 305, "disabled"),
        (
            url("wrongapp", &key, now + 3600),
            "other",
            304,
            "not served",
        ),
    ];
    for (name, app, sub, words) in cases {
        let stream = name.split('?').next().unwrap().to_string();
        let mut c = Client::ready(h.rtmp_addr, app).await;
        let status = c.publish(&name).await.unwrap();
        assert_eq!(status.code, "NetStream.Publish.Denied", "{stream}");
        assert!(status.description.contains(words), "{status:?}");
        assert!(c.closed().await);
        let r = record_for(&h, &stream).await;
        assert_eq!(
            (r.errcode, r.sub_errcode),
            (Errcode(18), SubErrcode(sub)),
            "{r:?}"
        );
        assert!(!r.errmsg.contains("txSecret="), "{}", r.errmsg);
    }
    // The good URL is accepted, with the query from tcUrl as a fallback.
    let good = sign::sign_url(
        &UrlSpec {
            scheme: Scheme::Rtmp,
            domain: h.rtmp_addr.to_string(),
            port: None,
            app: "live".into(),
            stream: "good".into(),
        },
        &key,
        now + 3600,
    )
    .unwrap();
    let mut c = Client::handshaken(h.rtmp_addr).await;
    c.connect("live", &good.tc_url()).await;
    c.command(0, Command::new("createStream", 2.0, Value::Null, vec![]))
        .await;
    assert!(c.publish("good").await.unwrap().code.ends_with("Start"));
    let s = &h.state().registry().streams()[0];
    assert!(s.query.starts_with("txSecret=***&txTime="), "{}", s.query);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn refusal_without_status_just_closes() {
    let config = IngestConfig {
        disabled: vec!["banned".into()],
        ..IngestConfig::default()
    };
    let h = spawn(config).await.unwrap();
    let mut c = Client::ready(h.rtmp_addr, "live").await;
    assert_eq!(c.publish("banned").await, None);
    assert_eq!(record_for(&h, "banned").await.sub_errcode, SubErrcode(305));
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_frame_ends_the_push_with_errcode_7() {
    let config = IngestConfig {
        max_frame_bytes: 10_000,
        ..IngestConfig::default()
    };
    let h = spawn(config).await.unwrap();
    let mut c = Client::ready(h.rtmp_addr, "live").await;
    c.control(Control::SetChunkSize(4096)).await;
    assert!(c.publish("huge").await.unwrap().code.ends_with("Start"));
    c.send(6, VIDEO, 1, &vec![0x27; 9_000]).await;
    c.send(6, VIDEO, 1, &vec![0x27; 20_000]).await;
    assert!(c.closed().await);
    let r = record_for(&h, "huge").await;
    assert_eq!(r.errcode, Errcode(7), "{r:?}");
    assert!(r.errmsg.contains("20000"), "{}", r.errmsg);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn idle_push_ends_with_errcode_8() {
    let config = IngestConfig {
        idle_timeout: Duration::from_millis(300),
        ..IngestConfig::default()
    };
    let h = spawn(config).await.unwrap();
    let mut c = Client::ready(h.rtmp_addr, "live").await;
    assert!(c.publish("quiet").await.unwrap().code.ends_with("Start"));
    assert!(c.closed().await);
    let r = record_for(&h, "quiet").await;
    assert_eq!(r.errcode, Errcode(8), "{r:?}");
    assert!(r.push_duration_ms >= 250, "{r:?}");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn acks_follow_the_client_window_and_pings_are_answered() {
    let h = spawn(IngestConfig::default()).await.unwrap();
    let mut c = Client::ready(h.rtmp_addr, "live").await;
    c.control(Control::WindowAckSize(1000)).await;
    assert!(c.publish("acked").await.unwrap().code.ends_with("Start"));
    c.control(Control::User(UserControl::PingRequest(77))).await;
    c.send(4, AUDIO, 1, &[0xAF; 1500]).await;
    let (mut ack, mut pong) = (false, false);
    while !(ack && pong) {
        let m = c.next().await.expect("server closed");
        match parse_control(m.type_id, &m.payload).unwrap() {
            Some(Control::Ack(n)) => ack = n >= 1000,
            Some(Control::User(UserControl::PingResponse(77))) => pong = true,
            _ => {}
        }
    }
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_live_pushes_and_records_them() {
    let h = spawn(IngestConfig::default()).await.unwrap();
    let mut c = Client::ready(h.rtmp_addr, "live").await;
    assert!(c.publish("s").await.unwrap().code.ends_with("Start"));
    let state = h.state().clone();
    timeout(WAIT, h.shutdown()).await.unwrap().unwrap();
    let r = state.registry().records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].errcode, Errcode::ENDED_BY_COMMAND);
    assert!(c.closed().await);
}

async fn callback_receiver() -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<crate::callback::Received>,
    oneshot::Sender<()>,
) {
    use crate::callback::{self, ReceiverConfig, ReceiverState};
    let (state, rx) = ReceiverState::new(ReceiverConfig::new(Secret::new("cb-key".into())));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(callback::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    (addr, rx, stop)
}

#[tokio::test]
async fn callbacks_start_on_the_sequence_header_or_after_a_second() {
    let (cb_addr, mut events, _stop) = callback_receiver().await;
    let notifier = Notifier::start(NotifyConfig {
        key: Some(Secret::new("cb-key".into())),
        domain: "push.example.com".into(),
        ..NotifyConfig::new(format!("http://{cb_addr}/cb"))
    })
    .unwrap();
    let config = IngestConfig {
        notifier: Some(notifier),
        ..IngestConfig::default()
    };
    let h = spawn(config).await.unwrap();
    let header = avc_sequence_header();
    let mut a = Client::ready(h.rtmp_addr, "live").await;
    assert!(a.publish("a?k=v").await.unwrap().code.ends_with("Start"));
    a.send(6, VIDEO, 1, &header).await;
    let mut b = Client::ready(h.rtmp_addr, "live").await;
    assert!(b.publish("b").await.unwrap().code.ends_with("Start"));
    let mut next = async || {
        timeout(WAIT, events.recv())
            .await
            .expect("a callback in time")
            .unwrap()
            .event
    };
    // a: started at once with the fixture's size.
    let a_started = next().await;
    assert_eq!(
        (a_started.stream_id.as_str(), a_started.event_type),
        ("a", Some(1))
    );
    assert_eq!((a_started.width, a_started.height), (640, 360));
    assert_eq!(a_started.stream_param, "k=v");
    assert_eq!(a_started.app, "push.example.com");
    assert_eq!(a_started.appname, "live");
    // b: started a second later without a header, size unknown.
    let b_started = next().await;
    assert_eq!(
        (b_started.stream_id.as_str(), b_started.event_type),
        ("b", Some(1))
    );
    assert_eq!((b_started.width, b_started.height), (0, 0));
    drop(a);
    let a_ended = next().await;
    assert_eq!(
        (a_ended.stream_id.as_str(), a_ended.event_type),
        ("a", Some(0))
    );
    assert_eq!(a_ended.errcode, 1);
    assert_eq!(a_ended.sequence, a_started.sequence);
    assert_ne!(a_ended.sequence, b_started.sequence);
    assert!(a_ended.push_duration.is_some());
    h.shutdown().await.unwrap();
    let b_ended = next().await;
    assert_eq!(
        (b_ended.stream_id.as_str(), b_ended.errcode),
        ("b", Errcode::ENDED_BY_COMMAND.0)
    );
}

#[tokio::test]
async fn many_tiny_messages_and_a_slow_client_do_not_stall_others() {
    let h = spawn(IngestConfig::default()).await.unwrap();
    // A client that connects and sends nothing.
    let _silent = TcpStream::connect(h.rtmp_addr).await.unwrap();
    let mut c = Client::ready(h.rtmp_addr, "live").await;
    assert!(c.publish("busy").await.unwrap().code.ends_with("Start"));
    let mut batch = BytesMut::new();
    for _ in 0..2000 {
        write_message(&mut batch, 128, 4, 0, AUDIO, 1, &[0xAF, 1, 0, 0]);
    }
    batch.put_u8(0); // half a chunk header: must wait, not fail
    c.io.write_all(&batch).await.unwrap();
    eventually("all counted", || {
        h.state()
            .registry()
            .streams()
            .into_iter()
            .find(|s| s.bytes == 8000)
    })
    .await;
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn many_unfinished_messages_close_the_connection() {
    let config = IngestConfig {
        max_frame_bytes: 10_000,
        ..IngestConfig::default()
    };
    let h = spawn(config).await.unwrap();
    let mut c = Client::ready(h.rtmp_addr, "live").await;
    assert!(c.publish("hog").await.unwrap().code.ends_with("Start"));
    // Start a 10,000-byte message on each of 8 chunk streams, finish none.
    for csid in 10..18 {
        let mut out = BytesMut::new();
        write_message(&mut out, 128, csid, 0, VIDEO, 1, &[0x27; 10_000]);
        c.io.write_all(&out[..12 + 128]).await.unwrap();
    }
    assert!(c.closed().await);
    assert_eq!(record_for(&h, "hog").await.errcode, Errcode(6));
    h.shutdown().await.unwrap();
}
