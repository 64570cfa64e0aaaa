//! TLS for the protocol port (rustls with the `ring` provider): configurations for both
//! sides from PEM files, and one boxed stream type so the framing code does not care
//! whether a connection is plain TCP or TLS.

use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

pub use tokio_rustls::rustls::ServerConfig;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A byte stream a connection runs over: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection's stream, whichever it is.
pub type BoxedIo = Box<dyn Io>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate in the PEM"));
    }
    Ok(certs)
}

/// The daemon's TLS settings from a PEM certificate chain and its PEM private key.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, String> {
    let chain = certificates(cert_pem, "TLS certificate")?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("TLS private key: {e}"))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    Ok(Arc::new(config))
}

/// How a client speaks TLS: whom it trusts and which name the daemon's certificate
/// must carry.
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl ClientTls {
    /// Trusts the certificates in `ca_pem` (a CA, or the daemon's own self-signed
    /// certificate) and expects `server_name` (a DNS name or an IP address) in the
    /// daemon's certificate.
    pub fn new(ca_pem: &[u8], server_name: &str) -> Result<ClientTls, String> {
        let mut roots = RootCertStore::empty();
        for c in certificates(ca_pem, "TLS CA")? {
            roots.add(c).map_err(|e| format!("TLS CA: {e}"))?;
        }
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| format!("TLS server name {server_name:?}: {e}"))?;
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }

    /// Opens TLS over a connected stream.
    pub(crate) async fn connect<S: Io + 'static>(
        &self,
        stream: S,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<S>> {
        TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), stream)
            .await
    }
}
