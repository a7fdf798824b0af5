//! Errors: the ones a user reads as they are ([`UserError`], from the base crate), and
//! everything else; [`AppError`] renders either as the API's `{code, message}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use heimdall_base::error::*;

/// JSON body of every API error: `{code, message}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Stable error code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// The error type of API handlers: renders as `{code, message}` with a fitting status.
#[derive(Debug)]
pub struct AppError(pub anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for AppError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = match user_error(&self.0) {
            Some(u) => (
                u.kind.status(),
                ErrorBody {
                    code: u.code.to_string(),
                    message: u.message.clone(),
                },
            ),
            None => {
                tracing::error!(error = ?self.0, "internal error in API handler");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody {
                        code: "internal".into(),
                        message: INTERNAL_MESSAGE.into(),
                    },
                )
            }
        };
        (status, axum::Json(body)).into_response()
    }
}
