//! `ts::demux` against ffmpeg as the independent reference: ffmpeg remuxes
//! the FLV fixtures to MPEG-TS (`-c copy -f mpegts`), ffprobe lists that
//! file's packets, and the demuxer must find the same access units with the
//! same PTS/DTS and keyframes, however the bytes are cut when fed to it.

mod common;

use std::process::Command;
use std::time::Duration;

use pushprobe::ts::demux::{Demuxer, Kind};

/// One packet as ffprobe lists it: (video?, pts, dts, keyframe).
type Row = (bool, u64, u64, bool);

/// ffmpeg remuxes `fixture` to TS; returns the TS bytes and ffprobe's rows.
fn reference(fixture: &str) -> Option<(Vec<u8>, Vec<Row>)> {
    if !common::have("ffmpeg") || !common::have("ffprobe") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("out.ts");
    let o = common::run(
        Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-i"])
            .arg(common::fixture(fixture))
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(&ts),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "ffmpeg: {}", common::text(&o));
    let o = common::run(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries"])
            .args(["packet=codec_type,pts,dts,flags", "-of", "csv=p=0"])
            .arg(&ts),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "ffprobe: {}", common::text(&o));
    let rows = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            if f.len() < 4 || !(f[0] == "video" || f[0] == "audio") {
                return None; // side-data lines
            }
            Some((
                f[0] == "video",
                f[1].parse().ok()?,
                f[2].parse().ok()?,
                f[3].starts_with('K'),
            ))
        })
        .collect();
    Some((std::fs::read(&ts).unwrap(), rows))
}

fn demux(ts: &[u8], chunk: usize) -> (Vec<Row>, Demuxer) {
    let mut d = Demuxer::new();
    let mut units = Vec::new();
    for piece in ts.chunks(chunk) {
        units.extend(d.push(piece));
    }
    units.extend(d.flush());
    let rows = units
        .iter()
        .map(|u| (u.kind == Kind::Video, u.pts_90k, u.dts_90k, u.keyframe))
        .collect();
    (rows, d)
}

/// The same unit: video exactly; audio within one 90 kHz tick, because
/// frames after the first of a PES carry no PTS of their own and ffmpeg's
/// parser places them by its own rounding (`av_add_stable`), the demuxer at
/// the nearest tick of PES PTS + n x 1024 samples.
fn same(g: &Row, w: &Row) -> bool {
    let tick = if g.0 { 0 } else { 1 };
    g.0 == w.0 && g.3 == w.3 && g.1.abs_diff(w.1) <= tick && g.2.abs_diff(w.2) <= tick
}

fn assert_same(g: &[Row], w: &[Row], what: &str) {
    assert_eq!(g.len(), w.len(), "{what}: unit count");
    if let Some(i) = (0..g.len()).find(|&i| !same(&g[i], &w[i])) {
        panic!("{what}: unit {i}: got {:?}, ffprobe {:?}", g[i], w[i]);
    }
}

fn per_kind(rows: &[Row], video: bool) -> Vec<Row> {
    rows.iter().copied().filter(|r| r.0 == video).collect()
}

fn check(fixture: &str) {
    let Some((ts, want)) = reference(fixture) else {
        return;
    };
    assert!(want.len() > 100, "ffprobe listed {} packets", want.len());
    // Whole packets, odd cuts (partial packets kept between calls), one byte
    // at a time on a prefix.
    for chunk in [188 * 7, 1000, 1] {
        let input = if chunk == 1 {
            &ts[..188 * 400]
        } else {
            &ts[..]
        };
        let (got, d) = demux(input, chunk);
        assert_eq!(
            d.stats().errors(),
            0,
            "{fixture} chunk {chunk}: {:?}",
            d.last_error()
        );
        for video in [true, false] {
            let (g, w) = (per_kind(&got, video), per_kind(&want, video));
            if chunk == 1 {
                // A prefix: the units it completed are ffprobe's first ones.
                assert!(!g.is_empty(), "{fixture}: nothing from the prefix");
                let n = g.len() - 1;
                assert_same(&g[..n], &w[..n], &format!("{fixture} byte by byte"));
            } else {
                assert_same(&g, &w, &format!("{fixture} chunk {chunk} video={video}"));
            }
        }
    }
}

#[test]
fn sd_fixture_matches_ffprobe() {
    check("sd-360p.flv");
}

#[test]
fn low_fixture_matches_ffprobe() {
    check("low-240p.flv");
}

/// Damage in the middle (a cut of 1000 bytes, a run of garbage): the
/// demuxer counts it, finds sync again, and the units after the damage are
/// still ffprobe's.
#[test]
fn damage_is_counted_and_recovered() {
    let Some((ts, want)) = reference("sd-360p.flv") else {
        return;
    };
    let cut = 188 * 1500 + 77;
    let mut bad = ts[..cut].to_vec();
    bad.extend_from_slice(&[0x47, 0, 0, 0x47, 0x13, 0x37]);
    bad.extend_from_slice(&ts[cut + 1000..]);
    let (got, d) = demux(&bad, 4096);
    let s = d.stats();
    assert_eq!(s.sync_losses, 1, "{s:?}");
    assert!(s.cc_errors >= 1, "{s:?}");
    assert!(s.bytes_skipped > 0 && s.bytes_skipped < 188 * 2, "{s:?}");
    // Every unit it output is one ffprobe lists, and it lost only a few.
    for r in &got {
        assert!(
            want.iter().any(|w| same(r, w)),
            "{r:?} not in ffprobe's packets"
        );
    }
    assert!(
        got.len() + 20 >= want.len(),
        "{} of {}",
        got.len(),
        want.len()
    );
    for video in [true, false] {
        let last = per_kind(&want, video).pop().unwrap();
        assert!(
            got.iter().any(|g| same(g, &last)),
            "the stream's end was not found again"
        );
    }
}

/// The SRT ingest's TS -> FLV conversion (for play-out) makes an FLV that
/// ffprobe reads as the fixture: H.264 640x360 and AAC, every video frame,
/// the same keyframes.
#[test]
fn ts_converted_to_flv_reads_back_in_ffprobe() {
    use pushprobe::ingest::srt::flv::TsToFlv;
    let Some((ts, want)) = reference("sd-360p.flv") else {
        return;
    };
    let mut d = Demuxer::new();
    let mut units = d.push(&ts);
    units.extend(d.flush());
    let mut c = TsToFlv::new();
    let mut flv = vec![b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0];
    for u in &units {
        for t in c.convert(u) {
            let len = t.body.len() as u32;
            let ts = t.timestamp_ms;
            flv.push(t.type_id);
            flv.extend_from_slice(&len.to_be_bytes()[1..]);
            flv.extend_from_slice(&ts.to_be_bytes()[1..]);
            flv.push((ts >> 24) as u8);
            flv.extend_from_slice(&[0, 0, 0]);
            flv.extend_from_slice(&t.body);
            flv.extend_from_slice(&(len + 11).to_be_bytes());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("back.flv");
    std::fs::write(&path, &flv).unwrap();
    let o = common::run(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries"])
            .args(["stream=codec_name,width,height:packet=codec_type,flags"])
            .args(["-of", "csv=p=0"])
            .arg(&path),
        Duration::from_secs(60),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        common::text(&o)
    );
    assert!(out.contains("h264,640,360"), "{out}");
    assert!(out.lines().any(|l| l == "aac"), "{out}");
    let count = |kind: &str, key: bool| {
        out.lines()
            .filter(|l| l.starts_with(kind) && (!key || l.contains(",K")))
            .count()
    };
    let want_count = |video: bool, key: bool| {
        want.iter()
            .filter(|r| r.0 == video && (!key || r.3))
            .count()
    };
    assert_eq!(count("video", false), want_count(true, false));
    assert_eq!(count("video", true), want_count(true, true));
    assert_eq!(count("audio", false), want_count(false, false));
}
