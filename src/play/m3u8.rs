//! HLS playlists, pure: a media playlist's segments (with their media
//! sequence numbers), target duration and end, or a master playlist's first
//! variant; relative URIs resolved against the playlist's path.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum M3u8Error {
    #[error("not an HLS playlist: it does not start with #EXTM3U (starts {0:?})")]
    NotM3u8(String),
    #[error("master playlist lists no variant stream")]
    NoVariant,
}

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub seq: u64,
    pub uri: String,
    pub duration_s: f64,
    pub discontinuity: bool,
}

/// What a playlist says.
#[derive(Debug, Clone, PartialEq)]
pub enum Playlist {
    /// A master playlist: the URI of its first variant.
    Master { variant: String },
    Media {
        target_duration_s: f64,
        segments: Vec<Segment>,
        /// `#EXT-X-ENDLIST`: no more segments will come.
        ended: bool,
    },
}

pub fn parse(text: &str) -> Result<Playlist, M3u8Error> {
    let text = text.trim_start_matches('\u{feff}');
    if !text.trim_start().starts_with("#EXTM3U") {
        return Err(M3u8Error::NotM3u8(text.chars().take(16).collect()));
    }
    let mut seq = 0u64;
    let mut target = 0.0;
    let mut segments = Vec::new();
    let mut ended = false;
    let mut duration = None;
    let mut discontinuity = false;
    let mut variant_next = false;
    let mut is_master = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            seq = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d = v.split(',').next().unwrap_or("").trim();
            duration = Some(d.parse().unwrap_or(0.0));
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if line.starts_with("#EXT-X-STREAM-INF") {
            is_master = true;
            variant_next = true;
        } else if line.starts_with('#') {
            continue;
        } else if variant_next {
            return Ok(Playlist::Master {
                variant: line.to_string(),
            });
        } else if let Some(d) = duration.take() {
            segments.push(Segment {
                seq,
                uri: line.to_string(),
                duration_s: d,
                discontinuity,
            });
            seq += 1;
            discontinuity = false;
        }
    }
    if is_master {
        return Err(M3u8Error::NoVariant);
    }
    Ok(Playlist::Media {
        target_duration_s: target,
        segments,
        ended,
    })
}

/// `uri` as a path (and query) on the playlist's server, or as a whole URL
/// when it names its own server: relative URIs are resolved against the
/// directory of `playlist_path`.
pub fn resolve(playlist_path: &str, uri: &str) -> String {
    if uri.contains("://") || uri.starts_with('/') {
        return uri.to_string();
    }
    let path = playlist_path.split('?').next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    format!("{dir}{uri}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live playlist as nginx-rtmp writes it.
    const NGINX: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:7\n\
        #EXT-X-TARGETDURATION:2\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\ns-7.ts\n\
        #EXTINF:1.967,\ns-8.ts\n";

    #[test]
    fn media_playlist_segments_with_sequence_numbers() {
        let Playlist::Media {
            target_duration_s,
            segments,
            ended,
        } = parse(NGINX).unwrap()
        else {
            panic!("media playlist")
        };
        assert_eq!(target_duration_s, 2.0);
        assert!(!ended);
        assert_eq!(segments.len(), 2);
        assert_eq!((segments[0].seq, segments[0].uri.as_str()), (7, "s-7.ts"));
        assert!(segments[0].discontinuity && !segments[1].discontinuity);
        assert_eq!((segments[1].seq, segments[1].duration_s), (8, 1.967));
    }

    #[test]
    fn master_playlist_gives_its_first_variant() {
        let m = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/index.m3u8\n\
                 #EXT-X-STREAM-INF:BANDWIDTH=2000000\nhigh/index.m3u8\n";
        assert_eq!(
            parse(m).unwrap(),
            Playlist::Master {
                variant: "low/index.m3u8".into()
            }
        );
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n"),
            Err(M3u8Error::NoVariant)
        );
    }

    #[test]
    fn not_a_playlist_and_uri_resolution() {
        assert!(matches!(parse("<html>"), Err(M3u8Error::NotM3u8(_))));
        assert_eq!(resolve("/hls/s.m3u8?t=1", "s-1.ts"), "/hls/s-1.ts");
        assert_eq!(resolve("/hls/s.m3u8", "/other/x.ts"), "/other/x.ts");
        assert_eq!(resolve("/hls/s.m3u8", "http://cdn/x.ts"), "http://cdn/x.ts");
    }
}
