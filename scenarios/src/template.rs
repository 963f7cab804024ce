//! `{{name}}` templating for scenario strings.
//!
//! A placeholder names a variable (`{{token}}`), a builtin (`{{gateway}}`, `{{run_id}}`,
//! `{{uuid}}`, `{{scenario}}`) or a component endpoint (`{{registry:8500}}`, `{{gateway}}`
//! being the gateway's first published port). Templates are parsed once, when the scenario
//! file is read, so an unclosed `{{` is a parse error with a position, not a runtime surprise.

use serde_json::Value;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as is.
    Literal(String),
    /// A `{{name}}` placeholder (trimmed name).
    Placeholder(String),
}

/// A parsed template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a placeholder names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference<'a> {
    /// A variable (declared, captured, or given with `--var`).
    Var(&'a str),
    /// A fresh UUID v4 for every occurrence.
    Uuid,
    /// The endpoint of a component: `http://127.0.0.1:PORT`; `None` = first published port.
    Endpoint(&'a str, Option<u16>),
}

/// Classifies a placeholder name.
pub fn reference(name: &str) -> Reference<'_> {
    if name == "uuid" {
        return Reference::Uuid;
    }
    if name == "gateway" {
        return Reference::Endpoint("gateway", None);
    }
    if let Some((component, port)) = name.rsplit_once(':') {
        if let Ok(p) = port.parse::<u16>() {
            return Reference::Endpoint(component, Some(p));
        }
    }
    Reference::Var(name)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

impl Template {
    /// Parses `text`; fails on an unclosed `{{` or an invalid placeholder name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed \"{{{{\" in {text:?}; close it with \"}}}}\""))?;
            let name = after[..end].trim();
            if !valid_name(name) {
                return Err(format!(
                    "\"{{{{{name}}}}}\" is not a valid placeholder; use a variable name such as {{{{token}}}} or a component endpoint such as {{{{registry:8500}}}}"
                ));
            }
            parts.push(Part::Placeholder(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// The placeholders, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(n) => Some(n.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Whether rendering twice may differ (`{{uuid}}`).
    pub fn is_volatile(&self) -> bool {
        self.placeholders().any(|n| n == "uuid")
    }

    /// Renders to a string; `resolve` gives each placeholder's value (strings are inserted
    /// bare, other JSON values in their JSON form).
    pub fn render(
        &self,
        resolve: &dyn Fn(&str) -> Result<Value, String>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(t) => out.push_str(t),
                Part::Placeholder(n) => match resolve(n)? {
                    Value::String(s) => out.push_str(&s),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }

    /// Renders to a JSON value: a template that is exactly one placeholder keeps the
    /// value's type (a captured number stays a number); anything else is a string.
    pub fn render_value(
        &self,
        resolve: &dyn Fn(&str) -> Result<Value, String>,
    ) -> Result<Value, String> {
        if let [Part::Placeholder(n)] = self.parts.as_slice() {
            return resolve(n);
        }
        self.render(resolve).map(Value::String)
    }
}

/// Renders every string inside a JSON value (keys included).
pub fn render_json(
    value: &Value,
    resolve: &dyn Fn(&str) -> Result<Value, String>,
) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Template::parse(s)?.render_value(resolve)?,
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| render_json(v, resolve))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => {
            let mut m = serde_json::Map::new();
            for (k, v) in o {
                m.insert(
                    Template::parse(k)?.render(resolve)?,
                    render_json(v, resolve)?,
                );
            }
            Value::Object(m)
        }
        other => other.clone(),
    })
}

/// Every placeholder inside a JSON value's strings; errors on a malformed template.
pub fn json_placeholders(value: &Value, out: &mut Vec<String>) -> Result<(), String> {
    match value {
        Value::String(s) => out.extend(Template::parse(s)?.placeholders().map(String::from)),
        Value::Array(a) => {
            for v in a {
                json_placeholders(v, out)?;
            }
        }
        Value::Object(o) => {
            for (k, v) in o {
                out.extend(Template::parse(k)?.placeholders().map(String::from));
                json_placeholders(v, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn vars(name: &str) -> Result<Value, String> {
        match name {
            "token" => Ok(json!("abc")),
            "n" => Ok(json!(42)),
            "gateway" => Ok(json!("http://127.0.0.1:1")),
            other => Err(format!("unknown variable {other:?}")),
        }
    }

    #[test]
    fn placeholders_are_substituted() {
        let t = Template::parse("Bearer {{token}} / {{ n }}").expect("parses");
        assert_eq!(t.render(&vars).expect("renders"), "Bearer abc / 42");
        assert_eq!(t.placeholders().collect::<Vec<_>>(), vec!["token", "n"]);
    }

    #[test]
    fn a_lone_placeholder_keeps_its_type() {
        let t = Template::parse("{{n}}").expect("parses");
        assert_eq!(t.render_value(&vars).expect("renders"), json!(42));
        let body = json!({"qty": "{{n}}", "id": "x-{{n}}", "list": ["{{token}}"]});
        assert_eq!(
            render_json(&body, &vars).expect("renders"),
            json!({"qty": 42, "id": "x-42", "list": ["abc"]})
        );
    }

    #[test]
    fn unknown_and_malformed_placeholders_fail() {
        assert!(Template::parse("{{token").is_err());
        assert!(Template::parse("{{}}").is_err());
        assert!(Template::parse("{{a b}}").is_err());
        let err = Template::parse("{{nope}}")
            .expect("parses")
            .render(&vars)
            .expect_err("unknown");
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn references_are_classified() {
        assert_eq!(reference("uuid"), Reference::Uuid);
        assert_eq!(reference("gateway"), Reference::Endpoint("gateway", None));
        assert_eq!(
            reference("registry:8500"),
            Reference::Endpoint("registry", Some(8500))
        );
        assert_eq!(reference("token"), Reference::Var("token"));
    }

    proptest! {
        #[test]
        fn text_without_braces_renders_unchanged(s in "[^{}]*") {
            let t = Template::parse(&s).expect("parses");
            prop_assert_eq!(t.render(&vars).expect("renders"), s);
        }

        #[test]
        fn substitution_is_literal(prefix in "[^{}]{0,20}", suffix in "[^{}]{0,20}", value in "[^{}]{0,20}") {
            let t = Template::parse(&format!("{prefix}{{{{v}}}}{suffix}")).expect("parses");
            let v = value.clone();
            let out = t.render(&move |_| Ok(Value::String(v.clone()))).expect("renders");
            prop_assert_eq!(out, format!("{prefix}{value}{suffix}"));
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".{0,60}") {
            if let Ok(t) = Template::parse(&s) {
                let _ = t.render(&vars);
            }
        }
    }
}
