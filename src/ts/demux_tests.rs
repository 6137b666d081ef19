//! Unit tests of the TS demuxer over hand-built packets (the ffmpeg-made
//! reference comparisons are in tests/ts_demux.rs).

use super::*;

/// One TS packet: header, adaptation stuffing to fill, payload.
fn packet(pid: u16, pusi: bool, cc: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 184);
    let mut p = vec![
        SYNC,
        (u8::from(pusi) << 6) | (pid >> 8) as u8,
        pid as u8,
        0x10 | (cc & 0x0f),
    ];
    let stuffing = 184 - payload.len();
    if stuffing > 0 {
        p[3] |= 0x20;
        p.push((stuffing - 1) as u8);
        if stuffing > 1 {
            p.push(0);
            p.extend(std::iter::repeat_n(0xff, stuffing - 2));
        }
    }
    p.extend_from_slice(payload);
    assert_eq!(p.len(), PACKET_LEN);
    p
}

/// A PSI section with its CRC, after a zero pointer field.
fn section(table_id: u8, body: &[u8]) -> Vec<u8> {
    let len = 5 + body.len() + 4;
    let mut s = vec![
        table_id,
        0xb0 | (len >> 8) as u8,
        len as u8,
        0,
        1,
        0xc1,
        0,
        0,
    ];
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    let mut out = vec![0];
    out.extend(s);
    out
}

fn pat_pmt(streams: &[(u8, u16)]) -> Vec<u8> {
    let mut ts = packet(0, true, 0, &section(0, &[0, 1, 0xf0, 0x00]));
    let mut body = vec![0xe1, 0x00, 0xf0, 0x00];
    for &(st, pid) in streams {
        body.extend([st, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0]);
    }
    ts.extend(packet(0x1000, true, 0, &section(2, &body)));
    ts
}

fn stamp(prefix: u8, t: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((t >> 30) as u8 & 0x07) << 1) | 1,
        (t >> 22) as u8,
        (((t >> 15) as u8) << 1) | 1,
        (t >> 7) as u8,
        ((t as u8) << 1) | 1,
    ]
}

fn pes(stream_id: u8, pts: u64, dts: Option<u64>, es: &[u8], bounded: bool) -> Vec<u8> {
    let mut h = vec![0x80, if dts.is_some() { 0xc0 } else { 0x80 }];
    let mut fields = stamp(if dts.is_some() { 3 } else { 2 }, pts).to_vec();
    if let Some(d) = dts {
        fields.extend(stamp(1, d));
    }
    h.push(fields.len() as u8);
    h.extend(fields);
    let len = if bounded { h.len() + es.len() } else { 0 };
    let mut p = vec![0, 0, 1, stream_id, (len >> 8) as u8, len as u8];
    p.extend(h);
    p.extend_from_slice(es);
    p
}

/// Splits a PES into packets on `pid`, counters from `cc`.
fn packets(pid: u16, cc: &mut u8, pes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, piece) in pes.chunks(184).enumerate() {
        out.extend(packet(pid, i == 0, *cc, piece));
        *cc = (*cc + 1) & 0x0f;
    }
    out
}

const IDR: &[u8] = &[
    0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x65, 0x88, 0x84,
];
const P: &[u8] = &[0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x41, 0x9a, 0x02];

fn adts(payload_len: usize) -> Vec<u8> {
    let len = 7 + payload_len;
    // AAC LC, 48 kHz (index 3), stereo, no CRC.
    let mut f = vec![
        0xff,
        0xf1,
        0x4c,
        0x80 | (len >> 11) as u8,
        (len >> 3) as u8,
        ((len as u8 & 7) << 5) | 0x1f,
        0xfc,
    ];
    f.extend(std::iter::repeat_n(0x21, payload_len));
    f
}

fn stream() -> Vec<u8> {
    let mut ts = pat_pmt(&[(0x1b, 0x100), (0x0f, 0x101), (0x24, 0x102)]);
    let (mut vcc, mut acc) = (0, 0);
    let big: Vec<u8> = IDR
        .iter()
        .copied()
        .chain(std::iter::repeat_n(7, 500))
        .collect();
    ts.extend(packets(
        0x100,
        &mut vcc,
        &pes(0xe0, 9000, Some(6000), &big, false),
    ));
    let two: Vec<u8> = adts(100).into_iter().chain(adts(50)).collect();
    ts.extend(packets(0x101, &mut acc, &pes(0xc0, 8000, None, &two, true)));
    ts.extend(packets(
        0x100,
        &mut vcc,
        &pes(0xe0, 12000, Some(9000), P, false),
    ));
    ts
}

#[test]
fn finds_units_with_times_and_keyframes() {
    let mut d = Demuxer::new();
    let mut units = d.push(&stream());
    units.extend(d.flush());
    let summary: Vec<_> = units
        .iter()
        .map(|u| {
            (
                u.pid,
                u.kind,
                u.pts_90k,
                u.dts_90k,
                u.keyframe,
                u.data.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0x101, Kind::Audio, 8000, 8000, true, 107),
            (0x101, Kind::Audio, 8000 + 1920, 8000 + 1920, true, 57),
            (0x100, Kind::Video, 9000, 6000, true, IDR.len() + 500),
            (0x100, Kind::Video, 12000, 9000, false, P.len()),
        ]
    );
    assert_eq!(units[3].data, P);
    assert_eq!(d.stats().errors(), 0, "{:?}", d.last_error());
    let hevc = d.streams().into_iter().find(|s| s.pid == 0x102).unwrap();
    assert_eq!(
        (hevc.stream_type, hevc.supported),
        (STREAM_TYPE_HEVC, false)
    );
}

#[test]
fn any_cut_gives_the_same_units() {
    let ts = stream();
    let mut whole = Demuxer::new();
    let mut want = whole.push(&ts);
    want.extend(whole.flush());
    for chunk in [1, 7, 187, 189, 500] {
        let mut d = Demuxer::new();
        let mut got = Vec::new();
        for piece in ts.chunks(chunk) {
            got.extend(d.push(piece));
        }
        got.extend(d.flush());
        assert_eq!(got, want, "chunk {chunk}");
        assert_eq!(d.stats().errors(), 0, "chunk {chunk}");
    }
}

#[test]
fn garbage_before_and_between_packets_is_skipped_and_counted() {
    let ts = stream();
    let mut bad = vec![0x47, 1, 2, 3, 0x47, 9];
    bad.extend_from_slice(&ts[..188 * 2]);
    bad.extend_from_slice(&[0xaa; 30]);
    bad.extend_from_slice(&ts[188 * 2..]);
    let mut d = Demuxer::new();
    let mut got = d.push(&bad);
    got.extend(d.flush());
    assert_eq!(got.len(), 4);
    assert_eq!(d.stats().sync_losses, 2);
    assert_eq!(d.stats().bytes_skipped, 36);
    assert!(matches!(d.last_error(), Some(TsError::SyncLost(30))));
}

#[test]
fn a_lost_packet_drops_its_unit_and_counts_the_gap() {
    let ts = stream();
    // Packets: PAT, PMT, then the IDR over 3 packets; drop its second.
    let mut bad = ts[..188 * 3].to_vec();
    bad.extend_from_slice(&ts[188 * 4..]);
    let mut d = Demuxer::new();
    let mut got = d.push(&bad);
    got.extend(d.flush());
    assert_eq!(got.len(), 3, "the IDR is dropped, the rest kept");
    assert!(got.iter().all(|u| !u.keyframe || u.kind == Kind::Audio));
    assert_eq!(d.stats().cc_errors, 1);
    assert_eq!(d.stats().pes_errors, 1);
    assert!(matches!(
        d.last_error(),
        Some(TsError::Pes { pid: 0x100, .. })
    ));
}

#[test]
fn a_bad_crc_is_counted_and_the_program_not_learnt() {
    let mut ts = stream();
    ts[188 * 2 - 6] ^= 0xff; // inside the PMT section (packet tail)
    let mut d = Demuxer::new();
    let mut got = d.push(&ts);
    got.extend(d.flush());
    assert!(got.is_empty());
    assert_eq!(d.stats().psi_errors, 1);
}

#[test]
fn adts_header_and_config() {
    let h = adts_header(&adts(10)).unwrap();
    assert_eq!((h.profile, h.sampling_index, h.channels), (1, 3, 2));
    assert_eq!((h.header_len, h.frame_len), (7, 17));
    assert_eq!(h.sample_rate(), Some(48000));
    // AAC LC 48 kHz stereo: 0x11 0x90.
    assert_eq!(h.audio_specific_config(), [0x11, 0x90]);
    assert_eq!(adts_header(&[0xff, 0xf1, 0, 0, 0, 0]), None);
}

#[test]
fn annexb_nals_split_on_three_and_four_byte_start_codes() {
    let nals: Vec<&[u8]> = annexb_nals(IDR).collect();
    assert_eq!(
        nals,
        vec![&[0x09, 0xf0][..], &[0x67, 0x42], &[0x65, 0x88, 0x84]]
    );
}

#[test]
fn garbage_never_panics() {
    let mut x = 0x1234_5678u32;
    let mut d = Demuxer::new();
    let mut base = stream();
    for round in 0..200 {
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let at = x as usize % base.len();
            base[at] = (x >> 8) as u8;
        }
        let _ = d.push(&base[..(round * 37) % base.len()]);
    }
    let _ = d.flush();
}
