//! Accepting gRPC connections: plaintext HTTP/2 and, when a certificate is configured,
//! TLS on the same port (told apart by the first byte: a TLS record starts with 0x16,
//! the HTTP/2 preface with `P`), so the Python and Node clients (plaintext by default)
//! and the Java client (TLS by default) all connect. A connection that sends nothing,
//! or no finished TLS handshake, within the handshake timeout is closed; beyond the
//! connection limit new ones are closed at once.

use crate::metrics;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// An accepted connection, plain or TLS.
pub struct Conn {
    io: Io,
    info: TcpConnectInfo,
    _slot: OwnedSemaphorePermit,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;
    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, b),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The TLS settings for gRPC: the native port's, offering HTTP/2 by ALPN (gRPC clients
/// insist on it).
pub fn grpc_tls(native: &ServerConfig) -> Arc<ServerConfig> {
    let mut c = native.clone();
    c.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(c)
}

/// Accepts connections until `out` is closed, handing each ready one (sniffed, TLS
/// finished) to the gRPC server.
pub async fn accept(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    max_connections: usize,
    handshake_timeout: Duration,
    out: mpsc::Sender<io::Result<Conn>>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = out.closed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, "gRPC accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::connection(false);
            drop(stream);
            continue;
        };
        metrics::connection(true);
        let _ = stream.set_nodelay(true);
        let info = TcpConnectInfo {
            local_addr: stream.local_addr().ok(),
            remote_addr: Some(remote),
        };
        let (out, acceptor) = (out.clone(), acceptor.clone());
        tokio::spawn(async move {
            let ready = tokio::time::timeout(handshake_timeout, open(stream, acceptor)).await;
            let io = match ready {
                Ok(Ok(io)) => io,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "gRPC connection closed before it started");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "gRPC connection sent no preface or handshake in time");
                    return;
                }
            };
            let _ = out
                .send(Ok(Conn {
                    io,
                    info,
                    _slot: slot,
                }))
                .await;
        });
    }
}

/// Waits for the connection's first byte and starts TLS when it is a TLS record.
async fn open(stream: TcpStream, tls: Option<TlsAcceptor>) -> io::Result<Io> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    match (first[0], tls) {
        (TLS_HANDSHAKE, Some(tls)) => Ok(Io::Tls(Box::new(tls.accept(stream).await?))),
        (TLS_HANDSHAKE, None) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a TLS handshake, but no certificate is configured (--tls-cert)",
        )),
        _ => Ok(Io::Plain(stream)),
    }
}
