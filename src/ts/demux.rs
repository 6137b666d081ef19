//! MPEG-TS demuxer: 188-byte TS packets in, H.264/AAC access units out; pure.
//!
//! [`Demuxer::push`] takes any slice of bytes (a partial packet is kept for
//! the next call), finds the program through the PAT and PMT, reassembles
//! PES packets of H.264 (stream type 0x1B) and AAC ADTS (0x0F) elementary
//! streams and returns access units: video as one Annex B access unit per
//! PES, audio as one ADTS frame per unit (a PES may carry several). Other
//! streams (HEVC 0x24 among them) are listed in [`Demuxer::streams`] and
//! skipped. Damage never stops the demuxer: lost sync, continuity-counter
//! gaps, bad PSI sections and bad PES headers are counted in [`Stats`], the
//! last one kept as a [`TsError`], and the unit they touched is dropped.
//! Timestamps are the raw 33-bit 90 kHz values of the stream (no unwrapping).

use std::collections::BTreeMap;

/// Size of one TS packet.
pub const PACKET_LEN: usize = 188;
const SYNC: u8 = 0x47;
const PAT_PID: u16 = 0;
const NULL_PID: u16 = 0x1fff;
/// Stream types this demuxer reassembles or names.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
pub const STREAM_TYPE_H264: u8 = 0x1b;
pub const STREAM_TYPE_HEVC: u8 = 0x24;
/// A PES larger than this is damage, not media (a 4K keyframe is ~1 MB).
const MAX_PES: usize = 16 << 20;

/// What went wrong in the input; counted, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    #[error("lost TS sync: skipped {0} bytes to the next 0x47")]
    SyncLost(usize),
    #[error("continuity counter gap on PID {pid:#x}: expected {expected}, got {got}")]
    Continuity { pid: u16, expected: u8, got: u8 },
    #[error("bad PSI section on PID {pid:#x}: {what}")]
    Psi { pid: u16, what: &'static str },
    #[error("bad PES on PID {pid:#x}: {what}")]
    Pes { pid: u16, what: &'static str },
    #[error("bad ADTS frame on PID {pid:#x}: {what}")]
    Adts { pid: u16, what: &'static str },
}

/// Which kind of elementary stream an access unit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Video,
    Audio,
}

/// One access unit: a video picture (Annex B NAL units, start codes kept)
/// or one audio frame (ADTS header kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub pid: u16,
    pub kind: Kind,
    /// Presentation time, 90 kHz, 33 bits as carried.
    pub pts_90k: u64,
    /// Decoding time, 90 kHz; equals `pts_90k` when the PES has no DTS.
    pub dts_90k: u64,
    /// Video: the unit holds an IDR slice. Audio: always true.
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// One elementary stream announced by the PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    pub pid: u16,
    pub stream_type: u8,
    /// True when this demuxer outputs its access units (H.264, AAC ADTS).
    pub supported: bool,
}

/// Counters of what the demuxer saw and what it threw away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets: u64,
    pub bytes_skipped: u64,
    pub sync_losses: u64,
    pub cc_errors: u64,
    pub psi_errors: u64,
    pub pes_errors: u64,
    pub adts_errors: u64,
    /// Packets with the transport error indicator set (dropped).
    pub tei_packets: u64,
    pub video_units: u64,
    pub audio_units: u64,
}

impl Stats {
    /// All damage counted, whatever its kind.
    pub fn errors(&self) -> u64 {
        self.sync_losses
            + self.cc_errors
            + self.psi_errors
            + self.pes_errors
            + self.adts_errors
            + self.tei_packets
    }
}

/// Fields of an ADTS header that a consumer needs (an FLV AAC sequence
/// header is built from `profile`, `sampling_index` and `channels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adts {
    /// Audio object type minus one (1 = AAC LC).
    pub profile: u8,
    pub sampling_index: u8,
    pub channels: u8,
    /// 7 without CRC, 9 with.
    pub header_len: usize,
    /// Header plus raw frame.
    pub frame_len: usize,
}

impl Adts {
    /// Sampling rate in Hz, `None` for reserved indexes.
    pub fn sample_rate(&self) -> Option<u32> {
        const RATES: [u32; 13] = [
            96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
        ];
        RATES.get(self.sampling_index as usize).copied()
    }

    /// The two-byte AudioSpecificConfig (ISO 14496-3) for this stream.
    pub fn audio_specific_config(&self) -> [u8; 2] {
        let aot = self.profile + 1;
        [
            (aot << 3) | (self.sampling_index >> 1),
            ((self.sampling_index & 1) << 7) | ((self.channels & 0x0f) << 3),
        ]
    }
}

/// Reads an ADTS header at the start of `b`; `None` unless it is one.
pub fn adts_header(b: &[u8]) -> Option<Adts> {
    if b.len() < 7 || b[0] != 0xff || b[1] & 0xf6 != 0xf0 {
        return None;
    }
    let header_len = if b[1] & 1 == 1 { 7 } else { 9 };
    let frame_len =
        (((b[3] & 0x03) as usize) << 11) | ((b[4] as usize) << 3) | ((b[5] as usize) >> 5);
    if frame_len < header_len {
        return None;
    }
    Some(Adts {
        profile: b[2] >> 6,
        sampling_index: (b[2] >> 2) & 0x0f,
        channels: ((b[2] & 1) << 2) | (b[3] >> 6),
        header_len,
        frame_len,
    })
}

/// Iterates the NAL units of an Annex B buffer (start codes removed).
pub fn annexb_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
        // A four-byte start code leaves a zero byte behind; so may trailing zeros.
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        out.push(&data[s..end]);
    }
    out.into_iter()
}

/// A PES being reassembled on one PID.
#[derive(Debug, Default)]
struct Pes {
    buf: Vec<u8>,
    /// Set when a packet was lost inside this PES: it is dropped, not emitted.
    damaged: bool,
}

#[derive(Debug)]
struct Stream {
    info: StreamInfo,
    kind: Option<Kind>,
    pes: Option<Pes>,
}

/// The incremental demuxer. Feed it bytes, collect access units.
#[derive(Debug, Default)]
pub struct Demuxer {
    pending: Vec<u8>,
    /// Last continuity counter per PID (payload-carrying packets only).
    cc: BTreeMap<u16, u8>,
    /// PSI sections being gathered, per PID.
    sections: BTreeMap<u16, Vec<u8>>,
    pmt_pid: Option<u16>,
    streams: BTreeMap<u16, Stream>,
    stats: Stats,
    last_error: Option<TsError>,
    in_sync: bool,
    lost: bool,
}

impl Demuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The most recent damage seen, if any.
    pub fn last_error(&self) -> Option<&TsError> {
        self.last_error.as_ref()
    }

    /// Elementary streams of the current PMT, by PID.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.streams.values().map(|s| s.info).collect()
    }

    /// Feeds bytes; returns the access units they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<AccessUnit> {
        let mut out = Vec::new();
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        let buf = std::mem::take(&mut self.pending);
        while buf.len() - at >= PACKET_LEN {
            if buf[at] == SYNC && (self.in_sync || self.confirms_sync(&buf, at)) {
                self.in_sync = true;
                self.lost = false;
                self.packet(&buf[at..at + PACKET_LEN], &mut out);
                at += PACKET_LEN;
                continue;
            }
            // Out of sync: find a 0x47 followed by another one a packet later
            // (or by the end of what we have, to be confirmed next call).
            let from = at;
            at += 1;
            while at < buf.len() && !(buf[at] == SYNC && self.confirms_sync(&buf, at)) {
                at += 1;
            }
            self.in_sync = false;
            self.stats.bytes_skipped += (at - from) as u64;
            if !self.lost {
                // One loss per episode, however many calls it spans.
                self.lost = true;
                self.stats.sync_losses += 1;
            }
            self.note(TsError::SyncLost(at - from));
        }
        self.pending = buf[at..].to_vec();
        out
    }

    /// Ends the input: emits the PES in progress on every PID.
    pub fn flush(&mut self) -> Vec<AccessUnit> {
        let mut out = Vec::new();
        let pids: Vec<u16> = self.streams.keys().copied().collect();
        for pid in pids {
            self.finish_pes(pid, &mut out);
        }
        self.pending.clear();
        out
    }

    /// A 0x47 at `at` is trusted when the byte a packet later is 0x47 too,
    /// or when the buffer ends before that byte.
    fn confirms_sync(&self, buf: &[u8], at: usize) -> bool {
        buf.get(at + PACKET_LEN).is_none_or(|&b| b == SYNC)
    }

    fn note(&mut self, e: TsError) {
        self.last_error = Some(e);
    }

    fn packet(&mut self, p: &[u8], out: &mut Vec<AccessUnit>) {
        self.stats.packets += 1;
        let tei = p[1] & 0x80 != 0;
        let pusi = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
        let afc = (p[3] >> 4) & 0x03;
        let cc = p[3] & 0x0f;
        if pid == NULL_PID {
            return;
        }
        if tei {
            self.stats.tei_packets += 1;
            self.damage(pid);
            return;
        }
        let mut start = 4;
        let mut discontinuity = false;
        if afc & 0x02 != 0 {
            let af_len = p[4] as usize;
            if 5 + af_len > PACKET_LEN {
                self.stats.pes_errors += 1;
                self.note(TsError::Pes {
                    pid,
                    what: "adaptation field longer than the packet",
                });
                self.damage(pid);
                return;
            }
            discontinuity = af_len > 0 && p[5] & 0x80 != 0;
            start = 5 + af_len;
        }
        if afc & 0x01 == 0 {
            return; // no payload (adaptation only, or reserved)
        }
        // Continuity: the counter advances by one on packets with payload; a
        // repeat of the same value is a legal duplicate packet, dropped.
        match self.cc.insert(pid, cc) {
            Some(last) if !discontinuity => {
                let expected = (last + 1) & 0x0f;
                if cc == last {
                    return;
                }
                if cc != expected {
                    self.stats.cc_errors += 1;
                    self.note(TsError::Continuity {
                        pid,
                        expected,
                        got: cc,
                    });
                    self.damage(pid);
                }
            }
            _ => {}
        }
        let payload = &p[start..];
        if pid == PAT_PID || Some(pid) == self.pmt_pid {
            self.psi(pid, pusi, payload);
        } else if self.streams.contains_key(&pid) {
            self.pes_payload(pid, pusi, payload, out);
        }
    }

    /// Marks what is being gathered on `pid` as lost.
    fn damage(&mut self, pid: u16) {
        if let Some(pes) = self.streams.get_mut(&pid).and_then(|s| s.pes.as_mut()) {
            pes.damaged = true;
        }
        self.sections.remove(&pid);
    }

    fn psi(&mut self, pid: u16, pusi: bool, payload: &[u8]) {
        let mut data = payload;
        if pusi {
            let Some((&pointer, rest)) = data.split_first() else {
                return self.psi_error(pid, "empty payload");
            };
            let pointer = pointer as usize;
            if pointer > rest.len() {
                return self.psi_error(pid, "pointer field past the packet");
            }
            // Bytes before the pointer end a section already started.
            if let Some(acc) = self.sections.get_mut(&pid) {
                acc.extend_from_slice(&rest[..pointer]);
                self.try_sections(pid);
            }
            self.sections.insert(pid, Vec::new());
            data = &rest[pointer..];
        }
        let Some(acc) = self.sections.get_mut(&pid) else {
            return; // continuation of a section whose start we missed
        };
        acc.extend_from_slice(data);
        if acc.len() > 4096 {
            self.sections.remove(&pid);
            return self.psi_error(pid, "section longer than 4096 bytes");
        }
        self.try_sections(pid);
    }

    fn psi_error(&mut self, pid: u16, what: &'static str) {
        self.stats.psi_errors += 1;
        self.note(TsError::Psi { pid, what });
    }

    /// Parses every complete section gathered on `pid`.
    fn try_sections(&mut self, pid: u16) {
        loop {
            let Some(acc) = self.sections.get(&pid) else {
                return;
            };
            if acc.first().is_none_or(|&t| t == 0xff) {
                // Stuffing after the last section.
                self.sections.remove(&pid);
                return;
            }
            if acc.len() < 3 {
                return;
            }
            let len = 3 + ((usize::from(acc[1] & 0x0f) << 8) | usize::from(acc[2]));
            if acc.len() < len {
                return;
            }
            let section = acc[..len].to_vec();
            self.sections.get_mut(&pid).map(|a| a.drain(..len));
            self.section(pid, &section);
        }
    }

    fn section(&mut self, pid: u16, s: &[u8]) {
        if s.len() < 12 {
            return self.psi_error(pid, "section shorter than its fixed fields");
        }
        if crc32_mpeg2(s) != 0 {
            return self.psi_error(pid, "CRC mismatch");
        }
        let body = &s[8..s.len() - 4];
        match (pid == PAT_PID, s[0]) {
            (true, 0x00) => {
                // The first program with a number other than 0 (0 is the NIT).
                let pmt = body
                    .chunks_exact(4)
                    .find(|e| e[0] != 0 || e[1] != 0)
                    .map(|e| (u16::from(e[2] & 0x1f) << 8) | u16::from(e[3]));
                if pmt.is_some() && pmt != self.pmt_pid {
                    self.pmt_pid = pmt;
                }
            }
            (false, 0x02) => self.pmt(pid, body),
            _ => {} // other tables are not ours
        }
    }

    fn pmt(&mut self, pid: u16, body: &[u8]) {
        if body.len() < 4 {
            return self.psi_error(pid, "PMT shorter than its header");
        }
        let info_len = (usize::from(body[2] & 0x0f) << 8) | usize::from(body[3]);
        let Some(mut es) = body.get(4 + info_len..) else {
            return self.psi_error(pid, "program info past the section");
        };
        let mut announced = BTreeMap::new();
        while es.len() >= 5 {
            let stream_type = es[0];
            let es_pid = (u16::from(es[1] & 0x1f) << 8) | u16::from(es[2]);
            let es_len = (usize::from(es[3] & 0x0f) << 8) | usize::from(es[4]);
            let kind = match stream_type {
                STREAM_TYPE_H264 => Some(Kind::Video),
                STREAM_TYPE_AAC_ADTS => Some(Kind::Audio),
                _ => None,
            };
            let info = StreamInfo {
                pid: es_pid,
                stream_type,
                supported: kind.is_some(),
            };
            announced.insert(es_pid, (info, kind));
            es = es.get(5 + es_len..).unwrap_or_default();
        }
        // Keep PES in progress on streams that stay; forget the rest.
        self.streams.retain(|pid, s| {
            announced
                .get(pid)
                .is_some_and(|(i, _)| i.stream_type == s.info.stream_type)
        });
        for (es_pid, (info, kind)) in announced {
            self.streams.entry(es_pid).or_insert(Stream {
                info,
                kind,
                pes: None,
            });
        }
    }

    fn pes_payload(&mut self, pid: u16, pusi: bool, payload: &[u8], out: &mut Vec<AccessUnit>) {
        if pusi {
            self.finish_pes(pid, out);
        }
        let Some(stream) = self.streams.get_mut(&pid) else {
            return;
        };
        if stream.kind.is_none() {
            return;
        }
        if pusi {
            stream.pes = Some(Pes::default());
        }
        let Some(pes) = stream.pes.as_mut() else {
            return; // joined mid-PES: wait for the next start
        };
        if pes.buf.len() + payload.len() > MAX_PES {
            stream.pes = None;
            self.stats.pes_errors += 1;
            return self.note(TsError::Pes {
                pid,
                what: "PES larger than 16 MiB",
            });
        }
        pes.buf.extend_from_slice(payload);
        // A PES with a declared length is complete when it is all here.
        if pes.buf.len() >= 6 {
            let declared = usize::from(u16::from_be_bytes([pes.buf[4], pes.buf[5]]));
            if declared != 0 && pes.buf.len() >= 6 + declared {
                self.finish_pes(pid, out);
            }
        }
    }

    /// Turns the PES gathered on `pid` into access units.
    fn finish_pes(&mut self, pid: u16, out: &mut Vec<AccessUnit>) {
        let Some(stream) = self.streams.get_mut(&pid) else {
            return;
        };
        let (Some(pes), Some(kind)) = (stream.pes.take(), stream.kind) else {
            return;
        };
        if pes.damaged {
            self.stats.pes_errors += 1;
            return self.note(TsError::Pes {
                pid,
                what: "packets lost inside the PES; dropped",
            });
        }
        let (pts, dts, es) = match parse_pes(&pes.buf) {
            Ok(v) => v,
            Err(what) => {
                self.stats.pes_errors += 1;
                return self.note(TsError::Pes { pid, what });
            }
        };
        let Some(pts) = pts else {
            self.stats.pes_errors += 1;
            return self.note(TsError::Pes {
                pid,
                what: "PES without a PTS",
            });
        };
        let dts = dts.unwrap_or(pts);
        match kind {
            Kind::Video => {
                let keyframe = annexb_nals(es).any(|n| n.first().is_some_and(|b| b & 0x1f == 5));
                self.stats.video_units += 1;
                out.push(AccessUnit {
                    pid,
                    kind,
                    pts_90k: pts,
                    dts_90k: dts,
                    keyframe,
                    data: es.to_vec(),
                });
            }
            Kind::Audio => self.adts_frames(pid, pts, es, out),
        }
    }

    /// Splits an AAC PES into ADTS frames, the n-th stamped n x 1024 samples
    /// after the PES's PTS.
    fn adts_frames(&mut self, pid: u16, pts: u64, mut es: &[u8], out: &mut Vec<AccessUnit>) {
        let mut n = 0u64;
        while !es.is_empty() {
            let Some(h) = adts_header(es) else {
                self.stats.adts_errors += 1;
                return self.note(TsError::Adts {
                    pid,
                    what: "no ADTS sync word",
                });
            };
            let Some(rate) = h.sample_rate() else {
                self.stats.adts_errors += 1;
                return self.note(TsError::Adts {
                    pid,
                    what: "reserved sampling frequency index",
                });
            };
            if h.frame_len > es.len() {
                self.stats.adts_errors += 1;
                return self.note(TsError::Adts {
                    pid,
                    what: "frame longer than its PES",
                });
            }
            let rate = u64::from(rate);
            // Rounded to the nearest tick, as ffmpeg's parser stamps them.
            let t = (pts + (n * 1024 * 90_000 + rate / 2) / rate) & PTS_MASK;
            self.stats.audio_units += 1;
            out.push(AccessUnit {
                pid,
                kind: Kind::Audio,
                pts_90k: t,
                dts_90k: t,
                keyframe: true,
                data: es[..h.frame_len].to_vec(),
            });
            es = &es[h.frame_len..];
            n += 1;
        }
    }
}

const PTS_MASK: u64 = (1 << 33) - 1;

/// PES header -> (PTS, DTS, elementary stream bytes).
type ParsedPes<'a> = (Option<u64>, Option<u64>, &'a [u8]);

fn parse_pes(b: &[u8]) -> Result<ParsedPes<'_>, &'static str> {
    if b.len() < 9 {
        return Err("PES shorter than its header");
    }
    if b[..3] != [0, 0, 1] {
        return Err("no PES start code");
    }
    if b[6] & 0xc0 != 0x80 {
        return Err("PES header marker bits wrong");
    }
    let flags = b[7] >> 6;
    let header_end = 9 + b[8] as usize;
    if header_end > b.len() {
        return Err("PES header longer than the PES");
    }
    let declared = usize::from(u16::from_be_bytes([b[4], b[5]]));
    let end = if declared == 0 {
        b.len()
    } else if 6 + declared <= b.len() {
        6 + declared
    } else {
        return Err("PES shorter than its declared length");
    };
    if end < header_end {
        return Err("PES header longer than the PES");
    }
    let ts = |at: usize| -> Result<u64, &'static str> {
        let t = b.get(at..at + 5).ok_or("timestamp past the PES header")?;
        Ok((u64::from(t[0] & 0x0e) << 29)
            | (u64::from(t[1]) << 22)
            | (u64::from(t[2] & 0xfe) << 14)
            | (u64::from(t[3]) << 7)
            | (u64::from(t[4]) >> 1))
    };
    let (pts, dts) = match flags {
        0b10 if header_end >= 14 => (Some(ts(9)?), None),
        0b11 if header_end >= 19 => (Some(ts(9)?), Some(ts(14)?)),
        0b00 => (None, None),
        _ => return Err("PTS/DTS flags do not fit the header"),
    };
    Ok((pts, dts, &b[header_end..end]))
}

/// CRC-32/MPEG-2 over `data`; 0 over a section that includes its CRC.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
#[path = "demux_tests.rs"]
mod tests;
