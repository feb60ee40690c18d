//! The worker embedded in a program of its own: any registry of connectors, any plugin host,
//! a listener the program bound, stopped by a token instead of a signal.

use std::time::Duration;

use sluice_core::Registry;
use sluice_core::job::{NoTransforms, Toolkit};
use sluice_worker::{WorkerArgs, serve};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_worker_runs_jobs_and_stops_on_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut registry = Registry::new();
    sluice_connector_file::register(&mut registry);
    let args = WorkerArgs {
        listen: addr,
        state_dir: dir.path().join("state"),
        jobs_dir: None,
        token_file: None,
        allow_unauthenticated: false,
        allow_interpolation: None,
        data_dir: vec![dir.path().to_path_buf()],
        plugins_dir: vec![dir.path().to_path_buf()],
        tls_cert: None,
        tls_key: None,
    };
    let stop = CancellationToken::new();
    let worker = tokio::spawn(serve(
        listener,
        args,
        Toolkit::new(registry, NoTransforms),
        stop.clone(),
    ));

    let out = dir.path().join("out.jsonl");
    let job = format!(
        "api_version = 1\nname = \"embedded\"\n[source]\ntype = \"datagen\"\ncount = 250\n[[sinks]]\ntype = \"file\"\npath = \"{}\"\n",
        out.display()
    );
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let mut created = None;
    for _ in 0..100 {
        match client
            .post(format!("{base}/jobs"))
            .header("content-type", "application/toml")
            .body(job.clone())
            .send()
            .await
        {
            Ok(r) => {
                created = Some(r.status().as_u16());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(created, Some(201));
    let mut state = String::new();
    for _ in 0..200 {
        let status: serde_json::Value = client
            .get(format!("{base}/jobs/embedded/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        state = status["state"].as_str().unwrap_or_default().to_string();
        if state == "finished" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "finished");
    let lines = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(lines, 250);

    // This toolkit has no plugin host: a job with a transform is refused at creation.
    std::fs::write(dir.path().join("p.wasm"), b"not wasm").unwrap();
    let with_plugin = format!(
        "api_version = 1\nname = \"plug\"\n[source]\ntype = \"datagen\"\n[[transforms]]\nplugin = \"{}\"\n[[sinks]]\ntype = \"stdout\"\n",
        dir.path().join("p.wasm").display()
    );
    let refused = client
        .post(format!("{base}/jobs"))
        .header("content-type", "application/toml")
        .body(with_plugin)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["path"], "transforms[0].plugin", "{body}");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("the worker stops on its token")
        .unwrap()
        .unwrap();
}
