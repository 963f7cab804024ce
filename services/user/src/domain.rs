//! Validated user values: email addresses, names, passwords.

use service_kit::ApiError;

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// An email address, trimmed and lowercased. The check is deliberately shallow (one `@`,
/// a dotted domain, no spaces or control characters): the only real test of an address is
/// mail reaching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Validate `raw`.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let s = raw.trim().to_lowercase();
        let bad = || invalid("invalid_email", format!("{raw:?} is not an email address"));
        if s.len() < 3 || s.len() > 254 {
            return Err(bad());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad());
        }
        Ok(Self(s))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: 1-100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// Validate `raw`.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let s = raw.trim();
        if s.is_empty() || s.chars().count() > 100 || s.chars().any(char::is_control) {
            return Err(invalid(
                "invalid_name",
                "name must be 1-100 characters without control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8-128 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// Validate `raw`.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let n = raw.chars().count();
        if !(8..=128).contains(&n) {
            return Err(invalid(
                "weak_password",
                "password must be 8-128 characters long",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Shops.
    Customer,
    /// Also administers.
    Admin,
}

impl Role {
    /// Parse `customer` or `admin`.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        match raw {
            "customer" => Ok(Self::Customer),
            "admin" => Ok(Self::Admin),
            _ => Err(invalid("invalid_role", "role must be customer or admin")),
        }
    }

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            EmailAddress::parse(" Ann@Example.COM ")
                .expect("valid")
                .as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.com",
            "a@b",
            "a b@c.com",
            "a@b@c.com",
            "a@.com",
            "a\0@b.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_and_names_are_bounded() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"p".repeat(129)).is_err());
        assert!(Password::parse("long enough").is_ok());
        assert!(UserName::parse(" ").is_err());
        assert!(UserName::parse("a\u{7}").is_err());
        assert_eq!(UserName::parse(" Ann ").expect("valid").as_str(), "Ann");
        assert!(format!("{:?}", Password::parse("hunter22").expect("valid")).contains("redacted"));
    }

    proptest! {
        #[test]
        fn parsed_emails_never_hold_nul_or_spaces(s in ".{0,80}") {
            if let Ok(e) = EmailAddress::parse(&s) {
                prop_assert!(!e.as_str().contains('\0') && !e.as_str().contains(' '));
            }
        }
    }
}
