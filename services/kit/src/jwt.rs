//! JWT issuing and validation: HS256 only (the algorithm is pinned, so `alg: none` and
//! algorithm-confusion tokens are refused), with `exp`, `iss` and `sub` required.
//!
//! The user service issues tokens with [`JwtKeys::issue`]; the gateway checks them with
//! [`JwtKeys::validate`]. Both build their keys from the same `JWT_SECRET`/`JWT_ISSUER`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::JwtConfig;

/// Claims of an msctl access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Issuer; must match `JWT_ISSUER`.
    pub iss: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Token id, so a token can be revoked (logout).
    pub jti: String,
}

/// Why a token was refused. Messages are safe to send to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// Bad signature, wrong algorithm, wrong issuer, missing claims or not a JWT at all.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Signing failed (should not happen with HS256).
    #[error("could not sign token: {0}")]
    Signing(String),
}

/// Signing and verification keys with the expected issuer.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl JwtKeys {
    /// Keys for `config`.
    pub fn new(config: &JwtConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // Small leeway for clock skew between containers; expired means expired.
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(config.secret.as_bytes()),
            decoding: DecodingKey::from_secret(config.secret.as_bytes()),
            validation,
            issuer: config.issuer.clone(),
        }
    }

    /// The issuer put in and expected on tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Issue a token for `user_id` valid for `ttl`; returns the token and its claims.
    pub fn issue(&self, user_id: &str, ttl: Duration) -> Result<(String, Claims), JwtError> {
        let iat = now_secs();
        let claims = Claims {
            sub: user_id.to_owned(),
            iss: self.issuer.clone(),
            iat,
            exp: iat + ttl.as_secs().max(1),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| JwtError::Signing(e.to_string()))?;
        Ok((token, claims))
    }

    /// Verify `token` (without the `Bearer ` prefix) and return its claims.
    pub fn validate(&self, token: &str) -> Result<Claims, JwtError> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => JwtError::Expired,
                    ErrorKind::InvalidSignature => JwtError::Invalid("bad signature".into()),
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        JwtError::Invalid("algorithm not allowed".into())
                    }
                    ErrorKind::InvalidIssuer => JwtError::Invalid("wrong issuer".into()),
                    ErrorKind::MissingRequiredClaim(c) => {
                        JwtError::Invalid(format!("missing claim {c}"))
                    }
                    _ => JwtError::Invalid("malformed token".into()),
                }
            })?;
        if data.claims.sub.is_empty() {
            return Err(JwtError::Invalid("empty subject".into()));
        }
        Ok(data.claims)
    }
}

/// The authenticated user of a request that came through the gateway, from the
/// `X-User-Id` header the gateway sets (and strips from client input). Rejects with 401
/// `unauthorized` when absent. Services must only be reachable through the gateway (or
/// other trusted services) for this to be meaningful — as in the stack's private network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(pub String);

/// Header carrying the authenticated user id.
pub const USER_ID_HEADER: &str = "x-user-id";

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for UserId {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .headers
            .get(USER_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| Self(v.to_owned()))
            .ok_or_else(|| crate::error::ApiError::unauthorized("no authenticated user"))
    }
}

/// The token of an `Authorization: Bearer <token>` header value, if it has that form.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str, issuer: &str) -> JwtKeys {
        JwtKeys::new(&JwtConfig {
            secret: secret.into(),
            issuer: issuer.into(),
        })
    }

    #[test]
    fn issued_tokens_validate() {
        let k = keys("0123456789abcdef-secret", "msctl");
        let (t, c) = k.issue("user-1", Duration::from_secs(60)).expect("sign");
        assert_eq!(k.validate(&t), Ok(c));
    }

    #[test]
    fn forged_foreign_and_unsigned_tokens_are_refused() {
        let k = keys("0123456789abcdef-secret", "msctl");
        let (other, _) = keys("another-secret-0123456", "msctl")
            .issue("u", Duration::from_secs(60))
            .expect("sign");
        assert!(matches!(k.validate(&other), Err(JwtError::Invalid(_))));
        let (wrong_iss, _) = keys("0123456789abcdef-secret", "evil")
            .issue("u", Duration::from_secs(60))
            .expect("sign");
        assert!(matches!(k.validate(&wrong_iss), Err(JwtError::Invalid(_))));
        // {"alg":"none","typ":"JWT"} . {"sub":"u","iss":"msctl","exp":9999999999,...} .
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1IiwiaXNzIjoibXNjdGwiLCJpYXQiOjEsImV4cCI6OTk5OTk5OTk5OSwianRpIjoieCJ9.";
        assert!(k.validate(none).is_err());
        assert!(k.validate("not a token").is_err());
    }

    #[test]
    fn bearer_prefix_is_parsed() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
