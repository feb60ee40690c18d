//! The OpenAPI document and the router are one list (`api::routes`): every operation the
//! document describes is served (the router's own fallbacks never answer it), and the document
//! is complete in what every route shares.

use sluice_core::Registry;
use sluice_core::job::{NoTransforms, Toolkit};
use sluice_worker::{WorkerArgs, serve};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_is_routed() {
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
        plugins_dir: Vec::new(),
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
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let mut doc = None;
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/openapi.json")).send().await {
            doc = Some(r.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let doc = doc.expect("the worker answers");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        // A job, a connector type and a task that do not exist: the handler answers 404 itself.
        let url = format!(
            "{base}{}",
            path.replace("{name}", "nope")
                .replace("{plugin}", "nope")
                .replace("{task}", "0")
        );
        for (method, op) in item.as_object().unwrap() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let mut request = client.request(method.clone(), &url);
            if op.get("requestBody").is_some() {
                request = request
                    .header("content-type", "application/json")
                    .body("{}");
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !(status == 404 && body["message"] == "no such endpoint"),
                "{method} {path} is documented but not routed"
            );
            let documented = op["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(&status.to_string()),
                "{method} {path} answered {status}, which its responses do not list: {body}"
            );
            if path != "/healthz" && path != "/readyz" {
                assert!(documented.contains_key("401"), "{method} {path}: no 401");
                assert!(documented.contains_key("403"), "{method} {path}: no 403");
            }
            operations += 1;
        }
    }
    assert!(
        operations > 0 && paths.contains_key("/jobs/{name}/offsets"),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );

    stop.cancel();
    worker.await.unwrap().unwrap();
}
