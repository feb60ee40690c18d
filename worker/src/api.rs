//! The HTTP API: routes, bearer-token auth, and the endpoints that are not about one job
//! (version and status page, connectors, metrics, OpenAPI, health). Job endpoints are in
//! `jobs_api.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::config::{self, Kind};
use super::error::{ApiError, FieldError};
use super::guard::guard;
use super::jobs_api;
use super::supervisor::Supervisor;

/// What every handler sees.
#[derive(Clone)]
pub struct App {
    /// The hosted jobs.
    pub sup: Arc<Supervisor>,
    /// The bearer token, when `--token-file` is set.
    pub token: Option<Arc<str>>,
    /// True once stored jobs are started, false again at shutdown.
    pub ready: Arc<AtomicBool>,
    /// The worker listens on a loopback address: it answers only to loopback host names.
    pub loopback_only: bool,
}

/// Every route of the worker.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/connectors", get(connectors))
        .route("/connectors/{type}/validate", put(validate))
        .route("/jobs", get(jobs_api::list).post(jobs_api::create))
        .route("/jobs/{name}", get(jobs_api::get).delete(jobs_api::delete))
        .route(
            "/jobs/{name}/config",
            get(jobs_api::get_config).put(jobs_api::put_config),
        )
        .route("/jobs/{name}/status", get(jobs_api::status))
        .route("/jobs/{name}/pause", put(jobs_api::pause))
        .route("/jobs/{name}/resume", put(jobs_api::resume))
        .route("/jobs/{name}/stop", put(jobs_api::stop))
        .route("/jobs/{name}/restart", post(jobs_api::restart))
        .route(
            "/jobs/{name}/offsets",
            get(jobs_api::get_offsets)
                .patch(jobs_api::patch_offsets)
                .delete(jobs_api::delete_offsets),
        )
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

async fn root(State(app): State<App>, headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return Html(super::page::STATUS_PAGE).into_response();
    }
    Json(json!({
        "name": "sluice",
        "version": env!("CARGO_PKG_VERSION"),
        "jobs": app.sup.list().len(),
    }))
    .into_response()
}

async fn connectors(State(app): State<App>) -> Json<Vec<Value>> {
    let registry = app.sup.ctx.toolkit.registry();
    let sources = registry
        .sources()
        .map(|e| (Kind::Source, e.name, e.doc, (e.schema)()));
    let sinks = registry
        .sinks()
        .map(|e| (Kind::Sink, e.name, e.doc, (e.schema)()));
    Json(
        sources
            .chain(sinks)
            .map(|(kind, name, doc, schema)| {
                json!({ "type": name, "kind": kind, "doc": doc, "schema": schema })
            })
            .collect(),
    )
}

#[derive(Deserialize)]
struct KindQuery {
    kind: Option<Kind>,
}

async fn validate(
    State(app): State<App>,
    Path(type_name): Path<String>,
    q: Result<Query<KindQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let registry = app.sup.ctx.toolkit.registry();
    let kind = match q.kind {
        Some(kind) => kind,
        None => match (
            registry.source(&type_name).is_some(),
            registry.sink(&type_name).is_some(),
        ) {
            (true, true) => {
                return Err(ApiError::bad_request(format!(
                    "{type_name:?} is both a source and a sink type: add ?kind=source or ?kind=sink"
                )));
            }
            (true, false) => Kind::Source,
            (false, true) => Kind::Sink,
            (false, false) => {
                return Err(ApiError::not_found(format!(
                    "no connector type {type_name:?}"
                )));
            }
        },
    };
    let text = config::to_toml_text(content_type(&headers), &body)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        ApiError::invalid_config(vec![FieldError {
            path: "(syntax)".into(),
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            message: e.message().trim().to_string(),
        }])
    })?;
    // Confined like a job submitted through the API: the config comes from the same callers.
    let scratch = app
        .sup
        .ctx
        .api_base_dir(&app.sup.ctx.state_dir.join("validate"));
    let errors =
        config::validate_connector(&app.sup.ctx.api_toolkit, kind, &type_name, table, &scratch)?;
    Ok(Json(json!({
        "type": type_name,
        "kind": kind,
        "valid": errors.is_empty(),
        "errors": errors,
    })))
}

/// The request's content type, if any.
pub fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        super::prometheus::render(&app.sup),
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::page::OPENAPI,
    )
        .into_response()
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(app): State<App>) -> Response {
    if app.ready.load(Ordering::SeqCst) {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready" })),
        )
            .into_response()
    }
}
