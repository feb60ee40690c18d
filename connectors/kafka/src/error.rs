//! Classification of librdkafka errors: whose fault, and whether a retry can help.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use sluice_core::ConnectorError;

/// What to do with one record the broker did not take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordFailure {
    /// Worth another try (timeouts, leader changes, throttling, broker down).
    Retry,
    /// The record itself is refused for good (too large, invalid, no such topic): dead-letter it.
    Reject,
}

/// Classify a per-record produce error.
pub(crate) fn classify_record(err: &KafkaError) -> RecordFailure {
    use RDKafkaErrorCode as C;
    match err.rdkafka_error_code() {
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidMessage
            | C::InvalidRecord
            | C::MessageBatchTooLarge
            | C::UnknownTopic
            | C::UnknownTopicOrPartition
            | C::TopicAuthorizationFailed
            | C::InvalidTopic
            | C::UnknownPartition
            | C::BadMessage,
        ) => RecordFailure::Reject,
        _ => RecordFailure::Retry,
    }
}

/// Turn a client-level error into a [`ConnectorError`].
pub(crate) fn to_connector(context: &str, err: &KafkaError) -> ConnectorError {
    classified(context, err).caused_by(err)
}

fn classified(context: &str, err: &KafkaError) -> ConnectorError {
    let message = format!("{context}: {err}");
    match err {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => {
            ConnectorError::config(message)
        }
        KafkaError::Transaction(e) if e.is_fatal() => ConnectorError::external(format!(
            "{message} (fatal: another process with the same transactional.id may have taken over)"
        )),
        KafkaError::Transaction(e) if e.is_retriable() || e.txn_requires_abort() => {
            ConnectorError::transient(message)
        }
        _ => match err.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication,
            ) => ConnectorError::external(message),
            _ => ConnectorError::transient(message),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_is_rejected_and_timeouts_retried() {
        let big = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(classify_record(&big), RecordFailure::Reject);
        let slow = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert_eq!(classify_record(&slow), RecordFailure::Retry);
        let leader = KafkaError::MessageProduction(RDKafkaErrorCode::NotLeaderForPartition);
        assert_eq!(classify_record(&leader), RecordFailure::Retry);
    }

    #[test]
    fn fenced_is_not_retried() {
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced);
        assert!(!to_connector("write", &e).retryable);
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::RequestTimedOut);
        assert!(to_connector("write", &e).retryable);
    }
}
