//! One mapping from an AWS SDK error to a [`ConnectorError`], so every AWS connector retries and
//! fails alike.

use std::error::Error;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use sluice_core::ConnectorError;

/// Error codes of AWS services that say "try again later" (throttling and the service's own
/// transient failures).
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "LimitExceededException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "InternalFailureException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSThrottlingException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Error codes that mean the job points at something that does not exist or may not be used:
/// a configuration error, not a fault of the service.
const CONFIG_CODES: &[&str] = &[
    "ResourceNotFoundException",
    "NoSuchBucket",
    "NotFound",
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "AuthorizationError",
];

/// The service's error code of an SDK error (`ResourceNotFoundException`), when it answered.
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// Map an SDK error of operation `what` ("PutRecords to stream readings"): no answer
/// (timeouts, refused or broken connections) and throttling/internal codes are transient;
/// unknown resources and refused credentials are configuration errors; other service errors
/// are permanent external errors. The SDK error stays the cause.
pub fn sdk_error<E>(what: &str, err: SdkError<E, HttpResponse>) -> ConnectorError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
{
    let shown = match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                _ => sluice_core::error::with_causes(&err),
            }
        }
        _ => sluice_core::error::with_causes(&err),
    };
    let message = format!("{what}: {shown}");
    let mapped = match &err {
        SdkError::ConstructionFailure(_) => ConnectorError::config(message),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ConnectorError::transient(message)
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let status = service.raw().status().as_u16();
            if RETRYABLE_CODES.contains(&code) || status >= 500 || status == 429 {
                ConnectorError::transient(message)
            } else if CONFIG_CODES.contains(&code) || status == 403 {
                ConnectorError::config(message)
            } else {
                ConnectorError::external(message)
            }
        }
        _ => ConnectorError::external(message),
    };
    mapped.with_source(err)
}
