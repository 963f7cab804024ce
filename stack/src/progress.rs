//! Progress reporting for long operations (image builds, container start-up, health waits).
//!
//! Library code emits [`ProgressEvent`]s into a [`ProgressSink`]; the command line turns them
//! into indicatif bars on a terminal and plain lines otherwise. Keeping the sink a plain
//! callback means the library never depends on how (or whether) progress is displayed.

use std::sync::Arc;

/// One thing that happened to a long-running task, identified by a caller-chosen key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A task started; `total` is known for byte or item counts, `None` for a spinner.
    Start {
        key: String,
        label: String,
        total: Option<u64>,
    },
    /// The task moved on: an absolute position (when `total` was given) and/or a message.
    Advance {
        key: String,
        position: Option<u64>,
        message: Option<String>,
    },
    /// The task finished; `ok = false` when it failed.
    Finish {
        key: String,
        ok: bool,
        message: String,
    },
    /// A free-standing line worth showing (a warning, a decision that was taken).
    Note(String),
}

/// Where progress goes. Cheap to clone; must not block.
pub type ProgressSink = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// A sink that drops every event (for tests and quiet mode).
pub fn silent() -> ProgressSink {
    Arc::new(|_| {})
}

/// Small helper so call sites read as sentences.
pub trait ProgressExt {
    /// Emits [`ProgressEvent::Start`].
    fn start(&self, key: &str, label: &str, total: Option<u64>);
    /// Emits [`ProgressEvent::Advance`] with a message.
    fn message(&self, key: &str, message: impl Into<String>);
    /// Emits [`ProgressEvent::Advance`] with a position.
    fn position(&self, key: &str, position: u64);
    /// Emits [`ProgressEvent::Finish`].
    fn finish(&self, key: &str, ok: bool, message: impl Into<String>);
    /// Emits [`ProgressEvent::Note`].
    fn note(&self, line: impl Into<String>);
}

impl ProgressExt for ProgressSink {
    fn start(&self, key: &str, label: &str, total: Option<u64>) {
        self(ProgressEvent::Start {
            key: key.to_string(),
            label: label.to_string(),
            total,
        });
    }
    fn message(&self, key: &str, message: impl Into<String>) {
        self(ProgressEvent::Advance {
            key: key.to_string(),
            position: None,
            message: Some(message.into()),
        });
    }
    fn position(&self, key: &str, position: u64) {
        self(ProgressEvent::Advance {
            key: key.to_string(),
            position: Some(position),
            message: None,
        });
    }
    fn finish(&self, key: &str, ok: bool, message: impl Into<String>) {
        self(ProgressEvent::Finish {
            key: key.to_string(),
            ok,
            message: message.into(),
        });
    }
    fn note(&self, line: impl Into<String>) {
        self(ProgressEvent::Note(line.into()));
    }
}
