//! Session tokens: JWTs signed with `AUTH_SECRET` (HS256) carrying the Discord user id and
//! an expiry. The HTTP API and the WebSocket gateway accept them as `Authorization: Bearer`
//! (`heimdall token --user ID` mints one, for scripts and the CLI) or, for the dashboard,
//! in the HttpOnly cookie [`SESSION_COOKIE`] set by "Log in with Discord"
//! ([`crate::oauth`]). A request carried by the cookie that changes anything must send the
//! session's CSRF token in [`CSRF_HEADER`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::context::Data;
use crate::error::{AppError, UserError, UserErrorKind};

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The Discord user id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// The CSRF token of a dashboard (cookie) session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
    /// The user's Discord display name, for the dashboard's header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's Discord avatar hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// The user's Discord language (`de`, `en-US`, ...), for the dashboard's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// The dashboard session's cookie (HttpOnly, SameSite=Lax; Secure under https).
pub const SESSION_COOKIE: &str = "heimdall_session";

/// The header a cookie session's state-changing requests carry its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v.trim())
    })
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token's time is over.
    #[error("the session token has expired; get a new one")]
    Expired,
    /// Bad signature, bad format, or no user id.
    #[error("the session token is not valid: {0}")]
    Invalid(String),
    /// No `AUTH_SECRET` is configured.
    #[error("AUTH_SECRET is not set, so no session token can be checked; set it (at least 32 characters)")]
    NoSecret,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Mints a token for `user` valid for `ttl`.
pub fn mint(secret: &str, user: u64, ttl: Duration) -> String {
    let iat = now();
    encode(
        secret,
        &Claims {
            sub: user.to_string(),
            iat,
            exp: iat + ttl.as_secs(),
            csrf: None,
            name: None,
            avatar: None,
            locale: None,
        },
    )
}

/// Signs `claims`.
pub fn encode(secret: &str, claims: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 encoding of plain claims cannot fail")
}

/// Checks a token's signature and expiry (no leeway), and that it was not minted to live
/// longer than `max_ttl`.
pub fn verify(secret: Option<&str>, token: &str, max_ttl: Duration) -> Result<Claims, TokenError> {
    let secret = secret.ok_or(TokenError::NoSecret)?;
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "sub"]);
    let data =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                TokenError::Invalid(
                    match e.kind() {
                        K::ExpiredSignature => return TokenError::Expired,
                        K::InvalidSignature => {
                            "its signature does not match (was it signed with another AUTH_SECRET?)"
                        }
                        K::InvalidAlgorithm | K::InvalidAlgorithmName => {
                            "it must be signed with HS256"
                        }
                        K::MissingRequiredClaim(_) => "it lacks the `sub` or `exp` claim",
                        K::ImmatureSignature => "it is not valid yet",
                        K::InvalidToken => "it is not a JWT (three dot-separated parts)",
                        // A header naming another algorithm (`none`) fails to parse here.
                        K::Json(_) | K::Base64(_) | K::Utf8(_) => {
                            "it is malformed, or not signed with HS256"
                        }
                        _ => "it cannot be read",
                    }
                    .to_string(),
                )
            })?;
    if data.claims.exp.saturating_sub(data.claims.iat) > max_ttl.as_secs() {
        return Err(TokenError::Invalid(format!(
            "it was minted to live longer than the longest session allowed ({}); get a new one",
            heimdall_base::settings::describe_duration(max_ttl)
        )));
    }
    if data.claims.sub.parse::<u64>().is_err() {
        return Err(TokenError::Invalid(
            "the subject is not a Discord user id".into(),
        ));
    }
    Ok(data.claims)
}

/// The caller of an API request, from its `Authorization: Bearer <token>` header or the
/// dashboard's session cookie.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// Discord user id.
    pub id: u64,
    /// Whether the user is one of the bot's owners.
    pub owner: bool,
    /// Whether the session came in the dashboard's cookie (not a bearer token).
    pub cookie: bool,
    /// The session's claims.
    pub claims: Claims,
}

impl AuthUser {
    /// Refuses anyone who may not open `guild`'s dashboard (owners may open every one).
    pub async fn require_guild(&self, data: &Data, guild: &str) -> Result<(), AppError> {
        heimdall_base::ids::parse_guild(guild).map_err(|_| {
            UserError::bad_request(
                "invalid_guild",
                format!("{guild:?} is not a Discord server id (a snowflake: digits only)"),
            )
        })?;
        if self.owner {
            return Ok(());
        }
        let allowed = match data.access() {
            Some(a) => a
                .may_view(guild, self.id)
                .await
                .map_err(|e| AppError::from(e.context("checking dashboard access")))?,
            None => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(UserError::new(
                UserErrorKind::Forbidden,
                "no_access",
                "you have no access to this server's dashboard: it needs Manage Server there, or a dashboard permission its staff grant you",
            )
            .into())
        }
    }

    /// Refuses anyone but an owner.
    pub fn require_owner(&self) -> Result<(), AppError> {
        if self.owner {
            Ok(())
        } else {
            Err(UserError::new(
                UserErrorKind::Forbidden,
                "owner_only",
                "only the bot's owners may do this",
            )
            .into())
        }
    }
}

impl FromRequestParts<Data> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, data: &Data) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "));
        let from_cookie = || {
            parts
                .headers
                .get_all(axum::http::header::COOKIE)
                .iter()
                .filter_map(|h| h.to_str().ok())
                .find_map(|h| cookie(h, SESSION_COOKIE))
        };
        let (token, via_cookie) = match bearer {
            Some(t) => (t, false),
            None => (
                from_cookie().ok_or_else(|| {
                    UserError::new(
                        UserErrorKind::Unauthorized,
                        "unauthenticated",
                        "log in on the dashboard, or send `Authorization: Bearer <session token>` (`heimdall token --user ID` mints one)",
                    )
                })?,
                true,
            ),
        };
        let claims = verify(
            data.config.auth_secret.as_ref().map(|s| s.expose()),
            token.trim(),
            data.config.auth_max_ttl,
        )
        .map_err(|e| {
            UserError::new(
                UserErrorKind::Unauthorized,
                if e == TokenError::Expired {
                    "token_expired"
                } else {
                    "invalid_token"
                },
                e.to_string(),
            )
        })?;
        if via_cookie && !parts.method.is_safe() {
            // A browser sends the cookie along with any site's form; only our page knows
            // the session's CSRF token.
            let sent = parts.headers.get(CSRF_HEADER).and_then(|h| h.to_str().ok());
            let ok = matches!((sent, claims.csrf.as_deref()), (Some(a), Some(b)) if constant_eq(a.as_bytes(), b.as_bytes()));
            if !ok {
                return Err(UserError::new(
                    UserErrorKind::Forbidden,
                    "csrf_failed",
                    "this request did not come from the dashboard's page (missing or wrong X-CSRF-Token); reload the dashboard and try again",
                )
                .into());
            }
        }
        let id: u64 = claims.sub.parse().unwrap_or(0);
        if let Some(access) = data.access() {
            let valid = access
                .session_valid(id, claims.iat)
                .await
                .map_err(|e| AppError::from(e.context("checking the session")))?;
            if !valid {
                return Err(UserError::new(
                    UserErrorKind::Unauthorized,
                    "token_revoked",
                    "this session was signed out; log in again",
                )
                .into());
            }
        }
        Ok(Self {
            id,
            owner: data.owners.is_owner(id),
            cookie: via_cookie,
            claims,
        })
    }
}

/// Compares two byte strings in time independent of where they differ.
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The gateway's gatekeeper: this bot's session tokens, owners and dashboard access policy.
pub struct HostGatekeeper {
    /// `AUTH_SECRET`.
    pub secret: Option<String>,
    /// The bot's owners (the one owner policy).
    pub owners: std::sync::Arc<crate::owners::Owners>,
    /// `AUTH_MAX_TTL`.
    pub max_ttl: Duration,
    /// The plugin deciding dashboard access, if any.
    pub access: Option<std::sync::Arc<dyn crate::plugin::AccessPolicy>>,
}

#[async_trait::async_trait]
impl crate::gateway::Gatekeeper for HostGatekeeper {
    fn verify(&self, token: &str) -> Result<crate::gateway::Session, crate::gateway::Rejection> {
        use crate::gateway::Rejection;
        match verify(self.secret.as_deref(), token, self.max_ttl) {
            Ok(c) => Ok(crate::gateway::Session {
                user: c.sub.parse().unwrap_or(0),
                issued_at: c.iat,
                expires_at: c.exp,
            }),
            Err(TokenError::Expired) => Err(Rejection::Expired),
            Err(e) => Err(Rejection::Invalid(e.to_string())),
        }
    }

    fn verify_cookie(
        &self,
        header: &str,
    ) -> Option<Result<crate::gateway::Session, crate::gateway::Rejection>> {
        cookie(header, SESSION_COOKIE).map(|token| self.verify(token))
    }

    fn is_owner(&self, user: u64) -> bool {
        self.owners.is_owner(user)
    }

    async fn session_valid(&self, user: u64, issued_at: u64) -> anyhow::Result<bool> {
        match &self.access {
            Some(a) => a.session_valid(user, issued_at).await,
            None => Ok(true),
        }
    }

    async fn may_view(&self, guild: &str, user: u64) -> anyhow::Result<bool> {
        match &self.access {
            Some(a) => a.may_view(guild, user).await,
            None => Ok(false),
        }
    }

    async fn guilds(&self, user: u64) -> anyhow::Result<Vec<String>> {
        match &self.access {
            Some(a) => a.guilds(user).await,
            None => Ok(Vec::new()),
        }
    }
}
