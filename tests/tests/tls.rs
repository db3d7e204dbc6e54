//! HTTPS and WSS on the one port (`tls:`), with certificates made in the test: a CA and a
//! server certificate for 127.0.0.1 and localhost (rcgen), given as PEM files or as a PKCS#12
//! bundle (written here in pure Rust, or by `openssl pkcs12 -export`). Clients trust the test's
//! CA only. Plain HTTP to the TLS port gets no HTTP answer; a client that never finishes its
//! handshake is dropped; a bundle the passphrase does not open, or a key that is not the
//! certificate's, stops the start (before the database) naming the key; pulsar's job `url` and
//! Keboola's `uri`s are `https://`; the console's cookies are `Secure` and `__Host-` prefixed,
//! and a cookie request from an `http://` origin is refused. The servers run in the test's
//! process (`spawn_app`), but two: the `bosun` binary, whose listening line says `https://`,
//! and whose debug log holds no session token.

use bosun_api::config::{DatabaseUrl, Settings};
use bosun_api::startup::Application;
use bosun_tests::console::{admin_with_password, set_cookies};
use bosun_tests::{config_file, spawn_app, work_dir, Answer, Api, Server, TestApp, USER_AGENT};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A CA, and a server certificate it issued for 127.0.0.1 and localhost with its key.
struct Pki {
    ca_pem: String,
    ca_der: Vec<u8>,
    leaf_pem: String,
    leaf_der: Vec<u8>,
    /// The server's key, PKCS#8.
    key_pem: String,
    key_der: Vec<u8>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Bosun test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let key = rcgen::KeyPair::generate().expect("a server key");
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("server params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params
        .signed_by(&key, &issuer)
        .expect("the server certificate");
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().to_vec(),
        leaf_pem: leaf.pem(),
        leaf_der: leaf.der().to_vec(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

/// A folder for the real binary: `chain.pem` and `key.pem` of `pki`, and a configuration
/// (its path returned) naming them relative to the folder, on any free port.
fn binary_dir(pki: &Pki) -> (tempfile::TempDir, String) {
    let dir = work_dir();
    write(
        dir.path(),
        "chain.pem",
        format!("{}{}", pki.leaf_pem, pki.ca_pem),
    );
    write(dir.path(), "key.pem", &pki.key_pem);
    let config = config_file(
        dir.path(),
        "listen: 127.0.0.1:0\ntls:\n  cert: chain.pem\n  key: key.pem\n",
    );
    let config = config.to_str().expect("a UTF-8 path").to_string();
    (dir, config)
}

/// Writes `contents` to `dir/name`; its path.
fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// `chain.pem` (leaf, then the CA) and `key.pem` in `dir`: `tls:` configuration naming them.
fn pem_files(pki: &Pki, dir: &Path) -> String {
    let chain = write(dir, "chain.pem", format!("{}{}", pki.leaf_pem, pki.ca_pem));
    let key = write(dir, "key.pem", &pki.key_pem);
    format!(
        "tls:\n  cert: {}\n  key: {}\n",
        chain.display(),
        key.display()
    )
}

/// A PKCS#12 bundle of the server's key and chain, AES-256 encrypted with `passphrase`,
/// written by p12-keystore.
fn pkcs12(pki: &Pki, passphrase: &str) -> Vec<u8> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let chain = PrivateKeyChain::new(
        b"bosun-server".to_vec(),
        PrivateKey::from_der(&pki.key_der).expect("a PKCS#8 key"),
        [
            Certificate::from_der(&pki.leaf_der).expect("the server certificate"),
            Certificate::from_der(&pki.ca_der).expect("the CA certificate"),
        ],
    );
    let mut store = KeyStore::new();
    store.add_entry("bosun", KeyStoreEntry::PrivateKeyChain(chain));
    store.writer(passphrase).write().expect("write the bundle")
}

/// A client that trusts the test's CA (and no other).
fn client(pki: &Pki) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("the CA certificate"),
        )
        .build()
        .expect("an HTTPS client")
}

/// The app's admin client, trusting the test's CA.
fn admin(app: &TestApp, pki: &Pki) -> Api {
    Api {
        http: client(pki),
        ..app.api.clone()
    }
}

async fn healthz(api: &Api) -> StatusCode {
    api.get("/healthz").await.status
}

/// A configuration with `tls` in `dir`, checked as the server checks it, on port 0: what
/// `Application::build` then says.
async fn build_error(yaml: &str) -> String {
    let dir = work_dir();
    let file = config_file(dir.path(), yaml);
    let mut settings = Settings::from_sources(Some(&file), std::iter::empty())
        .unwrap_or_else(|e| panic!("the test's configuration: {e}"));
    settings.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.data_dir = dir.path().join("bosun-data");
    // Never reached: TLS is checked before the database.
    let unreachable = "host=127.0.0.1 port=1 user=nobody dbname=nothing";
    settings.database.url = Some(DatabaseUrl(
        unreachable.parse().expect("a connection string"),
    ));
    let error = match Application::build(settings).await {
        Ok(_) => panic!("the application started with {yaml}"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        !dir.path().join("bosun-data/postgres").exists(),
        "a PostgreSQL was set up before TLS was checked"
    );
    error
}

/// The `openssl` command, which must be installed for the bundles it makes.
fn openssl() -> std::process::Command {
    let found = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the openssl command is missing: apt-get install openssl"
    );
    std::process::Command::new("openssl")
}

/// A console session over HTTPS: the cookies a browser holds, sent back by hand.
struct Console {
    http: reqwest::Client,
    base: String,
    session: String,
    csrf: String,
}

impl Console {
    /// `POST /console/session` as `username`: the answer (200 asserted) and the session.
    async fn sign_in(
        http: reqwest::Client,
        base: &str,
        username: &str,
        password: &str,
    ) -> (Answer, Console) {
        let answer = Answer::read(
            http.post(format!("{base}/console/session"))
                .json(&json!({"username": username, "password": password}))
                .send()
                .await
                .expect("sign in to the console"),
        )
        .await
        .expect(StatusCode::OK);
        let cookies = set_cookies(&answer);
        let value = |name: &str| {
            cookies
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.value.clone())
                .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
        };
        let console = Console {
            session: value("__Host-bosun_session"),
            csrf: value("__Host-bosun_csrf"),
            http,
            base: base.to_string(),
        };
        (answer, console)
    }

    /// `method path` with the cookies (and, for a write, `X-CSRF-Token`), `Origin: origin`.
    async fn send(&self, method: Method, path: &str, origin: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header(
                "cookie",
                format!(
                    "__Host-bosun_session={}; __Host-bosun_csrf={}",
                    self.session, self.csrf
                ),
            )
            .header("origin", origin);
        if method != Method::GET {
            request = request.header("x-csrf-token", &self.csrf);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Answer::read(request.send().await.expect("an HTTPS answer")).await
    }
}

// ---- HTTPS and WSS ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_with_a_certificate_the_ca_vouches_for() {
    let pki = pki();
    let dir = work_dir();
    let app = spawn_app(&pem_files(&pki, dir.path())).await;
    assert_eq!(app.scheme, "https");
    let api = admin(&app, &pki);
    assert!(api.base.starts_with("https://127.0.0.1:"), "{}", api.base);
    assert_eq!(healthz(&api).await, StatusCode::OK);
    // Signed in over it, as any client.
    api.get("/v1/jobs").await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_gets_no_http_answer() {
    let pki = pki();
    let dir = work_dir();
    let app = spawn_app(&pem_files(&pki, dir.path())).await;
    let plain = format!("http://{}/healthz", app.address);
    let refused = reqwest::get(&plain).await;
    assert!(refused.is_err(), "plain HTTP was answered: {refused:?}");

    // Byte by byte: whatever comes back (a TLS alert at most) is no HTTP answer, and the
    // connection is closed.
    let mut tcp = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send a plain request");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("the connection was not closed within 10 s")
        .ok();
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // And the server serves HTTPS on as before.
    assert_eq!(healthz(&admin(&app, &pki)).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_handshake_is_dropped() {
    let pki = pki();
    let dir = work_dir();
    let yaml = format!(
        "{}http:\n  header_read_timeout_seconds: 1\n",
        pem_files(&pki, dir.path())
    );
    let app = spawn_app(&yaml).await;
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut got))
        .await
        .expect("a silent client was not dropped within 10 s")
        .ok();
    assert!(got.is_empty(), "{got:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "dropped before the header read timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_is_wss_on_the_same_port() {
    let pki = pki();
    let dir = work_dir();
    let app = spawn_app(&pem_files(&pki, dir.path())).await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(pki.ca_der.clone()))
        .expect("the CA as a root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("a name"),
            tcp,
        )
        .await
        .expect("the TLS handshake");

    let mut request = format!(
        "wss://localhost:{}/v1/events/live?from=0",
        app.address.port()
    )
    .into_client_request()
    .expect("a WebSocket request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.api.token)
            .parse()
            .expect("a header"),
    );
    let (mut socket, response) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("open the live feed over TLS");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let first = loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("no event within 30 s")
            .expect("the feed ended")
            .expect("a WebSocket error");
        match message {
            Message::Text(text) => break serde_json::from_str::<Value>(&text).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message {other:?}"),
        }
    };
    // The log's first event: the first start's admin roster.
    assert_eq!(first["position"], 1, "{first}");
}

/// `tls:` with a PKCS#12 bundle and its passphrase file.
fn pfx_settings(pfx: &std::path::Path, passphrase_file: &std::path::Path) -> String {
    format!(
        "tls:\n  pfx: {}\n  passphrase_file: {}\n",
        pfx.display(),
        passphrase_file.display()
    )
}

/// `tls:` with PEM files.
fn pem_settings(cert: &std::path::Path, key: &std::path::Path) -> String {
    format!(
        "tls:\n  cert: {}\n  key: {}\n",
        cert.display(),
        key.display()
    )
}

// ---- PKCS#12 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkcs12_bundle_serves_https() {
    let pki = pki();
    let dir = work_dir();
    let pfx = write(dir.path(), "server.p12", pkcs12(&pki, "s3cret pass"));
    let passphrase = write(dir.path(), "passphrase", "s3cret pass\n");
    let app = spawn_app(&pfx_settings(&pfx, &passphrase)).await;
    assert_eq!(healthz(&admin(&app, &pki)).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs12_bundles_openssl_exports_serve_https_aes_and_legacy_3des() {
    let pki = pki();
    let dir = work_dir();
    write(dir.path(), "leaf.pem", &pki.leaf_pem);
    write(dir.path(), "key.pem", &pki.key_pem);
    write(dir.path(), "ca.pem", &pki.ca_pem);
    let passphrase = write(dir.path(), "passphrase", "openssl pass\n");
    // OpenSSL 3's default (PBES2, AES-256-CBC, PBKDF2 with HMAC-SHA256), then the legacy
    // 3DES one older tools write.
    for (name, options) in [
        ("aes.p12", &[][..]),
        (
            "3des.p12",
            &[
                "-keypbe",
                "PBE-SHA1-3DES",
                "-certpbe",
                "PBE-SHA1-3DES",
                "-macalg",
                "sha1",
            ][..],
        ),
    ] {
        let exported = openssl()
            .current_dir(dir.path())
            .args([
                "pkcs12",
                "-export",
                "-in",
                "leaf.pem",
                "-inkey",
                "key.pem",
                "-certfile",
                "ca.pem",
                "-passout",
                "file:passphrase",
                "-out",
                name,
            ])
            .args(options)
            .output()
            .expect("run openssl");
        assert!(
            exported.status.success(),
            "openssl pkcs12 -export {options:?}: {}",
            String::from_utf8_lossy(&exported.stderr)
        );
        let app = spawn_app(&pfx_settings(&dir.path().join(name), &passphrase)).await;
        assert_eq!(healthz(&admin(&app, &pki)).await, StatusCode::OK, "{name}");
        app.stop().await;
    }
}

// ---- What stops the start ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_passphrase_stops_the_start_naming_the_bundle_and_the_passphrase_file() {
    let pki = pki();
    let dir = work_dir();
    let pfx = write(dir.path(), "server.p12", pkcs12(&pki, "the right one"));
    let wrong = write(dir.path(), "passphrase", "a wrong one\n");
    let error = build_error(&pfx_settings(&pfx, &wrong)).await;
    assert!(error.contains("tls.pfx"), "{error}");
    assert!(error.contains("tls.passphrase_file"), "{error}");
    assert!(error.contains("wrong passphrase"), "{error}");
    assert!(
        !error.contains("a wrong one"),
        "the passphrase is in the error: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_with_no_key_or_two_keys_stops_the_start_saying_so() {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let (pki, other) = (pki(), pki());
    let dir = work_dir();
    let chain = |pki: &Pki, id: &[u8]| {
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            id.to_vec(),
            PrivateKey::from_der(&pki.key_der).expect("a PKCS#8 key"),
            [Certificate::from_der(&pki.leaf_der).expect("a certificate")],
        ))
    };
    let mut two = KeyStore::new();
    two.add_entry("first", chain(&pki, b"first"));
    two.add_entry("second", chain(&other, b"second"));
    let mut none = KeyStore::new();
    none.add_entry(
        "ca",
        KeyStoreEntry::Certificate(Certificate::from_der(&pki.ca_der).expect("a certificate")),
    );
    let passphrase = write(dir.path(), "passphrase", "pass\n");
    for (name, store, says) in [
        ("two.p12", two, "tls.pfx: 2 private keys in "),
        ("none.p12", none, "tls.pfx: no private key in "),
    ] {
        let pfx = write(
            dir.path(),
            name,
            store.writer("pass").write().expect("write the bundle"),
        );
        let error = build_error(&pfx_settings(&pfx, &passphrase)).await;
        assert!(error.contains(says), "{name}: {error}");
        assert!(error.contains(name), "{name}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_the_certificates_stops_the_start_naming_tls_key() {
    let pki = pki();
    let dir = work_dir();
    let chain = write(
        dir.path(),
        "chain.pem",
        format!("{}{}", pki.leaf_pem, pki.ca_pem),
    );
    let other = rcgen::KeyPair::generate().expect("another key");
    let key = write(dir.path(), "other-key.pem", other.serialize_pem());
    let error = build_error(&pem_settings(&chain, &key)).await;
    assert!(error.contains("tls.key"), "{error}");
    assert!(error.contains("does not match"), "{error}");
    assert!(error.contains("other-key.pem"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_certificate_file_stops_the_start_naming_it() {
    let pki = pki();
    let dir = work_dir();
    let key = write(dir.path(), "key.pem", &pki.key_pem);
    let missing = dir.path().join("missing.pem");
    let error = build_error(&pem_settings(&missing, &key)).await;
    assert!(
        error.contains(&format!("tls.cert: cannot read {}", missing.display())),
        "{error}"
    );
}

// ---- The console's session under TLS ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_cookies_are_secure_and_host_prefixed_and_an_http_origin_is_refused() {
    let pki = pki();
    let dir = work_dir();
    let app = spawn_app(&pem_files(&pki, dir.path())).await;
    let admin = admin_with_password(&admin(&app, &pki), "tls-console-password").await;
    let (signed_in, console) =
        Console::sign_in(client(&pki), &app.url(""), &admin, "tls-console-password").await;
    let cookies = set_cookies(&signed_in);
    assert_eq!(
        cookies.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["__Host-bosun_session", "__Host-bosun_csrf"],
        "{cookies:?}"
    );
    for cookie in &cookies {
        // What a `__Host-` cookie must be for a browser to keep it.
        assert!(cookie.has("Secure"), "{cookie:?}");
        assert!(cookie.has("Path=/"), "{cookie:?}");
        assert!(cookie.has("SameSite=Strict"), "{cookie:?}");
        assert!(
            !cookie
                .attributes
                .iter()
                .any(|a| a.to_ascii_lowercase().starts_with("domain")),
            "{cookie:?}"
        );
    }
    assert!(cookies[0].has("HttpOnly"), "{:?}", cookies[0]);
    assert!(!cookies[1].has("HttpOnly"), "{:?}", cookies[1]);
    assert_eq!(signed_in.body["csrf"], console.csrf.as_str());

    let https_origin = format!("https://{}", app.address);
    let http_origin = format!("http://{}", app.address);
    // The cookie is the session over HTTPS.
    let session = console
        .send(Method::GET, "/console/session", &https_origin, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(session.body["username"], admin.as_str());

    // A write from the same host and port but over http:// is another origin.
    console
        .send(
            Method::POST,
            "/v1/teams",
            &http_origin,
            Some(json!({"name": "tls_team"})),
        )
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "cross_origin");
    // So is signing in from it.
    let refused = Answer::read(
        client(&pki)
            .post(app.url("/console/session"))
            .header("origin", &http_origin)
            .json(&json!({"username": admin, "password": "tls-console-password"}))
            .send()
            .await
            .expect("sign in from http://"),
    )
    .await;
    assert!(refused.headers.get("set-cookie").is_none(), "{refused:?}");
    refused
        .problem()
        .expect(StatusCode::FORBIDDEN, "cross_origin");
    // From the https origin the same write goes through (so the team was not made above).
    console
        .send(
            Method::POST,
            "/v1/teams",
            &https_origin,
            Some(json!({"name": "tls_team"})),
        )
        .await
        .expect(StatusCode::CREATED);

    // The plain-HTTP cookie's name is no session under TLS.
    let plain_name = Answer::read(
        client(&pki)
            .get(app.url("/console/session"))
            .header("cookie", format!("bosun_session={}", console.session))
            .send()
            .await
            .expect("GET /console/session"),
    )
    .await;
    plain_name
        .problem()
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    // Nor is a session cookie tossed in beside the real one.
    let tossed = Answer::read(
        client(&pki)
            .get(app.url("/console/session"))
            .header(
                "cookie",
                format!(
                    "__Host-bosun_session={}; __Host-bosun_session=bosun_tossed",
                    console.session
                ),
            )
            .send()
            .await
            .expect("GET /console/session"),
    )
    .await;
    tossed
        .problem()
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");

    // Signing out clears the same cookies, Secure too.
    let signed_out = console
        .send(Method::DELETE, "/console/session", &https_origin, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let cleared = set_cookies(&signed_out);
    assert_eq!(
        cleared.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["__Host-bosun_session", "__Host-bosun_csrf"],
        "{cleared:?}"
    );
    for cookie in &cleared {
        assert_eq!(cookie.value, "", "{cookie:?}");
        assert!(cookie.has("Secure") && cookie.has("Path=/"), "{cookie:?}");
    }
}

// ---- What the server says of itself ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsars_job_url_is_https() {
    let pki = pki();
    let dir = work_dir();
    let app = spawn_app(&format!(
        "{}runner:\n  workers: 0\ncatalog:\n  example:\n    production:\n      quick:\n        command: [\"true\"]\n",
        pem_files(&pki, dir.path())
    ))
    .await;
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:x-oauth-basic", app.api.token));
    let response = client(&pki)
        .post(app.url("/compat/pulsar/example/production"))
        .header("authorization", format!("Basic {basic}"))
        .json(&json!({"task": "quick"}))
        .send()
        .await
        .expect("create a job");
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.expect("JSON");
    let id = created["id"].as_str().expect("an id");
    assert_eq!(
        created["url"],
        format!("https://{}/web#job/{id}", app.address),
        "{created}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keboolas_uris_are_https() {
    let pki = pki();
    let dir = work_dir();
    let app = spawn_app(&format!(
        "{}runner:\n  workers: 0\ncatalog:\n  example:\n    production:\n      quick:\n        command: [\"true\"]\n",
        pem_files(&pki, dir.path())
    ))
    .await;
    let http = client(&pki);
    let keboola = |method: Method, path: &str, body: Option<Value>| {
        let mut request = http
            .request(method, app.url(&format!("/compat/keboola{path}")))
            .header("X-StorageApi-Token", &app.api.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { Answer::read(request.send().await.expect("a Keboola answer")).await }
    };
    let base = format!("https://{}/compat/keboola", app.address);
    let orchestration = keboola(
        Method::POST,
        "/orchestrations",
        Some(json!({"name": "quick", "tasks": [{"component": "example/production/quick"}]})),
    )
    .await
    .expect(StatusCode::CREATED)
    .body;
    let id = orchestration["id"].as_str().expect("an id");
    assert_eq!(
        orchestration["uri"],
        format!("{base}/orchestrations/{id}"),
        "{orchestration}"
    );
    let job = keboola(Method::POST, &format!("/orchestrations/{id}/jobs"), None)
        .await
        .expect(StatusCode::CREATED)
        .body;
    let job_id = job["id"].as_str().expect("an id");
    assert_eq!(job["uri"], format!("{base}/jobs/{job_id}"), "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_says_it_listens_on_https_with_paths_relative_to_its_directory() {
    let pki = pki();
    let (dir, config) = binary_dir(&pki);
    let config = config.as_str();
    let server = Server::start(dir.path(), &["-c", config], &[]);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let health = client(&pki)
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("GET /healthz over HTTPS");
    assert_eq!(health.status(), StatusCode::OK);
    // What a client sends in its handshake makes no line of the server's log (rustls warns of
    // an SNI name it finds illegal, quoting it; the default log filter keeps rustls to errors).
    const SAID: &str = "client!says!this";
    let address = server.base.trim_start_matches("https://").to_string();
    let handshake = openssl()
        .args(["s_client", "-connect", &address, "-servername", SAID])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    assert!(
        String::from_utf8_lossy(&handshake.stdout).contains("CONNECTED"),
        "openssl s_client did not connect: {}",
        String::from_utf8_lossy(&handshake.stderr)
    );
    let log = server.log();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    if std::env::var_os("RUST_LOG").is_none() {
        assert!(
            !log.contains(SAID),
            "the client's words are in the log:\n{log}"
        );
        assert!(!log.contains("rustls"), "rustls logged:\n{log}");
    } else {
        eprintln!("RUST_LOG is set: the default log filter is not what the server ran with");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binarys_debug_log_holds_no_session_token_or_password() {
    let pki = pki();
    let (dir, config) = binary_dir(&pki);
    let config = config.as_str();
    let server = Server::start(dir.path(), &["-c", config], &[("RUST_LOG", "debug")]);
    let api = Api {
        http: client(&pki),
        ..Api::new(&server, dir.path())
    };
    const PASSWORD: &str = "log-test-password-5b1e";
    let admin = admin_with_password(&api, PASSWORD).await;
    let (_, console) = Console::sign_in(client(&pki), &server.base, &admin, PASSWORD).await;
    let origin = server.base.clone();
    console
        .send(Method::GET, "/v1/auth/whoami", &origin, None)
        .await
        .expect(StatusCode::OK);
    console
        .send(
            Method::POST,
            "/v1/teams",
            &origin,
            Some(json!({"name": "log_team"})),
        )
        .await
        .expect(StatusCode::CREATED);
    console
        .send(Method::DELETE, "/console/session", &origin, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let log = server.log();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    // The log is at debug: the requests above are in it.
    assert!(log.contains("DEBUG"), "not a debug log:\n{log}");
    assert!(
        log.contains("/console/session"),
        "the requests are not logged:\n{log}"
    );
    let secret = console.session.trim_start_matches("bosun_");
    for (what, value) in [
        ("the session token", console.session.as_str()),
        ("the session token's secret", secret),
        ("the admin's password", PASSWORD),
    ] {
        assert!(
            value.len() >= 16,
            "{what} is too short to look for: {value:?}"
        );
        assert!(
            !log.contains(value),
            "{what} is in the server's log:\n{log}"
        );
    }
}
