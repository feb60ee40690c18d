//! The HTTP sink against the scripted webhook of `common` (a real HTTP server on 127.0.0.1):
//! retries on 5xx/429 honouring `Retry-After` in seconds and as an HTTP date, 4xx refusals
//! dead-lettered with the status and body, batching as a JSON array and NDJSON, headers and
//! credentials from `${env:...}`/`${file:...}` in a real job, and a whole job whose refused records reach
//! the dead-letter sink.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use common::{Reply, delivered_keys, received, script, url};
use sluice_core::testing::{MemSourceConnector, test_key, test_record};
use sluice_core::{
    BuildContext, Guarantee, Pipeline, Record, Registry, Sink, SinkContext, job::load_job_str,
};
use tokio_util::sync::CancellationToken;

fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    sluice_connector_http::register(&mut registry);
    registry
}

async fn make_sink(extra: &str, path: &str) -> Box<dyn Sink> {
    let text = format!("url = {:?}\nretry_backoff = \"100ms\"\n{extra}", url(path));
    let table: toml::Table = toml::from_str(&text).unwrap();
    let ctx = BuildContext::new("httptest", ".", ".", Guarantee::AtLeastOnce);
    let mut sink = registry()
        .sink("http")
        .unwrap()
        .build(table, &ctx)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let sctx = SinkContext {
        job: "httptest".into(),
        sink: "hook".into(),
        guarantee: Guarantee::AtLeastOnce,
    };
    sink.open(&sctx).await.unwrap();
    sink
}

fn records(n: u64) -> Vec<Record> {
    let p: sluice_core::Partition = std::sync::Arc::from("p0");
    (0..n).map(|seq| test_record(&p, seq)).collect()
}

fn keys(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(test_key).collect()
}

#[tokio::test]
async fn retries_5xx_and_429_waiting_as_retry_after_says() {
    let path = unique("retry");
    script(
        &path,
        [
            Reply::new(500, "boom"),
            Reply::new(429, "slow down").retry_after("1"),
        ],
    );
    let mut sink = make_sink("", &path).await;
    let report = sink.write(&records(1), None).await.unwrap();
    assert!(
        report.rejected.is_empty() && report.retry.is_empty(),
        "{report:?}"
    );
    let got = received(&path);
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![500, 429, 200]
    );
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(100),
        "backoff after the 500"
    );
    assert!(
        got[2].at - got[1].at >= Duration::from_secs(1),
        "Retry-After: 1 not honoured: {:?}",
        got[2].at - got[1].at
    );
    assert_eq!(delivered_keys(&path), keys(0..1));
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let path = unique("retry-date");
    // Two seconds ahead: an HTTP date has whole seconds, so at least one second remains.
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    script(&path, [Reply::new(503, "maintenance").retry_after(at)]);
    let mut sink = make_sink("", &path).await;
    let report = sink.write(&records(1), None).await.unwrap();
    assert!(report.retry.is_empty(), "{report:?}");
    let got = received(&path);
    assert_eq!(got.len(), 2);
    assert!(
        got[1].at - got[0].at >= Duration::from_secs(1),
        "waited only {:?}",
        got[1].at - got[0].at
    );
}

#[tokio::test]
async fn a_4xx_is_rejected_with_status_and_body_and_not_retried() {
    let path = unique("refused");
    script(
        &path,
        [Reply::new(
            422,
            r#"{"error":"unknown routing key","detail":"routing_key must be 32 characters"}"#,
        )],
    );
    let mut sink = make_sink("", &path).await;
    let report = sink.write(&records(2), None).await.unwrap();
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    let (i, reason) = &report.rejected[0];
    assert_eq!(*i, 0);
    assert!(reason.starts_with("HTTP 422"), "{reason}");
    assert!(
        reason.contains("routing_key must be 32 characters"),
        "{reason}"
    );
    assert!(report.retry.is_empty());
    assert_eq!(received(&path).len(), 2, "one try for each record");
    assert_eq!(delivered_keys(&path), keys(1..2));
}

#[tokio::test]
async fn values_that_are_not_json_are_rejected_unsent() {
    let path = unique("not-json");
    let mut sink = make_sink("", &path).await;
    let mut batch = records(2);
    batch[0].value = "not json".into();
    let report = sink.write(&batch, None).await.unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert!(report.rejected[0].1.contains("not valid JSON"));
    assert_eq!(received(&path).len(), 1);
}

#[tokio::test]
async fn batches_as_a_json_array_or_ndjson() {
    let path = unique("array");
    let mut sink = make_sink("encoding = \"json_array\"\nmax_records = 2", &path).await;
    sink.write(&records(5), None).await.unwrap();
    let got = received(&path);
    assert_eq!(got.len(), 3, "5 records, 2 per request");
    assert!(got.iter().all(|r| r.body.starts_with(b"[")));
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(delivered_keys(&path), keys(0..5));

    let path = unique("ndjson");
    let mut sink = make_sink("encoding = \"ndjson\"\nmax_records = 3", &path).await;
    sink.write(&records(5), None).await.unwrap();
    let got = received(&path);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].headers["content-type"], "application/x-ndjson");
    assert_eq!(got[0].body.iter().filter(|b| **b == b'\n').count(), 3);
    assert_eq!(delivered_keys(&path), keys(0..5));
}

#[tokio::test]
async fn a_refused_batch_rejects_its_records_only() {
    let path = unique("array-refused");
    script(&path, [Reply::new(200, "ok"), Reply::new(400, "bad batch")]);
    let mut sink = make_sink("encoding = \"json_array\"\nmax_records = 2", &path).await;
    let report = sink.write(&records(5), None).await.unwrap();
    assert_eq!(
        report.rejected.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(
        delivered_keys(&path),
        keys(0..2)
            .into_iter()
            .chain([test_key(4)])
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn tries_used_up_hand_the_rest_back_as_retry() {
    let path = unique("give-up");
    // The first request is delivered; the second fails twice (max_attempts = 2).
    script(
        &path,
        [
            Reply::new(200, "ok"),
            Reply::new(502, "bad gateway"),
            Reply::new(502, "bad gateway"),
        ],
    );
    let mut sink = make_sink(
        "encoding = \"ndjson\"\nmax_records = 2\nmax_attempts = 2",
        &path,
    )
    .await;
    let report = sink.write(&records(5), None).await.unwrap();
    assert_eq!(report.retry, vec![2, 3, 4], "{report:?}");
    assert_eq!(delivered_keys(&path), keys(0..2));

    // Nothing delivered: the write fails, retryable, with the real cause.
    let path = unique("give-up-all");
    script(&path, [Reply::new(503, "down"), Reply::new(503, "down")]);
    let mut sink = make_sink("max_attempts = 2", &path).await;
    let err = sink.write(&records(1), None).await.unwrap_err();
    assert!(err.retryable && err.message.contains("503"), "{err:?}");
    assert!(
        !err.message.contains(&path),
        "the URL's path is shown: {err}"
    );
}

#[tokio::test]
async fn a_retry_after_beyond_max_retry_wait_is_not_waited_for() {
    let path = unique("too-long");
    script(&path, [Reply::new(429, "later").retry_after("3600")]);
    let mut sink = make_sink("max_retry_wait = \"5s\"", &path).await;
    let started = std::time::Instant::now();
    let err = sink.write(&records(1), None).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        err.retryable && err.message.contains("max_retry_wait"),
        "{err}"
    );
}

#[tokio::test]
async fn unauthorized_fails_the_write_instead_of_dead_lettering() {
    let path = unique("denied");
    script(&path, [Reply::new(401, "bad token")]);
    let mut sink = make_sink("auth = { bearer = \"wrong\" }", &path).await;
    let err = sink.write(&records(1), None).await.unwrap_err();
    assert!(
        !err.retryable && err.field.as_deref() == Some("auth"),
        "{err:?}"
    );
    assert!(!err.message.contains("wrong"));
}

/// A whole job: a header from `${env:...}` and the bearer token from `${file:...}` reach the
/// server; a record the
/// webhook refuses reaches the dead-letter sink (another `http` sink) with status and body.
#[tokio::test]
async fn a_job_sends_env_credentials_and_dead_letters_refusals() {
    let main = unique("job-main");
    let dlq = unique("job-dlq");
    // The fourth request is refused.
    script(
        &main,
        [
            Reply::new(200, ""),
            Reply::new(200, ""),
            Reply::new(200, ""),
            Reply::new(400, r#"{"error":"missing summary"}"#),
        ],
    );
    let dir = std::env::temp_dir().join(unique("http-job"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "tok-123").unwrap();
    let job = format!(
        r#"
api_version = 1
name = "httpjob"
[delivery]
guarantee = "at-least-once"
[source]
type = "mem"
count = 6
batch = 3
[[sinks]]
type = "http"
url = "{main}"
headers = {{ "X-Api-Key" = "${{env:SLUICE_TEST_HTTP_UNSET_KEY:-key-456}}" }}
auth = {{ bearer = "${{file:token}}" }}
[errors]
tolerance = "all"
dead_letter = {{ type = "http", url = "{dlq}" }}
"#,
        main = url(&main),
        dlq = url(&dlq),
    );
    let mut registry = registry();
    registry.register_source::<MemSourceConnector>();
    let loaded = load_job_str(&job, "job.toml", &dir, Some(&dir.join("state")), &registry)
        .unwrap_or_else(|e| panic!("{e}"));
    let report = Pipeline::new(loaded, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.records_in, 6);
    let got = received(&main);
    assert_eq!(got.len(), 6);
    for r in &got {
        assert_eq!(r.headers["authorization"], "Bearer tok-123");
        assert_eq!(r.headers["x-api-key"], "key-456");
    }
    let mut delivered = delivered_keys(&main);
    delivered.sort();
    let mut want = keys(0..6);
    want.remove(3);
    assert_eq!(delivered, want);
    let dead = received(&dlq);
    assert_eq!(dead.len(), 1, "one dead letter");
    let text = String::from_utf8_lossy(&dead[0].body);
    assert!(
        text.contains("HTTP 400") && text.contains("missing summary"),
        "{text}"
    );
    assert!(text.contains(&test_key(3)), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
