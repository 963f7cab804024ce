//! Seeding users from `fixtures/seed/users.json`, idempotently: users are inserted by
//! their fixed id and existing ones (same id or same email) are left alone.
//!
//! Two ways in: `user-service --seed FILE` (a one-shot job) and `POST /admin/seed` with
//! the file's content as the body (admin token).

use serde::{Deserialize, Serialize};
use service_kit::ApiError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{EmailAddress, Password, Role, UserName};
use crate::password::PasswordHashing;
use crate::routes::users::insert_user;
use service_kit::db::db_error;

/// One seed user; the password is hashed on the way in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    id: Uuid,
    email: String,
    name: String,
    password: String,
    #[serde(default = "customer")]
    role: String,
}

fn customer() -> String {
    "customer".into()
}

/// The seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Users.
    pub users: Vec<SeedUser>,
}

/// What a seeding run did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SeedReport {
    /// Users inserted.
    pub created: u64,
    /// Users already present (left unchanged).
    pub existing: u64,
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// An entry is invalid.
    #[error("users[{index}]: {error}")]
    Invalid {
        /// Position in the file.
        index: usize,
        /// What is wrong.
        error: ApiError,
    },
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] crate::password::HashError),
    /// Database trouble.
    #[error("seeding failed: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<SeedError> for ApiError {
    fn from(e: SeedError) -> Self {
        match e {
            SeedError::Invalid { index, error } => ApiError::new(
                error.status,
                error.code,
                format!("users[{index}]: {}", error.message),
            ),
            SeedError::Hash(e) => ApiError::internal(&e),
            SeedError::Db(e) => db_error(e),
        }
    }
}

struct Valid {
    id: Uuid,
    email: EmailAddress,
    name: UserName,
    password: Password,
    role: Role,
}

/// Insert every user of `file` that is not there yet.
#[tracing::instrument(skip_all, fields(users = file.users.len()))]
pub async fn seed(
    pool: &PgPool,
    passwords: &PasswordHashing,
    file: SeedFile,
) -> Result<SeedReport, SeedError> {
    let mut valid = Vec::with_capacity(file.users.len());
    for (index, u) in file.users.into_iter().enumerate() {
        let parsed = (|| {
            Ok::<_, ApiError>(Valid {
                id: u.id,
                email: EmailAddress::parse(&u.email)?,
                name: UserName::parse(&u.name)?,
                password: Password::parse(&u.password)?,
                role: Role::parse(&u.role)?,
            })
        })();
        valid.push(parsed.map_err(|error| SeedError::Invalid { index, error })?);
    }
    let mut report = SeedReport::default();
    for u in valid {
        // Skip the (slow) hash for users already present.
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 OR email = $2")
                .bind(u.id)
                .bind(u.email.as_str())
                .fetch_optional(pool)
                .await?;
        if exists.is_some() {
            report.existing += 1;
            continue;
        }
        let hash = passwords.hash(u.password.expose().to_owned()).await?;
        match insert_user(pool, u.id, &u.email, &u.name, &hash, u.role.as_str()).await? {
            Some(_) => report.created += 1,
            None => report.existing += 1,
        }
    }
    Ok(report)
}
