//! RTMP play, the one place a player touches an RTMP socket: handshake
//! (`rtmp::drive`), connect, createStream, play, then media into the
//! [`Player`] fold. Protocol state is the shared session core
//! (`rtmp::session`: acks, pings, chunk sizes).

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Failure, Phase, PlayConfig, Player, Stop, net, next_deadline, play_until};
use crate::clock::now_unix_us;
use crate::publish::conn::Transport;
use crate::rtmp::amf0::Value;
use crate::rtmp::chunk::Message;
use crate::rtmp::drive::{self, HandshakeIoError};
use crate::rtmp::handshake::Role;
use crate::rtmp::message::{
    AUDIO, COMMAND_AMF0, COMMAND_AMF3, Command, Control, StatusReply, UserControl, VIDEO,
};
use crate::rtmp::session::{Inbound, Limits, Session};

/// A player receives media: messages up to 16 MiB (a 4K keyframe). It
/// reads into its thread's scratch buffer ([`net::poll_read_scratch`]) and
/// hands the bytes to the session, which holds nothing between reads but a
/// partial chunk header (`read_start` 0): a load run's 10,000 waiting
/// players hold no read buffer, and one read takes all the server wrote (a
/// 4 KiB buffer of each player's own took three reads for a typical 11 KB
/// write under load).
const LIMITS: Limits = Limits {
    max_message: 16 << 20,
    read_start: 0,
    read_grow: 4 << 10,
};

/// How long the server may buffer for us (SetBufferLength), as ffmpeg asks.
const BUFFER_MS: u32 = 3000;
/// Our acknowledgement window, announced after connect.
const WINDOW: u32 = 2_500_000;

/// Status codes that end a play.
const ENDED: [&str; 4] = [
    "NetStream.Play.UnpublishNotify",
    "NetStream.Play.Stop",
    "NetStream.Play.Complete",
    "NetStream.Play.EOF",
];

struct Conn {
    io: Transport,
    session: Session,
    /// The read deadline's timer (see [`Conn::next`]).
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// When the last read returned (monotonic, and Unix microseconds): the
    /// arrival time of every message decoded from it. Two clock reads per
    /// read, not per message (a read carries many under load).
    arrived: (Instant, u64),
}

impl Conn {
    async fn flush(&mut self, phase: Phase) -> Result<(), Failure> {
        if !self.session.outbound().is_empty() {
            self.io
                .write_all(self.session.outbound())
                .await
                .map_err(|_| Failure::Closed { phase })?;
            self.session.sent();
        }
        Ok(())
    }

    async fn command(
        &mut self,
        stream_id: u32,
        cmd: &Command,
        phase: Phase,
    ) -> Result<(), Failure> {
        self.session.send_command(stream_id, cmd);
        self.flush(phase).await
    }

    /// The next message other than protocol control; `Ok(None)` at `deadline`.
    async fn next(&mut self, deadline: Instant, phase: Phase) -> Result<Option<Message>, Failure> {
        loop {
            match self.session.poll_message() {
                Ok(Some(Inbound::Message(m))) => return Ok(Some(m)),
                Ok(Some(Inbound::Control(Control::User(UserControl::StreamEof(_))))) => {
                    tracing::debug!("server sent StreamEOF");
                }
                Ok(Some(Inbound::Control(_))) => {}
                Ok(None) => {
                    self.flush(phase).await?;
                    // A lazy timer: moved only when the deadline comes
                    // earlier, and when it fires early (the deadline moved
                    // on with the data) re-armed once. One timer update per
                    // timeout instead of one per message.
                    if deadline < self.timer.deadline() {
                        self.timer.as_mut().reset(deadline);
                    }
                    let (io, session) = (&mut self.io, &mut self.session);
                    let read = std::future::poll_fn(|cx| {
                        net::poll_read_scratch(io, cx, |bytes| session.received_bytes(bytes))
                    });
                    tokio::select! {
                        biased;
                        r = read => match r {
                            Ok(None) | Err(_) => return Err(Failure::Closed { phase }),
                            Ok(Some(())) => self.arrived = (Instant::now(), now_unix_us()),
                        },
                        () = &mut self.timer => {
                            if Instant::now() >= deadline {
                                return Ok(None);
                            }
                            self.timer.as_mut().reset(deadline);
                        }
                    }
                }
                Err(e) => {
                    return Err(Failure::Protocol {
                        phase,
                        detail: e.to_string(),
                    });
                }
            }
        }
    }
}

/// What one message meant while waiting for a reply.
enum Seen {
    Reply(Command),
    Other,
}

/// Runs an RTMP play of `cfg.url` into `player`.
pub async fn run(
    cfg: &PlayConfig,
    player: &mut Player<'_>,
    cancel: &CancellationToken,
) -> Result<Stop, Failure> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Ok(Stop::Cancelled),
        r = session(cfg, player, cancel) => r,
    }
}

async fn session(
    cfg: &PlayConfig,
    player: &mut Player<'_>,
    cancel: &CancellationToken,
) -> Result<Stop, Failure> {
    let url = cfg.url.rtmp.as_ref().ok_or(Failure::Unsupported {
        what: "RTMP play of a non-RTMP URL".into(),
    })?;
    // Boxed: the dial and handshake states live only while they run, not
    // in every player's future for the whole play (10,000 in a load run).
    let mut io = Box::pin(net::dial(cfg, &cfg.url, player)).await?;
    let phase = Phase::Handshake;
    let handshake = Box::pin(drive::handshake(&mut io, Role::Client));
    let h = match tokio::time::timeout(cfg.timeout, handshake).await {
        Err(_) => return Err(Failure::Timeout { phase }),
        Ok(Err(HandshakeIoError::Protocol(e))) => {
            return Err(Failure::Protocol {
                phase,
                detail: e.to_string(),
            });
        }
        Ok(Err(_)) => return Err(Failure::Closed { phase }),
        Ok(Ok(h)) => h,
    };
    player.mark(phase, Instant::now());
    let mut conn = Conn {
        io,
        session: Session::new(LIMITS, &h.leftover),
        timer: Box::pin(tokio::time::sleep(cfg.timeout)),
        arrived: (Instant::now(), now_unix_us()),
    };

    let phase = Phase::Connect;
    let connect = Command::new(
        "connect",
        1.0,
        Value::obj(&[
            ("app", Value::String(url.app.clone())),
            ("flashVer", Value::str("LNX 9,0,124,2")),
            ("tcUrl", Value::String(url.tc_url())),
            ("fpad", Value::Boolean(false)),
            ("capabilities", Value::Number(15.0)),
            ("audioCodecs", Value::Number(4071.0)),
            ("videoCodecs", Value::Number(252.0)),
            ("videoFunction", Value::Number(1.0)),
        ]),
        vec![],
    );
    conn.command(0, &connect, phase).await?;
    await_reply(&mut conn, player, cfg, phase, |c| {
        (c.name == "_result" && c.transaction_id == 1.0).then_some(())
    })
    .await?;
    player.mark(phase, Instant::now());

    let phase = Phase::CreateStream;
    conn.session.send_control(&Control::WindowAckSize(WINDOW));
    let create = Command::new("createStream", 2.0, Value::Null, vec![]);
    conn.command(0, &create, phase).await?;
    let reply = await_reply(&mut conn, player, cfg, phase, |c| {
        (c.name == "_result" && c.transaction_id == 2.0).then(|| c.clone())
    })
    .await?;
    let stream_id = reply
        .args
        .iter()
        .find_map(Value::as_number)
        .filter(|n| *n >= 0.0 && *n < f64::from(u32::MAX))
        .ok_or_else(|| Failure::Protocol {
            phase,
            detail: "createStream result has no stream id".into(),
        })? as u32;
    player.mark(phase, Instant::now());

    let phase = Phase::Play;
    let play = Command::new(
        "play",
        3.0,
        Value::Null,
        // Start -1000: live, as ffmpeg asks for a live stream.
        vec![Value::String(url.publish_name()), Value::Number(-1000.0)],
    );
    player.asked(now_unix_us());
    conn.command(stream_id, &play, phase).await?;
    conn.session
        .send_control(&Control::User(UserControl::SetBufferLength(
            stream_id, BUFFER_MS,
        )));
    conn.flush(phase).await?;
    await_reply(&mut conn, player, cfg, phase, |c| {
        let s = c.status()?;
        (s.code == "NetStream.Play.Start").then_some(())
    })
    .await?;
    player.mark(phase, Instant::now());
    receive(&mut conn, player, cfg, cancel).await
}

/// Handles one message: media to the player, statuses recorded; an error
/// status or an end of stream is the failure.
fn handle(
    m: &Message,
    player: &mut Player<'_>,
    phase: Phase,
    (now, now_unix): (Instant, u64),
) -> Result<Seen, Failure> {
    match m.type_id {
        AUDIO | VIDEO => {
            player.media(m.type_id, m.timestamp, &m.payload, now, now_unix);
            Ok(Seen::Other)
        }
        COMMAND_AMF0 | COMMAND_AMF3 => {
            let cmd = Command::parse(m.type_id, &m.payload).map_err(|e| Failure::Protocol {
                phase,
                detail: e.to_string(),
            })?;
            if let Some(s) = cmd.status() {
                player.statuses.push(s.clone());
                if ENDED.contains(&s.code.as_str()) {
                    return Err(Failure::Ended { status: Some(s) });
                }
                if s.is_error() || cmd.name == "_error" || s.code.ends_with("StreamNotFound") {
                    return Err(Failure::Rejected { phase, status: s });
                }
            } else if cmd.name == "_error" {
                let status = StatusReply {
                    code: "_error".into(),
                    level: "error".into(),
                    description: String::new(),
                };
                return Err(Failure::Rejected { phase, status });
            }
            Ok(Seen::Reply(cmd))
        }
        _ => Ok(Seen::Other),
    }
}

/// Reads until `want` picks a reply, bounded by the timeout.
async fn await_reply<T>(
    conn: &mut Conn,
    player: &mut Player<'_>,
    cfg: &PlayConfig,
    phase: Phase,
    want: impl Fn(&Command) -> Option<T>,
) -> Result<T, Failure> {
    let deadline = Instant::now() + cfg.timeout;
    loop {
        let Some(m) = conn.next(deadline, phase).await? else {
            return Err(Failure::Timeout { phase });
        };
        if let Seen::Reply(cmd) = handle(&m, player, phase, conn.arrived)?
            && let Some(t) = want(&cmd)
        {
            return Ok(t);
        }
    }
}

/// Media until `duration` after the first frame (or the cancel, which the
/// caller races).
async fn receive(
    conn: &mut Conn,
    player: &mut Player<'_>,
    cfg: &PlayConfig,
    _cancel: &CancellationToken,
) -> Result<Stop, Failure> {
    // The time of the last read is also "now" for the end-of-play check
    // (10,000 viewers get ~700,000 messages a second).
    let mut last_rx = Instant::now();
    loop {
        let phase = if player.first_frame().is_some() {
            Phase::Playing
        } else {
            Phase::FirstFrame
        };
        if play_until(cfg, player).is_some_and(|end| last_rx >= end) {
            return Ok(Stop::Done);
        }
        match conn
            .next(next_deadline(cfg, player, last_rx), phase)
            .await?
        {
            Some(m) => {
                last_rx = conn.arrived.0;
                handle(&m, player, phase, conn.arrived)?;
            }
            None if play_until(cfg, player).is_some_and(|end| Instant::now() >= end) => {
                return Ok(Stop::Done);
            }
            None => return Err(Failure::Timeout { phase }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A load run holds one of these per viewer for the whole play: the dial
    /// and handshake are boxed so their states do not count here.
    #[test]
    fn the_play_future_stays_small() {
        let cfg = PlayConfig::new(crate::play::PlayUrl::parse("rtmp://127.0.0.1/live/s").unwrap());
        let mut sink = ();
        let mut player = Player::new(&cfg, Instant::now(), &mut sink);
        let cancel = CancellationToken::new();
        let f = run(&cfg, &mut player, &cancel);
        let size = std::mem::size_of_val(&f);
        println!("rtmp play future: {size} bytes");
        assert!(size <= 1536, "rtmp play future grew to {size} bytes");
    }
}
