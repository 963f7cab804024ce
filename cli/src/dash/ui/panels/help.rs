//! The help overlay and the confirmation dialog for destructive keys.

use ratatui::layout::{Constraint, Direction, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::dash::state::Snapshot;

/// The key reference.
pub const KEYS: [(&str, &str); 10] = [
    ("↑ ↓", "select a replica"),
    ("k", "kill it (SIGKILL; stays down until h)"),
    ("p", "pause / unpause it"),
    ("r", "restart it"),
    ("x", "partition it off the network"),
    ("h", "heal every fault in the ledger"),
    ("l", "follow its logs / back to overview"),
    ("?", "this help"),
    ("q", "quit (faults stay; msctl chaos heal)"),
    ("y n", "answer a confirmation"),
];

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [v] = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(h.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [c] = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Length(w.min(area.width))])
        .flex(Flex::Center)
        .areas(v);
    c
}

/// Draws the help box over the middle of `area`.
pub fn draw(frame: &mut Frame, area: Rect, _snap: &Snapshot) {
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| Line::from(format!("{k:>4}  {what}")))
        .collect();
    let r = centered(area, 50, KEYS.len() as u16 + 2);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" keys (? or Esc closes) "),
        ),
        r,
    );
}

/// Draws the open question, if any.
pub fn draw_confirm(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let Some(c) = &snap.confirm else {
        return;
    };
    let text = format!("{}  [y/n]", c.question);
    let w = (text.chars().count() as u16 + 4).max(30);
    let r = centered(area, w, 3);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(Line::from(text))
            .style(Style::default().add_modifier(Modifier::BOLD))
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(Style::default().fg(Color::Red))
                    .title(" confirm "),
            ),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dash::input::Command;
    use crate::dash::state::Confirm;
    use crate::dash::ui::testing::{render, text};

    #[test]
    fn help_lists_every_key() {
        let snap = Snapshot::new("msctl");
        let t = text(&render(80, 24, &snap, draw));
        for (k, what) in KEYS {
            assert!(t.contains(k) && t.contains(what), "{k} {what}:\n{t}");
        }
    }

    #[test]
    fn a_destructive_key_asks_first() {
        let mut snap = Snapshot::new("msctl");
        let cmd = Command::Kill("product-service#2".into());
        snap.confirm = Some(Confirm {
            question: cmd.question(),
            action: cmd,
        });
        let t = text(&render(80, 24, &snap, draw_confirm));
        assert!(
            t.contains("kill product-service#2 (SIGKILL)?  [y/n]"),
            "{t}"
        );
    }
}
