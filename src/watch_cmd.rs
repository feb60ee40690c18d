//! `sluice tap` and `sluice top`: watch a worker's jobs live, over its REST API — sampled
//! records at a stage (like `vector tap`), and throughput per job and sink (like `vector top`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// Where the worker is, and how to get in.
#[derive(clap::Args)]
pub struct WorkerAddr {
    /// The worker's base URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8083",
        env = "SLUICE_WORKER_URL"
    )]
    pub worker: String,
    /// File holding the worker's bearer token (the worker's own `--token-file`).
    #[arg(long, env = "SLUICE_WORKER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// A client of one worker.
struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(addr: &WorkerAddr) -> anyhow::Result<Self> {
        if addr.worker.starts_with("https:") {
            bail!(
                "--worker {}: tap and top speak plain HTTP (a worker on loopback); HTTPS is not supported yet",
                addr.worker
            );
        }
        let token = match &addr.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the token file {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Self {
            http: reqwest::Client::new(),
            base: addr.worker.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the worker at {}", self.base))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or_default();
            let message = body["message"].as_str().unwrap_or("");
            bail!("{path}: {status} {message}");
        }
        Ok(resp)
    }

    async fn json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.get(path).await?.json().await?)
    }
}

/// `sluice tap` options.
#[derive(clap::Args)]
pub struct TapArgs {
    /// The job's name on the worker.
    pub job: String,
    /// Stages, comma-separated: `source`, `transform:<name>`, `sink:<name>`, `dead-letter`; a
    /// trailing `*` matches any rest (`sink:*`). Default: every stage.
    #[arg(long, default_value = "")]
    pub stage: String,
    /// Fraction of the records to print, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    pub sample: f64,
    /// Stop after this many records (default: until interrupted, or the job stops).
    #[arg(long)]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub addr: WorkerAddr,
}

/// States in which a job produces nothing until an operator acts.
const IDLE: [&str; 3] = ["paused", "stopped", "finished"];

/// Print sampled records as JSON lines on stdout until the limit, an interrupt, or the job
/// is paused, stopped, finished or deleted.
pub async fn tap(args: TapArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.addr)?;
    let job = encode(&args.job);
    let mut left = args.limit;
    let mut out = std::io::stdout().lock();
    loop {
        let state = client.json(&format!("/jobs/{job}/status")).await?;
        let state = state["state"].as_str().unwrap_or_default().to_string();
        if IDLE.contains(&state.as_str()) {
            eprintln!("sluice tap: job {:?} is {state}", args.job);
            return Ok(());
        }
        // The worker ends a stream after a while; ask again to go on.
        let limit = left.unwrap_or(100_000).min(100_000);
        let mut resp = client
            .get(&format!(
                "/jobs/{job}/tap?stage={}&sample={}&limit={limit}&seconds=60",
                encode(&args.stage),
                args.sample
            ))
            .await?;
        let mut pending = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let lost = serde_json::from_slice::<Value>(&line)
                    .ok()
                    .and_then(|v| v["lost"].as_u64());
                match lost {
                    Some(n) => eprintln!("sluice tap: {n} samples lost (printing too slowly)"),
                    None => {
                        if out.write_all(&line).and_then(|()| out.flush()).is_err() {
                            return Ok(()); // `| head` closed the pipe
                        }
                        if let Some(l) = left.as_mut() {
                            *l -= 1;
                            if *l == 0 {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `sluice top` options.
#[derive(clap::Args)]
pub struct TopArgs {
    /// Time between refreshes.
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration)]
    pub interval: Duration,
    /// Print one table (rates over one interval) and exit, instead of refreshing.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub addr: WorkerAddr,
}

/// One poll of a job's counters.
#[derive(Clone, Debug, Default)]
struct Sample {
    state: String,
    records_in: u64,
    records_out: u64,
    dead: u64,
    sinks: BTreeMap<String, u64>,
}

fn samples(jobs: &Value) -> BTreeMap<String, Sample> {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    jobs.as_array()
        .into_iter()
        .flatten()
        .map(|j| {
            let sinks = j["sinks_out"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), n(v)))
                .collect();
            let s = Sample {
                state: j["state"].as_str().unwrap_or_default().to_string(),
                records_in: n(&j["records_in"]),
                records_out: n(&j["records_out"]),
                dead: n(&j["dead_lettered"]),
                sinks,
            };
            (j["name"].as_str().unwrap_or_default().to_string(), s)
        })
        .collect()
}

/// The table: per job its state, records/s in and out, dead letters; per sink records/s.
fn table(before: &BTreeMap<String, Sample>, now: &BTreeMap<String, Sample>, secs: f64) -> String {
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs.max(1e-3);
    let mut o = format!(
        "{:<28} {:<10} {:>12} {:>12} {:>12} {:>10}\n",
        "JOB / SINK", "STATE", "IN/s", "OUT/s", "OUT TOTAL", "DEAD"
    );
    for (name, s) in now {
        let b = before.get(name).cloned().unwrap_or_default();
        o.push_str(&format!(
            "{:<28} {:<10} {:>12.0} {:>12.0} {:>12} {:>10}\n",
            name,
            s.state,
            rate(b.records_in, s.records_in),
            rate(b.records_out, s.records_out),
            s.records_out,
            s.dead
        ));
        for (sink, n) in &s.sinks {
            let was = b.sinks.get(sink).copied().unwrap_or(0);
            o.push_str(&format!(
                "  {:<26} {:<10} {:>12} {:>12.0} {:>12} {:>10}\n",
                sink,
                "",
                "",
                rate(was, *n),
                n,
                ""
            ));
        }
    }
    if now.is_empty() {
        o.push_str("(no jobs)\n");
    }
    o
}

/// Refresh a table of throughput per job and sink until interrupted (or once).
pub async fn top(args: TopArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.addr)?;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut before = samples(&client.json("/jobs").await?);
    let mut at = Instant::now();
    loop {
        tokio::time::sleep(args.interval).await;
        let now = samples(&client.json("/jobs").await?);
        let text = table(&before, &now, at.elapsed().as_secs_f64());
        at = Instant::now();
        let mut out = std::io::stdout().lock();
        // On a terminal, redraw in place; into a pipe, one table after another.
        let clear = if terminal && !args.once {
            "\x1b[H\x1b[2J"
        } else {
            ""
        };
        if write!(out, "{clear}{text}")
            .and_then(|()| out.flush())
            .is_err()
            || args.once
        {
            return Ok(());
        }
        before = now;
    }
}

/// Percent-encode a path segment or query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_over_the_interval() {
        let jobs = |n: u64| {
            serde_json::json!([{"name": "j", "state": "running", "records_in": n,
                "records_out": n, "dead_lettered": 1, "sinks_out": {"a": n}}])
        };
        let t = table(&samples(&jobs(100)), &samples(&jobs(600)), 0.5);
        assert!(t.contains("j "), "{t}");
        assert!(t.lines().nth(1).unwrap().contains(" 1000 "), "{t}");
        assert!(
            t.lines().nth(2).unwrap().trim_start().starts_with("a "),
            "{t}"
        );
    }

    #[test]
    fn stage_patterns_are_encoded() {
        assert_eq!(encode("sink:*,source"), "sink%3A%2A%2Csource");
    }
}
