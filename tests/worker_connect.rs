//! Kafka Connect's REST API on a real `sluice worker`: every endpoint with its status and body,
//! a file -> file job driven through it (pause, resume, restart, stop, offsets), configs checked
//! by the same rules as the native API, the flat config round trip, and a Python client written
//! for Kafka Connect (kafka-connect-py, installed by `bash scripts/services.sh up
//! kafka-connect-py`, which exports SLUICE_TEST_KAFKA_CONNECT_PY) driving the worker.

mod worker_support;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use worker_support::{Body, Worker, eventually};

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn append(path: &Path, from: usize, to: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in from..to {
        writeln!(f, "{{\"n\": {i}}}").unwrap();
    }
}

/// A file -> file job as Connect's flat config: the source follows its file.
fn file_config(input: &Path, output: &Path) -> Value {
    json!({
        "connector.class": "file",
        "tasks.max": "1",
        "source.path": input.display().to_string(),
        "source.follow": "true",
        "source.poll_interval": "50ms",
        "sinks.0.type": "file",
        "sinks.0.path": output.display().to_string(),
        "sinks.0.batch.max_wait": "50ms",
        "delivery.commit_interval": "100ms",
    })
}

async fn connect_state(w: &Worker, name: &str) -> Value {
    w.get(&format!("/connectors/{name}/status")).await["connector"]["state"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_job_through_the_connect_api() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    append(&input, 0, 10);
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;
    let worker_id = w.base.trim_start_matches("http://").to_string();

    let root = w.get("/").await;
    assert_eq!(root["name"], "sluice", "{root}");
    assert!(
        root["version"].is_string() && root["commit"].is_string(),
        "{root}"
    );
    assert!(
        root.as_object().unwrap().contains_key("kafka_cluster_id"),
        "{root}"
    );
    assert_eq!(w.get("/connectors").await, json!([]));

    // Create: 201, Connect's ConnectorInfo, and a job like any other.
    let config = file_config(&input, &output);
    let (code, created) = w
        .call(
            Method::POST,
            "/connectors",
            Some(Body::Json(json!({"name": "ff", "config": config}))),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["name"], "ff");
    assert_eq!(created["type"], "source");
    assert_eq!(created["tasks"], json!([{"connector": "ff", "task": 0}]));
    let flat = &created["config"];
    assert_eq!(flat["connector.class"], "file", "{flat}");
    assert_eq!(flat["source.type"], "file", "{flat}");
    assert_eq!(flat["source.follow"], "true", "{flat}");
    assert_eq!(flat["sinks.0.batch.max_wait"], "50ms", "{flat}");
    assert_eq!(flat["name"], "ff", "{flat}");
    assert_eq!(flat["api_version"], "1", "{flat}");
    assert!(flat.get("tasks.max").is_none(), "not kept: {flat}");
    let job = w.get("/jobs/ff").await;
    assert_eq!(job["definition"]["source"]["follow"], true, "{job}");
    assert_eq!(job["definition"]["delivery"]["commit_interval"], "100ms");
    let (code, err) = w
        .call(
            Method::POST,
            "/connectors",
            Some(Body::Json(json!({"name": "ff", "config": config}))),
        )
        .await;
    assert_eq!(code, 409, "{err}");
    assert_eq!(err["error_code"], 409, "{err}");
    assert!(err["message"].as_str().unwrap().contains("exists"), "{err}");
    eventually("10 lines out", Duration::from_secs(20), || async {
        (lines(&output).len() == 10).then_some(())
    })
    .await;

    // Reading.
    assert_eq!(w.get("/connectors").await, json!(["ff"]));
    let status = w.get("/connectors/ff/status").await;
    assert_eq!(
        status,
        json!({
            "name": "ff",
            "connector": {"state": "RUNNING", "worker_id": worker_id},
            "tasks": [{"id": 0, "state": "RUNNING", "worker_id": worker_id}],
            "type": "source",
        })
    );
    let expanded = w.get("/connectors?expand=status").await;
    assert_eq!(expanded["ff"]["status"], status, "{expanded}");
    assert!(expanded["ff"].get("info").is_none(), "{expanded}");
    let both = w.get("/connectors?expand=status&expand=info").await;
    assert_eq!(both["ff"]["status"], status, "{both}");
    assert_eq!(both["ff"]["info"], created, "{both}");
    let (code, err) = w.call(Method::GET, "/connectors?expand=all", None).await;
    assert_eq!(code, 400, "{err}");
    assert_eq!(err["error_code"], 400, "{err}");
    assert_eq!(w.get("/connectors/ff").await, created);
    assert_eq!(&w.get("/connectors/ff/config").await, flat);
    assert_eq!(
        w.get("/connectors/ff/tasks").await,
        json!([{"id": {"connector": "ff", "task": 0}, "config": flat}])
    );
    assert_eq!(
        w.get("/connectors/ff/tasks/0/status").await,
        json!({"id": 0, "state": "RUNNING", "worker_id": worker_id})
    );
    let (code, err) = w
        .call(Method::GET, "/connectors/ff/tasks/1/status", None)
        .await;
    assert_eq!(code, 404, "{err}");
    assert_eq!(err["error_code"], 404, "{err}");

    // Pause: the same state machine as PUT /jobs/ff/pause.
    let (code, body) = w.call(Method::PUT, "/connectors/ff/pause", None).await;
    assert_eq!((code, body), (202, Value::Null));
    assert_eq!(connect_state(&w, "ff").await, "PAUSED");
    assert_eq!(w.status("ff").await["state"], "paused");
    // 202: paused once the pipeline has drained; then nothing reads the appended lines.
    let status = w.wait_state("ff", "paused").await;
    append(&input, 10, 20);
    assert_eq!(status["counters"]["records_in"], 10, "{status}");
    assert_eq!(lines(&output).len(), 10, "a paused job writes nothing");
    let (code, err) = w
        .call(
            Method::PATCH,
            "/connectors/ff/offsets",
            Some(Body::Json(json!({"offsets": [
                {"partition": {"partition": "x"}, "offset": {"offset": 0}}
            ]}))),
        )
        .await;
    assert_eq!(
        code, 400,
        "Connect: offsets change only while STOPPED: {err}"
    );
    assert_eq!(err["error_code"], 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("stopped"),
        "{err}"
    );
    let (code, err) = w.call(Method::POST, "/connectors/ff/restart", None).await;
    assert_eq!(code, 409, "a paused job is resumed, not restarted: {err}");
    assert_eq!(err["error_code"], 409, "{err}");

    // Resume: goes on from its position.
    let (code, _) = w.call(Method::PUT, "/connectors/ff/resume", None).await;
    assert_eq!(code, 202);
    assert_eq!(connect_state(&w, "ff").await, "RUNNING");
    eventually("20 lines out", Duration::from_secs(20), || async {
        (lines(&output).len() == 20).then_some(())
    })
    .await;

    // Restart: 204, or 202 with the status when tasks are included or only failed ones asked.
    let (code, body) = w.call(Method::POST, "/connectors/ff/restart", None).await;
    assert_eq!((code, body), (204, Value::Null));
    let (code, body) = w
        .call(
            Method::POST,
            "/connectors/ff/restart?includeTasks=true&onlyFailed=False",
            None,
        )
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["connector"]["state"], "RUNNING", "{body}");
    let (code, body) = w
        .call(Method::POST, "/connectors/ff/restart?onlyFailed=true", None)
        .await;
    assert_eq!(code, 202, "not failed: left alone: {body}");
    let (code, err) = w
        .call(
            Method::POST,
            "/connectors/ff/restart?includeTasks=maybe",
            None,
        )
        .await;
    assert_eq!(code, 400, "{err}");
    let (code, body) = w
        .call(Method::POST, "/connectors/ff/tasks/0/restart", None)
        .await;
    assert_eq!((code, body), (204, Value::Null));
    assert_eq!(connect_state(&w, "ff").await, "RUNNING");

    // Stop, then the offsets in Connect 3.6's shape, mapped onto the job's offsets.
    let (code, _) = w.call(Method::PUT, "/connectors/ff/stop", None).await;
    assert_eq!(code, 202);
    assert_eq!(connect_state(&w, "ff").await, "STOPPED");
    let native = w.get("/jobs/ff/offsets").await["offsets"].clone();
    assert_eq!(native.as_array().unwrap().len(), 1, "{native}");
    let (partition, offset) = (native[0]["partition"].clone(), native[0]["offset"].clone());
    assert!(offset.as_u64() > Some(0), "{native}");
    assert_eq!(
        w.get("/connectors/ff/offsets").await,
        json!({"offsets": [{"partition": {"partition": partition}, "offset": {"offset": offset}}]})
    );
    let (code, body) = w
        .call(
            Method::PATCH,
            "/connectors/ff/offsets",
            Some(Body::Json(json!({"offsets": [
                {"partition": {"partition": partition}, "offset": {"offset": 0}}
            ]}))),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["message"],
        "The offsets for this connector have been altered successfully"
    );
    assert_eq!(w.get("/jobs/ff/offsets").await["offsets"][0]["offset"], 0);
    let (code, err) = w
        .call(
            Method::PATCH,
            "/connectors/ff/offsets",
            Some(Body::Json(json!({"offsets": [
                {"partition": {"partition": partition}, "offset": null}
            ]}))),
        )
        .await;
    assert_eq!(code, 400, "Connect's null offset is not supported: {err}");
    let (code, body) = w.call(Method::DELETE, "/connectors/ff/offsets", None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["message"],
        "The offsets for this connector have been reset successfully"
    );
    assert_eq!(
        w.get("/connectors/ff/offsets").await,
        json!({"offsets": []})
    );
    // Resumed after the reset, the job reads its file again from the start.
    let (code, _) = w.call(Method::PUT, "/connectors/ff/resume", None).await;
    assert_eq!(code, 202);
    eventually(
        "the file written again",
        Duration::from_secs(20),
        || async { (lines(&output).len() == 40).then_some(()) },
    )
    .await;

    // A new config: 200 and the job runs with it; an unknown name is created (201).
    let mut changed = config.clone();
    changed["delivery.commit_interval"] = json!("200ms");
    let (code, body) = w
        .call(
            Method::PUT,
            "/connectors/ff/config",
            Some(Body::Json(changed)),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["config"]["delivery.commit_interval"], "200ms",
        "{body}"
    );
    assert_eq!(
        w.get("/jobs/ff").await["definition"]["delivery"]["commit_interval"],
        "200ms"
    );
    let mut other = config.clone();
    other["source.follow"] = json!("false");
    other["sinks.0.path"] = json!(dir.path().join("other.jsonl").display().to_string());
    let (code, body) = w
        .call(
            Method::PUT,
            "/connectors/other/config",
            Some(Body::Json(other)),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["name"], "other", "{body}");
    eventually("other finished", Duration::from_secs(20), || async {
        let state = w.status("other").await["state"].clone();
        (state == "finished").then_some(())
    })
    .await;
    assert_eq!(
        connect_state(&w, "other").await,
        "UNASSIGNED",
        "a finished job runs nowhere"
    );

    // Delete: 204, then gone in both APIs.
    for name in ["ff", "other"] {
        let (code, body) = w
            .call(Method::DELETE, &format!("/connectors/{name}"), None)
            .await;
        assert_eq!((code, body), (204, Value::Null));
    }
    let (code, err) = w.call(Method::GET, "/connectors/ff", None).await;
    assert_eq!(code, 404);
    assert_eq!(
        err,
        json!({"error_code": 404, "message": "no job named \"ff\""})
    );
    let (code, _) = w.call(Method::GET, "/jobs/ff", None).await;
    assert_eq!(code, 404);
    assert_eq!(w.get("/connectors").await, json!([]));
}

/// A connector config meets every rule a native job meets: validation, names, path
/// confinement, the interpolation policy, the jobs directory's ownership, and the guard.
#[tokio::test(flavor = "multi_thread")]
async fn connect_configs_are_checked_like_native_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    std::fs::create_dir(&jobs).unwrap();
    std::fs::write(
        jobs.join("owned.toml"),
        "api_version = 1\nname = \"owned\"\n[source]\ntype = \"datagen\"\ncount = 1\n[[sinks]]\ntype = \"stdout\"\n",
    )
    .unwrap();
    let w = Worker::start_with_data(
        &dir.path().join("state"),
        dir.path(),
        &["--jobs-dir", jobs.to_str().unwrap()],
    )
    .await;
    let w = &w;
    let create = |name: &str, config: Value| {
        let body = json!({"name": name, "config": config});
        async move {
            w.call(Method::POST, "/connectors", Some(Body::Json(body)))
                .await
        }
    };

    // Per-field errors by flat key, all at once, in Connect's 400.
    let (code, err) = create(
        "bad",
        json!({"connector.class": "datagen", "source.rte": "5", "sinks.0.type": "nope"}),
    )
    .await;
    assert_eq!(code, 400, "{err}");
    assert_eq!(err["error_code"], 400);
    let message = err["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Connector configuration is invalid and contains the following 2 error(s):"
        ),
        "{message}"
    );
    assert!(message.contains("\nsource.rte: "), "{message}");
    assert!(message.contains("\nsinks.0.type: "), "{message}");
    // What the flat form itself gets wrong.
    for (config, key) in [
        (
            json!({"connector.class": "file", "source.type": "datagen"}),
            "connector.class",
        ),
        (
            json!({"connector.class": "datagen", "tasks.max": "0"}),
            "tasks.max",
        ),
        (
            json!({"connector.class": "datagen", "name": "other"}),
            "name",
        ),
        (
            json!({"connector.class": "datagen", "sinks.1.type": "stdout"}),
            "sinks",
        ),
    ] {
        let (code, err) = create("flat", config).await;
        assert_eq!(code, 400, "{err}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains(&format!("\n{key}: ")),
            "{key}: {err}"
        );
    }
    // Not a Connect request at all.
    for body in [
        json!({"name": "x"}),
        json!({"config": {}}),
        json!({"name": "x", "config": {"source.count": 5}}),
        json!([1]),
    ] {
        let (code, err) = w
            .call(Method::POST, "/connectors", Some(Body::Json(body.clone())))
            .await;
        assert_eq!(code, 400, "{body}: {err}");
        assert_eq!(err["error_code"], 400, "{err}");
    }
    // Names a state directory cannot hold.
    let (code, err) = create("..", json!({"connector.class": "datagen"})).await;
    assert_eq!(code, 400, "{err}");
    // The interpolation policy of API jobs: the worker's environment stays unread.
    let (code, err) = create(
        "peek",
        json!({"connector.class": "datagen", "source.count": "${env:PATH}", "sinks.0.type": "stdout"}),
    )
    .await;
    assert_eq!(code, 400, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("source.count: ${env:PATH}: this worker does not let"),
        "{err}"
    );
    // A jobs-dir job is changed through its file.
    let owned = json!({"connector.class": "datagen", "sinks.0.type": "stdout"});
    let (code, err) = w
        .call(
            Method::PUT,
            "/connectors/owned/config",
            Some(Body::Json(owned)),
        )
        .await;
    assert_eq!(code, 409, "{err}");
    assert_eq!(err["error_code"], 409, "{err}");
    let (code, _) = w.call(Method::DELETE, "/connectors/owned", None).await;
    assert_eq!(code, 409);
    // The guard: another site, a body that is not JSON, in Connect's shape.
    let client = reqwest::Client::new();
    let r = client
        .post(w.url("/connectors"))
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .body(r#"{"name": "x", "config": {}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error_code"], 403);
    let r = client
        .put(w.url("/connectors/x/config"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(r.json::<Value>().await.unwrap()["error_code"], 415);
    let (code, err) = w.call(Method::PUT, "/connectors", None).await;
    assert_eq!(code, 405);
    assert_eq!(err["error_code"], 405, "{err}");
    assert_eq!(
        w.get("/connectors").await,
        json!(["owned"]),
        "nothing was created"
    );
}

/// A job created natively comes back from Connect's config as the same job: its flat config,
/// sent again under another name, makes a job whose definition is the first one's.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_round_trips_through_its_flat_config() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;
    let toml = format!(
        r#"api_version = 1
name = "native"

[delivery]
commit_interval = "250ms"

[source]
type = "datagen"
count = 20
rate = 1000.5
seed = 7

[[sinks]]
name = "archive"
type = "file"
path = "{archive}"
batch = {{ max_records = 5, max_bytes = "4MiB", max_wait = "20ms" }}

[[sinks]]
name = "alerts"
type = "file"
path = "{alerts}"
batch = {{ max_bytes = 1048576 }}
when = {{ field = "temperature_c", gte = 90 }}

[errors]
tolerance = "all"
dead_letter = {{ type = "file", path = "{dlq}" }}
"#,
        archive = dir.path().join("a.jsonl").display(),
        alerts = dir.path().join("b.jsonl").display(),
        dlq = dir.path().join("dlq.jsonl").display(),
    );
    let (code, body) = w.call(Method::POST, "/jobs", Some(Body::Toml(toml))).await;
    assert_eq!(code, 201, "{body}");
    let mut flat = w.get("/connectors/native/config").await;
    assert_eq!(flat["source.rate"], "1000.5", "{flat}");
    assert_eq!(flat["sinks.1.when.gte"], "90", "{flat}");
    assert_eq!(flat["sinks.1.batch.max_bytes"], "1048576", "{flat}");
    flat["name"] = json!("copy");
    let (code, body) = w
        .call(
            Method::PUT,
            "/connectors/copy/config",
            Some(Body::Json(flat)),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let mut original = w.get("/jobs/native").await["definition"].clone();
    original["name"] = json!("copy");
    assert_eq!(w.get("/jobs/copy").await["definition"], original);
}

/// A client written for Kafka Connect drives the worker.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_connect_py_drives_the_worker() {
    let python = std::env::var("SLUICE_TEST_KAFKA_CONNECT_PY").expect(
        "SLUICE_TEST_KAFKA_CONNECT_PY is not set: run `bash scripts/services.sh up kafka-connect-py` \
         and source target/services.env",
    );
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    append(&input, 0, 5);
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;
    let config = file_config(&input, &output);
    let script = r#"
import json, sys, time
from kafka_connect import KafkaConnect

url, config = sys.argv[1], json.loads(sys.argv[2])
kc = KafkaConnect(url=url)

def state(name):
    return kc.get_connector_status(name)["connector"]["state"]

def until(name, wanted):
    deadline = time.time() + 30
    while state(name) != wanted:
        assert time.time() < deadline, (name, state(name), wanted)
        time.sleep(0.05)

info = kc.get_cluster_info()
assert info["version"] and "commit" in info and "kafka_cluster_id" in info, info
plugins = kc.list_connector_plugins()
assert {"file", "datagen"} <= {p["class"] for p in plugins}, plugins
checked = kc.validate_connector_config("datagen", {"connector.class": "datagen", "count": "x"})
assert checked["error_count"] == 1, checked

created = kc.create_connector({"name": "py", "config": config})
assert created["name"] == "py" and created["type"] == "source", created
assert kc.list_connectors() == ["py"]
until("py", "RUNNING")
assert kc.get_connector("py")["config"]["connector.class"] == "file"
assert kc.get_connector_config("py")["source.follow"] == "true"
assert kc.list_connectors(expand="status")["py"]["status"]["connector"]["state"] == "RUNNING"
assert kc.list_connectors(state="running") == ["py"]

kc.pause_connector("py")
assert state("py") == "PAUSED"
kc.resume_connector("py")
until("py", "RUNNING")
restarted = kc.restart_connector("py", include_tasks=True)
assert restarted["connector"]["state"] == "RUNNING", restarted
assert kc.restart_connector("py") is None
kc.restart_connector_task("py", 0)
assert kc.get_connector_task_status("py", 0)["state"] == "RUNNING"
assert kc.list_connector_tasks("py")[0]["id"] == {"connector": "py", "task": 0}

config["delivery.commit_interval"] = "300ms"
updated = kc.update_connector("py", config)
assert updated["config"]["delivery.commit_interval"] == "300ms", updated
kc.stop_connector("py")
assert state("py") == "STOPPED"
kc.delete_connector("py")
assert kc.list_connectors() == []
print("ok")
"#;
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&w.base)
        .arg(config.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kafka-connect-py failed:\n{text}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{text}");
    assert_eq!(lines(&output).len(), 5, "the job ran: {text}");
}

/// Connect's FAILED with its trace, and `onlyFailed` restarting exactly the failed connector.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_connector_shows_its_trace_and_only_failed_restarts_it() {
    let dir = tempfile::tempdir().unwrap();
    // The sink's path is a directory: opening it fails every time, and no retry can help.
    let not_a_file = dir.path().join("a-directory");
    std::fs::create_dir_all(&not_a_file).unwrap();
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;
    let config = json!({
        "connector.class": "datagen",
        "source.rate": "100",
        "sinks.0.type": "file",
        "sinks.0.path": not_a_file.display().to_string(),
    });
    let (code, body) = w
        .call(
            Method::POST,
            "/connectors",
            Some(Body::Json(json!({"name": "broken", "config": config}))),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let status = eventually("FAILED", Duration::from_secs(20), || async {
        let s = w.get("/connectors/broken/status").await;
        (s["connector"]["state"] == "FAILED").then_some(s)
    })
    .await;
    let trace = status["connector"]["trace"].as_str().expect("a trace");
    assert!(trace.contains("Is a directory"), "{status}");
    assert_eq!(status["tasks"][0]["state"], "FAILED", "{status}");
    assert_eq!(status["tasks"][0]["trace"], trace, "{status}");
    assert_eq!(
        w.get("/connectors?expand=status").await["broken"]["status"]["connector"]["state"],
        "FAILED"
    );
    assert_eq!(w.status("broken").await["restarts"], 1);

    // onlyFailed restarts it (through POST /jobs/{name}/restart's code): it fails once more.
    let (code, body) = w
        .call(
            Method::POST,
            "/connectors/broken/restart?onlyFailed=true&includeTasks=true",
            None,
        )
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["name"], "broken", "{body}");
    eventually("a second failed run", Duration::from_secs(20), || async {
        let s = w.status("broken").await;
        (s["restarts"] == 2 && s["state"] == "failed").then_some(())
    })
    .await;
}
