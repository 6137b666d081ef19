//! Writes the fuzz targets' seed corpora under `fuzz/corpus/<target>/` from
//! real material: cuts of the committed FLV fixtures, URLs and callback bodies
//! as the tests use them, the bytes the crate's own publisher sends to the
//! crate's own ingest (captured through a recording proxy on 127.0.0.1), and a
//! load report. Ignored: run by hand with
//! `cargo test --test fuzz_seeds -- --ignored` (the handshake bytes are random,
//! so each run writes different files).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pushprobe::classify::Outcome;
use pushprobe::codec;
use pushprobe::flv;
use pushprobe::ingest::{self, IngestConfig};
use pushprobe::load::aggregate::{Aggregator, RunMeta};
use pushprobe::load::record::{CallbackKind, PublisherRecord, Sample};
use pushprobe::load::targets::Shard;
use pushprobe::media::MediaPlan;
use pushprobe::publish::{self, Phase, PublishConfig};
use pushprobe::report;
use pushprobe::rtmp::chunk::ChunkDecoder;
use pushprobe::rtmp::message::{COMMAND_AMF0, Control, DATA_AMF0, parse_control};
use pushprobe::secret::Secret;
use pushprobe::sign::{self, PushUrl, Scheme, UrlSpec};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The handshake: C0+C1 and C2 (or S0+S1+S2).
const HANDSHAKE_LEN: usize = 1 + 1536 * 2;
/// Bytes kept of each capture.
const CAPTURE: usize = 12 * 1024;

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(corpus(target).join(name), bytes).unwrap();
}

#[tokio::test]
#[ignore = "writes fuzz/corpus; run by hand when the seeds should change"]
async fn write_seed_corpora() {
    flv_seeds();
    video_tag_seeds();
    url_seeds();
    callback_seeds();
    report_seeds();
    for (name, chunk_size, signed) in [("c4096", 4096, false), ("c128-signed", 128, true)] {
        let (up, down) = capture_publish(chunk_size, signed).await;
        wire_seeds(name, &up, &down);
    }
}

#[test]
#[ignore = "writes fuzz/corpus/flv and fuzz/corpus/video_tag; run by hand when the seeds should change"]
fn write_codec_seeds() {
    flv_seeds();
    video_tag_seeds();
}

/// Video tag bodies of both framings (issue 14): each Enhanced fixture's
/// sequence header, Metadata tag and first frames (cut to 2 KiB), their
/// legacy codec id rewrites, and v2 ModEx / Multitrack / command forms.
fn video_tag_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for name in ["sd-360p", "hevc-360p", "av1-360p", "vp9-360p"] {
        let f = flv::load(&dir.join(format!("{name}.flv"))).unwrap();
        let videos = f.video_sequence_header.iter().chain(
            f.media
                .iter()
                .filter(|t| t.kind == flv::TagKind::Video)
                .take(3),
        );
        for (i, t) in videos.enumerate() {
            let body = &t.data[..t.data.len().min(2048)];
            write("video_tag", &format!("{name}-{i}.bin"), body);
            if let Ok(Some(legacy)) = codec::legacy::to_legacy(body) {
                write("video_tag", &format!("{name}-{i}-legacy.bin"), &legacy);
            }
        }
    }
    let crafted: [(&str, &[u8]); 5] = [
        ("modex-coded-x", b"\x97\x00\xff\x03av01\x12\x00"),
        ("modex-long", b"\x97\xff\x00\x02\x00\x00\x03hvc1\x00"),
        ("multitrack-one", b"\x96\x00hvc1\x00\x01\x01"),
        (
            "multitrack-many",
            b"\x96\x21hvc1\x00\x00\x00\x04\x00\x00\x00\xaaav01\x01\x00\x00\x01\x12",
        ),
        ("command", b"\xd0\x01"),
    ];
    for (name, bytes) in crafted {
        write("video_tag", &format!("{name}.bin"), bytes);
    }
}

/// Whole-tag prefixes of each fixture: the first tags up to 16 KiB with any
/// tag over 4 KiB left out, and one plain prefix under 48 KiB.
fn flv_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for name in [
        "low-240p",
        "sd-360p",
        "hd-720p",
        "hevc-360p",
        "av1-360p",
        "vp9-360p",
    ] {
        let file = std::fs::read(dir.join(format!("{name}.flv"))).unwrap();
        let mut small = file[..13].to_vec();
        let mut prefix = file[..13].to_vec();
        let mut pos = 13;
        while pos + 11 <= file.len() {
            let size = u32::from_be_bytes([0, file[pos + 1], file[pos + 2], file[pos + 3]]);
            let end = pos + 11 + size as usize + 4;
            let tag = &file[pos..end.min(file.len())];
            if size <= 4096 && small.len() + tag.len() <= 16 * 1024 {
                small.extend_from_slice(tag);
            }
            if prefix.len() + tag.len() <= 48 * 1024 {
                prefix.extend_from_slice(tag);
            } else {
                break;
            }
            pos = end;
        }
        for (kind, bytes) in [("small", &small), ("prefix", &prefix)] {
            assert!(flv::parse(bytes).is_ok(), "{name} {kind} seed parses");
            write("flv", &format!("{name}-{kind}.flv"), bytes);
        }
    }
}

fn url_seeds() {
    let key = Secret::new("e12c46f2612d5106e2034781ab261ca3".into());
    let spec = UrlSpec {
        scheme: Scheme::Rtmp,
        domain: "livepush.example.com".into(),
        port: None,
        app: "live".into(),
        stream: "test".into(),
    };
    let signed = sign::sign_url(&spec, &key, 1_546_064_025).unwrap();
    let urls = [
        signed.to_string(),
        "rtmp://push.example.com:1936/live/cam1?txSecret=abc&txTime=5C271099&x=1".into(),
        "rtmps://push.example.com/live/s-1.a_b~c%20?txTime=5c271099&txSecret=F85A2AB363FE4DEAFFEF9754D79DA6FE".into(),
        "rtmp://[::1]:1935/app/sub/stream?txTime=68E7A600".into(),
        "RTMP://127.0.0.1/live/load-17?a&b=&txSecret=".into(),
        "  rtmp://h/live/s/  ".into(),
    ];
    for (i, u) in urls.iter().enumerate() {
        write("url", &format!("url-{i}.txt"), u.as_bytes());
    }
}

/// Tencent's push and interruption samples, signed with the callback
/// target's key, and two unsigned shapes.
fn callback_seeds() {
    let key = Secret::new("fuzz-callback-key".into());
    let t = 1_703_732_078u64;
    let push = json!({
        "app": "test.domain.com", "appid": 12345678, "appname": "live",
        "channel_id": "test_stream", "errcode": 0, "errmsg": "ok",
        "event_time": 1_703_731_478u64, "event_type": 1, "height": 1280, "idc_id": 34,
        "node": "42.81.194.37", "sequence": "6211911196238711617", "set_id": 2,
        "stream_id": "test_stream", "stream_param": "txSecret=0123abcd&txTime=65A0B0C0",
        "user_ip": "1.1.1.1", "width": 720, "t": t, "sign": sign::callback_sign(&key, t)
    });
    let interrupt = json!({
        "app": "test.domain.com", "appid": "12345678", "appname": "live",
        "channel_id": "test_stream", "errcode": 1,
        "errmsg": "The push client actively stopped the push",
        "event_time": 1_703_731_478u64, "event_type": 0, "height": 0, "idc_id": 34,
        "node": "42.81.194.37", "push_duration": "128581", "sequence": "6211911196238711617",
        "set_id": 2, "stream_id": "test_stream", "stream_param": "stream_param=test",
        "user_ip": "1.1.1.1", "width": 0, "t": t.to_string(), "sign": sign::callback_sign(&key, t)
    });
    let odd = r#"{"t":"01703732078","sign":"X","event_type":"1.0","width":7.0,"extra":[{"url":"rtmp://h/live/s?txSecret=zzz"}]}"#;
    write("callback", "push.json", push.to_string().as_bytes());
    write(
        "callback",
        "interrupt.json",
        interrupt.to_string().as_bytes(),
    );
    write("callback", "odd.json", odd.as_bytes());
    write("callback", "not-object.json", b"[1,2,3]");
}

fn report_seeds() {
    let ms = Duration::from_millis;
    let mut a = Aggregator::new();
    for i in 0..6u64 {
        let refused = i == 4;
        let mut marks = vec![(Phase::Dns, ms(2)), (Phase::Tcp, ms(5 + i))];
        if !refused {
            marks.extend([
                (Phase::Handshake, ms(9 + i)),
                (Phase::Connect, ms(15 + i)),
                (Phase::CreateStream, ms(18 + i)),
                (Phase::Publish, ms(25 + i)),
            ]);
        }
        a.add(&PublisherRecord {
            index: i,
            stream: format!("load-{i}"),
            expected_refusal: false,
            outcome: if refused {
                Outcome::BadSecret
            } else {
                Outcome::Accepted
            },
            start_delay: ms(i % 3),
            marks,
            bytes_sent: 70_000 * i,
            max_lag: ms(i % 4),
            streamed: Duration::from_secs(3),
            reconnects: 0,
            addrs: Default::default(),
            srt: None,
        });
        a.add_callback_latency(CallbackKind::Push, ms(300 + i));
    }
    for t in 0..3u64 {
        a.add_sample(Sample {
            t_s: t as f64 + 0.5,
            publishing: 5,
            failed: 1,
            bitrate_bps: 560_000,
        });
    }
    let s = a.summary(RunMeta {
        started_unix: 1_760_000_000,
        duration_s: 3.0,
        target: "rtmp://push.example.com/live/load-{i}?txSecret=***&txTime=68E7A600".into(),
        shard: Some(Shard { index: 1, count: 2 }),
        publishers_planned: 6,
        interrupted_by_user: false,
    });
    let mut out = Vec::new();
    report::json(&s, &mut out).unwrap();
    write("report_merge", "report.json", &out);
}

/// Runs the crate's publisher against the crate's ingest through a proxy
/// that records both directions; returns (client -> server, server ->
/// client), each cut to `CAPTURE` bytes.
async fn capture_publish(chunk_size: u32, signed: bool) -> (Vec<u8>, Vec<u8>) {
    let ingest = ingest::spawn(IngestConfig::default()).await.unwrap();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = proxy.local_addr().unwrap();
    let upstream = ingest.rtmp_addr;
    let recorder = tokio::spawn(async move {
        let (client, _) = proxy.accept().await.unwrap();
        let server = TcpStream::connect(upstream).await.unwrap();
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        let up = tokio::spawn(relay(cr, sw));
        let down = tokio::spawn(relay(sr, cw));
        (up.await.unwrap(), down.await.unwrap())
    });
    let spec = UrlSpec {
        scheme: Scheme::Rtmp,
        domain: addr.to_string(),
        port: None,
        app: "live".into(),
        stream: format!("seed-{chunk_size}"),
    };
    let url = if signed {
        sign::sign_url(&spec, &Secret::new("k".into()), 1_900_000_000).unwrap()
    } else {
        PushUrl::parse(&format!("rtmp://{addr}/live/seed-{chunk_size}")).unwrap()
    };
    let mut cfg = PublishConfig::new(url);
    cfg.duration = Some(Duration::from_millis(300));
    cfg.chunk_size = chunk_size;
    let fixture =
        flv::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/low-240p.flv")).unwrap();
    let plan: Arc<MediaPlan> = MediaPlan::new(&fixture, chunk_size);
    let result = publish::publish(&cfg, &plan, &CancellationToken::new(), &mut ()).await;
    assert!(result.accepted(), "{result:?}");
    let (up, down) = recorder.await.unwrap();
    ingest.shutdown().await.unwrap();
    (up, down)
}

async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if seen.len() < CAPTURE {
            let keep = n.min(CAPTURE - seen.len());
            seen.extend_from_slice(&buf[..keep]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    seen
}

/// The captured bytes as seeds of the wire targets, and each command or data
/// message in them as an AMF seed.
fn wire_seeds(name: &str, up: &[u8], down: &[u8]) {
    write("ingest_bytes", &format!("{name}.bin"), up);
    for mode in [0u8, 0x13, 0x2a] {
        let mut seed = vec![mode];
        seed.extend_from_slice(up);
        write(
            "ingest_session",
            &format!("{name}-mode{mode:02x}.bin"),
            &seed,
        );
    }
    write("chunk", &format!("{name}-client.bin"), &up[HANDSHAKE_LEN..]);
    write(
        "chunk",
        &format!("{name}-server.bin"),
        &down[HANDSHAKE_LEN..],
    );
    for (dir, bytes) in [
        ("client", &up[HANDSHAKE_LEN..]),
        ("server", &down[HANDSHAKE_LEN..]),
    ] {
        let mut dec = ChunkDecoder::new(1 << 24);
        let mut buf = BytesMut::from(bytes);
        let mut n = 0;
        while let Ok(Some(m)) = dec.decode(&mut buf) {
            if let Ok(Some(Control::SetChunkSize(size))) = parse_control(m.type_id, &m.payload) {
                dec.set_chunk_size(size).unwrap();
            }
            if matches!(m.type_id, COMMAND_AMF0 | DATA_AMF0) && m.payload.len() <= 4096 {
                write(
                    "amf0_command",
                    &format!("{name}-{dir}-{n}-type{}.amf", m.type_id),
                    &m.payload,
                );
                n += 1;
            }
        }
    }
}
