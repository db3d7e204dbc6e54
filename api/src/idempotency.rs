//! `Idempotency-Key` on the `POST`s of `/v1`: a client that sends a create again (its answer
//! lost, a timeout) with the same key and the same request gets the first answer again, marked
//! `Idempotency-Replayed: true`, instead of a second resource; the same key with another request
//! is a 409 `idempotency_key_reused`. A key is the caller's (the credential it sent) and is kept
//! 24 h ([`KEPT`]).
//!
//! The first request with a key takes it (a row of `idempotent_answers`, for [`LEASE`]) before
//! its handler runs, so retries racing it wait for its answer rather than run beside it; a
//! retry that waits longer than [`WAIT`] is a 409 `idempotency_key_in_flight` with
//! `Retry-After`. Only a success (2xx) is kept: a refused request changed nothing, so its retry
//! is decided again. The answer's body is sealed with the data key before it is stored: a
//! create's answer may hold a secret shown once (a token).
//!
//! `POST /v1/jobs` and `POST /v1/healers/{healer}` key their jobs themselves (the key and the
//! request make the job's id, which a crash cannot lose), so they pass through here.
//!
//! Not kept through a crash: a process that dies after its write but before it stored the answer
//! leaves the key taken until the lease ends; the retry after it runs the request again, which a
//! create of a named resource refuses (409, it exists) and a create of an unnamed one (a token)
//! makes again.
//!
//! Not here: what a create does; the compat surfaces (their clients send no key).

use crate::extract::{body_timeout, BodyReadTimeout, MAX_BODY_BYTES};
use crate::problem::Problem;
use crate::startup::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bosun_eventstore::migrate::{migrate as run_migrations, Migration, MigrationError};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// How long a key and its answer are kept.
pub const KEPT: Duration = Duration::from_secs(24 * 3600);
/// How long the first request with a key holds it while it runs.
const LEASE: Duration = Duration::from_secs(120);
/// How long a retry waits for the first request's answer.
const WAIT: Duration = Duration::from_secs(10);
/// How often a process sweeps out the keys older than [`KEPT`].
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// The `POST` routes that key what they make themselves.
const OWN_KEYS: &[&str] = &["/v1/jobs", "/v1/healers/{healer}"];

/// The headers of an answer kept with it (the body's type, and what names the resource).
const KEPT_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::ETAG,
    HeaderName::from_static("bosun-position"),
];

/// The header a replayed answer carries.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotency-replayed");

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "idempotent answers",
    sql: "CREATE TABLE idempotent_answers (
              caller      BYTEA NOT NULL,
              key         TEXT NOT NULL,
              request     BYTEA NOT NULL,
              lease       UUID NOT NULL,
              status      SMALLINT,
              headers     JSONB,
              body        TEXT,
              taken_until TIMESTAMPTZ NOT NULL,
              created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
              PRIMARY KEY (caller, key));
          CREATE INDEX idempotent_answers_by_age ON idempotent_answers (created_at);",
}];

/// Creates (or brings up to date) the table of kept answers.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<Vec<i32>, MigrationError> {
    run_migrations(client, "idempotency", MIGRATIONS).await
}

/// When this process last swept out old keys (seconds since the epoch).
static LAST_SWEEP: AtomicI64 = AtomicI64::new(0);

/// The middleware of every `/v1` route (a route layer: it needs the matched route).
pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let keyed = request.method() == Method::POST
        && request.headers().contains_key("idempotency-key")
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|m| m.as_str().starts_with("/v1/") && !OWN_KEYS.contains(&m.as_str()));
    if !keyed {
        return next.run(request).await;
    }
    match keep(&state, request, next).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn keep(state: &AppState, request: Request, next: Next) -> Result<Response, Problem> {
    let key = parse_key(request.headers().get("idempotency-key"))?;
    // A caller without a credential has no keys of its own: its requests run as sent.
    let Some(caller) = caller_of(request.headers()) else {
        return Ok(next.run(request).await);
    };
    let (mut parts, body) = request.into_parts();
    let bytes = read_body(&parts.headers, parts.extensions.get(), body).await?;
    let fingerprint = fingerprint(&parts.method, &parts.uri, &parts.headers, &bytes);
    let lease = uuid::Uuid::new_v4();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // A connection per try, given back before any wait: waiters must not starve the
        // request they wait for of connections.
        let seen = {
            let client = state
                .store
                .pool()
                .get()
                .await
                .map_err(|e| unavailable(&e))?;
            sweep(&client).await;
            take_or_read(&client, &caller, &key, &fingerprint, lease).await?
        };
        match seen {
            Seen::Taken => {
                let request = Request::from_parts(parts, Body::from(bytes));
                // Its own task: a client that hangs up cancels the request's future, and the
                // answer must still be kept (or the key given back) once the handler is done.
                let first = tokio::spawn(answer_first(
                    state.clone(),
                    caller,
                    key,
                    lease,
                    request,
                    next,
                ));
                return first.await.map_err(|e| {
                    tracing::error!(error = %e, "the first request with an Idempotency-Key failed");
                    Problem::internal()
                });
            }
            Seen::Other => {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request in the last 24 h; use a new key",
                ))
            }
            Seen::Answered(answer) => {
                // Still the caller it was: a revoked or expired token is refused, not replayed.
                <crate::auth::Caller as FromRequestParts<AppState>>::from_request_parts(&mut parts, state)
                    .await?;
                let sealer = state.commands.sealer().map_err(|_| no_sealer())?;
                let context = context_of(&caller);
                return replay(sealer, &context, answer.0, &answer.1, &answer.2);
            }
            Seen::Running | Seen::Gone => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_flight",
                "the first request with this Idempotency-Key is still running; retry later",
            )
            .with_retry_after(1));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the table holds for a key when a request comes with it.
enum Seen {
    /// Nothing (or an expired key, or an abandoned lease of the same request): now this
    /// request's.
    Taken,
    /// Another request's.
    Other,
    /// This request's answer: status, headers, sealed body.
    Answered((i16, serde_json::Value, String)),
    /// The same request, still running.
    Running,
    /// Given back between the two statements: try again.
    Gone,
}

async fn take_or_read(
    client: &deadpool_postgres::Object,
    caller: &[u8],
    key: &str,
    fingerprint: &[u8],
    lease: uuid::Uuid,
) -> Result<Seen, Problem> {
    let taken = client
        .query_opt(
            "INSERT INTO idempotent_answers (caller, key, request, lease, taken_until) \
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) \
             ON CONFLICT (caller, key) DO UPDATE SET request = EXCLUDED.request, \
               status = NULL, headers = NULL, body = NULL, lease = EXCLUDED.lease, \
               taken_until = EXCLUDED.taken_until, created_at = now() \
             WHERE idempotent_answers.created_at < now() - make_interval(secs => $6) \
                OR (idempotent_answers.status IS NULL \
                    AND idempotent_answers.taken_until < now() \
                    AND idempotent_answers.request = EXCLUDED.request) \
             RETURNING 1",
            &[
                &caller,
                &key,
                &fingerprint,
                &lease,
                &(LEASE.as_secs() as f64),
                &(KEPT.as_secs() as f64),
            ],
        )
        .await
        .map_err(|e| unavailable(&e))?
        .is_some();
    if taken {
        return Ok(Seen::Taken);
    }
    let row = client
        .query_opt(
            "SELECT request, status, headers, body FROM idempotent_answers \
             WHERE caller = $1 AND key = $2",
            &[&caller, &key],
        )
        .await
        .map_err(|e| unavailable(&e))?;
    let Some(row) = row else {
        return Ok(Seen::Gone);
    };
    if row.get::<_, &[u8]>(0) != fingerprint {
        return Ok(Seen::Other);
    }
    Ok(
        match (
            row.get::<_, Option<i16>>(1),
            row.get::<_, Option<serde_json::Value>>(2),
            row.get::<_, Option<String>>(3),
        ) {
            (Some(status), Some(headers), Some(body)) => Seen::Answered((status, headers, body)),
            _ => Seen::Running,
        },
    )
}

/// Runs the first request with a key, holding its lease while it runs, and keeps its answer if
/// it succeeded; gives the key back if not. Whatever goes wrong after the handler answered, the
/// client gets that answer.
async fn answer_first(
    state: AppState,
    caller: Vec<u8>,
    key: String,
    lease: uuid::Uuid,
    request: Request,
    next: Next,
) -> Response {
    let handler = next.run(request);
    tokio::pin!(handler);
    let mut renew = tokio::time::interval(LEASE / 4);
    renew.tick().await;
    let response = loop {
        tokio::select! {
            response = &mut handler => break response,
            _ = renew.tick() => {
                let renewed = match state.store.pool().get().await {
                    Ok(client) => client
                        .execute(
                            "UPDATE idempotent_answers \
                             SET taken_until = now() + make_interval(secs => $4) \
                             WHERE caller = $1 AND key = $2 AND lease = $3 AND status IS NULL",
                            &[&caller, &key, &lease, &(LEASE.as_secs() as f64)],
                        )
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = renewed {
                    tracing::warn!(error = %e, "renewing an Idempotency-Key's lease failed");
                }
            }
        }
    };
    let client = match state.store.pool().get().await {
        Ok(client) => client,
        Err(e) => {
            // The lease runs out instead; a retry after it runs the request again.
            tracing::warn!(error = %e, "no connection to keep the answer of an Idempotency-Key");
            return response;
        }
    };
    let status = response.status();
    if !status.is_success() {
        if let Err(e) = client
            .execute(
                "DELETE FROM idempotent_answers \
                 WHERE caller = $1 AND key = $2 AND lease = $3 AND status IS NULL",
                &[&caller, &key, &lease],
            )
            .await
        {
            tracing::warn!(error = %e, "giving back an Idempotency-Key failed");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "reading an answer to keep failed");
            return Problem::internal().into_response();
        }
    };
    let headers: serde_json::Map<String, serde_json::Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(name)?.to_str().ok()?;
            Some((name.to_string(), serde_json::Value::from(value)))
        })
        .collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let sealed = state
        .commands
        .sealer()
        .map_err(|_| no_sealer())
        .and_then(|sealer| {
            sealer.seal(&context_of(&caller), &encoded).map_err(|e| {
                tracing::error!(error = %e, "sealing an answer to keep failed");
                Problem::internal()
            })
        });
    match sealed {
        Ok(sealed) => {
            if let Err(e) = client
                .execute(
                    "UPDATE idempotent_answers SET status = $4, headers = $5, body = $6 \
                     WHERE caller = $1 AND key = $2 AND lease = $3",
                    &[
                        &caller,
                        &key,
                        &lease,
                        &(status.as_u16() as i16),
                        &serde_json::Value::Object(headers),
                        &sealed.as_str(),
                    ],
                )
                .await
            {
                // The write is done and answered; a retry after the lease runs it again.
                tracing::warn!(error = %e, "keeping an answer for its Idempotency-Key failed");
            }
        }
        Err(_) => tracing::warn!("an answer not kept for its Idempotency-Key"),
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn no_sealer() -> Problem {
    tracing::error!("no data key to seal kept answers with");
    Problem::internal()
}

/// What a kept answer is sealed for: its caller's keys alone.
fn context_of(caller: &[u8]) -> String {
    format!("idempotent answer {}", hex(caller))
}

fn replay(
    sealer: &bosun_commands::Sealer,
    context: &str,
    status: i16,
    headers: &serde_json::Value,
    body: &str,
) -> Result<Response, Problem> {
    use secrecy::ExposeSecret;
    let broken = |what: &str| {
        tracing::error!(what, "a kept answer cannot be replayed");
        Problem::internal()
    };
    let sealed = bosun_domain::sealed::Sealed::from_stored(body.to_string());
    let opened = sealer
        .open(context, &sealed)
        .map_err(|_| broken("its body does not open"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(opened.expose_secret())
        .map_err(|_| broken("its body is not base64"))?;
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| broken("its status"))?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    if let Some(headers) = headers.as_object() {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::try_from),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}

/// A key is 1 to 255 visible ASCII characters.
fn parse_key(value: Option<&HeaderValue>) -> Result<String, Problem> {
    let invalid = || {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
    };
    let text = value.and_then(|v| v.to_str().ok()).ok_or_else(invalid)?;
    if text.is_empty() || text.len() > 255 || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(text.to_string())
}

/// Whose key it is: the digest of the credential sent; `None` without one.
fn caller_of(headers: &HeaderMap) -> Option<Vec<u8>> {
    let credential = headers.get(header::AUTHORIZATION)?;
    let mut digest = Sha256::new();
    digest.update(b"bosun idempotency caller v1\0");
    digest.update(credential.as_bytes());
    Some(digest.finalize().to_vec())
}

/// What makes two requests the same: method, path and query, body type and body.
fn fingerprint(
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<u8> {
    let mut digest = Sha256::new();
    for part in [
        method.as_str().as_bytes(),
        uri.path_and_query().map_or("", |p| p.as_str()).as_bytes(),
        headers
            .get(header::CONTENT_TYPE)
            .map_or(&b""[..], |v| v.as_bytes()),
    ] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part);
    }
    digest.update(body);
    digest.finalize().to_vec()
}

/// The body, whole, within the router's limits of size (413) and time (408).
async fn read_body(
    headers: &HeaderMap,
    timeout: Option<&BodyReadTimeout>,
    body: Body,
) -> Result<Bytes, Problem> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(crate::extract::too_large());
    }
    let wait = timeout.map_or(Duration::from_secs(60), |t| t.0);
    let read = async {
        use futures::StreamExt;
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Problem::bad_request(format!("the body cannot be read: {e}"), vec![])
            })?;
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(crate::extract::too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(bytes))
    };
    tokio::time::timeout(wait, read).await.map_err(|_| {
        body_timeout(format!(
            "the body did not all arrive within {} s (http.body_read_timeout_seconds)",
            wait.as_secs()
        ))
    })?
}

/// At most once per [`SWEEP_EVERY`] in a process, the keys older than [`KEPT`] go.
async fn sweep(client: &deadpool_postgres::Object) {
    let now = chrono::Utc::now().timestamp();
    let last = LAST_SWEEP.load(Ordering::Relaxed);
    if now - last < SWEEP_EVERY.as_secs() as i64
        || LAST_SWEEP
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    if let Err(e) = client
        .execute(
            "DELETE FROM idempotent_answers WHERE created_at < now() - make_interval(secs => $1)",
            &[&(KEPT.as_secs() as f64)],
        )
        .await
    {
        tracing::warn!(error = %e, "sweeping out old Idempotency-Keys failed");
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "the table of Idempotency-Keys is unreachable");
    Problem::unavailable("the database is unavailable; retry later")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_visible_ascii_of_1_to_255_characters() {
        let parse = |s: &str| parse_key(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(parse("k-1").unwrap(), "k-1");
        assert!(parse(&"x".repeat(255)).is_ok());
        for bad in ["", "a b", &"x".repeat(256)] {
            let problem = parse(bad).unwrap_err();
            assert_eq!(
                (problem.status, problem.code),
                (400, "invalid_header"),
                "{bad:?}"
            );
        }
        assert!(parse_key(None).is_err());
    }

    #[test]
    fn requests_differing_in_method_path_type_or_body_differ() {
        let uri: axum::http::Uri = "/v1/teams".parse().unwrap();
        let mut json = HeaderMap::new();
        json.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let one = fingerprint(&Method::POST, &uri, &json, b"{}");
        assert_eq!(one, fingerprint(&Method::POST, &uri, &json, b"{}"));
        assert_ne!(one, fingerprint(&Method::PUT, &uri, &json, b"{}"));
        assert_ne!(
            one,
            fingerprint(&Method::POST, &"/v1/teams?x".parse().unwrap(), &json, b"{}")
        );
        assert_ne!(
            one,
            fingerprint(&Method::POST, &uri, &HeaderMap::new(), b"{}")
        );
        assert_ne!(one, fingerprint(&Method::POST, &uri, &json, b"{ }"));
    }

    #[test]
    fn a_key_is_each_credentials_own() {
        let mut ann = HeaderMap::new();
        ann.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        let mut bob = HeaderMap::new();
        bob.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_ne!(caller_of(&ann), caller_of(&bob));
        assert_eq!(caller_of(&ann), caller_of(&ann.clone()));
        assert_eq!(caller_of(&HeaderMap::new()), None, "no credential, no keys");
    }
}
