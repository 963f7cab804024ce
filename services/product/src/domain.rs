//! Validated domain values: request bodies are parsed into these at the edge, so handlers
//! and database code never see raw, unchecked input.

use serde::Deserialize;
use service_kit::ApiError;
use uuid::Uuid;

/// Largest price a product may have (cents).
pub const MAX_PRICE_CENTS: i64 = 100_000_000;
/// Largest stock a product may hold; keeps every sum far from `i64` overflow.
pub const MAX_STOCK: i64 = 1_000_000_000;
/// Largest quantity of one product in one reservation.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Most distinct lines in one reservation.
pub const MAX_ITEMS: usize = 100;

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// A product name: 1-200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    /// Validate `raw`.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let s = raw.trim();
        if s.is_empty() || s.chars().count() > 200 {
            return Err(invalid(
                "invalid_name",
                "name must be 1-200 characters long",
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(invalid(
                "invalid_name",
                "name must not contain control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A description: at most 2000 characters; newlines and tabs allowed, other control
/// characters (NUL above all, which Postgres text cannot hold) are not.
pub fn parse_description(raw: &str) -> Result<String, ApiError> {
    if raw.chars().count() > 2000 {
        return Err(invalid(
            "invalid_description",
            "description must be at most 2000 characters",
        ));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(invalid(
            "invalid_description",
            "description must not contain control characters",
        ));
    }
    Ok(raw.trim().to_owned())
}

/// A price in cents.
pub fn parse_price(cents: i64) -> Result<i64, ApiError> {
    if (0..=MAX_PRICE_CENTS).contains(&cents) {
        Ok(cents)
    } else {
        Err(invalid(
            "invalid_price",
            format!("price_cents must be between 0 and {MAX_PRICE_CENTS}, got {cents}"),
        ))
    }
}

/// A stock level.
pub fn parse_stock(stock: i64) -> Result<i64, ApiError> {
    if (0..=MAX_STOCK).contains(&stock) {
        Ok(stock)
    } else {
        Err(invalid(
            "invalid_stock",
            format!("stock must be between 0 and {MAX_STOCK}, got {stock}"),
        ))
    }
}

/// Body of `POST /api/v1/products` (and one entry of the seed file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProductBody {
    /// Optional fixed id (seed data uses fixed ids so scenarios can name products).
    pub id: Option<Uuid>,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Price in cents.
    pub price_cents: i64,
    /// Initial available stock.
    pub stock: i64,
}

/// A validated new product.
#[derive(Debug, Clone)]
pub struct NewProduct {
    /// Id (generated when the body had none).
    pub id: Uuid,
    /// Name.
    pub name: ProductName,
    /// Description.
    pub description: String,
    /// Price in cents.
    pub price_cents: i64,
    /// Initial available stock.
    pub stock: i64,
}

impl NewProduct {
    /// Validate a body.
    pub fn parse(b: NewProductBody) -> Result<Self, ApiError> {
        Ok(Self {
            id: b.id.unwrap_or_else(Uuid::new_v4),
            name: ProductName::parse(&b.name)?,
            description: parse_description(&b.description)?,
            price_cents: parse_price(b.price_cents)?,
            stock: parse_stock(b.stock)?,
        })
    }
}

/// Body of `PUT /api/v1/products/{id}`: the fields to change. `stock` sets the
/// *available* count (a restock); reserved and sold are never written here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductPatchBody {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New price.
    pub price_cents: Option<i64>,
    /// New available stock.
    pub stock: Option<i64>,
}

/// A validated change to a product.
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    /// New name.
    pub name: Option<ProductName>,
    /// New description.
    pub description: Option<String>,
    /// New price.
    pub price_cents: Option<i64>,
    /// New available stock.
    pub stock: Option<i64>,
}

impl ProductPatch {
    /// Validate a body; it must change something.
    pub fn parse(b: ProductPatchBody) -> Result<Self, ApiError> {
        let p = Self {
            name: b.name.as_deref().map(ProductName::parse).transpose()?,
            description: b
                .description
                .as_deref()
                .map(parse_description)
                .transpose()?,
            price_cents: b.price_cents.map(parse_price).transpose()?,
            stock: b.stock.map(parse_stock).transpose()?,
        };
        if p.name.is_none()
            && p.description.is_none()
            && p.price_cents.is_none()
            && p.stock.is_none()
        {
            return Err(invalid(
                "empty_update",
                "give at least one of name, description, price_cents, stock",
            ));
        }
        Ok(p)
    }
}

/// One line of a reservation body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    /// Product.
    pub product_id: Uuid,
    /// Quantity, > 0.
    pub quantity: i64,
}

/// Body of `POST /internal/reservations`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReservationBody {
    /// The order the stock is held for; the idempotency key.
    pub order_id: Uuid,
    /// Lines.
    pub items: Vec<ItemBody>,
}

/// A validated reservation: lines merged per product and sorted by product id, so
/// concurrent reservations lock rows in the same order and cannot deadlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRequest {
    /// Order id.
    pub order_id: Uuid,
    /// (product, quantity), sorted by product, quantities merged.
    pub items: Vec<(Uuid, i64)>,
}

impl ReservationRequest {
    /// Validate a body.
    pub fn parse(b: ReservationBody) -> Result<Self, ApiError> {
        if b.items.is_empty() {
            return Err(invalid("invalid_items", "items must not be empty"));
        }
        if b.items.len() > MAX_ITEMS {
            return Err(invalid(
                "invalid_items",
                format!("at most {MAX_ITEMS} items per reservation"),
            ));
        }
        let mut merged: std::collections::BTreeMap<Uuid, i64> = Default::default();
        for it in &b.items {
            if it.quantity <= 0 || it.quantity > MAX_QUANTITY {
                return Err(invalid(
                    "invalid_quantity",
                    format!(
                        "quantity of {} must be between 1 and {MAX_QUANTITY}, got {}",
                        it.product_id, it.quantity
                    ),
                ));
            }
            let q = merged.entry(it.product_id).or_insert(0);
            *q += it.quantity;
            if *q > MAX_QUANTITY {
                return Err(invalid(
                    "invalid_quantity",
                    format!("total quantity of {} exceeds {MAX_QUANTITY}", it.product_id),
                ));
            }
        }
        Ok(Self {
            order_id: b.order_id,
            items: merged.into_iter().collect(),
        })
    }
}

/// Escape `%`, `_` and `\` so a search term matches literally inside `ILIKE`.
pub fn like_pattern(q: &str) -> String {
    let mut s = String::with_capacity(q.len() + 2);
    s.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(ProductName::parse("  Mug ").expect("valid").as_str(), "Mug");
        for bad in ["", "   ", "a\0b", "a\nb", &"x".repeat(201)] {
            assert!(ProductName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reservation_lines_are_merged_sorted_and_bounded() {
        let a = Uuid::from_u128(2);
        let b = Uuid::from_u128(1);
        let body = ReservationBody {
            order_id: Uuid::from_u128(9),
            items: vec![
                ItemBody {
                    product_id: a,
                    quantity: 1,
                },
                ItemBody {
                    product_id: b,
                    quantity: 2,
                },
                ItemBody {
                    product_id: a,
                    quantity: 3,
                },
            ],
        };
        let r = ReservationRequest::parse(body).expect("valid");
        assert_eq!(r.items, vec![(b, 2), (a, 4)]);
        for q in [0, -1, MAX_QUANTITY + 1] {
            let body = ReservationBody {
                order_id: Uuid::from_u128(9),
                items: vec![ItemBody {
                    product_id: a,
                    quantity: q,
                }],
            };
            assert_eq!(
                ReservationRequest::parse(body)
                    .expect_err("bad quantity")
                    .code,
                "invalid_quantity"
            );
        }
    }

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }

    proptest! {
        #[test]
        fn descriptions_never_keep_nul(s in ".*") {
            if let Ok(d) = parse_description(&s) {
                prop_assert!(!d.contains('\0'));
            }
        }
    }
}
