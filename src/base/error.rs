//! Errors a user reads as they are, with stable codes; everything else is internal.
//!
//! A [`UserError`] carries a stable `code` and a message that says what is wrong and what to
//! do. It travels inside `anyhow::Error` (the error type of commands and handlers) and
//! is found again with `downcast_ref`. Any other error is internal: it is logged with its
//! context and the user sees a generic message.

use http::StatusCode;
use serde::Serialize;

/// What kind of refusal a [`UserError`] is; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserErrorKind {
    /// The request is malformed or names something invalid (400).
    BadRequest,
    /// No credentials, or they are invalid (401).
    Unauthorized,
    /// The caller may not do this (403).
    Forbidden,
    /// The thing asked for does not exist (404).
    NotFound,
    /// The request conflicts with the current state, e.g. a run is already active (409).
    Conflict,
    /// A dependency (a source database) could not be reached (502).
    Unavailable,
    /// The request is larger than accepted (413).
    TooLarge,
}

impl UserErrorKind {
    /// The HTTP status for this kind.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::BAD_GATEWAY,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// An error meant for the user: shown as it is, never logged as a failure of the bot.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct UserError {
    /// Stable machine-readable code, e.g. `source_unreachable`.
    pub code: &'static str,
    /// What is wrong and what to do about it.
    pub message: String,
    /// The kind of refusal.
    pub kind: UserErrorKind,
}

impl UserError {
    /// A `bad_request`-kind error with the given code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(UserErrorKind::BadRequest, code, message)
    }

    /// An error of any kind.
    pub fn new(kind: UserErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            kind,
        }
    }
}

/// The message shown for internal errors.
pub const INTERNAL_MESSAGE: &str =
    "Something went wrong inside Heimdall. The error was logged; please try again or ask the bot owner to check the logs.";

/// Finds a [`UserError`] anywhere in an error chain.
pub fn user_error(err: &anyhow::Error) -> Option<&UserError> {
    err.chain().find_map(|e| e.downcast_ref::<UserError>())
}

/// The text to show a user for `err`: a user error as it is, anything else generic (and logged).
pub fn display_for_user(err: &anyhow::Error) -> String {
    match user_error(err) {
        Some(u) => u.message.clone(),
        None => {
            tracing::error!(error = ?err, "internal error");
            INTERNAL_MESSAGE.to_string()
        }
    }
}
