//! Helpers for end-to-end tests that drive the `sluice` binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn sluice() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_LOG", "warn")
        .env_remove("SLUICE_LOG_FORMAT");
    cmd
}

/// Write a job file into `dir`.
pub fn write_job(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, toml).unwrap();
    path
}

/// Run a command to completion, capturing output.
pub fn run(args: &[&str]) -> Output {
    sluice().args(args).output().expect("start sluice")
}

/// Start `sluice run JOB` in the background.
pub fn spawn_run(job: &Path) -> Child {
    sluice()
        .arg("run")
        .arg(job)
        .arg("--no-progress")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sluice")
}

/// Run `job` to its end within `deadline`; panic with its log when it fails.
pub fn run_job_ok(job: &Path, deadline: Duration) {
    let mut child = spawn_run(job);
    let status = wait_with_deadline(&mut child, deadline);
    assert!(status.success(), "{status}: {}", stderr_of(&mut child));
}

/// Wait for a child with a deadline; kill it and panic when it is exceeded.
pub fn wait_with_deadline(child: &mut Child, deadline: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            panic!("sluice did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stderr of a finished child.
pub fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// Generate `count` datagen records into a JSON-lines file (through sluice itself).
pub fn generate_input(dir: &Path, file: &str, count: u64) -> PathBuf {
    let job = write_job(
        dir,
        "gen.toml",
        &format!(
            "api_version = 1\nname = \"gen\"\n[source]\ntype = \"datagen\"\ncount = {count}\n[[sinks]]\ntype = \"file\"\npath = \"{file}\"\nfsync = false\n"
        ),
    );
    let out = sluice()
        .arg("run")
        .arg(&job)
        .arg("--no-progress")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generating input failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(file)
}

/// Count each `seq` in a JSON-lines file (and its rotated siblings `<file>.N`). Lines that are
/// not JSON are returned separately.
pub fn seq_counts(path: &Path) -> (BTreeMap<u64, u32>, Vec<String>) {
    let mut counts = BTreeMap::new();
    let mut bad = Vec::new();
    let mut files = vec![path.to_path_buf()];
    for n in 1.. {
        let p = PathBuf::from(format!("{}.{n}", path.display()));
        if !p.exists() {
            break;
        }
        files.push(p);
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            match serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["seq"].as_u64())
            {
                Some(seq) => *counts.entry(seq).or_insert(0) += 1,
                None => bad.push(line.to_string()),
            }
        }
    }
    (counts, bad)
}

/// Assert every seq in `0..n` is present; returns the number of duplicate deliveries.
pub fn assert_all_present(counts: &BTreeMap<u64, u32>, n: u64) -> u64 {
    let missing: Vec<u64> = (0..n)
        .filter(|s| !counts.contains_key(s))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "records lost: first missing seq values {missing:?}"
    );
    let extra: Vec<&u64> = counts.keys().filter(|s| **s >= n).take(5).collect();
    assert!(extra.is_empty(), "unexpected seq values {extra:?}");
    counts.values().map(|c| u64::from(c - 1)).sum()
}

/// Send a signal to a child.
pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Run `job` to completion, `kill -9`-ing it `kills` times at random moments (each run gets
/// 50–400 ms) before letting the last run finish. Returns how many kills landed mid-run; the
/// final run must succeed.
pub fn run_with_kills(job: &Path, kills: u32) -> u32 {
    run_with_kills_editing(job, kills, |_| {})
}

/// [`run_with_kills`], calling `before_run(kills so far)` before every start — e.g. to rewrite the
/// job file the way an operator edits it between a crash and a restart.
pub fn run_with_kills_editing(job: &Path, kills: u32, mut before_run: impl FnMut(u32)) -> u32 {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut landed = 0;
    for runs in 1.. {
        assert!(runs < 200, "the job never finished");
        before_run(landed);
        let mut child = spawn_run(job);
        std::thread::sleep(Duration::from_millis(rng.random_range(50..400)));
        if landed < kills && child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            landed += 1;
            continue;
        }
        let status = wait_with_deadline(&mut child, Duration::from_secs(300));
        assert!(
            status.success(),
            "final run failed: {}",
            stderr_of(&mut child)
        );
        break;
    }
    landed
}

/// A webhook on 127.0.0.1 that answers every request with 503 (a sink that is down after it
/// opened): its URL.
pub fn webhook_always_503() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                // One answer per read: the requests are small.
                while let Ok(n) = stream.read(&mut buf) {
                    let reply =
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown";
                    if n == 0 || stream.write_all(reply).is_err() {
                        break;
                    }
                }
            });
        }
    });
    url
}
