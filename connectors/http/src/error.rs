//! What an answer (or its absence) means: done, worth another try (and after how long), a
//! refusal of these records, or a refusal of the job's configuration.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use sluice_core::ConnectorError;
use sluice_core::error::with_causes;

/// How much of a refusal's response body goes into the dead-letter reason.
pub const BODY_SHOWN: usize = 512;

/// The meaning of one request's outcome.
#[derive(Debug)]
pub enum Answer {
    /// 2xx: the records are delivered.
    Done,
    /// 408, 429, 5xx or no answer: try again, after `wait` when the server said
    /// (`Retry-After`).
    Again {
        /// The server's `Retry-After`, when it sent one that parses.
        wait: Option<Duration>,
        /// What happened, for the log and the final error.
        reason: String,
    },
    /// Another status: these records are refused for good (dead letter), with the status and
    /// the start of the response body.
    Refused(String),
    /// 401, 403, 407: the job's credentials are wrong. Every record would be refused alike, so
    /// the write fails with a configuration error instead of dead-lettering the stream.
    Denied(ConnectorError),
}

/// Classify an answer with `status`, `headers` and `body`; `target` is what messages call the
/// endpoint (never its path).
pub fn classify(target: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Answer {
    if status.is_success() {
        return Answer::Done;
    }
    let shown = format!("HTTP {status}{}", body_text(body));
    match status.as_u16() {
        408 | 429 | 500..=599 => Answer::Again {
            wait: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, SystemTime::now())),
            reason: format!("POST to {target}: {shown}"),
        },
        401 | 403 | 407 => Answer::Denied(
            ConnectorError::config(format!(
                "POST to {target}: {shown} (check `auth` and `headers`)"
            ))
            .at("auth"),
        ),
        _ => Answer::Refused(shown),
    }
}

/// A request that got no answer (refused, reset, timed out, TLS failed): worth another try. The
/// URL is taken out of the error first: its path may hold a secret.
pub fn unanswered(target: &str, err: reqwest::Error) -> Answer {
    let err = err.without_url();
    let what = if err.is_timeout() {
        "no answer in time"
    } else {
        "no answer"
    };
    Answer::Again {
        wait: None,
        reason: format!("POST to {target}: {what}: {}", with_causes(&err)),
    }
}

/// The error a write fails with once tries are used up and nothing of it was delivered.
pub fn gave_up(reason: String, attempts: u32) -> ConnectorError {
    ConnectorError::transient(format!("{reason} (after {attempts} tries)"))
}

/// `Retry-After` as a wait from `now`: delay-seconds, or an HTTP date (a date in the past
/// means now).
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `: <the start of the body>` (one line), or nothing for an empty body.
fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let mut short: String = text
        .chars()
        .take(BODY_SHOWN)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > BODY_SHOWN {
        short.push('…');
    }
    format!(": {short}")
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = httpdate::parse_http_date("Wed, 02 Dec 2026 11:00:00 GMT").unwrap();
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Wed, 02 Dec 2026 11:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Wed, 02 Dec 2026 10:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn statuses() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        match classify(
            "http://x:80",
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            b"slow down",
        ) {
            Answer::Again { wait, reason } => {
                assert_eq!(wait, Some(Duration::from_secs(3)));
                assert!(reason.contains("429") && reason.contains("slow down"));
            }
            other => panic!("{other:?}"),
        }
        let long = "x".repeat(2000);
        match classify(
            "http://x:80",
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            long.as_bytes(),
        ) {
            Answer::Refused(r) => assert!(r.starts_with("HTTP 400") && r.len() < 600, "{r}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify("u", StatusCode::UNAUTHORIZED, &HeaderMap::new(), b""),
            Answer::Denied(_)
        ));
        assert!(matches!(
            classify("u", StatusCode::NO_CONTENT, &HeaderMap::new(), b""),
            Answer::Done
        ));
    }
}
