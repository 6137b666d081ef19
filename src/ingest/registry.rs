//! The live-stream registry (one publisher per stream name, reject or replace a
//! duplicate) and the bounded ring of refusal and interruption records.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::oneshot;

use super::playout::{self, Fanout, ViewerCounts};
use super::rules::Refusal;
use crate::codec::{Framing, VideoCodec};
use crate::errcode::{Errcode, SubErrcode};
use crate::sign::redact_query_in;

/// Records kept; the oldest are dropped first.
pub const RECORD_CAPACITY: usize = 10_000;

/// What to do with a publish to a stream that is already live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DuplicateMode {
    /// Refuse the newcomer (errcode 18, sub-code 601), as Tencent does by default.
    #[default]
    Reject,
    /// End the old push and give the stream to the newcomer.
    Replace,
}

/// Conditions Tencent flags on a push without ending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// The client set a chunk size above 8192.
    ChunkSizeOver8192,
}

impl Flag {
    const ALL: [Flag; 1] = [Flag::ChunkSizeOver8192];

    fn bit(self) -> u32 {
        1 << self as u32
    }

    pub fn name(self) -> &'static str {
        match self {
            Flag::ChunkSizeOver8192 => "chunk_size_over_8192",
        }
    }
}

/// A set of [`Flag`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u32);

impl Flags {
    pub fn insert(&mut self, f: Flag) {
        self.0 |= f.bit();
    }
    pub fn contains(self, f: Flag) -> bool {
        self.0 & f.bit() != 0
    }
    pub fn names(self) -> Vec<&'static str> {
        Flag::ALL
            .into_iter()
            .filter(|f| self.contains(*f))
            .map(Flag::name)
            .collect()
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rfc3339(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

/// How a push reaches the ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Rtmp,
    Srt,
}

/// A live publisher. Counters are atomics so the media path never takes the
/// registry lock.
#[derive(Debug)]
pub struct Publisher {
    pub id: u64,
    pub stream: String,
    pub app: String,
    pub client: SocketAddr,
    /// The push query string as sent (txSecret included: redact before showing).
    pub query: String,
    pub started_unix_ms: u64,
    pub started: Instant,
    /// RTMP unless the pusher set it (SRT).
    pub transport: Transport,
    bytes: AtomicU64,
    bitrate_bps: AtomicU64,
    width: AtomicU32,
    height: AtomicU32,
    flags: AtomicU32,
    /// Video codec and framing of the first video tag that names one.
    video: std::sync::OnceLock<(VideoCodec, Framing)>,
}

impl Publisher {
    pub fn new(
        id: u64,
        stream: &str,
        app: &str,
        client: SocketAddr,
        query: &str,
        now: SystemTime,
        flags: Flags,
    ) -> Publisher {
        Publisher {
            id,
            stream: stream.to_string(),
            app: app.to_string(),
            client,
            query: query.to_string(),
            started_unix_ms: unix_ms(now),
            started: Instant::now(),
            transport: Transport::Rtmp,
            bytes: AtomicU64::new(0),
            bitrate_bps: AtomicU64::new(0),
            width: AtomicU32::new(0),
            height: AtomicU32::new(0),
            flags: AtomicU32::new(flags.0),
            video: std::sync::OnceLock::new(),
        }
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    /// Sets the bitrate of the most recent measuring window.
    pub fn set_bitrate(&self, bps: u64) {
        self.bitrate_bps.store(bps, Ordering::Relaxed);
    }
    /// The most recent window's bitrate, else (in the first window) the
    /// average over the push so far.
    pub fn bitrate_bps(&self) -> u64 {
        match self.bitrate_bps.load(Ordering::Relaxed) {
            0 => {
                let secs = self.started.elapsed().as_secs_f64();
                if secs > 0.0 {
                    (self.bytes() as f64 * 8.0 / secs) as u64
                } else {
                    0
                }
            }
            bps => bps,
        }
    }
    pub fn set_dimensions(&self, width: u32, height: u32) {
        self.width.store(width, Ordering::Relaxed);
        self.height.store(height, Ordering::Relaxed);
    }
    pub fn dimensions(&self) -> (u32, u32) {
        (
            self.width.load(Ordering::Relaxed),
            self.height.load(Ordering::Relaxed),
        )
    }
    /// Keeps the first codec seen; later calls change nothing.
    pub fn set_video(&self, codec: VideoCodec, framing: Framing) {
        let _ = self.video.set((codec, framing));
    }
    pub fn video(&self) -> Option<(VideoCodec, Framing)> {
        self.video.get().copied()
    }
    pub fn add_flag(&self, f: Flag) {
        self.flags.fetch_or(f.bit(), Ordering::Relaxed);
    }
    pub fn flags(&self) -> Flags {
        Flags(self.flags.load(Ordering::Relaxed))
    }
}

/// A live stream as `GET /streams` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StreamView {
    pub id: u64,
    /// `rtmp` or `srt`.
    pub transport: Transport,
    pub stream: String,
    pub app: String,
    pub client: String,
    pub started: String,
    pub started_unix_ms: u64,
    pub bytes: u64,
    pub bitrate_bps: u64,
    pub width: u32,
    pub height: u32,
    /// The push query with txSecret redacted.
    pub query: String,
    pub flags: Vec<&'static str>,
    /// Who plays the stream back (RTMP play, HTTP-FLV) and how many were dropped.
    pub viewers: ViewerCounts,
    /// Video codec (h264, hevc, av1, vp9) and framing (enhanced, legacy-id).
    pub codec: Option<&'static str>,
    pub framing: Option<&'static str>,
}

/// A refused or interrupted push.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Record {
    /// RFC 3339, UTC.
    pub time: String,
    pub time_unix_ms: u64,
    pub stream: String,
    pub app: String,
    pub client: String,
    pub errcode: Errcode,
    pub sub_errcode: SubErrcode,
    pub errmsg: String,
    pub push_duration_ms: u64,
    pub flags: Vec<&'static str>,
    /// Video codec of the push, when a video tag named one.
    pub codec: Option<&'static str>,
}

/// The facts a record is made of, besides the time.
#[derive(Debug, Clone, Copy)]
pub struct RecordOf<'a> {
    pub stream: &'a str,
    pub app: &'a str,
    pub client: SocketAddr,
    pub flags: Flags,
    pub video: Option<(VideoCodec, Framing)>,
}

impl Record {
    pub fn new(
        of: RecordOf<'_>,
        now: SystemTime,
        errcode: Errcode,
        sub_errcode: SubErrcode,
        errmsg: &str,
        push_duration_ms: u64,
    ) -> Record {
        let time_unix_ms = unix_ms(now);
        Record {
            time: rfc3339(time_unix_ms),
            time_unix_ms,
            stream: of.stream.to_string(),
            app: of.app.to_string(),
            client: of.client.to_string(),
            errcode,
            sub_errcode,
            errmsg: errmsg.to_string(),
            push_duration_ms,
            flags: of.flags.names(),
            codec: of.video.map(|(c, _)| c.as_str()),
        }
    }

    /// A refusal: errcode 18 with the rule's sub-code.
    pub fn refusal(of: RecordOf<'_>, now: SystemTime, r: &Refusal) -> Record {
        Record::new(of, now, Errcode::REFUSED, r.sub_errcode, &r.errmsg, 0)
    }
}

/// The stream is the caller's until `evicted` fires (another push replaced it).
/// Its media goes into `fanout` (from any source: RTMP, SRT) for viewers.
#[derive(Debug)]
pub struct Claim {
    pub publisher: Arc<Publisher>,
    pub evicted: oneshot::Receiver<()>,
    pub fanout: Arc<Fanout>,
}

struct Entry {
    publisher: Arc<Publisher>,
    evict: oneshot::Sender<()>,
    fanout: Arc<Fanout>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Entry>,
    records: VecDeque<Record>,
}

/// Live streams and records, behind one mutex held only for map and ring
/// operations (never across an await).
pub struct Registry {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Live tags a viewer may queue before it is dropped.
    play_queue: usize,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::with_capacity(RECORD_CAPACITY)
    }
}

impl Registry {
    /// A registry keeping at most `capacity` records.
    pub fn with_capacity(capacity: usize) -> Registry {
        Registry {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            play_queue: playout::DEFAULT_QUEUE_TAGS,
        }
    }

    /// Viewers of streams claimed from now on may queue `tags` live tags.
    pub fn with_play_queue(mut self, tags: usize) -> Registry {
        self.play_queue = tags.max(1);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind:
        // keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `publisher` the live publisher of its stream, or refuses with
    /// 601 (Reject) / evicts the current one (Replace).
    pub fn claim(&self, publisher: Publisher, mode: DuplicateMode) -> Result<Claim, Refusal> {
        let publisher = Arc::new(publisher);
        let (evict, evicted) = oneshot::channel();
        let mut inner = self.lock();
        if let Some(old) = inner.live.get(&publisher.stream)
            && mode == DuplicateMode::Reject
        {
            return Err(Refusal::new(
                SubErrcode::STREAM_IN_USE,
                format!(
                    "stream is already being pushed (from {})",
                    old.publisher.client
                ),
            ));
        }
        let fanout = Arc::new(Fanout::new(self.play_queue));
        let entry = Entry {
            publisher: publisher.clone(),
            evict,
            fanout: fanout.clone(),
        };
        if let Some(old) = inner.live.insert(publisher.stream.clone(), entry) {
            // The old task may already be ending: then nobody listens.
            let _ = old.evict.send(());
            // Its viewers saw that publisher's stream: they end with it.
            old.fanout.close();
        }
        Ok(Claim {
            publisher,
            evicted,
            fanout,
        })
    }

    /// Ends publisher `id`'s hold on `stream`; false when it no longer holds it
    /// (it was replaced).
    pub fn release(&self, stream: &str, id: u64) -> bool {
        let mut inner = self.lock();
        if inner.live.get(stream).is_some_and(|e| e.publisher.id == id) {
            if let Some(e) = inner.live.remove(stream) {
                e.fanout.close();
            }
            true
        } else {
            false
        }
    }

    pub fn record(&self, r: Record) {
        let mut inner = self.lock();
        if inner.records.len() >= self.capacity {
            inner.records.pop_front();
        }
        inner.records.push_back(r);
    }

    pub fn live_count(&self) -> usize {
        self.lock().live.len()
    }

    pub fn publisher(&self, stream: &str) -> Option<Arc<Publisher>> {
        self.lock().live.get(stream).map(|e| e.publisher.clone())
    }

    /// The play-out of a live stream.
    pub fn fanout(&self, stream: &str) -> Option<Arc<Fanout>> {
        self.lock().live.get(stream).map(|e| e.fanout.clone())
    }

    /// Live streams, sorted by stream name.
    pub fn streams(&self) -> Vec<StreamView> {
        let publishers: Vec<(Arc<Publisher>, ViewerCounts)> = {
            let inner = self.lock();
            inner
                .live
                .values()
                .map(|e| (e.publisher.clone(), e.fanout.counts()))
                .collect()
        };
        let mut out: Vec<StreamView> = publishers
            .iter()
            .map(|(p, viewers)| {
                let (width, height) = p.dimensions();
                StreamView {
                    id: p.id,
                    transport: p.transport,
                    stream: p.stream.clone(),
                    app: p.app.clone(),
                    client: p.client.to_string(),
                    started: rfc3339(p.started_unix_ms),
                    started_unix_ms: p.started_unix_ms,
                    bytes: p.bytes(),
                    bitrate_bps: p.bitrate_bps(),
                    width,
                    height,
                    query: redact_query_in(&p.query),
                    flags: p.flags().names(),
                    viewers: *viewers,
                    codec: p.video().map(|(c, _)| c.as_str()),
                    framing: p.video().map(|(_, f)| f.as_str()),
                }
            })
            .collect();
        out.sort_by(|a, b| a.stream.cmp(&b.stream));
        out
    }

    /// Records, oldest first.
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn publisher(id: u64, stream: &str) -> Publisher {
        Publisher::new(
            id,
            stream,
            "live",
            addr(1000 + id as u16),
            "txSecret=abc&txTime=1",
            SystemTime::now(),
            Flags::default(),
        )
    }

    #[test]
    fn reject_mode_refuses_a_second_publisher_with_601() {
        let reg = Registry::default();
        let first = reg.claim(publisher(1, "s"), DuplicateMode::Reject).unwrap();
        let err = reg
            .claim(publisher(2, "s"), DuplicateMode::Reject)
            .unwrap_err();
        assert_eq!(err.sub_errcode, SubErrcode::STREAM_IN_USE);
        assert!(err.errmsg.contains("127.0.0.1:1001"), "{}", err.errmsg);
        assert_eq!(reg.publisher("s").unwrap().id, 1);
        // Another stream is independent.
        reg.claim(publisher(3, "t"), DuplicateMode::Reject).unwrap();
        assert_eq!(reg.live_count(), 2);
        assert!(reg.release("s", 1));
        assert!(!reg.release("s", 1));
        drop(first);
        reg.claim(publisher(4, "s"), DuplicateMode::Reject).unwrap();
    }

    #[test]
    fn replace_mode_evicts_the_old_publisher() {
        let reg = Registry::default();
        let mut first = reg
            .claim(publisher(1, "s"), DuplicateMode::Replace)
            .unwrap();
        assert!(first.evicted.try_recv().is_err());
        let mut second = reg
            .claim(publisher(2, "s"), DuplicateMode::Replace)
            .unwrap();
        assert_eq!(first.evicted.try_recv(), Ok(()));
        assert_eq!(reg.publisher("s").unwrap().id, 2);
        // The evicted task's release must not remove the newcomer.
        assert!(!reg.release("s", 1));
        assert_eq!(reg.live_count(), 1);
        assert!(second.evicted.try_recv().is_err());
        assert!(reg.release("s", 2));
        assert_eq!(reg.live_count(), 0);
    }

    #[test]
    fn streams_view_redacts_and_counts() {
        let reg = Registry::default();
        let c = reg.claim(publisher(1, "s"), DuplicateMode::Reject).unwrap();
        c.publisher.add_bytes(1000);
        c.publisher.set_dimensions(640, 360);
        c.publisher.add_flag(Flag::ChunkSizeOver8192);
        c.publisher.set_bitrate(8000);
        let v = &reg.streams()[0];
        assert_eq!(
            (v.bytes, v.width, v.height, v.bitrate_bps),
            (1000, 640, 360, 8000)
        );
        assert_eq!(v.query, "txSecret=***&txTime=1");
        assert_eq!(v.flags, vec!["chunk_size_over_8192"]);
        assert!(v.started.ends_with('Z'), "{}", v.started);
    }

    #[test]
    fn records_ring_is_bounded() {
        let reg = Registry::with_capacity(3);
        let of = RecordOf {
            stream: "s",
            app: "live",
            client: addr(1),
            flags: Flags::default(),
            video: None,
        };
        for i in 0..5 {
            reg.record(Record::new(
                of,
                UNIX_EPOCH,
                Errcode(1),
                SubErrcode(0),
                &i.to_string(),
                i,
            ));
        }
        let recs = reg.records();
        let kept: Vec<u64> = recs.iter().map(|r| r.push_duration_ms).collect();
        assert_eq!(kept, vec![2, 3, 4]);
        assert_eq!(recs[0].time, "1970-01-01T00:00:00.000Z");
        let refused = Record::refusal(
            of,
            UNIX_EPOCH,
            &Refusal::new(SubErrcode(501), "txTime expired"),
        );
        assert_eq!(
            (refused.errcode, refused.sub_errcode),
            (Errcode(18), SubErrcode(501))
        );
    }
}
