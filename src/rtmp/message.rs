//! RTMP message types: protocol control, user control, AMF0 commands and the
//! status replies (`_error` / `onStatus`) we keep code, level and description of.

use bytes::{BufMut, Bytes, BytesMut};

use super::amf0::{self, AmfError, Value};

pub const SET_CHUNK_SIZE: u8 = 1;
pub const ABORT: u8 = 2;
pub const ACK: u8 = 3;
pub const USER_CONTROL: u8 = 4;
pub const WINDOW_ACK_SIZE: u8 = 5;
pub const SET_PEER_BANDWIDTH: u8 = 6;
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const DATA_AMF3: u8 = 15;
pub const COMMAND_AMF3: u8 = 17;
pub const DATA_AMF0: u8 = 18;
pub const COMMAND_AMF0: u8 = 20;

/// Chunk stream ids we send on.
pub const CSID_CONTROL: u32 = 2;
pub const CSID_COMMAND: u32 = 3;
pub const CSID_AUDIO: u8 = 4;
pub const CSID_DATA: u8 = 5;
pub const CSID_VIDEO: u8 = 6;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("control message type {type_id} has {len} bytes, expected at least {want}")]
    ShortControl {
        type_id: u8,
        len: usize,
        want: usize,
    },
    #[error("command is not valid AMF0: {0}")]
    Amf(#[from] AmfError),
    #[error("command has {0} AMF values; a command needs at least a name and a transaction id")]
    ShortCommand(usize),
    #[error("command name is not a string")]
    CommandName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    SetChunkSize(u32),
    Abort(u32),
    Ack(u32),
    WindowAckSize(u32),
    SetPeerBandwidth(u32, u8),
    User(UserControl),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength(u32, u32),
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    Other(u16),
}

fn be32(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// Parses a protocol control (types 1-6) message; `None` for other types.
pub fn parse_control(type_id: u8, p: &[u8]) -> Result<Option<Control>, MessageError> {
    let need = |want: usize| {
        if p.len() < want {
            Err(MessageError::ShortControl {
                type_id,
                len: p.len(),
                want,
            })
        } else {
            Ok(())
        }
    };
    Ok(Some(match type_id {
        SET_CHUNK_SIZE => {
            need(4)?;
            // As sent: a top bit set is the session's to refuse (see
            // `session`), not ours to hide.
            Control::SetChunkSize(be32(p, 0))
        }
        ABORT => {
            need(4)?;
            Control::Abort(be32(p, 0))
        }
        ACK => {
            need(4)?;
            Control::Ack(be32(p, 0))
        }
        WINDOW_ACK_SIZE => {
            need(4)?;
            Control::WindowAckSize(be32(p, 0))
        }
        SET_PEER_BANDWIDTH => {
            need(5)?;
            Control::SetPeerBandwidth(be32(p, 0), p[4])
        }
        USER_CONTROL => {
            need(2)?;
            let event = u16::from_be_bytes([p[0], p[1]]);
            let arg = |n: usize| -> Result<u32, MessageError> {
                need(2 + 4 * n)?;
                Ok(be32(p, 2 + 4 * (n - 1)))
            };
            Control::User(match event {
                0 => UserControl::StreamBegin(arg(1)?),
                1 => UserControl::StreamEof(arg(1)?),
                2 => UserControl::StreamDry(arg(1)?),
                3 => UserControl::SetBufferLength(arg(1)?, arg(2)?),
                4 => UserControl::StreamIsRecorded(arg(1)?),
                6 => UserControl::PingRequest(arg(1)?),
                7 => UserControl::PingResponse(arg(1)?),
                other => UserControl::Other(other),
            })
        }
        _ => return Ok(None),
    }))
}

/// Encodes a control message as (type id, payload).
pub fn encode_control(c: &Control) -> (u8, Bytes) {
    let mut p = BytesMut::with_capacity(10);
    let type_id = match c {
        Control::SetChunkSize(n) => {
            p.put_u32(*n);
            SET_CHUNK_SIZE
        }
        Control::Abort(n) => {
            p.put_u32(*n);
            ABORT
        }
        Control::Ack(n) => {
            p.put_u32(*n);
            ACK
        }
        Control::WindowAckSize(n) => {
            p.put_u32(*n);
            WINDOW_ACK_SIZE
        }
        Control::SetPeerBandwidth(n, limit) => {
            p.put_u32(*n);
            p.put_u8(*limit);
            SET_PEER_BANDWIDTH
        }
        Control::User(u) => {
            let (event, args): (u16, &[u32]) = match u {
                UserControl::StreamBegin(s) => (0, std::slice::from_ref(s)),
                UserControl::StreamEof(s) => (1, std::slice::from_ref(s)),
                UserControl::StreamDry(s) => (2, std::slice::from_ref(s)),
                UserControl::StreamIsRecorded(s) => (4, std::slice::from_ref(s)),
                UserControl::PingRequest(s) => (6, std::slice::from_ref(s)),
                UserControl::PingResponse(s) => (7, std::slice::from_ref(s)),
                UserControl::SetBufferLength(s, ms) => {
                    p.put_u16(3);
                    p.put_u32(*s);
                    p.put_u32(*ms);
                    return (USER_CONTROL, p.freeze());
                }
                UserControl::Other(e) => (*e, &[]),
            };
            p.put_u16(event);
            for a in args {
                p.put_u32(*a);
            }
            USER_CONTROL
        }
    };
    (type_id, p.freeze())
}

/// An AMF0 command: name, transaction id, command object, further arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction_id: f64,
    pub object: Value,
    pub args: Vec<Value>,
}

impl Command {
    pub fn new(name: &str, transaction_id: f64, object: Value, args: Vec<Value>) -> Command {
        Command {
            name: name.to_string(),
            transaction_id,
            object,
            args,
        }
    }

    /// Parses an AMF0 command (type 20) or AMF3 command (type 17, whose
    /// payload is AMF0 after one format byte). Tolerates a missing command
    /// object; refuses fewer than two values.
    pub fn parse(type_id: u8, payload: &[u8]) -> Result<Command, MessageError> {
        let body = if type_id == COMMAND_AMF3 && !payload.is_empty() {
            &payload[1..]
        } else {
            payload
        };
        let mut values = amf0::decode_all(body)?.into_iter();
        let n = values.len();
        let (Some(name), Some(tid)) = (values.next(), values.next()) else {
            return Err(MessageError::ShortCommand(n));
        };
        let Value::String(name) = name else {
            return Err(MessageError::CommandName);
        };
        Ok(Command {
            name,
            transaction_id: tid.as_number().unwrap_or(0.0),
            object: values.next().unwrap_or(Value::Null),
            args: values.collect(),
        })
    }

    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(128);
        amf0::encode(
            &[
                Value::String(self.name.clone()),
                Value::Number(self.transaction_id),
                self.object.clone(),
            ],
            &mut out,
        );
        amf0::encode(&self.args, &mut out);
        out.freeze()
    }

    /// The status a `_result`, `_error` or `onStatus` carries: the info
    /// object is the first object argument (or the command object).
    pub fn status(&self) -> Option<StatusReply> {
        let info = self
            .args
            .iter()
            .chain(std::iter::once(&self.object))
            .find(|v| matches!(v, Value::Object(_) | Value::EcmaArray(_)))?;
        let field = |k: &str| info.get_str(k).map(str::to_string);
        let code = field("code")?;
        Some(StatusReply {
            code,
            level: field("level").unwrap_or_default(),
            description: field("description").unwrap_or_default(),
        })
    }
}

/// What a server said in a status reply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusReply {
    pub code: String,
    pub level: String,
    pub description: String,
}

impl StatusReply {
    pub fn is_error(&self) -> bool {
        self.level.eq_ignore_ascii_case("error")
            || self.code.ends_with(".Failed")
            || self.code.ends_with(".BadName")
            || self.code.ends_with(".Denied")
            || self.code.ends_with(".Rejected")
    }
}

/// Builds an onStatus info object.
pub fn status_object(level: &str, code: &str, description: &str) -> Value {
    Value::obj(&[
        ("level", Value::str(level)),
        ("code", Value::str(code)),
        ("description", Value::str(description)),
    ])
}

/// Enhanced RTMP FourCC info map flag: the client can encode (send) it.
pub const FOURCC_CAN_ENCODE: f64 = 2.0;

/// The publisher's `connect` command object. With `video_fourcc` (an Enhanced
/// RTMP codec is pushed) it also advertises it: v1 `fourCcList` and v2
/// `videoFourCcInfoMap` (CanEncode) and `capsEx` (0: no reconnect,
/// multitrack, ModEx or nanosecond offsets asked for). H.264 and legacy codec
/// id pushes send none of these, as ffmpeg 6.1+ does.
pub fn connect_object(app: &str, tc_url: &str, video_fourcc: Option<&str>) -> Value {
    let mut pairs = vec![
        ("app", Value::str(app)),
        ("type", Value::str("nonprivate")),
        ("flashVer", Value::str("FMLE/3.0 (compatible; pushprobe)")),
        ("tcUrl", Value::str(tc_url)),
    ];
    if let Some(fourcc) = video_fourcc {
        pairs.push(("fourCcList", Value::StrictArray(vec![Value::str(fourcc)])));
        pairs.push((
            "videoFourCcInfoMap",
            Value::obj(&[(fourcc, Value::Number(FOURCC_CAN_ENCODE))]),
        ));
        pairs.push(("capsEx", Value::Number(0.0)));
    }
    Value::obj(&pairs)
}

/// What a server's connect `_result` says about Enhanced RTMP: its
/// `fourCcList`, `videoFourCcInfoMap` and `capsEx`, each `None` when absent.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct FourCcReply {
    #[serde(rename = "fourCcList")]
    pub fourcc_list: Option<Vec<String>>,
    #[serde(rename = "videoFourCcInfoMap")]
    pub video_fourcc_info_map: Option<std::collections::BTreeMap<String, u32>>,
    #[serde(rename = "capsEx")]
    pub caps_ex: Option<u32>,
}

impl FourCcReply {
    /// Reads the fields from the `_result` command object or its info argument.
    pub fn from_result(cmd: &Command) -> FourCcReply {
        let mut reply = FourCcReply::default();
        for v in std::iter::once(&cmd.object).chain(&cmd.args) {
            if let Some(Value::StrictArray(list)) = v.get("fourCcList") {
                reply.fourcc_list.get_or_insert_with(|| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                });
            }
            if let Some(Value::Object(p) | Value::EcmaArray(p)) = v.get("videoFourCcInfoMap") {
                reply.video_fourcc_info_map.get_or_insert_with(|| {
                    p.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_number()? as u32)))
                        .collect()
                });
            }
            if let Some(n) = v.get("capsEx").and_then(Value::as_number) {
                reply.caps_ex.get_or_insert(n as u32);
            }
        }
        reply
    }

    /// An ingest's answer to a client's `fourCcList` (`None` when the client
    /// sent none): the FourCCs asked for that `takes` accepts (`*` asks for
    /// all of `ours`), each CanDecode|CanForward in the info map, capsEx 0.
    pub fn answer(
        client: &Value,
        ours: &[&str],
        takes: impl Fn(&str) -> bool,
    ) -> Option<FourCcReply> {
        let Some(Value::StrictArray(asked)) = client.get("fourCcList") else {
            return None;
        };
        let mut list: Vec<String> = Vec::new();
        for f in asked.iter().filter_map(Value::as_str) {
            let wanted: Vec<&str> = if f == "*" { ours.to_vec() } else { vec![f] };
            for w in wanted {
                if takes(w) && !list.iter().any(|l| l == w) {
                    list.push(w.to_string());
                }
            }
        }
        Some(FourCcReply {
            video_fourcc_info_map: Some(list.iter().map(|f| (f.clone(), 5)).collect()),
            fourcc_list: Some(list),
            caps_ex: Some(0),
        })
    }

    /// The reply as `_result` command object properties.
    pub fn properties(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        if let Some(l) = &self.fourcc_list {
            let list = l.iter().map(|f| Value::String(f.clone())).collect();
            out.push(("fourCcList".to_string(), Value::StrictArray(list)));
        }
        if let Some(m) = &self.video_fourcc_info_map {
            let map = m
                .iter()
                .map(|(k, &v)| (k.clone(), Value::Number(f64::from(v))))
                .collect();
            out.push(("videoFourCcInfoMap".to_string(), Value::Object(map)));
        }
        if let Some(c) = self.caps_ex {
            out.push(("capsEx".to_string(), Value::Number(f64::from(c))));
        }
        out
    }

    /// The server said nothing about Enhanced RTMP.
    pub fn is_silent(&self) -> bool {
        *self == FourCcReply::default()
    }

    /// Whether the server says it takes `fourcc`: `Some(true)` when listed
    /// (or `*`) in `fourCcList` or in the info map with any flag, `Some(false)`
    /// when it answered a list or map without it, `None` when silent.
    pub fn takes(&self, fourcc: &str) -> Option<bool> {
        let in_list = self
            .fourcc_list
            .as_ref()
            .map(|l| l.iter().any(|f| f == fourcc || f == "*"));
        let in_map = self.video_fourcc_info_map.as_ref().map(|m| {
            m.iter()
                .any(|(k, &flags)| (k == fourcc || k == "*") && flags != 0)
        });
        match (in_list, in_map) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(false) || b.unwrap_or(false)),
        }
    }
}

/// `@setDataFrame("onMetaData", ...)` payload for the metadata of a fixture:
/// the fixture's onMetaData body with `@setDataFrame` in front.
pub fn set_data_frame(on_metadata_body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(on_metadata_body.len() + 16);
    amf0::encode(&[Value::str("@setDataFrame")], &mut out);
    out.put_slice(on_metadata_body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_round_trip() {
        for c in [
            Control::SetChunkSize(4096),
            Control::Ack(12345),
            Control::WindowAckSize(2_500_000),
            Control::SetPeerBandwidth(2_500_000, 2),
            Control::User(UserControl::PingRequest(99)),
            Control::User(UserControl::SetBufferLength(1, 3000)),
            Control::User(UserControl::StreamBegin(1)),
        ] {
            let (t, p) = encode_control(&c);
            assert_eq!(parse_control(t, &p).unwrap(), Some(c));
        }
        assert_eq!(parse_control(VIDEO, &[]).unwrap(), None);
    }

    #[test]
    fn short_control_is_error() {
        assert_eq!(
            parse_control(SET_CHUNK_SIZE, &[0, 0]),
            Err(MessageError::ShortControl {
                type_id: 1,
                len: 2,
                want: 4
            })
        );
        assert!(parse_control(USER_CONTROL, &[0, 6, 0]).is_err());
        assert!(parse_control(WINDOW_ACK_SIZE, &[]).is_err());
    }

    #[test]
    fn command_round_trip_and_status() {
        let c = Command::new(
            "onStatus",
            0.0,
            Value::Null,
            vec![status_object(
                "error",
                "NetStream.Publish.BadName",
                "Already publishing",
            )],
        );
        let parsed = Command::parse(COMMAND_AMF0, &c.encode()).unwrap();
        assert_eq!(parsed, c);
        let s = parsed.status().unwrap();
        assert_eq!(s.code, "NetStream.Publish.BadName");
        assert_eq!(s.description, "Already publishing");
        assert!(s.is_error());
    }

    #[test]
    fn short_and_odd_commands() {
        // One value only: refused, not a panic (rml_rtmp panics here).
        let mut one = BytesMut::new();
        amf0::encode(&[Value::str("onStatus")], &mut one);
        assert_eq!(
            Command::parse(COMMAND_AMF0, &one),
            Err(MessageError::ShortCommand(1))
        );
        // Two values: accepted, no info object, so no status.
        let mut two = BytesMut::new();
        amf0::encode(&[Value::str("onStatus"), Value::Number(0.0)], &mut two);
        let c = Command::parse(COMMAND_AMF0, &two).unwrap();
        assert_eq!(c.object, Value::Null);
        assert_eq!(c.status(), None);
        let mut num = BytesMut::new();
        amf0::encode(&[Value::Number(1.0), Value::Number(0.0)], &mut num);
        assert_eq!(
            Command::parse(COMMAND_AMF0, &num),
            Err(MessageError::CommandName)
        );
        assert_eq!(
            Command::parse(COMMAND_AMF3, &[]),
            Err(MessageError::ShortCommand(0))
        );
    }

    #[test]
    fn connect_object_advertises_only_enhanced_codecs() {
        let plain = connect_object("live", "rtmp://h/live", None);
        assert_eq!(plain.get_str("app"), Some("live"));
        assert!(plain.get("fourCcList").is_none() && plain.get("capsEx").is_none());
        let hevc = connect_object("live", "rtmp://h/live", Some("hvc1"));
        assert_eq!(
            hevc.get("fourCcList"),
            Some(&Value::StrictArray(vec![Value::str("hvc1")]))
        );
        assert_eq!(
            hevc.get("videoFourCcInfoMap").and_then(|m| m.get("hvc1")),
            Some(&Value::Number(2.0))
        );
        assert_eq!(hevc.get("capsEx"), Some(&Value::Number(0.0)));
        // It survives an encode/parse round trip as a connect command.
        let cmd = Command::new("connect", 1.0, hevc.clone(), vec![]);
        assert_eq!(
            Command::parse(COMMAND_AMF0, &cmd.encode()).unwrap().object,
            hevc
        );
    }

    #[test]
    fn fourcc_reply_from_result() {
        let silent = Command::new(
            "_result",
            1.0,
            Value::obj(&[("fmsVer", Value::str("x"))]),
            vec![],
        );
        let r = FourCcReply::from_result(&silent);
        assert!(r.is_silent());
        assert_eq!(r.takes("hvc1"), None);
        let object = Value::obj(&[
            (
                "fourCcList",
                Value::StrictArray(vec![Value::str("av01"), Value::str("avc1")]),
            ),
            ("capsEx", Value::Number(1.0)),
        ]);
        let info = Value::obj(&[(
            "videoFourCcInfoMap",
            Value::EcmaArray(vec![
                ("av01".into(), Value::Number(5.0)),
                ("hvc1".into(), Value::Number(0.0)),
            ]),
        )]);
        let r = FourCcReply::from_result(&Command::new("_result", 1.0, object, vec![info]));
        assert_eq!(
            r.fourcc_list.as_deref(),
            Some(&["av01".to_string(), "avc1".to_string()][..])
        );
        assert_eq!(r.caps_ex, Some(1));
        assert_eq!(r.video_fourcc_info_map.as_ref().unwrap()["av01"], 5);
        assert_eq!(r.takes("av01"), Some(true));
        // Listed nowhere (flags 0 in the map do not count).
        assert_eq!(r.takes("hvc1"), Some(false));
        let star = FourCcReply {
            fourcc_list: Some(vec!["*".into()]),
            ..FourCcReply::default()
        };
        assert_eq!(star.takes("vp09"), Some(true));
        // An ingest's answer round-trips through its _result.
        let client = connect_object("live", "rtmp://h/live", Some("hvc1"));
        let answer = FourCcReply::answer(&client, &["hvc1", "av01"], |f| f == "av01").unwrap();
        assert_eq!(answer.takes("hvc1"), Some(false));
        let star = Value::obj(&[("fourCcList", Value::StrictArray(vec![Value::str("*")]))]);
        let all = FourCcReply::answer(&star, &["hvc1", "av01"], |_| true).unwrap();
        let result = Command::new("_result", 1.0, Value::Object(all.properties()), vec![]);
        assert_eq!(FourCcReply::from_result(&result), all);
        assert_eq!(all.fourcc_list.as_deref().unwrap().len(), 2);
        assert!(FourCcReply::answer(&Value::obj(&[]), &["hvc1"], |_| true).is_none());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["fourCcList"][0], "av01");
        assert_eq!(json["capsEx"], 1);
    }
}
