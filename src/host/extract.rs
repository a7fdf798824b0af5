//! What API handlers take and give besides `Data`: a JSON body that fails in plain words
//! ([`JsonBody`]), and a page of a list ([`Page`]).

use axum::http::{Request, StatusCode};
use axum::Json;
use serde::Serialize;

use crate::error::{AppError, UserError, UserErrorKind};

/// One page of a list and the cursor of the next (`None`: the last page): `{items, next}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T, C> {
    /// The items.
    pub items: Vec<T>,
    /// What to pass to get the next page.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// The most items a page holds.
    pub const MAX: i64 = 100;

    /// A page from up to `limit + 1` items read (one more than shown tells that another page
    /// follows), its cursor taken from the last item shown.
    pub fn of(mut items: Vec<T>, limit: i64, cursor: impl Fn(&T) -> C) -> Self {
        let limit = usize::try_from(limit.max(0)).unwrap_or(0);
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Self { items, next }
    }

    /// `limit` as asked, kept within 1 and [`Self::MAX`].
    pub fn limit(asked: i64) -> i64 {
        asked.clamp(1, Self::MAX)
    }
}

/// A JSON request body, or `{code, message}` saying in plain words what is wrong with it
/// (never the parser's internals).
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request<axum::body::Body>, state: &S) -> Result<Self, AppError> {
        use axum::extract::rejection::JsonRejection;
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(UserError::new(
                UserErrorKind::TooLarge,
                "body_too_large",
                "the request body is larger than the API accepts (2 MB)",
            )
            .into()),
            Err(e) => {
                let why = match &e {
                    JsonRejection::MissingJsonContentType(_) => {
                        "send it as JSON, with `Content-Type: application/json`".to_string()
                    }
                    JsonRejection::JsonSyntaxError(_) => "it is not valid JSON".to_string(),
                    JsonRejection::JsonDataError(_) => {
                        let text = e.body_text();
                        let text = text
                            .trim_start_matches(
                                "Failed to deserialize the JSON body into the target type: ",
                            )
                            .to_string();
                        // serde's own words name the field; its position in the text does not help.
                        let text = match text.find(" at line ") {
                            Some(i) => text[..i].to_string(),
                            None => text,
                        };
                        // "field: message" when the error is inside a field.
                        match text.split_once(": ") {
                            Some((path, msg)) if !path.contains(' ') => {
                                format!("`{path}` {msg}")
                            }
                            _ => text,
                        }
                    }
                    _ => "it could not be read".to_string(),
                };
                Err(UserError::bad_request(
                    "invalid_body",
                    format!("the request body is not valid: {why}"),
                )
                .into())
            }
        }
    }
}
