//! The one rule for calling out over HTTP (tasks, webhooks, service endpoints): https, or plain
//! http only to a host in `http_tasks.allow_insecure_hosts`.

/// Whether a URL with `scheme` and `host` may be called: https to a host, or http to one of
/// `allow_insecure_hosts`.
pub(crate) fn is_allowed(scheme: &str, host: &str, allow_insecure_hosts: &[String]) -> bool {
    match scheme {
        "https" => !host.is_empty(),
        "http" => allow_insecure_hosts.iter().any(|h| h == host),
        _ => false,
    }
}

/// Why plain http to `shown` (a `name`: "endpoint", "webhook_url"…) is refused.
pub(crate) fn must_use_https(name: &str, shown: &str) -> String {
    format!(
        "{name} {shown:?} must use https (plain http only to hosts in \
         http_tasks.allow_insecure_hosts)"
    )
}
