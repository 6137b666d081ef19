//! The committed `schema.json` describes the JSON report: a report built from
//! synthetic records through the public API (and a merge of two) validates,
//! the schema requires the fields issue 5 names, and its outcome and phase
//! lists match the code's.

use std::time::Duration;

use pushprobe::classify::Outcome;
use pushprobe::load::aggregate::{Aggregator, CallbackCounts, RunMeta, Summary, merge};
use pushprobe::load::record::{CallbackKind, PublisherRecord, Sample};
use pushprobe::load::targets::Shard;
use pushprobe::publish::Phase;
use pushprobe::report;
use serde_json::Value;

fn schema() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn record(i: u64) -> PublisherRecord {
    let ms = Duration::from_millis;
    let refused = i % 10 == 7;
    let mut marks = vec![
        (Phase::Dns, ms(2)),
        (Phase::Tcp, ms(5 + i % 3)),
        (Phase::Handshake, ms(9 + i % 4)),
    ];
    if !refused {
        marks.extend([
            (Phase::Connect, ms(15 + i % 5)),
            (Phase::CreateStream, ms(18 + i % 5)),
            (Phase::Publish, ms(25 + i)),
        ]);
    }
    PublisherRecord {
        index: i,
        stream: format!("load-{i}"),
        expected_refusal: false,
        outcome: if refused {
            Outcome::BadSecret
        } else {
            Outcome::Accepted
        },
        start_delay: ms(i % 4),
        marks,
        bytes_sent: 70_000 * i,
        max_lag: ms(i % 6),
        streamed: Duration::from_secs(if refused { 0 } else { 10 }),
        reconnects: (i % 2) as u32,
        addrs: pushprobe::load::by_address::PublisherAddrs {
            remote: Some(format!("127.0.0.{}:1935", 1 + i % 2).parse().unwrap()),
            failed: if i.is_multiple_of(3) {
                vec!["[::1]:1935".parse().unwrap()]
            } else {
                vec![]
            },
        },
        // Every third publisher pushed over SRT: the report's srt block is
        // checked against the schema too.
        srt: i
            .is_multiple_of(3)
            .then_some(Box::new(pushprobe::load::summary::SrtTotals {
                publishers: 1,
                packets_sent: 4_000 + i,
                packets_retransmitted: i % 5,
                packets_dropped: i % 2,
                packets_lost: i % 7,
            })),
    }
}

fn run(range: std::ops::Range<u64>, shard: Option<Shard>) -> Summary {
    let mut a = Aggregator::new();
    for i in range.clone() {
        a.add(&record(i));
        a.add_callback_latency(CallbackKind::Push, Duration::from_millis(300 + i));
    }
    a.add(&PublisherRecord {
        index: 10_000 + range.start,
        expected_refusal: true,
        outcome: Outcome::AlreadyInUse,
        ..record(range.start)
    });
    a.add_callback_latency(CallbackKind::Interrupt, Duration::from_secs(2));
    a.set_callback_counts(CallbackCounts {
        push: 9,
        interrupt: 1,
        missing: 1,
        duplicate: 2,
        forged: 0,
        unmatched: 1,
    });
    for t in 0..12 {
        a.add_sample(Sample {
            t_s: t as f64 + 0.5,
            publishing: t.min(9),
            failed: t / 10,
            bitrate_bps: 560_000 * t.min(9),
        });
    }
    a.summary(RunMeta {
        started_unix: 1_760_000_000,
        duration_s: 12.0,
        target: "rtmp://push.example.com/live/load-{i}?txSecret=<redacted>&txTime=68E7A600"
            .to_owned(),
        shard,
        publishers_planned: range.end - range.start,
        interrupted_by_user: false,
    })
}

fn rendered(s: &Summary) -> Value {
    let mut out = Vec::new();
    report::json(s, &mut out).unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn errors(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).unwrap();
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn schema_is_valid_json_schema() {
    jsonschema::meta::validate(&schema()).unwrap();
}

#[test]
fn reports_validate_against_the_schema() {
    let schema = schema();
    let a = run(0..10, Some(Shard { index: 0, count: 2 }));
    let b = run(10..20, Some(Shard { index: 1, count: 2 }));
    for report in [&a, &b, &merge(&[a.clone(), b.clone()]).unwrap()] {
        let json = rendered(report);
        assert_eq!(errors(&schema, &json), Vec::<String>::new());
    }
    // An empty run validates too.
    let empty = Aggregator::new().summary(RunMeta {
        started_unix: 0,
        duration_s: 0.0,
        target: String::new(),
        shard: None,
        publishers_planned: 0,
        interrupted_by_user: true,
    });
    assert_eq!(errors(&schema, &rendered(&empty)), Vec::<String>::new());
}

#[test]
fn schema_requires_the_fields_the_issue_names() {
    let schema = schema();
    let good = rendered(&run(0..10, None));
    for path in [
        "/publishers",
        "/outcomes",
        "/phases_ms",
        "/phases_from_schedule_ms",
        "/max_lag_ms",
        "/callbacks",
        "/histograms",
        "/expected_refusals",
        "/streams",
        "/coverage",
        "/phases_ms/publish/p99",
        "/callbacks/latency_ms/push",
        "/callbacks/forged",
        "/histograms/phases/dns",
    ] {
        let mut bad = good.clone();
        let (parent, key) = path.rsplit_once('/').unwrap();
        let removed = bad
            .pointer_mut(parent)
            .and_then(|p| p.as_object_mut())
            .and_then(|o| o.remove(key));
        assert!(removed.is_some(), "{path} is in the report");
        assert!(
            !errors(&schema, &bad).is_empty(),
            "schema lets {path} go missing"
        );
    }
    let mut bad = good.clone();
    bad["histograms"]["lag"] = Value::from("not a histogram");
    assert!(!errors(&schema, &bad).is_empty());
}

#[test]
fn schema_lists_match_the_code() {
    let schema = schema();
    let outcomes: Vec<&str> = schema["$defs"]["outcome"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        Outcome::ALL.iter().map(|o| o.name()).collect::<Vec<_>>()
    );
    let phases: Vec<&str> = schema["$defs"]["phases"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        Phase::TIMED.iter().map(|p| p.name()).collect::<Vec<_>>()
    );
}
