//! Discord ids (snowflakes) as Heimdall accepts them.

use crate::error::UserError;

/// Whether `id` is a Discord snowflake as Heimdall accepts one: 17 to 20 digits, within u64.
pub fn is_snowflake(id: &str) -> bool {
    (17..=20).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_digit())
        && id.parse::<u64>().is_ok()
}

/// Checks a guild id: a Discord snowflake (17 to 20 digits).
pub fn parse_guild(id: &str) -> Result<String, UserError> {
    let id = id.trim();
    if is_snowflake(id) {
        Ok(id.to_string())
    } else {
        Err(UserError::bad_request(
            "invalid_guild_id",
            format!("{id:?} is not a guild id; a guild id is a Discord snowflake of 17 to 20 digits, e.g. 123456789012345678 (right-click the server with Developer Mode on, then Copy Server ID)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_guild;

    #[test]
    fn a_snowflake_is_17_to_20_digits() {
        assert_eq!(
            parse_guild(" 123456789012345678 ").unwrap(),
            "123456789012345678"
        );
        assert!(parse_guild("12345678901234567").is_ok());
        for bad in [
            "",
            "abc",
            "1234567890123456",
            "123456789012345678901",
            "99999999999999999999",
            "12345678901234567a",
        ] {
            let e = parse_guild(bad).unwrap_err();
            assert_eq!(e.code, "invalid_guild_id", "{bad:?}");
            assert!(e.message.contains("Copy Server ID"));
        }
    }
}
