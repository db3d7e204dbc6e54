//! Prometheus metrics: HTTP requests by route and status, events appended, projection lag.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabels {
    pub projection: String,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub events_appended: Counter<u64, AtomicU64>,
    pub events_head: Gauge,
    pub projection_lag: Family<ProjectionLabels, Gauge>,
    pub live_subscribers: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("bosun");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            http_requests.clone(),
        );
        let events_appended = Counter::<u64, AtomicU64>::default();
        registry.register(
            "events_appended",
            "Events this process appended to the log",
            events_appended.clone(),
        );
        let events_head = Gauge::default();
        registry.register(
            "events_head_position",
            "Position of the last event in the log",
            events_head.clone(),
        );
        let projection_lag = Family::<ProjectionLabels, Gauge>::default();
        registry.register(
            "projection_lag_events",
            "Events in the log a projection has not applied yet",
            projection_lag.clone(),
        );
        let live_subscribers = Gauge::default();
        registry.register(
            "live_subscribers",
            "WebSocket subscribers of the live event feed",
            live_subscribers.clone(),
        );
        Metrics {
            registry,
            live_subscribers,
            http_requests,
            events_appended,
            events_head,
            projection_lag,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Counts every answered request by method, matched route (not the raw path, so ids do not
/// explode the label set) and status.
pub async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    metrics
        .http_requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
