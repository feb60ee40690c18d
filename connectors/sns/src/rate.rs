//! `max_per_second`: a token bucket holding at most one second's worth of messages.

use std::time::Duration;

use tokio::time::Instant;

/// Paces publishing to at most `rate` messages a second on average, in bursts of at most
/// `rate` messages.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// A bucket for `rate` messages a second, full.
    pub fn new(rate: f64) -> Self {
        Self {
            rate,
            tokens: rate.max(1.0),
            at: Instant::now(),
        }
    }

    /// Most messages one call may publish: what the bucket holds when full.
    pub fn burst(&self) -> usize {
        (self.rate.floor() as usize).max(1)
    }

    /// How long to wait before `n` messages may go, taking them from the bucket.
    pub fn take(&mut self, n: usize) -> Duration {
        let now = Instant::now();
        let capacity = self.rate.max(1.0);
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(capacity);
        self.at = now;
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Wait until `n` messages may go.
    pub async fn wait(&mut self, n: usize) {
        let wait = self.take(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_to_the_rate_after_a_burst() {
        let mut r = RateLimit::new(5.0);
        assert_eq!(r.burst(), 5);
        assert_eq!(
            r.take(5),
            Duration::ZERO,
            "a full bucket lets a burst through"
        );
        // Five more: a second's worth of refill (less the microseconds since).
        let wait = r.take(5);
        assert!((wait.as_secs_f64() - 1.0).abs() < 0.05, "{wait:?}");
        // And one more after those: 0.2 s later still.
        let wait = r.take(1);
        assert!((wait.as_secs_f64() - 1.2).abs() < 0.05, "{wait:?}");
        let slow = RateLimit::new(0.5);
        assert_eq!(slow.burst(), 1);
    }
}
