//! The outcome of one entry of a PublishBatch call (or of one Publish call).

/// Codes of failed entries worth sending again: throttling and SNS's own transient failures.
const RETRYABLE: &[&str] = &[
    "Throttled",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottling",
    "KMSThrottlingException",
];

/// What happens to one entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Published.
    Done,
    /// Send again (the runtime backs off first): `Code: Message`.
    Retry(String),
    /// Refused for good (dead letter): `Code: Message`.
    Reject(String),
}

/// A failed entry: retried when its code is a throttling or internal one, or SNS says the
/// fault is not the sender's; rejected otherwise, with code and message.
pub fn failed_entry(code: &str, message: Option<&str>, sender_fault: bool) -> Outcome {
    let shown = match message {
        Some(m) if !m.is_empty() => format!("{code}: {m}"),
        _ => code.to_string(),
    };
    if RETRYABLE.contains(&code) || !sender_fault {
        Outcome::Retry(shown)
    } else {
        Outcome::Reject(shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_service_faults_are_retried_the_rest_rejected() {
        assert!(matches!(
            failed_entry("Throttled", Some("Rate exceeded"), true),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            failed_entry("SomethingNew", None, false),
            Outcome::Retry(_)
        ));
        assert_eq!(
            failed_entry("InvalidParameter", Some("Subject too long"), true),
            Outcome::Reject("InvalidParameter: Subject too long".into())
        );
    }
}
