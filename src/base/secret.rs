//! Values that must never reach a log, an answer or a record: [`Secret`], and
//! [`redact_uri`] for connection strings.

use std::fmt;

/// A configuration value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A connection string with its credentials replaced by `***`.
pub fn redact_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://") else {
        return uri.to_string();
    };
    let rest = &uri[scheme_end + 3..];
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{}://***@{}", &uri[..scheme_end], &rest[at + 1..]),
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{redact_uri, Secret};

    #[test]
    fn a_secret_never_shows_in_debug() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_uri("mongodb://user:pw@host:27017/db"),
            "mongodb://***@host:27017/db"
        );
        assert_eq!(redact_uri("mongodb://host/db"), "mongodb://host/db");
    }
}
