//! What a failed request means: whose fault, and whether a retry can help. Per-item failures
//! inside a `_bulk` response are classified in [`crate::bulk::classify_item`].

use opensearch::http::StatusCode;
use sluice_core::ConnectorError;
use sluice_core::error::with_causes;

/// A request that got no HTTP answer (refused, reset, timed out, TLS handshake failed) is a
/// transient external fault; the message keeps the real cause ("Connection refused").
pub fn request_error(what: &str, err: &opensearch::Error) -> ConnectorError {
    let message = format!("{what}: {}", with_causes(err));
    let error = if err.is_json() {
        ConnectorError::external(message)
    } else {
        ConnectorError::transient(message)
    };
    error.caused_by(err)
}

/// A whole request the server answered with an error status.
pub fn status_error(what: &str, status: StatusCode, body: &[u8]) -> ConnectorError {
    let detail = error_text(body);
    let message = format!("{what}: HTTP {status}{detail}");
    match status.as_u16() {
        // Back-pressure, a node or shard not ready, a proxy that lost the node.
        408 | 429 | 500..=599 => ConnectorError::transient(message),
        401 | 403 => ConnectorError::config(format!(
            "{message} (check `auth` and the user's permissions)"
        ))
        .at("auth"),
        413 => ConnectorError::external(format!(
            "{message}: the _bulk request is larger than the cluster takes (http.max_content_length); lower the sink's batch.max_bytes"
        )),
        _ => ConnectorError::external(message),
    }
}

/// `: type: reason` from an error response body, or its start.
fn error_text(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let e = &v["error"];
        if let (Some(ty), reason) = (e["type"].as_str(), e["reason"].as_str()) {
            return match reason {
                Some(r) => format!(": {ty}: {r}"),
                None => format!(": {ty}"),
            };
        }
        if let Some(s) = e.as_str() {
            return format!(": {s}");
        }
    }
    let text = String::from_utf8_lossy(body);
    let short: String = text.chars().take(200).collect();
    format!(": {}", short.trim())
}

#[cfg(test)]
mod tests {
    use sluice_core::ErrorKind;

    use super::*;

    #[test]
    fn statuses_of_whole_requests() {
        let busy = status_error("POST /_bulk", StatusCode::TOO_MANY_REQUESTS, b"");
        assert!(busy.retryable && busy.kind == ErrorKind::External);
        let down = status_error("POST /_bulk", StatusCode::SERVICE_UNAVAILABLE, b"{}");
        assert!(down.retryable);
        let denied = status_error(
            "GET /",
            StatusCode::UNAUTHORIZED,
            br#"{"error":{"type":"security_exception","reason":"missing authentication"}}"#,
        );
        assert!(!denied.retryable && denied.kind == ErrorKind::Config);
        assert!(
            denied
                .message
                .contains("security_exception: missing authentication")
        );
        let big = status_error("POST /_bulk", StatusCode::PAYLOAD_TOO_LARGE, b"too big");
        assert!(!big.retryable && big.message.contains("batch.max_bytes"));
    }
}
