//! Validated payment values and the deterministic decline rules.

use serde::Deserialize;
use service_kit::ApiError;
use uuid::Uuid;

/// The test card that is always declined.
pub const DECLINED_CARD: &str = "4000000000000002";
/// Charges above this many cents are declined.
pub const AMOUNT_LIMIT_CENTS: i64 = 1_000_000;

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// A card number: 12-19 digits (spaces and dashes ignored) with a valid Luhn check digit.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl std::fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardNumber(…{})", self.last4())
    }
}

impl CardNumber {
    /// Validate `raw`.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let digits: String = raw.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if !(12..=19).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid("invalid_card", "card must be 12-19 digits"));
        }
        if !luhn(&digits) {
            return Err(invalid("invalid_card", "card number fails the Luhn check"));
        }
        Ok(Self(digits))
    }

    /// The last four digits (all that is stored).
    pub fn last4(&self) -> &str {
        &self.0[self.0.len().saturating_sub(4)..]
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Body of `POST /internal/payments/charge`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChargeBody {
    /// The order paid for; the idempotency key.
    pub order_id: Uuid,
    /// Amount in cents, > 0.
    pub amount_cents: i64,
    /// Card number.
    pub card: String,
}

/// A validated charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// Order.
    pub order_id: Uuid,
    /// Amount in cents.
    pub amount_cents: i64,
    /// Card.
    pub card: CardNumber,
}

impl Charge {
    /// Validate a body.
    pub fn parse(b: ChargeBody) -> Result<Self, ApiError> {
        if b.amount_cents <= 0 {
            return Err(invalid(
                "invalid_amount",
                format!("amount_cents must be positive, got {}", b.amount_cents),
            ));
        }
        Ok(Self {
            order_id: b.order_id,
            amount_cents: b.amount_cents,
            card: CardNumber::parse(&b.card)?,
        })
    }

    /// Why the (simulated) processor declines this charge, if it does.
    pub fn decline_reason(&self) -> Option<&'static str> {
        if self.card.as_str() == DECLINED_CARD {
            Some("card_declined")
        } else if self.amount_cents > AMOUNT_LIMIT_CENTS {
            Some("amount_over_limit")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn charge(card: &str, amount_cents: i64) -> Result<Charge, ApiError> {
        Charge::parse(ChargeBody {
            order_id: Uuid::nil(),
            amount_cents,
            card: card.into(),
        })
    }

    #[test]
    fn declines_are_deterministic() {
        let ok = charge("4242424242424242", 1_000_000).expect("valid");
        assert_eq!(ok.decline_reason(), None);
        assert_eq!(ok.card.last4(), "4242");
        let card = charge(DECLINED_CARD, 100).expect("valid");
        assert_eq!(card.decline_reason(), Some("card_declined"));
        let big = charge("4242 4242 4242 4242", 1_000_001).expect("valid");
        assert_eq!(big.decline_reason(), Some("amount_over_limit"));
    }

    #[test]
    fn bad_cards_and_amounts_are_refused() {
        for (card, amount, code) in [
            ("4242424242424241", 1, "invalid_card"),
            ("42", 1, "invalid_card"),
            ("4242x24242424242", 1, "invalid_card"),
            ("4242424242424242", 0, "invalid_amount"),
            ("4242424242424242", -5, "invalid_amount"),
        ] {
            assert_eq!(charge(card, amount).expect_err(card).code, code);
        }
    }

    proptest! {
        #[test]
        fn card_parsing_never_panics(s in ".{0,40}") {
            let _ = CardNumber::parse(&s);
        }
    }
}
