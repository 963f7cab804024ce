//! One module per panel, each a pure `draw(frame, area, &Snapshot)` with a TestBackend
//! test of what it draws.

pub mod components;
pub mod faults;
pub mod help;
pub mod logs;
pub mod sagas;
pub mod traffic;
pub mod upstreams;

use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};

/// A bordered block titled `name`, with the source's status (`lost: …`) in red after it.
pub fn block(name: &str, status: Option<String>) -> Block<'static> {
    let mut spans = vec![Span::raw(format!(" {name} "))];
    if let Some(s) = status {
        spans.push(Span::styled(
            format!("{s} "),
            Style::default().fg(Color::Red),
        ));
    }
    Block::default()
        .borders(Borders::ALL)
        .title(Line::from(spans))
}

/// Colour of a container state.
pub fn state_color(state: &str) -> Color {
    match state {
        "running" => Color::Green,
        "paused" | "restarting" | "created" => Color::Yellow,
        _ => Color::Red,
    }
}

/// Colour of a breaker state.
pub fn breaker_color(state: &str) -> Color {
    match state {
        "closed" => Color::Green,
        "half_open" => Color::Yellow,
        _ => Color::Red,
    }
}
