//! The one async piece of `rtmp`: drives the handshake over any byte stream
//! for either role, so the publisher and the ingest run the same loop.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::handshake::{HandshakeError, Handshaker, Role};

/// How much one read of the handshake takes at most.
const READ_SIZE: usize = 4096;

/// A finished handshake.
#[derive(Debug)]
pub struct Handshaken {
    /// Bytes that followed the handshake in the last read: the start of the
    /// chunk stream.
    pub leftover: Vec<u8>,
    /// Bytes we wrote (C0+C1+C2, or S0+S1+S2).
    pub bytes_written: u64,
}

/// Why the handshake did not finish.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeIoError {
    #[error("peer closed the connection during the handshake")]
    Closed,
    #[error("I/O error during the handshake: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Protocol(#[from] HandshakeError),
}

/// Runs the handshake as `role` over `io`. No timeout of its own: callers
/// bound it (each has its own phase timeout).
pub async fn handshake<S>(io: &mut S, role: Role) -> Result<Handshaken, HandshakeIoError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut hs, first) = Handshaker::new(role)?;
    let mut bytes_written = 0u64;
    if !first.is_empty() {
        io.write_all(&first).await?;
        bytes_written += first.len() as u64;
    }
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Err(HandshakeIoError::Closed);
        }
        let step = hs.feed(&buf[..n])?;
        if !step.send.is_empty() {
            io.write_all(&step.send).await?;
            bytes_written += step.send.len() as u64;
        }
        if let Some(leftover) = step.done {
            return Ok(Handshaken {
                leftover,
                bytes_written,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_roles_complete_over_a_duplex_with_leftover() {
        // Room for a whole handshake message each way, as any TCP socket
        // has: both sides write before they read.
        let (mut a, mut b) = tokio::io::duplex(8192);
        let client = async {
            let h = handshake(&mut a, Role::Client).await.unwrap();
            // The first chunk bytes go out right after C2.
            a.write_all(&[2, 0, 0]).await.unwrap();
            h
        };
        let server = async {
            let mut h = handshake(&mut b, Role::Server).await.unwrap();
            while h.leftover.len() < 3 {
                let mut more = [0u8; 8];
                let n = b.read(&mut more).await.unwrap();
                h.leftover.extend_from_slice(&more[..n]);
            }
            h
        };
        let bound = std::time::Duration::from_secs(10);
        let (c, s) = tokio::time::timeout(bound, async { tokio::join!(client, server) })
            .await
            .expect("the handshake finished");
        assert_eq!(c.bytes_written, 1537 + 1536);
        assert_eq!(s.bytes_written, 1 + 1536 * 2);
        assert!(c.leftover.is_empty());
        assert_eq!(s.leftover, [2, 0, 0]);
    }

    #[tokio::test]
    async fn peer_closing_or_garbage_is_an_error_not_a_hang() {
        let (mut a, b) = tokio::io::duplex(64);
        drop(b);
        assert!(matches!(
            handshake(&mut a, Role::Server).await,
            Err(HandshakeIoError::Closed)
        ));
        let (mut a, mut b) = tokio::io::duplex(4096);
        b.write_all(&[0x47; 1537]).await.unwrap();
        assert!(matches!(
            handshake(&mut a, Role::Server).await,
            Err(HandshakeIoError::Protocol(_))
        ));
    }
}
