//! The worker under failure: `kill -9` while jobs run (they come back in their states and
//! continue without loss), and a broken job next to a healthy one.

mod worker_support;

use std::time::Duration;

use reqwest::Method;
use worker_support::{Body, Worker, assert_no_gaps, datagen_job, eventually, seqs};

#[tokio::test(flavor = "multi_thread")]
async fn jobs_resume_in_their_states_without_loss_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let steady = dir.path().join("steady.jsonl");
    let held = dir.path().join("held.jsonl");
    let parked = dir.path().join("parked.jsonl");

    let mut w = Worker::start_with_data(&state, dir.path(), &[]).await;
    for (name, out, initial) in [
        ("steady", &steady, "running"),
        ("held", &held, "running"),
        ("parked", &parked, "stopped"),
    ] {
        let path = format!("/jobs?initial_state={initial}");
        let (code, body) = w
            .call(
                Method::POST,
                &path,
                Some(Body::Toml(datagen_job(name, out, 400))),
            )
            .await;
        assert_eq!(code, 201, "{body}");
    }
    eventually("held to write", Duration::from_secs(20), || async {
        (seqs(&held).len() > 50).then_some(())
    })
    .await;
    let (code, _) = w.call(Method::PUT, "/jobs/held/pause", None).await;
    assert_eq!(code, 200);
    let held_before = seqs(&held).len();
    eventually(
        "steady to write and commit",
        Duration::from_secs(20),
        || async {
            let s = w.status("steady").await;
            let committed = s["source"]["partitions"][0]["offset"].as_u64().unwrap_or(0);
            (committed > 200).then_some(())
        },
    )
    .await;

    w.kill9();
    let max_before = seqs(&steady).into_iter().max().unwrap();

    let w = Worker::start_with_data(&state, dir.path(), &[]).await;
    w.wait_state("steady", "running").await;
    assert_eq!(w.status("held").await["state"], "paused");
    assert_eq!(w.status("parked").await["state"], "stopped");
    eventually(
        "steady to continue past the crash",
        Duration::from_secs(30),
        || async {
            let max = seqs(&steady).into_iter().max().unwrap_or(0);
            (max > max_before + 200).then_some(())
        },
    )
    .await;
    let (code, stopped) = w.call(Method::PUT, "/jobs/steady/stop", None).await;
    assert_eq!(code, 200, "{stopped}");

    // At-least-once: every record up to the last one is there (a crash may repeat some).
    let max = assert_no_gaps(&seqs(&steady));
    assert_eq!(
        stopped["source"]["partitions"][0]["offset"].as_u64(),
        Some(max),
        "the stop committed everything written"
    );
    assert_eq!(seqs(&held).len(), held_before, "a paused job stays paused");
    assert!(seqs(&parked).is_empty(), "a stopped job stays stopped");

    // The paused job resumes where it paused.
    let (code, _) = w.call(Method::PUT, "/jobs/held/resume", None).await;
    assert_eq!(code, 200);
    eventually("held to continue", Duration::from_secs(20), || async {
        (seqs(&held).len() > held_before + 50).then_some(())
    })
    .await;
    let (code, _) = w.call(Method::PUT, "/jobs/held/stop", None).await;
    assert_eq!(code, 200);
    let all = seqs(&held);
    assert_no_gaps(&all);
    let mut unique = all.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        all.len(),
        "pause committed everything: nothing replayed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_cannot_succeed_stays_failed_with_its_error_and_does_not_disturb_others() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jsonl");
    // The sink's path is a directory: opening it fails every time, and no retry can help.
    let not_a_file = dir.path().join("a-directory");
    std::fs::create_dir_all(&not_a_file).unwrap();
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;

    let (code, body) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(datagen_job("good", &good, 400))),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(datagen_job("broken", &not_a_file, 400))),
        )
        .await;
    assert_eq!(code, 201, "{body}");

    // Kafka Connect's FAILED: the error with whose fault it is, no retry scheduled.
    let broken = w.wait_state("broken", "failed").await;
    assert_eq!(broken["error"]["kind"], "external", "{broken}");
    assert_eq!(broken["error"]["retryable"], false, "{broken}");
    assert_eq!(broken["error"]["sink"], "file", "{broken}");
    assert!(broken["retry_in_ms"].is_null(), "{broken}");
    assert_eq!(broken["sinks"][0]["state"], "failed", "{broken}");
    let error = broken["last_error"].as_str().expect("the error is shown");
    assert!(error.contains("Is a directory"), "{error}");
    // It is not restarted behind the operator's back: the good job is the clock. 800 more
    // records at 400/s take 2 s, twice the first backoff a retry would have waited.
    let before = seqs(&good).len();
    eventually("good to keep writing", Duration::from_secs(20), || async {
        (seqs(&good).len() > before + 800).then_some(())
    })
    .await;
    let later = w.status("broken").await;
    assert_eq!(later["restarts"], 1, "{later}");
    assert_eq!(later["state"], "failed", "{later}");
    let metrics = w.text("/metrics").await;
    assert!(
        metrics.contains(r#"sluice_job_failure{job="broken",kind="external",retryable="false"} 1"#),
        "{metrics}"
    );
    let good_status = w.status("good").await;
    assert_eq!(good_status["state"], "running", "{good_status}");
    assert_eq!(good_status["restarts"], 0);
    assert!(good_status["last_error"].is_null());

    let jobs = w.get("/jobs").await;
    let listed = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "broken")
        .unwrap();
    assert!(listed["last_error"].is_string());
    assert_eq!(listed["error"]["kind"], "external");

    // `restart` retries on demand (and fails the same way: still nothing to write to).
    let (code, body) = w.call(Method::POST, "/jobs/broken/restart", None).await;
    assert!(code == 200 || code == 202, "{code} {body}");
    eventually(
        "the restart to run and fail again",
        Duration::from_secs(20),
        || async {
            let s = w.status("broken").await;
            (s["restarts"] == 2 && s["state"] == "failed").then_some(())
        },
    )
    .await;

    // Stopping the broken job works like for any job.
    let (code, stopped) = w.call(Method::PUT, "/jobs/broken/stop", None).await;
    assert_eq!(code, 200, "{stopped}");
    assert_eq!(stopped["state"], "stopped");
    assert_eq!(w.status("good").await["state"], "running");
}

/// A database that is down is a fault that may pass: the worker retries the job with backoff on
/// its own, and says so (kind, retryable, the driver's cause).
#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_database_is_down_is_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;
    // Nothing listens on port 1: every connection is refused.
    let job = r#"api_version = 1
name = "db-down"
[source]
type = "datagen"
count = 10
[[sinks]]
type = "sql"
url = "postgres://postgres@127.0.0.1:1/test"
table = "t"
create_table = true
schema = [{ name = "seq", type = "BIGINT", nullable = false }]
"#;
    let (code, body) = w
        .call(Method::POST, "/jobs", Some(Body::Toml(job.into())))
        .await;
    assert_eq!(code, 201, "{body}");
    let failed = w.wait_state("db-down", "failed").await;
    assert_eq!(failed["error"]["kind"], "external", "{failed}");
    assert_eq!(failed["error"]["retryable"], true, "{failed}");
    assert!(failed["retry_in_ms"].is_u64(), "{failed}");
    let text = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        text.to_lowercase().contains("connection refused"),
        "{failed}"
    );
    // Retried by the worker itself: 1 s, then 2 s.
    eventually(
        "the second failed attempt",
        Duration::from_secs(20),
        || async {
            let s = w.status("db-down").await;
            (s["restarts"].as_u64() >= Some(2)).then_some(())
        },
    )
    .await;
}
