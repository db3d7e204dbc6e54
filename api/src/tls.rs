//! TLS for the HTTP server (`tls:`): the server's certificate chain and private key, read from
//! PEM files (`tls.cert`, `tls.key`) or a PKCS#12 bundle (`tls.pfx`, `tls.passphrase_file`),
//! checked and made into the rustls [`ServerConfig`] the server's connections handshake with
//! (ring's cryptography, TLS 1.2 and 1.3, ALPN `http/1.1`).
//!
//! Everything is checked at start, before the database: a file that cannot be read, a file with
//! no certificate or no private key, a bundle the passphrase does not open, or a key that is not
//! the certificate's (their SubjectPublicKeyInfo compared) stops the start with an error that
//! names the configuration key and the file. No secret (the passphrase, the key) is in an error.

use crate::config::{TlsForm, TlsSettings};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::{CertifiedKey, SigningKey, SingleCertAndKey};
use rustls::ServerConfig;
use std::path::Path;
use std::sync::Arc;

/// Why the TLS settings cannot be used: the message names the key (`tls.key: …`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The server's TLS configuration from `settings`, checked.
pub fn load(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = match settings.form().map_err(TlsError)? {
        TlsForm::Pem { cert, key } => from_pem(cert, key, &provider)?,
        TlsForm::Pkcs12 {
            pfx,
            passphrase_file,
        } => from_pkcs12(pfx, passphrase_file, &provider)?,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("tls: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("{key}: cannot read {}: {e}", path.display())))
}

/// `tls.cert` (the chain, leaf first) and `tls.key`.
fn from_pem(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&read("tls.cert", cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsError(format!(
                "tls.cert: {} is not readable PEM: {e}",
                cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "tls.cert: no certificate in {} (expected PEM `-----BEGIN CERTIFICATE-----` blocks, the server's own first)",
            cert.display()
        )));
    }
    let key_pem = read("tls.key", key)?;
    let private_key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(private_key) => private_key,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            let encrypted = key_pem
                .windows(b"ENCRYPTED PRIVATE KEY".len())
                .any(|w| w == b"ENCRYPTED PRIVATE KEY");
            return Err(TlsError(if encrypted {
                format!(
                    "tls.key: the private key in {} is encrypted; give it unencrypted (`openssl pkcs8 -in {0} -out key.pem`) or use tls.pfx",
                    key.display()
                )
            } else {
                format!(
                    "tls.key: no private key in {} (expected PEM `-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)",
                    key.display()
                )
            }));
        }
        Err(e) => {
            return Err(TlsError(format!(
                "tls.key: {} is not readable PEM: {e}",
                key.display()
            )))
        }
    };
    let signing_key = signing_key(provider, private_key)
        .map_err(|e| TlsError(format!("tls.key: {}: {e}", key.display())))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError(format!(
            "tls.key: the private key in {} does not match the certificate in tls.cert ({}): it is not that certificate's key",
            key.display(),
            cert.display()
        ))),
        Err(e) => Err(TlsError(format!(
            "tls.cert: the first certificate in {} cannot be read: {e}",
            cert.display()
        ))),
    }
}

/// `tls.pfx`, opened with the passphrase in `tls.passphrase_file` (or an empty one): its one
/// private key, the certificate that is that key's, and the certificates that issued it.
fn from_pkcs12(
    pfx: &Path,
    passphrase_file: Option<&Path>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let bundle = read("tls.pfx", pfx)?;
    let passphrase = match passphrase_file {
        Some(path) => {
            let text = String::from_utf8(read("tls.passphrase_file", path)?).map_err(|_| {
                TlsError(format!(
                    "tls.passphrase_file: {} is not UTF-8 text",
                    path.display()
                ))
            })?;
            passphrase(text)
        }
        None => String::new(),
    };
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&bundle, &passphrase)
        .map_err(|e| pkcs12_error(e, pfx, passphrase_file))?;
    let private_key = match archive.keys.as_slice() {
        [one] => one,
        [] => {
            return Err(TlsError(format!(
                "tls.pfx: no private key in {}",
                pfx.display()
            )))
        }
        more => {
            return Err(TlsError(format!(
                "tls.pfx: {} private keys in {}; the server's bundle holds one",
                more.len(),
                pfx.display()
            )))
        }
    };
    if archive.certs.is_empty() {
        return Err(TlsError(format!(
            "tls.pfx: no certificate in {}",
            pfx.display()
        )));
    }
    let signing_key = signing_key(
        provider,
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(private_key.key.as_der().to_vec())),
    )
    .map_err(|e| TlsError(format!("tls.pfx: {}: {e}", pfx.display())))?;
    let certs: Vec<&p12_keystore::Certificate> =
        archive.certs.iter().map(|bag| &bag.cert).collect();
    // The leaf is the certificate of the key (compared by public key, not by the bags' local key
    // ids, which not every tool writes).
    let leaf = certs
        .iter()
        .position(|cert| {
            CertifiedKey::new(vec![der(cert)], signing_key.clone())
                .keys_match()
                .is_ok()
        })
        .ok_or_else(|| {
            TlsError(format!(
                "tls.pfx: the private key in {} matches none of its certificates",
                pfx.display()
            ))
        })?;
    Ok(CertifiedKey::new(chain(&certs, leaf), signing_key))
}

/// The passphrase a file holds: its text less one trailing newline.
fn passphrase(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

fn pkcs12_error(
    error: p12_keystore::error::Error,
    pfx: &Path,
    passphrase_file: Option<&Path>,
) -> TlsError {
    use p12_keystore::error::Error;
    let passphrase = match passphrase_file {
        Some(path) => format!("the passphrase in tls.passphrase_file ({})", path.display()),
        None => "an empty passphrase (no tls.passphrase_file)".to_string(),
    };
    TlsError(match error {
        // The MAC is checked with the passphrase first; a bundle without one fails to decrypt.
        Error::MacError(_) | Error::UnpadError | Error::InvalidPrivateKey => format!(
            "tls.pfx: {passphrase} does not open {}: wrong passphrase",
            pfx.display()
        ),
        Error::UnsupportedEncryptionScheme | Error::UnsupportedMacAlgorithm => format!(
            "tls.pfx: {} is encrypted in a way this server does not read ({error}); export it again with AES-256 (`openssl pkcs12 -export`, OpenSSL 3's default)",
            pfx.display()
        ),
        other => format!(
            "tls.pfx: {} is not a PKCS#12 bundle this server reads, or {passphrase} does not open it: {other}",
            pfx.display()
        ),
    })
}

fn signing_key(
    provider: &CryptoProvider,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<dyn SigningKey>, String> {
    provider.key_provider.load_private_key(key).map_err(|e| {
        format!("not a private key this server can use (RSA, ECDSA P-256/P-384 or Ed25519): {e}")
    })
}

fn der(cert: &p12_keystore::Certificate) -> CertificateDer<'static> {
    CertificateDer::from(cert.as_der().to_vec())
}

/// The leaf, then the certificate that issued it, and so on up to a self-signed one or one the
/// bundle does not hold; certificates of the bundle outside that chain are left out.
fn chain(certs: &[&p12_keystore::Certificate], leaf: usize) -> Vec<CertificateDer<'static>> {
    let mut taken = vec![leaf];
    let mut current = certs[leaf];
    while current.subject() != current.issuer() {
        let Some(issuer) = (0..certs.len())
            .find(|&i| !taken.contains(&i) && certs[i].subject() == current.issuer())
        else {
            break;
        };
        taken.push(issuer);
        current = certs[issuer];
    }
    taken.into_iter().map(|i| der(certs[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use std::path::PathBuf;

    fn settings(yaml: &str) -> Result<Settings, String> {
        let dir = tempfile::tempdir().expect("a directory");
        let file = dir.path().join("bosun.yaml");
        std::fs::write(&file, yaml).expect("write the configuration");
        Settings::from_sources(Some(&file), std::iter::empty()).map_err(|e| e.to_string())
    }

    #[test]
    fn either_cert_and_key_or_pfx_is_a_form() {
        let pem = settings("tls:\n  cert: chain.pem\n  key: key.pem\n").expect("PEM form");
        assert_eq!(
            pem.tls.as_ref().map(|t| t.form()),
            Some(Ok(TlsForm::Pem {
                cert: Path::new("chain.pem"),
                key: Path::new("key.pem"),
            }))
        );
        let pfx = settings("tls:\n  pfx: /etc/bosun/server.p12\n  passphrase_file: pass\n")
            .expect("PKCS#12 form");
        assert_eq!(
            pfx.tls.as_ref().map(|t| t.form()),
            Some(Ok(TlsForm::Pkcs12 {
                pfx: Path::new("/etc/bosun/server.p12"),
                passphrase_file: Some(Path::new("pass")),
            }))
        );
        assert!(settings("listen: 127.0.0.1:1\n")
            .expect("no tls")
            .tls
            .is_none());
    }

    #[test]
    fn anything_else_is_an_error_naming_the_key() {
        for (yaml, names) in [
            ("tls: {}\n", "tls: give either cert and key"),
            ("tls:\n  cert: c.pem\n", "tls.key: is required"),
            ("tls:\n  key: k.pem\n", "tls.cert: is required"),
            ("tls:\n  passphrase_file: p\n", "tls.pfx: is required"),
            (
                "tls:\n  cert: c.pem\n  key: k.pem\n  pfx: b.p12\n",
                "tls: cert and key, or pfx, not both",
            ),
            (
                "tls:\n  cert: c.pem\n  key: k.pem\n  passphrase_file: p\n",
                "tls.passphrase_file: goes with tls.pfx only",
            ),
            ("tls:\n  pem: c.pem\n", "tls.pem: unknown field `pem`"),
        ] {
            let error = settings(yaml).expect_err(yaml);
            assert!(error.contains(names), "{yaml}: {error}");
        }
    }

    #[test]
    fn environment_variables_complete_a_form_one_key_each() {
        let settings = Settings::from_sources(
            None,
            [
                ("BOSUN_TLS__CERT".to_string(), "/tls/chain.pem".to_string()),
                ("BOSUN_TLS__KEY".to_string(), "/tls/key.pem".to_string()),
            ],
        )
        .expect("cert and key from the environment");
        let tls = settings.tls.expect("tls");
        assert_eq!(tls.cert, Some(PathBuf::from("/tls/chain.pem")));
        assert_eq!(tls.key, Some(PathBuf::from("/tls/key.pem")));
    }

    #[test]
    fn a_missing_file_is_named_with_its_key() {
        let error = load(&TlsSettings {
            cert: Some(PathBuf::from("/nonexistent/chain.pem")),
            key: Some(PathBuf::from("/nonexistent/key.pem")),
            ..TlsSettings::default()
        })
        .expect_err("no such file");
        assert!(
            error
                .to_string()
                .starts_with("tls.cert: cannot read /nonexistent/chain.pem: "),
            "{error}"
        );
    }

    #[test]
    fn a_file_without_a_certificate_or_a_key_is_named() {
        let dir = tempfile::tempdir().expect("a directory");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not PEM at all\n").expect("write");
        let error = load(&TlsSettings {
            cert: Some(empty.clone()),
            key: Some(empty.clone()),
            ..TlsSettings::default()
        })
        .expect_err("no certificate");
        assert!(
            error
                .to_string()
                .starts_with("tls.cert: no certificate in "),
            "{error}"
        );
        let error = load(&TlsSettings {
            pfx: Some(empty),
            ..TlsSettings::default()
        })
        .expect_err("not a bundle");
        assert!(error.to_string().starts_with("tls.pfx: "), "{error}");
    }

    #[test]
    fn a_passphrase_file_loses_one_trailing_newline() {
        assert_eq!(passphrase("secret\n".into()), "secret");
        assert_eq!(passphrase("secret\r\n".into()), "secret");
        assert_eq!(passphrase("secret\n\n".into()), "secret\n");
        assert_eq!(passphrase(" secret ".into()), " secret ");
    }
}
