//! Fuzz target bodies, one function per target, shared by the cargo-fuzz
//! binaries in `fuzz_targets/` and the stable smoke test (`tests/fuzz_smoke.rs`
//! includes this file). Each takes arbitrary bytes, must not panic, hang or
//! allocate without bound, and asserts the properties its parser promises.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pushprobe::callback::{
    self, CallbackEvent, ReceiverConfig, ReceiverState, Reject, human_line, redacted_json,
};
use pushprobe::codec;
use pushprobe::flv::{self, TagKind};
use pushprobe::ingest::{DuplicateMode, IngestConfig, IngestState};
use pushprobe::load::aggregate::merge;
use pushprobe::load::merge::parse_summary;
use pushprobe::media::{Cursor, MediaPlan};
use pushprobe::report;
use pushprobe::rtmp::amf0::{self, Value};
use pushprobe::rtmp::chunk::{ChunkDecoder, MEDIA_HEADER_MAX, Message, write_message};
use pushprobe::rtmp::handshake::Handshaker;
use pushprobe::rtmp::message::{COMMAND_AMF0, COMMAND_AMF3, Command, DATA_AMF0, parse_control};
use pushprobe::rtmp::session::{Inbound, Limits, Session};
use pushprobe::secret::Secret;
use pushprobe::sign::{self, Keys, PushUrl, SecretCheck, UrlSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A target body: arbitrary bytes in, a panic on a finding.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz_targets/<name>.rs` and `corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("flv", flv),
    ("url", url),
    ("callback", callback),
    ("amf0_command", amf0_command),
    ("chunk", chunk),
    ("ingest_bytes", ingest_bytes),
    ("ingest_session", ingest_session),
    ("report_merge", report_merge),
    ("ts_demux", ts_demux),
    ("video_tag", video_tag),
];

/// `flv::parse`, and for a file that parses: the fixture's invariants, the
/// SPS reader on the video header, and the whole media path (pre-chunked
/// plan, cursor headers) decoded back into the same tag bodies.
pub fn flv(data: &[u8]) {
    let _ = pushprobe::avc::sps_dimensions(data);
    let Ok(f) = flv::parse(data) else { return };
    assert!(!f.media.is_empty(), "a fixture has media");
    assert!(f.duration_ms >= 1);
    assert_eq!(f.media.iter().map(|t| t.timestamp_ms).min(), Some(0));
    assert!(f.media.iter().all(|t| !t.is_sequence_header()));
    assert!(f.media.iter().all(|t| t.kind != TagKind::Script));
    // A video tag of an unknown codec leaves the codec unknown.
    assert!(f.video_codec.is_none() || f.has_video);
    assert_eq!(f.video_codec.is_some(), f.video_framing.is_some());
    assert_eq!(f.has_audio, f.audio_codec.is_some());
    if let Some(h) = &f.video_sequence_header {
        assert!(h.is_sequence_header() && h.kind == TagKind::Video);
    }
    let _ = f.bitrate_bps();
    for d in [f.width, f.height].into_iter().flatten() {
        assert!((1..=1 << 16).contains(&d), "dimension {d}");
    }
    // The legacy codec id rewrite (issue 14): every video tag it keeps
    // names its codec by FLV codec id, with the same payload.
    if let Ok(legacy) = f.with_legacy_codec_id() {
        for t in legacy.media.iter().filter(|t| t.kind == TagKind::Video) {
            if let Ok(v) = codec::parse_video_tag(&t.data) {
                assert_eq!(v.framing, codec::Framing::Legacy, "{:?}", t.data);
            }
        }
        assert!(legacy.media.len() <= f.media.len());
    }

    // The media path: chunk size from the input, two loops, decoded back.
    let chunk_size = 1 + u32::from(data[data.len() / 2]) * 37;
    let plan = MediaPlan::new(&f, chunk_size);
    let mut wire = BytesMut::new();
    let mut hdr = [0u8; MEDIA_HEADER_MAX];
    let mut cursor = Cursor::new(&plan, plan.start_index(data.len() as u64));
    let mut sent = Vec::new();
    for _ in 0..(2 * plan.tags.len()).min(400) {
        let (n, tag, _due) = cursor.next(&plan, 1, &mut hdr);
        wire.extend_from_slice(&hdr[..n]);
        wire.extend_from_slice(&tag.body);
        sent.push(tag);
    }
    let mut dec = ChunkDecoder::new(1 << 24);
    dec.set_chunk_size(chunk_size).unwrap();
    let mut got = 0;
    while let Some(m) = dec.decode(&mut wire).expect("our own chunks decode") {
        let tag = sent[got];
        assert_eq!(
            (m.type_id, m.payload.len()),
            (tag.type_id, tag.len as usize)
        );
        got += 1;
    }
    assert_eq!(got, sent.len());
    assert!(wire.is_empty());
}

/// A video tag body of either framing (issue 14): the header parser, the
/// ingest's reading and the legacy rewrite never panic; a rewrite is legacy
/// framing with the same codec, packet kind and payload.
pub fn video_tag(data: &[u8]) {
    let _ = codec::sequence_header_dimensions(data);
    let _ = codec::video_seen(data);
    let _ = codec::hevc::record_dimensions(data);
    let _ = codec::av1::record_dimensions(data);
    let _ = codec::av1::obus_dimensions(data);
    let Ok(tag) = codec::parse_video_tag(data) else {
        return;
    };
    assert!(tag.payload_at <= data.len());
    if let Ok(Some(legacy)) = codec::legacy::to_legacy(data) {
        let again = codec::parse_video_tag(&legacy).expect("a rewrite parses");
        assert_eq!(again.framing, codec::Framing::Legacy);
        assert_eq!((again.codec, again.packet), (tag.codec, tag.packet));
        assert_eq!(&legacy[again.payload_at..], &data[tag.payload_at..]);
        if tag.codec.has_composition_time() {
            assert_eq!(again.composition_ms, tag.composition_ms);
        }
    }
}

/// `PushUrl::parse`, and for a URL that parses: it prints back to itself,
/// expiry and redaction, and `check_secret` against URLs re-signed with
/// known keys.
pub fn url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sign::parse_query(text);
    let _ = sign::parse_tx_time(text);
    let _ = sign::redact_query_in(text);
    let Ok(u) = PushUrl::parse(text) else { return };
    let printed = u.to_string();
    assert_eq!(
        PushUrl::parse(&printed).as_ref(),
        Ok(&u),
        "{printed:?} does not parse back"
    );
    let _ = (u.tc_url(), u.publish_name(), u.port(), u.expiry());
    let redacted = u.redacted();
    if let Some(secret) = u.tx_secret()
        && secret.len() >= 8
        && secret.bytes().all(|b| b.is_ascii_alphanumeric())
        && printed.matches(secret).count() == 1
    {
        assert!(!redacted.contains(secret), "{redacted:?} shows the secret");
    }

    let (k1, k2) = (
        Secret::new("primary-key".into()),
        Secret::new("backup-key".into()),
    );
    let keys = Keys {
        primary: Some(k1.clone()),
        backup: Some(k2.clone()),
    };
    let check = sign::check_secret(&u, &keys);
    let _ = sign::check_secret(&u, &Keys::default());
    if let Some(tx_time) = u.tx_time() {
        if u.tx_secret().is_some() {
            assert_ne!(check, SecretCheck::NoTxTime);
            let tx_time = tx_time.to_string();
            let mut resigned = u.clone();
            for (key, want) in [(&k1, SecretCheck::Primary), (&k2, SecretCheck::Backup)] {
                let secret = sign::tx_secret(key, &u.stream, &tx_time);
                set_tx_secret(&mut resigned, &secret.to_ascii_uppercase());
                assert_eq!(sign::check_secret(&resigned, &keys), want, "{resigned}");
            }
        }
    } else {
        assert_eq!(check, SecretCheck::NoTxTime);
    }

    // Build a signed URL for the same place; it must parse and verify.
    let expiry = u.expiry().ok().flatten().unwrap_or(1_546_064_025);
    let spec = UrlSpec {
        scheme: u.scheme,
        domain: u.host.clone(),
        port: u.port,
        app: u.app.clone(),
        stream: u.stream.clone(),
    };
    if let Ok(signed) = sign::sign_url(&spec, &k1, expiry) {
        let back = PushUrl::parse(&signed.to_string()).expect("a signed URL parses");
        assert_eq!(back.expiry(), Ok(Some(expiry)));
        assert_eq!(sign::check_secret(&back, &keys), SecretCheck::Primary);
    }
}

fn set_tx_secret(u: &mut PushUrl, value: &str) {
    for (k, v) in &mut u.query {
        if k.eq_ignore_ascii_case("txSecret") {
            *v = value.to_string();
            return;
        }
    }
}

/// Fixed callback key and clock of the callback target.
const CALLBACK_KEY: &str = "fuzz-callback-key";
const CALLBACK_NOW: u64 = 1_703_731_478;

/// `CallbackEvent::from_json`, `verify`, the renderings, the serde round
/// trip, and `ReceiverState::accept` on the body as sent and re-signed.
pub fn callback(data: &[u8]) {
    let key = Secret::new(CALLBACK_KEY.into());
    let state = receiver();
    let arrived = Instant::now();
    let direct = CallbackEvent::from_json(data)
        .and_then(|ev| callback::verify(&ev, &key, CALLBACK_NOW).map(|()| ev));
    let accepted = state.accept(data, arrived);
    assert_eq!(accepted.is_ok(), direct.is_ok(), "accept and verify differ");
    let Ok(ev) = CallbackEvent::from_json(data) else {
        return;
    };
    let _ = format!("{ev:?}");
    let line = human_line(&ev);
    assert!(
        !line.chars().any(char::is_control),
        "control characters reach the terminal: {line:?}"
    );
    let json = redacted_json(&ev);
    let v: serde_json::Value = serde_json::from_str(&json).expect("redacted_json is JSON");
    assert_eq!(v["sign"], "***");

    // Serialized with Tencent's types, it reads back as the same event
    // (`t` as received becomes `t` in decimal).
    let value = serde_json::to_value(&ev).expect("an event serializes");
    let back: CallbackEvent = serde_json::from_value(value).expect("and reads back");
    let mut want = ev.clone();
    want.t_text = ev.t.to_string();
    assert_eq!(back, want);

    // Signed with the key over `t` as received: verifies until `t` passes,
    // and the receiver takes it once, then counts a duplicate.
    if ev.t_text().as_ref() != ev.t.to_string() {
        return;
    }
    let mut signed: serde_json::Value = serde_json::from_slice(data).expect("parsed above");
    signed["sign"] = sign::callback_sign(&key, ev.t).into();
    let body = signed.to_string();
    let ev = CallbackEvent::from_json(body.as_bytes()).expect("still parses");
    assert_eq!(callback::verify(&ev, &key, ev.t), Ok(()));
    if let Some(later) = ev.t.checked_add(1) {
        assert!(callback::verify(&ev, &key, later).is_err());
    }
    let state = receiver();
    let first = state.accept(body.as_bytes(), arrived);
    if ev.t < CALLBACK_NOW {
        assert!(matches!(first, Err(Reject::Stale { .. })), "{first:?}");
        return;
    }
    assert_eq!(first, Ok(false));
    let again = state.accept(body.as_bytes(), arrived);
    assert_eq!(again, Ok(!ev.sequence.is_empty()));
    let c = state.counters();
    assert_eq!(
        c.accepted_push + c.accepted_interrupt + c.accepted_other + c.duplicates,
        2
    );
}

fn receiver() -> ReceiverState {
    let mut cfg = ReceiverConfig::new(Secret::new(CALLBACK_KEY.into()));
    cfg.clock = Arc::new(|| CALLBACK_NOW);
    ReceiverState::new(cfg).0
}

/// `amf0::decode_all` and `Command::parse` (AMF0 and AMF3 framing): what
/// decodes re-encodes to bytes that decode to the same encoding.
pub fn amf0_command(data: &[u8]) {
    if let Ok(values) = amf0::decode_all(data) {
        let once = encoded(&values);
        let again = amf0::decode_all(&once).expect("our encoding decodes");
        assert_eq!(encoded(&again), once);
        for v in &values {
            let _ = (v.get("code"), v.get_str("tcUrl"), v.as_number());
        }
    }
    for type_id in [COMMAND_AMF0, COMMAND_AMF3] {
        let Ok(cmd) = Command::parse(type_id, data) else {
            continue;
        };
        if let Some(s) = cmd.status() {
            let _ = s.is_error();
        }
        let bytes = cmd.encode();
        let back = Command::parse(COMMAND_AMF0, &bytes).expect("our command parses");
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.name, cmd.name);
    }
}

fn encoded(values: &[Value]) -> Vec<u8> {
    let mut out = BytesMut::new();
    amf0::encode(values, &mut out);
    out.to_vec()
}

/// Largest message the chunk targets accept (the ingest's default is 4 MiB;
/// smaller here so the limit is reached).
const MAX_MESSAGE: u32 = 64 * 1024;

/// The ingest's decode path after the handshake: chunks fed in pieces,
/// SetChunkSize applied, controls and commands parsed. Every message must
/// survive a re-encode and decode unchanged.
pub fn chunk(data: &[u8]) {
    let mut path = InboundPath::new();
    for piece in pieces(data) {
        if !path.feed(piece) {
            break;
        }
    }
    path.check_round_trip();
}

/// The ingest's inbound byte path from the first byte: the server handshake
/// (fed in pieces), then [`chunk`]'s decode path on what follows.
pub fn ingest_bytes(data: &[u8]) {
    let mut hs = Handshaker::server();
    let mut path = InboundPath::new();
    let mut handshaken = false;
    for piece in pieces(data) {
        if !handshaken {
            let Ok(step) = hs.feed(piece) else { return };
            match step.done {
                Some(rest) => {
                    handshaken = true;
                    if !path.feed(&rest) {
                        break;
                    }
                }
                None => continue,
            }
        } else if !path.feed(piece) {
            break;
        }
    }
    path.check_round_trip();
}

/// Splits input into pieces of changing sizes, as reads off a socket would.
fn pieces(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    const SIZES: [usize; 7] = [1537, 1, 1536, 7, 300, 4096, 2];
    let mut rest = data;
    let mut i = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = SIZES[i % SIZES.len()].min(rest.len());
        i += 1;
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        Some(piece)
    })
}

/// What `ingest::conn` does with bytes after the handshake, minus the
/// socket: the shared session core, then the ingest's parsing of commands
/// and data.
struct InboundPath {
    session: Session,
    messages: Vec<Message>,
    /// The chunk sizes in force when each message completed.
    sizes: Vec<u32>,
}

impl InboundPath {
    fn new() -> InboundPath {
        let limits = Limits {
            max_message: MAX_MESSAGE,
            read_start: 4096,
            read_grow: 4096,
        };
        InboundPath {
            session: Session::new(limits, &[]),
            messages: Vec::new(),
            sizes: Vec::new(),
        }
    }

    /// False once the connection would be closed.
    fn feed(&mut self, piece: &[u8]) -> bool {
        self.session.read_buf().extend_from_slice(piece);
        self.session.received(piece.len());
        loop {
            let m = match self.session.poll_message() {
                Ok(Some(Inbound::Message(m))) => m,
                Ok(Some(Inbound::Control(_))) => continue,
                Ok(None) => break,
                Err(_) => return false,
            };
            assert!(m.payload.len() <= MAX_MESSAGE as usize);
            if !self.on_message(&m) {
                return false;
            }
            if self.messages.len() < 256 {
                self.messages.push(m);
                self.sizes.push(self.session.peer_chunk_size());
            }
        }
        // Whatever the session queued (acks, pongs) is well formed.
        let mut queued = BytesMut::from(self.session.outbound());
        let mut dec = ChunkDecoder::new(MAX_MESSAGE);
        while let Some(m) = dec.decode(&mut queued).expect("our chunks decode") {
            assert!(parse_control(m.type_id, &m.payload).is_ok_and(|c| c.is_some()));
        }
        assert!(queued.is_empty());
        self.session.sent();
        true
    }

    fn on_message(&mut self, m: &Message) -> bool {
        match m.type_id {
            COMMAND_AMF0 | COMMAND_AMF3 => match Command::parse(m.type_id, &m.payload) {
                Ok(cmd) => {
                    let _ = cmd.status();
                    let _ = cmd.object.get_str("tcUrl");
                    true
                }
                Err(_) => false,
            },
            DATA_AMF0 => {
                let _ = amf0::decode_all(&m.payload);
                true
            }
            _ => true,
        }
    }

    /// Re-encodes the messages seen (each as one fmt 0 message) and decodes
    /// them again: the same messages must come out.
    fn check_round_trip(&self) {
        let mut wire = BytesMut::new();
        let size = self.sizes.iter().copied().max().unwrap_or(128).min(1 << 16);
        for m in &self.messages {
            write_message(
                &mut wire,
                size,
                m.csid,
                m.timestamp,
                m.type_id,
                m.stream_id,
                &m.payload,
            );
        }
        let mut dec = ChunkDecoder::new(MAX_MESSAGE);
        dec.set_chunk_size(size).unwrap();
        for m in &self.messages {
            let back = dec
                .decode(&mut wire)
                .expect("our chunks decode")
                .expect("every message comes back");
            assert_eq!(&back, m);
        }
        assert!(wire.is_empty());
    }
}

/// The ingest's real connection task (`ingest::conn::handle`) driven over an
/// in-memory duplex: byte 0 picks the configuration, the rest is what the
/// client sends (then it closes). The session must end by itself, release
/// any stream it claimed, and not panic.
pub fn ingest_session(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let mut config = IngestConfig {
        reject_with_status: mode & 1 != 0,
        duplicate: if mode & 4 != 0 {
            DuplicateMode::Replace
        } else {
            DuplicateMode::Reject
        },
        disabled: vec!["blocked".to_string()],
        handshake_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        ..IngestConfig::default()
    };
    if mode & 2 != 0 {
        config.keys.primary = Some(Secret::new("fuzz-push-key".into()));
    }
    if mode & 8 != 0 {
        config.max_frame_bytes = 4096;
    }
    let state = Arc::new(IngestState::new(config));
    let piece = [61usize, 512, 1537, 4096, 16384][usize::from(mode >> 4) % 5];
    runtime().block_on(async {
        let (server_io, client_io) = tokio::io::duplex(16 * 1024);
        let (mut rd, mut wr) = tokio::io::split(client_io);
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let server = pushprobe::ingest::conn::handle(server_io, peer, 1, state.clone(), stop_rx);
        let client_writes = async {
            for p in stream.chunks(piece) {
                if wr.write_all(p).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            let _ = wr.shutdown().await;
        };
        let client_reads = async {
            let mut sink = Vec::new();
            let _ = rd.read_to_end(&mut sink).await;
        };
        let all = async { tokio::join!(server, client_writes, client_reads) };
        tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .expect("the session did not end after the client closed");
    });
    assert_eq!(state.registry().live_count(), 0, "a stream stayed claimed");
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

/// `report merge`'s reader on arbitrary text; a report that reads merges
/// (alone and with itself), renders, and its merged JSON reads back.
pub fn report_merge(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(s) = parse_summary(text) else { return };
    for inputs in [vec![s.clone()], vec![s.clone(), s]] {
        let Ok(merged) = merge(&inputs) else { continue };
        let mut out = Vec::new();
        report::text(&merged, &mut out).expect("text renders");
        out.clear();
        report::json(&merged, &mut out).expect("JSON renders");
        let back = std::str::from_utf8(&out).expect("JSON is UTF-8");
        parse_summary(back).expect("the merged report reads back");
        let h = &merged.histograms;
        for hist in h.phases.values().chain([&h.lag, &h.callback_push]) {
            out.clear();
            report::percentile_distribution(hist, &mut out).expect("hgrm renders");
        }
    }
}

/// `ts::demux::Demuxer` over the input cut in two at a point the input
/// picks: no panic, and every unit it outputs is what it claims (33-bit
/// times, one whole ADTS frame per audio unit, an IDR in a video keyframe).
pub fn ts_demux(data: &[u8]) {
    use pushprobe::ts::demux::{Demuxer, Kind, adts_header, annexb_nals};
    let cut = data
        .first()
        .map_or(0, |&b| usize::from(b) * 7)
        .min(data.len());
    let mut d = Demuxer::new();
    let mut units = d.push(&data[..cut]);
    units.extend(d.push(&data[cut..]));
    units.extend(d.flush());
    assert!(d.stats().packets as usize <= data.len() / 188);
    for u in &units {
        assert!(u.pts_90k < 1 << 33 && u.dts_90k < 1 << 33, "{u:?}");
        match u.kind {
            Kind::Audio => {
                let h = adts_header(&u.data).expect("an audio unit starts with ADTS");
                assert_eq!(h.frame_len, u.data.len());
            }
            Kind::Video if u.keyframe => {
                assert!(annexb_nals(&u.data).any(|n| n.first().is_some_and(|b| b & 0x1f == 5)));
            }
            Kind::Video => {}
        }
    }
    let _ = (d.streams(), d.last_error().map(|e| e.to_string()));
}
