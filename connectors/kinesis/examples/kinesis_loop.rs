//! The baselines of the Kinesis benchmark (`bench/kinesis/run.sh`): plain `aws-sdk-kinesis`
//! loops on the same endpoint, doing what a user would write instead of Sluice.
//!
//! ```text
//! kinesis_loop ENDPOINT create STREAM SHARDS
//!     create the stream and wait until it is ACTIVE.
//! kinesis_loop ENDPOINT put STREAM FILE
//!     PutRecords every line of the JSON-lines FILE, 500 records a call, one call at a time,
//!     partition key = the line's `device_id`; failed entries are sent again (only them).
//!     Prints `seconds=S records=N rate=R`.
//! kinesis_loop ENDPOINT get STREAM RECORDS OUT
//!     read every shard from TRIM_HORIZON with GetRecords (10,000 a call, the shards in turn,
//!     at most 5 calls a second each), writing each record's data as a line of OUT, until
//!     RECORDS records are written. Prints `seconds=S records=N rate=R`.
//! kinesis_loop ENDPOINT count STREAM
//!     print how many records the stream holds (every shard, TRIM_HORIZON to the end).
//! kinesis_loop ENDPOINT delete STREAM
//!     delete the stream.
//! ```
//! Region and credentials: `AWS_REGION` (default us-east-1) and the standard chain.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use sluice_aws::AwsConnection;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: kinesis_loop ENDPOINT create|put|get|count STREAM ...");
        std::process::exit(2);
    }
    let conn = AwsConnection {
        region: Some(std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())),
        endpoint: Some(args[1].clone()),
        auth: Default::default(),
    };
    let client = Client::new(&conn.sdk_config().await.expect("SDK config"));
    let stream = args[3].as_str();
    match args[2].as_str() {
        "create" => create(&client, stream, args[4].parse().unwrap()).await,
        "put" => put(&client, stream, &args[4]).await,
        "get" => get(&client, stream, args[4].parse().unwrap(), &args[5]).await,
        "count" => println!("{}", count(&client, stream).await),
        "delete" => {
            client
                .delete_stream()
                .stream_name(stream)
                .send()
                .await
                .expect("DeleteStream");
        }
        other => panic!("unknown command {other}"),
    }
}

async fn create(client: &Client, stream: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .expect("CreateStream");
    loop {
        let out = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .expect("DescribeStreamSummary");
        if out
            .stream_description_summary()
            .is_some_and(|d| *d.stream_status() == StreamStatus::Active)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn report(started: Instant, n: u64) {
    let secs = started.elapsed().as_secs_f64();
    println!("seconds={secs:.3} records={n} rate={:.0}", n as f64 / secs);
}

async fn put(client: &Client, stream: &str, file: &str) {
    let started = Instant::now();
    let reader = std::io::BufReader::new(std::fs::File::open(file).expect("the input file"));
    let mut lines = reader.lines();
    let mut done = 0u64;
    loop {
        let mut entries = Vec::with_capacity(500);
        for line in lines.by_ref().take(500) {
            let line = line.expect("reading the input");
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            let key = v["device_id"].as_str().unwrap_or("none").to_string();
            entries.push(
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(line.into_bytes()))
                    .build()
                    .unwrap(),
            );
        }
        if entries.is_empty() {
            break;
        }
        let n = entries.len() as u64;
        while !entries.is_empty() {
            let out = client
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries.clone()))
                .send()
                .await
                .expect("PutRecords");
            // Only the failed entries again, like the sink.
            entries = entries
                .into_iter()
                .zip(out.records())
                .filter(|(_, r)| r.error_code().is_some())
                .map(|(e, _)| e)
                .collect();
        }
        done += n;
    }
    report(started, done);
}

async fn shard_ids(client: &Client, stream: &str) -> Vec<String> {
    let out = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("ListShards");
    out.shards()
        .iter()
        .map(|s| s.shard_id().to_string())
        .collect()
}

async fn trim_horizon(client: &Client, stream: &str, shard: &str) -> Option<String> {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("GetShardIterator")
        .shard_iterator()
        .map(String::from)
}

async fn get(client: &Client, stream: &str, want: u64, out: &str) {
    let started = Instant::now();
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).expect("the output file"));
    let mut iterators = Vec::new();
    for id in shard_ids(client, stream).await {
        iterators.push((trim_horizon(client, stream, &id).await, Instant::now()));
    }
    let mut done = 0u64;
    while done < want {
        for (iterator, next_call) in iterators.iter_mut() {
            let Some(it) = iterator.clone() else { continue };
            let wait = next_call.saturating_duration_since(Instant::now());
            tokio::time::sleep(wait).await;
            *next_call = Instant::now() + Duration::from_millis(200);
            let got = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .expect("GetRecords");
            for r in got.records() {
                file.write_all(r.data().as_ref()).unwrap();
                file.write_all(b"\n").unwrap();
            }
            done += got.records().len() as u64;
            *iterator = got.next_shard_iterator().map(String::from);
        }
    }
    file.flush().unwrap();
    file.get_ref().sync_all().unwrap();
    report(started, done);
}

async fn count(client: &Client, stream: &str) -> u64 {
    let mut n = 0;
    for id in shard_ids(client, stream).await {
        let mut iterator = trim_horizon(client, stream, &id).await;
        while let Some(it) = iterator {
            let got = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .expect("GetRecords");
            if got.records().is_empty() {
                break;
            }
            n += got.records().len() as u64;
            iterator = got.next_shard_iterator().map(String::from);
        }
    }
    n
}
