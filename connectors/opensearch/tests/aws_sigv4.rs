//! `aws = { ... }`: requests signed with AWS SigV4 for Amazon OpenSearch Service and Serverless.
//!
//! No AWS runs here. The sink's requests are captured by the canned-response server
//! (`common::canned`) and each signature is recomputed by botocore, AWS's own Python signer
//! (the pinned venv of `scripts/msk-signer.sh`; the test fails without it), from the request
//! as received: same canonical request, same signature. The emulator (which ignores
//! signatures) then takes signed `_bulk` requests like any others.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use common::canned::{Canned, Request, bulk_response, root};
use common::{build, ctx, docs, open, unique, url};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sluice_core::{ErrorKind, Position, Record};

const KEY_ID: &str = "AKIDSLUICESIGV4";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "session/token+with=odd&chars";

fn record(value: &str, offset: i64) -> Record {
    Record::new(value.to_string(), Position::int(Arc::from("p"), offset))
}

fn signed_config(url: &str, index: &str, service: &str) -> String {
    format!(
        "url = '{url}'\nindex = '{index}'\n\
         aws = {{ region = 'eu-west-1', service = '{service}', auth = {{ access_key_id = '{KEY_ID}', secret_access_key = '{SECRET}', session_token = '{TOKEN}' }} }}"
    )
}

/// The python of the venv that holds botocore (installed once by the script).
fn botocore_python() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/msk-signer.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed (botocore is required): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// botocore's signature of `request` as the server received it.
fn botocore_signature(python: &str, base: &str, request: &Request, service: &str) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/aws/botocore_signature.py"
    );
    let input = json!({
        "method": request.method,
        "url": format!("{base}{}", request.path),
        "headers": request.headers,
        "body": String::from_utf8(request.body.clone()).unwrap(),
        "key_id": KEY_ID, "secret": SECRET, "token": TOKEN,
        "region": "eu-west-1", "service": service,
    });
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "botocore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["signature"].as_str().unwrap().to_string()
}

/// `Credential=...`, `SignedHeaders=...`, `Signature=...` of an Authorization header.
fn authorization(request: &Request) -> (String, Vec<String>, String) {
    let header = request.header("authorization").expect("a signed request");
    let rest = header
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .unwrap_or_else(|| panic!("not SigV4: {header}"));
    let mut parts = std::collections::HashMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').unwrap();
        parts.insert(k.to_string(), v.to_string());
    }
    (
        parts["Credential"].clone(),
        parts["SignedHeaders"]
            .split(';')
            .map(str::to_string)
            .collect(),
        parts["Signature"].clone(),
    )
}

#[tokio::test]
async fn every_request_is_signed_as_botocore_signs_it() {
    for service in ["es", "aoss"] {
        let canned = Canned::start(|r, _| match r.path.as_str() {
            "/" => (200, root("opensearch", "2.19.1")),
            _ => (200, bulk_response(r, &vec![201; r.actions().len()])),
        })
        .await;
        let mut sink = open("jobsig", &signed_config(&canned.url, "readings", service)).await;
        let batch: Vec<Record> = (0..3)
            .map(|i| record(&format!(r#"{{"n":{i},"text":"a b/c?d"}}"#), i))
            .collect();
        assert_eq!(sink.write(&batch, None).await.unwrap(), Default::default());
        sink.close().await.unwrap();

        let python = botocore_python();
        let requests = canned.requests.lock().clone();
        assert_eq!(requests.len(), 2, "GET / and one _bulk: {requests:?}");
        for request in &requests {
            let (credential, signed, signature) = authorization(request);
            assert!(
                credential.starts_with(&format!("{KEY_ID}/"))
                    && credential.ends_with(&format!("/eu-west-1/{service}/aws4_request")),
                "{credential}"
            );
            for name in [
                "host",
                "x-amz-date",
                "x-amz-content-sha256",
                "x-amz-security-token",
            ] {
                assert!(
                    signed.iter().any(|s| s == name),
                    "{name} unsigned: {signed:?}"
                );
            }
            assert_eq!(request.header("x-amz-security-token"), Some(TOKEN));
            // The payload hash is the body's (OpenSearch Serverless requires the header).
            let hash = hex(&Sha256::digest(&request.body));
            assert_eq!(request.header("x-amz-content-sha256"), Some(hash.as_str()));
            let theirs = botocore_signature(&python, &canned.url, request, service);
            assert_eq!(
                signature, theirs,
                "{} {}: our signature differs from botocore's",
                request.method, request.path
            );
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn credentials_that_cannot_load_fail_open_as_a_config_error() {
    let canned = Canned::start(|_, _| (200, root("opensearch", "2.19.1"))).await;
    let config = format!(
        "url = '{}'\nindex = 'i'\naws = {{ region = 'eu-west-1', auth = {{ access_key_id = 'AKIDX', secret_access_key = 'x', assume_role = 'arn:aws:iam::123456789012:role/sluice-none' }} }}",
        canned.url
    );
    let mut sink = build("jobnoprof", &config);
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        sink.open(&ctx("jobnoprof")),
    )
    .await
    .expect("open gives up within a minute")
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert_eq!(err.field.as_deref(), Some("aws.auth"), "{err}");
    assert!(canned.to("/").is_empty(), "nothing is sent unsigned");
}

#[tokio::test]
async fn signed_bulk_requests_land_in_the_emulator() {
    let index = unique("sigv4");
    let mut sink = open("jobsigv4", &signed_config(&url(), &index, "es")).await;
    let batch: Vec<Record> = (0..20)
        .map(|i| record(&format!(r#"{{"n":{i}}}"#), i))
        .collect();
    assert_eq!(sink.write(&batch, None).await.unwrap(), Default::default());
    sink.close().await.unwrap();
    assert_eq!(docs(&index).await.len(), 20);
}
