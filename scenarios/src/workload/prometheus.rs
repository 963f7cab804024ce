//! Just enough of the Prometheus text format to read counters: `name{k="v",…} value`
//! lines; comments, timestamps and exemplars are ignored.

/// One series: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Metric name.
    pub name: String,
    /// Labels in file order.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// Every series of an exposition.
pub fn parse(text: &str) -> Vec<Series> {
    text.lines().filter_map(line).collect()
}

fn line(l: &str) -> Option<Series> {
    let l = l.trim();
    if l.is_empty() || l.starts_with('#') {
        return None;
    }
    let (head, rest) = match l.find('{') {
        Some(open) => {
            let close = l[open..].rfind('}')? + open;
            (&l[..close + 1], &l[close + 1..])
        }
        None => {
            let sp = l.find(char::is_whitespace)?;
            (&l[..sp], &l[sp..])
        }
    };
    let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
    let (name, labels) = match head.find('{') {
        Some(open) => (&head[..open], labels(&head[open + 1..head.len() - 1])),
        None => (head, Vec::new()),
    };
    Some(Series {
        name: name.to_string(),
        labels,
        value,
    })
}

fn labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let Some(stripped) = after.strip_prefix('"') else {
            break;
        };
        let mut value = String::new();
        let mut chars = stripped.char_indices();
        let mut end = stripped.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key, value));
        rest = &stripped[end.min(stripped.len())..];
    }
    out
}

/// Σ of `name` over the series whose labels include every `(key, value)` of `matching`.
pub fn sum(series: &[Series], name: &str, matching: &[(&str, &str)]) -> f64 {
    series
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            matching
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_the_series_that_match() {
        let text = "# HELP x\n# TYPE http_requests_total counter\n\
            http_requests_total{method=\"POST\",route=\"/api/v1/orders\",status=\"202\"} 7\n\
            http_requests_total{method=\"POST\",route=\"/api/v1/orders\",status=\"503\"} 2\n\
            http_requests_total{method=\"GET\",route=\"/api/v1/orders\",status=\"200\"} 40\n\
            upstream_retries_total{service=\"product-service\"} 3\n\
            plain 1.5 1700000000\n";
        let s = parse(text);
        assert_eq!(
            sum(
                &s,
                "http_requests_total",
                &[("method", "POST"), ("route", "/api/v1/orders")]
            ),
            9.0
        );
        assert_eq!(sum(&s, "upstream_retries_total", &[]), 3.0);
        assert_eq!(sum(&s, "plain", &[]), 1.5);
        assert_eq!(sum(&s, "missing", &[]), 0.0);
    }

    #[test]
    fn escaped_quotes_in_label_values_do_not_end_the_value() {
        let s = parse("m{a=\"x\\\"y\",b=\"z\"} 2\n");
        assert_eq!(
            s[0].labels,
            vec![("a".into(), "x\"y".into()), ("b".into(), "z".into())]
        );
    }
}
