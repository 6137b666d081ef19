//! Merging load reports: the exact sum of summaries written by shards of one
//! run (or by separate runs), reading reports from files, and the `pushprobe
//! report merge` command (its args and main, to move to the command layer).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use std::collections::BTreeMap;

use super::aggregate::{Header, Parts, finish, finite};
use super::hist::Hist;
use super::record::Sample;
use super::summary::{FORMAT, Histograms, Summary, VERSION};
use super::targets::Shard;
use crate::report;

/// Why summaries could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error(
        "report {index} has format {format:?} version {version}; this build reads {FORMAT:?} version {VERSION}"
    )]
    Version {
        index: usize,
        format: String,
        version: u32,
    },
    #[error("histogram {name} of report {index} does not add: {source}")]
    Histogram {
        index: usize,
        name: String,
        source: hdrhistogram::AdditionError,
    },
}

/// Adds summaries of shards (or of separate runs) into one: histograms added
/// exactly, counts summed, timelines summed per second of wall time, stream
/// coverage joined with overlaps flagged in `coverage.overlaps`.
pub fn merge(summaries: &[Summary]) -> Result<Summary, MergeError> {
    if summaries.is_empty() {
        return Err(MergeError::Empty);
    }
    for (index, s) in summaries.iter().enumerate() {
        if s.format != FORMAT || s.version != VERSION {
            return Err(MergeError::Version {
                index,
                format: s.format.clone(),
                version: s.version,
            });
        }
    }
    let started = summaries.iter().map(|s| s.started_unix).min().unwrap_or(0);
    let mut parts = Parts::new();
    let mut timeline: BTreeMap<u64, Sample> = BTreeMap::new();
    for (index, s) in summaries.iter().enumerate() {
        parts.publishers = parts.publishers.saturating_add(s.publishers);
        for (o, n) in &s.outcomes {
            let c = parts.outcomes.entry(*o).or_default();
            *c = c.saturating_add(*n);
        }
        let e = &mut parts.expected;
        e.refused = e.refused.saturating_add(s.expected_refusals.refused);
        e.accepted = e.accepted.saturating_add(s.expected_refusals.accepted);
        for (o, n) in &s.expected_refusals.outcomes {
            let c = e.outcomes.entry(*o).or_default();
            *c = c.saturating_add(*n);
        }
        add_hists(&mut parts.hists, &s.histograms, index)?;
        parts.callbacks.add(&s.callbacks.counts);
        parts.callbacks_measured |= s.callbacks.measured;
        parts.bytes_sent = parts.bytes_sent.saturating_add(s.bytes_sent);
        parts.stream_seconds += s.stream_seconds;
        parts.reconnects = parts.reconnects.saturating_add(s.reconnects);
        if let Some(t) = &s.srt {
            parts.srt.get_or_insert_default().add(t);
        }
        super::by_address::merge(&mut parts.by_address, &s.by_address);
        parts.ranges.extend_from_slice(&s.streams);
        parts.overlaps.extend_from_slice(&s.coverage.overlaps);
        add_timeline(&mut timeline, &s.timeline, s.started_unix - started);
        if let Some(v) = &s.viewers {
            parts
                .viewers
                .get_or_insert_with(Default::default)
                .merge(v)
                .map_err(|(name, source)| MergeError::Histogram {
                    index,
                    name: name.to_owned(),
                    source,
                })?;
        }
    }
    parts.timeline = timeline.into_values().collect();

    let end = summaries
        .iter()
        .map(|s| s.started_unix as f64 + s.duration_s)
        .fold(started as f64, f64::max);
    let mut targets: Vec<&str> = Vec::new();
    for s in summaries {
        if !targets.contains(&s.target.as_str()) {
            targets.push(&s.target);
        }
    }
    let mut shards: Vec<Shard> = summaries
        .iter()
        .flat_map(|s| s.shards.iter().copied())
        .collect();
    shards.sort_unstable();
    let header = Header {
        started_unix: started,
        duration_s: finite(end - started as f64),
        target: targets.join(" | "),
        shards,
        runs: summaries.iter().fold(0u64, |n, s| n.saturating_add(s.runs)),
        interrupted_by_user: summaries.iter().any(|s| s.interrupted_by_user),
        publishers_planned: summaries
            .iter()
            .fold(0u64, |n, s| n.saturating_add(s.publishers_planned)),
    };
    Ok(finish(&parts, header))
}

fn add_hists(into: &mut Histograms, from: &Histograms, index: usize) -> Result<(), MergeError> {
    let add = |into: &mut Hist, from: &Hist, name: &str| {
        into.add(from).map_err(|source| MergeError::Histogram {
            index,
            name: name.to_owned(),
            source,
        })
    };
    for (name, h) in &from.phases {
        add(into.phases.entry(name.clone()).or_default(), h, name)?;
    }
    for (name, h) in &from.phases_from_schedule {
        add(
            into.phases_from_schedule.entry(name.clone()).or_default(),
            h,
            &format!("{name}.from_schedule"),
        )?;
    }
    add(&mut into.lag, &from.lag, "lag")?;
    add(
        &mut into.callback_push,
        &from.callback_push,
        "callback_push",
    )?;
    add(
        &mut into.callback_interrupt,
        &from.callback_interrupt,
        "callback_interrupt",
    )
}

/// Adds one run's samples into per-second buckets of wall time since
/// `offset_s` before the run started. Within one run, the last sample of a
/// second stands for it (the counts are gauges); across runs they add.
fn add_timeline(into: &mut BTreeMap<u64, Sample>, samples: &[Sample], offset_s: u64) {
    let mut own: BTreeMap<u64, Sample> = BTreeMap::new();
    for s in samples {
        // `as` saturates: a negative or NaN time lands in second 0.
        let second = (s.t_s.floor() as u64).saturating_add(offset_s);
        own.insert(second, *s);
    }
    for (second, s) in own {
        let b = into.entry(second).or_insert(Sample {
            t_s: second as f64,
            publishing: 0,
            failed: 0,
            bitrate_bps: 0,
        });
        b.publishing = b.publishing.saturating_add(s.publishing);
        b.failed = b.failed.saturating_add(s.failed);
        b.bitrate_bps = b.bitrate_bps.saturating_add(s.bitrate_bps);
    }
}

/// Why a file is not a report we can merge. Always names the file; the
/// underlying error is the `source`, printed once by `{:#}`.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    // The cause is the error's source: `{:#}` prints it once, after a colon.
    #[error("{}: cannot read", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not JSON", path.display())]
    NotJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: not a pushprobe load report: {reason}", path.display())]
    NotReport { path: PathBuf, reason: String },
}

/// Reads one JSON report.
pub fn read_summary(path: &Path) -> Result<Summary, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_summary(&text).map_err(|e| match e {
        ParseError::NotJson(source) => ReadError::NotJson {
            path: path.to_owned(),
            source,
        },
        ParseError::NotReport(reason) => ReadError::NotReport {
            path: path.to_owned(),
            reason,
        },
    })
}

/// Why a report's text is not a report we can merge; [`read_summary`] adds
/// the file name.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("not a pushprobe load report: {0}")]
    NotReport(String),
}

/// Parses the text of one JSON report (what [`read_summary`] does after
/// reading the file): the format and version are checked first, then the
/// whole layout, histograms and phase names included.
pub fn parse_summary(text: &str) -> Result<Summary, ParseError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(ParseError::NotJson)?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(ParseError::NotReport(format!(
            "no \"format\": \"{FORMAT}\" field"
        )));
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(ParseError::NotReport(format!(
                "version {v}; this build reads version {VERSION}"
            )));
        }
        None => return Err(ParseError::NotReport("no \"version\" number".to_owned())),
    }
    // Parsed from the text (not the value) so errors carry line and column.
    let summary: Summary =
        serde_json::from_str(text).map_err(|e| ParseError::NotReport(e.to_string()))?;
    check_names(&summary.histograms).map_err(ParseError::NotReport)?;
    Ok(summary)
}

/// Phase names become file names (`--hgrm`): only plain ones are accepted.
fn check_names(h: &Histograms) -> Result<(), String> {
    for name in h.phases.keys().chain(h.phases_from_schedule.keys()) {
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !plain {
            return Err(format!(
                "phase name {name:?} is not lowercase letters, digits and '_'"
            ));
        }
    }
    Ok(())
}

/// Where a merged report goes besides the summary returned: the JSON or
/// the text on `out`, a JSON file, `.hgrm` files.
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeOutput<'a> {
    /// The JSON report on `out` instead of the text.
    pub json: bool,
    pub json_out: Option<&'a Path>,
    pub hgrm: Option<&'a Path>,
}

/// Reads and merges `files`, writes the report to `out` and the files asked
/// for. Returns the merged summary; bad input is an error naming the file.
pub fn run_merge(
    files: &[PathBuf],
    output: MergeOutput<'_>,
    out: &mut impl Write,
) -> anyhow::Result<Summary> {
    let summaries = files
        .iter()
        .map(|p| read_summary(p))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = merge(&summaries).context("cannot merge the reports")?;
    if output.json {
        report::json(&merged, out)?;
    } else {
        report::text(&merged, out)?;
    }
    if let Some(path) = output.json_out {
        let write = || -> io::Result<()> {
            let mut f = io::BufWriter::new(std::fs::File::create(path)?);
            report::json(&merged, &mut f)?;
            f.flush()
        };
        write().with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(dir) = output.hgrm {
        report::write_hgrm(&merged, dir)
            .with_context(|| format!("cannot write .hgrm files into {}", dir.display()))?;
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Outcome;
    use crate::load::aggregate::Aggregator;
    use crate::load::aggregate::tests::{aggregate, meta, millis, record};
    use crate::load::record::{CallbackKind, Sample};
    use crate::load::summary::{CallbackCounts, Coverage, IndexRange};

    fn shard(range: std::ops::Range<u64>, k: u32) -> Summary {
        let mut a = Aggregator::new();
        for i in range {
            a.add(&record(i));
        }
        a.summary(meta(Some((k, 3)), 100))
    }

    fn write(dir: &Path, name: &str, s: &Summary) -> PathBuf {
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        report::json(s, &mut f).unwrap();
        path
    }

    struct Args {
        files: Vec<PathBuf>,
        json: Option<PathBuf>,
        hgrm: Option<PathBuf>,
    }

    fn run_merge_with(a: &Args, out: &mut Vec<u8>) -> anyhow::Result<Summary> {
        let output = MergeOutput {
            json: false,
            json_out: a.json.as_deref(),
            hgrm: a.hgrm.as_deref(),
        };
        run_merge(&a.files, output, out)
    }

    fn args(files: Vec<PathBuf>) -> Args {
        Args {
            files,
            json: None,
            hgrm: None,
        }
    }

    #[test]
    fn merges_files_exactly_and_covers_every_stream_once() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            write(dir.path(), "a.json", &shard(0..100, 0)),
            write(dir.path(), "b.json", &shard(100..200, 1)),
            write(dir.path(), "c.json", &shard(200..300, 2)),
        ];
        let mut a = args(files);
        a.json = Some(dir.path().join("merged.json"));
        a.hgrm = Some(dir.path().join("hgrm"));
        let mut out = Vec::new();
        let merged = run_merge_with(&a, &mut out).unwrap();

        let mut whole = Aggregator::new();
        for i in 0..300 {
            whole.add(&record(i));
        }
        let want = whole.summary(meta(None, 300));
        assert_eq!(merged.histograms, want.histograms);
        assert_eq!(merged.outcomes, want.outcomes);
        assert_eq!(merged.phases_ms, want.phases_ms);
        assert_eq!(merged.streams, vec![IndexRange { start: 0, end: 299 }]);
        assert!(merged.coverage.overlaps.is_empty() && merged.coverage.gaps.is_empty());
        assert_eq!(merged.coverage.covered, 300);

        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("publishers: 300 measured of 300 planned"),
            "{text}"
        );
        assert!(
            text.contains("shards 0/3 1/3 2/3, merged from 3 runs"),
            "{text}"
        );
        assert_eq!(read_summary(a.json.as_ref().unwrap()).unwrap(), merged);
        assert!(dir.path().join("hgrm/publish.hgrm").exists());
    }

    #[test]
    fn overlap_is_exit_1() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.json", &shard(0..100, 0));
        let merged = run_merge_with(&args(vec![a.clone(), a.clone()]), &mut Vec::new()).unwrap();
        assert_eq!(
            merged.coverage.overlaps,
            vec![IndexRange { start: 0, end: 99 }]
        );
    }

    fn error_for(name: &str, content: Option<&str>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        if let Some(c) = content {
            std::fs::write(&path, c).unwrap();
        }
        let err = run_merge_with(&args(vec![path]), &mut Vec::new()).unwrap_err();
        format!("{err:#}")
    }

    #[test]
    fn bad_input_names_the_file_and_the_problem() {
        let e = error_for("missing.json", None);
        assert!(e.contains("missing.json: cannot read"), "{e}");

        let e = error_for("junk.json", Some("{ not json"));
        assert!(
            e.contains("junk.json: not JSON: key must be a string"),
            "{e}"
        );
        assert_eq!(e.matches("key must be a string").count(), 1, "{e}");

        let e = error_for("other.json", Some(r#"{"hello": 1}"#));
        assert!(
            e.contains("other.json: not a pushprobe load report: no \"format\""),
            "{e}"
        );

        let e = error_for(
            "future.json",
            Some(r#"{"format": "pushprobe-load-report", "version": 9}"#),
        );
        assert!(
            e.contains("future.json: not a pushprobe load report: version 9"),
            "{e}"
        );

        let e = error_for(
            "partial.json",
            Some(r#"{"format": "pushprobe-load-report", "version": 1}"#),
        );
        assert!(
            e.contains("partial.json: not a pushprobe load report: missing field"),
            "{e}"
        );

        let good = serde_json::to_value(shard(0..10, 0)).unwrap();
        let mut bad_hist = good.clone();
        bad_hist["histograms"]["lag"] = serde_json::json!("%%%not base64%%%");
        let e = error_for("hist.json", Some(&bad_hist.to_string()));
        assert!(
            e.contains("hist.json: not a pushprobe load report: histogram is not base64"),
            "{e}"
        );

        let mut bad_range = good.clone();
        bad_range["streams"] = serde_json::json!([[9, 3]]);
        let e = error_for("range.json", Some(&bad_range.to_string()));
        assert!(
            e.contains("range.json: not a pushprobe load report: index range [9, 3]"),
            "{e}"
        );

        let mut bad_name = good.clone();
        let dns = bad_name["histograms"]["phases"]["dns"].clone();
        bad_name["histograms"]["phases"]["../../x"] = dns;
        let e = error_for("name.json", Some(&bad_name.to_string()));
        assert!(
            e.contains("name.json: not a pushprobe load report: phase name \"../../x\""),
            "{e}"
        );
    }

    #[test]
    fn merge_equals_the_aggregation_of_the_union() {
        let whole = aggregate(0..300);
        let mut shards = Vec::new();
        for (k, range) in [0..100u64, 100..250, 250..300].into_iter().enumerate() {
            let mut a = aggregate(range);
            a.add_callback_latency(CallbackKind::Push, millis(10 * k as u64 + 1));
            a.set_callback_counts(CallbackCounts {
                push: 1,
                ..Default::default()
            });
            shards.push(a.summary(meta(Some((k as u32, 3)), 100)));
        }
        let mut whole = whole;
        for k in 0..3 {
            whole.add_callback_latency(CallbackKind::Push, millis(10 * k + 1));
        }
        whole.set_callback_counts(CallbackCounts {
            push: 3,
            ..Default::default()
        });
        let want = whole.summary(meta(None, 300));
        let got = merge(&shards).unwrap();

        assert_eq!(got.histograms, want.histograms);
        for (name, h) in &want.histograms.phases {
            assert_eq!(got.histograms.phases[name].count(), h.count(), "{name}");
        }
        assert_eq!(got.phases_ms, want.phases_ms);
        assert_eq!(got.phases_from_schedule_ms, want.phases_from_schedule_ms);
        assert_eq!(got.lag_ms, want.lag_ms);
        assert_eq!(got.callbacks, want.callbacks);
        assert_eq!(got.outcomes, want.outcomes);
        assert_eq!(got.publishers, want.publishers);
        assert_eq!(got.bytes_sent, want.bytes_sent);
        assert_eq!(got.reconnects, want.reconnects);
        assert_eq!(want.reconnects, (0..300).map(|i| i % 3).sum::<u64>());
        assert_eq!(got.streams, want.streams);
        assert_eq!(
            got.coverage,
            Coverage {
                covered: 300,
                overlaps: vec![],
                gaps: vec![]
            }
        );
        assert!(got.callbacks.measured);
        assert_eq!(got.runs, 3);
        assert_eq!(got.publishers_planned, 300);
        assert_eq!(got.shards.len(), 3);
        assert_eq!(got.target, want.target);
    }

    #[test]
    fn merge_flags_overlaps_and_gaps() {
        let a = aggregate(0..100).summary(meta(Some((0, 3)), 100));
        let b = aggregate(90..150).summary(meta(Some((1, 3)), 100));
        let c = aggregate(200..300).summary(meta(Some((2, 3)), 100));
        let m = merge(&[a.clone(), b, c]).unwrap();
        assert_eq!(m.coverage.overlaps, vec![IndexRange { start: 90, end: 99 }]);
        assert_eq!(
            m.coverage.gaps,
            vec![IndexRange {
                start: 150,
                end: 199
            }]
        );
        assert_eq!(m.coverage.covered, 250);
        assert_eq!(
            m.streams,
            vec![
                IndexRange { start: 0, end: 149 },
                IndexRange {
                    start: 200,
                    end: 299
                }
            ]
        );

        // The same report twice covers everything twice.
        let twice = merge(&[a.clone(), a.clone()]).unwrap();
        assert_eq!(
            twice.coverage.overlaps,
            vec![IndexRange { start: 0, end: 99 }]
        );
        // An overlap found earlier survives a later merge.
        let again = merge(&[twice]).unwrap();
        assert_eq!(
            again.coverage.overlaps,
            vec![IndexRange { start: 0, end: 99 }]
        );
    }

    #[test]
    fn merge_sums_timelines_per_second_of_wall_time() {
        let mut a = Aggregator::new();
        a.add_sample(Sample {
            t_s: 0.2,
            publishing: 1,
            failed: 0,
            bitrate_bps: 100,
        });
        a.add_sample(Sample {
            t_s: 0.9,
            publishing: 2,
            failed: 0,
            bitrate_bps: 200,
        });
        a.add_sample(Sample {
            t_s: 1.1,
            publishing: 3,
            failed: 1,
            bitrate_bps: 300,
        });
        let mut b = Aggregator::new();
        b.add_sample(Sample {
            t_s: 0.5,
            publishing: 10,
            failed: 0,
            bitrate_bps: 1000,
        });
        let sa = a.summary(meta(None, 0));
        let mut mb = meta(None, 0);
        mb.started_unix += 1; // b started one second after a
        let sb = b.summary(mb);
        let m = merge(&[sa, sb]).unwrap();
        assert_eq!(
            m.timeline,
            vec![
                Sample {
                    t_s: 0.0,
                    publishing: 2,
                    failed: 0,
                    bitrate_bps: 200
                },
                Sample {
                    t_s: 1.0,
                    publishing: 13,
                    failed: 1,
                    bitrate_bps: 1300
                },
            ]
        );
        assert_eq!(m.started_unix, 1_700_000_000);
        assert_eq!(m.duration_s, 21.0);
    }

    #[test]
    fn merge_refuses_nothing_and_other_versions() {
        assert!(matches!(merge(&[]), Err(MergeError::Empty)));
        let mut s = Aggregator::new().summary(meta(None, 0));
        s.version = 99;
        assert!(matches!(
            merge(&[s]),
            Err(MergeError::Version { index: 0, .. })
        ));
    }

    #[test]
    fn merge_saturates_hostile_counts() {
        let mut s = aggregate(0..3).summary(meta(None, u64::MAX));
        s.publishers = u64::MAX;
        s.bytes_sent = u64::MAX;
        s.reconnects = u64::MAX;
        s.expected_refusals.refused = u64::MAX;
        s.callbacks.counts.forged = u64::MAX;
        s.outcomes.insert(Outcome::Timeout, u64::MAX);
        s.streams = vec![IndexRange {
            start: 0,
            end: u64::MAX,
        }];
        s.timeline = vec![Sample {
            t_s: -1.0,
            publishing: u64::MAX,
            failed: 0,
            bitrate_bps: u64::MAX,
        }];
        let mut late = s.clone();
        late.started_unix = u64::MAX;
        late.duration_s = f64::MAX;
        let m = merge(&[s.clone(), late]).unwrap();
        assert_eq!(m.publishers, u64::MAX);
        assert_eq!(m.reconnects, u64::MAX);
        assert_eq!(m.publishers_planned, u64::MAX);
        assert_eq!(m.outcomes[&Outcome::Timeout], u64::MAX);
        assert_eq!(m.coverage.covered, u64::MAX);
        assert_eq!(
            m.coverage.overlaps,
            vec![IndexRange {
                start: 0,
                end: u64::MAX
            }]
        );
        assert!(m.duration_s.is_finite());
        serde_json::to_string(&m).unwrap();
    }
}
