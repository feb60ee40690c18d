//! What every request must show before a handler sees it: the bearer token (when the worker has
//! one), a body typed as TOML or JSON, and, for a request that changes something, that it does
//! not come from another web site. A worker on loopback answers only to loopback host names, so
//! a page cannot reach it through a DNS name rebound to 127.0.0.1.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::App;
use super::error::{ApiError, ConnectError};

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The checks, in order: host, token, origin, body type.
pub async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    match check(&app, &request) {
        Ok(()) => next.run(request).await,
        Err(e) if is_connect(request.uri().path()) => ConnectError(e).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The routes of Kafka Connect's API, whose errors are in Connect's shape.
pub fn is_connect(path: &str) -> bool {
    ["/connectors", "/connector-plugins"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// Whether a request to `path` needs the token (when the worker has one): all but the probes.
pub fn needs_token(path: &str) -> bool {
    path != "/healthz" && path != "/readyz"
}

/// Whether a request of this method may change something: it is checked for its origin and the
/// type of its body.
pub fn changes(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

fn check(app: &App, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    let probe = !needs_token(request.uri().path());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if app.loopback_only && !probe && !host.is_some_and(is_loopback_host) {
        return Err(ApiError::forbidden(
            "this worker listens on loopback and answers only to localhost, 127.0.0.1 or [::1]",
        ));
    }
    if let Some(token) = &app.token
        && !probe
    {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            return Err(ApiError::unauthorized());
        }
    }
    if changes(request.method().as_str()) {
        cross_site(headers, host)?;
        body_type(headers)?;
    }
    Ok(())
}

/// A browser names the page's origin in `Origin` (and `Sec-Fetch-Site`); a request whose origin
/// is not this worker is refused, whatever it carries.
fn cross_site(headers: &HeaderMap, host: Option<&str>) -> Result<(), ApiError> {
    let refused = || ApiError::forbidden("cross-site requests may not change this worker");
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refused());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let origin_host = origin
            .split_once("://")
            .map(|(_, h)| h.trim_end_matches('/'));
        if origin_host.is_none() || origin_host != host {
            return Err(refused());
        }
    }
    Ok(())
}

/// A body must say it is TOML or JSON: `text/plain` (what a cross-site form may send without
/// asking) is refused, and so is a body with no type.
fn body_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|n| n.trim() != "0");
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(media_type);
    match media.as_deref() {
        Some("application/toml" | "application/json") => Ok(()),
        None if !has_body => Ok(()),
        _ => Err(ApiError::unsupported_media_type()),
    }
}

/// The media type of a `Content-Type` value, without parameters, lowercase.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for ok in [
            "localhost",
            "localhost:8083",
            "127.0.0.1:1",
            "[::1]:8083",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for no in [
            "evil.example:8083",
            "10.0.0.1",
            "localhost.evil.example",
            "",
        ] {
            assert!(!is_loopback_host(no), "{no}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bodies_must_be_toml_or_json() {
        let ok = headers(&[
            ("content-type", "application/toml; charset=utf-8"),
            ("content-length", "5"),
        ]);
        assert!(body_type(&ok).is_ok());
        let plain = headers(&[("content-type", "text/plain"), ("content-length", "5")]);
        assert!(body_type(&plain).is_err());
        let untyped = headers(&[("content-length", "5")]);
        assert!(body_type(&untyped).is_err());
        assert!(body_type(&headers(&[("content-length", "0")])).is_ok());
    }

    #[test]
    fn another_origin_may_not_change_anything() {
        let host = Some("127.0.0.1:8083");
        assert!(cross_site(&headers(&[("origin", "http://127.0.0.1:8083")]), host).is_ok());
        assert!(cross_site(&headers(&[("origin", "https://evil.example")]), host).is_err());
        assert!(cross_site(&headers(&[("origin", "null")]), host).is_err());
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")]), host).is_err());
        assert!(cross_site(&HeaderMap::new(), host).is_ok());
    }
}
