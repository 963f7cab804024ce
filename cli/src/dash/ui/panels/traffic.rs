//! Gateway req/s and p99 sparklines over the last minutes (one sample per scrape), with
//! the latest value in each title.

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::widgets::Sparkline;
use ratatui::Frame;

use super::block;
use crate::dash::state::Snapshot;

/// The last `width` samples, scaled so that fractions still show (req/s × 10).
fn tail(series: &std::collections::VecDeque<f64>, width: usize, scale: f64) -> Vec<u64> {
    let skip = series.len().saturating_sub(width);
    series
        .iter()
        .skip(skip)
        .map(|v| (v * scale).round().max(0.0) as u64)
        .collect()
}

/// Draws the two sparklines stacked.
pub fn draw(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let parts = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(area);
    let lost = snap
        .traffic
        .iter()
        .find(|(k, v)| k.contains("-gateway-") && v.is_err())
        .and_then(|(_, v)| v.as_ref().err().map(|e| format!("lost: {e}")));
    let width = usize::from(area.width.saturating_sub(2));
    let rps = snap.gateway_rps.back().copied();
    let p99 = snap.gateway_p99_ms.back().copied();
    let rps_title = format!(
        "gateway req/s {}",
        rps.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
    );
    let p99_title = format!(
        "p99 {}",
        p99.map_or_else(|| "-".to_string(), |v| format!("{v:.0}ms"))
    );
    let waiting = if snap.gateway_rps.is_empty() && lost.is_none() {
        Some("waiting for data".to_string())
    } else {
        None
    };
    frame.render_widget(
        Sparkline::default()
            .block(block(&rps_title, lost.clone().or(waiting)))
            .data(&tail(&snap.gateway_rps, width, 10.0))
            .style(Style::default().fg(Color::Cyan)),
        parts[0],
    );
    frame.render_widget(
        Sparkline::default()
            .block(block(&p99_title, lost))
            .data(&tail(&snap.gateway_p99_ms, width, 1.0))
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
        let lines = render(40, 8, &snap, draw);
        let t = text(&lines);
        assert!(t.contains("gateway req/s 29.0"), "{t}");
        assert!(t.contains("p99 40ms"), "{t}");
        // The bars rise to the right: the last column is a full block.
        assert!(lines[2].contains('█'), "{t}");
    }

    #[test]
    fn no_samples_yet_says_waiting() {
        let snap = Snapshot::new("msctl");
        let t = text(&render(40, 8, &snap, draw));
        assert!(
            t.contains("gateway req/s -") && t.contains("waiting for data"),
            "{t}"
        );
    }
}
