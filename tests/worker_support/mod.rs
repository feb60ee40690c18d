//! Shared helpers of the worker tests: start a real `sluice worker` process on a free port,
//! talk to it over HTTP, wait on conditions with deadlines, read a file sink's output.
#![allow(dead_code)]

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `sluice worker`.
pub struct Worker {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its `--state-dir`.
    pub state_dir: PathBuf,
    log: PathBuf,
    token: Option<String>,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

impl Worker {
    /// Start a worker on `state_dir` with extra arguments, and wait until it is ready.
    pub async fn start(state_dir: &Path, extra: &[&str]) -> Worker {
        Self::start_with_token(state_dir, extra, None).await
    }

    /// Like [`Worker::start`], letting jobs submitted through the API name files under
    /// `data_dir` (`--data-dir`).
    pub async fn start_with_data(state_dir: &Path, data_dir: &Path, extra: &[&str]) -> Worker {
        let data = data_dir.to_str().expect("a UTF-8 data dir");
        let args: Vec<&str> = ["--data-dir", data]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        Self::start(state_dir, &args).await
    }

    /// Like [`Worker::start`]; requests carry `token` when given.
    pub async fn start_with_token(state_dir: &Path, extra: &[&str], token: Option<&str>) -> Worker {
        let port = free_port();
        let log = state_dir.with_extension(format!("{port}.log"));
        let log_file = std::fs::File::create(&log).expect("create the worker log");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("worker")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state-dir")
            .arg(state_dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start sluice worker");
        let worker = Worker {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            state_dir: state_dir.to_path_buf(),
            log,
            token: token.map(str::to_string),
        };
        let client = reqwest::Client::new();
        let url = worker.url("/readyz");
        eventually(
            "the worker to be ready",
            Duration::from_secs(30),
            || async {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => Some(()),
                    _ => None,
                }
            },
        )
        .await;
        worker
    }

    /// The full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the token (if any).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = reqwest::Client::new().request(method, self.url(path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Send a request and return (status, JSON body or `Value::Null`).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Body>,
    ) -> (u16, Value) {
        let mut r = self.request(method.clone(), path);
        r = match body {
            Some(Body::Toml(t)) => r.header("content-type", "application/toml").body(t),
            Some(Body::Json(v)) => r.json(&v),
            None => r,
        };
        let response = r
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log_tail()));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET a JSON document, asserting 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// GET a text document (metrics), asserting 200.
    pub async fn text(&self, path: &str) -> String {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response.text().await.unwrap_or_default()
    }

    /// A job's status.
    pub async fn status(&self, job: &str) -> Value {
        self.get(&format!("/jobs/{job}/status")).await
    }

    /// Wait until a job is in `state`.
    pub async fn wait_state(&self, job: &str, state: &str) -> Value {
        let path = format!("/jobs/{job}/status");
        eventually(
            &format!("job {job} to be {state}"),
            Duration::from_secs(30),
            || async {
                let (code, s) = self.call(reqwest::Method::GET, &path, None).await;
                (code == 200 && s["state"] == state).then_some(s)
            },
        )
        .await
    }

    /// Kill the process with SIGKILL (no shutdown at all).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 the worker");
            child.wait().expect("reap the worker");
        }
    }

    /// SIGTERM, then wait (with a deadline) for a clean exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("worker running");
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not stop after SIGTERM\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of the worker's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        format!(
            "--- worker log ({}) ---\n{}",
            self.log.display(),
            &text[start..]
        )
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A request body.
pub enum Body {
    /// TOML text.
    Toml(String),
    /// A JSON document.
    Json(Value),
}

/// Poll `check` every 50 ms until it returns `Some`, or panic after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A job: datagen at `rate` records/s into a JSON-lines file.
pub fn datagen_job(name: &str, out: &Path, rate: u32) -> String {
    format!(
        r#"api_version = 1
name = "{name}"

[delivery]
commit_interval = "200ms"

[source]
type = "datagen"
rate = {rate}
batch_size = 20

[[sinks]]
type = "file"
path = "{}"
batch = {{ max_records = 50, max_wait = "100ms" }}
"#,
        out.display()
    )
}

/// A bounded datagen job (`count` records) with an `archive` of everything and an `alerts` sink
/// routed by the header the bundled anomaly plugin sets on about 1% of the readings.
/// The bundled plugins (`scripts/build-plugins.sh` builds them): what a worker's
/// `--plugins-dir` names for the jobs of these tests.
pub fn plugins_dist() -> String {
    format!("{}/plugins/dist", env!("CARGO_MANIFEST_DIR"))
}

pub fn routed_job(name: &str, dir: &Path, count: u64) -> String {
    format!(
        r#"api_version = 1
name = "{name}"

[delivery]
commit_interval = "200ms"

[source]
type = "datagen"
count = {count}

[[transforms]]
plugin = "{plugins}/anomaly.wasm"
with = {{ field = "temperature_c", max = 90.0, header = "route", header_value = "alert" }}

[[sinks]]
name = "archive"
type = "file"
path = "{dir}/archive.jsonl"

[[sinks]]
name = "alerts"
type = "file"
path = "{dir}/alerts.jsonl"
when = {{ header = "route", equals = "alert" }}
"#,
        plugins = plugins_dist(),
        dir = dir.display()
    )
}

/// The `seq` of every line of a JSON-lines file (complete lines only).
pub fn seqs(path: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display()));
            v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {l}"))
        })
        .collect()
}

/// Assert that `seqs` holds every number from 0 to its maximum (duplicates allowed).
pub fn assert_no_gaps(seqs: &[u64]) -> u64 {
    assert!(!seqs.is_empty(), "no records written");
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let max = *sorted.last().unwrap();
    let missing: Vec<u64> = (0..=max)
        .filter(|s| sorted.binary_search(s).is_err())
        .take(20)
        .collect();
    assert!(
        missing.is_empty(),
        "records lost: missing seq {missing:?} (max {max})"
    );
    max
}
