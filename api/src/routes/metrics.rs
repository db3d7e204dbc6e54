//! `/metrics` in Prometheus text format. Gauges that mirror the log are read at scrape time.

use crate::startup::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use bosun_eventstore::EventStore;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    if let Ok(head) = state.store.head().await {
        m.events_head.set(head as i64);
        for (name, position) in state.freshness.checkpoints() {
            let labels = crate::metrics::ProjectionLabels { projection: name };
            m.projection_lag
                .get_or_create(&labels)
                .set(head.saturating_sub(position) as i64);
        }
    }
    let appended = state.store.appended();
    let counted = m.events_appended.get();
    m.events_appended.inc_by(appended.saturating_sub(counted));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.encode(),
    )
}
