//! The worker's status page, rendered by a real browser: headless Chromium (Debian's
//! `chromium`, installed by `scripts/install-chromium.sh`) loads `/`, runs the page's script,
//! and the resulting DOM lists every job with its state.

mod worker_support;

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use worker_support::{Body, Worker, datagen_job, eventually, routed_job};

fn chromium() -> String {
    let bin = std::env::var("SLUICE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{bin}` was not found: the status-page test needs headless Chromium. \
         Install it with scripts/install-chromium.sh (or point SLUICE_CHROMIUM at a binary)."
    );
    bin
}

/// The DOM of `url` after its scripts ran (virtual time lets the first fetches complete).
fn dump_dom(bin: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_page_lists_jobs_with_state_in_a_browser() {
    let bin = chromium();
    let dir = tempfile::tempdir().unwrap();
    let plugins = worker_support::plugins_dist();
    let w = Worker::start_with_data(
        &dir.path().join("state"),
        dir.path(),
        &["--plugins-dir", &plugins],
    )
    .await;
    let (code, _) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(datagen_job(
                "sensors-east",
                &dir.path().join("e.jsonl"),
                200,
            ))),
        )
        .await;
    assert_eq!(code, 201);
    let (code, _) = w
        .call(
            Method::POST,
            "/jobs?initial_state=paused",
            Some(Body::Toml(datagen_job(
                "sensors-west",
                &dir.path().join("w.jsonl"),
                200,
            ))),
        )
        .await;
    assert_eq!(code, 201);
    // A finished job with a routed sink: the page shows what each sink wrote.
    let (code, _) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(routed_job("alerting", dir.path(), 500))),
        )
        .await;
    assert_eq!(code, 201);
    w.wait_state("sensors-east", "running").await;
    w.wait_state("alerting", "finished").await;
    let alerts = worker_support::seqs(&dir.path().join("alerts.jsonl")).len();

    // The page is served for browsers; API clients get JSON at the same URL.
    let html = w
        .request(Method::GET, "/")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<title>Sluice worker</title>"));

    let url = w.url("/");
    let dom = eventually(
        "the page to render both jobs",
        Duration::from_secs(60),
        || {
            let (bin, url) = (bin.clone(), url.clone());
            async move {
                let dom = tokio::task::spawn_blocking(move || dump_dom(&bin, &url))
                    .await
                    .unwrap();
                (dom.contains(r#"data-loaded="1""#)).then_some(dom)
            }
        },
    )
    .await;
    assert!(dom.contains(r#"<tr data-job="sensors-east">"#), "{dom}");
    assert!(dom.contains(r#"<tr data-job="sensors-west">"#), "{dom}");
    assert!(dom.contains(r#"class="state running">running<"#), "{dom}");
    assert!(dom.contains(r#"class="state paused">paused<"#), "{dom}");
    assert!(dom.contains("3 job(s)"), "{dom}");
    assert!(
        dom.contains(r#"<div data-sink="archive">archive 500</div>"#),
        "{dom}"
    );
    assert!(
        dom.contains(&format!(r#"<div data-sink="alerts">alerts {alerts}</div>"#)),
        "{dom}"
    );
}
