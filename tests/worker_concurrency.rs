//! Many clients at once on one job name: random create / replace / delete / pause / resume /
//! stop requests race each other, then the API, `worker.db` and what actually runs must agree
//! (a job the API no longer lists writes nothing; one it lists is in the store with the same
//! desired state, and in that state), also after the worker restarts. No request may fail
//! with a server error.

mod worker_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::Value;
use worker_support::{Body, Worker, datagen_job, eventually};

const NAME: &str = "race";
const CLIENTS: u64 = 8;
const OPS_PER_CLIENT: usize = 6;
const ROUNDS: u64 = 3;

/// One random request; its status.
async fn random_op(worker: &Worker, out: &Path, rng: &mut StdRng) -> (String, u16) {
    // Two configs, so that a replace is a change half of the time.
    let rate = if rng.random_bool(0.5) { 200 } else { 300 };
    let job = || Body::Toml(datagen_job(NAME, out, rate));
    let (what, method, path, body) = match rng.random_range(0..6) {
        0 => ("create", Method::POST, "/jobs".to_string(), Some(job())),
        1 => (
            "replace",
            Method::PUT,
            format!("/jobs/{NAME}/config"),
            Some(job()),
        ),
        2 => ("delete", Method::DELETE, format!("/jobs/{NAME}"), None),
        3 => ("pause", Method::PUT, format!("/jobs/{NAME}/pause"), None),
        4 => ("resume", Method::PUT, format!("/jobs/{NAME}/resume"), None),
        _ => ("stop", Method::PUT, format!("/jobs/{NAME}/stop"), None),
    };
    let (status, _) = worker.call(method, &path, body).await;
    (what.to_string(), status)
}

/// `(desired)` of the job in `worker.db`, if it has a row.
async fn stored(state_dir: &Path) -> Option<String> {
    let url = format!("sqlite://{}?mode=ro", state_dir.join("worker.db").display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open worker.db");
    let row: Option<(String,)> = sqlx::query_as("SELECT desired FROM jobs WHERE name = ?")
        .bind(NAME)
        .fetch_optional(&pool)
        .await
        .expect("read worker.db");
    pool.close().await;
    row.map(|(d,)| d)
}

/// The job as `GET /jobs` lists it.
async fn listed(worker: &Worker) -> Option<Value> {
    let jobs = worker.get("/jobs").await;
    jobs.as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == NAME)
        .cloned()
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Whether the output file grows over a second and a half.
async fn writing(out: &Path) -> bool {
    let before = size(out);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    size(out) > before
}

/// API, store and the running set agree; the desired state it settled in (None: no job).
async fn check_agreement(worker: &Worker, out: &Path, round: u64) -> Option<String> {
    let api = listed(worker).await;
    let db = stored(&worker.state_dir).await;
    let api_desired = api
        .as_ref()
        .map(|j| j["desired"].as_str().unwrap().to_string());
    assert_eq!(
        api_desired,
        db,
        "round {round}: the API lists {api:?} but worker.db holds {db:?}\n{}",
        worker.log_tail()
    );
    match api_desired.as_deref() {
        None => assert!(
            !writing(out).await,
            "round {round}: job {NAME} is not listed but still writes\n{}",
            worker.log_tail()
        ),
        Some(desired) => {
            let state = match desired {
                "running" => "running",
                "paused" => "paused",
                _ => "stopped",
            };
            worker.wait_state(NAME, state).await;
            assert_eq!(
                writing(out).await,
                state == "running",
                "round {round}: job {NAME} is {state} but writing says otherwise\n{}",
                worker.log_tail()
            );
        }
    }
    api_desired
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_requests_on_one_name_leave_api_store_and_runs_in_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let out = dir.path().join("race.jsonl");
    let mut worker = Arc::new(Worker::start_with_data(&state_dir, dir.path(), &[]).await);
    for round in 0..ROUNDS {
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let worker = worker.clone();
            let out = out.clone();
            clients.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(round * 1000 + client);
                let mut seen = Vec::new();
                for _ in 0..OPS_PER_CLIENT {
                    seen.push(random_op(&worker, &out, &mut rng).await);
                }
                seen
            }));
        }
        for client in clients {
            for (what, status) in client.await.unwrap() {
                assert!(
                    matches!(status, 200..=299 | 404 | 409),
                    "round {round}: {what} answered {status}\n{}",
                    worker.log_tail()
                );
            }
        }
        let before = check_agreement(&worker, &out, round).await;

        // What the operator last asked for survives a restart of the worker.
        let mut owned = Arc::try_unwrap(worker).unwrap_or_else(|_| panic!("clients finished"));
        owned.terminate();
        worker = Arc::new(Worker::start_with_data(&state_dir, dir.path(), &[]).await);
        let after = eventually(
            "the stored jobs to be back",
            Duration::from_secs(30),
            || {
                let worker = worker.clone();
                async move {
                    let api = listed(&worker).await;
                    Some(api.map(|j| j["desired"].as_str().unwrap().to_string()))
                }
            },
        )
        .await;
        assert_eq!(before, after, "round {round}: the restart changed the job");
        check_agreement(&worker, &out, round).await;
    }
}
