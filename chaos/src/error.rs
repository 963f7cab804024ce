//! The one error type of the chaos crate. [`ChaosError::is_usage`] tells the command line
//! which errors are the user's to fix (exit code 2) rather than failures (exit code 1).

use msctl_stack::runtime::RuntimeError;

/// Everything that can go wrong while applying, listing or healing faults.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The fault or its target is wrong (unknown component, missing replica, bad flag mix).
    #[error("{0}")]
    Usage(String),
    /// The engine refused or a label check failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// `tc`/`ip` in the helper container failed.
    #[error("{0}")]
    Network(String),
    /// The service's admin API refused or could not be reached.
    #[error("{0}")]
    Http(String),
    /// The fault ledger could not be read or written.
    #[error("fault ledger {path}: {reason}")]
    Ledger {
        /// The ledger file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A healed component did not become ready again.
    #[error("{0}")]
    NotReady(String),
    /// Some faults could not be reverted; they stay in the ledger for the next heal.
    #[error("{} fault(s) could not be healed and stay in the ledger; run `msctl chaos heal` again: {}", .0.len(), .0.join("; "))]
    HealIncomplete(Vec<String>),
}

impl ChaosError {
    /// True when the user asked for something impossible (exit code 2): a bad target, or a
    /// container that is not the project's.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ChaosError::Usage(_) | ChaosError::Runtime(RuntimeError::NotOurs { .. })
        )
    }
}
