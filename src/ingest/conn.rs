//! One RTMP connection of the ingest: handshake, chunk loop, commands, publish
//! admission, media accounting, and how (with which errcode) the push ends;
//! or, for a viewer, `play` and the media written from the stream's fan-out.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::timeout;

use super::playout::{self, MediaTag, Viewer, ViewerEnd, ViewerKind};
use super::registry::{Claim, Flag, Flags, Publisher, Record, RecordOf};
use super::rules::{self, Policy, Publish};
use super::{IngestState, PlayDenied, sleep_until};
use crate::clock::unix_secs;
use crate::codec::{self, Framing, VideoCodec};
use crate::errcode::{Errcode, SubErrcode};
use crate::notify::{self, PushInfo};
use crate::rtmp::amf0::Value;
use crate::rtmp::chunk::{ChunkError, Message};
use crate::rtmp::drive::{self, HandshakeIoError};
use crate::rtmp::handshake::Role;
use crate::rtmp::message::{
    self, COMMAND_AMF0, COMMAND_AMF3, Command, Control, MessageError, UserControl, status_object,
};
use crate::rtmp::session::{Inbound, Limits, Session, SessionError};

/// Smallest free space we read into; the buffer starts at this size.
const READ_CHUNK: usize = 4096;
/// What we announce and use for our own chunks.
const OUR_CHUNK_SIZE: u32 = 4096;
const OUR_WINDOW: u32 = 2_500_000;
/// Chunk sizes above this are flagged (Tencent flags them, errors type 5).
pub const FLAG_CHUNK_SIZE_OVER: u32 = 8192;
/// How long a closing connection may take to flush and see the peer's FIN.
const LINGER: Duration = Duration::from_secs(1);
/// The bitrate shown is measured over windows of at least this length.
const BITRATE_WINDOW: Duration = Duration::from_secs(1);
/// Without a video sequence header, push_started goes out this long after publish.
const STARTED_WITHOUT_HEADER: Duration = Duration::from_secs(1);
/// Aggregate messages carry media too.
const AGGREGATE: u8 = 22;
/// Live tags written to a viewer in one vectored write, at most.
const PLAY_BATCH: usize = 64;
/// While playing, the viewer need not send anything (its acks come every
/// 2.5 MB); its liveness is judged by writes (the idle timeout) instead.
const PLAY_READ_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How a connection (and its push, if live) ends.
#[derive(Debug)]
enum End {
    /// The client stopped: FCUnpublish, deleteStream or its own close.
    Clean(&'static str),
    Idle(Duration),
    TooLarge {
        len: u32,
        max: u32,
    },
    Protocol(String),
    Amf(String),
    Network(String),
    Replaced,
    Shutdown,
    /// The publish was refused (already recorded).
    Refused,
    /// A play request got no stream (answered with an error onStatus).
    PlayDenied(&'static str),
    /// A viewer's stream ended, or it was dropped for reading too slowly.
    Played(ViewerEnd),
    /// A video codec `serve --codecs` does not take.
    Codec(VideoCodec, Framing),
}

impl End {
    fn errcode(&self) -> Errcode {
        match self {
            End::Clean(_) | End::Refused | End::PlayDenied(_) | End::Played(_) => {
                Errcode::CLIENT_STOPPED
            }
            End::Idle(_) => Errcode::NO_DATA,
            End::TooLarge { .. } => Errcode::FRAME_TOO_LARGE,
            End::Protocol(_) | End::Codec(..) => Errcode::RTMP_CONTENT,
            End::Amf(_) => Errcode::AMF,
            End::Network(_) => Errcode::NETWORK,
            End::Replaced | End::Shutdown => Errcode::ENDED_BY_COMMAND,
        }
    }

    fn errmsg(&self) -> String {
        match self {
            End::Clean(how) => format!("the push client stopped the push ({how})"),
            End::Idle(d) => format!("no data for {}", humantime::format_duration(*d)),
            End::TooLarge { len, max } => {
                format!("a message of {len} bytes exceeds the {max}-byte frame limit")
            }
            End::Protocol(e) => format!("RTMP protocol error: {e}"),
            End::Codec(c, f) => {
                format!("video codec {c} ({f} framing) is not accepted by this ingest")
            }
            End::Amf(e) => format!("AMF error: {e}"),
            End::Network(e) => format!("network error: {e}"),
            End::Replaced => "replaced by a new push".to_string(),
            End::Shutdown => "the ingest is shutting down".to_string(),
            End::Refused => "push refused".to_string(),
            End::PlayDenied(why) => format!("play refused: {why}"),
            End::Played(ViewerEnd::PublisherLeft) => "the played stream ended".to_string(),
            End::Played(ViewerEnd::Dropped) => {
                "viewer dropped: it read slower than the stream".to_string()
            }
        }
    }
}

impl From<ChunkError> for End {
    fn from(e: ChunkError) -> End {
        match e {
            ChunkError::TooLarge { len, max } => End::TooLarge { len, max },
            other => End::Protocol(other.to_string()),
        }
    }
}

impl From<MessageError> for End {
    fn from(e: MessageError) -> End {
        match e {
            MessageError::Amf(a) => End::Amf(a.to_string()),
            other => End::Protocol(other.to_string()),
        }
    }
}

impl From<SessionError> for End {
    fn from(e: SessionError) -> End {
        match e {
            SessionError::Chunk(c) => c.into(),
            SessionError::Message(m) => m.into(),
            other => End::Protocol(other.to_string()),
        }
    }
}

impl From<HandshakeIoError> for End {
    fn from(e: HandshakeIoError) -> End {
        match e {
            HandshakeIoError::Closed => End::Clean("client closed the connection"),
            HandshakeIoError::Io(e) => End::Network(e.to_string()),
            HandshakeIoError::Protocol(e) => End::Protocol(e.to_string()),
        }
    }
}

struct Connected {
    app: String,
    tc_url: String,
}

/// The push this connection has live.
struct LivePush {
    claim: Claim,
    sequence: String,
    /// push_started not yet sent: when to send it without a sequence header.
    started_due: Option<tokio::time::Instant>,
    saw_video_header: bool,
    window_start: Instant,
    window_bytes_at_start: u64,
}

/// One client connection: the socket (the only place the ingest touches
/// it) and the shared session core that decodes and answers RTMP.
struct Conn<S> {
    io: S,
    session: Session,
    state: Arc<IngestState>,
    peer: SocketAddr,
    id: u64,
    shutdown: watch::Receiver<bool>,
    connected: Option<Connected>,
    push: Option<LivePush>,
    /// The stream this connection plays, when it is a viewer.
    play: Option<Viewer>,
    flags: Flags,
}

/// Serves one connection until it ends; never panics on what the peer sends.
/// `io` is any byte stream: the accepted socket, or an in-memory duplex in
/// the fuzz target (`fuzz/`), which drives the whole session without sockets.
pub async fn handle<S>(
    mut io: S,
    peer: SocketAddr,
    id: u64,
    state: Arc<IngestState>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hs_timeout = state.config.handshake_timeout;
    let handshaken = tokio::select! {
        r = timeout(hs_timeout, drive::handshake(&mut io, Role::Server)) => match r {
            Err(_) => Err(End::Idle(hs_timeout)),
            Ok(r) => r.map_err(End::from),
        },
        _ = stopped(&mut shutdown) => Err(End::Shutdown),
    };
    let limits = Limits {
        max_message: state.config.max_frame_bytes,
        read_start: READ_CHUNK,
        read_grow: READ_CHUNK,
    };
    let leftover = handshaken.as_ref().map_or(&[][..], |h| &h.leftover[..]);
    let mut c = Conn {
        io,
        session: Session::new(limits, leftover),
        state,
        peer,
        id,
        shutdown,
        connected: None,
        push: None,
        play: None,
        flags: Flags::default(),
    };
    let end = match handshaken {
        Err(end) => end,
        Ok(_) => c.serve().await,
    };
    c.finish(end).await;
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn serve(&mut self) -> End {
        let idle = self.state.config.idle_timeout;
        // Made once, not once per turn of the loop: a viewer's turn is a
        // batch of tags, thousands a second across viewers.
        let mut shutdown = self.shutdown.clone();
        let stop = stopped(&mut shutdown);
        tokio::pin!(stop);
        // The read deadline moves lazily: a read only notes its time, and
        // the timer, when it fires early, is set again from that.
        let mut last_read = tokio::time::Instant::now();
        let deadline = tokio::time::sleep(idle);
        tokio::pin!(deadline);
        let mut batch = Vec::with_capacity(PLAY_BATCH);
        loop {
            if let Err(end) = self.drain_messages() {
                return end;
            }
            if let Err(end) = self.flush().await {
                return end;
            }
            if let Err(end) = self.write_startup().await {
                return end;
            }
            let started_due = self.push.as_ref().and_then(|p| p.started_due);
            let read = tokio::select! {
                _ = &mut stop => return End::Shutdown,
                _ = evicted(&mut self.push) => return End::Replaced,
                _ = sleep_until(started_due) => {
                    self.send_started();
                    continue;
                }
                end = next_batch(&mut self.play, &mut batch) => match end {
                    Ok(()) => {
                        if let Err(end) = self.write_tags(&mut batch).await {
                            return end;
                        }
                        continue;
                    }
                    Err(end) => return self.play_ended(end),
                },
                () = &mut deadline => {
                    let read_limit = if self.play.is_some() {
                        PLAY_READ_TIMEOUT
                    } else {
                        idle
                    };
                    let due = last_read + read_limit;
                    if tokio::time::Instant::now() >= due {
                        return End::Idle(idle);
                    }
                    deadline.as_mut().reset(due);
                    continue;
                }
                r = self.io.read_buf(self.session.read_buf()) => r,
            };
            last_read = tokio::time::Instant::now();
            let n = match read {
                Ok(0) => return End::Clean("client closed the connection"),
                Ok(n) => n,
                Err(e) => return End::Network(e.to_string()),
            };
            self.session.received(n);
            if let Some(p) = &mut self.push {
                let elapsed = p.window_start.elapsed();
                if elapsed >= BITRATE_WINDOW {
                    let bytes = p.claim.publisher.bytes();
                    let bits = (bytes - p.window_bytes_at_start) as f64 * 8.0;
                    p.claim
                        .publisher
                        .set_bitrate((bits / elapsed.as_secs_f64()) as u64);
                    p.window_start = Instant::now();
                    p.window_bytes_at_start = bytes;
                }
            }
        }
    }

    /// Handles every whole message buffered. The session core applies and
    /// answers control messages (chunk size, window, ping) and caps what
    /// partial messages hold.
    fn drain_messages(&mut self) -> Result<(), End> {
        while let Some(inbound) = self.session.poll_message()? {
            match inbound {
                Inbound::Control(c) => self.on_control(&c),
                Inbound::Message(m) => self.on_message(m)?,
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), End> {
        let queued = self.session.outbound();
        if queued.is_empty() {
            return Ok(());
        }
        let idle = self.state.config.idle_timeout;
        match timeout(idle, self.io.write_all(queued)).await {
            Ok(Ok(())) => {
                self.session.sent();
                Ok(())
            }
            Ok(Err(e)) => Err(End::Network(e.to_string())),
            Err(_) => Err(End::Network("peer does not read".to_string())),
        }
    }

    /// A new viewer's metadata, sequence headers and cached GOP.
    async fn write_startup(&mut self) -> Result<(), End> {
        let Some(v) = &mut self.play else {
            return Ok(());
        };
        if v.startup.is_empty() {
            return Ok(());
        }
        let mut startup = std::mem::take(&mut v.startup);
        self.write_tags(&mut startup).await
    }

    /// Tags (whole RTMP messages) in vectored writes of up to a batch each
    /// (no copy, no allocation), within the idle timeout; `tags` is left
    /// empty.
    async fn write_tags(&mut self, tags: &mut Vec<Arc<MediaTag>>) -> Result<(), End> {
        let idle = self.state.config.idle_timeout;
        let io = &mut self.io;
        let written = timeout(idle, async {
            // The next byte to write: tag `at`, offset `off` in its message.
            let (mut at, mut off) = (0usize, 0usize);
            while at < tags.len() {
                let mut slices = [IoSlice::new(&[]); PLAY_BATCH];
                let mut count = 0;
                for (i, tag) in tags[at..].iter().take(PLAY_BATCH).enumerate() {
                    let skip = if i == 0 { off } else { 0 };
                    slices[i] = IoSlice::new(&tag.rtmp()[skip..]);
                    count += 1;
                }
                let mut n = io.write_vectored(&slices[..count]).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                while n > 0 && at < tags.len() {
                    let left = tags[at].rtmp().len() - off;
                    if n >= left {
                        n -= left;
                        at += 1;
                        off = 0;
                    } else {
                        off += n;
                        n = 0;
                    }
                }
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        tags.clear();
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Network(e.to_string())),
            Err(_) => Err(End::Network("viewer does not read".to_string())),
        }
    }

    /// The played stream ended: tell the viewer (a dropped one is just closed).
    fn play_ended(&mut self, end: ViewerEnd) -> End {
        self.play = None;
        if end == ViewerEnd::PublisherLeft {
            let id = playout::PLAY_STREAM_ID;
            self.session
                .send_control(&Control::User(UserControl::StreamEof(id)));
            for (code, description) in [
                (
                    "NetStream.Play.UnpublishNotify",
                    "The stream is unpublished.",
                ),
                ("NetStream.Play.Stop", "Stopped playing."),
            ] {
                self.send_status(id, "status", code, description);
            }
        }
        End::Played(end)
    }

    fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        let status = status_object(level, code, description);
        self.session.send_command(
            stream_id,
            &Command::new("onStatus", 0.0, Value::Null, vec![status]),
        );
    }

    fn on_message(&mut self, m: Message) -> Result<(), End> {
        match m.type_id {
            message::AUDIO
            | message::VIDEO
            | message::DATA_AMF0
            | message::DATA_AMF3
            | AGGREGATE => self.on_media(&m),
            COMMAND_AMF0 | COMMAND_AMF3 => self.on_command(&m),
            // Shared objects and other types: nothing to do.
            _ => Ok(()),
        }
    }

    /// Control the core already applied: flags what Tencent flags.
    fn on_control(&mut self, c: &Control) {
        if let Control::SetChunkSize(size) = *c
            && size > FLAG_CHUNK_SIZE_OVER
        {
            self.flags.insert(Flag::ChunkSizeOver8192);
            if let Some(p) = &self.push {
                p.claim.publisher.add_flag(Flag::ChunkSizeOver8192);
            }
        }
    }

    fn on_media(&mut self, m: &Message) -> Result<(), End> {
        let Some(p) = &mut self.push else {
            return Ok(());
        };
        p.claim.publisher.add_bytes(m.payload.len() as u64);
        // Codec and size from the first video sequence header of any codec
        // and framing; a codec `--codecs` does not take ends the push
        // before any viewer gets it.
        let seen = (m.type_id == message::VIDEO && !p.saw_video_header)
            .then(|| codec::video_seen(&m.payload))
            .flatten();
        if let Some(v) = &seen {
            p.claim.publisher.set_video(v.codec, v.framing);
            if !self.state.config.codecs.accepts(v.codec, v.framing) {
                return Err(End::Codec(v.codec, v.framing));
            }
        }
        if m.type_id == AGGREGATE {
            for tag in playout::split_aggregate(m.timestamp, &m.payload) {
                p.claim.fanout.push(tag);
            }
        } else {
            p.claim
                .fanout
                .push(MediaTag::new(m.type_id, m.timestamp, m.payload.clone()));
        }
        if let Some(v) = seen
            && v.sequence_start
        {
            p.saw_video_header = true;
            if let Some((w, h)) = v.size {
                p.claim.publisher.set_dimensions(w, h);
            }
            self.send_started();
        }
        Ok(())
    }

    fn on_command(&mut self, m: &Message) -> Result<(), End> {
        let cmd = Command::parse(m.type_id, &m.payload)?;
        if self.connected.is_none() && cmd.name != "connect" {
            return Err(End::Protocol(format!(
                "command {:?} before connect",
                cmd.name.chars().take(32).collect::<String>()
            )));
        }
        let tid = cmd.transaction_id;
        match cmd.name.as_str() {
            "connect" => self.on_connect(&cmd)?,
            "releaseStream" | "FCPublish" => {
                self.session.send_command(
                    0,
                    &Command::new("_result", tid, Value::Null, vec![Value::Undefined]),
                );
            }
            "createStream" => {
                self.session.send_command(
                    0,
                    &Command::new("_result", tid, Value::Null, vec![Value::Number(1.0)]),
                );
            }
            "publish" => self.on_publish(&cmd, m.stream_id)?,
            "play" => self.on_play(&cmd, m.stream_id)?,
            "FCUnpublish" => self.end_push(&End::Clean("FCUnpublish")),
            "closeStream" => {
                self.play = None;
                self.end_push(&End::Clean("closeStream"));
            }
            // The push ends here; the connection stays until the client
            // closes it (GStreamer's rtmp2sink reports an error when the
            // server closes first; nginx-rtmp waits too).
            "deleteStream" => {
                self.play = None;
                self.end_push(&End::Clean("deleteStream"));
            }
            // Anything else (_checkbw, getStreamLength, ...) is harmless.
            _ => {}
        }
        Ok(())
    }

    fn on_connect(&mut self, cmd: &Command) -> Result<(), End> {
        if self.connected.is_some() {
            return Err(End::Protocol("second connect".to_string()));
        }
        let field = |k: &str| cmd.object.get_str(k).unwrap_or("").to_string();
        self.connected = Some(Connected {
            app: field("app"),
            tc_url: field("tcUrl"),
        });
        self.session
            .send_control(&Control::WindowAckSize(OUR_WINDOW));
        self.session
            .send_control(&Control::SetPeerBandwidth(OUR_WINDOW, 2));
        self.session.set_chunk_size(OUR_CHUNK_SIZE);
        let mut props = vec![
            ("fmsVer".to_string(), Value::str("FMS/3,0,1,123")),
            ("capabilities".to_string(), Value::Number(31.0)),
        ];
        // Enhanced RTMP: answer a fourCcList with the FourCCs --codecs takes.
        props.extend(codec::answer_fourcc(&cmd.object, &self.state.config.codecs));
        let props = Value::Object(props);
        let info = status_object(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
        );
        self.session.send_command(
            0,
            &Command::new("_result", cmd.transaction_id, props, vec![info]),
        );
        Ok(())
    }

    fn record_of<'a>(&self, stream: &'a str, app: &'a str) -> RecordOf<'a> {
        RecordOf {
            stream,
            app,
            client: self.peer,
            flags: self.flags,
            video: None,
        }
    }

    /// `play`: StreamNotFound when nobody publishes the stream, Play.Failed
    /// when play authentication refuses it; else StreamBegin, Play.Reset,
    /// Play.Start, |RtmpSampleAccess, and the stream from its last keyframe.
    fn on_play(&mut self, cmd: &Command, stream_id: u32) -> Result<(), End> {
        if self.push.is_some() || self.play.is_some() {
            return Err(End::Protocol(
                "play while already publishing or playing".to_string(),
            ));
        }
        let name = cmd.args.first().and_then(Value::as_str).unwrap_or("");
        let (stream, _) = rules::split_query(name);
        let Some(connected) = self.connected.as_ref() else {
            return Err(End::Protocol("play before connect".to_string()));
        };
        let query = rules::pick_query(name, &connected.tc_url, &connected.app);
        let now = unix_secs(SystemTime::now());
        let played = self
            .state
            .play(&connected.app, stream, query, ViewerKind::Rtmp, now);
        let viewer = match played {
            Ok(v) => v,
            Err(denied) => {
                let (code, why, end) = match &denied {
                    PlayDenied::NotFound => (
                        "NetStream.Play.StreamNotFound",
                        format!("{stream} is not live"),
                        "stream not found",
                    ),
                    PlayDenied::Refused(r) => {
                        ("NetStream.Play.Failed", r.errmsg.clone(), "not authorized")
                    }
                };
                tracing::info!(client = %self.peer, stream, "play refused: {why}");
                self.send_status(stream_id, "error", code, &why);
                return Err(End::PlayDenied(end));
            }
        };
        tracing::info!(client = %self.peer, stream, "play started");
        let id = playout::PLAY_STREAM_ID;
        self.session
            .send_control(&Control::User(UserControl::StreamBegin(id)));
        self.send_status(
            id,
            "status",
            "NetStream.Play.Reset",
            &format!("Playing and resetting {stream}."),
        );
        self.send_status(
            id,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {stream}."),
        );
        let mut access = bytes::BytesMut::new();
        crate::rtmp::amf0::encode(
            &[
                Value::str("|RtmpSampleAccess"),
                Value::Boolean(true),
                Value::Boolean(true),
            ],
            &mut access,
        );
        self.session.send_message(
            u32::from(message::CSID_DATA),
            0,
            message::DATA_AMF0,
            id,
            &access,
        );
        self.play = Some(viewer);
        Ok(())
    }

    fn on_publish(&mut self, cmd: &Command, stream_id: u32) -> Result<(), End> {
        if self.push.is_some() || self.play.is_some() {
            return Err(End::Protocol(
                "publish while already publishing".to_string(),
            ));
        }
        let name = cmd.args.first().and_then(Value::as_str).unwrap_or("");
        let (stream, _) = rules::split_query(name);
        if stream.is_empty() {
            return Err(End::Protocol("publish without a stream name".to_string()));
        }
        let Some(connected) = self.connected.as_ref() else {
            return Err(End::Protocol("publish before connect".to_string()));
        };
        let app = rules::bare_app(&connected.app).to_string();
        let query = rules::pick_query(name, &connected.tc_url, &connected.app).to_string();
        let cfg = &self.state.config;
        let policy = Policy {
            app: &cfg.app,
            disabled: &cfg.disabled,
            keys: &cfg.keys,
            auth_delta: cfg.auth_delta,
        };
        let req = Publish {
            app: &connected.app,
            stream,
            query: &query,
        };
        let now = SystemTime::now();
        let claimed = rules::check(&req, &policy, unix_secs(now)).and_then(|()| {
            let publisher =
                Publisher::new(self.id, stream, &app, self.peer, &query, now, self.flags);
            self.state.registry.claim(publisher, cfg.duplicate)
        });
        let claim = match claimed {
            Ok(c) => c,
            Err(refusal) => {
                tracing::info!(
                    client = %self.peer,
                    stream,
                    sub_errcode = refusal.sub_errcode.0,
                    "publish refused: {}",
                    refusal.errmsg
                );
                let record = Record::refusal(self.record_of(stream, &app), now, &refusal);
                self.state.registry.record(record);
                if self.state.config.reject_with_status {
                    let (code, description) = refusal.status();
                    let status = status_object("error", code, description);
                    self.session.send_command(
                        stream_id,
                        &Command::new("onStatus", 0.0, Value::Null, vec![status]),
                    );
                }
                return Err(End::Refused);
            }
        };
        tracing::info!(client = %self.peer, stream, "publish accepted");
        self.session
            .send_control(&Control::User(UserControl::StreamBegin(stream_id)));
        let status = status_object(
            "status",
            "NetStream.Publish.Start",
            &format!("{stream} is now published."),
        );
        self.session.send_command(
            stream_id,
            &Command::new("onStatus", 0.0, Value::Null, vec![status]),
        );
        let started = Instant::now();
        self.push = Some(LivePush {
            sequence: notify::sequence_for(self.id, unix_secs(now)),
            started_due: self
                .state
                .config
                .notifier
                .is_some()
                .then(|| tokio::time::Instant::now() + STARTED_WITHOUT_HEADER),
            saw_video_header: false,
            window_start: started,
            window_bytes_at_start: 0,
            claim,
        });
        Ok(())
    }

    fn push_info(&self, p: &LivePush) -> PushInfo {
        let publisher = &p.claim.publisher;
        let (width, height) = publisher.dimensions();
        PushInfo {
            app_path: publisher.app.clone(),
            stream_id: publisher.stream.clone(),
            sequence: p.sequence.clone(),
            user_ip: self.peer.ip().to_string(),
            stream_param: publisher.query.clone(),
            width,
            height,
            codec: publisher
                .video()
                .map_or("", |(c, _)| c.as_str())
                .to_string(),
        }
    }

    /// Sends push_started once per push (no-op without a notifier).
    fn send_started(&mut self) {
        let Some(p) = &self.push else { return };
        let Some(notifier) = &self.state.config.notifier else {
            return;
        };
        if p.started_due.is_none() {
            return;
        }
        notifier.push_started(&self.push_info(p), unix_secs(SystemTime::now()));
        if let Some(p) = &mut self.push {
            p.started_due = None;
        }
    }

    /// Ends the live push, if any: releases the stream, records the
    /// interruption and sends push_ended.
    fn end_push(&mut self, end: &End) {
        self.send_started();
        let Some(p) = self.push.take() else { return };
        let publisher = &p.claim.publisher;
        self.state.registry.release(&publisher.stream, publisher.id);
        let duration_ms = publisher.started.elapsed().as_millis() as u64;
        let (errcode, errmsg) = (end.errcode(), end.errmsg());
        let now = SystemTime::now();
        let mut flags = self.flags;
        if publisher.flags().contains(Flag::ChunkSizeOver8192) {
            flags.insert(Flag::ChunkSizeOver8192);
        }
        let of = RecordOf {
            stream: &publisher.stream,
            app: &publisher.app,
            client: self.peer,
            flags,
            video: publisher.video(),
        };
        self.state.registry.record(Record::new(
            of,
            now,
            errcode,
            SubErrcode::NONE,
            &errmsg,
            duration_ms,
        ));
        tracing::info!(
            client = %self.peer,
            stream = %publisher.stream,
            errcode = errcode.0,
            duration_ms,
            "push ended: {errmsg}"
        );
        if let Some(notifier) = &self.state.config.notifier {
            notifier.push_ended(
                &self.push_info(&p),
                errcode,
                &errmsg,
                duration_ms,
                unix_secs(now),
            );
        }
    }

    /// Ends the push, then flushes what is queued (a refusal's onStatus),
    /// closes our side and waits briefly for the peer's FIN so it reads our
    /// last words rather than a reset.
    async fn finish(mut self, end: End) {
        tracing::debug!(client = %self.peer, id = self.id, "connection ends: {}", end.errmsg());
        self.end_push(&end);
        let _ = timeout(LINGER, async {
            if !self.session.outbound().is_empty() {
                self.io.write_all(self.session.outbound()).await?;
            }
            self.io.shutdown().await?;
            let mut sink = [0u8; 1024];
            while self.io.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        })
        .await;
    }
}

/// Resolves once the ingest is shutting down (or gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Resolves when another push replaced ours; never while nothing is live.
async fn evicted(push: &mut Option<LivePush>) {
    match push {
        Some(p) => {
            let _ = (&mut p.claim.evicted).await;
        }
        None => std::future::pending().await,
    }
}

/// The next live tags of the stream played (up to a write's batch) into
/// `batch`; never while nothing is played.
async fn next_batch(
    play: &mut Option<Viewer>,
    batch: &mut Vec<Arc<MediaTag>>,
) -> Result<(), ViewerEnd> {
    match play {
        Some(v) => std::future::poll_fn(|cx| v.poll_batch(cx, batch, PLAY_BATCH)).await,
        None => std::future::pending().await,
    }
}
