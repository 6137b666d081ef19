//! The one place the publisher touches its socket: one TCP connect and TLS
//! (`dial` resolves and races the connects), reading messages through the
//! shared session core (`rtmp::session`, which answers pings and window
//! acks), writing commands and batches of
//! pre-chunked media with vectored writes.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::rtmp::chunk::Message;
use crate::rtmp::drive::Handshaken;
use crate::rtmp::message::Command;
use crate::rtmp::session::{Inbound, Limits, Session, SessionError};

/// What a server may send us (commands and control only, no media): up to
/// 1 MiB a message; a small read buffer, since thousands of publishers each
/// hold one.
const LIMITS: Limits = Limits {
    max_message: 1 << 20,
    read_start: 256,
    read_grow: 512,
};

/// TCP, or TLS over TCP for rtmps.
pub enum Transport {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, b),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why receiving from the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    #[error("server closed the connection")]
    Closed,
    #[error("connection reset: {0}")]
    Io(#[from] io::Error),
    #[error("server broke the RTMP protocol: {0}")]
    Protocol(#[from] SessionError),
}

/// An RTMP connection after the handshake: the socket, the shared session
/// core ([`Session`]) that decodes what arrives and queues what to answer,
/// and the media backlog.
pub struct Conn {
    pub io: Transport,
    session: Session,
    pub bytes_sent: u64,
    /// Bytes of a media batch the socket did not take at once.
    backlog: BytesMut,
}

impl Conn {
    pub fn new(io: Transport, handshaken: &Handshaken) -> Conn {
        Conn {
            io,
            session: Session::new(LIMITS, &handshaken.leftover),
            bytes_sent: handshaken.bytes_written,
            backlog: BytesMut::new(),
        }
    }

    /// Writes raw bytes (the media preamble) in full.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.bytes_sent += bytes.len() as u64;
        Ok(())
    }

    pub async fn send_command(&mut self, stream_id: u32, cmd: &Command) -> io::Result<()> {
        self.session.send_command(stream_id, cmd);
        self.send_queued().await
    }

    /// Announces our chunk size for what we send from now on.
    pub async fn set_chunk_size(&mut self, size: u32) -> io::Result<()> {
        self.session.set_chunk_size(size);
        self.send_queued().await
    }

    /// Sends what the session queued (commands, acks, ping responses).
    /// Behind a media backlog it joins the backlog, so whole messages stay
    /// in order.
    async fn send_queued(&mut self) -> io::Result<()> {
        let queued = self.session.outbound();
        if queued.is_empty() {
            return Ok(());
        }
        if self.backlog.is_empty() {
            self.io.write_all(queued).await?;
            self.bytes_sent += queued.len() as u64;
        } else {
            self.backlog.extend_from_slice(queued);
        }
        self.session.sent();
        Ok(())
    }

    /// Reads until a message other than protocol control arrives; control
    /// messages are applied and answered by the session core.
    pub async fn read_message(&mut self) -> Result<Message, RecvError> {
        loop {
            if let Some(m) = self.drain_buffered().await? {
                return Ok(m);
            }
            self.fill().await?;
        }
    }

    /// Reads once from the socket into the session. Cancel-safe: it writes
    /// nothing, so it can race a timer in `select!`.
    pub async fn fill(&mut self) -> Result<(), RecvError> {
        let n = self.io.read_buf(self.session.read_buf()).await?;
        if n == 0 {
            return Err(RecvError::Closed);
        }
        self.session.received(n);
        Ok(())
    }

    /// Decodes whatever whole messages are buffered, sending what control
    /// messages call for; returns the first non-control message, if any.
    pub async fn drain_buffered(&mut self) -> Result<Option<Message>, RecvError> {
        let next = loop {
            match self.session.poll_message() {
                Ok(Some(Inbound::Control(_))) => continue,
                Ok(Some(Inbound::Message(m))) => break Ok(Some(m)),
                Ok(None) => break Ok(None),
                Err(e) => break Err(e),
            }
        };
        self.send_queued().await?;
        Ok(next?)
    }

    /// Writes what the socket takes now of a media batch without waiting
    /// (one `writev` on TCP); the rest is copied to a backlog that
    /// [`Conn::flush_backlog`] sends. Nothing is held across an await.
    pub fn write_batch_now(&mut self, slices: &[IoSlice<'_>]) -> io::Result<()> {
        let total: usize = slices.iter().map(|s| s.len()).sum();
        let written = if self.backlog.is_empty() {
            match &self.io {
                Transport::Tcp(s) => match s.try_write_vectored(slices) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                },
                Transport::Tls(_) => 0,
            }
        } else {
            0
        };
        self.bytes_sent += written as u64;
        if written < total {
            let mut skip = written;
            for s in slices {
                if skip >= s.len() {
                    skip -= s.len();
                    continue;
                }
                self.backlog.extend_from_slice(&s[skip..]);
                skip = 0;
            }
        }
        Ok(())
    }

    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Sends the backlog in full, then frees it.
    pub async fn flush_backlog(&mut self) -> io::Result<()> {
        while !self.backlog.is_empty() {
            let n = self.io.write(&self.backlog).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.bytes_sent += n as u64;
            bytes::Buf::advance(&mut self.backlog, n);
        }
        self.backlog = BytesMut::new();
        Ok(())
    }
}

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct Dial {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub insecure: bool,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("DNS lookup of {host} failed: {detail}")]
    Dns { host: String, detail: String },
    #[error("DNS lookup of {0} timed out")]
    DnsTimeout(String),
    #[error("connection to {0} refused")]
    Refused(SocketAddr),
    #[error("TCP connect to {0} timed out")]
    ConnectTimeout(SocketAddr),
    #[error("TCP connect to {addr} failed: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("TLS handshake with {host} failed: {detail}")]
    Tls { host: String, detail: String },
}

/// Connects with a timeout. `send_buffer` caps the socket's send buffer
/// (`SO_SNDBUF`; the kernel doubles it) instead of letting it grow to
/// megabytes: a server that stops reading then blocks our writes within
/// seconds, and lag behind real time shows instead of piling up in the kernel.
pub async fn connect_tcp(
    addr: SocketAddr,
    timeout: Duration,
    send_buffer: Option<u32>,
) -> Result<TcpStream, DialError> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    };
    let socket = socket.map_err(|source| DialError::Connect { addr, source })?;
    if let Some(n) = send_buffer
        && let Err(e) = socket.set_send_buffer_size(n)
    {
        tracing::debug!("cannot set the send buffer to {n} bytes: {e}");
    }
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Err(_) => Err(DialError::ConnectTimeout(addr)),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Err(DialError::Refused(addr)),
        Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => Err(DialError::ConnectTimeout(addr)),
        Ok(Err(source)) => Err(DialError::Connect { addr, source }),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

pub async fn start_tls(tcp: TcpStream, d: &Dial) -> Result<Transport, DialError> {
    let err = |detail: String| DialError::Tls {
        host: d.host.clone(),
        detail,
    };
    let config = tls_config(d.insecure);
    let name =
        rustls::pki_types::ServerName::try_from(d.host.clone()).map_err(|e| err(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(d.timeout, connector.connect(name, tcp)).await {
        Err(_) => Err(err("timed out".into())),
        Ok(Err(e)) => Err(err(e.to_string())),
        Ok(Ok(s)) => Ok(Transport::Tls(Box::new(s))),
    }
}

fn tls_config(insecure: bool) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth()
    } else {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Arc::new(config)
}

/// `--insecure`: accepts any certificate (self-signed test ingests).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
