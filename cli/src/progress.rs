//! Turns library [`ProgressEvent`]s into indicatif bars on a terminal, or plain lines when
//! stderr is not a terminal (CI logs), or nothing with `-q`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use msctl_stack::progress::{ProgressEvent, ProgressSink};

/// How chatty progress is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Start and finish of each task.
    Normal,
    /// Every message.
    Verbose,
}

/// Builds the sink for this terminal.
pub fn sink(verbosity: Verbosity) -> ProgressSink {
    if verbosity == Verbosity::Quiet {
        return msctl_stack::progress::silent();
    }
    if std::io::stderr().is_terminal() {
        bars()
    } else {
        lines(verbosity)
    }
}

fn lines(verbosity: Verbosity) -> ProgressSink {
    let started: Arc<Mutex<HashMap<String, (String, Instant)>>> = Arc::default();
    Arc::new(move |event| {
        let mut started = started.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            ProgressEvent::Start { key, label, .. } => {
                started.insert(key, (label, Instant::now()));
            }
            ProgressEvent::Advance {
                key,
                message: Some(m),
                ..
            } if verbosity == Verbosity::Verbose => {
                let label = started.get(&key).map_or(key.as_str(), |s| s.0.as_str());
                eprintln!("{label}: {m}");
            }
            ProgressEvent::Advance { .. } => {}
            ProgressEvent::Finish { key, ok, message } => {
                let (label, t) = started
                    .remove(&key)
                    .unwrap_or_else(|| (key.clone(), Instant::now()));
                let mark = if ok { "ok" } else { "FAILED" };
                eprintln!(
                    "{label}: {mark}: {message} [{:.1}s]",
                    t.elapsed().as_secs_f64()
                );
            }
            ProgressEvent::Note(line) => eprintln!("{line}"),
        }
    })
}

fn bars() -> ProgressSink {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let bars: Arc<Mutex<HashMap<String, ProgressBar>>> = Arc::default();
    let spinner = ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let sized = ProgressStyle::with_template(
        "{spinner:.cyan} {prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    Arc::new(move |event| {
        let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            ProgressEvent::Start { key, label, total } => {
                let bar = match total {
                    Some(t) => multi.add(ProgressBar::new(t).with_style(sized.clone())),
                    None => multi.add(ProgressBar::new_spinner().with_style(spinner.clone())),
                };
                bar.set_prefix(label);
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(key, bar);
            }
            ProgressEvent::Advance {
                key,
                position,
                message,
            } => {
                if let Some(bar) = bars.get(&key) {
                    if let Some(p) = position {
                        bar.set_position(p);
                    }
                    if let Some(m) = message {
                        bar.set_message(m);
                    }
                }
            }
            ProgressEvent::Finish { key, ok, message } => {
                if let Some(bar) = bars.remove(&key) {
                    let mark = if ok { "✔" } else { "✘" };
                    bar.set_style(
                        ProgressStyle::with_template("{prefix:.bold} {wide_msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.finish_with_message(format!("{mark} {message}"));
                }
            }
            ProgressEvent::Note(line) => {
                let _ = multi.println(line);
            }
        }
    })
}
