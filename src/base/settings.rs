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

/// A positive whole number (surrounding spaces allowed), or what is wrong with `value`.
pub fn parse_positive(setting: &'static str, value: &str) -> Result<usize, ConfigError> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ConfigError::new(
                setting,
                format!("{value:?} is not a positive whole number; set one (e.g. 2) or unset it for the default"),
            )
        })
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

/// A duration as `heimdall token --ttl` takes it, e.g. `30d`.
pub fn describe_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Parses a duration like `90s`, `30m`, `1h`, `7d` (at most a hundred years).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let bad = || format!("{s:?} is not a duration; use e.g. 30m, 1h, 7d");
    let too_long = || format!("{s:?} is too long; use at most a few days, e.g. 7d");
    let n: u64 = match num.parse() {
        Ok(n) => n,
        Err(_) if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(too_long())
        }
        Err(_) => return Err(bad()),
    };
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = n
        .checked_mul(unit_secs)
        .filter(|&x| x <= 100 * 365 * 86_400)
        .ok_or_else(too_long)?;
    if secs == 0 {
        return Err("the duration must be positive".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_and_print_back() {
        for (text, secs) in [
            ("90s", 90),
            ("30m", 1800),
            ("1h", 3600),
            ("7d", 604_800),
            ("45", 45),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(describe_duration(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(describe_duration(Duration::from_secs(5400)), "90m");
    }

    #[test]
    fn bad_or_overflowing_durations_are_refused_in_words() {
        assert!(parse_duration("1w").unwrap_err().contains("not a duration"));
        assert!(parse_duration("0s").unwrap_err().contains("positive"));
        assert!(parse_duration("99999999999999999999d")
            .unwrap_err()
            .contains("too long"));
        assert!(parse_duration("36500000d")
            .unwrap_err()
            .contains("too long"));
    }
}
