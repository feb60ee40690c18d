//! Static documents the worker serves: the browser status page (plain HTML and JavaScript, no
//! build step) and the OpenAPI description of the API.

/// `GET /` with `Accept: text/html`. Polls `GET /jobs` every second.
pub const STATUS_PAGE: &str = include_str!("assets/status.html");

/// `GET /openapi.json`.
pub const OPENAPI: &str = include_str!("assets/openapi.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_is_json_and_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/",
            "/connectors",
            "/connectors/{type}/validate",
            "/jobs",
            "/jobs/{name}",
            "/jobs/{name}/config",
            "/jobs/{name}/status",
            "/jobs/{name}/pause",
            "/jobs/{name}/resume",
            "/jobs/{name}/restart",
            "/jobs/{name}/stop",
            "/jobs/{name}/offsets",
            "/metrics",
            "/healthz",
            "/readyz",
            "/openapi.json",
        ] {
            assert!(paths.contains_key(path), "{path} missing from openapi.json");
        }
    }
}
