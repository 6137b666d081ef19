//! The callback event: lenient parsing of Tencent's push / interruption body,
//! the sign and `t` check, and renderings for people and machines. Pure.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::Reject;
use crate::errcode::{self, Errcode};
use crate::secret::Secret;
use crate::sign;

/// `event_type` of a push that started.
pub const EVENT_PUSH: i64 = 1;
/// `event_type` of a push that was interrupted (ended).
pub const EVENT_INTERRUPT: i64 = 0;

/// One push (`event_type` 1) or interruption (`event_type` 0) callback, with every
/// field of Tencent's docs. Parsing is lenient: numbers may come as strings and
/// strings as numbers; missing optional fields take their default; unknown fields
/// are kept in `extra`. `t` and `sign` are required. Serializes with Tencent's
/// types (`push_duration` and `sequence` as strings, `t` as a number).
///
/// `Debug` redacts `sign` and the txSecret in `stream_param`.
#[derive(Clone, Default, PartialEq, Serialize)]
pub struct CallbackEvent {
    pub appid: u64,
    /// Push domain.
    pub app: String,
    /// App path (`live`).
    pub appname: String,
    pub stream_id: String,
    pub channel_id: String,
    pub event_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<i64>,
    /// Identifies one push: its push and interruption events share it.
    pub sequence: String,
    pub node: String,
    pub user_ip: String,
    /// The push URL's query string, txSecret included: treat as secret.
    pub stream_param: String,
    /// Milliseconds the push lasted (interruption events only).
    #[serde(
        serialize_with = "ser_opt_as_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub push_duration: Option<u64>,
    pub errcode: i64,
    pub errmsg: String,
    pub set_id: i64,
    pub width: i64,
    pub height: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idc_id: Option<i64>,
    /// Unix seconds at which the notification expires.
    pub t: u64,
    /// `t` exactly as received: the sign is over this text. Empty means `t` in decimal.
    #[serde(skip)]
    pub t_text: String,
    pub sign: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn ser_opt_as_string<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_str(&n.to_string()),
        None => s.serialize_none(),
    }
}

impl fmt::Debug for CallbackEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackEvent")
            .field("appid", &self.appid)
            .field("app", &self.app)
            .field("appname", &self.appname)
            .field("stream_id", &self.stream_id)
            .field("channel_id", &self.channel_id)
            .field("event_time", &self.event_time)
            .field("event_type", &self.event_type)
            .field("sequence", &self.sequence)
            .field("node", &self.node)
            .field("user_ip", &self.user_ip)
            .field("stream_param", &sign::redact_query_in(&self.stream_param))
            .field("push_duration", &self.push_duration)
            .field("errcode", &self.errcode)
            .field("errmsg", &self.errmsg)
            .field("set_id", &self.set_id)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("idc_id", &self.idc_id)
            .field("t", &self.t_text())
            .field("sign", &"***")
            .field("extra", &self.extra.len())
            .finish()
    }
}

impl<'de> Deserialize<'de> for CallbackEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        CallbackEvent::from_map(map).map_err(serde::de::Error::custom)
    }
}

impl CallbackEvent {
    /// Parses a callback body. Anything but a JSON object is `Malformed`.
    pub fn from_json(body: &[u8]) -> Result<CallbackEvent, Reject> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => CallbackEvent::from_map(map),
            Ok(_) => Err(Reject::Malformed("body is not a JSON object".into())),
            Err(e) => Err(Reject::Malformed(format!("body is not JSON: {e}"))),
        }
    }

    /// Builds an event from a JSON object, converting each field leniently.
    pub fn from_map(mut m: Map<String, Value>) -> Result<CallbackEvent, Reject> {
        let m = &mut m;
        let (t, t_text) = take_t(m)?;
        let sign = take_string(m, "sign")?.ok_or_else(|| missing("sign"))?;
        let ev = CallbackEvent {
            appid: take_u64(m, "appid")?.unwrap_or(0),
            app: take_string(m, "app")?.unwrap_or_default(),
            appname: take_string(m, "appname")?.unwrap_or_default(),
            stream_id: take_string(m, "stream_id")?.unwrap_or_default(),
            channel_id: take_string(m, "channel_id")?.unwrap_or_default(),
            event_time: take_i64(m, "event_time")?.unwrap_or(0),
            event_type: take_i64(m, "event_type")?,
            sequence: take_string(m, "sequence")?.unwrap_or_default(),
            node: take_string(m, "node")?.unwrap_or_default(),
            user_ip: take_string(m, "user_ip")?.unwrap_or_default(),
            stream_param: take_string(m, "stream_param")?.unwrap_or_default(),
            push_duration: take_u64(m, "push_duration")?,
            errcode: take_i64(m, "errcode")?.unwrap_or(0),
            errmsg: take_string(m, "errmsg")?.unwrap_or_default(),
            set_id: take_i64(m, "set_id")?.unwrap_or(0),
            width: take_i64(m, "width")?.unwrap_or(0),
            height: take_i64(m, "height")?.unwrap_or(0),
            idc_id: take_i64(m, "idc_id")?,
            t,
            t_text,
            sign,
            extra: std::mem::take(m),
        };
        Ok(ev)
    }

    /// The text the sign covers: `t` as received, or in decimal if built locally.
    pub fn t_text(&self) -> Cow<'_, str> {
        if self.t_text.is_empty() {
            Cow::Owned(self.t.to_string())
        } else {
            Cow::Borrowed(&self.t_text)
        }
    }
}

fn missing(name: &str) -> Reject {
    Reject::Malformed(format!("missing field `{name}`"))
}

fn wrong_type(name: &str, want: &str) -> Reject {
    Reject::Malformed(format!("field `{name}` must be {want}"))
}

/// `t`: a non-negative integer, as a JSON number or a string of digits.
fn take_t(m: &mut Map<String, Value>) -> Result<(u64, String), Reject> {
    let bad = || wrong_type("t", "a non-negative integer (Unix seconds)");
    let text = match m.remove("t") {
        None | Some(Value::Null) => return Err(missing("t")),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s,
        Some(_) => return Err(bad()),
    };
    let t = text.parse::<u64>().map_err(|_| bad())?;
    Ok((t, text))
}

fn take_string(m: &mut Map<String, Value>, name: &str) -> Result<Option<String>, Reject> {
    match m.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(wrong_type(name, "a string")),
    }
}

/// An integer from a JSON number (integral floats allowed) or a string of one.
/// Null, missing and an empty string are `None`.
fn take_int(m: &mut Map<String, Value>, name: &str) -> Result<Option<i128>, Reject> {
    let bad = || wrong_type(name, "an integer");
    let from_f64 = |f: f64| {
        (f.fract() == 0.0 && f.abs() < 1.8e19)
            .then_some(f as i128)
            .ok_or_else(bad)
    };
    match m.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Ok(Some(i128::from(i))),
            (_, Some(u), _) => Ok(Some(i128::from(u))),
            (_, _, Some(f)) => from_f64(f).map(Some),
            _ => Err(bad()),
        },
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else if let Ok(i) = s.parse::<i128>() {
                Ok(Some(i))
            } else {
                s.parse::<f64>()
                    .map_err(|_| bad())
                    .and_then(from_f64)
                    .map(Some)
            }
        }
        Some(_) => Err(bad()),
    }
}

fn take_i64(m: &mut Map<String, Value>, name: &str) -> Result<Option<i64>, Reject> {
    take_int(m, name)?
        .map(|i| i64::try_from(i).map_err(|_| wrong_type(name, "a 64-bit integer")))
        .transpose()
}

fn take_u64(m: &mut Map<String, Value>, name: &str) -> Result<Option<u64>, Reject> {
    take_int(m, name)?
        .map(|i| u64::try_from(i).map_err(|_| wrong_type(name, "a non-negative integer")))
        .transpose()
}

/// Checks the sign (constant time, over `t` as received) and that `t` has not
/// passed. `t == now` is still valid.
pub fn verify(ev: &CallbackEvent, key: &Secret, now_unix: u64) -> Result<(), Reject> {
    if !sign::verify_callback_sign(key, &ev.t_text(), &ev.sign) {
        return Err(Reject::Forged);
    }
    if ev.t < now_unix {
        return Err(Reject::Stale {
            t: ev.t,
            now: now_unix,
        });
    }
    Ok(())
}

/// Control characters in a field would drive the terminal: show them escaped.
fn printable(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(s.escape_debug().to_string())
    } else {
        Cow::Borrowed(s)
    }
}

/// One line for people, txSecret redacted:
/// `push started  stream=s seq=.. from 1.2.3.4 720x1280 params=..` or
/// `push ended    stream=s seq=.. from .. errcode=1 (meaning) duration=12.3s ..`.
pub fn human_line(ev: &CallbackEvent) -> String {
    let label = match ev.event_type {
        Some(EVENT_PUSH) => "push started".to_string(),
        Some(EVENT_INTERRUPT) => "push ended".to_string(),
        Some(n) => format!("event {n}"),
        None => "event ?".to_string(),
    };
    let mut line = format!(
        "{label:<13} stream={} seq={} from {}",
        printable(&ev.stream_id),
        printable(&ev.sequence),
        printable(&ev.user_ip)
    );
    if ev.width != 0 || ev.height != 0 {
        line.push_str(&format!(" {}x{}", ev.width, ev.height));
    }
    if ev.event_type != Some(EVENT_PUSH) {
        let why = match Errcode(ev.errcode).meaning() {
            Some(m) => Cow::Borrowed(m),
            None if !ev.errmsg.is_empty() => printable(&ev.errmsg),
            None => Cow::Borrowed(errcode::UNKNOWN),
        };
        line.push_str(&format!(" errcode={} ({why})", ev.errcode));
    }
    if let Some(ms) = ev.push_duration {
        line.push_str(&format!(" duration={:.1}s", ms as f64 / 1000.0));
    }
    if !ev.stream_param.is_empty() {
        let params = sign::redact_query_in(&ev.stream_param);
        line.push_str(&format!(" params={}", printable(&params)));
    }
    line
}

/// The event as one JSON line, `sign` as `***` and every txSecret (in
/// `stream_param` and any extra field) redacted.
pub fn redacted_json(ev: &CallbackEvent) -> String {
    let mut ev = ev.clone();
    ev.sign = "***".into();
    ev.stream_param = sign::redact_query_in(&ev.stream_param);
    for v in ev.extra.values_mut() {
        redact_value(v);
    }
    serde_json::to_string(&ev)
        .unwrap_or_else(|e| json!({ "error": format!("cannot render event: {e}") }).to_string())
}

fn redact_value(v: &mut Value) {
    match v {
        Value::String(s) => *s = sign::redact_query_in(s),
        Value::Array(a) => a.iter_mut().for_each(redact_value),
        Value::Object(o) => o.values_mut().for_each(redact_value),
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod samples {
    //! Signed sample events (Tencent's, from seed 003) for tests.
    use serde_json::{Value, json};

    use crate::secret::Secret;
    use crate::sign;

    pub const KEY: &str = "cbkey";
    pub const NOW: u64 = 1_703_731_478;

    pub fn key() -> Secret {
        Secret::new(KEY.into())
    }

    /// Sets `t` and a `sign` made with [`KEY`].
    pub fn signed(mut v: Value, t: u64) -> String {
        v["t"] = json!(t);
        v["sign"] = json!(sign::callback_sign(&key(), t));
        v.to_string()
    }

    /// Tencent's push sample, signed for `NOW + 600`.
    pub fn push_event(seq: &str) -> String {
        signed(
            json!({
                "app": "test.domain.com", "appid": 12345678, "appname": "live",
                "channel_id": "test_stream", "errcode": 0, "errmsg": "ok",
                "event_time": NOW, "event_type": 1, "height": 1280, "idc_id": 34,
                "node": "42.81.194.37", "sequence": seq, "set_id": 2,
                "stream_id": "test_stream",
                "stream_param": "txSecret=0123abcd&txTime=65A0B0C0",
                "user_ip": "1.1.1.1", "width": 720
            }),
            NOW + 600,
        )
    }

    /// Tencent's interruption sample, signed for `NOW + 600`.
    pub fn interrupt_event(seq: &str) -> String {
        signed(
            json!({
                "app": "test.domain.com", "appid": 12345678, "appname": "live",
                "channel_id": "test_stream", "errcode": 1,
                "errmsg": "The push client actively stopped the push",
                "event_time": NOW, "event_type": 0, "height": 0, "idc_id": 34,
                "node": "42.81.194.37", "push_duration": "128581", "sequence": seq,
                "set_id": 2, "stream_id": "test_stream",
                "stream_param": "stream_param=test", "user_ip": "1.1.1.1", "width": 0
            }),
            NOW + 600,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;

    #[test]
    fn sign_is_over_t_as_received() {
        // "01703732078" and 1703732078 are the same time but not the same text.
        let with_zero = format!(
            r#"{{"t":"0{t}","sign":"{}"}}"#,
            sign::callback_sign(&key(), NOW + 600),
            t = NOW + 600
        );
        let ev = CallbackEvent::from_json(with_zero.as_bytes()).unwrap();
        assert_eq!(ev.t, NOW + 600);
        assert_eq!(verify(&ev, &key(), NOW), Err(Reject::Forged));
    }

    #[test]
    fn verify_boundaries() {
        let ev = CallbackEvent::from_json(push_event("1").as_bytes()).unwrap();
        assert_eq!(verify(&ev, &key(), NOW), Ok(()));
        assert_eq!(verify(&ev, &key(), NOW + 600), Ok(()));
        assert_eq!(
            verify(&ev, &key(), NOW + 601),
            Err(Reject::Stale {
                t: NOW + 600,
                now: NOW + 601
            })
        );
        assert_eq!(
            verify(&ev, &Secret::new("nope".into()), NOW),
            Err(Reject::Forged)
        );
        // A forged event with an old t is reported as forged, not stale.
        assert_eq!(
            verify(&ev, &Secret::new("nope".into()), NOW + 601),
            Err(Reject::Forged)
        );
    }

    #[test]
    fn serde_round_trip_uses_tencent_types() {
        let ev = CallbackEvent::from_json(interrupt_event("5").as_bytes()).unwrap();
        let v: Value = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["push_duration"], "128581");
        assert_eq!(v["sequence"], "5");
        assert_eq!(v["t"], NOW + 600);
        assert!(v.get("t_text").is_none());
        let back: CallbackEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, ev);
        let started = CallbackEvent::from_json(push_event("5").as_bytes()).unwrap();
        assert!(
            serde_json::to_value(&started)
                .unwrap()
                .get("push_duration")
                .is_none()
        );
    }

    #[test]
    fn human_line_and_json_redact_secrets() {
        let mut ev = CallbackEvent::from_json(push_event("42").as_bytes()).unwrap();
        ev.extra
            .insert("url".into(), json!(["rtmp://h/live/s?txSecret=zzz&a=1"]));
        let line = human_line(&ev);
        assert!(
            line.starts_with("push started  stream=test_stream seq=42 from 1.1.1.1 720x1280"),
            "{line}"
        );
        assert!(
            line.contains("params=txSecret=***&txTime=65A0B0C0"),
            "{line}"
        );
        let dbg = format!("{ev:?}");
        let json = redacted_json(&ev);
        for out in [&line, &dbg, &json] {
            assert!(!out.contains("0123abcd"), "{out}");
            assert!(!out.contains("zzz"), "{out}");
            assert!(!out.contains(&ev.sign), "{out}");
        }
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["sign"], "***");
        assert_eq!(v["stream_param"], "txSecret=***&txTime=65A0B0C0");
        assert!(!json.contains('\n'));

        let mut ended = CallbackEvent::from_json(interrupt_event("42").as_bytes()).unwrap();
        assert_eq!(
            human_line(&ended),
            "push ended    stream=test_stream seq=42 from 1.1.1.1 errcode=1 \
             (The push client actively stopped the push.) duration=128.6s params=stream_param=test"
        );
        ended.errcode = 99;
        ended.errmsg = "odd\x1b[31m".into();
        ended.stream_id = "evil\nline".into();
        let line = human_line(&ended);
        assert!(line.contains("errcode=99 (odd\\u{1b}[31m)"), "{line}");
        assert!(line.contains("stream=evil\\nline"), "{line}");
    }
}
