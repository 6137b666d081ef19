//! AMF0 values: encode, and decode with a nesting limit so hostile bytes cannot
//! overflow the stack (rml_amf0 recurses without one). Objects keep key order.

use bytes::{BufMut, BytesMut};

/// Deepest object/array nesting accepted from a peer.
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmfError {
    #[error("AMF0 value truncated at byte {0}")]
    Truncated(usize),
    #[error("AMF0 marker 0x{marker:02x} at byte {at} is not supported")]
    Marker { marker: u8, at: usize },
    #[error("AMF0 string at byte {0} is not UTF-8")]
    Utf8(usize),
    #[error("AMF0 values nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::String(s.to_string())
    }
    pub fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
    /// A property of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => {
                p.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

pub fn encode(values: &[Value], out: &mut BytesMut) {
    for v in values {
        encode_value(v, out);
    }
}

/// A u16-length string (object keys, short strings). Longer keys are cut on
/// a character boundary, so they stay UTF-8; nothing we send comes near that.
fn encode_string_body(s: &str, out: &mut BytesMut) {
    let bytes = &s.as_bytes()[..s.floor_char_boundary(u16::MAX as usize)];
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

fn encode_pairs(pairs: &[(String, Value)], out: &mut BytesMut) {
    for (k, v) in pairs {
        encode_string_body(k, out);
        encode_value(v, out);
    }
    out.put_slice(&[0, 0, 9]);
}

fn encode_value(v: &Value, out: &mut BytesMut) {
    match v {
        Value::Number(n) => {
            out.put_u8(0);
            out.put_f64(*n);
        }
        Value::Boolean(b) => {
            out.put_u8(1);
            out.put_u8(u8::from(*b));
        }
        // Values over 64 KiB go as a long string (marker 12, u32 length).
        Value::String(s) if s.len() > u16::MAX as usize => {
            let bytes = &s.as_bytes()[..s.floor_char_boundary(u32::MAX as usize)];
            out.put_u8(12);
            out.put_u32(bytes.len() as u32);
            out.put_slice(bytes);
        }
        Value::String(s) => {
            out.put_u8(2);
            encode_string_body(s, out);
        }
        Value::Object(p) => {
            out.put_u8(3);
            encode_pairs(p, out);
        }
        Value::Null => out.put_u8(5),
        Value::Undefined => out.put_u8(6),
        Value::EcmaArray(p) => {
            out.put_u8(8);
            out.put_u32(p.len() as u32);
            encode_pairs(p, out);
        }
        Value::StrictArray(items) => {
            out.put_u8(10);
            out.put_u32(items.len() as u32);
            for i in items {
                encode_value(i, out);
            }
        }
    }
}

/// Decodes every value in `bytes`.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Value>, AmfError> {
    let mut r = Reader { bytes, pos: 0 };
    let mut out = Vec::new();
    while r.pos < bytes.len() {
        out.push(r.value(0)?);
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], AmfError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(AmfError::Truncated(self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, AmfError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, AmfError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self, len: usize) -> Result<String, AmfError> {
        let at = self.pos;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| AmfError::Utf8(at))
    }
    fn pairs(&mut self, depth: usize) -> Result<Vec<(String, Value)>, AmfError> {
        let mut out = Vec::new();
        loop {
            let len = self.u16()? as usize;
            if len == 0 {
                // Object end marker (0x09); tolerate a missing one at the very end.
                if self.pos < self.bytes.len() && self.bytes[self.pos] == 9 {
                    self.pos += 1;
                }
                return Ok(out);
            }
            let key = self.string(len)?;
            let v = self.value(depth + 1)?;
            out.push((key, v));
        }
    }
    fn value(&mut self, depth: usize) -> Result<Value, AmfError> {
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        let at = self.pos;
        let marker = self.u8()?;
        Ok(match marker {
            0 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Number(f64::from_be_bytes(a))
            }
            1 => Value::Boolean(self.u8()? != 0),
            2 => {
                let len = self.u16()? as usize;
                Value::String(self.string(len)?)
            }
            3 => Value::Object(self.pairs(depth)?),
            5 => Value::Null,
            6 => Value::Undefined,
            8 => {
                let _count = self.u32()?;
                Value::EcmaArray(self.pairs(depth)?)
            }
            10 => {
                let count = self.u32()? as usize;
                // Each item takes at least one byte: a count past the rest is a lie.
                if count > self.bytes.len() - self.pos {
                    return Err(AmfError::Truncated(self.pos));
                }
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            11 => {
                // Date: f64 ms + i16 time zone. Kept as its number.
                let b = self.take(10)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[..8]);
                Value::Number(f64::from_be_bytes(a))
            }
            12 => {
                let len = self.u32()? as usize;
                Value::String(self.string(len)?)
            }
            _ => return Err(AmfError::Marker { marker, at }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let values = vec![
            Value::str("connect"),
            Value::Number(1.0),
            Value::obj(&[
                ("app", Value::str("live")),
                ("fpad", Value::Boolean(false)),
                ("n", Value::Null),
            ]),
            Value::EcmaArray(vec![("w".into(), Value::Number(640.0))]),
            Value::StrictArray(vec![Value::Undefined, Value::Number(2.5)]),
        ];
        let mut out = BytesMut::new();
        encode(&values, &mut out);
        assert_eq!(decode_all(&out).unwrap(), values);
    }

    #[test]
    fn known_bytes() {
        // "_result", 1.0, null
        let bytes = [
            2, 0, 7, b'_', b'r', b'e', b's', b'u', b'l', b't', 0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 5,
        ];
        assert_eq!(
            decode_all(&bytes).unwrap(),
            vec![Value::str("_result"), Value::Number(1.0), Value::Null]
        );
    }

    /// Found by the `amf0_command` target's round-trip property applied to a
    /// string over 64 KiB (beyond the fuzzer's input sizes): the encoder cut
    /// it at byte 65535, inside the two-byte `é`, so the peer got invalid
    /// UTF-8 and the string did not decode. The ingest echoes the stream name
    /// in its onStatus description, so a client could trigger it.
    #[test]
    fn fuzz_regression_long_string_cut_mid_character() {
        let long = "\u{e9}".repeat(40_000);
        let mut out = BytesMut::new();
        encode(&[Value::String(long.clone())], &mut out);
        let decoded = decode_all(&out).map_err(|e| e.to_string());
        assert!(
            decoded == Ok(vec![Value::String(long.clone())]),
            "{:?}",
            decoded.err()
        );
        // Keys have a 16-bit length: cut, but on a character boundary.
        out.clear();
        encode(&[Value::obj(&[(long.as_str(), Value::Null)])], &mut out);
        let decoded = decode_all(&out).map_err(|e| e.to_string());
        let Ok([Value::Object(pairs)]) = decoded.as_deref() else {
            panic!("a long key does not decode: {:?}", decoded.err());
        };
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].0.len(), 65_534);
        assert!(long.starts_with(&pairs[0].0));
    }

    #[test]
    fn hostile_inputs_are_errors_not_panics() {
        assert_eq!(decode_all(&[2, 0, 9, b'a']), Err(AmfError::Truncated(3)));
        assert_eq!(
            decode_all(&[0x11]),
            Err(AmfError::Marker {
                marker: 0x11,
                at: 0
            })
        );
        assert_eq!(
            decode_all(&[10, 0xff, 0xff, 0xff, 0xff, 5]),
            Err(AmfError::Truncated(5))
        );
        // 10,000 nested objects: refused, no stack overflow.
        let mut deep = Vec::new();
        for _ in 0..10_000 {
            deep.extend_from_slice(&[3, 0, 1, b'a']);
        }
        assert_eq!(decode_all(&deep), Err(AmfError::TooDeep));
        assert_eq!(decode_all(&[2, 0, 2, 0xff, 0xfe]), Err(AmfError::Utf8(3)));
        // Every prefix of a valid command decodes or errors cleanly.
        let mut out = BytesMut::new();
        encode(
            &[
                Value::str("onStatus"),
                Value::Number(0.0),
                Value::Null,
                Value::obj(&[("code", Value::str("NetStream.Publish.Start"))]),
            ],
            &mut out,
        );
        for n in 0..out.len() {
            let _ = decode_all(&out[..n]);
        }
    }
}
