//! File formats end to end: CSV in (file and stdin) and out (file and stdout), bad rows
//! dead-lettered, the header read again when a killed job resumes in the middle of a file.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::*;

fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn csv_rows_become_typed_records_and_bad_rows_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("in.csv"),
        "device,temp,n,ok,note\n\
         d1,21.5,1,true,plain\n\
         d2,x,2,true,bad temp\n\
         d3,22,3,false,\"two\nlines, \"\"quoted\"\"\"\n\
         d4,23\n\
         d5,,5,TRUE,\r\n",
    )
    .unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "csv-in"
[source]
type = "file"
path = "in.csv"
format = "csv"
csv = { types = { temp = "float", n = "int", ok = "bool" } }
[[sinks]]
type = "file"
path = "out.jsonl"
[errors]
tolerance = "all"
dead_letter = { type = "file", path = "dlq.jsonl" }
"#,
    );
    run_job_ok(&job, Duration::from_secs(60));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap(),
        concat!(
            r#"{"device":"d1","temp":21.5,"n":1,"ok":true,"note":"plain"}"#,
            "\n",
            r#"{"device":"d3","temp":22.0,"n":3,"ok":false,"note":"two\nlines, \"quoted\""}"#,
            "\n",
            r#"{"device":"d5","temp":null,"n":5,"ok":true,"note":""}"#,
            "\n",
        )
    );
    let dead = json_lines(&dir.path().join("dlq.jsonl"));
    assert_eq!(dead.len(), 2, "{dead:?}");
    let input = dir.path().join("in.csv").display().to_string();
    assert_eq!(dead[0]["record"]["value"], "d2,x,2,true,bad temp");
    assert_eq!(
        dead[0]["reason"],
        format!("bad value at byte 43 of {input}: column \"temp\": \"x\" is not a finite float")
    );
    assert_eq!(dead[1]["record"]["value"], "d4,23");
    assert_eq!(
        dead[1]["reason"],
        format!("wrong number of fields at byte 102 of {input}: 2 fields, the header has 5")
    );
    assert_eq!(dead[1]["stage"], "source");
}

/// `rows` CSV rows `seq,device,temp`, device and temp derived from seq.
fn csv_input(path: &std::path::Path, rows: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "seq,device,temp").unwrap();
    for seq in 0..rows {
        writeln!(
            f,
            "{seq},\"dev {}, room {}\",{}.5",
            seq % 7,
            seq % 3,
            seq % 40
        )
        .unwrap();
    }
}

fn check_row(seq: u64, device: &str, temp: f64) {
    assert_eq!(
        device,
        format!("dev {}, room {}", seq % 7, seq % 3),
        "seq {seq}"
    );
    assert_eq!(temp, (seq % 40) as f64 + 0.5, "seq {seq}");
}

#[test]
fn csv_exactly_once_survives_kill_nine_with_the_header_read_again() {
    // Enough that the kills land before the input runs out on a quiet machine.
    const ROWS: u64 = 150_000;
    let dir = tempfile::tempdir().unwrap();
    csv_input(&dir.path().join("in.csv"), ROWS);
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "csv-eos"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "file"
path = "in.csv"
format = "csv"
read_size = "16KiB"
csv = { types = { seq = "int", temp = "float" } }
[[sinks]]
name = "json"
type = "file"
path = "out/out.jsonl"
batch = { max_records = 200, max_wait = "20ms" }
[[sinks]]
name = "csv"
type = "file"
path = "out/out.csv"
format = "csv"
rotate_bytes = "256KiB"
batch = { max_records = 300, max_wait = "20ms" }
"#,
    );
    let kills = run_with_kills(&job, 6);
    assert!(kills >= 3, "only {kills} kills landed mid-run");
    // JSON: every row once, its columns mapped right after every restart.
    let mut counts = BTreeMap::new();
    for v in json_lines(&dir.path().join("out/out.jsonl")) {
        let seq = v["seq"].as_u64().unwrap_or_else(|| panic!("{v}"));
        check_row(
            seq,
            v["device"].as_str().unwrap(),
            v["temp"].as_f64().unwrap(),
        );
        *counts.entry(seq).or_insert(0u32) += 1;
    }
    assert_eq!(assert_all_present(&counts, ROWS), 0, "after {kills} kills");
    // CSV: a header at the top of every file, then every row once.
    let mut counts = BTreeMap::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("out.csv") || name.contains(".sluice-checkpoint") {
            continue;
        }
        files += 1;
        let mut reader = csv::Reader::from_path(&path).unwrap();
        assert_eq!(
            reader.headers().unwrap(),
            vec!["seq", "device", "temp"],
            "{name}"
        );
        for row in reader.records() {
            let row = row.unwrap();
            let seq: u64 = row[0].parse().unwrap();
            check_row(seq, &row[1], row[2].parse().unwrap());
            *counts.entry(seq).or_insert(0u32) += 1;
        }
    }
    assert!(files > 3, "rotated into {files} files");
    assert_eq!(assert_all_present(&counts, ROWS), 0, "after {kills} kills");
}

#[test]
fn stdin_csv_without_a_header_to_stdout_csv() {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "pipe"
[source]
type = "stdin"
format = "csv"
csv = { header = false, delimiter = ";", columns = ["id", "text"], types = { id = "int" } }
[[sinks]]
type = "stdout"
format = "csv"
csv = { columns = ["text", "id"] }
"#,
    );
    let mut child = sluice()
        .args(["run", job.to_str().unwrap(), "--no-progress"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"1;plain\n2;\"a;b\nc\"\n3;last").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "text,id\nplain,1\n\"a;b\nc\",2\nlast,3\n"
    );
}

#[test]
fn csv_options_that_cannot_work_are_refused_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.csv"), "a\n1\n").unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        "api_version = 1\nname = \"j\"\n[source]\ntype = \"file\"\npath = \"in.csv\"\nformat = \"csv\"\ncsv = { header = false }\n[[sinks]]\ntype = \"file\"\npath = \"out.csv\"\ncsv = { delimiter = \";\" }\n",
    );
    let out = run(&["validate", job.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).replace(&job.display().to_string(), "job.toml");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "job.toml:7: source.csv.columns: with `header = false` the columns must be named"
        ),
        "{err}"
    );
    assert!(
        err.contains("job.toml:11: sinks[0].csv: `csv` options need `format = \"csv\"`"),
        "{err}"
    );
}

/// `{"seq":N}` lines for `seqs`.
fn seq_lines(seqs: std::ops::Range<u64>) -> Vec<u8> {
    seqs.map(|s| format!("{{\"seq\":{s}}}\n"))
        .collect::<String>()
        .into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn a_glob_of_gzip_and_plain_files_is_read_once_across_kill_nine() {
    // Enough that the kills land before the input runs out on a quiet machine (30,000 once gave 2).
    const PER_FILE: u64 = 80_000;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("part-0.jsonl.gz"), gzip(&seq_lines(0..PER_FILE))).unwrap();
    std::fs::write(
        input.join("part-1.jsonl"),
        seq_lines(PER_FILE..2 * PER_FILE),
    )
    .unwrap();
    // Two gzip members, as `cat a.gz b.gz` makes.
    let mut two = gzip(&seq_lines(2 * PER_FILE..2 * PER_FILE + 100));
    two.extend(gzip(&seq_lines(2 * PER_FILE + 100..3 * PER_FILE)));
    std::fs::write(input.join("part-2.jsonl.gz"), two).unwrap();
    std::fs::write(input.join("notes.txt"), "not matched\n").unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "glob-eos"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "file"
path = "in/part-*"
read_size = "16KiB"
[[sinks]]
type = "file"
path = "out.jsonl"
batch = { max_records = 200, max_wait = "20ms" }
"#,
    );
    let kills = run_with_kills(&job, 6);
    assert!(kills >= 3, "only {kills} kills landed mid-run");
    let (counts, bad) = seq_counts(&dir.path().join("out.jsonl"));
    assert!(bad.is_empty(), "{:?}", &bad[..bad.len().min(3)]);
    assert_eq!(
        assert_all_present(&counts, 3 * PER_FILE),
        0,
        "duplicates after {kills} kills"
    );
    // Run again: every file is read to its end already.
    run_job_ok(&job, Duration::from_secs(60));
    let (counts, _) = seq_counts(&dir.path().join("out.jsonl"));
    assert_eq!(
        counts.values().map(|c| u64::from(*c)).sum::<u64>(),
        3 * PER_FILE
    );
}

#[test]
fn a_truncated_gzip_file_stops_the_job_after_delivering_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let whole = gzip(&seq_lines(0..50_000));
    std::fs::write(dir.path().join("in.jsonl.gz"), &whole[..whole.len() / 2]).unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        "api_version = 1\nname = \"gz\"\n[source]\ntype = \"file\"\npath = \"in.jsonl.gz\"\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let mut child = spawn_run(&job);
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(
        err.contains("reading ") && err.contains("in.jsonl.gz"),
        "{err}"
    );
    let (counts, bad) = seq_counts(&dir.path().join("out.jsonl"));
    assert!(bad.is_empty(), "{bad:?}");
    assert!(
        !counts.is_empty(),
        "nothing before the damage was delivered"
    );
    assert_eq!(assert_all_present(&counts, counts.len() as u64), 0);
}

#[test]
fn following_a_compressed_file_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl.gz"), gzip(b"{}\n")).unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        "api_version = 1\nname = \"j\"\n[source]\ntype = \"file\"\npath = \"in.jsonl.gz\"\nfollow = true\n[[sinks]]\ntype = \"stdout\"\n",
    );
    let out = run(&["validate", job.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).replace(&job.display().to_string(), "job.toml");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("job.toml:6: source.follow: ")
            && err.contains("`follow = true` cannot be used"),
        "{err}"
    );
}

#[test]
fn gzip_output_exactly_once_survives_kill_nine() {
    // Enough that the kills land before the input runs out on a quiet machine (60,000 once
    // gave fewer than 3 of 6).
    const N: u64 = 400_000;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), seq_lines(0..N)).unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "gz-eos"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "file"
path = "in.jsonl"
read_size = "16KiB"
[[sinks]]
type = "file"
path = "out/out.jsonl.gz"
compression = "gzip"
rotate_bytes = "64KiB"
batch = { max_records = 200, max_wait = "20ms" }
"#,
    );
    let kills = run_with_kills(&job, 6);
    assert!(kills >= 3, "only {kills} kills landed mid-run");
    let mut counts = BTreeMap::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains(".sluice-checkpoint") {
            continue;
        }
        files += 1;
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: not valid gzip", path.display());
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            *counts.entry(v["seq"].as_u64().unwrap()).or_insert(0u32) += 1;
        }
    }
    assert!(files > 1, "rotated into {files} files");
    assert_eq!(assert_all_present(&counts, N), 0, "after {kills} kills");
}

#[test]
fn following_a_directory_picks_up_new_files_and_a_restart_reads_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("a.jsonl"), seq_lines(0..100)).unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "dir-tail"
[delivery]
commit_interval = "50ms"
[source]
type = "file"
path = "in"
follow = true
poll_interval = "20ms"
[[sinks]]
type = "file"
path = "out.jsonl"
batch = { max_wait = "20ms" }
"#,
    );
    let out = dir.path().join("out.jsonl");
    let wait_for = |n: usize| {
        let start = std::time::Instant::now();
        loop {
            let (counts, _) = seq_counts(&out);
            if counts.len() >= n {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "only {} of {n} records arrived",
                counts.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut child = spawn_run(&job);
    wait_for(100);
    std::fs::write(input.join("b.jsonl"), seq_lines(100..150)).unwrap();
    wait_for(150);
    signal(&child, "TERM");
    assert!(wait_with_deadline(&mut child, Duration::from_secs(30)).success());
    // While stopped: one file grows, one appears.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(input.join("a.jsonl"))
        .unwrap();
    f.write_all(&seq_lines(150..160)).unwrap();
    std::fs::write(input.join("c.jsonl"), seq_lines(160..200)).unwrap();
    let mut child = spawn_run(&job);
    wait_for(200);
    signal(&child, "TERM");
    assert!(wait_with_deadline(&mut child, Duration::from_secs(30)).success());
    let (counts, bad) = seq_counts(&out);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        assert_all_present(&counts, 200),
        0,
        "read twice after the restart"
    );
}
