//! Layout: a title line, the components table, then either the overview (upstreams,
//! sagas, gateway sparklines, faults) or the logs of the selected replica, and a key
//! line. Everything is drawn from one [`Snapshot`]; nothing here does I/O.

pub mod panels;

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::state::Snapshot;

/// Draws one frame.
pub fn draw(frame: &mut Frame, snap: &Snapshot) {
    let area = frame.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Percentage(45),
            Constraint::Min(8),
            Constraint::Length(1),
        ])
        .split(area);
    title(frame, rows[0], snap);
    panels::components::draw(frame, rows[1], snap);
    if snap.show_logs {
        panels::logs::draw(frame, rows[2], snap);
    } else {
        let lower = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Percentage(55), Constraint::Percentage(45)])
            .split(rows[2]);
        let top = halves(lower[0]);
        let bottom = halves(lower[1]);
        panels::upstreams::draw(frame, top[0], snap);
        panels::sagas::draw(frame, top[1], snap);
        panels::traffic::draw(frame, bottom[0], snap);
        panels::faults::draw(frame, bottom[1], snap);
    }
    footer(frame, rows[3], snap);
    if snap.show_help {
        panels::help::draw(frame, area, snap);
    }
    if snap.confirm.is_some() {
        panels::help::draw_confirm(frame, area, snap);
    }
}

fn halves(area: Rect) -> std::rc::Rc<[Rect]> {
    Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(area)
}

fn title(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let n = snap.replicas.data.as_ref().map_or(0, Vec::len);
    let faults = snap.faults.data.as_ref().map_or(0, Vec::len);
    let line = Line::from(vec![
        Span::styled(
            " msctl dash ",
            Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED),
        ),
        Span::raw(format!(
            " project {} · {n} containers · {faults} faults",
            snap.project
        )),
        Span::styled(
            if snap.busy > 0 { " · working…" } else { "" },
            Style::default().fg(Color::Yellow),
        ),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn footer(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let keys = "↑↓ select k kill p pause r restart x partition h heal l logs ? help q quit";
    let text = if snap.status.is_empty() || snap.status == "? help · q quit" {
        keys.to_string()
    } else {
        snap.status.clone()
    };
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(
            text,
            Style::default().add_modifier(Modifier::DIM),
        ))),
        area,
    );
}

#[cfg(test)]
pub mod testing {
    //! Helpers for TestBackend tests of the panels.

    use ratatui::backend::TestBackend;
    use ratatui::layout::Rect;
    use ratatui::{Frame, Terminal};

    use crate::dash::state::Snapshot;

    /// Renders `draw` into a `w`×`h` buffer and returns its lines.
    pub fn render(
        w: u16,
        h: u16,
        snap: &Snapshot,
        draw: impl Fn(&mut Frame, Rect, &Snapshot),
    ) -> Vec<String> {
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("test backend");
        term.draw(|f| draw(f, f.area(), snap)).expect("draw");
        let buf = term.backend().buffer().clone();
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect()
    }

    /// The rendered lines joined, for `contains` checks.
    pub fn text(lines: &[String]) -> String {
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{render, text};
    use super::*;
    use crate::dash::state::Feed;

    #[test]
    fn the_whole_screen_fits_80_by_24_and_shows_every_panel() {
        let mut snap = Snapshot::new("msctl");
        snap.replicas = Feed::ok(vec![]);
        let lines = render(80, 24, &snap, |f, _, s| draw(f, s));
        let t = text(&lines);
        for title in [
            "components",
            "gateway upstreams",
            "sagas",
            "gateway req/s",
            "p99",
            "faults",
        ] {
            assert!(t.contains(title), "{title} missing:\n{t}");
        }
        assert!(lines[23].contains("k kill"), "{}", lines[23]);
    }

    #[test]
    fn logs_replace_the_overview() {
        let mut snap = Snapshot::new("msctl");
        snap.show_logs = true;
        snap.log_source = Some("msctl-redis-1".into());
        snap.logs.push_back("Ready to accept connections".into());
        let t = text(&render(100, 30, &snap, |f, _, s| draw(f, s)));
        assert!(t.contains("Ready to accept connections"), "{t}");
        assert!(!t.contains("gateway upstreams"), "{t}");
    }
}
