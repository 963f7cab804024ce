//! Text rendering of command results (tables, durations).

use msctl_stack::orchestrator::ReplicaStatus;

/// Output format chosen with `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    Text,
    /// Machine-readable JSON on stdout.
    Json,
}

/// `1h02m`, `3m10s`, `42s`.
pub fn short_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A left-aligned table with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// The `ps` table.
pub fn ps_table(rows: &[ReplicaStatus]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let state = match (r.state, r.exit_code) {
                (s, Some(code)) => format!("{s} ({code})"),
                (s, None) => s.to_string(),
            };
            let ports = r
                .ports
                .iter()
                .map(|p| format!("127.0.0.1:{}->{}", p.host, p.container))
                .collect::<Vec<_>>()
                .join(", ");
            let component = if r.in_stack {
                r.component.clone()
            } else {
                format!("{} (not in stack file)", r.component)
            };
            vec![
                component,
                r.replica.to_string(),
                state,
                r.health.to_string(),
                r.uptime_secs.map_or("-".to_string(), short_duration),
                r.restarts.to_string(),
                if ports.is_empty() {
                    "-".to_string()
                } else {
                    ports
                },
            ]
        })
        .collect();
    table(
        &[
            "COMPONENT",
            "REPLICA",
            "STATE",
            "HEALTH",
            "UPTIME",
            "RESTARTS",
            "PORTS",
        ],
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(42), "42s");
        assert_eq!(short_duration(190), "3m10s");
        assert_eq!(short_duration(3720), "1h02m");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\nq    22\n");
    }
}
