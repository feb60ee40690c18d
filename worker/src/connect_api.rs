//! Kafka Connect's REST API on the worker's jobs, so tools written for Connect work here: a
//! connector is a job, its config the job's flat form (`flat.rs`), its one task the job's
//! pipeline. Every endpoint calls the same functions as the native `/jobs` API
//! (`jobs_api.rs`) for what it changes — validation, the per-job lock and state machine, the
//! jobs directory's ownership, offsets only while stopped — and only translates the shapes;
//! the guard (token, host, origin, content type) covers these routes as any other. Errors are
//! Connect's `{error_code, message}` ([`ConnectError`]). docs/worker.md, "Kafka Connect
//! compatibility", has the side-by-side table.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use sluice_core::job::check_job_name;
use utoipa::{IntoParams, ToSchema};

use super::api::App;
use super::connect_view::{
    self, ConnectOffset, ConnectOffsets, ConnectorInfo, ConnectorList, ConnectorStatus, Expanded,
    Message, OffsetValue, PartitionKey, TaskId, TaskInfo, TaskState,
};
use super::error::{ApiError, ConnectError, ConnectErrorBody};
use super::jobs_api;
use super::model::{Desired, State as JobState};
use super::offsets::{self, PartitionOffset};

type Answer<T> = Result<T, ConnectError>;

/// The connector name in a URL: a job name (its pattern and length are set by
/// [`super::openapi`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct ConnectorName {
    /// The connector (job) name.
    #[param(example = "example")]
    name: String,
}

/// The job schema the flat configs are typed by.
fn schema(app: &App) -> Value {
    sluice_core::job::job_schema(app.sup.ctx.toolkit.registry())
}

/// Query parameters, as Connect reads them: repeatable, booleans in any case.
fn query_values<'q>(query: &'q Option<String>, key: &str) -> Vec<&'q str> {
    query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .collect()
}

fn query_bool(query: &Option<String>, key: &str) -> Result<bool, ApiError> {
    match query_values(query, key).last() {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ApiError::bad_request(format!(
            "{key} is true or false, not {v:?}"
        ))),
    }
}

/// A flat config from a JSON body: an object whose values are strings.
pub(super) fn flat_config(value: Value) -> Result<BTreeMap<String, String>, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "expected a JSON object of strings (a flat connector config)",
        ));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            other => Err(ApiError::bad_request(format!(
                "config value {k:?} is {other}, not a string: Connect configs are strings"
            ))),
        })
        .collect()
}

pub(super) fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// Which details `GET /connectors` adds.
#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Expand {
    /// Each connector's status.
    Status,
    /// Each connector's info (config, tasks, type).
    Info,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ExpandQuery {
    /// `status` and/or `info` (repeat the parameter for both): a map by name instead of a list
    /// of names.
    #[param(style = Form, explode, inline)]
    expand: Option<Vec<Expand>>,
}

/// Connectors (jobs): their names, or with `expand` their status and info by name.
#[utoipa::path(get, path = "/connectors", tag = "kafka-connect", params(ExpandQuery), responses(
    (status = 200, description = "The names, or with `expand` a map by name", body = ConnectorList),
    (status = 400, description = "An `expand` that is neither `status` nor `info`", body = ConnectErrorBody),
))]
pub async fn connectors(
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> Answer<Json<ConnectorList>> {
    let (mut status, mut info) = (false, false);
    for v in query_values(&query, "expand") {
        match v {
            "status" => status = true,
            "info" => info = true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "expand is status or info, not {other:?}"
                ))
                .into());
            }
        }
    }
    let jobs = app.sup.list();
    if !status && !info {
        return Ok(Json(ConnectorList::Names(
            jobs.iter().map(|j| j.name.clone()).collect(),
        )));
    }
    let schema = schema(&app);
    Ok(Json(ConnectorList::Expanded(
        jobs.iter()
            .map(|j| {
                let expanded = Expanded {
                    status: status.then(|| connect_view::status(j, &app.worker_id)),
                    info: info.then(|| connect_view::info(j, &schema)),
                };
                (j.name.clone(), expanded)
            })
            .collect(),
    )))
}

/// `POST /connectors`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct NewConnector {
    /// The connector (job) name.
    #[schema(example = "example")]
    name: String,
    /// The job as a flat config (docs/worker.md, "Kafka Connect compatibility").
    #[schema(example = json!({
        "connector.class": "datagen", "source.count": "10", "sinks.0.type": "stdout"
    }))]
    config: BTreeMap<String, String>,
}

/// Create a connector (a job) from a flat config, and start it.
///
/// Checked exactly as `POST /jobs` checks a job; an invalid one is Connect's 400 with each
/// problem by flat key.
#[utoipa::path(post, path = "/connectors", tag = "kafka-connect",
    request_body(content = NewConnector, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = ConnectorInfo,
            headers(("Location" = String, description = "`/connectors/{name}`"))),
        (status = 400, description = "Not `{name, config}`, a name no job can have, or an invalid config (each problem in the message)", body = ConnectErrorBody),
        (status = 409, description = "A connector (job) of that name exists", body = ConnectErrorBody),
        (status = 503, description = "The worker is shutting down", body = ConnectErrorBody),
    ),
)]
pub async fn connector_create(State(app): State<App>, body: Bytes) -> Answer<Response> {
    let mut value = json_body(&body)?;
    let name = match value.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => {
            return Err(
                ApiError::bad_request("expected {\"name\": ..., \"config\": {...}}").into(),
            );
        }
    };
    check_job_name(&name).map_err(ApiError::bad_request)?;
    let config =
        flat_config(value.get_mut("config").map(Value::take).ok_or_else(|| {
            ApiError::bad_request("expected {\"name\": ..., \"config\": {...}}")
        })?)?;
    let schema = schema(&app);
    let text = connect_view::from_flat(&schema, &name, config)?;
    let checked = jobs_api::check_def(&app, text, Some(&name)).await?;
    let job = jobs_api::create_job(&app, &checked, Desired::Running).await?;
    let mut response =
        (StatusCode::CREATED, Json(connect_view::info(&job, &schema))).into_response();
    if let Ok(location) = format!("/connectors/{name}").parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A connector: its flat config, tasks and type.
#[utoipa::path(get, path = "/connectors/{name}", tag = "kafka-connect", params(ConnectorName), responses(
    (status = 200, description = "The connector", body = ConnectorInfo),
    (status = 404, description = "No such connector", body = ConnectErrorBody),
))]
pub async fn connector_get(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Answer<Json<ConnectorInfo>> {
    let job = jobs_api::find(&app, &name)?;
    Ok(Json(connect_view::info(&job, &schema(&app))))
}

/// Delete a connector: as `DELETE /jobs/{name}` (drained, committed, forgotten with its
/// positions).
#[utoipa::path(delete, path = "/connectors/{name}", tag = "kafka-connect", params(ConnectorName), responses(
    (status = 204, description = "Deleted"),
    (status = 404, description = "No such connector", body = ConnectErrorBody),
    (status = 409, description = "The job is defined by a file in the jobs directory", body = ConnectErrorBody),
))]
pub async fn connector_delete(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Answer<StatusCode> {
    jobs_api::delete_job(&app, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A connector's flat config.
#[utoipa::path(get, path = "/connectors/{name}/config", tag = "kafka-connect", params(ConnectorName), responses(
    (status = 200, description = "The job as a flat config", body = BTreeMap<String, String>),
    (status = 404, description = "No such connector", body = ConnectErrorBody),
))]
pub async fn connector_config(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Answer<Json<BTreeMap<String, String>>> {
    let job = jobs_api::find(&app, &name)?;
    Ok(Json(connect_view::to_flat(
        &schema(&app),
        &job.control().def.config,
    )))
}

/// Create a connector or replace its config: as `PUT /jobs/{name}/config`.
#[utoipa::path(put, path = "/connectors/{name}/config", tag = "kafka-connect",
    params(ConnectorName),
    request_body(description = "The job as a flat config", content = BTreeMap<String, String>, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced (or unchanged)", body = ConnectorInfo),
        (status = 201, description = "Created", body = ConnectorInfo,
            headers(("Location" = String, description = "`/connectors/{name}`"))),
        (status = 400, description = "Not an object of strings, a name no job can have, or an invalid config (each problem in the message)", body = ConnectErrorBody),
        (status = 409, description = "The job is defined by a file in the jobs directory", body = ConnectErrorBody),
        (status = 503, description = "The worker is shutting down", body = ConnectErrorBody),
    ),
)]
pub async fn connector_put_config(
    State(app): State<App>,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer<Response> {
    let schema = schema(&app);
    let text = || connect_view::from_flat(&schema, &name, flat_config(json_body(&body)?)?);
    let put = jobs_api::put_def(&app, &name, text).await?;
    let info = Json(connect_view::info(&put.job, &schema));
    if !put.created {
        return Ok(info.into_response());
    }
    let mut response = (StatusCode::CREATED, info).into_response();
    if let Ok(location) = format!("/connectors/{name}").parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A connector's status, in Connect's states.
#[utoipa::path(get, path = "/connectors/{name}/status", tag = "kafka-connect", params(ConnectorName), responses(
    (status = 200, description = "The status", body = ConnectorStatus),
    (status = 404, description = "No such connector", body = ConnectErrorBody),
))]
pub async fn connector_status(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Answer<Json<ConnectorStatus>> {
    let job = jobs_api::find(&app, &name)?;
    Ok(Json(connect_view::status(&job, &app.worker_id)))
}

async fn request(app: &App, name: &str, desired: Desired) -> Answer<StatusCode> {
    jobs_api::request_state(app, name, desired).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Pause a connector: as `PUT /jobs/{name}/pause`.
#[utoipa::path(put, path = "/connectors/{name}/pause", tag = "kafka-connect", params(ConnectorName), responses(
    (status = 202, description = "Paused, or on its way after 30 s"),
    (status = 404, description = "No such connector", body = ConnectErrorBody),
))]
pub async fn connector_pause(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Answer<StatusCode> {
    request(&app, &name, Desired::Paused).await
}

/// Resume a paused or stopped connector: as `PUT /jobs/{name}/resume`.
#[utoipa::path(put, path = "/connectors/{name}/resume", tag = "kafka-connect", params(ConnectorName), responses(
    (status = 202, description = "Running, or on its way after 30 s"),
    (status = 404, description = "No such connector", body = ConnectErrorBody),
))]
pub async fn connector_resume(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Answer<StatusCode> {
    request(&app, &name, Desired::Running).await
}

/// Stop a connector (its offsets may then be changed): as `PUT /jobs/{name}/stop`.
#[utoipa::path(put, path = "/connectors/{name}/stop", tag = "kafka-connect", params(ConnectorName), responses(
    (status = 202, description = "Stopped, or on its way after 30 s"),
    (status = 404, description = "No such connector", body = ConnectErrorBody),
))]
pub async fn connector_stop(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Answer<StatusCode> {
    request(&app, &name, Desired::Stopped).await
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
#[allow(non_snake_case)]
struct RestartQuery {
    /// Restart the task too (a Sluice job's task is its pipeline: the same restart); the
    /// answer is then 202 with the status.
    includeTasks: Option<bool>,
    /// Restart only if the connector failed; the answer is then 202 with the status.
    onlyFailed: Option<bool>,
}

/// Restart a connector: as `POST /jobs/{name}/restart` (409 when paused or stopped).
#[utoipa::path(post, path = "/connectors/{name}/restart", tag = "kafka-connect",
    params(ConnectorName, RestartQuery),
    responses(
        (status = 202, description = "With `includeTasks` or `onlyFailed`: restarted (or, with `onlyFailed`, left alone when it had not failed)", body = ConnectorStatus),
        (status = 204, description = "Restarted"),
        (status = 400, description = "A parameter that is not true or false", body = ConnectErrorBody),
        (status = 404, description = "No such connector", body = ConnectErrorBody),
        (status = 409, description = "The connector is paused or stopped: resume it instead", body = ConnectErrorBody),
    ),
)]
pub async fn connector_restart(
    State(app): State<App>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer<Response> {
    let include_tasks = query_bool(&query, "includeTasks")?;
    let only_failed = query_bool(&query, "onlyFailed")?;
    let job = jobs_api::find(&app, &name)?;
    if !only_failed || job.observed().state == JobState::Failed {
        jobs_api::restart_job(&app, &name).await?;
    }
    if !include_tasks && !only_failed {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let status = connect_view::status(&job, &app.worker_id);
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

/// A connector's tasks: one, with the job's config.
#[utoipa::path(get, path = "/connectors/{name}/tasks", tag = "kafka-connect", params(ConnectorName), responses(
    (status = 200, description = "Its one task", body = Vec<TaskInfo>),
    (status = 404, description = "No such connector", body = ConnectErrorBody),
))]
pub async fn connector_tasks(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Answer<Json<Vec<TaskInfo>>> {
    let job = jobs_api::find(&app, &name)?;
    let config = connect_view::to_flat(&schema(&app), &job.control().def.config);
    Ok(Json(vec![TaskInfo {
        id: TaskId {
            connector: name,
            task: 0,
        },
        config,
    }]))
}

/// The task number in a URL: 0 is the only task.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct TaskPath {
    /// The connector (job) name.
    name: String,
    /// The task number: 0.
    task: u32,
}

fn task_zero(name: &str, task: &str) -> Result<(), ApiError> {
    match task {
        "0" => Ok(()),
        _ => Err(ApiError::not_found(format!(
            "connector {name:?} has one task, 0, not {task:?}"
        ))),
    }
}

/// A task's status: the connector's.
#[utoipa::path(get, path = "/connectors/{name}/tasks/{task}/status", tag = "kafka-connect", params(TaskPath), responses(
    (status = 200, description = "The task's state", body = TaskState),
    (status = 404, description = "No such connector or task", body = ConnectErrorBody),
))]
pub async fn task_status(
    State(app): State<App>,
    Path((name, task)): Path<(String, String)>,
) -> Answer<Json<TaskState>> {
    let job = jobs_api::find(&app, &name)?;
    task_zero(&name, &task)?;
    let status = connect_view::status(&job, &app.worker_id);
    Ok(Json(status.tasks.into_iter().next().unwrap_or(TaskState {
        id: 0,
        state: status.connector.state,
        worker_id: status.connector.worker_id,
        trace: status.connector.trace,
    })))
}

/// Restart the task: the job's pipeline, as `POST /jobs/{name}/restart`.
#[utoipa::path(post, path = "/connectors/{name}/tasks/{task}/restart", tag = "kafka-connect", params(TaskPath), responses(
    (status = 204, description = "Restarted"),
    (status = 404, description = "No such connector or task", body = ConnectErrorBody),
    (status = 409, description = "The connector is paused or stopped: resume it instead", body = ConnectErrorBody),
))]
pub async fn task_restart(
    State(app): State<App>,
    Path((name, task)): Path<(String, String)>,
) -> Answer<StatusCode> {
    jobs_api::find(&app, &name)?;
    task_zero(&name, &task)?;
    jobs_api::restart_job(&app, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A connector's committed positions, in Connect's shape (readable in any state).
#[utoipa::path(get, path = "/connectors/{name}/offsets", tag = "kafka-connect", params(ConnectorName), responses(
    (status = 200, description = "The positions", body = ConnectOffsets),
    (status = 404, description = "No such connector", body = ConnectErrorBody),
))]
pub async fn connector_offsets(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Answer<Json<ConnectOffsets>> {
    let stored = jobs_api::read_offsets(&app, name).await?;
    Ok(Json(ConnectOffsets {
        offsets: stored
            .offsets
            .into_iter()
            .map(|row| ConnectOffset {
                partition: PartitionKey {
                    partition: row.partition,
                },
                offset: OffsetValue { offset: row.offset },
            })
            .collect(),
    }))
}

/// Connect answers a change of offsets to a connector that is not stopped with 400.
fn not_stopped(e: ApiError) -> ApiError {
    if e.status() == StatusCode::CONFLICT {
        ApiError::bad_request(format!(
            "{} (Connect: the connector must be STOPPED, PUT /connectors/{{name}}/stop)",
            e.message()
        ))
    } else {
        e
    }
}

/// Set some partitions' positions: as `PATCH /jobs/{name}/offsets`, only while stopped.
#[utoipa::path(patch, path = "/connectors/{name}/offsets", tag = "kafka-connect",
    params(ConnectorName),
    request_body(content = ConnectOffsets, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = Message),
        (status = 400, description = "Not such a body, or the connector is not stopped, or its source keeps its own offsets", body = ConnectErrorBody),
        (status = 404, description = "No such connector", body = ConnectErrorBody),
    ),
)]
pub async fn connector_alter_offsets(
    State(app): State<App>,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer<Json<Message>> {
    let body: ConnectOffsets = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"offsets\": [{{\"partition\": {{\"partition\": ...}}, \"offset\": {{\"offset\": ...}}}}]}} \
             (a null offset is not supported: DELETE the offsets to forget them all): {e}"
        ))
    })?;
    let rows: Vec<PartitionOffset> = body
        .offsets
        .into_iter()
        .map(|o| PartitionOffset {
            partition: o.partition.partition,
            offset: o.offset.offset,
        })
        .collect();
    let patch = offsets::from_rows(&rows).map_err(ApiError::bad_request)?;
    jobs_api::change_offsets(&app, &name, Some(&patch))
        .await
        .map_err(not_stopped)?;
    Ok(Json(Message {
        message: "The offsets for this connector have been altered successfully".into(),
    }))
}

/// Forget every position: as `DELETE /jobs/{name}/offsets`, only while stopped.
#[utoipa::path(delete, path = "/connectors/{name}/offsets", tag = "kafka-connect", params(ConnectorName), responses(
    (status = 200, description = "Forgotten", body = Message),
    (status = 400, description = "The connector is not stopped, or its source keeps its own offsets", body = ConnectErrorBody),
    (status = 404, description = "No such connector", body = ConnectErrorBody),
))]
pub async fn connector_reset_offsets(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Answer<Json<Message>> {
    jobs_api::change_offsets(&app, &name, None)
        .await
        .map_err(not_stopped)?;
    Ok(Json(Message {
        message: "The offsets for this connector have been reset successfully".into(),
    }))
}
