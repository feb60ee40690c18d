//! The exactly-once proof for file → file: kill -9 at random moments, restart, and check that
//! the sink holds every record exactly once.

mod common;

use std::time::Duration;

use common::*;

const RECORDS: u64 = 200_000;

#[test]
fn kill_nine_and_restart_neither_loses_nor_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", RECORDS);
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "eos"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "file"
path = "in.jsonl"
read_size = "16KiB"
[[sinks]]
type = "file"
path = "out/out.jsonl"
rotate_bytes = "4MiB"
batch = { max_records = 100, max_wait = "20ms" }
"#,
    );
    let kills = run_with_kills(&job, 10);
    assert!(kills >= 5, "only {kills} kills landed mid-run");
    let (counts, bad) = seq_counts(&dir.path().join("out/out.jsonl"));
    assert!(
        bad.is_empty(),
        "corrupt lines: {:?}",
        &bad[..bad.len().min(3)]
    );
    let duplicates = assert_all_present(&counts, RECORDS);
    assert_eq!(
        duplicates, 0,
        "exactly-once wrote {duplicates} duplicates after {kills} kills"
    );
    // Run again: everything is committed, nothing new is written.
    let mut again = spawn_run(&job);
    assert!(wait_with_deadline(&mut again, Duration::from_secs(60)).success());
    let (counts, _) = seq_counts(&dir.path().join("out/out.jsonl"));
    assert_eq!(counts.values().map(|c| u64::from(*c)).sum::<u64>(), RECORDS);
    println!(
        "file → file exactly-once: {kills} kill -9s, {RECORDS} records, none lost, none duplicated"
    );
}

/// Count each `seq` in every file of `dir` whose name starts with `prefix`.
fn seq_counts_in(
    dirs: &[&std::path::Path],
    prefix: &str,
) -> (std::collections::BTreeMap<u64, u32>, Vec<String>) {
    let mut counts = std::collections::BTreeMap::new();
    let mut bad = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with(prefix)
                || name.ends_with(".sluice-checkpoint")
                || name.ends_with(".tmp")
            {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                match serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v["seq"].as_u64())
                {
                    Some(seq) => *counts.entry(seq).or_insert(0) += 1,
                    None => bad.push(line.to_string()),
                }
            }
        }
    }
    (counts, bad)
}

#[test]
fn rotated_files_shipped_away_between_kills_are_neither_lost_nor_duplicated() {
    use rand::Rng;
    const N: u64 = 400_000;
    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", N);
    let out = dir.path().join("out");
    let shipped = dir.path().join("shipped");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&shipped).unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "ship"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "file"
path = "in.jsonl"
read_size = "16KiB"
[[sinks]]
type = "file"
path = "out/out.jsonl"
rotate_bytes = "64KiB"
batch = { max_records = 100, max_wait = "20ms" }
"#,
    );
    // Ship every finished rotated file, the way a log shipper would: move it elsewhere.
    let mut shipments = 0;
    let mut ship = || {
        for entry in std::fs::read_dir(&out).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name
                .strip_prefix("out.jsonl.")
                .is_some_and(|n| n.parse::<u32>().is_ok())
            {
                shipments += 1;
                std::fs::rename(&path, shipped.join(format!("{shipments}-{name}"))).unwrap();
            }
        }
    };
    let mut rng = rand::rng();
    let mut kills = 0;
    for runs in 1.. {
        assert!(runs < 200, "the job never finished");
        let mut child = spawn_run(&job);
        std::thread::sleep(Duration::from_millis(rng.random_range(50..400)));
        ship();
        if kills < 12 && child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            ship();
            continue;
        }
        let status = wait_with_deadline(&mut child, Duration::from_secs(300));
        assert!(
            status.success(),
            "run {runs} failed: {}",
            stderr_of(&mut child)
        );
        break;
    }
    ship();
    assert!(kills >= 5, "only {kills} kills landed mid-run");
    let (counts, bad) = seq_counts_in(&[&out, &shipped], "");
    assert!(
        bad.is_empty(),
        "corrupt lines: {:?}",
        &bad[..bad.len().min(3)]
    );
    let duplicates = assert_all_present(&counts, N);
    assert_eq!(duplicates, 0, "{duplicates} duplicates after {kills} kills");
}
