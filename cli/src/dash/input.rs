//! Keys to typed actions. The mapping is pure (no state but what the snapshot says about
//! an open dialog), so it is tested without a terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// A fault or heal the dashboard runs through the chaos crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// SIGKILL one replica (`component#N`); stays down until healed.
    Kill(String),
    /// Pause one replica.
    Pause(String),
    /// Unpause one replica.
    Unpause(String),
    /// Restart one replica once.
    Restart(String),
    /// Disconnect one replica from the project network.
    Partition(String),
    /// Revert every fault in the ledger.
    HealAll,
}

impl Command {
    /// Whether `y` must confirm it (it takes something down).
    pub fn is_destructive(&self) -> bool {
        !matches!(self, Command::Unpause(_) | Command::HealAll)
    }

    /// The confirmation question.
    pub fn question(&self) -> String {
        match self {
            Command::Kill(t) => format!("kill {t} (SIGKILL)?"),
            Command::Pause(t) => format!("pause {t}?"),
            Command::Unpause(t) => format!("unpause {t}?"),
            Command::Restart(t) => format!("restart {t}?"),
            Command::Partition(t) => format!("cut {t} off the network?"),
            Command::HealAll => "heal every fault?".to_string(),
        }
    }
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave the dashboard.
    Quit,
    /// Move the selection up.
    Up,
    /// Move the selection down.
    Down,
    /// Kill the selected replica.
    Kill,
    /// Pause or unpause the selected replica.
    PauseToggle,
    /// Restart the selected replica.
    Restart,
    /// Partition the selected replica.
    Partition,
    /// Heal every fault.
    Heal,
    /// Show or hide the logs of the selected replica.
    Logs,
    /// Show or hide help.
    Help,
    /// Answer yes to the open question.
    Yes,
    /// Answer no / close the overlay.
    No,
}

/// Maps a key to an action; `confirming` is true while a y/n question is open, when only
/// the answer (and Ctrl-C) count.
pub fn action(key: KeyEvent, confirming: bool) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    if confirming {
        return match key.code {
            KeyCode::Char('y' | 'Y') | KeyCode::Enter => Some(Action::Yes),
            KeyCode::Char('n' | 'N') | KeyCode::Esc => Some(Action::No),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Up => Action::Up,
        KeyCode::Down => Action::Down,
        KeyCode::Char('k') => Action::Kill,
        KeyCode::Char('p') => Action::PauseToggle,
        KeyCode::Char('r') => Action::Restart,
        KeyCode::Char('x') => Action::Partition,
        KeyCode::Char('h') => Action::Heal,
        KeyCode::Char('l') => Action::Logs,
        KeyCode::Char('?') => Action::Help,
        KeyCode::Esc => Action::No,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn keys_map_to_actions() {
        assert_eq!(action(key(KeyCode::Char('k')), false), Some(Action::Kill));
        assert_eq!(
            action(key(KeyCode::Char('p')), false),
            Some(Action::PauseToggle)
        );
        assert_eq!(
            action(key(KeyCode::Char('r')), false),
            Some(Action::Restart)
        );
        assert_eq!(
            action(key(KeyCode::Char('x')), false),
            Some(Action::Partition)
        );
        assert_eq!(action(key(KeyCode::Char('h')), false), Some(Action::Heal));
        assert_eq!(action(key(KeyCode::Char('l')), false), Some(Action::Logs));
        assert_eq!(action(key(KeyCode::Char('?')), false), Some(Action::Help));
        assert_eq!(action(key(KeyCode::Char('q')), false), Some(Action::Quit));
        assert_eq!(action(key(KeyCode::Up), false), Some(Action::Up));
        assert_eq!(action(key(KeyCode::Down), false), Some(Action::Down));
        assert_eq!(action(key(KeyCode::Char('z')), false), None);
    }

    #[test]
    fn a_question_takes_only_its_answer() {
        // A stray `k` while "kill?" is open must not queue a second kill.
        assert_eq!(action(key(KeyCode::Char('k')), true), None);
        assert_eq!(action(key(KeyCode::Char('y')), true), Some(Action::Yes));
        assert_eq!(action(key(KeyCode::Esc), true), Some(Action::No));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action(ctrl_c, true), Some(Action::Quit));
    }

    #[test]
    fn destructive_commands_need_confirmation() {
        assert!(Command::Kill("product-service#2".into()).is_destructive());
        assert!(Command::Partition("redis#1".into()).is_destructive());
        assert!(!Command::HealAll.is_destructive());
    }
}
