//! Renderers over a load `Summary`: a text table for people, JSON for
//! machines, `.hgrm` percentile distributions for the HdrHistogram plotter
//! and an SVG of latency curves and the run's timeline. Pure over `&Summary`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::load::aggregate::Summary;
use crate::load::hist::{Hist, MICROS_PER_MS, Percentiles, SIGFIG};
use crate::load::viewer_summary::Viewers;

mod svg;
pub use svg::write_svg;

/// The text summary: outcomes, latency percentiles (from the actual and from
/// the scheduled start), lag, callbacks, traffic and stream coverage.
pub fn text(s: &Summary, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "pushprobe load: {}", s.target)?;
    write!(
        out,
        "started {}, {:.1} s",
        started(s.started_unix),
        s.duration_s
    )?;
    match s.shards.as_slice() {
        [] => {}
        [one] => write!(out, ", shard {}/{}", one.index, one.count)?,
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|x| format!("{}/{}", x.index, x.count))
                .collect();
            write!(out, ", shards {}", list.join(" "))?
        }
    }
    if s.runs > 1 {
        write!(out, ", merged from {} runs", s.runs)?;
    }
    writeln!(out)?;
    write!(
        out,
        "publishers: {} measured of {} planned",
        s.publishers, s.publishers_planned
    )?;
    if s.interrupted_by_user {
        write!(out, " (interrupted by user)")?;
    }
    writeln!(out)?;

    writeln!(out, "\noutcomes")?;
    for (o, n) in s.outcomes.iter().filter(|(_, n)| **n > 0) {
        writeln!(out, "  {:<24}{:>10}", o.name(), n)?;
    }
    if s.outcomes.values().all(|n| *n == 0) {
        writeln!(out, "  (none)")?;
    }
    if s.reconnects > 0 {
        writeln!(out, "reconnects: {} (--reconnect)", s.reconnects)?;
    }
    if let Some(t) = &s.srt {
        writeln!(
            out,
            "srt: {} publishers, {} packets sent, {} retransmitted, {} dropped (too late), {} reported lost",
            t.publishers,
            t.packets_sent,
            t.packets_retransmitted,
            t.packets_dropped,
            t.packets_lost
        )?;
    }
    crate::load::by_address::write_text(out, &s.by_address)?;
    let e = &s.expected_refusals;
    if e.refused > 0 || e.accepted > 0 {
        let how: Vec<String> = e
            .outcomes
            .iter()
            .map(|(o, n)| format!("{} {n}", o.name()))
            .collect();
        let verdict = if e.accepted > 0 {
            "ACCEPTED"
        } else {
            "accepted"
        };
        writeln!(
            out,
            "expected refusals (duplicates): {} refused, {} {verdict} ({})",
            e.refused,
            e.accepted,
            how.join(", ")
        )?;
    }

    writeln!(
        out,
        "\n{:<26}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "latency, ms", "count", "p50", "p90", "p99", "p99.9", "max"
    )?;
    for (title, map) in [
        ("from start", &s.phases_ms),
        ("from schedule", &s.phases_from_schedule_ms),
    ] {
        writeln!(out, "{title}")?;
        let rows: Vec<_> = Summary::in_phase_order(map)
            .into_iter()
            .filter(|(_, p)| p.count > 0)
            .collect();
        if rows.is_empty() {
            writeln!(out, "  (none)")?;
        }
        for (name, p) in rows {
            row(out, name, p)?;
        }
    }
    writeln!(out)?;
    row(out, "lag behind real time", &s.lag_ms)?;

    let c = &s.callbacks.counts;
    if s.callbacks.measured {
        writeln!(
            out,
            "\ncallbacks: push {}, interrupt {}, missing {}, duplicate {}, forged {}, unmatched {}",
            c.push, c.interrupt, c.missing, c.duplicate, c.forged, c.unmatched
        )?;
    } else {
        writeln!(out, "\ncallbacks: not measured (use --callback-listen)")?;
    }
    for (name, p) in [
        ("push latency", &s.callbacks.latency_ms.push),
        ("interrupt latency", &s.callbacks.latency_ms.interrupt),
    ] {
        if p.count > 0 {
            row(out, name, p)?;
        }
    }

    write!(
        out,
        "\ntraffic: {} sent, {} aggregate",
        bytes(s.bytes_sent),
        bits(s.bitrate_bps)
    )?;
    if s.stream_seconds > 0.0 {
        let per_stream = s.bytes_sent as f64 * 8.0 / s.stream_seconds;
        write!(
            out,
            ", {:.0} stream-seconds ({} per stream)",
            s.stream_seconds,
            bits(per_stream)
        )?;
    }
    writeln!(out)?;
    let cov = &s.coverage;
    writeln!(
        out,
        "streams: {} covered in {} range(s); overlaps: {}; gaps: {}",
        cov.covered,
        s.streams.len(),
        ranges(&cov.overlaps),
        ranges(&cov.gaps)
    )?;
    if let Some(v) = &s.viewers {
        viewers_text(v, out)?;
    }
    Ok(())
}

/// The viewers' section: counts, failures by reason, frames, first frame
/// and push-to-play latency percentiles.
fn viewers_text(v: &Viewers, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "\nviewers ({}, {} per stream, {}): {} planned, {} measured, {} started, {} kept up, {} failed",
        v.mode, v.per_stream, v.play_target, v.planned, v.measured, v.started, v.kept_up, v.failed
    )?;
    let list = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !v.failures.is_empty() {
        writeln!(out, "  failures: {}", list(&v.failures))?;
    }
    writeln!(out, "  latency method: {}", list(&v.latency_method))?;
    let f = &v.frames;
    writeln!(
        out,
        "  frames: video {} (keyframes {}), audio {}, {} received, {:.0} viewer-seconds",
        f.video,
        f.keyframes,
        f.audio,
        bytes(f.media_bytes),
        v.play_seconds
    )?;
    writeln!(
        out,
        "  stalls {}, discontinuities {}, stamped {}, lost {}, duplicated {}, reordered {}, negative latency {}",
        f.stalls,
        f.discontinuities,
        f.stamped,
        f.lost,
        f.duplicated,
        f.reordered,
        f.negative_latency
    )?;
    if f.catchup > 0 {
        writeln!(
            out,
            "  catch-up at join: {} frames pushed before their viewer asked (the server's cache), not in the latency",
            f.catchup
        )?;
    }
    if v.viewer_max_latency_ms.count > 0 {
        writeln!(
            out,
            "  behind real time (a live frame over 1 s late): {} of {} viewers; the slowest viewer's worst frame {:.1} ms",
            v.late, v.viewer_max_latency_ms.count, v.viewer_max_latency_ms.max
        )?;
    }
    writeln!(
        out,
        "  {:<24}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "ms", "count", "p50", "p90", "p99", "p99.9", "max"
    )?;
    row(out, "first frame", &v.first_frame_ms)?;
    row(
        out,
        "first frame (schedule)",
        &v.first_frame_from_schedule_ms,
    )?;
    row(out, "push-to-play latency", &v.latency_ms)?;
    row(out, "worst frame per viewer", &v.viewer_max_latency_ms)
}

fn row(out: &mut impl Write, name: &str, p: &Percentiles) -> io::Result<()> {
    writeln!(
        out,
        "  {:<24}{:>8}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}",
        name, p.count, p.p50, p.p90, p.p99, p.p99_9, p.max
    )
}

fn started(unix: u64) -> String {
    // humantime refuses years past 9999 with fmt::Error; a hostile report
    // must not make us panic in `to_string`.
    const YEAR_10000: u64 = 253_402_300_800;
    match UNIX_EPOCH.checked_add(Duration::from_secs(unix)) {
        Some(t) if unix < YEAR_10000 => humantime::format_rfc3339_seconds(t).to_string(),
        _ => format!("{unix} (Unix seconds)"),
    }
}

fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.2} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.2} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

fn bits(per_s: f64) -> String {
    match per_s {
        b if b >= 1e9 => format!("{:.2} Gbit/s", b / 1e9),
        b if b >= 1e6 => format!("{:.2} Mbit/s", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kbit/s", b / 1e3),
        b => format!("{b:.0} bit/s"),
    }
}

fn ranges(r: &[crate::load::aggregate::IndexRange]) -> String {
    if r.is_empty() {
        return "none".to_owned();
    }
    let shown: Vec<String> = r
        .iter()
        .take(5)
        .map(|r| {
            if r.start == r.end {
                r.start.to_string()
            } else {
                format!("{}-{}", r.start, r.end)
            }
        })
        .collect();
    let more = if r.len() > 5 {
        format!(" and {} more", r.len() - 5)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

/// The JSON report: the serialized `Summary`, pretty-printed.
pub fn json(s: &Summary, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, s)?;
    writeln!(out)
}

/// Writes one percentile distribution per non-empty histogram into `dir`
/// (created if missing): `<phase>.hgrm`, `<phase>.from_schedule.hgrm`,
/// `lag.hgrm`, `callback_push.hgrm`, `callback_interrupt.hgrm` and, with
/// viewers, `viewer_first_frame.hgrm`, `viewer_first_frame.from_schedule.hgrm`,
/// `viewer_latency.hgrm`. Returns the
/// paths written, in that order.
pub fn write_hgrm(s: &Summary, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let h = &s.histograms;
    let mut files: Vec<(String, &Hist)> = Vec::new();
    for (name, hist) in Summary::in_phase_order(&h.phases) {
        files.push((format!("{name}.hgrm"), hist));
    }
    for (name, hist) in Summary::in_phase_order(&h.phases_from_schedule) {
        files.push((format!("{name}.from_schedule.hgrm"), hist));
    }
    files.push(("lag.hgrm".to_owned(), &h.lag));
    files.push(("callback_push.hgrm".to_owned(), &h.callback_push));
    files.push(("callback_interrupt.hgrm".to_owned(), &h.callback_interrupt));
    if let Some(v) = &s.viewers {
        let vh = &v.histograms;
        files.push(("viewer_first_frame.hgrm".to_owned(), &vh.first_frame));
        files.push((
            "viewer_first_frame.from_schedule.hgrm".to_owned(),
            &vh.first_frame_from_schedule,
        ));
        files.push(("viewer_latency.hgrm".to_owned(), &vh.latency));
    }

    let mut written = Vec::new();
    for (file, hist) in files {
        // Names come from the report's keys: only plain ones become files.
        let plain = file
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if hist.is_empty() || !plain || file.starts_with('.') {
            continue;
        }
        let path = dir.join(file);
        let mut out = io::BufWriter::new(std::fs::File::create(&path)?);
        percentile_distribution(hist, &mut out)?;
        out.flush()?;
        written.push(path);
    }
    Ok(written)
}

/// HdrHistogram's `outputPercentileDistribution(out, 5, 1000.0)` (Java), values
/// in ms: the format the HdrHistogram plotter reads.
pub fn percentile_distribution(hist: &Hist, out: &mut impl Write) -> io::Result<()> {
    let h = hist.inner();
    let digits = usize::from(SIGFIG);
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total = total.saturating_add(v.count_since_last_iteration());
            let value = v.value_iterated_to() as f64 / MICROS_PER_MS;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                writeln!(
                    out,
                    "{value:12.digits$} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(out, "{value:12.digits$} {q:2.12} {total:10}")?;
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            h.mean() / MICROS_PER_MS,
            h.stdev() / MICROS_PER_MS,
            h.max() as f64 / MICROS_PER_MS,
        )
    };
    writeln!(
        out,
        "#[Mean    = {mean:12.digits$}, StdDeviation   = {stdev:12.digits$}]"
    )?;
    writeln!(
        out,
        "#[Max     = {max:12.digits$}, Total count    = {:12}]",
        h.len()
    )?;
    // Java's subBucketCount: the power of two at or above 2 * 10^digits.
    let sub_buckets = (2 * 10u64.pow(u32::from(SIGFIG))).next_power_of_two();
    writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {sub_buckets:12}]",
        h.buckets()
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::load::aggregate::tests::{meta, record};
    use crate::load::aggregate::{Aggregator, CallbackCounts};
    use crate::load::record::{CallbackKind, Sample};

    pub(crate) fn summary() -> Summary {
        let mut a = Aggregator::new();
        for i in 0..200 {
            a.add(&record(i));
        }
        a.add_callback_latency(CallbackKind::Push, Duration::from_millis(80));
        a.set_callback_counts(CallbackCounts {
            push: 1,
            missing: 179,
            ..Default::default()
        });
        for t in 0..20 {
            let publishing = (t * 10).min(180);
            a.add_sample(Sample {
                t_s: t as f64,
                publishing,
                failed: t.min(20),
                bitrate_bps: publishing * 500_000,
            });
        }
        a.summary(meta(Some((1, 4)), 200))
    }

    #[test]
    fn text_has_every_section() {
        let mut out = Vec::new();
        text(&summary(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        for want in [
            "pushprobe load: rtmp://push.example.com/live/",
            "started 2023-11-14T22:13:20Z, 20.0 s, shard 1/4",
            "publishers: 200 measured of 200 planned",
            "  accepted                       180",
            "  handshake_failed                20",
            "from start",
            "from schedule",
            "  dns                          200     1.000     1.000     1.000     1.000     1.000",
            "lag behind real time",
            "callbacks: push 1, interrupt 0, missing 179",
            "push latency",
            "traffic: 219.90 kB sent, 88.0 kbit/s aggregate, 1800 stream-seconds",
            "streams: 200 covered in 1 range(s); overlaps: none; gaps: none",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert!(!out.contains("  tls "), "empty phases are left out:\n{out}");
        assert!(
            !out.contains("timeout"),
            "zero outcomes are left out:\n{out}"
        );
    }

    #[test]
    fn text_says_when_callbacks_were_not_measured() {
        let mut a = Aggregator::new();
        for i in 0..5 {
            a.add(&record(i));
        }
        let mut out = Vec::new();
        text(&a.summary(meta(None, 5)), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("\ncallbacks: not measured (use --callback-listen)\n"),
            "{out}"
        );
        assert!(!out.contains("callbacks: push"), "{out}");

        a.set_callback_counts(CallbackCounts::default());
        let mut out = Vec::new();
        text(&a.summary(meta(None, 5)), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("callbacks: push 0, interrupt 0, missing 0"),
            "{out}"
        );
    }

    #[test]
    fn text_survives_hostile_numbers() {
        let mut s = summary();
        s.started_unix = u64::MAX;
        s.expected_refusals.refused = u64::MAX;
        s.expected_refusals.accepted = u64::MAX;
        s.bytes_sent = u64::MAX;
        let mut out = Vec::new();
        text(&s, &mut out).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("18446744073709551615 (Unix seconds)")
        );
    }

    #[test]
    fn json_is_the_summary() {
        let s = summary();
        let mut out = Vec::new();
        json(&s, &mut out).unwrap();
        let back: Summary = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
    }

    /// Parses `.hgrm` rows back: (value, percentile, total count).
    fn parse_rows(text: &str) -> Vec<(f64, f64, u64)> {
        text.lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn hgrm_files_in_hdrhistogram_format() {
        let s = summary();
        let dir = tempfile::tempdir().unwrap();
        let files = write_hgrm(&s, dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"dns.hgrm".to_owned()));
        assert!(names.contains(&"publish.from_schedule.hgrm".to_owned()));
        assert!(names.contains(&"lag.hgrm".to_owned()));
        assert!(names.contains(&"callback_push.hgrm".to_owned()));
        assert!(
            !names.contains(&"tls.hgrm".to_owned()),
            "empty histograms get no file"
        );
        assert!(!names.contains(&"callback_interrupt.hgrm".to_owned()));

        let text = std::fs::read_to_string(dir.path().join("publish.hgrm")).unwrap();
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        let rows = parse_rows(&text);
        assert!(rows.len() > 10);
        assert!(
            rows.windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1 && w[0].2 <= w[1].2)
        );
        let count = s.histograms.phases["publish"].count();
        let last = rows.last().unwrap();
        assert_eq!((last.1, last.2), (1.0, count));
        assert_eq!(last.0, s.phases_ms["publish"].max);
        let footer: Vec<&str> = text.lines().filter(|l| l.starts_with("#[")).collect();
        assert_eq!(footer.len(), 3);
        assert!(footer[0].starts_with("#[Mean    = "), "{}", footer[0]);
        assert!(
            footer[1].ends_with(&format!("Total count    = {count:12}]")),
            "{}",
            footer[1]
        );
        assert!(
            footer[2].ends_with("SubBuckets     =         2048]"),
            "{}",
            footer[2]
        );
    }

    #[test]
    fn hgrm_rows_match_javas_layout() {
        let mut h = Hist::new();
        for ms in 1..=4u64 {
            h.record(Duration::from_millis(ms));
        }
        let mut out = Vec::new();
        percentile_distribution(&h, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "       1.000 0.000000000000          1           1.00"
        );
        assert_eq!(
            lines[3],
            "       1.000 0.100000000000          1           1.11"
        );
        assert_eq!(
            lines.iter().rfind(|l| !l.starts_with('#')).unwrap(),
            &"       4.001 1.000000000000          4"
        );
        assert_eq!(
            lines[lines.len() - 2],
            "#[Max     =        4.001, Total count    =            4]"
        );
    }

    #[test]
    fn hgrm_skips_names_that_are_not_plain() {
        let mut s = summary();
        let dns = s.histograms.phases["dns"].clone();
        s.histograms.phases.insert("../escape".to_owned(), dns);
        let dir = tempfile::tempdir().unwrap();
        let files = write_hgrm(&s, &dir.path().join("sub")).unwrap();
        assert!(files.iter().all(|p| p.starts_with(dir.path().join("sub"))));
        assert!(!dir.path().join("escape.hgrm").exists());
    }
}
