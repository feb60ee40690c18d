//! The HTTP API: routes, bearer-token auth, and the endpoints that are not about one job
//! (version and status page, connectors, metrics, OpenAPI, health). Job endpoints are in
//! `jobs_api.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json, Router, middleware};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::config::{self, Kind};
use super::error::{ApiError, ErrorBody, FieldError};
use super::guard::guard;
use super::jobs_api;
use super::openapi::{self, Document};
use super::supervisor::Supervisor;
use super::tap_api;

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

/// Every route of the worker, each with its OpenAPI description: the document is made from
/// this list, so a route cannot be missing from it.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(root))
        .routes(routes!(connectors))
        .routes(routes!(validate))
        .routes(routes!(jobs_api::list, jobs_api::create))
        .routes(routes!(jobs_api::get, jobs_api::delete))
        .routes(routes!(jobs_api::get_config, jobs_api::put_config))
        .routes(routes!(jobs_api::status))
        .routes(routes!(tap_api::tap))
        .routes(routes!(jobs_api::pause))
        .routes(routes!(jobs_api::resume))
        .routes(routes!(jobs_api::stop))
        .routes(routes!(jobs_api::restart))
        .routes(routes!(
            jobs_api::get_offsets,
            jobs_api::patch_offsets,
            jobs_api::delete_offsets
        ))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The worker's router, and the OpenAPI document it serves at `/openapi.json`.
pub fn router(app: App) -> Router {
    let (router, doc) = routes().split_for_parts();
    let doc = Arc::new(openapi::finish(doc, app.token.is_some()));
    router
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(Extension(doc))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// `GET /` (JSON).
#[derive(Serialize, ToSchema)]
pub struct Version {
    /// Always `sluice`.
    name: &'static str,
    /// The worker's version.
    version: &'static str,
    /// Jobs hosted.
    jobs: usize,
}

/// Version as JSON, or the status page for a browser.
///
/// A request that accepts `text/html` (a browser) gets the status page, which polls
/// `GET /jobs` every second; any other gets the version as JSON.
#[utoipa::path(get, path = "/", tag = "worker", responses(
    (status = 200, description = "The version, or the status page for `Accept: text/html`", content(
        (Version = "application/json"),
        (String = "text/html"),
    )),
))]
async fn root(State(app): State<App>, headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return Html(super::page::STATUS_PAGE).into_response();
    }
    Json(Version {
        name: "sluice",
        version: env!("CARGO_PKG_VERSION"),
        jobs: app.sup.list().len(),
    })
    .into_response()
}

/// A connector type.
#[derive(Serialize, ToSchema)]
pub struct Connector {
    /// The type name, as in a job's `type = "..."`.
    #[serde(rename = "type")]
    type_name: &'static str,
    /// Source or sink.
    kind: Kind,
    /// What it does.
    doc: &'static str,
    /// JSON Schema of its config.
    #[schema(value_type = Object)]
    schema: Value,
}

/// Connector types.
///
/// Each with its kind (source or sink), a description and the JSON Schema of its config.
#[utoipa::path(get, path = "/connectors", tag = "connectors", responses(
    (status = 200, description = "Every connector type", body = Vec<Connector>),
))]
async fn connectors(State(app): State<App>) -> Json<Vec<Connector>> {
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
            .map(|(kind, type_name, doc, schema)| Connector {
                type_name,
                kind,
                doc,
                schema: schema.into(),
            })
            .collect(),
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct KindQuery {
    /// Source or sink. Required when the type is both (such as `file` or `mongodb`: 400
    /// without it); optional otherwise.
    kind: Option<Kind>,
}

/// The answer to a validation.
#[derive(Serialize, ToSchema)]
pub struct Validation {
    /// The connector type.
    #[serde(rename = "type")]
    type_name: String,
    /// Source or sink.
    kind: Kind,
    /// True when there are no errors.
    valid: bool,
    /// Each problem, with the path of its field.
    errors: Vec<FieldError>,
}

/// Validate one connector config.
///
/// The `type` key may be left out. Sink configs may include the runtime settings every sink
/// has (name, batch, retry, when). An invalid config is a 200 with `valid: false` and its
/// errors; a body that is not a TOML table or JSON object is a 422 (syntax) or 400.
#[utoipa::path(put, path = "/connectors/{type}/validate", tag = "connectors",
    params(
        ("type" = String, Path, description = "A connector type, as listed by `GET /connectors`"),
        KindQuery,
    ),
    // Optional (openapi::OPTIONAL_BODIES): no body is the empty config.
    request_body(description = "The connector's config, as a TOML table or a JSON object; none is the empty config", content(
        (String = "application/toml"),
        (Object = "application/json"),
    )),
    responses(
        (status = 200, description = "Validated: `valid` says whether the config is", body = Validation),
        (status = 400, description = "A malformed request: a body that is not UTF-8 or not an object, a bad `kind`, or a type that is both a source and a sink without `kind`", body = ErrorBody),
        (status = 404, description = "No connector type of that name (and kind)", body = ErrorBody),
        (status = 422, description = "The body is not valid TOML or JSON", body = ErrorBody),
    ),
)]
async fn validate(
    State(app): State<App>,
    Path(type_name): Path<String>,
    q: Result<Query<KindQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Validation>, ApiError> {
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
    Ok(Json(Validation {
        type_name,
        kind,
        valid: errors.is_empty(),
        errors,
    }))
}

/// The request's content type, if any.
pub fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "worker", responses(
    (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
))]
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

/// This document: the OpenAPI 3.1 description of the API.
#[utoipa::path(get, path = "/openapi.json", tag = "worker", responses(
    (status = 200, description = "The OpenAPI document", body = Object),
))]
async fn openapi_json(Extension(doc): Extension<Arc<Document>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.json.clone(),
    )
        .into_response()
}

/// The answer of the health endpoints.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `not ready`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness (no token needed).
#[utoipa::path(get, path = "/healthz", tag = "worker", responses(
    (status = 200, description = "The worker answers", body = Health),
))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness (no token needed).
///
/// 503 until the stored jobs are started, and again during shutdown.
#[utoipa::path(get, path = "/readyz", tag = "worker", responses(
    (status = 200, description = "Ready", body = Health),
    (status = 503, description = "Starting or shutting down", body = Health),
))]
async fn readyz(State(app): State<App>) -> Response {
    if app.ready.load(Ordering::SeqCst) {
        Json(Health { status: "ready" }).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "not ready",
            }),
        )
            .into_response()
    }
}
