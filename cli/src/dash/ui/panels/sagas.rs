//! Sagas: order counts by status, saga counts by state, and the most recent orders.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::block;
use crate::dash::state::Snapshot;

fn status_color(s: &str) -> Color {
    match s {
        "confirmed" => Color::Green,
        "cancelled" => Color::Red,
        _ => Color::Yellow,
    }
}

/// Draws the counts then one line per recent order.
pub fn draw(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let mut lines: Vec<Line> = Vec::new();
    if let Some(s) = &snap.sagas.data {
        let orders = s
            .orders
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(" · ");
        lines.push(Line::from(format!("orders: {orders}")));
        let sagas = s
            .sagas
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(" · ");
        lines.push(Line::from(format!(
            "sagas: {}",
            if sagas.is_empty() { "none" } else { &sagas }
        )));
        for o in &s.recent {
            let id: String = o.order_id.chars().take(8).collect();
            let total = o
                .total_cents
                .map_or_else(String::new, |c| format!(" {:.2}", c as f64 / 100.0));
            let reason = o
                .reason
                .as_ref()
                .map_or_else(String::new, |r| format!(" ({r})"));
            lines.push(Line::from(vec![
                Span::raw(format!("{id} ")),
                Span::styled(
                    o.status.clone(),
                    Style::default().fg(status_color(&o.status)),
                ),
                Span::raw(format!(" {}{total}{reason}", o.saga_state)),
            ]));
        }
    }
    frame.render_widget(
        Paragraph::new(lines).block(block("sagas", snap.sagas.status())),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dash::state::{Feed, RecentOrder, Sagas};
    use crate::dash::ui::testing::{render, text};

    #[test]
    fn counts_and_recent_orders_are_listed() {
        let mut snap = Snapshot::new("msctl");
        snap.sagas = Feed::ok(Sagas {
            sagas: [("completed".to_string(), 3), ("compensated".to_string(), 1)].into(),
            orders: [
                ("cancelled".to_string(), 1),
                ("confirmed".to_string(), 3),
                ("pending".to_string(), 0),
            ]
            .into(),
            recent: vec![RecentOrder {
                order_id: "8c1f2e9a-0000-0000-0000-000000000000".into(),
                status: "cancelled".into(),
                saga_state: "compensated".into(),
                reason: Some("out_of_stock".into()),
                total_cents: Some(1999),
                attempts: 1,
            }],
        });
        let t = text(&render(60, 6, &snap, draw));
        assert!(
            t.contains("orders: cancelled 1 · confirmed 3 · pending 0"),
            "{t}"
        );
        assert!(t.contains("sagas: compensated 1 · completed 3"), "{t}");
        assert!(
            t.contains("8c1f2e9a cancelled compensated 19.99 (out_of_stock)"),
            "{t}"
        );
    }

    #[test]
    fn a_down_order_service_is_shown_as_lost() {
        let mut snap = Snapshot::new("msctl");
        snap.sagas.set(Err("no running order-service".into()));
        let t = text(&render(60, 4, &snap, draw));
        assert!(t.contains("lost: no running order-service"), "{t}");
    }
}
