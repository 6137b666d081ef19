//! MPEG-TS muxer: FLV H.264/AAC tags in, 188-byte TS packets out; pure.
//!
//! [`TsLoop::new`] muxes one loop of a fixture once: PAT/PMT (before every
//! keyframe and at least every 100 ms), one PES per access unit with PTS/DTS
//! (composition time from the FLV AVC header), PCR on the video PID (audio
//! when there is no video), H.264 as Annex B with an AUD and SPS/PPS before
//! each keyframe, AAC with ADTS headers from the AudioSpecificConfig. The
//! packets are cut into SRT payloads of 7 packets (null packets complete the
//! last payload of a GOP so a publisher can start at any keyframe). Every
//! publisher shares that buffer: loop 0 is sent as slices of it, later loops
//! as copies with PTS/DTS/PCR moved by the loop period and continuity
//! counters moved on, patched at offsets recorded while muxing.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::VideoCodec;
use crate::flv::{CODEC_AAC, Fixture, Tag, TagKind};

pub const PACKET: usize = 188;
/// TS packets per SRT payload (7 x 188 = 1316 bytes, what libsrt peers expect).
pub const PACKETS_PER_PAYLOAD: usize = 7;
pub const PAYLOAD: usize = PACKET * PACKETS_PER_PAYLOAD;

pub const PID_PAT: u16 = 0;
pub const PID_PMT: u16 = 0x1000;
pub const PID_VIDEO: u16 = 0x100;
pub const PID_AUDIO: u16 = 0x101;
pub const PID_NULL: u16 = 0x1FFF;
pub const STREAM_TYPE_H264: u8 = 0x1B;
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;

/// PTS/DTS start this far ahead of the PCR (90 kHz): the decoder's buffer
/// time, as ffmpeg's mpegts muxer does (0.7 s).
const PCR_LEAD: u64 = 63_000;
/// PTS/DTS of fixture time 0 (90 kHz).
const TS_BASE: u64 = 126_000;
/// PAT/PMT at least this often (ms of media time).
const PSI_PERIOD_MS: u32 = 100;
/// 33-bit PTS/DTS wrap.
const TS_MASK: u64 = (1 << 33) - 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MuxError {
    #[error("fixture has {0} video, not H.264: SRT pushes carry H.264 + AAC")]
    VideoCodec(&'static str),
    #[error(
        "fixture has audio that is not AAC (FLV sound format {0}): SRT pushes carry H.264 + AAC"
    )]
    AudioCodec(u8),
    #[error("fixture has H.264 video but no AVC sequence header (SPS/PPS)")]
    NoAvcHeader,
    #[error("fixture's AVC sequence header is malformed: {0}")]
    AvcHeader(&'static str),
    #[error("fixture has AAC audio but no AAC sequence header (AudioSpecificConfig)")]
    NoAacHeader,
    #[error("fixture's AAC sequence header is malformed: {0}")]
    AacHeader(&'static str),
    #[error("fixture has no audio or video frames to mux")]
    Empty,
}

/// Which timestamp field sits at a recorded offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// 5-byte PTS or DTS with its 4-bit prefix.
    Pts(u8),
    /// 6-byte PCR in an adaptation field.
    Pcr,
}

#[derive(Debug, Clone, Copy)]
struct Stamp {
    offset: usize,
    field: Field,
}

/// One SRT payload of a loop: bytes of [`TsLoop::bytes`] and its due time.
#[derive(Debug, Clone)]
pub struct Payload {
    pub range: Range<usize>,
    /// Fixture time (ms) of the media it carries; sent when that is due.
    pub due_ms: u32,
    stamps: Range<usize>,
}

/// One fixture loop as TS, cut into SRT payloads.
#[derive(Debug)]
pub struct TsLoop {
    pub bytes: Bytes,
    pub payloads: Vec<Payload>,
    /// Payload indices where a keyframe (with PAT/PMT before it) starts.
    pub keyframes: Vec<usize>,
    pub duration_ms: u32,
    pub has_video: bool,
    pub has_audio: bool,
    stamps: Vec<Stamp>,
    /// Packets per PID in one loop (continuity counters move on by this).
    counts: [u32; 4],
}

/// AVCDecoderConfigurationRecord, as Annex B.
#[derive(Debug, Clone)]
struct AvcConfig {
    nal_length_size: usize,
    /// SPS and PPS NAL units, each after a start code.
    parameter_sets: Vec<u8>,
}

/// AudioSpecificConfig fields ADTS needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AacConfig {
    object_type: u8,
    frequency_index: u8,
    channels: u8,
}

fn pid_slot(pid: u16) -> Option<usize> {
    match pid {
        PID_PAT => Some(0),
        PID_PMT => Some(1),
        PID_VIDEO => Some(2),
        PID_AUDIO => Some(3),
        _ => None,
    }
}

fn avc_config(tag: &Tag) -> Result<AvcConfig, MuxError> {
    let rec = tag
        .data
        .get(5..)
        .ok_or(MuxError::AvcHeader("shorter than its FLV header"))?;
    if rec.len() < 7 || rec[0] != 1 {
        return Err(MuxError::AvcHeader("not an AVCDecoderConfigurationRecord"));
    }
    let nal_length_size = usize::from(rec[4] & 3) + 1;
    let mut out = Vec::new();
    let mut pos = 5;
    for count_mask in [0x1f_u8, 0xff] {
        let n = *rec.get(pos).ok_or(MuxError::AvcHeader("truncated"))? & count_mask;
        pos += 1;
        for _ in 0..n {
            let len = rec
                .get(pos..pos + 2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                .ok_or(MuxError::AvcHeader("truncated"))?;
            let nal = rec
                .get(pos + 2..pos + 2 + len)
                .ok_or(MuxError::AvcHeader("parameter set runs past the end"))?;
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
            pos += 2 + len;
        }
    }
    if out.is_empty() {
        return Err(MuxError::AvcHeader("no SPS or PPS"));
    }
    Ok(AvcConfig {
        nal_length_size,
        parameter_sets: out,
    })
}

fn aac_config(tag: &Tag) -> Result<AacConfig, MuxError> {
    let asc = tag
        .data
        .get(2..4)
        .ok_or(MuxError::AacHeader("shorter than 2 bytes"))?;
    let object_type = asc[0] >> 3;
    let frequency_index = ((asc[0] & 7) << 1) | (asc[1] >> 7);
    let channels = (asc[1] >> 3) & 0x0f;
    if !(1..=4).contains(&object_type) {
        // ADTS carries profiles 1-4 (Main, LC, SSR, LTP) only.
        return Err(MuxError::AacHeader("object type ADTS cannot carry"));
    }
    if frequency_index > 12 || channels == 0 || channels > 7 {
        return Err(MuxError::AacHeader(
            "sampling index or channels out of range",
        ));
    }
    Ok(AacConfig {
        object_type,
        frequency_index,
        channels,
    })
}

/// The 7-byte ADTS header (no CRC) for a raw AAC frame of `len` bytes.
fn adts_header(c: AacConfig, len: usize) -> [u8; 7] {
    let full = len + 7;
    [
        0xFF,
        0xF1,
        ((c.object_type - 1) << 6) | (c.frequency_index << 2) | (c.channels >> 2),
        ((c.channels & 3) << 6) | ((full >> 11) as u8 & 3),
        (full >> 3) as u8,
        (((full & 7) as u8) << 5) | 0x1F,
        0xFC,
    ]
}

/// An FLV AVC NALU tag body as one Annex B access unit: AUD, SPS/PPS before
/// a keyframe, then the frame's NAL units (its own AUDs dropped).
fn annex_b(tag: &Tag, cfg: &AvcConfig, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xF0]);
    if tag.is_keyframe() {
        out.extend_from_slice(&cfg.parameter_sets);
    }
    let mut rest = tag.data.get(5..).unwrap_or_default();
    let n = cfg.nal_length_size;
    while rest.len() > n {
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        let Some(nal) = rest.get(n..n + len) else {
            break;
        };
        if nal.first().is_some_and(|h| h & 0x1f != 9) {
            out.extend_from_slice(&[0, 0, 1]);
            out.extend_from_slice(nal);
        }
        rest = &rest[n + len..];
    }
}

/// Signed 24-bit composition time of an FLV AVC tag, in ms.
fn composition_ms(tag: &Tag) -> i32 {
    match tag.data.get(2..5) {
        Some(b) => (i32::from_be_bytes([b[0], b[1], b[2], 0])) >> 8,
        None => 0,
    }
}

/// MPEG-2 CRC-32 (poly 0x04C11DB7, MSB first, no final xor) of a PSI section.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn write_ts(buf: &mut [u8], field: Field, value: u64) {
    match field {
        Field::Pts(prefix) => {
            let v = value & TS_MASK;
            buf[0] = (prefix << 4) | (((v >> 29) as u8) & 0x0E) | 1;
            buf[1] = (v >> 22) as u8;
            buf[2] = ((v >> 14) as u8 & 0xFE) | 1;
            buf[3] = (v >> 7) as u8;
            buf[4] = ((v << 1) as u8 & 0xFE) | 1;
        }
        Field::Pcr => {
            let base = value & TS_MASK;
            buf[0] = (base >> 25) as u8;
            buf[1] = (base >> 17) as u8;
            buf[2] = (base >> 9) as u8;
            buf[3] = (base >> 1) as u8;
            buf[4] = (((base & 1) as u8) << 7) | 0x7E;
            buf[5] = 0;
        }
    }
}

/// Reads back a field written by [`write_ts`] (the 90 kHz base of a PCR).
fn read_ts(buf: &[u8], field: Field) -> u64 {
    match field {
        Field::Pts(_) => {
            (u64::from(buf[0] & 0x0E) << 29)
                | (u64::from(buf[1]) << 22)
                | (u64::from(buf[2] >> 1) << 15)
                | (u64::from(buf[3]) << 7)
                | u64::from(buf[4] >> 1)
        }
        Field::Pcr => {
            (u64::from(buf[0]) << 25)
                | (u64::from(buf[1]) << 17)
                | (u64::from(buf[2]) << 9)
                | (u64::from(buf[3]) << 1)
                | u64::from(buf[4] >> 7)
        }
    }
}

/// The packet writer: continuity counters, stamps and payload cutting.
struct Writer {
    out: Vec<u8>,
    cc: [u8; 4],
    counts: [u32; 4],
    stamps: Vec<Stamp>,
    payloads: Vec<Payload>,
    /// Start of the payload being filled, its first stamp, its due time.
    open: Option<(usize, usize, u32)>,
    due_ms: u32,
}

impl Writer {
    fn new() -> Writer {
        Writer {
            out: Vec::new(),
            cc: [0; 4],
            counts: [0; 4],
            stamps: Vec::new(),
            payloads: Vec::new(),
            open: None,
            due_ms: 0,
        }
    }

    /// Starts a packet: header with the PID's next continuity counter.
    fn header(&mut self, pid: u16, start: bool, adaptation: bool) {
        if self.open.is_none() {
            self.open = Some((self.out.len(), self.stamps.len(), self.due_ms));
        }
        let cc = match pid_slot(pid) {
            Some(i) => {
                let c = self.cc[i];
                self.cc[i] = (c + 1) & 0x0F;
                self.counts[i] += 1;
                c
            }
            None => 0,
        };
        let afc = if adaptation { 0x30 } else { 0x10 };
        self.out.extend_from_slice(&[
            0x47,
            (u8::from(start) << 6) | (pid >> 8) as u8 & 0x1F,
            pid as u8,
            afc | cc,
        ]);
    }

    fn end_packet(&mut self) {
        if let Some((start, stamps, due)) = self.open
            && self.out.len() - start == PAYLOAD
        {
            self.close_payload(start, stamps, due);
        }
    }

    fn close_payload(&mut self, start: usize, stamps: usize, due: u32) {
        self.payloads.push(Payload {
            range: start..self.out.len(),
            due_ms: due,
            stamps: stamps..self.stamps.len(),
        });
        self.open = None;
    }

    /// Completes the open payload with null packets (before a keyframe, so
    /// a publisher can start there).
    fn pad_payload(&mut self) {
        while let Some((start, _, _)) = self.open {
            if self.out.len() == start {
                self.open = None;
                break;
            }
            self.header(PID_NULL, false, false);
            self.out.resize(self.out.len() + PACKET - 4, 0xFF);
            self.end_packet();
        }
    }

    fn section(&mut self, pid: u16, section: &[u8]) {
        self.header(pid, true, false);
        self.out.push(0); // pointer_field
        self.out.extend_from_slice(section);
        let crc = crc32_mpeg2(section);
        self.out.extend_from_slice(&crc.to_be_bytes());
        let used = 5 + section.len() + 4;
        self.out.resize(self.out.len() + PACKET - used, 0xFF);
        self.end_packet();
    }

    fn psi(&mut self, has_video: bool, has_audio: bool) {
        // PAT: program 1 -> PMT PID.
        let mut pat = vec![0x00, 0xB0, 13, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01];
        pat.extend_from_slice(&(0xE000 | PID_PMT).to_be_bytes());
        self.section(PID_PAT, &pat);
        let pcr_pid = if has_video { PID_VIDEO } else { PID_AUDIO };
        let mut streams = Vec::new();
        for (present, ty, pid) in [
            (has_video, STREAM_TYPE_H264, PID_VIDEO),
            (has_audio, STREAM_TYPE_AAC_ADTS, PID_AUDIO),
        ] {
            if present {
                streams.push(ty);
                streams.extend_from_slice(&(0xE000 | pid).to_be_bytes());
                streams.extend_from_slice(&0xF000u16.to_be_bytes());
            }
        }
        let len = (9 + streams.len() + 4) as u16;
        let mut pmt = vec![0x02];
        pmt.extend_from_slice(&(0xB000 | len).to_be_bytes());
        pmt.extend_from_slice(&[0x00, 0x01, 0xC1, 0x00, 0x00]);
        pmt.extend_from_slice(&(0xE000 | pcr_pid).to_be_bytes());
        pmt.extend_from_slice(&0xF000u16.to_be_bytes());
        pmt.extend_from_slice(&streams);
        self.section(PID_PMT, &pmt);
    }

    /// One PES (one access unit) over as many packets as it takes.
    #[allow(clippy::too_many_arguments)]
    fn pes(
        &mut self,
        pid: u16,
        stream_id: u8,
        pts: u64,
        dts: u64,
        pcr: Option<u64>,
        random_access: bool,
        data: &[u8],
    ) {
        let with_dts = pts != dts;
        let header_len = if with_dts { 10 } else { 5 };
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(&[0, 0, 1, stream_id]);
        let pes_len = 3 + header_len + data.len();
        // Video may leave the length 0 (unbounded); audio must fit.
        let field_len = if pes_len > 0xFFFF { 0 } else { pes_len as u16 };
        head.extend_from_slice(&field_len.to_be_bytes());
        head.extend_from_slice(&[0x80, if with_dts { 0xC0 } else { 0x80 }, header_len as u8]);
        let pts_at = head.len();
        head.resize(head.len() + header_len, 0);
        let mut first = true;
        let mut rest = data;
        loop {
            let pkt_start = self.out.len();
            let mut af: Vec<u8> = Vec::new();
            let mut pcr_at = None;
            if first && (pcr.is_some() || random_access) {
                let flags = (u8::from(random_access) << 6) | (u8::from(pcr.is_some()) << 4);
                af.push(flags);
                if pcr.is_some() {
                    pcr_at = Some(af.len());
                    af.extend_from_slice(&[0; 6]);
                }
            }
            let head_here = if first { head.len() } else { 0 };
            // Room for payload with the adaptation field so far.
            let af_total = if af.is_empty() { 0 } else { 1 + af.len() };
            let room = PACKET - 4 - af_total - head_here;
            let take = rest.len().min(room);
            let stuffing = room - take;
            let adaptation = !af.is_empty() || stuffing > 0;
            self.header(pid, first, adaptation);
            if adaptation {
                if af.is_empty() {
                    // Stuffing only: length byte, then flags and 0xFF.
                    if stuffing == 1 {
                        self.out.push(0);
                    } else {
                        self.out.push((stuffing - 1) as u8);
                        self.out.push(0);
                        self.out.resize(self.out.len() + stuffing - 2, 0xFF);
                    }
                } else {
                    self.out.push((af.len() + stuffing) as u8);
                    let af_at = self.out.len();
                    self.out.extend_from_slice(&af);
                    self.out.resize(self.out.len() + stuffing, 0xFF);
                    if let (Some(at), Some(v)) = (pcr_at, pcr) {
                        let offset = af_at + at;
                        write_ts(&mut self.out[offset..offset + 6], Field::Pcr, v);
                        self.stamps.push(Stamp {
                            offset,
                            field: Field::Pcr,
                        });
                    }
                }
            }
            if first {
                let base = self.out.len();
                self.out.extend_from_slice(&head);
                let mut fields =
                    vec![(base + pts_at, Field::Pts(if with_dts { 3 } else { 2 }), pts)];
                if with_dts {
                    fields.push((base + pts_at + 5, Field::Pts(1), dts));
                }
                for (offset, field, v) in fields {
                    write_ts(&mut self.out[offset..offset + 5], field, v);
                    self.stamps.push(Stamp { offset, field });
                }
            }
            self.out.extend_from_slice(&rest[..take]);
            debug_assert_eq!(self.out.len() - pkt_start, PACKET);
            rest = &rest[take..];
            first = false;
            self.end_packet();
            if rest.is_empty() {
                break;
            }
        }
    }
}

impl TsLoop {
    /// Muxes one loop of `fixture`.
    pub fn new(fixture: &Fixture) -> Result<TsLoop, MuxError> {
        let video = match fixture.video_codec {
            Some(c) if c != VideoCodec::H264 => return Err(MuxError::VideoCodec(c.as_str())),
            Some(_) => Some(avc_config(
                fixture
                    .video_sequence_header
                    .as_ref()
                    .ok_or(MuxError::NoAvcHeader)?,
            )?),
            None => None,
        };
        let audio = match fixture.audio_codec {
            Some(c) if c != CODEC_AAC => return Err(MuxError::AudioCodec(c)),
            Some(_) => Some(aac_config(
                fixture
                    .audio_sequence_header
                    .as_ref()
                    .ok_or(MuxError::NoAacHeader)?,
            )?),
            None => None,
        };
        let (has_video, has_audio) = (video.is_some(), audio.is_some());
        let mut w = Writer::new();
        let mut keyframes = Vec::new();
        let mut last_psi: Option<u32> = None;
        let mut au = Vec::new();
        for tag in &fixture.media {
            let ms = tag.timestamp_ms;
            let dts = TS_BASE + u64::from(ms) * 90;
            match (tag.kind, &video, audio) {
                (TagKind::Video, Some(cfg), _) => {
                    if tag.data.get(1) != Some(&1) {
                        continue;
                    }
                    let key = tag.is_keyframe();
                    if key {
                        w.pad_payload();
                        keyframes.push(w.payloads.len());
                    }
                    w.due_ms = ms;
                    if key || last_psi.is_none_or(|t| ms >= t + PSI_PERIOD_MS) {
                        w.psi(has_video, has_audio);
                        last_psi = Some(ms);
                    }
                    au.clear();
                    annex_b(tag, cfg, &mut au);
                    let cts = i64::from(composition_ms(tag)).max(0) as u64 * 90;
                    let pcr = dts - PCR_LEAD;
                    w.pes(PID_VIDEO, 0xE0, dts + cts, dts, Some(pcr), key, &au);
                }
                (TagKind::Audio, _, Some(cfg)) => {
                    let raw = tag.data.get(2..).unwrap_or_default();
                    if tag.data.get(1) != Some(&1) || raw.is_empty() || raw.len() > 8000 {
                        continue;
                    }
                    w.due_ms = ms;
                    if !has_video && last_psi.is_none_or(|t| ms >= t + PSI_PERIOD_MS) {
                        if last_psi.is_none() {
                            keyframes.push(w.payloads.len());
                        }
                        w.psi(has_video, has_audio);
                        last_psi = Some(ms);
                    }
                    au.clear();
                    au.extend_from_slice(&adts_header(cfg, raw.len()));
                    au.extend_from_slice(raw);
                    let pcr = (!has_video).then(|| dts - PCR_LEAD);
                    w.pes(PID_AUDIO, 0xC0, dts, dts, pcr, false, &au);
                }
                _ => {}
            }
        }
        w.pad_payload();
        if w.payloads.is_empty() {
            return Err(MuxError::Empty);
        }
        if keyframes.is_empty() {
            keyframes.push(0);
        }
        Ok(TsLoop {
            bytes: Bytes::from(w.out),
            payloads: w.payloads,
            keyframes,
            duration_ms: fixture.duration_ms.max(1),
            has_video,
            has_audio,
            stamps: w.stamps,
            counts: w.counts,
        })
    }

    /// Payload index to start at for publisher `n` (spread over keyframes).
    pub fn start_index(&self, n: u64) -> usize {
        self.keyframes[(n % self.keyframes.len() as u64) as usize]
    }

    /// Payload `i` of loop `lap`: a slice of the shared buffer for lap 0,
    /// else a copy with timestamps and continuity counters moved on.
    pub fn payload(&self, i: usize, lap: u64) -> Bytes {
        let p = &self.payloads[i];
        if lap == 0 {
            return self.bytes.slice(p.range.clone());
        }
        let mut b = BytesMut::with_capacity(p.range.len());
        b.put_slice(&self.bytes[p.range.clone()]);
        let shift = lap * u64::from(self.duration_ms) * 90;
        for s in &self.stamps[p.stamps.clone()] {
            let at = s.offset - p.range.start;
            let len = if s.field == Field::Pcr { 6 } else { 5 };
            let v = read_ts(&b[at..at + len], s.field) + shift;
            write_ts(&mut b[at..at + len], s.field, v);
        }
        for pkt in b.chunks_mut(PACKET) {
            let pid = (u16::from(pkt[1] & 0x1F) << 8) | u16::from(pkt[2]);
            if let Some(slot) = pid_slot(pid) {
                let moved = (u64::from(pkt[3] & 0x0F) + lap * u64::from(self.counts[slot])) & 0x0F;
                pkt[3] = (pkt[3] & 0xF0) | moved as u8;
            }
        }
        b.freeze()
    }
}

/// Where a publisher is in the looped TS.
#[derive(Debug, Clone)]
pub struct TsCursor {
    index: usize,
    lap: u64,
    origin_ms: u32,
}

impl TsCursor {
    pub fn new(ts: &TsLoop, start_index: usize) -> TsCursor {
        let index = start_index.min(ts.payloads.len() - 1);
        TsCursor {
            index,
            lap: 0,
            origin_ms: ts.payloads[index].due_ms,
        }
    }

    /// When the next payload is due, in ms from the publisher's start.
    pub fn next_due_ms(&self, ts: &TsLoop) -> u64 {
        let base = self.lap * u64::from(ts.duration_ms);
        (base + u64::from(ts.payloads[self.index].due_ms)).saturating_sub(u64::from(self.origin_ms))
    }

    /// The next payload starts a keyframe (PAT, PMT, then an IDR frame):
    /// a clean place to stop.
    pub fn at_keyframe(&self, ts: &TsLoop) -> bool {
        ts.keyframes.binary_search(&self.index).is_ok()
    }

    /// The next payload and its due time (ms from start); moves on.
    pub fn next(&mut self, ts: &TsLoop) -> (Bytes, u64) {
        let due = self.next_due_ms(ts);
        let b = ts.payload(self.index, self.lap);
        self.index += 1;
        if self.index >= ts.payloads.len() {
            self.index = 0;
            self.lap += 1;
        }
        (b, due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Fixture {
        crate::flv::default_fixture()
    }

    #[test]
    fn crc_matches_a_known_pat() {
        // The PAT ffmpeg writes (program 1 -> PMT 0x1000, TSID 1): CRC 2AB104B2.
        let pat = [
            0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00,
        ];
        assert_eq!(crc32_mpeg2(&pat), 0x2AB1_04B2);
        // A section followed by its own CRC checks to 0.
        let mut with = pat.to_vec();
        with.extend_from_slice(&crc32_mpeg2(&pat).to_be_bytes());
        assert_eq!(crc32_mpeg2(&with), 0);
    }

    #[test]
    fn timestamps_round_trip_and_wrap() {
        for v in [0u64, 1, 126_000, (1 << 32) + 5, TS_MASK] {
            let mut b = [0u8; 6];
            write_ts(&mut b, Field::Pts(3), v);
            assert_eq!(read_ts(&b, Field::Pts(3)), v);
            assert_eq!(b[0] >> 4, 3);
            assert_eq!(b[0] & 1, 1, "marker bits");
            write_ts(&mut b, Field::Pcr, v);
            assert_eq!(read_ts(&b, Field::Pcr), v);
        }
        // 90 kHz PTS 1 s = 90000: the bytes as in ISO 13818-1 2.4.3.7.
        let mut b = [0u8; 5];
        write_ts(&mut b, Field::Pts(2), 90_000);
        assert_eq!(b, [0x21, 0x00, 0x05, 0xBF, 0x21]);
    }

    #[test]
    fn adts_header_for_lc_44100_stereo() {
        let c = AacConfig {
            object_type: 2,
            frequency_index: 4,
            channels: 2,
        };
        // 100-byte raw frame -> 107 bytes total; ffmpeg writes FF F1 50 80 0D 7F FC.
        assert_eq!(
            adts_header(c, 100),
            [0xFF, 0xF1, 0x50, 0x80, 0x0D, 0x7F, 0xFC]
        );
    }

    #[test]
    fn loop_is_whole_packets_with_sync_and_7_packet_payloads() {
        let ts = TsLoop::new(&fixture()).unwrap();
        assert_eq!(ts.bytes.len() % PACKET, 0);
        assert!(ts.bytes.chunks(PACKET).all(|p| p[0] == 0x47));
        assert!(ts.payloads.iter().all(|p| p.range.len() == PAYLOAD));
        let covered: usize = ts.payloads.iter().map(|p| p.range.len()).sum();
        assert_eq!(covered, ts.bytes.len());
        // Payload due times never go back.
        assert!(ts.payloads.windows(2).all(|w| w[0].due_ms <= w[1].due_ms));
        // Every keyframe payload starts with PAT then PMT.
        assert!(ts.keyframes.len() >= 4);
        for &k in &ts.keyframes {
            let b = &ts.bytes[ts.payloads[k].range.clone()];
            assert_eq!(&b[1..3], &[0x40, 0x00], "PAT first");
            assert_eq!(&b[PACKET + 1..PACKET + 3], &[0x50, 0x00], "PMT second");
        }
    }

    #[test]
    fn pmt_names_h264_and_aac_with_pcr_on_video() {
        let ts = TsLoop::new(&fixture()).unwrap();
        let at = ts.payloads[ts.keyframes[0]].range.start + PACKET;
        let pmt = &ts.bytes[at..at + PACKET];
        let section = &pmt[5..];
        assert_eq!(section[0], 0x02);
        let len = usize::from(u16::from_be_bytes([section[1], section[2]]) & 0x0FFF);
        assert_eq!(crc32_mpeg2(&section[..3 + len]), 0, "CRC");
        assert_eq!(
            u16::from_be_bytes([section[8], section[9]]) & 0x1FFF,
            PID_VIDEO
        );
        assert_eq!(section[12], STREAM_TYPE_H264);
        assert_eq!(section[17], STREAM_TYPE_AAC_ADTS);
    }

    /// Continuity counters stay continuous per PID across the loop seam.
    #[test]
    fn continuity_and_timestamps_continue_across_loops() {
        let ts = TsLoop::new(&fixture()).unwrap();
        let mut cursor = TsCursor::new(&ts, ts.start_index(1));
        let mut last_cc = [None::<u8>; 4];
        let mut last_pcr: Option<u64> = None;
        let mut dues = Vec::new();
        for _ in 0..ts.payloads.len() * 2 + 10 {
            let (b, due) = cursor.next(&ts);
            dues.push(due);
            for pkt in b.chunks(PACKET) {
                let pid = (u16::from(pkt[1] & 0x1F) << 8) | u16::from(pkt[2]);
                let Some(slot) = pid_slot(pid) else { continue };
                let cc = pkt[3] & 0x0F;
                if let Some(prev) = last_cc[slot] {
                    assert_eq!(cc, (prev + 1) & 0x0F, "pid {pid:#x}");
                }
                last_cc[slot] = Some(cc);
                if pkt[3] & 0x20 != 0 && pkt[4] > 0 && pkt[5] & 0x10 != 0 {
                    let pcr = read_ts(&pkt[6..12], Field::Pcr);
                    if let Some(p) = last_pcr {
                        assert!(pcr > p && pcr - p <= 9000, "PCR step {p} -> {pcr}");
                    }
                    last_pcr = Some(pcr);
                }
            }
        }
        assert_eq!(dues[0], 0);
        assert!(dues.windows(2).all(|w| w[0] <= w[1]), "due times go back");
        let end = *dues.last().unwrap();
        assert!(end >= 2 * u64::from(ts.duration_ms) - 3000, "end {end}");
    }

    #[test]
    fn keyframe_access_unit_has_aud_sps_pps_in_annex_b() {
        let f = fixture();
        let cfg = avc_config(f.video_sequence_header.as_ref().unwrap()).unwrap();
        let key = f.media.iter().find(|t| t.is_keyframe()).unwrap();
        let mut au = Vec::new();
        annex_b(key, &cfg, &mut au);
        assert_eq!(&au[..6], &[0, 0, 0, 1, 0x09, 0xF0]);
        assert_eq!(&au[6..10], &[0, 0, 0, 1]);
        assert_eq!(au[10] & 0x1f, 7, "SPS after the AUD");
        let nal_types: Vec<u8> = au
            .windows(4)
            .filter(|w| w[..3] == [0, 0, 1])
            .map(|w| w[3] & 0x1f)
            .collect();
        assert!(nal_types.contains(&8), "PPS: {nal_types:?}");
        assert!(nal_types.contains(&5), "IDR slice: {nal_types:?}");
    }

    #[test]
    fn other_codecs_are_named() {
        let mut f = fixture();
        f.audio_codec = Some(2);
        assert_eq!(TsLoop::new(&f).unwrap_err(), MuxError::AudioCodec(2));
        let mut f = fixture();
        f.video_codec = Some(VideoCodec::Hevc);
        assert_eq!(TsLoop::new(&f).unwrap_err(), MuxError::VideoCodec("hevc"));
        let mut f = fixture();
        f.video_sequence_header = None;
        assert_eq!(TsLoop::new(&f).unwrap_err(), MuxError::NoAvcHeader);
    }
}
