//! Unit tests of SRT admission: streamid forms, the rules, reject codes.

use super::*;
use crate::secret::Secret;
use crate::sign::{self, Keys};

const KEY: &str = "srt-test-key";
const NOW: u64 = 0x6000_0000;

fn keys() -> Keys {
    Keys {
        primary: Some(Secret::new(KEY.into())),
        backup: None,
    }
}

fn policy(keys: &Keys) -> Policy<'_> {
    Policy {
        app: "live",
        disabled: &[],
        keys,
        auth_delta: Duration::ZERO,
    }
}

/// A Tencent streamid signed with `key`, expiring at `tx_time`.
fn tencent(stream: &str, key: &str, tx_time: u64) -> String {
    let t = format!("{tx_time:X}");
    let secret = sign::tx_secret(&Secret::new(key.into()), stream, &t);
    format!("#!::h=push.example.com,r=live/{stream},txSecret={secret},txTime={t}")
}

#[test]
fn parses_tencent_form_keys_in_any_order() {
    let p = parse_stream_id("#!::txTime=6000,r=live/s1,h=d.example.com,txSecret=ab").unwrap();
    assert_eq!(p.host.as_deref(), Some("d.example.com"));
    assert_eq!((p.app.as_str(), p.stream.as_str()), ("live", "s1"));
    assert_eq!(p.query, "txTime=6000&txSecret=ab");
}

#[test]
fn parses_generic_and_bare_forms() {
    let p = parse_stream_id("#!::r=live/s2,m=publish").unwrap();
    assert_eq!(
        (p.app.as_str(), p.stream.as_str(), p.query.as_str()),
        ("live", "s2", "")
    );
    let p = parse_stream_id("#!::r=live/s3?txTime=1&txSecret=2").unwrap();
    assert_eq!(p.query, "txTime=1&txSecret=2");
    let p = parse_stream_id("live/s4?txTime=1").unwrap();
    assert_eq!((p.stream.as_str(), p.query.as_str()), ("s4", "txTime=1"));
}

#[test]
fn bad_streamids_name_the_problem_and_their_code() {
    let cases = [
        ("", StreamIdError::Missing, code::BAD_REQUEST),
        ("#!::h=x", StreamIdError::NoResource, code::BAD_REQUEST),
        (
            "#!::r=s",
            StreamIdError::BadResource("s".into()),
            code::BAD_REQUEST,
        ),
        (
            "#!::r=a/b/c",
            StreamIdError::BadResource("a/b/c".into()),
            code::BAD_REQUEST,
        ),
        (
            "#!::r=live/s,m=request",
            StreamIdError::Mode("request".into()),
            code::BAD_MODE,
        ),
        (
            "#!::r=live/s,junk",
            StreamIdError::Entry("junk".into()),
            code::BAD_REQUEST,
        ),
    ];
    for (sid, err, c) in cases {
        let got = parse_stream_id(sid).unwrap_err();
        assert_eq!(got, err, "{sid:?}");
        assert_eq!(got.reject_code(), c, "{sid:?}");
    }
    // A malformed entry's txSecret is not echoed.
    for sid in [
        "#!::r=live/s,txSecret=abc&x",
        "#!::r=s?txSecret=abc",
        "s?txSecret=abc",
    ] {
        let e = parse_stream_id(sid).unwrap_err();
        assert!(!e.to_string().contains("abc"), "{e}");
    }
}

#[test]
fn rules_apply_with_tencent_sub_codes_and_srt_codes() {
    let k = keys();
    let pol = policy(&k);
    let ok = tencent("s", KEY, NOW + 60);
    assert_eq!(admit(Some(&ok), &pol, NOW).unwrap().stream, "s");
    let cases = [
        (
            tencent("s", KEY, NOW - 1),
            SubErrcode::TX_TIME_EXPIRED,
            code::FORBIDDEN,
        ),
        (
            tencent("s", "wrong", NOW + 60),
            SubErrcode::SIGNATURE_MISMATCH,
            code::FORBIDDEN,
        ),
        (
            "#!::r=live/s".to_string(),
            SubErrcode::NO_TX_TIME,
            code::UNAUTHORIZED,
        ),
        (
            format!("#!::r=live/s,txTime={:X}", NOW + 60),
            SubErrcode::NO_TX_SECRET,
            code::UNAUTHORIZED,
        ),
        (
            tencent("s", KEY, NOW + 60).replace("live/", "other/"),
            SubErrcode::APP_DISABLED,
            code::NOT_FOUND,
        ),
    ];
    for (sid, sub, c) in cases {
        let r = admit(Some(&sid), &pol, NOW).unwrap_err();
        assert_eq!(
            (r.refusal.sub_errcode, r.code),
            (sub, c),
            "{}",
            redact_query_in(&sid)
        );
        assert!(!r.refusal.errmsg.contains(KEY));
    }
    let r = admit(None, &pol, NOW).unwrap_err();
    assert_eq!(
        (r.refusal.sub_errcode, r.code),
        (SubErrcode::NONE, code::BAD_REQUEST)
    );
}

#[test]
fn duplicate_and_disabled_codes() {
    assert_eq!(reject_code(SubErrcode::STREAM_IN_USE), code::CONFLICT);
    assert_eq!(reject_code(SubErrcode::STREAM_BANNED), code::FORBIDDEN);
}

#[test]
fn sequence_header_round_trips_through_the_sps_reader() {
    // SPS of a 640x360 baseline stream (x264), as in the FLV fixtures' headers.
    let fx = crate::flv::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/sd-360p.flv"
    )))
    .unwrap();
    let header = fx
        .video_sequence_header
        .as_ref()
        .expect("a video sequence header");
    let record = &header.data[5..];
    let sps_len = usize::from(u16::from_be_bytes([record[6], record[7]]));
    let sps = &record[8..8 + sps_len];
    assert_eq!(sps_nal_dimensions(sps), Some((640, 360)));
    let mut probe = MediaProbe::default();
    assert_eq!(probe.feed(&[0x47; 10]), None);
}
