//! API errors: a JSON body `{ "error": ..., "message": ..., "errors": [...] }` with a status
//! that fits (400 malformed request, 422 bad config with per-field errors, 401, 404, 409, 500).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_core::job::JobError;
use utoipa::ToSchema;

/// One problem with a field of a submitted config.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// Field path like `sinks[0].batch.max_bytes` (`(syntax)` for a parse error).
    #[schema(example = "sinks[0].batch.max_bytes")]
    pub path: String,
    /// Line in the submitted TOML, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// What went wrong, for programs: one code per status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request itself is malformed.
    BadRequest,
    /// 422: the job config is invalid; `errors` lists each problem.
    InvalidConfig,
    /// 401: the bearer token is missing or wrong.
    Unauthorized,
    /// 403: a cross-site request, or a host name a loopback worker does not answer to.
    Forbidden,
    /// 415: a body that is not TOML or JSON.
    UnsupportedMediaType,
    /// 404: no such job, connector type or endpoint.
    NotFound,
    /// 405: the endpoint does not take that method.
    MethodNotAllowed,
    /// 409: the request conflicts with the job's state.
    Conflict,
    /// 503: the worker is shutting down.
    Unavailable,
    /// 500: the worker failed.
    Internal,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    errors: Vec<FieldError>,
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorCode,
    /// What went wrong, for people.
    message: String,
    /// Each problem of an invalid config (422 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    errors: Vec<FieldError>,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    /// 422: a well-formed request whose job config is wrong, with per-field errors.
    pub fn invalid_config(errors: Vec<FieldError>) -> Self {
        let message = match errors.len() {
            1 => format!("invalid config: {}: {}", errors[0].path, errors[0].message),
            n => format!("invalid config: {n} problems"),
        };
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidConfig,
                message,
            )
        }
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "this worker needs `Authorization: Bearer <token>`",
        )
    }

    /// 403: a request from another site, or to a name this worker does not answer to.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    /// 415: a body of another type than TOML or JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send the body as `Content-Type: application/toml` or `application/json`",
        )
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "this endpoint does not take that method (see /openapi.json)",
        )
    }

    /// 409: the request conflicts with the job's state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }

    /// 503: the worker is shutting down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            message,
        )
    }

    /// 500.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "Request failed.");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
        )
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message, for people.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The body of an error of the Kafka Connect API (`/connectors`, `/connector-plugins`), in
/// Connect's shape.
#[derive(Serialize, ToSchema)]
pub struct ConnectErrorBody {
    /// The HTTP status.
    error_code: u16,
    /// What went wrong.
    message: String,
}

/// An [`ApiError`] answered in Kafka Connect's shape: `{error_code, message}`. An invalid
/// config is Connect's 400 (not 422), its problems listed in the message by flat key; `map`
/// turns a loader path (`sinks[0].path`) into the key the caller sent.
#[derive(Debug)]
pub struct ConnectError(pub ApiError);

impl From<ApiError> for ConnectError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<anyhow::Error> for ConnectError {
    fn from(e: anyhow::Error) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        let e = self.0;
        let (status, message) = if e.code == ErrorCode::InvalidConfig {
            let mut message = format!(
                "Connector configuration is invalid and contains the following {} error(s):",
                e.errors.len()
            );
            for f in &e.errors {
                message.push_str(&format!(
                    "\n{}: {}",
                    super::flat::flat_path(&f.path),
                    f.message
                ));
            }
            (StatusCode::BAD_REQUEST, message)
        } else {
            (e.status, e.message)
        };
        let body = ConnectErrorBody {
            error_code: status.as_u16(),
            message,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        Self::invalid_config(
            e.errors
                .into_iter()
                .map(|e| FieldError {
                    path: e.path,
                    line: e.line,
                    message: super::config::clean_message(&e.message),
                })
                .collect(),
        )
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: self.message,
            errors: self.errors,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
