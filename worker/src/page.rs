//! The browser status page (plain HTML and JavaScript, no build step). The OpenAPI document is
//! generated (`openapi.rs`).

/// `GET /` with `Accept: text/html`. Polls `GET /jobs` every second.
pub const STATUS_PAGE: &str = include_str!("assets/status.html");
