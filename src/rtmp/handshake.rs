//! Handshake glue over rml_rtmp's sans-I/O handshake (Flash digest with
//! fallback to the simple handshake), for either side.

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};

#[derive(Debug, thiserror::Error)]
#[error("RTMP handshake failed: {0:?}")]
pub struct HandshakeError(pub rml_rtmp::handshake::HandshakeError);

/// What to do after feeding bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Bytes to send to the peer.
    pub send: Vec<u8>,
    /// `Some(leftover)` once the handshake is done; leftover bytes are the
    /// start of the chunk stream.
    pub done: Option<Vec<u8>>,
}

/// Which side of the handshake we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends C0+C1 first (the publisher).
    Client,
    /// Waits for C0+C1 (the ingest).
    Server,
}

pub struct Handshaker {
    inner: Handshake,
}

impl Handshaker {
    /// A handshaker for `role` and the bytes to send before reading
    /// anything (C0+C1 for a client, none for a server).
    pub fn new(role: Role) -> Result<(Handshaker, Vec<u8>), HandshakeError> {
        match role {
            Role::Client => Handshaker::client(),
            Role::Server => Ok((Handshaker::server(), Vec::new())),
        }
    }

    /// A client: returns the handshaker and C0+C1 to send first.
    pub fn client() -> Result<(Handshaker, Vec<u8>), HandshakeError> {
        let mut inner = Handshake::new(PeerType::Client);
        let c0c1 = inner
            .generate_outbound_p0_and_p1()
            .map_err(HandshakeError)?;
        Ok((Handshaker { inner }, c0c1))
    }

    /// A server: waits for C0+C1 before sending anything.
    pub fn server() -> Handshaker {
        Handshaker {
            inner: Handshake::new(PeerType::Server),
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Result<Step, HandshakeError> {
        match self.inner.process_bytes(bytes).map_err(HandshakeError)? {
            HandshakeProcessResult::InProgress { response_bytes } => Ok(Step {
                send: response_bytes,
                done: None,
            }),
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => Ok(Step {
                send: response_bytes,
                done: Some(remaining_bytes),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_complete_against_each_other() {
        let (mut client, c0c1) = Handshaker::client().unwrap();
        assert_eq!(c0c1.len(), 1537);
        let mut server = Handshaker::server();
        let s = server.feed(&c0c1).unwrap();
        assert_eq!(s.send.len(), 1 + 1536 * 2);
        assert!(s.done.is_none());
        let c = client.feed(&s.send).unwrap();
        assert_eq!(c.send.len(), 1536);
        assert_eq!(c.done, Some(vec![]));
        let mut c2_and_more = c.send.clone();
        c2_and_more.extend_from_slice(&[2, 0, 0]);
        let s = server.feed(&c2_and_more).unwrap();
        assert_eq!(s.done, Some(vec![2, 0, 0]));
    }

    #[test]
    fn bad_version_is_error() {
        let mut server = Handshaker::server();
        let mut garbage = vec![0x47u8];
        garbage.extend_from_slice(&[0u8; 1536]);
        assert!(server.feed(&garbage).is_err());
    }
}
