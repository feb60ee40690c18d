//! The HTTP API: routes, bearer-token auth, and the endpoints that are not about one job
//! (version and status page, metrics, OpenAPI, health). Job endpoints are in `jobs_api.rs`;
//! Kafka Connect's API on the same jobs in `connect_api.rs` and `connect_plugins.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json, Router, middleware};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ConnectError};
use super::guard::{self, guard};
use super::openapi::{self, Document};
use super::supervisor::Supervisor;
use super::{connect_api, connect_plugins, jobs_api, tap_api};

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
    /// The worker's address, as Kafka Connect's `worker_id`.
    pub worker_id: Arc<str>,
}

/// Every route of the worker, each with its OpenAPI description: the document is made from
/// this list, so a route cannot be missing from it.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(root))
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
        .routes(routes!(connect_plugins::connector_plugins))
        .routes(routes!(connect_plugins::validate_plugin))
        .routes(routes!(
            connect_api::connectors,
            connect_api::connector_create
        ))
        .routes(routes!(
            connect_api::connector_get,
            connect_api::connector_delete
        ))
        .routes(routes!(
            connect_api::connector_config,
            connect_api::connector_put_config
        ))
        .routes(routes!(connect_api::connector_status))
        .routes(routes!(connect_api::connector_pause))
        .routes(routes!(connect_api::connector_resume))
        .routes(routes!(connect_api::connector_stop))
        .routes(routes!(connect_api::connector_restart))
        .routes(routes!(connect_api::connector_tasks))
        .routes(routes!(connect_api::task_status))
        .routes(routes!(connect_api::task_restart))
        .routes(routes!(
            connect_api::connector_offsets,
            connect_api::connector_alter_offsets,
            connect_api::connector_reset_offsets
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
    let answer = |uri: Uri, e: ApiError| {
        if guard::is_connect(uri.path()) {
            ConnectError(e).into_response()
        } else {
            e.into_response()
        }
    };
    router
        .fallback(
            move |uri: Uri| async move { answer(uri, ApiError::not_found("no such endpoint")) },
        )
        .method_not_allowed_fallback(move |uri: Uri| async move {
            answer(uri, ApiError::method_not_allowed())
        })
        .layer(Extension(doc))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// `GET /` (JSON): the worker's, and Kafka Connect's (`version`, `commit`,
/// `kafka_cluster_id`).
#[derive(Serialize, ToSchema)]
pub struct Version {
    /// Always `sluice`.
    name: &'static str,
    /// The worker's version.
    version: &'static str,
    /// Jobs hosted.
    jobs: usize,
    /// The source commit of this build, when the build knew it (`SLUICE_COMMIT`), else
    /// `unknown`.
    commit: &'static str,
    /// Always null: the worker belongs to no Kafka cluster.
    kafka_cluster_id: Option<String>,
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
        commit: option_env!("SLUICE_COMMIT").unwrap_or("unknown"),
        kafka_cluster_id: None,
    })
    .into_response()
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
