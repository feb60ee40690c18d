//! Exponential backoff with full jitter for retryable sink failures.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::job::RetryConfig;

/// Backoff state for one operation.
#[derive(Debug)]
pub struct Backoff {
    config: RetryConfig,
    started: Instant,
    attempt: u32,
}

impl Backoff {
    /// Start timing an operation.
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            config: config.clone(),
            started: Instant::now(),
            attempt: 0,
        }
    }

    /// The next delay, or `None` when the retry budget (`max_elapsed`) is spent.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.started.elapsed() >= self.config.max_elapsed.0 {
            return None;
        }
        let exp = self
            .config
            .initial_backoff
            .0
            .saturating_mul(1u32 << self.attempt.min(20));
        let cap = exp.min(self.config.max_backoff.0);
        self.attempt += 1;
        // Full jitter, but never below a tenth of the cap so retries do not spin.
        let floor = cap / 10;
        let jittered = rand::rng().random_range(floor..=cap.max(floor));
        Some(jittered)
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::HumanDuration;

    #[test]
    fn backoff_grows_to_the_cap_and_stops_after_max_elapsed() {
        let cfg = RetryConfig {
            initial_backoff: HumanDuration(Duration::from_millis(10)),
            max_backoff: HumanDuration(Duration::from_millis(80)),
            max_elapsed: HumanDuration(Duration::from_millis(50)),
        };
        let mut b = Backoff::new(&cfg);
        for _ in 0..10 {
            let d = b.next_delay().unwrap();
            assert!(d <= Duration::from_millis(80));
        }
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.next_delay().is_none());
    }
}
