//! The worker's REST API against a real `sluice worker` process: a job's whole lifecycle,
//! validation errors, auth on and off, the jobs directory, graceful shutdown.

mod worker_support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use worker_support::{
    Body, Worker, assert_no_gaps, datagen_job, eventually, plugins_dist, routed_job, seqs,
};

fn lines_with_seq(path: &std::path::Path, seq: u64) -> usize {
    seqs(path).into_iter().filter(|s| *s == seq).count()
}

/// A routed sink gets ~1% of the records: the summary, status and metrics say what each sink
/// wrote, and `records_out` counts the archive, not the fewest any sink wrote.
#[tokio::test(flavor = "multi_thread")]
async fn counts_are_per_sink_when_a_sink_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugins_dist();
    let w = Worker::start_with_data(
        &dir.path().join("state"),
        dir.path(),
        &["--plugins-dir", &plugins],
    )
    .await;
    let (code, job) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(routed_job("routed", dir.path(), 3000))),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    w.wait_state("routed", "finished").await;
    let alerts = seqs(&dir.path().join("alerts.jsonl")).len() as u64;
    assert!(alerts > 0 && alerts < 300, "about 1% are alerts: {alerts}");

    let jobs = w.get("/jobs").await;
    let summary = &jobs[0];
    assert_eq!(summary["records_out"], 3000, "{summary}");
    assert_eq!(
        summary["sinks_out"],
        json!({"archive": 3000, "alerts": alerts}),
        "{summary}"
    );
    let status = w.status("routed").await;
    assert_eq!(status["counters"]["records_out"], 3000, "{status}");
    assert_eq!(
        status["counters"]["sinks_out"]["alerts"], alerts,
        "{status}"
    );
    assert_eq!(status["sinks"][0]["routed"], false, "{status}");
    assert_eq!(status["sinks"][1]["name"], "alerts", "{status}");
    assert_eq!(status["sinks"][1]["routed"], true, "{status}");
    assert_eq!(status["sinks"][1]["records"], alerts, "{status}");

    let metrics = w.text("/metrics").await;
    for (sink, n) in [("archive", 3000), ("alerts", alerts)] {
        let line = format!(
            r#"sluice_records_total{{job="routed",stage="sink",sink="{sink}",outcome="out"}} {n}"#
        );
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn job_lifecycle_create_pause_resume_stop_reset_resume_delete() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("life.jsonl");
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;

    let root = w.get("/").await;
    assert_eq!(root["name"], "sluice");
    assert!(root["version"].is_string());

    // Create.
    let (code, job) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(datagen_job("life", &out, 400))),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    assert_eq!(job["name"], "life");
    assert_eq!(job["state"], "running");
    let (code, _) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(datagen_job("life", &out, 400))),
        )
        .await;
    assert_eq!(code, 409, "a second job of the same name conflicts");
    let jobs = w.get("/jobs").await;
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert_eq!(jobs[0]["name"], "life");

    // Status: running, with positions, sinks and counters.
    let status = eventually("records and a commit", Duration::from_secs(20), || async {
        let s = w.status("life").await;
        let moving = s["counters"]["records_out"].as_u64() > Some(50)
            && !s["source"]["partitions"].as_array().unwrap().is_empty();
        moving.then_some(s)
    })
    .await;
    assert_eq!(status["state"], "running");
    assert_eq!(status["source"]["type"], "datagen");
    assert_eq!(status["source"]["partitions"][0]["partition"], "datagen");
    assert_eq!(status["sinks"][0]["name"], "file");
    assert_eq!(status["sinks"][0]["state"], "running");
    assert!(status["last_error"].is_null());

    // Pause: drained and committed; nothing more is written.
    let (code, paused) = w.call(Method::PUT, "/jobs/life/pause", None).await;
    assert_eq!(code, 200, "{paused}");
    assert_eq!(paused["state"], "paused");
    let written = seqs(&out).len();
    let committed = paused["source"]["partitions"][0]["offset"]
        .as_u64()
        .unwrap();
    assert_eq!(
        committed + 1,
        written as u64,
        "pause commits everything written"
    );
    // Paused means the pipeline has ended: the worker's own count of what its sink wrote is
    // the file's, and stays so.
    let status = w.wait_state("life", "paused").await;
    assert_eq!(
        status["counters"]["records_out"], written as u64,
        "{status}"
    );
    assert_eq!(seqs(&out).len(), written, "a paused job writes nothing");
    let (code, err) = w
        .call(
            Method::PATCH,
            "/jobs/life/offsets",
            Some(Body::Json(
                json!({"offsets": [{"partition": "datagen", "offset": 3}]}),
            )),
        )
        .await;
    assert_eq!(code, 409, "offsets change only while stopped: {err}");
    assert_eq!(err["error"], "conflict");
    let (code, _) = w.call(Method::POST, "/jobs/life/restart", None).await;
    assert_eq!(code, 409, "a paused job is resumed, not restarted");

    // Resume: continues where it was.
    let (code, resumed) = w.call(Method::PUT, "/jobs/life/resume", None).await;
    assert_eq!(code, 200, "{resumed}");
    assert_eq!(resumed["state"], "running");
    eventually(
        "more records after resume",
        Duration::from_secs(20),
        || async { (seqs(&out).len() > written + 50).then_some(()) },
    )
    .await;

    // Stop, then inspect and reset the offsets.
    let (code, stopped) = w.call(Method::PUT, "/jobs/life/stop", None).await;
    assert_eq!(code, 200, "{stopped}");
    assert_eq!(stopped["state"], "stopped");
    let max = assert_no_gaps(&seqs(&out));
    assert_eq!(lines_with_seq(&out, 0), 1);
    let offsets = w.get("/jobs/life/offsets").await;
    assert_eq!(
        offsets["offsets"],
        json!([{"partition": "datagen", "offset": max}])
    );
    let (code, patched) = w
        .call(
            Method::PATCH,
            "/jobs/life/offsets",
            Some(Body::Json(
                json!({"offsets": [{"partition": "datagen", "offset": 9}]}),
            )),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(w.get("/jobs/life/offsets").await["offsets"][0]["offset"], 9);
    let (code, _) = w.call(Method::DELETE, "/jobs/life/offsets", None).await;
    assert_eq!(code, 200);
    assert_eq!(w.get("/jobs/life/offsets").await["offsets"], json!([]));

    // Resume after the reset: the source starts over from seq 0.
    let (code, _) = w.call(Method::PUT, "/jobs/life/resume", None).await;
    assert_eq!(code, 200);
    eventually(
        "seq 0 written again after the reset",
        Duration::from_secs(20),
        || async { (lines_with_seq(&out, 0) == 2).then_some(()) },
    )
    .await;

    // New config: the job restarts with it.
    let faster = datagen_job("life", &out, 500);
    let (code, updated) = w
        .call(
            Method::PUT,
            "/jobs/life/config",
            Some(Body::Toml(faster.clone())),
        )
        .await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["config"], faster);
    assert_eq!(updated["state"], "running");
    let text = w
        .request(Method::GET, "/jobs/life/config")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, faster);
    let (code, restarted) = w.call(Method::POST, "/jobs/life/restart", None).await;
    assert_eq!(code, 200, "{restarted}");
    assert_eq!(restarted["state"], "running");

    let metrics = w
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"sluice_records_total{job="life",stage="source",outcome="in"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"sluice_sink_write_seconds_count{job="life",sink="file"}"#));
    assert!(metrics.contains(r#"sluice_job_state{job="life",state="running"} 1"#));

    // Delete: stopped gracefully, gone with its state.
    let (code, _) = w.call(Method::DELETE, "/jobs/life", None).await;
    assert_eq!(code, 204);
    let (code, err) = w.call(Method::GET, "/jobs/life", None).await;
    assert_eq!(code, 404);
    assert_eq!(err["error"], "not_found");
    assert!(!w.state_dir.join("jobs/life/offsets.db").exists());
    let (code, _) = w.call(Method::PUT, "/jobs/life/pause", None).await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configs_get_per_field_errors() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugins_dist();
    let w = Worker::start_with_data(
        &dir.path().join("state"),
        dir.path(),
        &["--plugins-dir", &plugins],
    )
    .await;

    let (code, err) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml("api_version = 1\nname = \n".into())),
        )
        .await;
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["error"], "invalid_config");
    assert_eq!(err["errors"][0]["path"], "(syntax)");
    assert_eq!(err["errors"][0]["line"], 2);

    let bad = "api_version = 1\nname = \"bad\"\n[source]\ntype = \"datagen\"\nrte = 5\n\n[[sinks]]\ntype = \"nope\"\n";
    let (code, err) = w
        .call(Method::POST, "/jobs", Some(Body::Toml(bad.into())))
        .await;
    assert_eq!(code, 422, "{err}");
    let errors = err["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{err}");
    assert_eq!(errors[0]["path"], "source.rte", "{err}");
    assert_eq!(errors[0]["line"], 5);
    assert_eq!(errors[1]["path"], "sinks[0].type");
    assert_eq!(errors[1]["line"], 8);
    assert!(errors[1]["message"].as_str().unwrap().contains("nope"));
    assert_eq!(w.get("/jobs").await, json!([]), "nothing was created");

    // The worker assembles a job exactly as `sluice run` does: a plugin that rejects its
    // `with` table is a 422 at that key's line, not a job that fails forever.
    let plugin = format!("{}/add-field.wasm", plugins_dist());
    let rejected = format!(
        "api_version = 1\nname = \"plug\"\n[source]\ntype = \"datagen\"\n[[transforms]]\nplugin = \"{plugin}\"\nwith = {{ rename = {{ a = 5 }} }}\n[[sinks]]\ntype = \"stdout\"\nwhen = {{ header = \"route\" }}\n"
    );
    let (code, err) = w
        .call(Method::POST, "/jobs", Some(Body::Toml(rejected)))
        .await;
    assert_eq!(code, 422, "{err}");
    assert_eq!(
        err["errors"][0]["path"], "transforms[0].with.rename.a",
        "{err}"
    );
    assert_eq!(err["errors"][0]["line"], 7, "{err}");
    assert_eq!(w.get("/jobs").await, json!([]), "nothing was created");

    // JSON is accepted, converted to the same model and kept as TOML.
    let out = dir.path().join("json.jsonl");
    let job = json!({
        "api_version": 1,
        "name": "from-json",
        "source": {"type": "datagen", "count": 10},
        "sinks": [{"type": "file", "path": out}],
    });
    let (code, created) = w.call(Method::POST, "/jobs", Some(Body::Json(job))).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["definition"]["source"]["count"], 10);
    w.wait_state("from-json", "finished").await;
    assert_eq!(seqs(&out), (0..10).collect::<Vec<_>>());
    let (code, err) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Json(
                json!({"api_version": 1, "name": "n", "source": {"type": "datagen", "rate": null}}),
            )),
        )
        .await;
    assert_eq!(code, 422);
    assert_eq!(err["errors"][0]["path"], "source.rate");

    // The URL and the config must agree on the name.
    let (code, err) = w
        .call(
            Method::PUT,
            "/jobs/other/config",
            Some(Body::Toml(datagen_job("mismatch", &out, 10))),
        )
        .await;
    assert_eq!(code, 422);
    assert_eq!(err["errors"][0]["path"], "name");

    // Connector types (Kafka Connect's plugins) and their schemas; validation of one connector
    // config, in Connect's shapes.
    let plugins = w.get("/connector-plugins").await;
    let datagen = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "datagen" && c["type"] == "source")
        .expect("datagen listed");
    assert!(datagen["version"].is_string(), "{datagen}");
    assert!(
        datagen["schema"]["properties"]["rate"].is_object(),
        "{datagen}"
    );
    let (code, v) = w
        .call(
            Method::PUT,
            "/connector-plugins/datagen/config/validate",
            Some(Body::Json(
                json!({"connector.class": "datagen", "count": "5"}),
            )),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["name"], "datagen", "{v}");
    assert_eq!(v["error_count"], 0, "{v}");
    assert_eq!(v["groups"], json!(["Source"]), "{v}");
    let count = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["definition"]["name"] == "count")
        .expect("count is a setting");
    assert_eq!(count["definition"]["type"], "LONG", "{count}");
    assert_eq!(count["value"]["value"], "5", "{count}");
    assert_eq!(count["value"]["errors"], json!([]), "{count}");
    let (code, v) = w
        .call(
            Method::PUT,
            "/connector-plugins/file/config/validate?kind=sink",
            Some(Body::Json(
                json!({"path": "x", "batch.max_bytes": "lots", "colour": "1"}),
            )),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["error_count"], 2, "{v}");
    let errors_of = |key: &str| -> Vec<Value> {
        v["configs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                c["value"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(key))
            })
            .flat_map(|c| c["value"]["errors"].as_array().unwrap().clone())
            .collect()
    };
    assert_eq!(errors_of("batch.max_bytes").len(), 1, "{v}");
    assert_eq!(errors_of("colour").len(), 1, "{v}");
    // Every runtime setting of a sink is accepted, `when` included (read from `SinkCommon`).
    let (code, v) = w
        .call(
            Method::PUT,
            "/connector-plugins/file/config/validate?kind=sink",
            Some(Body::Json(
                json!({"path": "x", "when.header": "route", "when.equals": "alert"}),
            )),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["error_count"], 0, "{v}");
    let (code, err) = w
        .call(
            Method::PUT,
            "/connector-plugins/file/config/validate",
            Some(Body::Json(json!({}))),
        )
        .await;
    assert_eq!(
        code, 400,
        "file is both a source and a sink: kind is needed"
    );
    assert_eq!(err["error_code"], 400, "{err}");
    let (code, _) = w
        .call(
            Method::PUT,
            "/connector-plugins/nope/config/validate",
            Some(Body::Json(json!({}))),
        )
        .await;
    assert_eq!(code, 404);
    let (code, err) = w.call(Method::DELETE, "/connector-plugins", None).await;
    assert_eq!(code, 405);
    assert_eq!(err["error_code"], 405);
    let (code, err) = w
        .call(
            Method::POST,
            "/jobs?initial_state=sideways",
            Some(Body::Toml(String::new())),
        )
        .await;
    assert_eq!(code, 400, "{err}");
    assert_eq!(err["error"], "bad_request");
    // 400 stays for requests that are not a job config at all; 422 is for configs.
    let r = w
        .request(Method::POST, "/jobs")
        .header("content-type", "application/toml")
        .body(vec![0xff, 0xfe, b'a'])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a body that is not UTF-8");
    let (code, err) = w
        .call(Method::POST, "/jobs", Some(Body::Json(json!([1, 2]))))
        .await;
    assert_eq!(code, 400, "a JSON body that is not an object: {err}");
    assert_eq!(err["error"], "bad_request");

    let openapi = w.get("/openapi.json").await;
    assert!(openapi["paths"]["/jobs/{name}/offsets"]["patch"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_is_required_everywhere_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let w = Worker::start_with_token(
        &dir.path().join("state"),
        &["--token-file", token_file.to_str().unwrap()],
        Some("s3cret-token"),
    )
    .await;
    let anon = reqwest::Client::new();
    for path in ["/", "/jobs", "/metrics", "/jobs/x/status", "/openapi.json"] {
        let r = anon.get(w.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
        let r = anon
            .get(w.url(path))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong token");
    }
    // Kafka Connect's routes too, in Connect's error shape.
    for path in ["/connectors", "/connector-plugins", "/connectors/x/status"] {
        let r = anon.get(w.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_code"], 401, "{path}: {body}");
    }
    let r = anon.post(w.url("/jobs")).body("x").send().await.unwrap();
    assert_eq!(r.status(), 401);
    for path in ["/healthz", "/readyz"] {
        let r = anon.get(w.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} needs no token");
    }
    assert_eq!(w.get("/jobs").await, json!([]));
    let (code, _) = w.call(Method::GET, "/jobs/x/status", None).await;
    assert_eq!(code, 404, "with the token the request goes through");

    // A second worker on the same state directory is refused.
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["worker", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&w.state_dir)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another worker"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // Without --token-file no request needs one.
    let open = Worker::start(&dir.path().join("open-state"), &[]).await;
    let r = anon.get(open.url("/jobs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_dir_files_are_loaded_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(
        jobs.join("a.toml"),
        datagen_job("a", &dir.path().join("a.jsonl"), 100),
    )
    .unwrap();
    std::fs::write(jobs.join("notes.txt"), "not a job").unwrap();
    let w = Worker::start(
        &dir.path().join("state"),
        &["--jobs-dir", jobs.to_str().unwrap()],
    )
    .await;

    let listed = w.get("/jobs").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "a");
    assert_eq!(listed[0]["origin"], "jobs-dir");
    w.wait_state("a", "running").await;

    // Added.
    std::fs::write(
        jobs.join("b.toml"),
        datagen_job("b", &dir.path().join("b.jsonl"), 100),
    )
    .unwrap();
    w.wait_state("b", "running").await;
    // Changed.
    let changed = datagen_job("a", &dir.path().join("a.jsonl"), 150);
    std::fs::write(jobs.join("a.toml"), &changed).unwrap();
    eventually("a's new definition", Duration::from_secs(10), || async {
        let job = w.get("/jobs/a").await;
        (job["config"] == changed.as_str()).then_some(())
    })
    .await;
    // An invalid file is skipped; the running version stays.
    std::fs::write(jobs.join("a.toml"), "api_version = 1\nname = \"a\"\n").unwrap();
    // Removed.
    std::fs::remove_file(jobs.join("b.toml")).unwrap();
    eventually("b to be deleted", Duration::from_secs(10), || async {
        let (code, _) = w.call(Method::GET, "/jobs/b", None).await;
        (code == 404).then_some(())
    })
    .await;
    assert_eq!(w.get("/jobs/a").await["config"], changed.as_str());
    assert_eq!(w.status("a").await["state"], "running");

    // File jobs are changed through their file; state changes work as usual.
    let (code, err) = w.call(Method::DELETE, "/jobs/a", None).await;
    assert_eq!(code, 409, "{err}");
    let (code, _) = w
        .call(
            Method::PUT,
            "/jobs/a/config",
            Some(Body::Toml(changed.clone())),
        )
        .await;
    assert_eq!(code, 409);
    let (code, _) = w.call(Method::PUT, "/jobs/a/pause", None).await;
    assert_eq!(code, 200);

    // Files removed or added while the worker is down are noticed at start.
    let mut w = w;
    assert!(w.terminate().success());
    std::fs::remove_file(jobs.join("a.toml")).unwrap();
    std::fs::write(
        jobs.join("c.toml"),
        datagen_job("c", &dir.path().join("c.jsonl"), 100),
    )
    .unwrap();
    let w = Worker::start(
        &dir.path().join("state"),
        &["--jobs-dir", jobs.to_str().unwrap()],
    )
    .await;
    let names: Vec<Value> = w
        .get("/jobs")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("c")]);
    w.wait_state("c", "running").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_commits_every_job() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let mut w = Worker::start_with_data(&state, dir.path(), &[]).await;
    for (name, out) in [("a", &a), ("b", &b)] {
        let (code, body) = w
            .call(
                Method::POST,
                "/jobs",
                Some(Body::Toml(datagen_job(name, out, 300))),
            )
            .await;
        assert_eq!(code, 201, "{body}");
    }
    eventually("both jobs writing", Duration::from_secs(20), || async {
        (seqs(&a).len() > 100 && seqs(&b).len() > 100).then_some(())
    })
    .await;
    let status = w.terminate();
    assert!(status.success(), "worker exit: {status}\n{}", w.log_tail());

    // Everything written was committed: after a restart no record is written twice.
    let before = (seqs(&a).len(), seqs(&b).len());
    let w = Worker::start_with_data(&state, dir.path(), &[]).await;
    eventually(
        "both jobs writing again",
        Duration::from_secs(20),
        || async {
            (seqs(&a).len() > before.0 + 50 && seqs(&b).len() > before.1 + 50).then_some(())
        },
    )
    .await;
    for (name, out) in [("a", &a), ("b", &b)] {
        let (code, _) = w
            .call(Method::PUT, &format!("/jobs/{name}/stop"), None)
            .await;
        assert_eq!(code, 200);
        let all = seqs(out);
        assert_no_gaps(&all);
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            all.len(),
            "job {name}: a graceful shutdown replays nothing"
        );
    }
}

/// What an API caller may not do by default: read the worker's environment or files through
/// `${...}`, see a secret echoed in an error, submit from another web site or as `text/plain`,
/// reach the worker through a foreign host name, or pick a name the state directory cannot hold.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_are_refused_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("count"), "s3cr3t-value\n").unwrap();
    let allow = format!("file:{}", secrets.display());
    let w = Worker::start(
        &dir.path().join("state"),
        &["--allow-interpolation", &allow],
    )
    .await;
    let job = |name: &str, count: &str| {
        format!(
            "api_version = 1\nname = \"{name}\"\n[source]\ntype = \"datagen\"\ncount = {count}\n[[sinks]]\ntype = \"stdout\"\n"
        )
    };

    // The worker's environment and files outside the allowed directory stay unread.
    for (reference, shown) in [
        ("${env:PATH}", "${env:PATH}"),
        ("${file:/etc/hostname}", "${file:/etc/hostname}"),
    ] {
        let (code, err) = w
            .call(
                Method::POST,
                "/jobs",
                Some(Body::Toml(job("peek", &format!("\"{reference}\"")))),
            )
            .await;
        assert_eq!(code, 422, "{err}");
        let message = err["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{shown}: this worker does not let")),
            "{message}"
        );
        assert_eq!(err["errors"][0]["path"], "source.count");
    }
    // An allowed file is read, and the error about its value names the reference, not the value.
    let reference = format!("${{file:{}}}", secrets.join("count").display());
    let (code, err) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(job("echo", &format!("\"{reference}\"")))),
        )
        .await;
    assert_eq!(code, 422, "{err}");
    let shown = err.to_string();
    assert!(!shown.contains("s3cr3t"), "the secret is echoed: {shown}");
    assert!(shown.contains(&reference.replace('\\', "\\\\")), "{shown}");

    // Bodies that a cross-site form can send, and requests from another origin.
    let client = reqwest::Client::new();
    let r = client
        .post(w.url("/jobs"))
        .header("content-type", "text/plain")
        .body(job("plain", "3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = client
        .post(w.url("/jobs"))
        .header("content-type", "application/toml")
        .header("origin", "https://evil.example")
        .body(job("cross", "3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .post(w.url("/jobs/x/restart"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // DNS rebinding: a loopback worker answers only to loopback names.
    let r = client
        .get(w.url("/jobs"))
        .header("host", "evil.example:8083")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Names a state directory cannot hold.
    for name in ["..", &"n".repeat(300)] {
        let (code, err) = w
            .call(Method::POST, "/jobs", Some(Body::Toml(job(name, "3"))))
            .await;
        assert_eq!(code, 422, "{name}: {err}");
        assert_eq!(err["errors"][0]["path"], "name");
    }
    assert_eq!(w.get("/jobs").await, json!([]), "nothing was created");

    // Open to the network without a token: refused at start.
    let open = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["worker", "--listen", "0.0.0.0:0", "--state-dir"])
        .arg(dir.path().join("open-state"))
        .output()
        .unwrap();
    assert!(!open.status.success());
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert!(stderr.contains("without a token"), "{stderr}");
}
