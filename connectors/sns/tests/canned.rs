//! Canned SNS answers for what moto never does: PublishBatch entries failing one by one
//! (throttled, refused) and a throttled call. A local HTTP server speaks SNS's query protocol
//! (form-encoded requests, XML answers) and records every request.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use parking_lot::Mutex;
use sluice_core::{BuildContext, Guarantee, Position, Record, Registry, Sink, SinkContext};

type Params = HashMap<String, String>;
type Script = Box<dyn Fn(&Params, usize) -> (u16, String) + Send + Sync>;

struct Canned {
    endpoint: String,
    requests: Arc<Mutex<Vec<Params>>>,
}

#[derive(Clone)]
struct Shared {
    script: Arc<Script>,
    requests: Arc<Mutex<Vec<Params>>>,
}

const NS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

async fn answer(State(s): State<Shared>, Form(params): Form<Params>) -> impl IntoResponse {
    let n = {
        let mut r = s.requests.lock();
        r.push(params.clone());
        r.len() - 1
    };
    let (status, body) = match params.get("Action").map(String::as_str) {
        Some("Publish") => (
            200,
            format!(
                "<PublishResponse xmlns=\"{NS}\"><PublishResult><MessageId>m</MessageId></PublishResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishResponse>"
            ),
        ),
        Some("GetTopicAttributes") => (
            200,
            format!(
                "<GetTopicAttributesResponse xmlns=\"{NS}\"><GetTopicAttributesResult><Attributes></Attributes></GetTopicAttributesResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetTopicAttributesResponse>"
            ),
        ),
        _ => (s.script)(&params, n),
    };
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "text/xml")],
        body,
    )
}

impl Canned {
    async fn start(
        script: impl Fn(&Params, usize) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let requests: Arc<Mutex<Vec<Params>>> = Arc::default();
        let state = Shared {
            script: Arc::new(Box::new(script)),
            requests: requests.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", post(answer)).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            endpoint: format!("http://{addr}"),
            requests,
        }
    }

    fn calls(&self, action: &str) -> Vec<Params> {
        self.requests
            .lock()
            .iter()
            .filter(|p| p.get("Action").is_some_and(|a| a == action))
            .cloned()
            .collect()
    }
}

/// The entries (`Id`, `Message`, `MessageDeduplicationId`) of a PublishBatch request.
fn entries(p: &Params) -> Vec<(String, String, Option<String>)> {
    (1..=10)
        .map_while(|n| {
            let at = |f: &str| {
                p.get(&format!("PublishBatchRequestEntries.member.{n}.{f}"))
                    .cloned()
            };
            Some((at("Id")?, at("Message")?, at("MessageDeduplicationId")))
        })
        .collect()
}

fn batch_answer(ok: &[String], failed: &[(String, &str, &str, bool)]) -> String {
    let ok: String = ok
        .iter()
        .map(|id| format!("<member><Id>{id}</Id><MessageId>m-{id}</MessageId></member>"))
        .collect();
    let failed: String = failed
        .iter()
        .map(|(id, code, message, sender)| {
            format!("<member><Id>{id}</Id><Code>{code}</Code><Message>{message}</Message><SenderFault>{sender}</SenderFault></member>")
        })
        .collect();
    format!(
        "<PublishBatchResponse xmlns=\"{NS}\"><PublishBatchResult><Successful>{ok}</Successful><Failed>{failed}</Failed></PublishBatchResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishBatchResponse>"
    )
}

async fn open(endpoint: &str, arn: &str, extra: &str) -> Box<dyn Sink> {
    let text = format!(
        "topic_arn = {arn:?}\nendpoint = {endpoint:?}\nregion = 'us-east-1'\n\
         auth = {{ access_key_id = 'AKIDTEST', secret_access_key = 'secret' }}\n{extra}"
    );
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut registry = Registry::new();
    sluice_connector_sns::register(&mut registry);
    let ctx = BuildContext::new("canned", ".", ".", Guarantee::AtLeastOnce);
    let mut sink = registry.sink("sns").unwrap().build(table, &ctx).unwrap();
    let sctx = SinkContext {
        job: "canned".into(),
        sink: "alerts".into(),
        guarantee: Guarantee::AtLeastOnce,
    };
    sink.open(&sctx).await.unwrap();
    sink
}

fn records(n: i64) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(
                format!(r#"{{"key":"k{i}","device":"d"}}"#),
                Position::int(Arc::from("p"), i),
            )
        })
        .collect()
}

/// Entry 1 throttled, entry 3 refused: only entry 1 comes back as `retry`, entry 3 is
/// rejected with SNS's code and message; sent again alone, entry 1 keeps its deduplication id.
#[tokio::test]
async fn failed_entries_are_retried_or_rejected_one_by_one_canned() {
    let canned = Canned::start(|p, _| {
        let ids: Vec<String> = entries(p).into_iter().map(|(id, _, _)| id).collect();
        let first_call = ids.len() > 1;
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        for (n, id) in ids.into_iter().enumerate() {
            match (first_call, n) {
                (true, 1) => failed.push((id, "Throttled", "Rate exceeded", false)),
                (true, 3) => failed.push((
                    id,
                    "InvalidParameter",
                    "Invalid parameter: Message too long",
                    true,
                )),
                _ => ok.push(id),
            }
        }
        (200, batch_answer(&ok, &failed))
    })
    .await;
    let arn = "arn:aws:sns:us-east-1:000000000000:alerts.fifo";
    let mut sink = open(
        &canned.endpoint,
        arn,
        "message_group_id = { field = 'device' }",
    )
    .await;
    let batch = records(5);
    let report = sink.write(&batch, None).await.unwrap();
    assert_eq!(report.retry, vec![1], "{report:?}");
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].0, 3);
    assert_eq!(
        report.rejected[0].1,
        "InvalidParameter: Invalid parameter: Message too long"
    );
    // The runtime sends exactly the retried record again (one record: Publish).
    let report = sink.write(&batch[1..2], None).await.unwrap();
    assert!(report.retry.is_empty() && report.rejected.is_empty());
    let first = &entries(&canned.calls("PublishBatch")[0])[1];
    let again = &canned.calls("Publish")[0];
    assert_eq!(again["Message"], first.1);
    assert_eq!(
        again.get("MessageDeduplicationId"),
        first.2.as_ref(),
        "a retried entry keeps its deduplication id"
    );
}

/// A whole call throttled (HTTP 400 `Throttling`): the SDK's retries, then the sink's error is
/// retryable; a call that goes through after one throttle delivers everything.
#[tokio::test]
async fn a_throttled_call_is_retried_canned() {
    let throttle = "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>".to_string();
    let always = throttle.clone();
    let canned = Canned::start(move |p, n| {
        // Request 0 is GetTopicAttributes: the first PublishBatch is throttled once.
        if n == 1 {
            return (400, throttle.clone());
        }
        let ids: Vec<String> = entries(p).into_iter().map(|(id, _, _)| id).collect();
        (200, batch_answer(&ids, &[]))
    })
    .await;
    let arn = "arn:aws:sns:us-east-1:000000000000:alerts";
    let mut sink = open(&canned.endpoint, arn, "").await;
    let report = sink.write(&records(3), None).await.unwrap();
    assert!(
        report.retry.is_empty() && report.rejected.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        canned.calls("PublishBatch").len(),
        2,
        "throttled, then sent"
    );

    let canned = Canned::start(move |_, _| (400, always.clone())).await;
    let mut sink = open(&canned.endpoint, arn, "").await;
    let err = sink.write(&records(3), None).await.unwrap_err();
    assert!(err.retryable, "{err:?}");
    assert!(err.message.contains("Throttling"), "{err}");
}
