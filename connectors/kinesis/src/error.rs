//! What a Kinesis failure means. Whole calls go through the shared AWS classification
//! ([`sluice_aws::sdk_error`]); this module adds the per-entry codes of a PutRecords response.

/// Per-entry error codes of PutRecords that a later attempt can get past: the shard was busy
/// or the service failed that one entry. Every other code (a KMS key that is disabled or
/// missing, an entry the service refuses) is permanent for that record.
const RETRYABLE_ENTRY_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "InternalFailure",
    "InternalFailureException",
    "ServiceUnavailable",
    "KMSThrottlingException",
];

/// Whether a failed PutRecords entry with this error code is worth sending again.
pub fn entry_is_retryable(code: &str) -> bool {
    RETRYABLE_ENTRY_CODES.contains(&code)
}

/// Error codes of GetRecords/GetShardIterator that mean "read this shard more slowly".
pub fn is_throttle(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ProvisionedThroughputExceededException"
                | "LimitExceededException"
                | "KMSThrottlingException"
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_internal_failures_are_retried_other_codes_are_not() {
        assert!(entry_is_retryable("ProvisionedThroughputExceededException"));
        assert!(entry_is_retryable("InternalFailure"));
        assert!(!entry_is_retryable("KMSDisabledException"));
        assert!(!entry_is_retryable("ValidationException"));
        assert!(is_throttle(Some("ProvisionedThroughputExceededException")));
        assert!(!is_throttle(Some("ExpiredIteratorException")));
        assert!(!is_throttle(None));
    }
}
