//! Seeding the catalog from `fixtures/seed/products.json`, idempotently: products are
//! inserted by their fixed id and existing ones are left alone (re-seeding a running stack
//! must not reset stock that orders have already moved).
//!
//! Two ways in: `product-service --seed FILE` (a one-shot job) and `POST /admin/seed` with
//! the file's content as the body (admin token).

use serde::{Deserialize, Serialize};
use service_kit::ApiError;
use sqlx::PgPool;

use crate::domain::{NewProduct, NewProductBody};
use service_kit::db::db_error;

/// The seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Products; each must carry an `id`.
    pub products: Vec<NewProductBody>,
}

/// What a seeding run did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SeedReport {
    /// Products inserted.
    pub created: u64,
    /// Products already present (left unchanged).
    pub existing: u64,
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// An entry is invalid.
    #[error("products[{index}]: {error}")]
    Invalid {
        /// Position in the file.
        index: usize,
        /// What is wrong.
        error: ApiError,
    },
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
                format!("products[{index}]: {}", error.message),
            ),
            SeedError::Db(e) => db_error(e),
        }
    }
}

/// Insert every product of `file` that is not there yet, in one transaction.
#[tracing::instrument(skip(pool, file), fields(products = file.products.len()))]
pub async fn seed(pool: &PgPool, file: SeedFile) -> Result<SeedReport, SeedError> {
    let mut products = Vec::with_capacity(file.products.len());
    for (index, body) in file.products.into_iter().enumerate() {
        if body.id.is_none() {
            return Err(SeedError::Invalid {
                index,
                error: ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "missing_id",
                    "seed products need a fixed id so seeding is idempotent",
                ),
            });
        }
        products
            .push(NewProduct::parse(body).map_err(|error| SeedError::Invalid { index, error })?);
    }
    let mut tx = pool.begin().await?;
    let mut report = SeedReport::default();
    for p in &products {
        if crate::routes::products::insert(&mut *tx, p).await? {
            report.created += 1;
        } else {
            report.existing += 1;
        }
    }
    tx.commit().await?;
    Ok(report)
}
