//! Value matchers shared by JSON-path, header and SQL expectations: `equals`,
//! `not_equals`, `exists`, `matches` (regex), `gte` / `lte`, `one_of`.
//!
//! Comparison is deliberately a little loose where scenario authors need it: numbers compare
//! by value (`1` equals `1.0`), and a string that reads as a number equals that number,
//! because a value captured from one place (`"{{total}}"`) is often compared with a number
//! from another (a SQL `sum`).

use regex::Regex;
use serde_json::Value;

use crate::template::render_json;

/// What a value must satisfy; every set field must hold.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// Equal to this (templated).
    pub equals: Option<Value>,
    /// Not equal to this (templated).
    pub not_equals: Option<Value>,
    /// Present (`true`) or absent (`false`).
    pub exists: Option<bool>,
    /// The value (as text) matches this regex.
    pub matches: Option<Regex>,
    /// A number at least this.
    pub gte: Option<f64>,
    /// A number at most this.
    pub lte: Option<f64>,
    /// Equal to one of these (templated).
    pub one_of: Option<Vec<Value>>,
}

/// Text of a value as a user reads it: strings bare, everything else as JSON.
pub fn show(v: Option<&Value>) -> String {
    match v {
        None => "nothing (absent)".to_string(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// Loose equality (see the module header).
pub fn loose_eq(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::Number(_), _) | (_, Value::Number(_)) => match (as_number(a), as_number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| loose_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| loose_eq(v, w)))
        }
        _ => false,
    }
}

impl Matcher {
    /// A matcher that only checks equality.
    pub fn equals(v: Value) -> Self {
        Self {
            equals: Some(v),
            ..Self::default()
        }
    }

    /// Whether nothing is checked beyond presence.
    pub fn is_empty(&self) -> bool {
        self.equals.is_none()
            && self.not_equals.is_none()
            && self.exists.is_none()
            && self.matches.is_none()
            && self.gte.is_none()
            && self.lte.is_none()
            && self.one_of.is_none()
    }

    /// Every template inside the matcher's values.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.equals
            .iter()
            .chain(self.not_equals.iter())
            .chain(self.one_of.iter().flatten())
    }

    /// Checks `actual`; the error says what was expected and what was seen.
    pub fn check(
        &self,
        actual: Option<&Value>,
        resolve: &dyn Fn(&str) -> Result<Value, String>,
    ) -> Result<(), String> {
        let seen = || show(actual);
        match (self.exists, actual) {
            (Some(false), Some(_)) => return Err(format!("expected absent, saw {}", seen())),
            (Some(false), None) => return Ok(()),
            (_, None) => return Err("expected a value, saw nothing (absent)".to_string()),
            _ => {}
        }
        let Some(actual) = actual else {
            return Ok(());
        };
        if let Some(want) = &self.equals {
            let want = render_json(want, resolve)?;
            if !loose_eq(&want, actual) {
                return Err(format!("expected {}, saw {}", show(Some(&want)), seen()));
            }
        }
        if let Some(want) = &self.not_equals {
            let want = render_json(want, resolve)?;
            if loose_eq(&want, actual) {
                return Err(format!(
                    "expected anything but {}, saw it",
                    show(Some(&want))
                ));
            }
        }
        if let Some(list) = &self.one_of {
            let list: Vec<Value> = list
                .iter()
                .map(|v| render_json(v, resolve))
                .collect::<Result<_, _>>()?;
            if !list.iter().any(|w| loose_eq(w, actual)) {
                return Err(format!(
                    "expected one of {}, saw {}",
                    Value::Array(list),
                    seen()
                ));
            }
        }
        if let Some(re) = &self.matches {
            let text = match actual {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !re.is_match(&text) {
                return Err(format!("expected a match for /{re}/, saw {}", seen()));
            }
        }
        if self.gte.is_some() || self.lte.is_some() {
            let n =
                as_number(actual).ok_or_else(|| format!("expected a number, saw {}", seen()))?;
            if let Some(min) = self.gte {
                if n < min {
                    return Err(format!("expected at least {min}, saw {}", seen()));
                }
            }
            if let Some(max) = self.lte {
                if n > max {
                    return Err(format!("expected at most {max}, saw {}", seen()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn none(n: &str) -> Result<Value, String> {
        if n == "total" {
            Ok(json!("1500"))
        } else {
            Err(format!("unknown {n}"))
        }
    }

    #[test]
    fn equality_is_loose_on_numbers_only() {
        assert!(loose_eq(&json!(1), &json!(1.0)));
        assert!(loose_eq(&json!("1500"), &json!(1500)));
        assert!(!loose_eq(&json!("a"), &json!(1)));
        assert!(!loose_eq(&json!(true), &json!("true")));
        assert!(loose_eq(&json!({"a": [1]}), &json!({"a": [1.0]})));
    }

    #[test]
    fn templated_expectations_are_rendered() {
        let m = Matcher::equals(json!("{{total}}"));
        assert!(m.check(Some(&json!(1500)), &none).is_ok());
        let err = m.check(Some(&json!(1400)), &none).expect_err("differs");
        assert_eq!(err, "expected \"1500\", saw 1400");
    }

    #[test]
    fn every_matcher_reports_what_it_saw() {
        let m = Matcher {
            matches: Some(Regex::new("^ord-").expect("regex")),
            ..Default::default()
        };
        assert!(m.check(Some(&json!("ord-1")), &none).is_ok());
        assert!(m
            .check(Some(&json!("x")), &none)
            .expect_err("no match")
            .contains("\"x\""));
        let absent = Matcher {
            exists: Some(false),
            ..Default::default()
        };
        assert!(absent.check(None, &none).is_ok());
        assert!(absent.check(Some(&json!(1)), &none).is_err());
        assert!(Matcher::default()
            .check(None, &none)
            .expect_err("absent")
            .contains("absent"));
        let range = Matcher {
            gte: Some(1.0),
            lte: Some(3.0),
            ..Default::default()
        };
        assert!(range.check(Some(&json!(2)), &none).is_ok());
        assert!(range.check(Some(&json!(4)), &none).is_err());
        assert!(range.check(Some(&json!("x")), &none).is_err());
        let one = Matcher {
            one_of: Some(vec![json!("confirmed"), json!("cancelled")]),
            ..Default::default()
        };
        assert!(one.check(Some(&json!("cancelled")), &none).is_ok());
        assert!(one.check(Some(&json!("pending")), &none).is_err());
    }

    proptest! {
        #[test]
        fn a_value_equals_itself(n in any::<i64>(), s in ".{0,10}") {
            for v in [json!(n), json!(s), json!([n, s])] {
                prop_assert!(Matcher::equals(v.clone()).check(Some(&v), &none).is_ok() || v.to_string().contains("{{"));
            }
        }

        #[test]
        fn range_checks_agree_with_arithmetic(n in -1000i64..1000, lo in -1000i64..1000, hi in -1000i64..1000) {
            let m = Matcher { gte: Some(lo as f64), lte: Some(hi as f64), ..Default::default() };
            prop_assert_eq!(m.check(Some(&json!(n)), &none).is_ok(), lo <= n && n <= hi);
        }
    }
}
