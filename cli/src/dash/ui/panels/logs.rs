//! Logs of the selected replica, following: the newest lines at the bottom.

use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::block;
use crate::dash::state::Snapshot;

/// Draws as many of the newest lines as fit.
pub fn draw(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let height = usize::from(area.height.saturating_sub(2));
    let skip = snap.logs.len().saturating_sub(height);
    let lines: Vec<Line> = snap
        .logs
        .iter()
        .skip(skip)
        .map(|l| Line::from(l.clone()))
        .collect();
    let title = format!(
        "logs {} (follow; l closes)",
        snap.log_source.as_deref().unwrap_or("-")
    );
    let status = if snap.logs.is_empty() {
        Some("no lines yet".to_string())
    } else {
        None
    };
    frame.render_widget(Paragraph::new(lines).block(block(&title, status)), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dash::ui::testing::{render, text};

    #[test]
    fn the_newest_lines_fit_at_the_bottom() {
        let mut snap = Snapshot::new("msctl");
        snap.log_source = Some("msctl-gateway-1".into());
        for i in 0..20 {
            snap.logs.push_back(format!("line {i}"));
        }
        let lines = render(50, 5, &snap, draw);
        let t = text(&lines);
        assert!(t.contains("logs msctl-gateway-1"), "{t}");
        assert!(lines[3].contains("line 19"), "{t}");
        assert!(
            lines[1].contains("line 17") && !t.contains("line 16"),
            "{t}"
        );
    }
}
