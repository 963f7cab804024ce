//! The components table: one row per replica with state, health, restarts, Docker stats
//! and request figures from its /metrics.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

use super::{block, state_color};
use crate::dash::state::{human_bytes, Snapshot};

/// Draws the table with the selected row highlighted (scrolled into view).
pub fn draw(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let status = snap
        .replicas
        .status()
        .or_else(|| snap.usage_error.as_ref().map(|e| format!("lost: {e}")));
    let header = Row::new([
        "COMPONENT",
        "STATE",
        "HEALTH",
        "RST",
        "CPU%",
        "MEM",
        "REQ/S",
        "P99",
        "ERR%",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = snap
        .replicas
        .data
        .iter()
        .flatten()
        .map(|r| {
            let running = r.state == "running";
            let usage = snap.usage.get(&r.id).filter(|_| running);
            let traffic = snap.traffic.get(&r.name).filter(|_| running);
            let (rps, p99, err) = match traffic {
                Some(Ok(t)) => (
                    format!("{:.1}", t.rps),
                    t.p99
                        .map_or_else(|| "-".to_string(), |p| format!("{:.0}ms", p * 1000.0)),
                    format!("{:.1}", t.error_percent),
                ),
                Some(Err(_)) => ("lost".to_string(), "-".to_string(), "-".to_string()),
                None => ("-".to_string(), "-".to_string(), "-".to_string()),
            };
            Row::new([
                Cell::from(r.target()),
                Cell::from(Span::styled(
                    r.state.clone(),
                    Style::default().fg(state_color(&r.state)),
                )),
                Cell::from(r.health.clone()),
                Cell::from(r.restarts.to_string()),
                Cell::from(usage.map_or_else(|| "-".into(), |u| format!("{:.1}", u.cpu_percent))),
                Cell::from(usage.map_or_else(|| "-".into(), |u| human_bytes(u.memory_bytes))),
                Cell::from(rps),
                Cell::from(p99),
                Cell::from(err),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Min(14),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(3),
            Constraint::Length(5),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(5),
        ],
    )
    .header(header)
    .block(block("components", status))
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(snap.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dash::state::{Feed, Replica, Traffic, Usage};
    use crate::dash::ui::testing::{render, text};

    fn replica(component: &str, n: u32, state: &str) -> Replica {
        Replica {
            component: component.into(),
            replica: n,
            name: format!("msctl-{component}-{n}"),
            id: format!("id-{component}-{n}"),
            state: state.into(),
            health: if state == "running" { "healthy" } else { "-" }.into(),
            restarts: 0,
            metrics: Some((30000 + n as u16, "/metrics".into())),
        }
    }

    #[test]
    fn rows_show_state_stats_and_traffic() {
        let mut snap = Snapshot::new("msctl");
        snap.replicas = Feed::ok(vec![
            replica("product-service", 1, "running"),
            replica("product-service", 2, "exited"),
        ]);
        snap.usage.insert(
            "id-product-service-1".into(),
            Usage {
                cpu_percent: 12.5,
                memory_bytes: 20 * 1024 * 1024,
            },
        );
        snap.traffic.insert(
            "msctl-product-service-1".into(),
            Ok(Traffic {
                rps: 4.0,
                p99: Some(0.012),
                error_percent: 2.5,
            }),
        );
        let lines = render(80, 6, &snap, draw);
        let t = text(&lines);
        assert!(t.contains("COMPONENT"), "{t}");
        let row1 = lines
            .iter()
            .find(|l| l.contains("product-service#1"))
            .expect("row 1");
        for want in ["running", "healthy", "12.5", "20M", "4.0", "12ms", "2.5"] {
            assert!(row1.contains(want), "{want} not in {row1}");
        }
        let row2 = lines
            .iter()
            .find(|l| l.contains("product-service#2"))
            .expect("row 2");
        assert!(row2.contains("exited"), "{row2}");
    }

    #[test]
    fn a_lost_engine_says_so_in_the_title() {
        let mut snap = Snapshot::new("msctl");
        snap.replicas = Feed::ok(vec![replica("redis", 1, "running")]);
        snap.replicas.set(Err("engine unreachable".into()));
        let t = text(&render(80, 5, &snap, draw));
        assert!(t.contains("lost: engine unreachable"), "{t}");
        assert!(t.contains("redis#1"), "last known rows stay:\n{t}");
    }
}
