//! Building the application: database, event store, projections, routes, listener. Tests build
//! it on port 0 and talk to it over HTTP like any client.

use crate::config::Settings;
use crate::core::Core;
use crate::database::Database;
use crate::freshness::wait_for_min_position;
use crate::live::Hub;
use crate::metrics::{count_requests, Metrics};
use crate::problem::Problem;
use crate::routes;
use axum::http::{HeaderName, Request};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bosun_commands::{Commands, Queries};
use bosun_domain::jobs::Catalog;
use bosun_eventstore::{EventStore, PgEventStore};
use bosun_projections::{Freshness, Running};
use bosun_runner::Workers;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: PgEventStore,
    pub freshness: Freshness,
    pub metrics: Arc<Metrics>,
    pub commands: Commands,
    /// Every read, authorized for its caller.
    pub queries: Queries,
    pub live: Hub,
    pub catalog: Arc<Catalog>,
    /// Hosts `component_url` tasks and webhooks may reach over plain http.
    pub allow_insecure_hosts: Arc<Vec<String>>,
    /// The longest a `wait: true` submission waits for its job.
    pub wait_limit: std::time::Duration,
    /// The configured healers (`healers:`), checked against the catalog.
    pub healers: Arc<bosun_commands::healers::Healers>,
    /// Sends password reset mails; none without `notifications.smtp`.
    pub mailer: Option<Arc<crate::mail::Mailer>>,
    /// How long a password reset token works (`identity.password_reset_ttl_seconds`).
    pub password_reset_ttl_seconds: i64,
    /// The configured rules of apps (`quota.apps_per_user`).
    pub app_rules: bosun_commands::apps::AppRules,
    /// Makes the calls to services' APIs that instance requests record as intents, and waits
    /// (at most `services.wait_seconds`) for their outcome.
    pub service_calls: bosun_runner::ServiceCalls,
    /// The configured rules of runnables' files (`runnables.max_file_bytes`, …) and reaping.
    pub runnable_rules: bosun_commands::runnables::RunnableRules,
    /// How long an anonymous user's token works (`runnables.anonymous_token_ttl_seconds`).
    pub anonymous_token_seconds: i64,
    /// How many anonymous users one address may make (`runnables.anonymous_per_address`).
    pub anonymous_limit: Arc<crate::rate_limit::RateLimit>,
    /// The live sockets each token holds open (`live.max_sockets_per_token`).
    pub live_sockets: Arc<crate::routes::live::access::SocketCounts>,
    /// How long a route waits for a request's whole body (`http.body_read_timeout_seconds`).
    pub body_read_timeout_seconds: u64,
    /// The failed password sign-ins counted (`auth.sign_in_limit`).
    pub sign_in_limit: Arc<crate::sign_in::SignInLimit>,
    /// What role jobs' roles may run (`compat.openpai.commands`): `/v1/jobs` and OpenPAI's.
    pub role_settings: bosun_commands::RoleSettings,
    /// Whether the server serves HTTPS (`tls`): the console's cookies are `Secure`, pulsar's
    /// job `url` is `https://`.
    pub https: bool,
    /// GitHub sign-in (`auth.github`): the OAuth web flow, and GitHub tokens as API tokens.
    pub github: Option<Arc<crate::github::Github>>,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    database: Database,
    projections: Running,
    workers: Workers,
    header_read_timeout: std::time::Duration,
    /// The TLS handshake of every connection, with `tls` configured.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Checked before anything starts (`Settings` checked it too, if it read the sources).
        let healers = Arc::new(
            bosun_commands::healers::Healers::parse(&settings.healers, &settings.catalog)
                .map_err(|e| anyhow::anyhow!("configuration: {e}"))?,
        );
        // Before the database: a port in use stops the start with nothing started (a managed
        // PostgreSQL started first would be left running).
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {} (listen): {e}", settings.listen))?;
        // Before the database too: a certificate that cannot be served stops the start.
        let tls = match &settings.tls {
            Some(tls) => Some(tokio_rustls::TlsAcceptor::from(
                crate::tls::load(tls).map_err(|e| {
                    // A configuration error (exit status 2), as one found when reading it.
                    anyhow::Error::new(crate::cli::UsageError(format!("configuration: {e}")))
                })?,
            )),
            None => None,
        };
        // Before the database too: GitHub's settings (and its client secret's file) checked.
        let github = match &settings.auth.github {
            Some(github) => Some(Arc::new(crate::github::Github::new(github).map_err(
                |e| {
                    // A configuration error (exit status 2), as the TLS one above.
                    anyhow::Error::new(crate::cli::UsageError(format!("configuration: {e}")))
                },
            )?)),
            None => None,
        };
        let database = Database::open(&settings).await?;
        let Core {
            store,
            projections,
            commands,
            queries,
        } = Core::open(&database.config).await?;
        {
            let mut client = store.pool().get().await?;
            crate::idempotency::migrate(&mut client).await?;
        }
        let head = store.head().await?;
        let setup = crate::data_key::runner_setup(&settings)?;
        let commands = commands.with_sealer(bosun_commands::Sealer::new(&setup.data_key));
        let catalog = setup.catalog.clone();
        let workers = bosun_runner::start(commands.clone(), setup, &database.config).await?;
        crate::bootstrap::when_caught_up(
            commands.clone(),
            projections.freshness(),
            head,
            settings.data_dir.clone(),
        )
        .await?;
        let state = AppState {
            live: Hub::start(
                store.clone(),
                projections.freshness(),
                head,
                settings.live.buffer,
            ),
            store,
            freshness: projections.freshness(),
            metrics: Arc::new(Metrics::default()),
            commands,
            queries,
            catalog,
            allow_insecure_hosts: Arc::new(settings.http_tasks.allow_insecure_hosts.clone()),
            wait_limit: std::time::Duration::from_secs(settings.http.wait_seconds),
            healers,
            mailer: settings
                .notifications
                .smtp
                .clone()
                .map(|smtp| Arc::new(crate::mail::Mailer::new(smtp))),
            password_reset_ttl_seconds: settings.identity.password_reset_ttl_seconds,
            app_rules: bosun_commands::apps::AppRules {
                default_quota: settings.quota.apps_per_user,
            },
            service_calls: workers.service_calls(),
            runnable_rules: settings.runnables.rules(),
            anonymous_token_seconds: settings.runnables.anonymous_token_ttl_seconds,
            role_settings: settings.compat.role_settings(),
            https: tls.is_some(),
            github,
            body_read_timeout_seconds: settings.http.body_read_timeout_seconds,
            live_sockets: crate::routes::live::access::SocketCounts::new(
                settings.live.max_sockets_per_token,
            ),
            sign_in_limit: Arc::new(crate::sign_in::SignInLimit::new(
                &settings.auth.sign_in_limit,
            )),
            anonymous_limit: Arc::new(
                crate::rate_limit::RateLimit::new(
                    settings.runnables.anonymous_per_address.count,
                    std::time::Duration::from_secs(
                        settings.runnables.anonymous_per_address.per_seconds,
                    ),
                )
                .with_total(
                    settings.runnables.anonymous_total.count,
                    std::time::Duration::from_secs(settings.runnables.anonymous_total.per_seconds),
                ),
            ),
        };
        Ok(Application {
            listener,
            router: router(state),
            database,
            projections,
            workers,
            header_read_timeout: std::time::Duration::from_secs(
                settings.http.header_read_timeout_seconds,
            ),
            tls,
        })
    }

    /// Whether it serves HTTPS (`tls`) rather than plain HTTP.
    pub fn https(&self) -> bool {
        self.tls.is_some()
    }

    pub fn address(&self) -> SocketAddr {
        // A bound listener always has a local address.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, lets in-flight requests finish, then stops the
    /// projectors and (if this was its last user) the managed PostgreSQL.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        crate::serve::serve(
            self.listener,
            self.router,
            self.header_read_timeout,
            self.tls,
            shutdown,
        )
        .await;
        tracing::info!("HTTP server stopped; shutting down");
        // On its way out: a managed PostgreSQL that stops from here on stays stopped.
        let mut database = self.database;
        database.stop_supervising();
        // Jobs running here are killed with their workers; their leases run out and the reaper
        // of whichever node runs next finishes them as errors. Units are stopped, recorded so
        // and their leases given up, for another node to take over at once.
        self.workers.stop().await;
        drop(self.projections);
        database.close().await;
        Ok(())
    }
}

/// A handler's panic, as a 500 `internal` and an error line with what it said.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let said = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(not text)");
    tracing::error!(panic = said, "a handler panicked");
    Problem::internal().into_response()
}

fn router(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request<_>| {
            let request_id = request
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-")
                .to_string();
            // A path holding a secret (a password reset token, a SockJS session id) is shown
            // without it.
            let path = routes::v1::password_reset::shown_path(request.uri().path());
            tracing::info_span!("request", request_id, method = %request.method(), path = %path)
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO));
    routes::router()
        // A panic in a handler is a bug; it still answers its client (a 500 in the surface's
        // shape, as `reshape_errors` is outside) and leaves the others be. Innermost, so that
        // `idempotency` sees the 500 and frees the key; again outside, for the middlewares.
        .route_layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        // A route layer: it reads the matched route. Inside `wait_for_min_position`, so a GET's
        // version is read once the client's own write is in.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::versions::versions,
        ))
        // Around `versions`: a replayed answer is the first one, its ETag included.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::idempotency,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            wait_for_min_position,
        ))
        .layer(axum::middleware::from_fn(crate::extract::refuse_nul_in_uri))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::extract::MAX_BODY_BYTES,
        ))
        .layer(axum::Extension(crate::extract::BodyReadTimeout(
            std::time::Duration::from_secs(state.body_read_timeout_seconds),
        )))
        // The console's cookie becomes `Authorization` before anything reads it (the layers
        // inside it and the routes); inside `count_requests` and `reshape_errors` (the last
        // added is the first to run), so its refusals (`cross_origin`, `csrf_failed`) are
        // counted and answered in a compat surface's error shape like any other.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::console::session::cookie_auth,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            count_requests,
        ))
        .layer(axum::middleware::from_fn(routes::compat::reshape_errors))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    /// The layer `router` puts around the routes, around a handler that panics.
    #[tokio::test]
    async fn a_handler_that_panics_answers_500_internal_and_the_next_request_is_served() {
        let app = Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    if true {
                        panic!("a bug");
                    }
                    "unreachable"
                }),
            )
            .route("/fine", axum::routing::get(|| async { "fine" }))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked));
        let boom = app
            .clone()
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(boom.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(boom.into_body(), 10_000)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "internal", "{body}");
        assert!(!body.to_string().contains("a bug"), "{body}");
        let fine = app
            .oneshot(Request::get("/fine").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(fine.status(), axum::http::StatusCode::OK);
    }
}
