//! Active faults from the chaos ledger: id, kind, target, state and expiry.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::block;
use crate::dash::state::Snapshot;

/// Draws one line per fault, or "none".
pub fn draw(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let mut lines: Vec<Line> = Vec::new();
    match &snap.faults.data {
        Some(f) if f.is_empty() => lines.push(Line::from("none (h heals)")),
        Some(faults) => {
            for f in faults {
                let until = f
                    .expires_at
                    .as_ref()
                    .map_or_else(String::new, |t| format!(" until {t}"));
                lines.push(Line::from(vec![
                    Span::raw(format!("{} ", f.id)),
                    Span::styled(f.kind.clone(), Style::default().fg(Color::Red)),
                    Span::raw(format!(" {} {}{until}", f.target, f.state)),
                ]));
            }
        }
        None => {}
    }
    let title = format!("faults ({})", snap.faults.data.as_ref().map_or(0, Vec::len));
    frame.render_widget(
        Paragraph::new(lines).block(block(&title, snap.faults.status())),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dash::state::{Fault, Feed};
    use crate::dash::ui::testing::{render, text};

    #[test]
    fn active_faults_are_listed() {
        let mut snap = Snapshot::new("msctl");
        snap.faults = Feed::ok(vec![Fault {
            id: "f3".into(),
            kind: "kill SIGKILL".into(),
            target: "product-service#2".into(),
            state: "active".into(),
            containers: vec!["msctl-product-service-2".into()],
            expires_at: None,
        }]);
        let t = text(&render(50, 4, &snap, draw));
        assert!(t.contains("faults (1)"), "{t}");
        assert!(
            t.contains("f3 kill SIGKILL product-service#2 active"),
            "{t}"
        );
    }

    #[test]
    fn no_faults_and_a_lost_ledger_read_differently() {
        let mut snap = Snapshot::new("msctl");
        snap.faults = Feed::ok(vec![]);
        assert!(text(&render(40, 4, &snap, draw)).contains("none (h heals)"));
        snap.faults.set(Err("ledger unreadable".into()));
        assert!(text(&render(60, 4, &snap, draw)).contains("lost: ledger unreadable"));
    }
}
