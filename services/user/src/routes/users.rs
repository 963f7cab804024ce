//! Accounts and sessions: register, login, profile, logout, revocation look-up.
//!
//! Identity comes from `X-User-Id`, which the gateway sets from a validated JWT (and
//! strips from clients). Logout needs the token itself (`Authorization: Bearer`, which
//! the gateway forwards) to learn its `jti` and expiry.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use service_kit::error::ApiJson;
use service_kit::jwt::{bearer_token, Claims};
use service_kit::ApiError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{EmailAddress, Password, UserName};
use crate::state::AppState;
use service_kit::db::db_error;
use service_kit::extract::IdPath;

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UserView {
    /// Id (the JWT subject).
    pub id: Uuid,
    /// Email, lowercased.
    pub email: String,
    /// Display name.
    pub name: String,
    /// customer or admin.
    pub role: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

const VIEW: &str = "id, email, name, role, created_at, updated_at";

/// The caller, from `X-User-Id`.
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = parts
            .headers
            .get("x-user-id")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("no identity: call through the gateway with a bearer token")
            })?;
        Uuid::parse_str(raw.trim())
            .map(CurrentUser)
            .map_err(|_| ApiError::unauthorized("X-User-Id is not a user id"))
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

fn email_taken(email: &EmailAddress) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "email_taken",
        format!(
            "an account for {} exists already; log in instead",
            email.as_str()
        ),
    )
}

/// Body of `POST /api/v1/users/register`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    email: String,
    password: String,
    name: String,
}

/// Insert a user; `Ok(None)` when the id or email is taken.
pub async fn insert_user(
    pool: &PgPool,
    id: Uuid,
    email: &EmailAddress,
    name: &UserName,
    password_hash: &str,
    role: &str,
) -> Result<Option<UserView>, sqlx::Error> {
    let r = sqlx::query_as(&format!(
        "INSERT INTO users (id, email, name, password_hash, role) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT DO NOTHING RETURNING {VIEW}"
    ))
    .bind(id)
    .bind(email.as_str())
    .bind(name.as_str())
    .bind(password_hash)
    .bind(role)
    .fetch_optional(pool)
    .await;
    match r {
        Err(e) if is_unique_violation(&e) => Ok(None),
        other => other,
    }
}

/// `POST /api/v1/users/register` → 201 with the new user.
#[tracing::instrument(skip(state, body))]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let email = EmailAddress::parse(&body.email)?;
    let name = UserName::parse(&body.name)?;
    let password = Password::parse(&body.password)?;
    let hash = state
        .passwords
        .hash(password.expose().to_owned())
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let user = insert_user(
        &state.pool,
        Uuid::new_v4(),
        &email,
        &name,
        &hash,
        "customer",
    )
    .await
    .map_err(db_error)?
    .ok_or_else(|| email_taken(&email))?;
    state.metrics.registered.inc();
    Ok((StatusCode::CREATED, Json(user)))
}

/// Body of `POST /api/v1/users/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

fn bad_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong email or password",
    )
}

/// `POST /api/v1/users/login` → `{token, token_type, expires_in, user_id}`.
#[tracing::instrument(skip(state, body))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<Value>, ApiError> {
    let email = EmailAddress::parse(&body.email).ok();
    // Bound the work an attacker can ask of argon2.
    if body.password.len() > 1024 {
        state.metrics.logins_failed.inc();
        return Err(bad_credentials());
    }
    let row: Option<(Uuid, String)> = match &email {
        Some(e) => sqlx::query_as("SELECT id, password_hash FROM users WHERE email = $1")
            .bind(e.as_str())
            .fetch_optional(&state.pool)
            .await
            .map_err(db_error)?,
        None => None,
    };
    let (id, hash) = match row {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    // Unknown emails are verified against a dummy hash: same time, same answer.
    let ok = state.passwords.verify(hash, body.password).await;
    let Some(id) = id.filter(|_| ok) else {
        state.metrics.logins_failed.inc();
        return Err(bad_credentials());
    };
    let (token, claims) = state
        .jwt
        .issue(&id.to_string(), state.token_ttl)
        .map_err(|e| ApiError::internal(&e))?;
    state.metrics.logins_ok.inc();
    Ok(Json(json!({
        "token": token,
        "token_type": "Bearer",
        "expires_in": claims.exp.saturating_sub(claims.iat),
        "user_id": id,
    })))
}

async fn load(pool: &PgPool, id: Uuid) -> Result<Option<UserView>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {VIEW} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

fn no_user(id: Uuid) -> ApiError {
    ApiError::not_found(format!("user {id} does not exist"))
}

/// The claims of the request's bearer token, if it carries a valid one.
fn token_claims(state: &AppState, headers: &HeaderMap) -> Option<Claims> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    state.jwt.validate(bearer_token(header)?).ok()
}

/// Refuse a request whose bearer token was revoked. The gateway validates signatures
/// but does not consult the revocation list, so the user service checks the tokens it
/// sees. Redis being down is logged and tolerated here (reads only).
async fn refuse_revoked(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(claims) = token_claims(state, headers) else {
        return Ok(());
    };
    match state.revocations.is_revoked(&claims.jti).await {
        Ok(true) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_revoked",
            "this token was logged out; log in again",
        )),
        Ok(false) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "revocation check skipped: redis unavailable");
            Ok(())
        }
    }
}

/// `GET /api/v1/users/me`.
#[tracing::instrument(skip(state, headers))]
pub async fn me(
    State(state): State<AppState>,
    CurrentUser(id): CurrentUser,
    headers: HeaderMap,
) -> Result<Json<UserView>, ApiError> {
    refuse_revoked(&state, &headers).await?;
    let user = load(&state.pool, id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| no_user(id))?;
    Ok(Json(user))
}

/// Body of `PATCH /api/v1/users/me`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    name: Option<String>,
    email: Option<String>,
    /// New password; needs `current_password`.
    password: Option<String>,
    current_password: Option<String>,
}

/// `PATCH /api/v1/users/me`: change name, email, or password (with the current one).
#[tracing::instrument(skip(state, headers, body))]
pub async fn update_me(
    State(state): State<AppState>,
    CurrentUser(id): CurrentUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<UserView>, ApiError> {
    refuse_revoked(&state, &headers).await?;
    let name = body.name.as_deref().map(UserName::parse).transpose()?;
    let email = body.email.as_deref().map(EmailAddress::parse).transpose()?;
    let password = body.password.as_deref().map(Password::parse).transpose()?;
    if name.is_none() && email.is_none() && password.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_update",
            "give at least one of name, email, password",
        ));
    }
    let new_hash = match password {
        None => None,
        Some(p) => {
            let current: Option<String> =
                sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&state.pool)
                    .await
                    .map_err(db_error)?;
            let current = current.ok_or_else(|| no_user(id))?;
            let given = body.current_password.unwrap_or_default();
            if given.len() > 1024 || !state.passwords.verify(Some(current), given).await {
                return Err(ApiError::forbidden(
                    "changing the password needs the right current_password",
                ));
            }
            Some(
                state
                    .passwords
                    .hash(p.expose().to_owned())
                    .await
                    .map_err(|e| ApiError::internal(&e))?,
            )
        }
    };
    let r: Result<Option<UserView>, sqlx::Error> = sqlx::query_as(&format!(
        "UPDATE users SET name = COALESCE($2, name), email = COALESCE($3, email), \
         password_hash = COALESCE($4, password_hash), updated_at = now() \
         WHERE id = $1 RETURNING {VIEW}"
    ))
    .bind(id)
    .bind(name.as_ref().map(UserName::as_str))
    .bind(email.as_ref().map(EmailAddress::as_str))
    .bind(new_hash)
    .fetch_optional(&state.pool)
    .await;
    match r {
        Ok(Some(u)) => Ok(Json(u)),
        Ok(None) => Err(no_user(id)),
        Err(e) if is_unique_violation(&e) => match &email {
            Some(email) => Err(email_taken(email)),
            None => Err(db_error(e)),
        },
        Err(e) => Err(db_error(e)),
    }
}

/// `POST /api/v1/users/logout`: revoke the bearer token until it expires.
#[tracing::instrument(skip(state, headers))]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = token_claims(&state, &headers).ok_or_else(|| {
        ApiError::unauthorized("logout needs the session's token in Authorization: Bearer")
    })?;
    if let Some(user) = headers.get("x-user-id").and_then(|v| v.to_str().ok()) {
        if user.trim() != claims.sub {
            return Err(ApiError::forbidden("the token belongs to another user"));
        }
    }
    state
        .revocations
        .revoke(&claims.jti, claims.exp)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot revoke: redis unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "revocation_unavailable",
                "cannot record the logout right now; retry",
            )
            .with_retry_after(std::time::Duration::from_secs(1))
        })?;
    state.metrics.logouts.inc();
    Ok(Json(json!({"status": "logged_out", "jti": claims.jti})))
}

/// `GET /internal/tokens/{jti}/revoked` → `{jti, revoked}`.
#[tracing::instrument(skip(state))]
pub async fn token_revoked(
    State(state): State<AppState>,
    IdPath(jti): IdPath,
) -> Result<Json<Value>, ApiError> {
    let revoked = state
        .revocations
        .is_revoked(&jti.to_string())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "revocation check failed: redis unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "revocation_unavailable",
                "the revocation list is unavailable; retry",
            )
            .with_retry_after(std::time::Duration::from_secs(1))
        })?;
    Ok(Json(json!({"jti": jti, "revoked": revoked})))
}

/// `GET /internal/users/{id}`: a user's public profile, for other services.
#[tracing::instrument(skip(state))]
pub async fn internal_user(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<UserView>, ApiError> {
    load(&state.pool, id)
        .await
        .map_err(db_error)?
        .map(Json)
        .ok_or_else(|| no_user(id))
}
