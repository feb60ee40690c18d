//! A Kafka-protocol broker of the chaos run's own (Tansu, the binary `scripts/services/kafka.sh`
//! installs and names in `SLUICE_TEST_TANSU`), so that it can be restarted without disturbing
//! the shared broker. It stores its log in a bucket of the S3 emulator, so a restart keeps
//! topics, records and group offsets (its in-memory store would lose them).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker of our own.
pub struct Tansu {
    /// `host:port` for clients.
    pub brokers: String,
    bin: String,
    storage: String,
    log: std::path::PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Tansu {
    /// Start a broker on a free port storing into `bucket` (which must exist) of the S3 emulator
    /// at `s3_endpoint`; its output goes to `log`.
    pub fn start(s3_endpoint: &str, bucket: &str, log: std::path::PathBuf) -> Tansu {
        let bin = std::env::var("SLUICE_TEST_TANSU").expect(
            "SLUICE_TEST_TANSU is not set: run `bash scripts/services.sh up kafka` and source target/services.env",
        );
        let mut t = Tansu {
            brokers: format!("127.0.0.1:{}", free_port()),
            bin,
            storage: format!("s3://{bucket}/"),
            log,
            child: None,
        };
        t.launch(s3_endpoint);
        t
    }

    fn launch(&mut self, s3_endpoint: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let url = format!("tcp://{}", self.brokers);
        let child = Command::new(&self.bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &self.storage])
            .env("AWS_ENDPOINT", s3_endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env(
                "AWS_DEFAULT_REGION",
                std::env::var("SLUICE_TEST_AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&self.brokers).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9 the broker, leave it down for `down`, start it again on the same port and store.
    pub fn restart(&mut self, s3_endpoint: &str, down: Duration) {
        self.stop();
        std::thread::sleep(down);
        self.launch(s3_endpoint);
    }

    /// Stop the broker (the one this value started, by its PID).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}
