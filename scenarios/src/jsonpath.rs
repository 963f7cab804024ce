//! A small JSON path: `$`, `.field`, `["field"]`, `[index]` (negative counts from the end)
//! and a final `.length()`. Enough to point at one value of a response body, which is all
//! expectations and captures need; filters and wildcards are deliberately not supported.

use std::fmt;

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object member.
    Field(String),
    /// An array element; negative counts from the end.
    Index(i64),
    /// The length of an array, object or string.
    Length,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    segments: Vec<Segment>,
}

fn plain_field(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name != "length()"
}

impl JsonPath {
    /// Parses `$.a.b[0]["c d"].length()`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid JSON path {text:?}: {why}");
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| bad("it must start with '$'"))?;
        let chars: Vec<char> = rest.chars().collect();
        let mut i = 0;
        let mut segments = Vec::new();
        while i < chars.len() {
            if segments.last() == Some(&Segment::Length) {
                return Err(bad("length() must come last"));
            }
            match chars[i] {
                '.' => {
                    i += 1;
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name == "length()" {
                        segments.push(Segment::Length);
                    } else if plain_field(&name) {
                        segments.push(Segment::Field(name));
                    } else {
                        return Err(bad(&format!(
                            "{name:?} is not a plain field name; write it as [\"{name}\"]"
                        )));
                    }
                }
                '[' => {
                    i += 1;
                    if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                        let quote = chars[i];
                        i += 1;
                        let mut name = String::new();
                        loop {
                            match chars.get(i) {
                                None => return Err(bad("unclosed quoted field")),
                                Some('\\') => {
                                    let c = chars.get(i + 1).ok_or_else(|| bad("dangling '\\'"))?;
                                    name.push(*c);
                                    i += 2;
                                }
                                Some(c) if *c == quote => {
                                    i += 1;
                                    break;
                                }
                                Some(c) => {
                                    name.push(*c);
                                    i += 1;
                                }
                            }
                        }
                        if chars.get(i) != Some(&']') {
                            return Err(bad("expected ']' after the quoted field"));
                        }
                        i += 1;
                        segments.push(Segment::Field(name));
                    } else {
                        let start = i;
                        while i < chars.len() && chars[i] != ']' {
                            i += 1;
                        }
                        if i == chars.len() {
                            return Err(bad("unclosed '['"));
                        }
                        let idx: String = chars[start..i].iter().collect();
                        i += 1;
                        let n = idx
                            .trim()
                            .parse::<i64>()
                            .map_err(|_| bad(&format!("{idx:?} is not an array index")))?;
                        segments.push(Segment::Index(n));
                    }
                }
                c => return Err(bad(&format!("unexpected {c:?}; use .field or [index]"))),
            }
        }
        Ok(Self { segments })
    }

    /// Builds a path from segments.
    pub fn from_segments(segments: Vec<Segment>) -> Self {
        Self { segments }
    }

    /// The value the path points at, if it exists.
    pub fn get(&self, root: &Value) -> Option<Value> {
        let mut cur = root;
        for s in &self.segments {
            match s {
                Segment::Field(f) => cur = cur.as_object()?.get(f)?,
                Segment::Index(n) => {
                    let a = cur.as_array()?;
                    let i = if *n < 0 {
                        a.len().checked_sub(n.unsigned_abs() as usize)?
                    } else {
                        *n as usize
                    };
                    cur = a.get(i)?;
                }
                Segment::Length => {
                    let len = match cur {
                        Value::Array(a) => a.len(),
                        Value::Object(o) => o.len(),
                        Value::String(s) => s.chars().count(),
                        _ => return None,
                    };
                    return Some(Value::from(len));
                }
            }
        }
        Some(cur.clone())
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for s in &self.segments {
            match s {
                Segment::Field(n) if plain_field(n) => write!(f, ".{n}")?,
                Segment::Field(n) => {
                    write!(f, "[\"{}\"]", n.replace('\\', "\\\\").replace('"', "\\\""))?
                }
                Segment::Index(i) => write!(f, "[{i}]")?,
                Segment::Length => f.write_str(".length()")?,
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

    #[test]
    fn paths_select_values() {
        let v = json!({"order": {"items": [{"sku": "a"}, {"sku": "b"}], "odd key": 1}});
        let get = |p: &str| JsonPath::parse(p).expect(p).get(&v);
        assert_eq!(get("$.order.items[1].sku"), Some(json!("b")));
        assert_eq!(get("$.order.items[-1].sku"), Some(json!("b")));
        assert_eq!(get("$.order[\"odd key\"]"), Some(json!(1)));
        assert_eq!(get("$['order'].items.length()"), Some(json!(2)));
        assert_eq!(get("$.order.items[2]"), None);
        assert_eq!(get("$.order.missing"), None);
        assert_eq!(get("$"), Some(v.clone()));
    }

    #[test]
    fn malformed_paths_are_rejected() {
        for p in [
            "order",
            "$.",
            "$[",
            "$[x]",
            "$.a b",
            "$.length().x",
            "$[\"a",
        ] {
            assert!(JsonPath::parse(p).is_err(), "{p} should fail");
        }
    }

    fn segment() -> impl Strategy<Value = Segment> {
        prop_oneof![
            "[a-z_][a-z0-9_-]{0,8}".prop_map(Segment::Field),
            ".{0,8}".prop_map(Segment::Field),
            (-5i64..20).prop_map(Segment::Index),
        ]
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(segs in proptest::collection::vec(segment(), 0..6), len in any::<bool>()) {
            let mut segs = segs;
            if len { segs.push(Segment::Length); }
            let p = JsonPath::from_segments(segs);
            let text = p.to_string();
            prop_assert_eq!(JsonPath::parse(&text).expect("round trip"), p);
        }

        #[test]
        fn a_built_path_finds_what_was_put_there(keys in proptest::collection::vec("[a-z]{1,6}", 1..5), leaf in any::<i64>()) {
            let mut v = json!(leaf);
            for k in keys.iter().rev() {
                v = json!({ k.clone(): [v] });
            }
            let segs = keys.iter().flat_map(|k| [Segment::Field(k.clone()), Segment::Index(0)]).collect();
            prop_assert_eq!(JsonPath::from_segments(segs).get(&v), Some(json!(leaf)));
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,30}") {
            if let Ok(p) = JsonPath::parse(&format!("${s}")) {
                let _ = p.get(&json!({"a": [1, {"b": "c"}]}));
            }
        }
    }
}
