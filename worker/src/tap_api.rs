//! `GET /jobs/{name}/tap`: live samples of a job's records at its stages, as JSON lines (what
//! `sluice tap` prints). The stream follows the job across restarts, and ends after `limit`
//! records or `seconds` seconds, whichever comes first (the client asks again to go on), or
//! at once when the job is paused, stopped or finished.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sluice_core::metrics::JobMetrics;
use sluice_core::tap::{StageFilter, TapEvent};
use tokio::sync::mpsc;
use utoipa::IntoParams;

use super::api::App;
use super::error::{ApiError, ErrorBody};
use super::model::State as JobState;
use super::supervisor::JobHandle;

/// How often a stream looks for the job's next run while it is not running.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// What to sample.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TapQuery {
    /// Stages, comma-separated: `source`, `transform:<name>`, `sink:<name>`, `dead-letter`;
    /// a trailing `*` matches any rest (`sink:*`). Default: every stage.
    #[serde(default)]
    stage: Option<String>,
    /// Fraction of the records to send, in (0, 1]; evenly spread. Default 1.
    #[serde(default)]
    #[param(minimum = 0.0, maximum = 1.0, exclusive_minimum = 0.0)]
    sample: Option<f64>,
    /// End the stream after this many records (1 to 100,000; default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100_000)]
    limit: Option<u64>,
    /// End the stream after this many seconds (1 to 3,600; default 30).
    #[serde(default)]
    #[param(minimum = 1, maximum = 3600)]
    seconds: Option<u64>,
}

/// Live samples of the records passing a job's stages.
///
/// One JSON object per line: `{"stage", "partition", "offset", "timestamp"?, "key"?, "value",
/// "headers"?, "reason"?}` for a record (the value as JSON when it is JSON, else text), or
/// `{"lost": n}` when samples were dropped because the client read too slowly (the job never
/// waits for a tap).
#[utoipa::path(get, path = "/jobs/{name}/tap", tag = "jobs", params(super::jobs_api::JobName, TapQuery), responses(
    (status = 200, description = "Samples, as JSON lines", content_type = "application/x-ndjson", body = String),
    (status = 400, description = "A parameter out of range", body = ErrorBody),
    (status = 404, description = "No such job", body = ErrorBody),
))]
pub async fn tap(
    State(app): State<App>,
    Path(name): Path<String>,
    q: Result<Query<TapQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let sample = q.sample.unwrap_or(1.0);
    if !(sample > 0.0 && sample <= 1.0) {
        return Err(ApiError::bad_request("sample: a fraction in (0, 1]"));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=100_000).contains(&limit) {
        return Err(ApiError::bad_request("limit: 1 to 100000"));
    }
    let seconds = q.seconds.unwrap_or(30);
    if !(1..=3600).contains(&seconds) {
        return Err(ApiError::bad_request("seconds: 1 to 3600"));
    }
    let job = app
        .sup
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no job named {name:?}")))?;
    let filter = StageFilter::parse(q.stage.as_deref().unwrap_or(""));
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        let _ = tokio::time::timeout_at(deadline, forward(job, filter, sample, limit, tx)).await;
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), rx))
    }));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// The running pipeline's metrics (and taps), if the job is running.
fn live(job: &JobHandle) -> Option<Arc<JobMetrics>> {
    job.stats.lock().live.clone()
}

/// Send samples as JSON lines until `limit` records went out or the client left.
async fn forward(
    job: Arc<JobHandle>,
    filter: StageFilter,
    sample: f64,
    limit: u64,
    tx: mpsc::Sender<Bytes>,
) {
    let mut sent = 0;
    loop {
        let Some(metrics) = live(&job) else {
            // A job that will not run again without an operator's word has nothing to show.
            let idle = matches!(
                job.observed().state,
                JobState::Paused | JobState::Stopped | JobState::Finished
            );
            if idle || job.control().deleted || tx.is_closed() {
                return;
            }
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        };
        let mut rx = metrics.taps.subscribe(filter.clone(), sample);
        // Not holding the run's metrics: they go when the run ends, and with them the sending
        // side of `rx`, which ends this loop.
        drop(metrics);
        loop {
            let event = tokio::select! {
                event = rx.recv() => event,
                _ = tx.closed() => return,
            };
            let Some(event) = event else { break };
            let mut line = match &event {
                TapEvent::Record(r) => serde_json::to_vec(r),
                TapEvent::Lost(n) => serde_json::to_vec(&serde_json::json!({ "lost": n })),
            }
            .unwrap_or_default();
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
            if matches!(event, TapEvent::Record(_)) {
                sent += 1;
                if sent >= limit {
                    return;
                }
            }
        }
        // The run ended (its metrics, and so the sending side, are gone): follow the next
        // run, if the job restarts.
    }
}
