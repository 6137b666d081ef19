//! JUnit XML reports (`--junit FILE`) for CI systems: one test case per
//! check, failures carrying the verdict's evidence and fix, skipped checks as
//! `<skipped/>`. The layout is the Ant/Jenkins one (`testsuites` >
//! `testsuite` > `testcase`) that Jenkins, GitLab, GitHub Actions reporters
//! and Azure Pipelines read. Evidence is always written with its secrets
//! redacted: CI keeps these files as artifacts.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::classify::{Outcome, Verdict};
use crate::load::aggregate::Summary;
use crate::probe::dup::PairReport;
use crate::sign;

/// One check's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Result {
    Passed,
    /// The check ran and found a problem: `message` says what, `detail`
    /// carries the evidence and the fix.
    Failed {
        message: String,
        detail: String,
    },
    /// The check could not run (`message` says why).
    Skipped {
        message: String,
    },
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub time: Duration,
    pub result: Result,
    /// What the check saw, for `<system-out>` (passed checks too).
    pub output: String,
}

impl Case {
    pub fn new(name: impl Into<String>, result: Result, output: impl Into<String>) -> Case {
        Case {
            name: name.into(),
            time: Duration::ZERO,
            result,
            output: output.into(),
        }
    }

    pub fn timed(mut self, time: Duration) -> Case {
        self.time = time;
        self
    }
}

/// One `<testsuite>`: a command's run, `pushprobe.COMMAND`.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    /// Wall-clock start, Unix seconds (the `timestamp` attribute).
    pub started_unix: u64,
    pub cases: Vec<Case>,
}

#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("cannot write the JUnit report {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Suite {
    pub fn new(command: &str, started_unix: u64) -> Suite {
        Suite {
            name: format!("pushprobe.{command}"),
            started_unix,
            cases: Vec::new(),
        }
    }

    pub fn push(&mut self, case: Case) -> &mut Suite {
        self.cases.push(case);
        self
    }

    fn count(&self, f: impl Fn(&Result) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.result)).count()
    }

    /// The XML document.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let failures = self.count(|r| matches!(r, Result::Failed { .. }));
        let skipped = self.count(|r| matches!(r, Result::Skipped { .. }));
        let time: f64 = self.cases.iter().map(|c| c.time.as_secs_f64()).sum();
        let tests = self.cases.len();
        let name = attr(&self.name);
        writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        writeln!(
            out,
            r#"<testsuites name="{name}" tests="{tests}" failures="{failures}" errors="0" skipped="{skipped}" time="{time:.3}">"#
        )?;
        writeln!(
            out,
            r#"  <testsuite name="{name}" tests="{tests}" failures="{failures}" errors="0" skipped="{skipped}" time="{time:.3}" timestamp="{}" hostname="{}">"#,
            crate::clock::rfc3339(self.started_unix).trim_end_matches('Z'),
            attr(&hostname()),
        )?;
        for c in &self.cases {
            write!(
                out,
                r#"    <testcase name="{}" classname="{name}" time="{:.3}">"#,
                attr(&c.name),
                c.time.as_secs_f64()
            )?;
            match &c.result {
                Result::Passed => {}
                Result::Failed { message, detail } => write!(
                    out,
                    r#"<failure message="{}" type="{}">{}</failure>"#,
                    attr(message),
                    attr(&c.name),
                    text(detail)
                )?,
                Result::Skipped { message } => {
                    write!(out, r#"<skipped message="{}"/>"#, attr(message))?
                }
            }
            if !c.output.is_empty() {
                write!(out, "<system-out>{}</system-out>", text(&c.output))?;
            }
            writeln!(out, "</testcase>")?;
        }
        writeln!(out, "  </testsuite>")?;
        writeln!(out, "</testsuites>")
    }

    /// Writes the document to `path`.
    pub fn write_file(&self, path: &Path) -> std::result::Result<(), JunitError> {
        let err = |source| JunitError::Write {
            path: path.display().to_string(),
            source,
        };
        let mut buf = Vec::new();
        self.write(&mut buf).map_err(err)?;
        std::fs::write(path, buf).map_err(err)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// Characters XML 1.0 cannot carry at all become U+FFFD.
fn xml_char(c: char) -> char {
    match c {
        '\t' | '\n' | '\r' => c,
        c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
        c => c,
    }
}

/// Escaped for an attribute value in double quotes (line breaks kept).
fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().map(xml_char) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped for element content.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().map(xml_char) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The evidence of a verdict, one line each, secrets redacted, then the fix.
fn evidence(v: &Verdict) -> String {
    let mut s: String = v
        .evidence
        .iter()
        .map(|e| format!("evidence: {}\n", sign::redact_query_in(e)))
        .collect();
    if let Some(step) = v.step {
        s.push_str(&format!("checklist step: {step}\n"));
    }
    if !v.fix.is_empty() {
        s.push_str(&format!("fix: {}\n", v.fix));
    }
    s
}

/// One push's case: passes when the push was accepted (or, with
/// `expect_refusal`, when it was refused).
pub fn push_case(name: &str, v: &Verdict, expect_refusal: bool, time: Duration) -> Case {
    let accepted = v.outcome == Outcome::Accepted;
    let result = if accepted != expect_refusal {
        Result::Passed
    } else {
        let message = if expect_refusal {
            "accepted, expected a refusal".to_owned()
        } else {
            format!("push {}", v.outcome.name())
        };
        Result::Failed {
            message,
            detail: evidence(v),
        }
    };
    Case::new(
        name,
        result,
        format!("outcome: {}\n{}", v.outcome.name(), evidence(v)),
    )
    .timed(time)
}

/// The duplicate check as one case: the pair passes when the second push was
/// refused and the first kept streaming.
pub fn dup_case(r: &PairReport, time: Duration) -> Case {
    let mut detail = format!(
        "{}\nfirst push: {}\n",
        r.finding.describe(),
        r.first.verdict.outcome.name()
    );
    detail.push_str(&evidence(&r.first.verdict));
    if let Some(s) = &r.second {
        detail.push_str(&format!("second push: {}\n", s.verdict.outcome.name()));
        detail.push_str(&evidence(&s.verdict));
    }
    let result = if r.finding.passed() {
        Result::Passed
    } else {
        Result::Failed {
            message: r.finding.describe().to_owned(),
            detail: detail.clone(),
        }
    };
    Case::new("duplicate push refused", result, detail).timed(time)
}

/// The cases of a load run: outcomes, lag, callbacks (skipped when no
/// receiver ran), each passing on the rule `load`'s exit code uses.
pub fn load_cases(s: &Summary, planned_primary: u64) -> Vec<Case> {
    let accepted = s.outcomes.get(&Outcome::Accepted).copied().unwrap_or(0);
    let outcome_list = |m: &std::collections::BTreeMap<Outcome, u64>| {
        m.iter()
            .map(|(o, n)| format!("{}={n}", o.name()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let out = format!(
        "planned {planned_primary}, measured {}, outcomes: {}; deliberate duplicates: refused {}, accepted {}",
        s.publishers,
        outcome_list(&s.outcomes),
        s.expected_refusals.refused,
        s.expected_refusals.accepted,
    );
    let outcomes = if s.publishers == planned_primary
        && accepted == s.publishers
        && s.expected_refusals.accepted == 0
    {
        Result::Passed
    } else {
        let mut why = Vec::new();
        if s.publishers != planned_primary {
            why.push(format!(
                "{} of {planned_primary} publishers measured",
                s.publishers
            ));
        }
        if accepted != s.publishers {
            why.push(format!("{} of {} accepted", accepted, s.publishers));
        }
        if s.expected_refusals.accepted > 0 {
            why.push(format!(
                "{} deliberate duplicates accepted",
                s.expected_refusals.accepted
            ));
        }
        let fix = s
            .outcomes
            .keys()
            .find(|o| **o != Outcome::Accepted)
            .map(|o| {
                format!(
                    "\nfirst refusal to look at: {} (run `pushprobe doctor URL` on one of its streams)",
                    o.name()
                )
            })
            .unwrap_or_default();
        Result::Failed {
            message: why.join("; "),
            detail: format!("{out}{fix}"),
        }
    };
    let lag_out = format!(
        "max lag {:.1} ms, p99 {:.1} ms over {} publishers",
        s.max_lag_ms, s.lag_ms.p99, s.lag_ms.count
    );
    let lag = if s.max_lag_ms < 1000.0 {
        Result::Passed
    } else {
        Result::Failed {
            message: format!("fell {:.0} ms behind real time", s.max_lag_ms),
            detail: format!(
                "{lag_out}\nfix: the generator could not keep up: fewer publishers per process (--shard/--shards), more CPU, or a lighter --fixture"
            ),
        }
    };
    let c = &s.callbacks.counts;
    let cb_out = format!(
        "push {} interrupt {} missing {} duplicate {} forged {} unmatched {}",
        c.push, c.interrupt, c.missing, c.duplicate, c.forged, c.unmatched
    );
    let callbacks = if !s.callbacks.measured {
        Result::Skipped {
            message: "no callback receiver (--callback-listen)".to_owned(),
        }
    } else if c.missing == 0 && c.forged == 0 {
        Result::Passed
    } else {
        Result::Failed {
            message: format!("{} callbacks missing, {} forged", c.missing, c.forged),
            detail: format!(
                "{cb_out}\nfix: check the callback URL and key in the CSS console (missing), and that only the ingest knows the callback key (forged)"
            ),
        }
    };
    let time = Duration::from_secs_f64(s.duration_s.max(0.0));
    vec![
        Case::new("outcomes", outcomes, out).timed(time),
        Case::new("lag", lag, lag_out),
        Case::new("callbacks", callbacks, cb_out),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &Suite) -> String {
        let mut b = Vec::new();
        s.write(&mut b).unwrap();
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn counts_escapes_and_shapes() {
        let mut s = Suite::new("doctor", 0);
        s.push(Case::new("1 cname", Result::Passed, "a -> b"));
        s.push(Case::new(
            "2 network",
            Result::Failed {
                message: "refused <\"x\"> & \u{1}".into(),
                detail: "fix: open 1935 & retry".into(),
            },
            "",
        ));
        s.push(Case::new(
            "5 push",
            Result::Skipped {
                message: "port closed".into(),
            },
            "",
        ));
        let d = doc(&s);
        assert!(
            d.contains(r#"tests="3" failures="1" errors="0" skipped="1""#),
            "{d}"
        );
        assert!(
            d.contains(r#"message="refused &lt;&quot;x&quot;&gt; &amp; �""#),
            "{d}"
        );
        assert!(d.contains(">fix: open 1935 &amp; retry</failure>"), "{d}");
        assert!(d.contains(r#"<skipped message="port closed"/>"#), "{d}");
        assert!(d.contains(r#"timestamp="1970-01-01T00:00:00""#), "{d}");
    }

    #[test]
    fn push_case_redacts_evidence_and_expects_what_it_is_told() {
        let v = Verdict {
            outcome: Outcome::BadSecret,
            evidence: vec!["server said s?txSecret=abcdef&txTime=1".into()],
            step: Some(4),
            fix: "re-sign the URL",
            phase: None,
            certain: true,
        };
        let c = push_case("push", &v, false, Duration::ZERO);
        let Result::Failed { message, detail } = &c.result else {
            panic!("{c:?}")
        };
        assert_eq!(message, "push bad_secret");
        assert!(
            !detail.contains("abcdef") && detail.contains("fix: re-sign the URL"),
            "{detail}"
        );
        assert_eq!(
            push_case("dup", &v, true, Duration::ZERO).result,
            Result::Passed
        );
    }
}
