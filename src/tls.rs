//! HTTPS listeners: the certificate chain and key are read and checked at
//! start-up (and by `cdn-node check`), then served through a rustls
//! certificate resolver whose pair is swapped for the files' new contents
//! when they change on disk or on SIGHUP, without a restart. A pair that
//! does not load (a half-written renewal, a key that does not match) is
//! refused and the last good one stays in use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::listeners::tls::{Acceptor, TlsSettings};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora_core::tls::sign::CertifiedKey;
use pingora_core::tls::{
    ClientHello, CryptoProvider, ResolvesServerCert, ServerConfig, TlsAcceptor, version,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Problem;
use crate::reload_trigger::{ReloadTrigger, Wake};

/// How often the files are looked at (one `stat` each).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// One HTTPS listener as configured.
#[derive(Debug, Clone)]
pub struct HttpsListener {
    pub addr: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Why a certificate/key pair did not load; `Cert` and `Key` name the file
/// at fault so `check` can point at the right setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    Cert(String),
    Key(String),
}

impl LoadError {
    pub fn message(&self) -> &str {
        match self {
            LoadError::Cert(m) | LoadError::Key(m) => m,
        }
    }
}

/// The cryptography of the HTTPS listeners: aws-lc-rs rather than `ring`,
/// which Pingora installs as the process default. The RSA signature is
/// most of a full handshake with an RSA-2048 certificate: with `ring`, a
/// new connection with one request cost the node 0.95 ms of CPU, 0.70 ms
/// with aws-lc-rs (`benches/tls.sh`, Intel Xeon). Its key exchange groups
/// prefer X25519 with ML-KEM-768 when the client offers it, then X25519,
/// P-256 and P-384.
fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> =
        LazyLock::new(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    &PROVIDER
}

/// Parses a PEM certificate chain and a PEM private key and checks that the
/// key belongs to the first certificate.
pub fn parse_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, LoadError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadError::Cert(format!("is not a PEM certificate chain ({e})")))?;
    if certs.is_empty() {
        return Err(LoadError::Cert(
            "holds no \"BEGIN CERTIFICATE\" block: give the PEM certificate chain, leaf first"
                .into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        LoadError::Key(format!(
            "holds no PEM private key ({e}): give a PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key"
        ))
    })?;
    CertifiedKey::from_der(certs, key, provider()).map_err(|e| {
        let text = e.to_string();
        if text.contains("mismatch") || text.contains("Mismatch") {
            LoadError::Key(
                "does not match the certificate's public key: give the key the certificate was issued for"
                    .into(),
            )
        } else {
            LoadError::Key(format!("cannot be used ({text})"))
        }
    })
}

/// Reads and checks the pair from files.
pub fn load_pair(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, LoadError> {
    let cert = std::fs::read(cert_file)
        .map_err(|e| LoadError::Cert(format!("{} cannot be read ({e})", cert_file.display())))?;
    let key = std::fs::read(key_file)
        .map_err(|e| LoadError::Key(format!("{} cannot be read ({e})", key_file.display())))?;
    parse_pair(&cert, &key)
}

/// Validates `listeners.https[i]` for the configuration check.
pub fn check_listener(key_prefix: &str, listener: &HttpsListener, problems: &mut Vec<Problem>) {
    if let Err(e) = load_pair(&listener.cert_file, &listener.key_file) {
        let field = match e {
            LoadError::Cert(_) => "cert_file",
            LoadError::Key(_) => "key_file",
        };
        problems.push(Problem::new(
            format!("{key_prefix}.{field}"),
            e.message().to_string(),
        ));
    }
}

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

/// The certificate a listener presents, replaced in place on reload.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps when `current` was last loaded, or last refused.
    seen: Mutex<(Option<Stamp>, Option<Stamp>)>,
}

/// The outcome of looking at the files.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Loaded,
    Failed(String),
}

impl ReloadingCert {
    /// Loads the pair; fails as [`load_pair`] does.
    pub fn open(cert_file: &Path, key_file: &Path) -> Result<ReloadingCert, LoadError> {
        let seen = (stamp(cert_file), stamp(key_file));
        let pair = load_pair(cert_file, key_file)?;
        Ok(ReloadingCert {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new(Arc::new(pair)),
            seen: Mutex::new(seen),
        })
    }

    /// Loads the files again when they changed since the last look, or
    /// always when `forced`. A pair that fails to load is not retried until
    /// a file changes again (or the next SIGHUP).
    pub fn reload(&self, forced: bool) -> Reload {
        let now = (stamp(&self.cert_file), stamp(&self.key_file));
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if !forced && *seen == now {
                return Reload::Unchanged;
            }
            *seen = now;
        }
        match load_pair(&self.cert_file, &self.key_file) {
            Ok(pair) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                Reload::Loaded
            }
            Err(e) => Reload::Failed(e.message().to_string()),
        }
    }

    /// The certificate chain served now (leaf first).
    #[cfg(test)]
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .cert
            .clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The TLS acceptor of one listener: our resolver, HTTP/2 and HTTP/1.1
/// offered by ALPN (h2 preferred), TLS 1.2 and 1.3 with [`provider`]'s
/// cryptography, and stateless session tickets, so that a returning client
/// resumes its session without a new certificate signature, whichever
/// worker thread it reaches and however many clients came in between
/// (without a ticketer, TLS 1.3 resumption rests on a 256-entry session
/// cache whose tickets serve once). The tickets' keys are random per start
/// and rotated every 6 hours; a ticket from an earlier process (a restart,
/// an upgrade) is declined and that handshake is a full one.
pub fn acceptor(listener: &HttpsListener, cert: Arc<ReloadingCert>) -> Acceptor {
    // `intermediate` only records the paths; with a resolver set, `build()`
    // never reads them. The acceptor's rustls configuration is then
    // replaced: it is the one part of it that is public.
    let cert_path = listener.cert_file.to_string_lossy();
    let key_path = listener.key_file.to_string_lossy();
    let mut settings = match TlsSettings::intermediate(&cert_path, &key_path) {
        Ok(s) => s,
        Err(e) => unreachable!("TlsSettings::intermediate does not fail: {e}"),
    };
    settings.set_cert_resolver(cert.clone());
    let mut acceptor = settings.build();
    acceptor.acceptor = TlsAcceptor::from(Arc::new(server_config(cert)));
    acceptor
}

/// The rustls configuration of [`acceptor`].
fn server_config(cert: Arc<ReloadingCert>) -> ServerConfig {
    let versions = [&version::TLS13, &version::TLS12];
    let builder = match ServerConfig::builder_with_provider(provider().clone())
        .with_protocol_versions(&versions)
    {
        Ok(b) => b,
        Err(e) => unreachable!("aws-lc-rs supports TLS 1.2 and 1.3: {e}"),
    };
    let mut config = builder.with_no_client_auth().with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    match rustls::crypto::aws_lc_rs::Ticketer::new() {
        Ok(ticketer) => config.ticketer = ticketer,
        Err(e) => {
            tracing::warn!(error = %e, "TLS session tickets unavailable; resumption by session cache only")
        }
    }
    config
}

/// Reloads every listener's pair when its files change, and on SIGHUP.
pub struct CertReloader {
    pub certs: Vec<Arc<ReloadingCert>>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl CertReloader {
    fn poll(&self, forced: bool) {
        for cert in &self.certs {
            let file = cert.cert_file.display();
            match cert.reload(forced) {
                Reload::Unchanged => {}
                Reload::Loaded => {
                    tracing::info!(%file, "TLS certificate loaded");
                    self.metrics
                        .ops
                        .tls_reloads
                        .with_label_values(&["ok"])
                        .inc();
                }
                Reload::Failed(message) => {
                    tracing::warn!(%file, %message, "TLS certificate not reloaded; keeping the last good one");
                    self.metrics
                        .ops
                        .tls_reloads
                        .with_label_values(&["error"])
                        .inc();
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for CertReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut trigger = ReloadTrigger::new(POLL_INTERVAL, "certificates");
        while let Some(wake) = trigger.next(&mut shutdown, std::future::pending()).await {
            let forced = wake == Wake::Hangup;
            self.poll(forced);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl(dir: &Path, name: &str, cn: &str) -> Option<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .arg("-subj")
            .arg(format!("/CN={cn}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some((cert, key))
    }

    #[test]
    fn pairs() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_a, key_a) = openssl(dir.path(), "a", "a.test").expect("openssl");
        let (cert_b, key_b) = openssl(dir.path(), "b", "b.test").expect("openssl");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let missing = dir.path().join("missing.pem");

        assert!(load_pair(&cert_a, &key_a).is_ok());
        let cases: &[(&Path, &Path, &str)] = &[
            (&cert_a, &key_b, "key:does not match"),
            (&junk, &key_a, "cert:holds no"),
            (&cert_a, &junk, "key:holds no PEM private key"),
            (&missing, &key_a, "cert:cannot be read"),
            (&cert_a, &missing, "key:cannot be read"),
            (&key_a, &key_a, "cert:holds no"),
        ];
        for (cert, key, want) in cases {
            let got = match load_pair(cert, key) {
                Ok(_) => "ok".to_string(),
                Err(LoadError::Cert(m)) => format!("cert:{m}"),
                Err(LoadError::Key(m)) => format!("key:{m}"),
            };
            let (which, text) = want.split_once(':').unwrap();
            assert!(
                got.starts_with(which) && got.contains(text),
                "{cert:?} {key:?}: {got}"
            );
        }
        assert!(load_pair(&cert_b, &key_b).is_ok());
    }

    #[test]
    fn reloads_on_change_and_keeps_the_last_good_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_a, key_a) = openssl(dir.path(), "a", "a.test").expect("openssl");
        let (_, key_b) = openssl(dir.path(), "b", "b.test").expect("openssl");
        let cert = dir.path().join("live.crt");
        let key = dir.path().join("live.key");
        std::fs::copy(&cert_a, &cert).unwrap();
        std::fs::copy(&key_a, &key).unwrap();
        let live = ReloadingCert::open(&cert, &key).unwrap();
        let first = live.chain();
        assert_eq!(live.reload(false), Reload::Unchanged);

        // Half a renewal: the new certificate with the old key is refused.
        std::fs::rename(dir.path().join("b.crt"), &cert).unwrap();
        assert!(matches!(live.reload(false), Reload::Failed(_)));
        assert_eq!(live.chain(), first);
        assert_eq!(live.reload(false), Reload::Unchanged);

        // The key arrives: loaded.
        std::fs::rename(&key_b, &key).unwrap();
        assert_eq!(live.reload(false), Reload::Loaded);
        assert_ne!(live.chain(), first);
        // A forced reload reads the same files again.
        assert_eq!(live.reload(true), Reload::Loaded);
    }
}
