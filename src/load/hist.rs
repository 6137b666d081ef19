//! Latency histograms: recorded in microseconds, reported in milliseconds, and
//! carried in the JSON report as base64 HdrHistogram V2 so runs merge exactly.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use serde::{Deserialize, Serialize, Serializer};

/// Significant value digits of every histogram pushprobe writes.
pub const SIGFIG: u8 = 3;
/// Recorded unit per reported unit: values are µs, reports are ms.
pub const MICROS_PER_MS: f64 = 1000.0;

/// A latency histogram in microseconds (3 significant digits, auto-resizing).
/// In JSON: a base64 string of its uncompressed V2 serialization.
#[derive(Debug, Clone, PartialEq)]
pub struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Self::new()
    }
}

impl Hist {
    pub fn new() -> Self {
        // `new` fails only for more than 5 significant digits.
        let mut h = Histogram::new(SIGFIG).expect("3 significant digits is a valid histogram");
        h.auto(true);
        Hist(h)
    }

    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        // Auto-resize grows the range; only a value past what any histogram
        // can hold is clamped.
        if self.0.record(us).is_err() {
            self.0.saturating_record(us);
        }
    }

    /// Adds every count of `other`: exact, since both use the same layout.
    pub fn add(&mut self, other: &Hist) -> Result<(), hdrhistogram::AdditionError> {
        self.0.add(&other.0)
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn inner(&self) -> &Histogram<u64> {
        &self.0
    }

    pub fn into_inner(self) -> Histogram<u64> {
        self.0
    }

    /// The value at `quantile` (0..=1), in ms.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        us_to_ms(self.0.value_at_quantile(quantile))
    }

    pub fn max_ms(&self) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        us_to_ms(self.0.max())
    }

    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            count: self.count(),
            p50: self.quantile_ms(0.5),
            p90: self.quantile_ms(0.9),
            p99: self.quantile_ms(0.99),
            p99_9: self.quantile_ms(0.999),
            max: self.max_ms(),
        }
    }

    /// Uncompressed V2 bytes, base64.
    pub fn to_base64(&self) -> Result<String, hdrhistogram::serialization::V2SerializeError> {
        let mut bytes = Vec::new();
        V2Serializer::new().serialize(&self.0, &mut bytes)?;
        Ok(STANDARD.encode(bytes))
    }

    /// Parses what `to_base64` wrote. Checks the header before handing the
    /// bytes to the decoder, so hostile input is an error, never a panic or a
    /// huge allocation.
    pub fn from_base64(text: &str) -> Result<Hist, HistError> {
        let bytes = STANDARD.decode(text.trim()).map_err(HistError::Base64)?;
        check_v2(&bytes)?;
        let mut h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| HistError::Decode(e.to_string()))?;
        h.auto(true);
        Ok(Hist(h))
    }
}

/// A value in µs as ms (3 decimals, exact in decimal).
pub fn us_to_ms(us: u64) -> f64 {
    us as f64 / MICROS_PER_MS
}

/// Latency percentiles in ms.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// Why a serialized histogram was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum HistError {
    #[error("histogram is not base64: {0}")]
    Base64(base64::DecodeError),
    #[error("histogram is not an uncompressed HdrHistogram V2 encoding: {0}")]
    Format(&'static str),
    #[error("histogram does not decode: {0}")]
    Decode(String),
}

const V2_COOKIE: u32 = 0x1c84_9313;
const V2_HEADER: usize = 40;

fn check_v2(bytes: &[u8]) -> Result<(), HistError> {
    let header = bytes
        .get(..V2_HEADER)
        .ok_or(HistError::Format("shorter than the 40-byte header"))?;
    let u32_at =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[i..i + 8]);
        u64::from_be_bytes(b)
    };
    if u32_at(0) != V2_COOKIE {
        return Err(HistError::Format("wrong cookie"));
    }
    let payload = &bytes[V2_HEADER..];
    if usize::try_from(u32_at(4)).ok() != Some(payload.len()) {
        return Err(HistError::Format("payload length does not match"));
    }
    if u32_at(12) != u32::from(SIGFIG) || u64_at(16) != 1 {
        return Err(HistError::Format("not 3 significant digits from 1 µs"));
    }
    // The decoder negates run lengths of zeros; i64::MIN (varint u64::MAX)
    // cannot be negated, so refuse it here.
    let mut rest = payload;
    while !rest.is_empty() {
        let (value, used) = varint(rest);
        if value == u64::MAX {
            return Err(HistError::Format("counts hold an impossible run of zeros"));
        }
        rest = &rest[used.min(rest.len())..];
    }
    Ok(())
}

/// LEB128-style varint as HdrHistogram writes it (the 9th byte holds 8 bits).
fn varint(bytes: &[u8]) -> (u64, usize) {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(9).enumerate() {
        if i == 8 {
            return (value | (u64::from(b) << 56), 9);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    (value, bytes.len())
}

impl Serialize for Hist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.to_base64().map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Hist::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values_us: &[u64]) -> Hist {
        let mut h = Hist::new();
        for &v in values_us {
            h.record(Duration::from_micros(v));
        }
        h
    }

    #[test]
    fn percentiles_in_ms() {
        let h = hist(&(1..=1000).map(|i| i * 1000).collect::<Vec<_>>());
        let p = h.percentiles();
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50, 500.223);
        assert_eq!(p.p90, 900.095);
        assert_eq!(p.max, 1000.447);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Hist::new().percentiles(), Percentiles::default());
    }

    #[test]
    fn base64_round_trip() {
        let h = hist(&[1, 10, 100, 1000, 10_000, 100_000, 5_000_000]);
        let text = h.to_base64().unwrap();
        let back = Hist::from_base64(&text).unwrap();
        assert_eq!(back, h);
        assert!(back.inner().is_auto_resize());
    }

    #[test]
    fn bad_encodings_are_errors() {
        assert!(matches!(
            Hist::from_base64("not base64!"),
            Err(HistError::Base64(_))
        ));
        assert!(matches!(
            Hist::from_base64("AAAA"),
            Err(HistError::Format(_))
        ));
        let good = STANDARD.decode(hist(&[5, 7]).to_base64().unwrap()).unwrap();
        let mut truncated = good.clone();
        truncated.pop();
        assert!(Hist::from_base64(&STANDARD.encode(&truncated)).is_err());
        let mut other_digits = good.clone();
        other_digits[15] = 2;
        assert!(Hist::from_base64(&STANDARD.encode(&other_digits)).is_err());
        // A run of i64::MIN zeros would make the decoder negate i64::MIN.
        let mut hostile = good[..V2_HEADER].to_vec();
        hostile.extend_from_slice(&[0xff; 9]);
        hostile[4..8].copy_from_slice(&9u32.to_be_bytes());
        assert!(matches!(
            Hist::from_base64(&STANDARD.encode(&hostile)),
            Err(HistError::Format(_))
        ));
        // A huge zero run then a count lands outside the array: an error.
        let mut far = good[..V2_HEADER].to_vec();
        far.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0x0f, 0x02]);
        far[4..8].copy_from_slice(&6u32.to_be_bytes());
        assert!(Hist::from_base64(&STANDARD.encode(&far)).is_err());
    }
}
