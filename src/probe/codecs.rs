//! `smoke --codecs`: one short push per codec and framing (Enhanced RTMP
//! FourCC, legacy FLV codec id) with the built-in fixtures, folded into a
//! matrix of accepted / refused / cut cells, rendered as text or JSON.

use std::io::Write;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{PrepareError, PreparedPush, PushSettings, Pushed};
use crate::classify::Outcome;
use crate::codec::{Framing, VideoCodec};
use crate::flv;
use crate::sign::Keys;

/// What one push of the matrix came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// Publish.Start, streamed to the end, and the server lists the FourCC
    /// (or, for legacy framing, nothing to negotiate).
    Accepted,
    /// Publish.Start and streamed, but the server's `_result` said nothing
    /// about the FourCC: a server without Enhanced RTMP drops such video.
    Unconfirmed,
    /// Refused before or at Publish.Start.
    Refused,
    /// Accepted, then cut (or refused just after Publish.Start).
    Cut,
    /// Did not get as far as a publish (network, TLS, connect...).
    Failed,
}

impl Cell {
    pub fn name(self) -> &'static str {
        match self {
            Cell::Accepted => "accepted",
            Cell::Unconfirmed => "accepted?",
            Cell::Refused => "refused",
            Cell::Cut => "cut",
            Cell::Failed => "failed",
        }
    }

    /// The cell of one classified push.
    pub fn of(p: &Pushed) -> Cell {
        let r = &p.result;
        if r.refused_after_start() || (r.accepted() && r.failure().is_some()) {
            return Cell::Cut;
        }
        match p.verdict.outcome {
            Outcome::Accepted | Outcome::TooSlow => Cell::Accepted,
            Outcome::CodecUnsupported if r.accepted() && !p.verdict.certain => Cell::Unconfirmed,
            _ if r.publish_sent.is_some() || r.accepted() => Cell::Refused,
            _ => Cell::Failed,
        }
    }
}

/// One push of the matrix.
#[derive(Debug, Clone)]
pub struct Row {
    pub codec: VideoCodec,
    pub framing: Framing,
    pub cell: Cell,
    pub outcome: Outcome,
    pub certain: bool,
    pub evidence: Vec<String>,
}

/// The framings each codec is pushed in: H.264 as FLV codec id 7 only;
/// HEVC and AV1 both ways; VP9 only as Enhanced RTMP (it has no id).
pub fn framings(codec: VideoCodec) -> Vec<Framing> {
    match (codec, codec.legacy_id()) {
        (VideoCodec::H264, _) => vec![Framing::Legacy],
        (_, Some(_)) => vec![Framing::Enhanced, Framing::Legacy],
        (_, None) => vec![Framing::Enhanced],
    }
}

/// Pushes each codec in each framing, one after the other, to `url`.
pub async fn run(
    url: &str,
    keys: &Keys,
    settings: &PushSettings,
    codecs: &[VideoCodec],
    cancel: &CancellationToken,
) -> Result<Vec<Row>, PrepareError> {
    let mut rows = Vec::new();
    for &codec in codecs {
        let Some((fixture, name)) = flv::builtin_fixture(codec) else {
            continue;
        };
        for framing in framings(codec) {
            if cancel.is_cancelled() {
                return Ok(rows);
            }
            let framed = match framing {
                Framing::Legacy => fixture.with_legacy_codec_id()?,
                Framing::Enhanced => fixture.clone(),
            };
            let p =
                PreparedPush::prepare_fixture(url, keys.clone(), settings, &framed, name.into())?;
            let pushed = p.run(cancel).await;
            rows.push(Row {
                codec,
                framing,
                cell: Cell::of(&pushed),
                outcome: pushed.verdict.outcome,
                certain: pushed.verdict.certain,
                evidence: pushed.verdict.evidence.clone(),
            });
        }
    }
    Ok(rows)
}

/// Every codec asked for was accepted in at least one framing.
pub fn passed(rows: &[Row], codecs: &[VideoCodec]) -> bool {
    codecs.iter().all(|c| {
        rows.iter()
            .any(|r| r.codec == *c && r.cell == Cell::Accepted)
    })
}

/// The matrix as text: a row per codec, a column per framing.
pub fn write_text(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    writeln!(out, "{:<6} {:<10} legacy-id", "codec", "enhanced")?;
    let mut codecs: Vec<VideoCodec> = rows.iter().map(|r| r.codec).collect();
    codecs.dedup();
    for c in codecs {
        let cell = |f: Framing| {
            rows.iter()
                .find(|r| r.codec == c && r.framing == f)
                .map_or("-", |r| r.cell.name())
        };
        let line = format!(
            "{:<6} {:<10} {}",
            c.as_str(),
            cell(Framing::Enhanced),
            cell(Framing::Legacy)
        );
        writeln!(out, "{line}")?;
    }
    for r in rows.iter().filter(|r| r.cell != Cell::Accepted) {
        writeln!(out, "{} {}: {}", r.codec, r.framing, r.outcome.name())?;
        for e in &r.evidence {
            writeln!(out, "  {}", crate::sign::redact_query_in(e))?;
        }
    }
    if rows.iter().any(|r| r.cell == Cell::Unconfirmed) {
        writeln!(
            out,
            "accepted? = Publish.Start, but the server did not list the FourCC: play it back to confirm"
        )?;
    }
    Ok(())
}

/// The matrix as the JSON object `smoke --codecs --json` prints.
pub fn json(rows: &[Row], codecs: &[VideoCodec]) -> serde_json::Value {
    let ok = passed(rows, codecs);
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "codec": r.codec.as_str(),
                "framing": r.framing.as_str(),
                "result": r.cell,
                "outcome": r.outcome,
                "certain": r.certain,
                "evidence": r.evidence.iter().map(|e| crate::sign::redact_query_in(e)).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "codecs": rows, "passed": ok })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framings_per_codec() {
        assert_eq!(framings(VideoCodec::H264), vec![Framing::Legacy]);
        assert_eq!(
            framings(VideoCodec::Hevc),
            vec![Framing::Enhanced, Framing::Legacy]
        );
        assert_eq!(framings(VideoCodec::Vp9), vec![Framing::Enhanced]);
    }

    #[test]
    fn text_matrix() {
        let row = |codec, framing, cell| Row {
            codec,
            framing,
            cell,
            outcome: if cell == Cell::Accepted {
                Outcome::Accepted
            } else {
                Outcome::CodecUnsupported
            },
            certain: true,
            evidence: vec!["why".into()],
        };
        let rows = vec![
            row(VideoCodec::H264, Framing::Legacy, Cell::Accepted),
            row(VideoCodec::Hevc, Framing::Enhanced, Cell::Cut),
            row(VideoCodec::Hevc, Framing::Legacy, Cell::Accepted),
        ];
        let mut out = Vec::new();
        write_text(&mut out, &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["h264", "-", "accepted"]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["hevc", "cut", "accepted"]
        );
        assert!(text.contains("hevc enhanced: codec_unsupported\n  why"));
        assert!(passed(&rows, &[VideoCodec::H264, VideoCodec::Hevc]));
        assert!(!passed(&rows, &[VideoCodec::Av1]));
        let v = json(&rows, &[VideoCodec::Hevc]);
        assert_eq!(v["codecs"][1]["result"], "cut");
        assert_eq!(v["passed"], true);
    }
}
