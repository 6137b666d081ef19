//! Micro benchmarks (issue 6): the media chunk writer, FLV loading, URL
//! signing and the ingest's chunk decoding. Run: `cargo bench --bench micro`.

use std::hint::black_box;

use bytes::BytesMut;
use pushprobe::flv;
use pushprobe::media::{Cursor, MediaPlan};
use pushprobe::rtmp::chunk::{ChunkDecoder, MEDIA_HEADER_MAX};
use pushprobe::secret::Secret;
use pushprobe::sign::{self, PushUrl, Scheme, UrlSpec};

fn main() {
    divan::main();
}

const SD: &[u8] = include_bytes!("../fixtures/sd-360p.flv");

/// Per media message on the fast path: header for the next tag (fmt 1
/// delta) plus the shared pre-chunked body reference. No allocation.
#[divan::bench]
fn media_message_header(b: divan::Bencher) {
    let plan = MediaPlan::new(&flv::default_fixture(), 4096);
    let mut cursor = Cursor::new(&plan, 0);
    let mut hdr = [0u8; MEDIA_HEADER_MAX];
    b.bench_local(|| {
        let (n, tag, due) = cursor.next(&plan, 1, &mut hdr);
        black_box((n, tag.body.len(), due))
    });
}

/// Once per run: parse the 10 s fixture (shared buffer, no per-tag copy).
#[divan::bench]
fn flv_parse_sd_fixture() -> flv::Fixture {
    flv::parse_bytes(bytes::Bytes::from_static(black_box(SD))).unwrap()
}

/// Once per run: pre-chunk every tag of the fixture at 4096.
#[divan::bench]
fn media_plan_prechunk(b: divan::Bencher) {
    let fixture = flv::default_fixture();
    b.bench_local(|| MediaPlan::new(black_box(&fixture), 4096));
}

#[divan::bench]
fn sign_url() -> PushUrl {
    let spec = UrlSpec {
        scheme: Scheme::Rtmp,
        domain: "livepush.example.com".into(),
        port: None,
        app: "live".into(),
        stream: "load-12345".into(),
    };
    let key = Secret::new("e12c46f2612d5106e2034781ab261ca3".into());
    sign::sign_url(black_box(&spec), &key, black_box(1_546_064_025)).unwrap()
}

#[divan::bench]
fn parse_and_check_url() -> sign::SecretCheck {
    let url = PushUrl::parse(black_box(
        "rtmp://livepush.example.com/live/test?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099",
    ))
    .unwrap();
    let keys = sign::Keys {
        primary: Some(Secret::new("e12c46f2612d5106e2034781ab261ca3".into())),
        backup: None,
    };
    sign::check_secret(&url, &keys)
}

/// Ingest side: decode one second of pre-chunked media (all tags due in 1 s).
#[divan::bench]
fn ingest_decode_one_second(b: divan::Bencher) {
    let plan = MediaPlan::new(&flv::default_fixture(), 4096);
    let mut cursor = Cursor::new(&plan, 0);
    let mut wire = BytesMut::new();
    let mut hdr = [0u8; MEDIA_HEADER_MAX];
    while cursor.next_due_ms(&plan) < 1000 {
        let (n, tag, _) = cursor.next(&plan, 1, &mut hdr);
        wire.extend_from_slice(&hdr[..n]);
        wire.extend_from_slice(&tag.body);
    }
    let wire = wire.freeze();
    b.bench_local(|| {
        let mut dec = ChunkDecoder::new(16 << 20);
        dec.set_chunk_size(4096).unwrap();
        let mut buf = BytesMut::from(&wire[..]);
        let mut n = 0;
        while let Some(m) = dec.decode(&mut buf).unwrap() {
            n += m.payload.len();
        }
        n
    });
}
