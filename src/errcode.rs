//! Tencent CSS interruption errcodes (seed 003's table) and the errcode-18
//! sub-codes of the interruption records: the one typed table the ingest,
//! its records, the callback sender and the callback receiver share, with
//! English meanings. Pure lookups.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What Tencent's table says of every errcode it does not list ("Other unknown values").
pub const UNKNOWN: &str = "Unknown reason. Please contact us by submitting a ticket.";

const CLIENT_STOPPED: &str = "The push client actively stopped the push.";
const INTERNAL: &str = "The live streaming system has an internal error.";
const RTMP_CONTENT: &str = "Abnormal RTMP protocol content.";
const NO_DATA: &str = "The system actively stopped the push with no data for a long time.";
const NETWORK: &str = "Abnormal stream pushing link network.";

/// An interruption errcode: the `errcode` of a callback or of an ingest
/// record. Any number is representable (a receiver takes what it is sent);
/// the consts name the ones pushprobe's ingest produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Errcode(pub i64);

impl Errcode {
    /// What a push-started callback carries, with errmsg "ok". (As an
    /// interruption errcode the table files 0 under unknown reasons.)
    pub const OK: Errcode = Errcode(0);
    /// "The push client actively stopped the push."
    pub const CLIENT_STOPPED: Errcode = Errcode(1);
    /// "Abnormal RTMP protocol content."
    pub const RTMP_CONTENT: Errcode = Errcode(6);
    /// "The size of a single RTMP frame exceeds the maximum value allowed."
    pub const FRAME_TOO_LARGE: Errcode = Errcode(7);
    /// "The system actively stopped the push with no data for a long time."
    pub const NO_DATA: Errcode = Errcode(8);
    /// A push the platform ended by command: replaced by a new push, or the
    /// ingest shutting down. Seed 003 has no code for a push replaced by
    /// another; 21 is not in its table at all (it falls under "Other unknown
    /// values"), so we use 10, which Tencent's Stream Interruption Records
    /// page (CSS doc 267/31083) lists as "The proxy layer received an
    /// interruption command" (seed 003 files 10 under internal errors).
    pub const ENDED_BY_COMMAND: Errcode = Errcode(10);
    /// "Abnormal stream pushing link network."
    pub const NETWORK: Errcode = Errcode(12);
    /// The ingest refused the push; the [`SubErrcode`] says why.
    pub const REFUSED: Errcode = Errcode(18);
    /// "Abnormal RTMP AMF data."
    pub const AMF: Errcode = Errcode(33);

    /// The meaning from seed 003's table; `None` for a code the table does
    /// not list (it files those under "Other unknown values", [`UNKNOWN`]).
    ///
    /// The table groups codes with a shared description (1-4 and 35; 5, 9,
    /// 11, 24; 8 and 20; 12-17; 0, 22, 25-32, 34); Tencent's "Stream
    /// Interruption Records" page lists the same codes one per row with the
    /// same grouping. 18 is not in seed 003's table: it is the code of a push
    /// the ingest refused, with the reason in a sub-code.
    pub fn meaning(self) -> Option<&'static str> {
        Some(match self.0 {
            1..=4 | 35 => CLIENT_STOPPED,
            5 | 9 | 10 | 11 | 24 => INTERNAL,
            6 | 23 => RTMP_CONTENT,
            7 => {
                "The size of a single RTMP frame exceeds the maximum value allowed by the configuration."
            }
            8 | 20 => NO_DATA,
            12..=17 => NETWORK,
            18 => "The ingest refused the push; the sub-code says why.",
            19 => "Third-party authentication failure.",
            33 => "Abnormal RTMP AMF data.",
            0 | 22 | 25..=32 | 34 => UNKNOWN,
            _ => return None,
        })
    }
}

impl fmt::Display for Errcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A sub-code of errcode 18 (push refused), from Tencent's interruption
/// records (DESIGN.md section 1); 0 on records of pushes that were not
/// refused.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SubErrcode(pub u32);

impl SubErrcode {
    /// Not a refusal.
    pub const NONE: SubErrcode = SubErrcode(0);
    /// The push app (path) is disabled; our ingest: an app it does not serve.
    pub const APP_DISABLED: SubErrcode = SubErrcode(304);
    /// The stream is banned; our ingest: a stream on its disabled list.
    pub const STREAM_BANNED: SubErrcode = SubErrcode(305);
    pub const NO_TX_TIME: SubErrcode = SubErrcode(500);
    pub const TX_TIME_EXPIRED: SubErrcode = SubErrcode(501);
    pub const NO_TX_SECRET: SubErrcode = SubErrcode(502);
    pub const SIGNATURE_MISMATCH: SubErrcode = SubErrcode(503);
    /// Too many pushes for this stream: the URL is already in use.
    pub const STREAM_IN_USE: SubErrcode = SubErrcode(601);

    /// The meaning from Tencent's interruption records; `None` otherwise.
    pub fn meaning(self) -> Option<&'static str> {
        Some(match self.0 {
            301..=303 => "The push domain is unknown or disabled.",
            304 => "The push app (path) is disabled.",
            305 => "The stream is banned.",
            500 => "The push URL has no txTime.",
            501 => "The push URL's txTime has expired.",
            502 => "The push URL has no txSecret.",
            503 => "The push URL's txSecret does not match (signature mismatch).",
            601 => "Too many pushes for this stream: the push URL is already in use.",
            602 => "The push has a lower priority than the existing push of this stream.",
            _ => return None,
        })
    }
}

impl fmt::Display for SubErrcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_seed_table() {
        let rows: &[(&[i64], &str)] = &[
            (&[1, 2, 3, 4, 35], CLIENT_STOPPED),
            (&[5, 9, 11, 24, 10], INTERNAL),
            (&[6, 23], RTMP_CONTENT),
            (&[8, 20], NO_DATA),
            (&[12, 13, 14, 15, 16, 17], NETWORK),
            (&[19], "Third-party authentication failure."),
            (&[33], "Abnormal RTMP AMF data."),
            (&[0, 22, 25, 26, 27, 28, 29, 30, 31, 32, 34], UNKNOWN),
        ];
        for (codes, want) in rows {
            for &c in *codes {
                assert_eq!(Errcode(c).meaning(), Some(*want), "errcode {c}");
            }
        }
        assert!(Errcode(7).meaning().unwrap().contains("single RTMP frame"));
        assert!(Errcode(18).meaning().unwrap().contains("sub-code"));
    }

    #[test]
    fn unlisted_codes_have_no_meaning() {
        for c in [-1, 21, 36, 100, 500, i64::MIN, i64::MAX] {
            assert_eq!(Errcode(c).meaning(), None, "errcode {c}");
        }
    }

    #[test]
    fn errcode_18_sub_codes() {
        assert!(SubErrcode(500).meaning().unwrap().contains("no txTime"));
        assert!(SubErrcode(501).meaning().unwrap().contains("expired"));
        assert!(SubErrcode(502).meaning().unwrap().contains("no txSecret"));
        assert!(SubErrcode(503).meaning().unwrap().contains("mismatch"));
        assert!(
            SubErrcode(601)
                .meaning()
                .unwrap()
                .contains("already in use")
        );
        assert!(
            SubErrcode(602)
                .meaning()
                .unwrap()
                .contains("lower priority")
        );
        for s in 301..=303 {
            assert!(SubErrcode(s).meaning().unwrap().contains("domain"), "{s}");
        }
        assert!(SubErrcode(304).meaning().unwrap().contains("app"));
        assert!(SubErrcode(305).meaning().unwrap().contains("banned"));
        for s in [0, 300, 306, 499, 504, 600, 603, u32::MAX] {
            assert_eq!(SubErrcode(s).meaning(), None, "{s}");
        }
    }

    #[test]
    fn named_codes_are_the_table_rows_they_name() {
        assert_eq!(Errcode::CLIENT_STOPPED.meaning(), Some(CLIENT_STOPPED));
        assert_eq!(Errcode::RTMP_CONTENT.meaning(), Some(RTMP_CONTENT));
        assert!(
            Errcode::FRAME_TOO_LARGE
                .meaning()
                .unwrap()
                .contains("single RTMP frame")
        );
        assert_eq!(Errcode::NO_DATA.meaning(), Some(NO_DATA));
        assert_eq!(Errcode::ENDED_BY_COMMAND.meaning(), Some(INTERNAL));
        assert_eq!(Errcode::NETWORK.meaning(), Some(NETWORK));
        assert!(Errcode::REFUSED.meaning().unwrap().contains("sub-code"));
        assert_eq!(Errcode::AMF.meaning(), Some("Abnormal RTMP AMF data."));
        let subs = [
            (SubErrcode::APP_DISABLED, "app"),
            (SubErrcode::STREAM_BANNED, "banned"),
            (SubErrcode::NO_TX_TIME, "no txTime"),
            (SubErrcode::TX_TIME_EXPIRED, "expired"),
            (SubErrcode::NO_TX_SECRET, "no txSecret"),
            (SubErrcode::SIGNATURE_MISMATCH, "mismatch"),
            (SubErrcode::STREAM_IN_USE, "already in use"),
        ];
        for (sub, word) in subs {
            assert!(sub.meaning().unwrap().contains(word), "{sub}");
        }
        assert_eq!(SubErrcode::NONE.meaning(), None);
        // Records and callbacks carry them as plain numbers.
        assert_eq!(serde_json::to_string(&Errcode::REFUSED).unwrap(), "18");
        assert_eq!(
            serde_json::to_string(&SubErrcode::STREAM_IN_USE).unwrap(),
            "601"
        );
    }
}
