//! The public catalog: `GET/POST /api/v1/products`, `GET/PUT/DELETE /api/v1/products/{id}`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::error::ApiJson;
use service_kit::ApiError;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use crate::domain::{like_pattern, NewProduct, NewProductBody, ProductPatch, ProductPatchBody};
use crate::state::AppState;
use service_kit::db::db_error;
use service_kit::extract::{ApiQuery, IdPath};

/// Stock counters; `available + reserved + sold` stays equal to the stock put in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    /// Free to reserve.
    pub available: i64,
    /// Held by reservations not yet committed or released.
    pub reserved: i64,
    /// Taken by committed reservations.
    pub sold: i64,
}

/// A product as the API shows it (and as it is cached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Price in cents.
    pub price_cents: i64,
    /// Stock counters.
    pub stock: Stock,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: Uuid,
    name: String,
    description: String,
    price_cents: i64,
    available: i64,
    reserved: i64,
    sold: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ProductRow> for ProductView {
    fn from(r: ProductRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            price_cents: r.price_cents,
            stock: Stock {
                available: r.available,
                reserved: r.reserved,
                sold: r.sold,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const COLUMNS: &str =
    "id, name, description, price_cents, available, reserved, sold, created_at, updated_at";

/// Query of `GET /api/v1/products`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    /// Case-insensitive substring of the name or description.
    q: Option<String>,
    /// Page size, 1-100 (default 20).
    limit: Option<i64>,
    /// Items to skip (default 0).
    offset: Option<i64>,
}

/// A page of products.
#[derive(Debug, Serialize)]
pub struct ProductPage {
    items: Vec<ProductView>,
    total: i64,
    limit: i64,
    offset: i64,
}

fn query_error(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

/// `GET /api/v1/products?q=&limit=&offset=`.
#[tracing::instrument(skip(state))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ProductPage>, ApiError> {
    let limit = p.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(query_error("limit must be between 1 and 100"));
    }
    let offset = p.offset.unwrap_or(0);
    if !(0..=1_000_000).contains(&offset) {
        return Err(query_error("offset must be between 0 and 1000000"));
    }
    let pattern = match p.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        None => None,
        Some(q) if q.chars().count() > 200 || q.chars().any(char::is_control) => {
            return Err(query_error(
                "q must be at most 200 characters without control characters",
            ))
        }
        Some(q) => Some(like_pattern(q)),
    };
    let filter =
        "deleted_at IS NULL AND ($1::text IS NULL OR name ILIKE $1 OR description ILIKE $1)";
    let rows: Vec<ProductRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM products WHERE {filter} ORDER BY lower(name), id LIMIT $2 OFFSET $3"
    ))
    .bind(&pattern)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.pool)
    .await
    .map_err(db_error)?;
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM products WHERE {filter}"))
        .bind(&pattern)
        .fetch_one(&state.pool)
        .await
        .map_err(db_error)?;
    Ok(Json(ProductPage {
        items: rows.into_iter().map(Into::into).collect(),
        total,
        limit,
        offset,
    }))
}

/// Load a live (not deleted) product.
#[tracing::instrument(skip(pool))]
pub async fn load(pool: &PgPool, id: Uuid) -> Result<Option<ProductView>, sqlx::Error> {
    let row: Option<ProductRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM products WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found(format!("product {id} does not exist"))
}

/// `GET /api/v1/products/{id}`: Redis first, Postgres on a miss (`X-Cache: hit|miss`).
#[tracing::instrument(skip(state))]
pub async fn get_one(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    if let Some(v) = state.cache.get(id).await {
        return Ok(with_cache_header(Json(v).into_response(), "hit"));
    }
    let view = load(&state.pool, id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(id))?;
    state.cache.put(&view).await;
    Ok(with_cache_header(Json(view).into_response(), "miss"))
}

fn with_cache_header(mut r: Response, v: &'static str) -> Response {
    r.headers_mut()
        .insert("x-cache", HeaderValue::from_static(v));
    r
}

/// Insert `p` unless a product with its id exists; true when inserted.
pub async fn insert<'e, E>(executor: E, p: &NewProduct) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let r = sqlx::query(
        "INSERT INTO products (id, name, description, price_cents, available) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(p.id)
    .bind(p.name.as_str())
    .bind(&p.description)
    .bind(p.price_cents)
    .bind(p.stock)
    .execute(executor)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// `POST /api/v1/products` (catalog admins).
#[tracing::instrument(skip(state, headers, body))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewProductBody>,
) -> Result<(StatusCode, Json<ProductView>), ApiError> {
    state.admins.check(&headers)?;
    let p = NewProduct::parse(body)?;
    if !insert(&state.pool, &p).await.map_err(db_error)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "product_exists",
            format!("product {} already exists; use PUT to change it", p.id),
        ));
    }
    let view = load(&state.pool, p.id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found(p.id))?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `PUT /api/v1/products/{id}` (catalog admins): change the given fields.
#[tracing::instrument(skip(state, headers, body))]
pub async fn update(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ProductPatchBody>,
) -> Result<Json<ProductView>, ApiError> {
    state.admins.check(&headers)?;
    let p = ProductPatch::parse(body)?;
    let row: Option<ProductRow> = sqlx::query_as(&format!(
        "UPDATE products SET name = COALESCE($2, name), description = COALESCE($3, description), \
         price_cents = COALESCE($4, price_cents), available = COALESCE($5, available), \
         updated_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(p.name.as_ref().map(|n| n.as_str()))
    .bind(p.description.as_deref())
    .bind(p.price_cents)
    .bind(p.stock)
    .fetch_optional(&state.pool)
    .await
    .map_err(db_error)?;
    let view: ProductView = row.ok_or_else(|| not_found(id))?.into();
    state.cache.invalidate(&[id]).await;
    Ok(Json(view))
}

/// `DELETE /api/v1/products/{id}` (catalog admins): a soft delete, so reservations that
/// hold its stock can still be released or committed.
#[tracing::instrument(skip(state, headers))]
pub async fn delete(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.admins.check(&headers)?;
    let r = sqlx::query(
        "UPDATE products SET deleted_at = now(), updated_at = now() \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .execute(&state.pool)
    .await
    .map_err(db_error)?;
    state.cache.invalidate(&[id]).await;
    if r.rows_affected() == 0 {
        return Err(not_found(id));
    }
    Ok(StatusCode::NO_CONTENT)
}
