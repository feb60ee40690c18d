//! What the Kafka Connect API (`connect_api.rs`) sends, in Connect's shapes, and the flat
//! config of a job with Connect's own keys (`connector.class`, `tasks.max`, `name`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, FieldError};
use super::flat::{self, Flat};
use super::model::{Desired, State as JobState};
use super::supervisor::JobHandle;

/// Connect's key for the connector's class: here the job's source type.
pub const CONNECTOR_CLASS: &str = "connector.class";
/// Connect's key for the number of tasks: a Sluice job is one task, so it is checked and
/// not kept.
pub const TASKS_MAX: &str = "tasks.max";

/// A connector's kind as Connect says it, from Kafka's side: a job that reads Kafka is a
/// `sink` connector (it sinks Kafka's records elsewhere), any other is a `source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorType {
    /// Reads something else (into Kafka, or anywhere).
    Source,
    /// Reads Kafka.
    Sink,
}

/// The `type` of a job's source in its TOML text.
pub fn source_type(text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    table
        .get("source")?
        .get("type")?
        .as_str()
        .map(str::to_string)
}

/// The Connect kind of a job.
pub fn connector_type(text: &str) -> ConnectorType {
    match source_type(text).as_deref() {
        Some("kafka") => ConnectorType::Sink,
        _ => ConnectorType::Source,
    }
}

/// A job definition (TOML text) as Connect's flat config, with `connector.class`.
pub fn to_flat(schema: &Value, text: &str) -> Flat {
    let table: toml::Table = toml::from_str(text).unwrap_or_default();
    let mut config = flat::flatten(&table, schema);
    if let Some(class) = source_type(text) {
        config.insert(CONNECTOR_CLASS.into(), class);
    }
    config
}

/// Connect's flat config as a job definition (TOML text) named `name`: `connector.class` is
/// the source type, `tasks.max` a positive integer that is not kept, `name` (if given) the
/// connector's name, `api_version` 1 unless given. The result is checked like any submitted
/// definition afterwards; here only what the flat form itself gets wrong is reported (422).
pub fn from_flat(schema: &Value, name: &str, mut config: Flat) -> Result<String, ApiError> {
    let mut errors = Vec::new();
    let mut error = |path: &str, message: String| {
        errors.push(FieldError {
            path: path.into(),
            line: None,
            message,
        })
    };
    if let Some(class) = config.remove(CONNECTOR_CLASS) {
        match config.get("source.type") {
            None => {
                config.insert("source.type".into(), class);
            }
            Some(t) if *t != class => error(
                CONNECTOR_CLASS,
                format!("{class:?} is not the source type {t:?}: leave one out"),
            ),
            Some(_) => {}
        }
    }
    if let Some(tasks) = config.remove(TASKS_MAX)
        && tasks.trim().parse::<u32>().map_or(true, |n| n == 0)
    {
        error(
            TASKS_MAX,
            format!("expected a positive integer, got {tasks:?} (a Sluice job runs as one task)"),
        );
    }
    match config.get("name") {
        None => {
            config.insert("name".into(), name.into());
        }
        Some(n) if n != name => error(
            "name",
            format!("the config names connector {n:?} but the request says {name:?}"),
        ),
        Some(_) => {}
    }
    config
        .entry("api_version".into())
        .or_insert_with(|| sluice_core::job::API_VERSION.to_string());
    let table = match flat::unflatten(&config, schema) {
        Ok(table) => Some(table),
        Err(problems) => {
            for p in problems {
                error(&p.key, p.message);
            }
            None
        }
    };
    match table {
        Some(table) if errors.is_empty() => toml::to_string(&table)
            .map_err(|e| ApiError::bad_request(format!("cannot convert to TOML: {e}"))),
        _ => Err(ApiError::invalid_config(errors)),
    }
}

/// A connector's state, in Connect's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectState {
    /// Starting, or finished (a bounded source read to its end): running nowhere.
    Unassigned,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Stopped (offsets may be changed).
    Stopped,
    /// The last run failed; `trace` says why.
    Failed,
    /// Draining on the way to running again (a restart or a new config).
    Restarting,
}

/// Connect's state of a job in `state` that was asked to be `desired`.
pub fn connect_state(state: JobState, desired: Desired) -> ConnectState {
    match state {
        JobState::Starting | JobState::Finished => ConnectState::Unassigned,
        JobState::Running => ConnectState::Running,
        JobState::Paused => ConnectState::Paused,
        JobState::Stopped => ConnectState::Stopped,
        JobState::Failed => ConnectState::Failed,
        JobState::Draining => match desired {
            Desired::Running => ConnectState::Restarting,
            Desired::Paused => ConnectState::Paused,
            Desired::Stopped => ConnectState::Stopped,
        },
    }
}

/// The state of the connector or of its task.
#[derive(Serialize, ToSchema)]
pub struct ConnectorState {
    /// The state.
    pub state: ConnectState,
    /// The worker that runs it (its listen address).
    pub worker_id: String,
    /// Why it failed (`FAILED` only): the error and its causes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// The state of a task.
#[derive(Serialize, ToSchema)]
pub struct TaskState {
    /// The task number: always 0, a Sluice job is one task.
    pub id: u32,
    /// The state.
    pub state: ConnectState,
    /// The worker that runs it.
    pub worker_id: String,
    /// Why it failed (`FAILED` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// `GET /connectors/{name}/status`.
#[derive(Serialize, ToSchema)]
pub struct ConnectorStatus {
    /// The connector (job) name.
    pub name: String,
    /// The connector's state.
    pub connector: ConnectorState,
    /// Its one task.
    pub tasks: Vec<TaskState>,
    /// `source` or `sink`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
}

/// A job's Connect status.
pub fn status(job: &JobHandle, worker_id: &str) -> ConnectorStatus {
    let control = job.control();
    let observed = job.observed();
    let state = connect_state(observed.state, control.desired);
    let trace = (state == ConnectState::Failed)
        .then(|| {
            observed
                .failure
                .as_ref()
                .map(|f| f.text())
                .or(observed.last_error.clone())
        })
        .flatten();
    ConnectorStatus {
        name: job.name.clone(),
        connector: ConnectorState {
            state,
            worker_id: worker_id.to_string(),
            trace: trace.clone(),
        },
        tasks: vec![TaskState {
            id: 0,
            state,
            worker_id: worker_id.to_string(),
            trace,
        }],
        kind: connector_type(&control.def.config),
    }
}

/// A task's id.
#[derive(Serialize, ToSchema)]
pub struct TaskId {
    /// The connector (job) name.
    pub connector: String,
    /// The task number: 0.
    pub task: u32,
}

/// `GET /connectors/{name}`, and the answer to a create or a config change.
#[derive(Serialize, ToSchema)]
pub struct ConnectorInfo {
    /// The connector (job) name.
    pub name: String,
    /// The job as a flat config.
    pub config: BTreeMap<String, String>,
    /// Its one task.
    pub tasks: Vec<TaskId>,
    /// `source` or `sink`.
    #[serde(rename = "type")]
    pub kind: ConnectorType,
}

/// A job's Connect info.
pub fn info(job: &JobHandle, schema: &Value) -> ConnectorInfo {
    let def = job.control().def;
    ConnectorInfo {
        name: job.name.clone(),
        config: to_flat(schema, &def.config),
        tasks: vec![TaskId {
            connector: job.name.clone(),
            task: 0,
        }],
        kind: connector_type(&def.config),
    }
}

/// One task of `GET /connectors/{name}/tasks`.
#[derive(Serialize, ToSchema)]
pub struct TaskInfo {
    /// Its id.
    pub id: TaskId,
    /// Its config: the job's.
    pub config: BTreeMap<String, String>,
}

/// A connector in `GET /connectors?expand=...`.
#[derive(Serialize, ToSchema)]
pub struct Expanded {
    /// With `expand=status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ConnectorStatus>,
    /// With `expand=info`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ConnectorInfo>,
}

/// `GET /connectors`: names, or with `expand` each connector's status and/or info by name.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ConnectorList {
    /// The names.
    Names(Vec<String>),
    /// By name, what `expand` asked for.
    Expanded(BTreeMap<String, Expanded>),
}

/// A source partition, in Connect's offsets.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionKey {
    /// The partition, as `GET /jobs/{name}/offsets` names it.
    #[schema(min_length = 1)]
    pub partition: String,
}

/// A position, in Connect's offsets.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetValue {
    /// A number for integer offsets, a string for textual ones: the last committed position.
    #[schema(schema_with = super::offsets::offset_schema)]
    pub offset: Value,
}

/// One partition's position, in Connect's shape.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectOffset {
    /// The partition.
    pub partition: PartitionKey,
    /// Its position. Connect's `null` (forget this partition) is not supported: `DELETE` the
    /// offsets to forget them all.
    pub offset: OffsetValue,
}

/// `GET /connectors/{name}/offsets`, and the body of its `PATCH` (Connect 3.6's shape).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectOffsets {
    /// By partition.
    pub offsets: Vec<ConnectOffset>,
}

/// Connect's answer to a change of offsets.
#[derive(Serialize, ToSchema)]
pub struct Message {
    /// What was done.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        let mut registry = sluice_core::Registry::new();
        sluice_connector_file::register(&mut registry);
        sluice_core::job::job_schema(&registry)
    }

    fn flat(pairs: &[(&str, &str)]) -> Flat {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn connect_keys_map_onto_the_job() {
        let schema = schema();
        let text = from_flat(
            &schema,
            "j",
            flat(&[
                ("connector.class", "datagen"),
                ("tasks.max", "3"),
                ("source.count", "4"),
                ("sinks.0.type", "stdout"),
            ]),
        )
        .unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(table["name"].as_str(), Some("j"));
        assert_eq!(table["api_version"].as_integer(), Some(1));
        assert_eq!(table["source"]["type"].as_str(), Some("datagen"));
        assert_eq!(table["source"]["count"].as_integer(), Some(4));
        assert!(!text.contains("tasks"), "{text}");
        assert_eq!(connector_type(&text), ConnectorType::Source);
        let back = to_flat(&schema, &text);
        assert_eq!(back["connector.class"], "datagen");
        assert_eq!(back["source.count"], "4");
        assert!(!back.contains_key("tasks.max"));
    }

    #[test]
    fn what_the_flat_form_gets_wrong_is_reported_by_key() {
        let schema = schema();
        let err = from_flat(
            &schema,
            "j",
            flat(&[
                ("connector.class", "file"),
                ("source.type", "datagen"),
                ("tasks.max", "none"),
                ("name", "k"),
            ]),
        )
        .unwrap_err();
        let text = format!("{err:?}");
        for key in ["connector.class", "tasks.max", "\"name\""] {
            assert!(text.contains(key), "{key}: {text}");
        }
    }

    #[test]
    fn states_in_connects_words() {
        use ConnectState as C;
        let cases = [
            (JobState::Starting, Desired::Running, C::Unassigned),
            (JobState::Running, Desired::Running, C::Running),
            (JobState::Draining, Desired::Running, C::Restarting),
            (JobState::Draining, Desired::Paused, C::Paused),
            (JobState::Draining, Desired::Stopped, C::Stopped),
            (JobState::Paused, Desired::Paused, C::Paused),
            (JobState::Stopped, Desired::Stopped, C::Stopped),
            (JobState::Failed, Desired::Running, C::Failed),
            (JobState::Finished, Desired::Running, C::Unassigned),
        ];
        for (state, desired, connect) in cases {
            assert_eq!(
                connect_state(state, desired),
                connect,
                "{state:?} {desired:?}"
            );
        }
        assert_eq!(
            connector_type("[source]\ntype = \"kafka\"\n"),
            ConnectorType::Sink
        );
    }
}
