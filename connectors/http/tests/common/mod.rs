//! A scripted webhook on 127.0.0.1 for the HTTP sink's tests: it records every request (path,
//! headers, body, time, the status it answered) and answers each path with the replies a test
//! queued for it, then 200. A body whose `seq` is not a number is answered 400 with a JSON
//! error (the record a webhook refuses for good).
//!
//! The server runs on its own thread and runtime for the whole test binary, so it outlives each
//! test's runtime, and a kill-loop child (another process) posts to the parent's server.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;

/// One answer the webhook gives.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (`Retry-After`).
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: String,
}

impl Reply {
    /// `status` with `body` and no extra header.
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    /// This reply with a `Retry-After: value` header.
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        self.headers.push(("retry-after", value.into()));
        self
    }
}

/// One request the webhook got.
#[derive(Clone, Debug)]
pub struct Request {
    /// When it arrived.
    pub at: Instant,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Default)]
struct Hook {
    script: HashMap<String, VecDeque<Reply>>,
    received: HashMap<String, Vec<Request>>,
}

type Shared = Arc<Mutex<Hook>>;

fn server() -> &'static (SocketAddr, Shared) {
    static SERVER: OnceLock<(SocketAddr, Shared)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let shared: Shared = Arc::default();
        let state = shared.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the webhook");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("binding the webhook on 127.0.0.1");
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/{*path}", post(answer))
                    .with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the webhook starts");
        (addr, shared)
    })
}

async fn answer(
    State(state): State<Shared>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut hook = state.lock();
    let reply = match hook.script.get_mut(&path).and_then(|q| q.pop_front()) {
        Some(reply) => reply,
        None if has_bad_seq(&body) => Reply::new(400, r#"{"error":"seq must be a number"}"#),
        None => Reply::new(200, r#"{"ok":true}"#),
    };
    hook.received.entry(path).or_default().push(Request {
        at: Instant::now(),
        headers,
        body,
        status: reply.status,
    });
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        reply.body.clone(),
    )
        .into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// Whether a body (one value, an array or NDJSON) holds a record whose `seq` is not a number.
fn has_bad_seq(body: &[u8]) -> bool {
    values(body)
        .iter()
        .any(|v| v.get("seq").is_some_and(|s| !s.is_number()))
}

/// The JSON values of a body: one value, the items of an array, or one per NDJSON line.
pub fn values(body: &[u8]) -> Vec<serde_json::Value> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(v) => vec![v],
        Err(_) => body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("an NDJSON line"))
            .collect(),
    }
}

/// The webhook URL of `path` (a fresh path per test keeps tests apart).
pub fn url(path: &str) -> String {
    format!("http://{}/{path}", server().0)
}

/// Queue replies for `path`, given in order before the default ones.
pub fn script(path: &str, replies: impl IntoIterator<Item = Reply>) {
    server()
        .1
        .lock()
        .script
        .entry(path.to_string())
        .or_default()
        .extend(replies);
}

/// Every request to `path` so far.
pub fn received(path: &str) -> Vec<Request> {
    server()
        .1
        .lock()
        .received
        .get(path)
        .cloned()
        .unwrap_or_default()
}

/// The `key` of every record in a 2xx-answered request to `path`, once per copy.
pub fn delivered_keys(path: &str) -> Vec<String> {
    received(path)
        .iter()
        .filter(|r| (200..300).contains(&r.status))
        .flat_map(|r| values(&r.body))
        .map(|v| {
            v["key"]
                .as_str()
                .unwrap_or_else(|| panic!("a record without a key: {v}"))
                .to_string()
        })
        .collect()
}
