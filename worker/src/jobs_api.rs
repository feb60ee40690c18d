//! Job endpoints: create, read, update, delete, state changes, status and offsets.
//!
//! State changes wait (up to [`WAIT`]) until the runner has acted, so a `200` after `stop`
//! means the pipeline is drained and committed; a `202` means it is still on its way.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::api::{App, content_type};
use super::config;
use super::error::{ApiError, ErrorBody, FieldError};
use super::model::{Desired, JobDef, State as JobState};
use super::offsets::{self, PartitionOffset};
use super::supervisor::{CreateError, JobHandle};
use super::view::{self, Detail, Offsets, OffsetsChanged, Status, Summary};
use sluice_core::job::check_job_name;
use sluice_core::record::Checkpoint;

/// The job name in a URL; its pattern and length are set by [`super::openapi`] from
/// [`check_job_name`]'s rules.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct JobName {
    /// The job name.
    #[param(example = "example")]
    name: String,
}

/// The example job of the document (`example = ...` takes an expression).
const EXAMPLE_TOML: &str = "api_version = 1\nname = \"example\"\n\n[source]\ntype = \"datagen\"\ncount = 10\n\n[[sinks]]\ntype = \"stdout\"\n";

/// Longest a request waits for a job to reach the state it asked for.
const WAIT: Duration = Duration::from_secs(30);
/// States a running job settles in.
const STARTED: [JobState; 3] = [JobState::Running, JobState::Failed, JobState::Finished];

pub(super) fn find(app: &App, name: &str) -> Result<Arc<JobHandle>, ApiError> {
    app.sup.get(name).ok_or_else(|| gone(name))
}

fn gone(name: &str) -> ApiError {
    ApiError::not_found(format!("no job named {name:?}"))
}

/// The job's operation lock; 404 when the job was deleted while this request waited for it.
async fn lock<'j>(job: &'j JobHandle) -> Result<tokio::sync::MutexGuard<'j, ()>, ApiError> {
    job.lock_live().await.ok_or_else(|| gone(&job.name))
}

/// A submitted definition that passed the checks, and what could not be checked.
pub(super) struct Checked {
    pub(super) def: JobDef,
    /// Why the sinks' services were not asked (unreachable): the job is accepted unchecked.
    not_checked: Option<String>,
}

impl Checked {
    /// The job's detail, saying what was not checked.
    fn detail(&self, job: &JobHandle) -> Detail {
        let mut detail = view::detail(job);
        detail.not_checked.clone_from(&self.not_checked);
        detail
    }
}

/// Parse and validate a submitted definition the way `sluice validate` does (assembled, then
/// [`LoadedJob::check`](sluice_core::LoadedJob::check)); `expected` is the name the URL gives.
async fn parse_def(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    expected: Option<&str>,
) -> Result<Checked, ApiError> {
    let text = config::to_toml_text(content_type(headers), body)?;
    check_def(app, text, expected).await
}

/// Validate a definition's TOML text as [`parse_def`] does: every API that submits a job
/// (the native one and Kafka Connect's) goes through here.
pub(super) async fn check_def(
    app: &App,
    text: String,
    expected: Option<&str>,
) -> Result<Checked, ApiError> {
    let name = config::job_name(&text);
    if let (Some(expected), Some(name)) = (expected, name.as_deref())
        && expected != name
    {
        return Err(ApiError::invalid_config(vec![FieldError {
            path: "name".into(),
            line: None,
            message: format!("the config names job {name:?} but the URL says {expected:?}"),
        }]));
    }
    // Checked before the name is used for a scratch directory (a long or `..` name).
    if let Some(Err(why)) = name.as_deref().map(check_job_name) {
        return Err(ApiError::invalid_config(vec![FieldError {
            path: "name".into(),
            line: None,
            message: why,
        }]));
    }
    let ctx = &app.sup.ctx;
    let scratch = JobDef {
        name: name.clone().unwrap_or_else(|| "_".into()),
        config: text,
        source_file: None,
    };
    let mut pipeline = ctx.assemble(&scratch).await?;
    let unchecked = pipeline.job_mut().check().await?;
    let not_checked = (!unchecked.not_asked.is_empty()).then(|| unchecked.not_asked.join("; "));
    Ok(Checked {
        def: JobDef {
            name: pipeline.job().name.clone(),
            ..scratch
        },
        not_checked,
    })
}

/// A state-change answer: 200 with the status when reached, 202 when still on the way.
async fn settled(app: &App, job: &JobHandle, reached: bool) -> Result<Response, ApiError> {
    let status = view::status(&app.sup.ctx, job).await?;
    let code = if reached {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((code, Json(status)).into_response())
}

pub(super) fn file_managed(job: &JobHandle) -> Option<ApiError> {
    job.control().def.source_file.as_ref().map(|file| {
        ApiError::conflict(format!(
            "job {:?} is defined by {}: change or remove that file instead",
            job.name,
            file.display()
        ))
    })
}

/// The jobs.
///
/// Name, state, desired state, origin (api or jobs-dir), counters and last error of each.
#[utoipa::path(get, path = "/jobs", tag = "jobs", responses(
    (status = 200, description = "Every job", body = Vec<Summary>),
))]
pub async fn list(State(app): State<App>) -> Json<Vec<Summary>> {
    Json(app.sup.list().iter().map(|j| view::summary(j)).collect())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// Create the job `paused` or `stopped` instead of starting it.
    #[param(value_type = Option<Desired>)]
    initial_state: Option<String>,
}

/// Create a job, and start it.
///
/// The job is assembled exactly as `sluice run` does (plugins compiled and initialised), then
/// checked as `sluice validate` checks it. A job whose services cannot be asked (unreachable)
/// is accepted with `not_checked` saying why. The answer comes once the job has reached its
/// initial state (up to 30 s).
#[utoipa::path(post, path = "/jobs", tag = "jobs",
    params(CreateQuery),
    request_body(description = "A job definition: the TOML of a job file for `sluice run`, or the same model as JSON (no nulls)", content(
        (String = "application/toml", example = json!(EXAMPLE_TOML)),
        (Object = "application/json", example = json!({
            "api_version": 1, "name": "example",
            "source": {"type": "datagen", "count": 10},
            "sinks": [{"type": "stdout"}],
        })),
    )),
    responses(
        (status = 201, description = "Created; `Location` names the job", body = Detail,
            headers(("Location" = String, description = "`/jobs/{name}`"))),
        (status = 400, description = "A malformed request: a body that is not UTF-8, JSON that is not an object, or a bad `initial_state`", body = ErrorBody),
        (status = 409, description = "A job of that name exists", body = ErrorBody),
        (status = 422, description = "The job config is invalid: `errors` lists each problem (path, line, message)", body = ErrorBody),
        (status = 503, description = "The worker is shutting down", body = ErrorBody),
    ),
)]
pub async fn create(
    State(app): State<App>,
    q: Result<Query<CreateQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let desired = match q.initial_state.as_deref() {
        None => Desired::Running,
        Some(s) => s.parse().map_err(|_| {
            ApiError::bad_request("initial_state is one of running, paused, stopped")
        })?,
    };
    let checked = parse_def(&app, &headers, &body, None).await?;
    create_checked(&app, checked, desired).await
}

/// Create a job from a checked definition: 201 with its detail once it reached `desired`.
async fn create_checked(
    app: &App,
    checked: Checked,
    desired: Desired,
) -> Result<Response, ApiError> {
    let job = create_job(app, &checked, desired).await?;
    let name = &job.name;
    let mut response = Json(checked.detail(&job)).into_response();
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = format!("/jobs/{name}").parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Create a job from a checked definition, and wait (up to [`WAIT`]) until it reached `desired`.
pub(super) async fn create_job(
    app: &App,
    checked: &Checked,
    desired: Desired,
) -> Result<Arc<JobHandle>, ApiError> {
    let name = checked.def.name.clone();
    let job = match app.sup.create(checked.def.clone(), desired).await {
        Ok(job) => job,
        Err(CreateError::Exists) => {
            return Err(ApiError::conflict(format!(
                "a job named {name:?} exists: PUT /jobs/{name}/config to change it"
            )));
        }
        Err(CreateError::ShuttingDown) => {
            return Err(ApiError::unavailable("the worker is shutting down"));
        }
        Err(CreateError::Store(e)) => return Err(e.into()),
    };
    let states: &[JobState] = match desired {
        Desired::Running => &STARTED,
        Desired::Paused => &[JobState::Paused],
        Desired::Stopped => &[JobState::Stopped],
    };
    let seq = job.control().seq;
    app.sup.wait(&job, seq, states, WAIT).await;
    Ok(job)
}

/// One job: its summary and its definition.
#[utoipa::path(get, path = "/jobs/{name}", tag = "jobs", params(JobName), responses(
    (status = 200, description = "The job", body = Detail),
    (status = 404, description = "No such job", body = ErrorBody),
))]
pub async fn get(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<Detail>, ApiError> {
    let job = find(&app, &name)?;
    Ok(Json(view::detail(&job)))
}

/// A job's definition, as TOML.
#[utoipa::path(get, path = "/jobs/{name}/config", tag = "jobs", params(JobName), responses(
    (status = 200, description = "The job file", body = String, content_type = "application/toml"),
    (status = 404, description = "No such job", body = ErrorBody),
))]
pub async fn get_config(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let job = find(&app, &name)?;
    let text = job.control().def.config.clone();
    Ok(([(header::CONTENT_TYPE, "application/toml")], text).into_response())
}

/// Replace a job's definition, or create the job.
///
/// A running job is drained and restarted with the new definition. The definition's `name`,
/// when it has one, must be the URL's. Checked as `POST /jobs` checks it.
#[utoipa::path(put, path = "/jobs/{name}/config", tag = "jobs",
    params(JobName),
    request_body(description = "A job definition: the TOML of a job file for `sluice run`, or the same model as JSON (no nulls)", content(
        (String = "application/toml", example = json!(EXAMPLE_TOML)),
        (Object = "application/json", example = json!({
            "api_version": 1, "name": "example",
            "source": {"type": "datagen", "count": 10},
            "sinks": [{"type": "stdout"}],
        })),
    )),
    responses(
        (status = 200, description = "Replaced (or unchanged)", body = Detail),
        (status = 201, description = "Created", body = Detail,
            headers(("Location" = String, description = "`/jobs/{name}`"))),
        (status = 400, description = "A malformed request: a body that is not UTF-8 or JSON that is not an object, or a name no job can have", body = ErrorBody),
        (status = 409, description = "The job is defined by a file in the jobs directory", body = ErrorBody),
        (status = 422, description = "The job config is invalid: `errors` lists each problem (path, line, message)", body = ErrorBody),
        (status = 503, description = "The worker is shutting down", body = ErrorBody),
    ),
)]
pub async fn put_config(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let text = || config::to_toml_text(content_type(&headers), &body);
    let put = put_def(&app, &name, text).await?;
    if put.created {
        let mut response = Json(put.checked.detail(&put.job)).into_response();
        *response.status_mut() = StatusCode::CREATED;
        if let Ok(location) = format!("/jobs/{name}").parse() {
            response.headers_mut().insert(header::LOCATION, location);
        }
        return Ok(response);
    }
    Ok(Json(put.checked.detail(&put.job)).into_response())
}

/// What a `PUT` of a definition did.
pub(super) struct Put {
    /// No job of that name existed: it was created.
    pub(super) created: bool,
    /// The job.
    pub(super) job: Arc<JobHandle>,
    /// The definition, checked.
    pub(super) checked: Checked,
}

/// Replace a job's definition, or create the job (running): the rules of
/// `PUT /jobs/{name}/config`, for every API. `text` reads the body, after the name and the
/// job's origin are checked.
pub(super) async fn put_def(
    app: &App,
    name: &str,
    text: impl FnOnce() -> Result<String, ApiError>,
) -> Result<Put, ApiError> {
    // The URL names the job: a name no job can have is a malformed request, before the body.
    check_job_name(name).map_err(ApiError::bad_request)?;
    // A jobs-dir job is changed through its file, whatever the body says.
    if let Some(e) = app.sup.get(name).as_deref().and_then(file_managed) {
        return Err(e);
    }
    let checked = check_def(app, text()?, Some(name)).await?;
    let created = |checked: Checked| async move {
        let job = create_job(app, &checked, Desired::Running).await?;
        Ok(Put {
            created: true,
            job,
            checked,
        })
    };
    let Some(job) = app.sup.get(name) else {
        return created(checked).await;
    };
    if let Some(e) = file_managed(&job) {
        return Err(e);
    }
    let Some(_op) = job.lock_live().await else {
        // A DELETE got there first: this PUT creates the job afresh.
        return created(checked).await;
    };
    if job.control().def.config != checked.def.config {
        let seq = app.sup.update_config(&job, checked.def.clone()).await?;
        if job.control().desired == Desired::Running {
            app.sup.wait(&job, seq, &STARTED, WAIT).await;
        }
    }
    drop(_op);
    Ok(Put {
        created: false,
        job,
        checked,
    })
}

/// Delete a job.
///
/// The job is drained and committed, then forgotten together with its positions (a job
/// created again under that name starts from the beginning).
#[utoipa::path(delete, path = "/jobs/{name}", tag = "jobs", params(JobName), responses(
    (status = 204, description = "Deleted"),
    (status = 404, description = "No such job", body = ErrorBody),
    (status = 409, description = "The job is defined by a file in the jobs directory", body = ErrorBody),
))]
pub async fn delete(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_job(&app, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a job (not one of the jobs directory's), for every API.
pub(super) async fn delete_job(app: &App, name: &str) -> Result<(), ApiError> {
    let job = find(app, name)?;
    if let Some(e) = file_managed(&job) {
        return Err(e);
    }
    let _op = lock(&job).await?;
    app.sup.delete(&job).await?;
    Ok(())
}

/// A job's status.
///
/// State, committed position per source partition, state and counters per sink, last error,
/// restarts and counters.
#[utoipa::path(get, path = "/jobs/{name}/status", tag = "jobs", params(JobName), responses(
    (status = 200, description = "The status", body = Status),
    (status = 404, description = "No such job", body = ErrorBody),
))]
pub async fn status(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let job = find(&app, &name)?;
    Ok(Json(view::status(&app.sup.ctx, &job).await?))
}

async fn change_state(app: App, name: &str, desired: Desired) -> Result<Response, ApiError> {
    let (job, reached) = request_state(&app, name, desired).await?;
    settled(&app, &job, reached).await
}

/// Ask for a desired state and wait (up to [`WAIT`]) until the job is there: the job, and
/// whether it got there. For every API.
pub(super) async fn request_state(
    app: &App,
    name: &str,
    desired: Desired,
) -> Result<(Arc<JobHandle>, bool), ApiError> {
    let job = find(app, name)?;
    let _op = lock(&job).await?;
    let seq = if job.control().desired == desired {
        job.control().seq
    } else {
        app.sup.set_desired(&job, desired).await?
    };
    let states: &[JobState] = match desired {
        Desired::Running => &STARTED,
        Desired::Paused => &[JobState::Paused],
        Desired::Stopped => &[JobState::Stopped],
    };
    let (reached, _) = app.sup.wait(&job, seq, states, WAIT).await;
    drop(_op);
    Ok((job, reached))
}

/// Pause a job: drain, commit, and keep it stopped until resumed.
#[utoipa::path(put, path = "/jobs/{name}/pause", tag = "jobs", params(JobName), responses(
    (status = 200, description = "Paused", body = Status),
    (status = 202, description = "Still on its way after 30 s", body = Status),
    (status = 404, description = "No such job", body = ErrorBody),
))]
pub async fn pause(State(app): State<App>, Path(name): Path<String>) -> Result<Response, ApiError> {
    change_state(app, &name, Desired::Paused).await
}

/// Resume a paused or stopped job from its committed positions.
#[utoipa::path(put, path = "/jobs/{name}/resume", tag = "jobs", params(JobName), responses(
    (status = 200, description = "Running (or failed, or finished)", body = Status),
    (status = 202, description = "Still on its way after 30 s", body = Status),
    (status = 404, description = "No such job", body = ErrorBody),
))]
pub async fn resume(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    change_state(app, &name, Desired::Running).await
}

/// Stop a job: like pause, and its offsets may then be changed.
#[utoipa::path(put, path = "/jobs/{name}/stop", tag = "jobs", params(JobName), responses(
    (status = 200, description = "Stopped", body = Status),
    (status = 202, description = "Still on its way after 30 s", body = Status),
    (status = 404, description = "No such job", body = ErrorBody),
))]
pub async fn stop(State(app): State<App>, Path(name): Path<String>) -> Result<Response, ApiError> {
    change_state(app, &name, Desired::Stopped).await
}

/// Restart a running job's pipeline: a graceful stop, then a fresh start.
///
/// The failure backoff is reset.
#[utoipa::path(post, path = "/jobs/{name}/restart", tag = "jobs", params(JobName), responses(
    (status = 200, description = "Restarted", body = Status),
    (status = 202, description = "Still on its way after 30 s", body = Status),
    (status = 404, description = "No such job", body = ErrorBody),
    (status = 409, description = "The job is paused or stopped: resume it instead", body = ErrorBody),
))]
pub async fn restart(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (job, reached) = restart_job(&app, &name).await?;
    settled(&app, &job, reached).await
}

/// Restart a running job's pipeline (409 when it is paused or stopped) and wait (up to
/// [`WAIT`]) until it runs again: the job, and whether it got there. For every API.
pub(super) async fn restart_job(app: &App, name: &str) -> Result<(Arc<JobHandle>, bool), ApiError> {
    let job = find(app, name)?;
    let _op = lock(&job).await?;
    let desired = job.control().desired;
    if desired != Desired::Running {
        return Err(ApiError::conflict(format!(
            "job {name:?} is {}: resume it instead",
            desired.as_str()
        )));
    }
    let seq = app.sup.restart(&job);
    let (reached, _) = app.sup.wait(&job, seq, &STARTED, WAIT).await;
    drop(_op);
    Ok((job, reached))
}

/// A job's committed positions (readable in any state).
#[utoipa::path(get, path = "/jobs/{name}/offsets", tag = "offsets", params(JobName), responses(
    (status = 200, description = "The positions", body = Offsets),
    (status = 404, description = "No such job", body = ErrorBody),
))]
pub async fn get_offsets(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<Offsets>, ApiError> {
    Ok(Json(read_offsets(&app, name).await?))
}

/// A job's committed positions, for every API.
pub(super) async fn read_offsets(app: &App, name: String) -> Result<Offsets, ApiError> {
    let job = find(app, &name)?;
    let stored = offsets::load(&app.sup.ctx.job_dir(&name), &name).await?;
    let owns = job
        .stats
        .lock()
        .shape
        .as_ref()
        .map(|s| s.source_owns_offsets);
    Ok(Offsets {
        state: job.observed().state,
        source_owns_offsets: owns,
        offsets: stored.as_ref().map(offsets::to_rows).unwrap_or_default(),
        name,
    })
}

/// The job, when its offsets may be changed: stopped, and its source uses the offset store.
fn stopped(app: &App, name: &str) -> Result<Arc<JobHandle>, ApiError> {
    let job = find(app, name)?;
    let state = job.observed().state;
    if job.control().desired != Desired::Stopped || state != JobState::Stopped {
        return Err(ApiError::conflict(format!(
            "job {name:?} is {}: offsets can only be changed while it is stopped (PUT /jobs/{name}/stop)",
            state.as_str()
        )));
    }
    if job
        .stats
        .lock()
        .shape
        .as_ref()
        .is_some_and(|s| s.source_owns_offsets)
    {
        return Err(ApiError::conflict(format!(
            "job {name:?}'s source keeps its own offsets; change them there"
        )));
    }
    Ok(job)
}

/// New positions for some partitions.
#[derive(Deserialize, ToSchema)]
pub struct OffsetsBody {
    /// The partitions to set; the others keep their positions.
    offsets: Vec<PartitionOffset>,
}

/// Set the positions of some partitions; the others keep theirs.
///
/// Only while the job is stopped. Changes every place a run resumes from: the job's offset
/// store and, for an exactly-once job, the checkpoint each sink stores with its data.
#[utoipa::path(patch, path = "/jobs/{name}/offsets", tag = "offsets",
    params(JobName),
    request_body(content = OffsetsBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The positions now stored", body = OffsetsChanged),
        (status = 400, description = "A body that is not such an object", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job is not stopped, or its source keeps its own offsets", body = ErrorBody),
    ),
)]
pub async fn patch_offsets(
    State(app): State<App>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<OffsetsChanged>, ApiError> {
    let body: OffsetsBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"offsets\": [{{\"partition\": ..., \"offset\": ...}}]}}: {e}"
        ))
    })?;
    let patch = offsets::from_rows(&body.offsets).map_err(ApiError::bad_request)?;
    let cp = change_offsets(&app, &name, Some(&patch)).await?;
    Ok(Json(OffsetsChanged {
        name,
        offsets: offsets::to_rows(&cp),
    }))
}

/// Set some partitions' positions (`Some`) or forget them all (`None`), only while the job is
/// stopped and its source uses the offset store (409 otherwise): the positions now stored.
/// For every API.
pub(super) async fn change_offsets(
    app: &App,
    name: &str,
    patch: Option<&Checkpoint>,
) -> Result<Checkpoint, ApiError> {
    let job = stopped(app, name)?;
    let _op = lock(&job).await?;
    let def = job.control().def.clone();
    let cp = offsets::reset_job(&app.sup.ctx, &def, patch).await?;
    job.stats.lock().committed = cp.clone();
    Ok(cp.unwrap_or_default())
}

/// Forget every position, sink checkpoints included.
///
/// Only while the job is stopped. The next run starts from the beginning (and writes again
/// what the sinks already hold).
#[utoipa::path(delete, path = "/jobs/{name}/offsets", tag = "offsets", params(JobName), responses(
    (status = 200, description = "Forgotten", body = OffsetsChanged),
    (status = 404, description = "No such job", body = ErrorBody),
    (status = 409, description = "The job is not stopped, or its source keeps its own offsets", body = ErrorBody),
))]
pub async fn delete_offsets(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<OffsetsChanged>, ApiError> {
    change_offsets(&app, &name, None).await?;
    Ok(Json(OffsetsChanged {
        name,
        offsets: Vec::new(),
    }))
}
