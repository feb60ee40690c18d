//! The SNS emulator the tests use (moto server from `scripts/services.sh up moto`:
//! `SLUICE_TEST_AWS_ENDPOINT`, `SLUICE_TEST_AWS_REGION` and dummy credentials), one topic per
//! test, read back through an SQS queue subscribed to the topic: what a real subscriber sees
//! (a FIFO queue behind a FIFO topic drops deduplicated copies). moto's own record
//! (`/moto-api/data.json`) is not used: it fails whenever another client's S3 state is
//! inconsistent, and the moto server is shared. SQS is spoken as its query protocol over plain HTTP (moto does not check
//! signatures; the credential scope in `Authorization` picks the service).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_sns::Client;
use serde_json::Value;

/// The emulator's endpoint; the test fails (never skips) without it.
pub fn endpoint() -> String {
    std::env::var("SLUICE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("SLUICE_TEST_AWS_ENDPOINT is not set: run `bash scripts/services.sh up moto` and source target/services.env")
    })
}

/// The emulator's region.
pub fn region() -> String {
    std::env::var("SLUICE_TEST_AWS_REGION").unwrap_or_else(|_| "us-east-1".into())
}

/// A name no other test (or run) uses.
pub fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{what}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An SNS client of the emulator.
pub async fn client() -> Client {
    let conn = sluice_aws::AwsConnection {
        region: Some(region()),
        endpoint: Some(endpoint()),
        auth: Default::default(),
    };
    Client::new(&conn.sdk_config().await.expect("the emulator's SDK config"))
}

/// Make topic `name` (FIFO when it ends in `.fifo`); its ARN.
pub async fn create_topic(name: &str) -> String {
    let mut call = client().await.create_topic().name(name);
    if name.ends_with(".fifo") {
        call = call.attributes("FifoTopic", "true");
    }
    call.send()
        .await
        .unwrap_or_else(|e| panic!("CreateTopic {name} on {}: {e:?}", endpoint()))
        .topic_arn()
        .expect("a topic ARN")
        .to_string()
}

/// One message a subscribed queue got (from SNS's JSON envelope).
#[derive(Clone, Debug)]
pub struct Sent {
    /// The message text.
    pub message: String,
    /// The subject.
    pub subject: Option<String>,
    /// Message attributes as SNS puts them in the envelope
    /// (`{"name": {"Type": ..., "Value": ...}}`).
    pub attributes: Value,
    /// The FIFO message group (an SQS attribute of the message).
    pub group: Option<String>,
}

/// The `key` of every message a queue got, once per copy.
pub async fn sent_keys(queue: &str) -> Vec<String> {
    sent(queue)
        .await
        .iter()
        .map(|s| {
            let v: Value = serde_json::from_str(&s.message)
                .unwrap_or_else(|e| panic!("a message that is not JSON ({e}): {}", s.message));
            v["key"].as_str().expect("a key").to_string()
        })
        .collect()
}

/// An SQS call in the query protocol; the answer's XML.
async fn sqs(params: &[(&str, &str)]) -> String {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{}/sqs/aws4_request, SignedHeaders=host, Signature=00",
        region()
    );
    let mut form: Vec<(&str, &str)> = vec![("Version", "2012-11-05")];
    form.extend_from_slice(params);
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let response = reqwest::Client::new()
        .post(format!("{}/", endpoint()))
        .header("Authorization", auth)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("an SQS call to the emulator");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "SQS {params:?}: {status} {text}");
    text
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The texts between `<tag>` and `</tag>`, XML entities decoded.
fn between(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|part| part.split(&close).next())
        .map(|t| {
            t.replace("&quot;", "\"")
                .replace("&#34;", "\"")
                .replace("&apos;", "'")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#xD;", "\r")
                .replace("&amp;", "&")
        })
        .collect()
}

/// A queue subscribed to topic `arn` (a FIFO queue for a FIFO topic), getting SNS's JSON
/// envelopes (message, subject, attributes): its URL.
pub async fn subscribe_queue(arn: &str) -> String {
    let fifo = arn.ends_with(".fifo");
    let name = if fifo {
        format!("{}.fifo", unique("q"))
    } else {
        unique("q")
    };
    subscribe_queue_named(arn, &name).await
}

/// [`subscribe_queue`] with the queue's name.
pub async fn subscribe_queue_named(arn: &str, name: &str) -> String {
    let fifo = arn.ends_with(".fifo");
    let mut params = vec![("Action", "CreateQueue"), ("QueueName", name)];
    if fifo {
        params.extend([
            ("Attribute.1.Name", "FifoQueue"),
            ("Attribute.1.Value", "true"),
        ]);
    }
    let xml = sqs(&params).await;
    let url = between(&xml, "QueueUrl").pop().expect("a queue URL");
    let xml = sqs(&[
        ("Action", "GetQueueAttributes"),
        ("QueueUrl", url.as_str()),
        ("AttributeName.1", "QueueArn"),
    ])
    .await;
    let queue_arn = between(&xml, "Value").pop().expect("the queue ARN");
    client()
        .await
        .subscribe()
        .topic_arn(arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .expect("Subscribe");
    url
}

/// Every message queue `url` got so far, in the order received. Messages are taken off the
/// queue and kept in this process, so asking again returns them again plus any new ones. SNS
/// (moto) delivers to SQS before Publish returns: no waiting.
pub async fn sent(url: &str) -> Vec<Sent> {
    static SEEN: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Vec<Sent>>>,
    > = std::sync::OnceLock::new();
    let mut got = Vec::new();
    loop {
        let xml = sqs(&[
            ("Action", "ReceiveMessage"),
            ("QueueUrl", url),
            ("MaxNumberOfMessages", "10"),
            ("VisibilityTimeout", "300"),
            ("AttributeName.1", "All"),
        ])
        .await;
        let messages: Vec<&str> = xml.split("<Message>").skip(1).collect();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let body = between(m, "Body").pop().expect("a message body");
            let envelope: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("not an SNS envelope ({e}): {body}"));
            let group = m
                .split("<Attribute>")
                .skip(1)
                .find(|a| a.contains("<Name>MessageGroupId</Name>"))
                .and_then(|a| between(a, "Value").pop());
            got.push(Sent {
                message: envelope["Message"].as_str().unwrap_or_default().to_string(),
                subject: envelope["Subject"].as_str().map(str::to_string),
                attributes: envelope["MessageAttributes"].clone(),
                group,
            });
            let handle = between(m, "ReceiptHandle").pop().expect("a receipt handle");
            sqs(&[
                ("Action", "DeleteMessage"),
                ("QueueUrl", url),
                ("ReceiptHandle", handle.as_str()),
            ])
            .await;
        }
    }
    let seen = SEEN.get_or_init(Default::default);
    let mut seen = seen.lock().unwrap();
    let all = seen.entry(url.to_string()).or_default();
    all.extend(got);
    all.clone()
}
