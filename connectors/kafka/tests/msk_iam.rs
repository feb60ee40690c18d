//! MSK IAM tokens against AWS's reference signer, and librdkafka's OAUTHBEARER refresh callback
//! taking them.
//!
//! No MSK runs here. The token is checked against `aws-msk-iam-sasl-signer-python` (pinned,
//! in a venv `scripts/msk-signer.sh` makes; the test fails if it cannot): same credentials,
//! region and a fixed clock must give the same decoded URL (all but the unsigned `User-Agent`
//! parameter, which names the signer) and so the same signature, and the same expiry. Neither
//! Tansu nor rdkafka's MockCluster checks an MSK token (the mock broker speaks no SASL), so the
//! refresh path is shown on the client side: librdkafka calls the context for a token when an
//! OAUTHBEARER client starts, and sets it without complaint.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use sluice_aws::{AwsAuth, Credentials};
use sluice_connector_kafka::config::{SaslConfig, SaslMechanism};
use sluice_connector_kafka::msk::{KafkaAuth, token};

/// The reference signer's python, from `scripts/msk-signer.sh` (installs it once).
fn reference_python() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/msk-signer.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed (the reference signer is required): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The reference token for these inputs: (token, expiry_ms, decoded URL).
fn reference(python: &str, creds: &Credentials, region: &str, at: u64) -> (String, i64, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/msk/reference_token.py");
    let out = Command::new(python)
        .arg(script)
        .env("SIGN_AT", at.to_string())
        .env("SIGN_KEY_ID", creds.access_key_id())
        .env("SIGN_SECRET", creds.secret_access_key())
        .env("SIGN_TOKEN", creds.session_token().unwrap_or_default())
        .env("SIGN_REGION", region)
        .output()
        .expect("running the reference signer");
    assert!(
        out.status.success(),
        "reference signer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["token"].as_str().unwrap().to_string(),
        v["expiry_ms"].as_i64().unwrap(),
        v["url"].as_str().unwrap().to_string(),
    )
}

/// The URL without its `User-Agent` parameter (it names the signer and is not signed).
fn without_user_agent(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("User-Agent="))
        .collect();
    format!("{base}?{}", kept.join("&"))
}

fn decode(token: &str) -> String {
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .expect("an unpadded base64url token"),
    )
    .unwrap()
}

#[test]
fn tokens_match_the_reference_signer() {
    let python = reference_python();
    let cases = [
        (
            Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                None,
                None,
                "t",
            ),
            "eu-west-1",
            1_700_000_000u64,
        ),
        (
            Credentials::new(
                "ASIATESTTEMPORARY",
                "a+secret/with=signs",
                Some("FwoGZXIvYXdzEJr//////////wEaDOPf+session/token==".into()),
                None,
                "t",
            ),
            "us-east-1",
            1_767_225_599u64,
        ),
    ];
    for (creds, region, at) in cases {
        let (ours, expiry) = token(region, &creds, UNIX_EPOCH + Duration::from_secs(at)).unwrap();
        let (theirs, their_expiry, their_url) = reference(&python, &creds, region, at);
        let our_url = decode(&ours);
        assert_eq!(
            without_user_agent(&our_url),
            without_user_agent(&their_url),
            "decoded URLs differ"
        );
        let sig = |u: &str| {
            u.split('&')
                .find_map(|p| p.strip_prefix("X-Amz-Signature="))
                .map(str::to_string)
        };
        assert_eq!(sig(&our_url), sig(&their_url));
        assert!(sig(&our_url).is_some_and(|s| s.len() == 64));
        assert_eq!(expiry, their_expiry);
        assert!(their_url.contains("&User-Agent=aws-msk-iam-sasl-signer-python"));
        assert!(our_url.contains("&User-Agent=sluice"));
        assert!(!theirs.ends_with('='));
    }
}

/// Counts librdkafka's token requests and keeps the last token, asking [`KafkaAuth`] for it.
struct Counting {
    auth: KafkaAuth,
    calls: Arc<AtomicUsize>,
    last: Arc<Mutex<Option<OAuthToken>>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for Counting {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let t = self.auth.generate_oauth_token(config)?;
        *self.last.lock() = Some(OAuthToken {
            token: t.token.clone(),
            principal_name: t.principal_name.clone(),
            lifetime_ms: t.lifetime_ms,
        });
        Ok(t)
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.lock().push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Counting {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_takes_tokens_from_the_refresh_callback() {
    let sasl = SaslConfig {
        mechanism: SaslMechanism::AwsMskIam,
        username: None,
        password: None,
        region: Some("eu-central-1".into()),
        auth: AwsAuth {
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("secret".into()),
            ..Default::default()
        },
    };
    let auth = KafkaAuth::for_sasl(Some(&sasl)).await.unwrap();
    assert!(auth.msk.is_some());
    let calls = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(None));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let ctx = Counting {
        auth,
        calls: calls.clone(),
        last: last.clone(),
        errors: errors.clone(),
    };
    // No broker is needed: librdkafka asks for the first token as the client starts.
    let consumer: BaseConsumer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("group.id", "msk-iam-test")
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "OAUTHBEARER")
        .create_with_context(ctx)
        .expect("an OAUTHBEARER consumer");
    let started = SystemTime::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    while calls.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one token at start");
    let t = last.lock().take().unwrap();
    let url = decode(&t.token);
    assert!(url.starts_with(
        "https://kafka.eu-central-1.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F"
    ), "{url}");
    let now_ms = started.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!(
        (t.lifetime_ms - now_ms - 900_000).abs() < 5_000,
        "expires 900 s after signing"
    );
    // librdkafka took the token: no "Failed to acquire SASL OAUTHBEARER token" error.
    assert!(
        errors.lock().iter().all(|e| !e.contains("OAUTHBEARER")),
        "{:?}",
        errors.lock()
    );
}
