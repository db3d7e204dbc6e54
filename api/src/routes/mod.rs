//! HTTP routes, one module per resource.

pub mod health;
pub mod metrics;

use crate::problem::Problem;

/// Any path no route matches.
pub async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!("no resource at {}", uri.path()))
}
