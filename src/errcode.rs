//! Tencent CSS interruption errcodes (seed 003's table) and the errcode-18 sub-codes
//! of the interruption records, as English meanings. Pure lookups.

/// What Tencent's table says of every errcode it does not list ("Other unknown values").
pub const UNKNOWN: &str = "Unknown reason. Please contact us by submitting a ticket.";

const CLIENT_STOPPED: &str = "The push client actively stopped the push.";
const INTERNAL: &str = "The live streaming system has an internal error.";
const RTMP_CONTENT: &str = "Abnormal RTMP protocol content.";
const NO_DATA: &str = "The system actively stopped the push with no data for a long time.";
const NETWORK: &str = "Abnormal stream pushing link network.";

/// The meaning of an interruption errcode (the `errcode` of an `event_type = 0`
/// callback), from the table of seed 003. `None` for a code the table does not
/// list; the table files those under "Other unknown values" ([`UNKNOWN`]).
///
/// The table groups codes with a shared description (1-4 and 35; 5, 9, 11, 24;
/// 8 and 20; 12-17; 0, 22, 25-32, 34); Tencent's "Stream Interruption Records"
/// page lists the same codes one per row with the same grouping. 18 is not in
/// seed 003's table: it is the code of a push the ingest refused, with the reason
/// in a sub-code ([`sub_meaning`]).
pub fn meaning(errcode: i64) -> Option<&'static str> {
    Some(match errcode {
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

/// The meaning of a sub-code of errcode 18 (push refused), as listed in
/// DESIGN.md section 1 from Tencent's interruption records. `None` otherwise.
pub fn sub_meaning(sub: i64) -> Option<&'static str> {
    Some(match sub {
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
                assert_eq!(meaning(c), Some(*want), "errcode {c}");
            }
        }
        assert!(meaning(7).unwrap().contains("single RTMP frame"));
        assert!(meaning(18).unwrap().contains("sub-code"));
    }

    #[test]
    fn unlisted_codes_have_no_meaning() {
        for c in [-1, 21, 36, 100, 500, i64::MIN, i64::MAX] {
            assert_eq!(meaning(c), None, "errcode {c}");
        }
    }

    #[test]
    fn errcode_18_sub_codes() {
        assert!(sub_meaning(500).unwrap().contains("no txTime"));
        assert!(sub_meaning(501).unwrap().contains("expired"));
        assert!(sub_meaning(502).unwrap().contains("no txSecret"));
        assert!(sub_meaning(503).unwrap().contains("mismatch"));
        assert!(sub_meaning(601).unwrap().contains("already in use"));
        assert!(sub_meaning(602).unwrap().contains("lower priority"));
        for s in 301..=303 {
            assert!(sub_meaning(s).unwrap().contains("domain"), "{s}");
        }
        assert!(sub_meaning(304).unwrap().contains("app"));
        assert!(sub_meaning(305).unwrap().contains("banned"));
        for s in [0, 300, 306, 499, 504, 600, 603, -1] {
            assert_eq!(sub_meaning(s), None, "{s}");
        }
    }
}
