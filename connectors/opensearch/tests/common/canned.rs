//! A tiny HTTP/1.1 server on 127.0.0.1 that answers with canned responses, for what the
//! emulator never does (429 back-pressure, 5xx items, whole-request failures, other versions).
//! Each request is recorded; `answer` picks the response of each.

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The `_bulk` actions of the body: (action, `_index`, `_id`).
    pub fn actions(&self) -> Vec<(String, String, String)> {
        let text = String::from_utf8_lossy(&self.body);
        let mut out = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let v: Value = serde_json::from_str(line).unwrap();
            let (action, meta) = v.as_object().unwrap().iter().next().unwrap();
            out.push((
                action.clone(),
                meta["_index"].as_str().unwrap().to_string(),
                meta["_id"].as_str().unwrap().to_string(),
            ));
            if action != "delete" {
                lines.next();
            }
        }
        out
    }

    /// The `_bulk` documents of the body by `_id` (`null` for a delete).
    pub fn documents(&self) -> Vec<(String, Value)> {
        let text = String::from_utf8_lossy(&self.body);
        let mut out = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let v: Value = serde_json::from_str(line).unwrap();
            let (action, meta) = v.as_object().unwrap().iter().next().unwrap();
            let doc = if action == "delete" {
                Value::Null
            } else {
                serde_json::from_str(lines.next().unwrap()).unwrap()
            };
            out.push((meta["_id"].as_str().unwrap().to_string(), doc));
        }
        out
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Answer = dyn Fn(&Request, usize) -> (u16, String) + Send + Sync;

/// A running canned server; it stops with the test's runtime.
pub struct Canned {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Canned {
    /// Start a server whose answer to the `n`-th request (from 0) is `answer(request, n)`.
    pub async fn start(
        answer: impl Fn(&Request, usize) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let answer: Arc<Answer> = Arc::new(answer);
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, answer.clone(), seen.clone()));
            }
        });
        Self { url, requests }
    }

    /// The requests to `path` so far.
    pub fn to(&self, path: &str) -> Vec<Request> {
        self.requests
            .lock()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

async fn serve(mut stream: TcpStream, answer: Arc<Answer>, seen: Arc<Mutex<Vec<Request>>>) {
    let mut buf = Vec::new();
    loop {
        // Headers.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_string();
        let path = first.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        buf.drain(..end + 4);
        while buf.len() < len {
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..len).collect();
        let request = Request {
            method,
            path,
            headers,
            body,
        };
        let n = {
            let mut seen = seen.lock();
            seen.push(request.clone());
            seen.len() - 1
        };
        let (status, body) = answer(&request, n);
        let response = format!(
            "HTTP/1.1 {status} Canned\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// What `GET /` answers on a cluster of `distribution` `number`.
pub fn root(distribution: &str, number: &str) -> String {
    json!({"name": "canned", "cluster_name": "canned", "tagline": "canned",
        "version": {"distribution": distribution, "number": number}})
    .to_string()
}

/// A `_bulk` response with one item per status, for the actions of `request`.
pub fn bulk_response(request: &Request, statuses: &[u16]) -> String {
    let actions = request.actions();
    assert_eq!(
        actions.len(),
        statuses.len(),
        "canned statuses for {actions:?}"
    );
    let items: Vec<Value> = actions
        .iter()
        .zip(statuses)
        .map(|((action, index, id), status)| {
            let mut item = json!({"_index": index, "_id": id, "status": status});
            match status {
                200..=299 => item["result"] = json!("created"),
                429 => {
                    item["error"] = json!({"type": "es_rejected_execution_exception",
                        "reason": "rejected execution: write queue is full"})
                }
                503 => {
                    item["error"] = json!({"type": "unavailable_shards_exception",
                        "reason": "primary shard is not active"})
                }
                _ => {
                    item["error"] = json!({"type": "mapper_parsing_exception",
                        "reason": "failed to parse field [seq]"})
                }
            }
            json!({ action.as_str(): item })
        })
        .collect();
    let errors = statuses.iter().any(|s| !(200..300).contains(s));
    json!({"took": 1, "errors": errors, "items": items}).to_string()
}
