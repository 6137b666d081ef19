//! `pushprobe report merge`: reads the JSON reports of a run's shards, adds
//! them exactly, prints the text summary and writes `--json` / `--hgrm`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::aggregate::{FORMAT, Histograms, Summary, VERSION, merge};
use crate::cli::MergeArgs;
use crate::report;

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

/// Reads, merges, writes the text summary to `out` and the files asked for.
/// Returns the merged summary; bad input is an error naming the file.
pub fn run_merge(args: &MergeArgs, out: &mut impl Write) -> anyhow::Result<Summary> {
    let summaries = args
        .files
        .iter()
        .map(|p| read_summary(p))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = merge(&summaries).context("cannot merge the reports")?;
    if args.json {
        report::json(&merged, out)?;
    } else {
        report::text(&merged, out)?;
    }
    if let Some(path) = &args.json_out {
        let write = || -> io::Result<()> {
            let mut f = io::BufWriter::new(std::fs::File::create(path)?);
            report::json(&merged, &mut f)?;
            f.flush()
        };
        write().with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(dir) = &args.hgrm {
        report::write_hgrm(&merged, dir)
            .with_context(|| format!("cannot write .hgrm files into {}", dir.display()))?;
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::aggregate::tests::{meta, record};
    use crate::load::aggregate::{Aggregator, IndexRange};

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

    fn args(files: Vec<PathBuf>) -> MergeArgs {
        MergeArgs {
            files,
            json: false,
            json_out: None,
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
        a.json_out = Some(dir.path().join("merged.json"));
        a.hgrm = Some(dir.path().join("hgrm"));
        let mut out = Vec::new();
        let merged = run_merge(&a, &mut out).unwrap();

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
        assert_eq!(read_summary(a.json_out.as_ref().unwrap()).unwrap(), merged);
        assert!(dir.path().join("hgrm/publish.hgrm").exists());
    }

    #[test]
    fn overlap_is_exit_1() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.json", &shard(0..100, 0));
        let merged = run_merge(&args(vec![a.clone(), a.clone()]), &mut Vec::new()).unwrap();
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
        let err = run_merge(&args(vec![path]), &mut Vec::new()).unwrap_err();
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
}
