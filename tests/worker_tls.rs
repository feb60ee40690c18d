//! `sluice worker --tls-cert --tls-key`: the API over HTTPS, checked with curl (a client that is
//! not ours) against a certificate made by openssl for this test; plain HTTP on the same port
//! gets no answer, a bad key stops the worker with the file's name.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem).
fn certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is required (Debian package openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

fn worker(state: &Path, port: u16, cert: &str, key: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["worker", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--state-dir")
        .arg(state)
        .args(["--tls-cert", cert, "--tls-key", key])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl is required")
}

#[test]
fn the_api_is_served_over_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let port = free_port();
    let mut child = worker(&dir.path().join("state"), port, &cert, &key);
    let base = format!("https://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let out = curl(&["--cacert", &cert, &format!("{base}/readyz")]);
        if out.status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30) && child.try_wait().unwrap().is_none(),
            "the worker did not answer over HTTPS: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A job submitted and listed over HTTPS, verified against the CA (no -k).
    let job = "api_version = 1\nname = \"tls\"\n[source]\ntype = \"datagen\"\ncount = 10\n[[sinks]]\ntype = \"stdout\"\n";
    let out = curl(&[
        "--cacert",
        &cert,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "content-type: application/toml",
        "--data-binary",
        job,
        &format!("{base}/jobs"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201");
    let out = curl(&["--cacert", &cert, &format!("{base}/jobs")]);
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jobs[0]["name"], "tls", "{jobs}");
    // Without the CA the certificate is refused; plain HTTP gets no HTTP answer.
    assert!(!curl(&[&format!("{base}/jobs")]).status.success());
    let plain = curl(&[&format!("http://127.0.0.1:{port}/jobs")]);
    assert!(!plain.status.success(), "plain HTTP was answered");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_key_that_does_not_load_stops_the_worker_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = certificate(dir.path());
    let bad = dir.path().join("bad-key.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let child = worker(
        &dir.path().join("state"),
        free_port(),
        &cert,
        &bad.display().to_string(),
    );
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad-key.pem"), "{err}");
}
