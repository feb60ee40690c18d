//! Local paths of jobs submitted through the worker's API: files only under `--data-dir`,
//! plugins only under `--plugins-dir`, resolved before the check (`..`, symlinks); none at all
//! without the flags; no librdkafka property that loads code. Operator job files keep full
//! access. And the CLI refuses job names that would move the state directory, like the worker.

mod common;
mod worker_support;

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};
use worker_support::{Body, Worker, plugins_dist, seqs};

/// The status of a refused job config.
const INVALID: u16 = 422;

fn job(name: &str, sink: &str) -> String {
    format!(
        "api_version = 1\nname = \"{name}\"\n[source]\ntype = \"datagen\"\ncount = 20\n[[sinks]]\n{sink}\n"
    )
}

fn file_sink(path: &Path) -> String {
    format!("type = \"file\"\npath = \"{}\"", path.display())
}

/// POST a job and expect it refused at `field` with a message containing `says`.
async fn refused(w: &Worker, text: String, field: &str, says: &str) -> Value {
    let (code, err) = w.call(Method::POST, "/jobs", Some(Body::Toml(text))).await;
    assert_eq!(code, INVALID, "{err}");
    let hit = err["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == field)
        .unwrap_or_else(|| panic!("no error at {field}: {err}"))
        .clone();
    let message = hit["message"].as_str().unwrap();
    assert!(message.contains(says), "{field}: {message}");
    hit
}

#[tokio::test(flavor = "multi_thread")]
async fn api_jobs_name_files_only_under_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::symlink(dir.path(), data.join("link")).unwrap();
    std::fs::write(dir.path().join("outside.jsonl"), "{}\n").unwrap();
    let w = Worker::start_with_data(&dir.path().join("state"), &data, &[]).await;

    // Inside: absolute, and relative (resolved against the data dir).
    let (code, body) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(job(
                "inside",
                &file_sink(&data.join("out/a.jsonl")),
            ))),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(job(
                "relative",
                &file_sink(Path::new("rel.jsonl")),
            ))),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    w.wait_state("inside", "finished").await;
    w.wait_state("relative", "finished").await;
    assert_eq!(seqs(&data.join("out/a.jsonl")).len(), 20);
    assert_eq!(seqs(&data.join("rel.jsonl")).len(), 20);

    // Out by `..`, by a symlink, by an absolute path; a source, a SQLite file, a dead-letter
    // file: each at its own field, and nothing outside is created.
    let hit = refused(
        &w,
        job("dots", &file_sink(&data.join("../escape.jsonl"))),
        "sinks[0].path",
        "is outside the worker's --data-dir",
    )
    .await;
    assert!(hit["line"].as_u64().is_some(), "{hit}");
    refused(
        &w,
        job("linked", &file_sink(&data.join("link/escape.jsonl"))),
        "sinks[0].path",
        "is outside the worker's --data-dir",
    )
    .await;
    assert!(!dir.path().join("escape.jsonl").exists());
    let outside = dir.path().join("outside.jsonl");
    refused(
        &w,
        format!(
            "api_version = 1\nname = \"src\"\n[source]\ntype = \"file\"\npath = \"{}\"\n[[sinks]]\ntype = \"stdout\"\n",
            outside.display()
        ),
        "source.path",
        "outside",
    )
    .await;
    refused(
        &w,
        job(
            "lite",
            &format!(
                "type = \"sql\"\nurl = \"sqlite://{}\"\ntable = \"t\"\ncreate_table = true\nschema = [{{ name = \"seq\", type = \"BIGINT\" }}]",
                dir.path().join("x.db").display()
            ),
        ),
        "sinks[0].url",
        "outside",
    )
    .await;
    refused(
        &w,
        format!(
            "{}[errors]\ntolerance = \"all\"\ndead_letter = {{ type = \"file\", path = \"{}\" }}\n",
            job("dlq", &file_sink(&data.join("ok.jsonl"))),
            dir.path().join("dlq.jsonl").display()
        ),
        "errors.dead_letter.path",
        "outside",
    )
    .await;
    // The worker's own state is off limits even when the data dir holds it (tested below), and
    // a PUT is checked like a POST.
    let (code, err) = w
        .call(
            Method::PUT,
            "/jobs/put/config",
            Some(Body::Toml(job("put", &file_sink(&outside)))),
        )
        .await;
    assert_eq!(code, INVALID, "{err}");
    assert_eq!(err["errors"][0]["path"], "sinks[0].path", "{err}");

    // The connector validate endpoint is confined the same way.
    let (code, v) = w
        .call(
            Method::PUT,
            "/connector-plugins/file/config/validate?kind=sink",
            Some(Body::Json(json!({"path": outside.display().to_string()}))),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["error_count"], 1, "{v}");
    let path = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"]["name"] == "path")
        .expect("path is a setting");
    let message = path["value"]["errors"][0].as_str().unwrap();
    assert!(message.contains("outside"), "{v}");

    // So is a connector created through Kafka Connect's API: the same check, Connect's 400.
    let (code, err) = w
        .call(
            Method::POST,
            "/connectors",
            Some(Body::Json(json!({"name": "connect", "config": {
                "connector.class": "datagen",
                "sinks.0.type": "file",
                "sinks.0.path": outside.display().to_string(),
            }}))),
        )
        .await;
    assert_eq!(code, 400, "{err}");
    assert_eq!(err["error_code"], 400, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("sinks.0.path: path"),
        "{err}"
    );

    // Kafka: no certificate outside, no property that loads code or runs a command.
    let kafka = |name: &str, extra: &str| {
        job(
            name,
            &format!("type = \"kafka\"\nbrokers = \"127.0.0.1:9092\"\ntopic = \"t\"\n{extra}"),
        )
    };
    refused(
        &w,
        kafka(
            "kca",
            &format!("tls = {{ ca_file = \"{}\" }}", outside.display()),
        ),
        "sinks[0].tls.ca_file",
        "outside",
    )
    .await;
    for (property, says) in [
        ("plugin.library.paths", "loads shared libraries"),
        ("sasl.kerberos.kinit.cmd", "runs a shell command"),
        ("ssl.engine.location", "OpenSSL engine"),
    ] {
        refused(
            &w,
            kafka(
                "kprop",
                &format!("properties = {{ \"{property}\" = \"/x\" }}"),
            ),
            "sinks[0].properties",
            says,
        )
        .await;
    }
    refused(
        &w,
        kafka(
            "kfile",
            &format!(
                "properties = {{ \"ssl.crl.location\" = \"{}\" }}",
                outside.display()
            ),
        ),
        "sinks[0].properties",
        "outside",
    )
    .await;

    // A plugin outside --plugins-dir (this worker has none).
    refused(
        &w,
        format!(
            "api_version = 1\nname = \"plug\"\n[source]\ntype = \"datagen\"\n[[transforms]]\nplugin = \"{}/add-field.wasm\"\n[[sinks]]\ntype = \"stdout\"\n",
            plugins_dist()
        ),
        "transforms[0].plugin",
        "--plugins-dir",
    )
    .await;
    let jobs = w.get("/jobs").await;
    assert_eq!(
        jobs.as_array().unwrap().len(),
        2,
        "only the two inside: {jobs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_data_dir_api_jobs_name_no_file_but_operator_files_may() {
    let dir = tempfile::tempdir().unwrap();
    let jobs_dir = dir.path().join("jobs");
    std::fs::create_dir(&jobs_dir).unwrap();
    let operators = dir.path().join("operator.jsonl");
    std::fs::write(
        jobs_dir.join("operator.toml"),
        job("operator", &file_sink(&operators)),
    )
    .unwrap();
    let plugins = plugins_dist();
    let w = Worker::start(
        &dir.path().join("state"),
        &[
            "--jobs-dir",
            jobs_dir.to_str().unwrap(),
            "--plugins-dir",
            &plugins,
        ],
    )
    .await;
    w.wait_state("operator", "finished").await;
    assert_eq!(
        seqs(&operators).len(),
        20,
        "the operator's job file may write anywhere"
    );

    let hit = refused(
        &w,
        job("api", &file_sink(&dir.path().join("api.jsonl"))),
        "sinks[0].path",
        "this worker has none",
    )
    .await;
    assert!(
        hit["message"].as_str().unwrap().contains("--data-dir DIR"),
        "{hit}"
    );

    // No file named, a default dead-letter file in the job's own state, a plugin from the
    // plugins dir: accepted.
    let text = format!(
        "api_version = 1\nname = \"fine\"\n[source]\ntype = \"datagen\"\ncount = 5\n[[transforms]]\nplugin = \"{plugins}/add-field.wasm\"\nwith = {{ set = {{ via = \"api\" }} }}\n[[sinks]]\ntype = \"stdout\"\n[errors]\ntolerance = \"all\"\n"
    );
    let (code, body) = w.call(Method::POST, "/jobs", Some(Body::Toml(text))).await;
    assert_eq!(code, 201, "{body}");
    w.wait_state("fine", "finished").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_dir_is_off_limits_inside_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;
    refused(
        &w,
        format!(
            "{}\n",
            job(
                "db",
                &format!(
                    "type = \"sql\"\nurl = \"sqlite://{}\"\ntable = \"jobs\"",
                    w.state_dir.join("worker.db").display()
                )
            )
        ),
        "sinks[0].url",
        "inside the worker's state directory",
    )
    .await;
}

/// `sluice validate` and `sluice run` refuse a name that would put the state directory
/// elsewhere (`.sluice/..`), as the worker does.
#[test]
fn the_cli_refuses_job_names_that_leave_the_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["..", ".", "a/b", "..\\\\x"] {
        let job = common::write_job(
            dir.path(),
            "job.toml",
            &format!(
                "api_version = 1\nname = \"{name}\"\n[source]\ntype = \"datagen\"\ncount = 1\n[[sinks]]\ntype = \"stdout\"\n"
            ),
        );
        for command in ["validate", "run"] {
            let out = common::run(&[command, job.to_str().unwrap()]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command} {name:?}: {stderr}");
            assert!(
                stderr.contains("name: a job name is 1 to 128"),
                "{command} {name:?}: {stderr}"
            );
        }
    }
    assert!(
        !dir.path().join(".sluice").exists(),
        "no state directory was made"
    );
}
