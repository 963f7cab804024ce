//! Gateway req/s and p99 sparklines over the last minutes (one sample per scrape, newest
//! on the right), side by side in one box, with the latest values in its title.

use std::collections::VecDeque;

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::widgets::Sparkline;
use ratatui::Frame;

use super::block;
use crate::dash::state::Snapshot;

/// The last `width` samples, scaled so that fractions still show (req/s × 10).
fn tail(series: &VecDeque<f64>, width: usize, scale: f64) -> Vec<u64> {
    let skip = series.len().saturating_sub(width);
    series
        .iter()
        .skip(skip)
        .map(|v| (v * scale).round().max(0.0) as u64)
        .collect()
}

/// Draws the box: req/s on the left, p99 on the right.
pub fn draw(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let lost = snap
        .traffic
        .iter()
        .find(|(k, v)| k.contains("-gateway-") && v.is_err())
        .and_then(|(_, v)| v.as_ref().err().map(|e| format!("lost: {e}")));
    let rps = snap.gateway_rps.back().copied();
    let p99 = snap.gateway_p99_ms.back().copied();
    let title = format!(
        "gateway req/s {} │ p99 {}",
        rps.map_or_else(|| "-".to_string(), |v| format!("{v:.1}")),
        p99.map_or_else(|| "-".to_string(), |v| format!("{v:.0}ms"))
    );
    let status = lost.or_else(|| {
        snap.gateway_rps
            .is_empty()
            .then(|| "waiting for data".to_string())
    });
    let outer = block(&title, status);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let parts = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .spacing(1)
        .split(inner);
    frame.render_widget(
        Sparkline::default()
            .data(tail(&snap.gateway_rps, usize::from(parts[0].width), 10.0))
            .style(Style::default().fg(Color::Cyan)),
        parts[0],
    );
    frame.render_widget(
        Sparkline::default()
            .data(tail(&snap.gateway_p99_ms, usize::from(parts[1].width), 1.0))
            .style(Style::default().fg(Color::Magenta)),
        parts[1],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dash::state::Snapshot;
    use crate::dash::ui::testing::{render, text};

    #[test]
    fn sparklines_show_history_and_the_latest_values() {
        let mut snap = Snapshot::new("msctl");
        for i in 0..30 {
            snap.gateway_rps.push_back(f64::from(i));
            snap.gateway_p99_ms.push_back(f64::from(i % 5) * 10.0);
        }
        let lines = render(50, 5, &snap, draw);
        let t = text(&lines);
        assert!(t.contains("gateway req/s 29.0 │ p99 40ms"), "{t}");
        // req/s rises to the right: the newest column of the left half is a full block,
        // the oldest shown is low.
        let left: String = lines[1].chars().take(25).collect();
        assert!(left.trim_end().ends_with('█'), "{t}");
        assert!(!left.starts_with("│█"), "{t}");
    }

    #[test]
    fn no_samples_yet_says_waiting() {
        let snap = Snapshot::new("msctl");
        let t = text(&render(50, 5, &snap, draw));
        assert!(
            t.contains("gateway req/s - │ p99 -") && t.contains("waiting for data"),
            "{t}"
        );
    }
}
