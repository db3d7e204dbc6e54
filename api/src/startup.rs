//! Building the application: database, event store, projections, routes, listener. Tests build
//! it on port 0 and talk to it over HTTP like any client.

use crate::config::Settings;
use crate::core::Core;
use crate::database::Database;
use crate::freshness::wait_for_min_position;
use crate::live::Hub;
use crate::metrics::{count_requests, Metrics};
use crate::routes;
use axum::http::{HeaderName, Request};
use axum::routing::get;
use axum::routing::{delete, put};
use axum::Router;
use bosun_commands::Commands;
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
    pub live: Hub,
    pub catalog: Arc<Catalog>,
    /// Hosts `component_url` tasks and webhooks may reach over plain http.
    pub allow_insecure_hosts: Arc<Vec<String>>,
    /// The longest a `wait: true` submission waits for its job.
    pub wait_limit: std::time::Duration,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    database: Database,
    projections: Running,
    workers: Workers,
    header_read_timeout: std::time::Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let database = Database::open(&settings).await?;
        let Core {
            store,
            projections,
            commands,
        } = Core::open(&database.config).await?;
        let head = store.head().await?;
        let setup = crate::data_key::runner_setup(&settings)?;
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
            catalog,
            allow_insecure_hosts: Arc::new(settings.http_tasks.allow_insecure_hosts.clone()),
            wait_limit: std::time::Duration::from_secs(settings.http.wait_seconds),
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {} (listen): {e}", settings.listen))?;
        Ok(Application {
            listener,
            router: router(state),
            database,
            projections,
            workers,
            header_read_timeout: std::time::Duration::from_secs(
                settings.http.header_read_timeout_seconds,
            ),
        })
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
            shutdown,
        )
        .await;
        tracing::info!("HTTP server stopped; shutting down");
        // Jobs running here are killed with their workers; their leases run out and the reaper
        // of whichever node runs next finishes them as errors.
        drop(self.workers);
        drop(self.projections);
        self.database.close().await;
        Ok(())
    }
}

fn router(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .unwrap_or("-")
            .to_string();
        tracing::info_span!("request", request_id, method = %request.method(), path = %request.uri().path())
    })
    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO));
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::metrics::metrics))
        .route("/v1/auth/tokens", axum::routing::post(routes::auth::login))
        .route("/v1/auth/tokens/current", delete(routes::auth::logout))
        .route("/v1/auth/whoami", get(routes::auth::whoami))
        .route(
            "/v1/users",
            get(routes::users::list).post(routes::users::create),
        )
        .route(
            "/v1/users/{username}",
            get(routes::users::get)
                .patch(routes::users::update)
                .delete(routes::users::remove),
        )
        .route(
            "/v1/users/{username}/password",
            put(routes::users::change_password),
        )
        .route(
            "/v1/teams",
            get(routes::teams::list).post(routes::teams::create),
        )
        .route(
            "/v1/teams/{team}",
            get(routes::teams::get).delete(routes::teams::remove),
        )
        .route(
            "/v1/teams/{team}/members/{username}",
            put(routes::teams::add_member).delete(routes::teams::remove_member),
        )
        .route(
            "/v1/tokens",
            get(routes::tokens::list).post(routes::tokens::create),
        )
        .route("/v1/tokens/{token_id}", delete(routes::tokens::revoke))
        .route("/v1/catalog", get(routes::catalog::list))
        .route(
            "/v1/jobs",
            get(routes::jobs::list).post(routes::jobs::submit),
        )
        .route("/v1/jobs/{id}", get(routes::jobs::get))
        .route("/v1/jobs/{id}/output", get(routes::jobs::output))
        .route(
            "/v1/jobs/{id}/cancel",
            axum::routing::post(routes::jobs::cancel),
        )
        .route(
            "/v1/jobs/{id}/kill",
            axum::routing::post(routes::jobs::kill),
        )
        .route(
            "/v1/orchestrations",
            get(routes::orchestrations::list).post(routes::orchestrations::create),
        )
        .route(
            "/v1/orchestrations/{id}",
            get(routes::orchestrations::get)
                .patch(routes::orchestrations::update)
                .delete(routes::orchestrations::delete),
        )
        .route(
            "/v1/orchestrations/{id}/tasks",
            get(routes::orchestrations::tasks).put(routes::orchestrations::replace_tasks),
        )
        .route(
            "/v1/orchestrations/{id}/notifications",
            get(routes::orchestrations::notifications)
                .put(routes::orchestrations::replace_notifications),
        )
        .route(
            "/v1/orchestrations/{id}/token",
            axum::routing::post(routes::orchestrations::refresh_token),
        )
        .route(
            "/v1/orchestrations/{id}/jobs",
            get(routes::orchestrations::jobs).post(routes::orchestrations::run),
        )
        .route("/v1/events", get(routes::events::list))
        .route("/v1/events/live", get(routes::live::live))
        .route("/v1/streams/{stream_id}", get(routes::streams::get))
        .route("/v1/audit", get(routes::audit::list))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            wait_for_min_position,
        ))
        .layer(axum::middleware::from_fn(crate::extract::refuse_nul_in_uri))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            count_requests,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(state)
}
