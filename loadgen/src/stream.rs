//! The byte stream under a load-generating connection: plain TCP, or TLS
//! over it (`--tls-ca`), to measure what `wss://` costs the server.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

/// How connections speak TLS: the one certificate they trust.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

impl TlsClient {
    /// Trusts the PEM certificates in `ca` (the server's own, self-signed,
    /// will do).
    pub fn trusting(ca: &Path) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("reading certificates from {}", ca.display()))?
        {
            let cert = cert.with_context(|| format!("parsing {}", ca.display()))?;
            roots.add(cert).context("adding a trusted certificate")?;
        }
        ensure!(!roots.is_empty(), "no certificate in {}", ca.display());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("choosing TLS versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// [`Self::trusting`] for a command-line argument.
    pub fn from_arg(path: &str) -> Result<Self, String> {
        Self::trusting(Path::new(path)).map_err(|err| format!("{err:#}"))
    }

    /// Runs the handshake over `tcp`, for the server at `ip`.
    pub async fn connect(&self, tcp: TcpStream, ip: std::net::IpAddr) -> Result<Stream> {
        let tls = self
            .connector
            .connect(ServerName::IpAddress(ip.into()), tcp)
            .await
            .context("TLS handshake")?;
        Ok(Either::Right(Box::new(tls)))
    }
}

/// A connection's stream: plain TCP, or TLS over TCP.
pub type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;
