//! Checks of settings shared by the host's configuration and the migration's options: a
//! wrong value is a [`ConfigError`] naming the setting and saying what is expected.

use crate::secret::redact_uri;

/// A setting with a wrong value: names the setting and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error in {setting}: {message}")]
pub struct ConfigError {
    /// The setting, as its environment variable is named.
    pub setting: &'static str,
    /// What is wrong and what is expected.
    pub message: String,
}

impl ConfigError {
    /// A config error for `setting`.
    pub fn new(setting: &'static str, message: impl Into<String>) -> Self {
        Self {
            setting,
            message: message.into(),
        }
    }
}

/// Checks a MongoDB database name; an empty name or one with `/\. "$` is refused.
pub fn validate_db_name(setting: &'static str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 63 || name.chars().any(|c| "/\\. \"$*<>:|?".contains(c)) {
        return Err(ConfigError::new(
            setting,
            format!("{name:?} is not a valid database name; use letters, digits, '-' and '_' (at most 63)"),
        ));
    }
    Ok(())
}

/// Checks that a connection string looks like `mongodb://` or `mongodb+srv://`.
pub fn validate_mongo_uri(setting: &'static str, uri: &str) -> Result<(), ConfigError> {
    if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) || uri.len() < 11 {
        return Err(ConfigError::new(
            setting,
            format!(
                "{:?} is not a MongoDB connection string; expected mongodb://host:port or mongodb+srv://host",
                redact_uri(uri)
            ),
        ));
    }
    Ok(())
}
