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

/// Query parameters whose values are credentials (matched without case, as parts of the
/// name): `tlsCertificateKeyFilePassword`, `authMechanismProperties` (AWS session tokens), …
const SENSITIVE_PARAMS: &[&str] = &[
    "password",
    "secret",
    "token",
    "credential",
    "authmechanismproperties",
    "key",
];

/// The parts of a connection string: scheme (with `://`, or empty), user info (without the
/// `@`) and the rest (hosts, path, query). The user info ends at the last `@` followed by
/// something shaped like a host list, so a password with `/`, `@`, `?` or `#` in it is still
/// found; when in doubt, more is taken as user info (and hidden), never less.
fn parts(uri: &str) -> (&str, Option<&str>, &str) {
    let (scheme, rest) = match uri.find("://") {
        Some(i) => (&uri[..i + 3], &uri[i + 3..]),
        None => ("", uri),
    };
    let hostish = |h: &str| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:,[]%".contains(c))
    };
    for (at, _) in rest.rmatch_indices('@') {
        let after = &rest[at + 1..];
        if hostish(after.split(['/', '?', '#']).next().unwrap_or("")) {
            return (scheme, Some(&rest[..at]), after);
        }
    }
    // No host after any `@` (`redis://user:pw@`): everything up to the last one is hidden.
    match rest.rfind('@') {
        Some(at) => (scheme, Some(&rest[..at]), &rest[at + 1..]),
        None => (scheme, None, rest),
    }
}

/// A connection string with its credentials replaced by `***`: the user info, and the
/// values of query parameters that carry credentials. Any character may be in a password.
pub fn redact_uri(uri: &str) -> String {
    let (scheme, userinfo, rest) = parts(uri);
    let mut out = String::from(scheme);
    if userinfo.is_some() {
        out.push_str("***@");
    }
    match rest.split_once('?') {
        None => out.push_str(rest),
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if sensitive(k) => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
    }
    out
}

fn sensitive(param: &str) -> bool {
    let p = param.to_ascii_lowercase();
    SENSITIVE_PARAMS.iter().any(|s| p.contains(s))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The secrets in a connection string, as written and percent-decoded: the user info, its
/// password, and the values of credential parameters.
pub fn uri_secrets(uri: &str) -> Vec<String> {
    let (_, userinfo, rest) = parts(uri);
    let mut found = Vec::new();
    if let Some(u) = userinfo {
        found.push(u.to_string());
        if let Some((_, password)) = u.split_once(':') {
            found.push(password.to_string());
        }
    }
    if let Some((_, query)) = rest.split_once('?') {
        for p in query.split('&') {
            if let Some((k, v)) = p.split_once('=') {
                if sensitive(k) {
                    found.push(v.to_string());
                }
            }
        }
    }
    let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
    found.extend(decoded);
    // Very short values would blank out ordinary words; they are hidden where the whole
    // string is, by `redact_uri`.
    found.retain(|s| s.chars().count() >= 3);
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

/// `text` (a library's error message, say) with `uri` and each of its secrets replaced:
/// for messages that may echo parts of a connection string.
pub fn scrub(text: &str, uri: &str) -> String {
    let mut out = text.replace(uri, &redact_uri(uri));
    for secret in uri_secrets(uri) {
        out = out.replace(&secret, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{redact_uri, scrub, Secret};

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

    #[test]
    fn any_character_in_a_password_and_query_credentials_are_redacted() {
        for (uri, shown) in [
            (
                "mongodb://user:p/ss@w0rd?#x@db1:27017,db2/heimdall?replicaSet=rs0",
                "mongodb://***@db1:27017,db2/heimdall?replicaSet=rs0",
            ),
            (
                "mongodb://h:1/db?tls=true&tlsCertificateKeyFilePassword=K3YPASS&authMechanismProperties=AWS_SESSION_TOKEN:T0K",
                "mongodb://h:1/db?tls=true&tlsCertificateKeyFilePassword=***&authMechanismProperties=***",
            ),
            ("redis://:s3cret@cache:6379/0", "redis://***@cache:6379/0"),
            ("user:pw@host", "***@host"),
            ("redis://user:pw@", "redis://***@"),
        ] {
            assert_eq!(redact_uri(uri), shown, "{uri}");
        }
    }

    #[test]
    fn scrub_hides_every_secret_of_a_uri_in_any_text() {
        let uri = "mongodb://admin:Sup3r%2Fsecret@host/db?tlsCertificateKeyFilePassword=K3YPASS";
        let text =
            format!("error parsing {uri}: password Sup3r/secret, Sup3r%2Fsecret; key K3YPASS");
        let clean = scrub(&text, uri);
        for secret in ["Sup3r", "K3YPASS", "admin:"] {
            assert!(!clean.contains(secret), "{clean}");
        }
        assert!(clean.contains("mongodb://***@host/db"), "{clean}");
    }
}
