//! The HTTP sink: records POSTed as JSON, each request retried on its own.
//!
//! A write's records are checked (each value must be JSON; one that is not is rejected without
//! being sent), then sent in requests of one record (`encoding = "json"`) or up to
//! `max_records` (`"json_array"`, `"ndjson"`), in order. Each request is classified on its
//! own ([`crate::error::classify`]):
//!
//! - 2xx: delivered;
//! - 408, 429, 5xx, or no answer: tried again after the server's `Retry-After` (seconds or an
//!   HTTP date) or an exponential backoff, up to `max_attempts` tries. When the tries are used
//!   up, the write fails with a retryable error if nothing of it was delivered yet, or else
//!   reports the undelivered records as `retry`: the runtime backs off and sends those again;
//! - 401, 403, 407: the write fails with a configuration error (every record would be refused
//!   alike: stopping beats dead-lettering the whole stream);
//! - any other status: the request's records are rejected (dead letter) with the status and
//!   the start of the response body.
//!
//! At-least-once: a request whose answer was lost is sent again, so a receiver may see a record
//! twice. Requests carry no idempotency key; a receiver that needs one can take the record's
//! key or a field.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT,
};
use sha2::{Digest, Sha256};
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Record, Sink, SinkConnector, SinkContext,
    WriteReport, async_trait,
};

use crate::config::{Encoding, HttpSinkConfig, shown_url};
use crate::error::{Answer, classify, gave_up, unanswered};

/// The `http` sink type.
pub struct HttpSinkConnector;

impl SinkConnector for HttpSinkConnector {
    const TYPE: &'static str = "http";
    const DOC: &'static str = "JSON POSTed to a URL (webhooks: Slack, PagerDuty, ...); 429/5xx retried with Retry-After, other 4xx dead-lettered with the response.";
    type Config = HttpSinkConfig;

    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(HttpSink::new(config, ctx)?))
    }
}

/// How one request ended, after its tries.
enum Sent {
    Delivered,
    Refused(String),
    GaveUp(ConnectorError),
}

/// The HTTP sink.
pub struct HttpSink {
    client: reqwest::Client,
    url: reqwest::Url,
    /// `scheme://host:port`: what messages show of the URL.
    target: String,
    /// The URL's identity without its text (it may hold a secret).
    destination: String,
    headers: HeaderMap,
    encoding: Encoding,
    per_request: usize,
    max_attempts: u32,
    backoff: Duration,
    max_wait: Duration,
}

impl HttpSink {
    /// A sink for `config` (no I/O: a webhook cannot be probed without posting to it).
    pub fn new(config: HttpSinkConfig, ctx: &BuildContext) -> Result<Self, ConnectorError> {
        let url = config.validate()?;
        let target = shown_url(&config.url);
        let digest = Sha256::digest(config.url.as_bytes());
        let destination = format!(
            "{target}#{}",
            digest[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let mut headers = HeaderMap::new();
        let content_type = match config.encoding {
            Encoding::Json | Encoding::JsonArray => "application/json",
            Encoding::Ndjson => "application/x-ndjson",
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("sluice/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in &config.headers {
            let bad = || ConnectorError::config("not a valid header").at(format!("headers.{name}"));
            let name_h = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let mut value = HeaderValue::from_str(value).map_err(|_| bad())?;
            value.set_sensitive(true);
            headers.insert(name_h, value);
        }
        if let Some(auth) = &config.auth {
            let value = match (&auth.bearer, &auth.user, &auth.password) {
                (Some(token), None, None) => format!("Bearer {}", token.expose()),
                (None, Some(user), Some(password)) => {
                    use base64::Engine as _;
                    let raw = format!("{user}:{}", password.expose());
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    )
                }
                _ => {
                    return Err(ConnectorError::config(
                        "auth: set `bearer`, or `user` and `password`",
                    )
                    .at("auth"));
                }
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                ConnectorError::config("auth: not usable in a header (control characters?)")
                    .at("auth")
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(5)));
        if let Some(ca) = config.tls.as_ref().and_then(|t| t.ca_file.as_ref()) {
            let path = ctx.local_file("tls.ca_file", ca)?;
            let pem = std::fs::read(&path).map_err(|e| {
                ConnectorError::config(format!("tls.ca_file {}: {e}", path.display()))
                    .at("tls.ca_file")
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                ConnectorError::config(format!(
                    "tls.ca_file {}: not a PEM certificate: {e}",
                    path.display()
                ))
                .at("tls.ca_file")
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder.build().map_err(|e| {
            ConnectorError::config(format!("making the HTTP client: {e}")).caused_by(&e)
        })?;
        let per_request = match config.encoding {
            Encoding::Json => 1,
            Encoding::JsonArray | Encoding::Ndjson => config.max_records,
        };
        Ok(Self {
            client,
            url,
            target,
            destination,
            headers,
            encoding: config.encoding,
            per_request,
            max_attempts: config.max_attempts,
            backoff: config.retry_backoff.0,
            max_wait: config.max_retry_wait.0,
        })
    }

    /// The body of one request holding `records[i]` for each `i` in `chunk`.
    fn body(&self, records: &[Record], chunk: &[usize]) -> Bytes {
        let size: usize = chunk.iter().map(|&i| records[i].value.len() + 1).sum();
        match self.encoding {
            Encoding::Json => records[chunk[0]].value.clone(),
            Encoding::JsonArray => {
                let mut body = Vec::with_capacity(size + 2);
                body.push(b'[');
                for (n, &i) in chunk.iter().enumerate() {
                    if n > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(&records[i].value);
                }
                body.push(b']');
                Bytes::from(body)
            }
            Encoding::Ndjson => {
                let mut body = Vec::with_capacity(size);
                for &i in chunk {
                    body.extend_from_slice(trim_newlines(&records[i].value));
                    body.push(b'\n');
                }
                Bytes::from(body)
            }
        }
    }

    /// POST `body`, trying again on 408/429/5xx/no answer.
    async fn post(&self, body: Bytes) -> Result<Sent, ConnectorError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .client
                .post(self.url.clone())
                .headers(self.headers.clone())
                .body(body.clone())
                .send()
                .await;
            let answer = match sent {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(text) => classify(&self.target, status, &headers, &text),
                        Err(e) => unanswered(&self.target, e),
                    }
                }
                Err(e) => unanswered(&self.target, e),
            };
            let (wait, reason) = match answer {
                Answer::Done => return Ok(Sent::Delivered),
                Answer::Refused(reason) => return Ok(Sent::Refused(reason)),
                Answer::Denied(e) => return Err(e),
                Answer::Again { wait, reason } => (wait, reason),
            };
            if attempt >= self.max_attempts {
                return Ok(Sent::GaveUp(gave_up(reason, attempt)));
            }
            let wait = match wait {
                Some(w) if w > self.max_wait => {
                    return Ok(Sent::GaveUp(gave_up(
                        format!("{reason}; Retry-After {w:?} is longer than max_retry_wait"),
                        attempt,
                    )));
                }
                Some(w) => w,
                None => self
                    .backoff
                    .saturating_mul(1 << (attempt - 1).min(16))
                    .min(self.max_wait),
            };
            tracing::warn!(target = %self.target, attempt, wait_ms = wait.as_millis() as u64, %reason, "HTTP request failed for now; trying again.");
            tokio::time::sleep(wait).await;
        }
    }
}

/// A value without trailing line breaks (NDJSON puts exactly one after each).
fn trim_newlines(v: &[u8]) -> &[u8] {
    let mut end = v.len();
    while end > 0 && matches!(v[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &v[..end]
}

#[async_trait]
impl Sink for HttpSink {
    async fn open(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// `scheme://host:port#<hash of the URL>`: one destination per URL, never its path.
    fn destination(&self) -> Option<String> {
        Some(format!("http:{}", self.destination))
    }

    fn unchecked(&self) -> Vec<String> {
        vec![format!(
            "that {} answers and accepts the records (a webhook is not probed before the first write)",
            self.target
        )]
    }

    async fn write(
        &mut self,
        records: &[Record],
        _checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        let mut report = WriteReport::ok();
        let mut valid = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            match sluice_core::json::check_json(&r.value, sluice_core::json::DEFAULT_MAX_DEPTH) {
                Ok(_) => valid.push(i),
                Err(e) => report
                    .rejected
                    .push((i, format!("the value is not valid JSON: {e}"))),
            }
        }
        let chunks: Vec<&[usize]> = valid.chunks(self.per_request).collect();
        for (n, chunk) in chunks.iter().enumerate() {
            match self.post(self.body(records, chunk)).await? {
                Sent::Delivered => {}
                Sent::Refused(reason) => {
                    tracing::warn!(target = %self.target, records = chunk.len(), %reason, "The endpoint refused records; they go to the dead letter.");
                    report
                        .rejected
                        .extend(chunk.iter().map(|&i| (i, reason.clone())));
                }
                Sent::GaveUp(e) if n == 0 => return Err(e),
                Sent::GaveUp(e) => {
                    tracing::warn!(error = %e, "HTTP requests keep failing; the rest of the write goes back to the runtime.");
                    report
                        .retry
                        .extend(chunks[n..].iter().flat_map(|c| c.iter().copied()));
                    break;
                }
            }
        }
        report.rejected.sort_unstable_by_key(|(i, _)| *i);
        Ok(report)
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}
