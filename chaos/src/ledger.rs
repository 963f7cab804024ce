//! The fault ledger: a JSON file (`.msctl/<project>/faults.json` next to the stack file)
//! listing every fault that may be in effect, with the steps that revert it.
//!
//! A fault is written here, state `pending`, *before* it is applied, and removed only once
//! it is reverted; so whatever happens to the msctl process in between, `chaos heal` finds
//! it and undoes it. Every change is a read-modify-write under an exclusive lock on a
//! sibling `faults.lock` file (another msctl may be healing at the same time) and lands
//! through a temporary file and a rename, so a crash never leaves a torn file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::ChaosError;
use crate::fault::FaultKind;

/// Format version of the ledger file.
pub const LEDGER_VERSION: u32 = 1;

/// A fault's id in the ledger: `f1`, `f2`, … per project.
pub type FaultId = String;

/// One container a fault acts on, as it was when the fault was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Victim {
    /// Engine id; a container recreated since (new id) took the fault with it.
    pub id: String,
    /// `<project>-<component>-<n>`.
    pub name: String,
    /// Component label.
    pub component: String,
    /// Replica label.
    pub replica: u32,
}

/// One revert step, recorded before the fault is applied. Every step is idempotent: it
/// succeeds when the fault is already gone (container restarted, removed, or healed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Undo {
    /// Start a killed or stopped container.
    Start {
        /// The container.
        container: Victim,
    },
    /// Unpause.
    Unpause {
        /// The container.
        container: Victim,
    },
    /// Reconnect to the project network with its DNS aliases (a plain reconnect drops
    /// them).
    Connect {
        /// The container.
        container: Victim,
        /// The project network.
        network: String,
        /// DNS aliases to restore.
        aliases: Vec<String>,
    },
    /// Delete the `unreachable` routes to the other group in the container's network
    /// namespace.
    DelRoutes {
        /// The container.
        container: Victim,
        /// `a.b.c.d` addresses of the other group.
        addresses: Vec<String>,
        /// Destroy the open TCP connections to them first (a partition reset at heal).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reset: bool,
    },
    /// Recompute the container's netem qdisc from the faults still active on it (or remove
    /// it when none are).
    Netem {
        /// The container.
        container: Victim,
    },
    /// `DELETE /admin/faults` on the replica's published admin port.
    ClearHttp {
        /// The container.
        container: Victim,
    },
}

impl Undo {
    /// The container this step acts on.
    pub fn container(&self) -> &Victim {
        match self {
            Undo::Start { container }
            | Undo::Unpause { container }
            | Undo::Connect { container, .. }
            | Undo::DelRoutes { container, .. }
            | Undo::Netem { container }
            | Undo::ClearHttp { container } => container,
        }
    }
}

/// Where a fault is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultState {
    /// Recorded, being applied (or msctl died while applying it).
    Pending,
    /// Applied.
    Active,
}

/// One fault in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// `f<N>`.
    pub id: FaultId,
    /// What it is.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// The targets as typed (`redis#random`, `order,gateway`).
    pub target: String,
    /// The seed used for `#random` targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Containers acted on (for partitions with `from`: both groups).
    pub containers: Vec<Victim>,
    /// Revert steps, run in order.
    pub undo: Vec<Undo>,
    /// Lifecycle.
    pub state: FaultState,
    /// When it was recorded (RFC 3339, UTC).
    pub created_at: String,
    /// When it reverts on its own, if it has a duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The msctl process that applied it (and waits to revert it, with a duration).
    pub pid: u32,
}

impl FaultRecord {
    /// True when the fault's duration has passed (its msctl died before reverting it).
    pub fn is_overdue(&self, now: SystemTime) -> bool {
        self.expires_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .is_some_and(|t| now >= t)
    }

    /// Does the fault touch this container?
    pub fn touches(&self, container_id: &str) -> bool {
        self.containers.iter().any(|c| c.id == container_id)
    }
}

/// The file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerFile {
    /// [`LEDGER_VERSION`].
    pub version: u32,
    /// The project it belongs to.
    pub project: String,
    /// Number of the next fault id.
    pub next_id: u64,
    /// Faults that may be in effect, oldest first.
    pub faults: Vec<FaultRecord>,
}

/// The ledger of one project.
#[derive(Debug, Clone)]
pub struct FaultLedger {
    path: PathBuf,
    project: String,
}

/// RFC 3339 (seconds, UTC) for `t`.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl FaultLedger {
    /// The ledger at `path` for `project`.
    pub fn new(path: impl Into<PathBuf>, project: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            project: project.into(),
        }
    }

    /// `<stack root>/.msctl/<project>/faults.json`.
    pub fn for_project(stack_root: &Path, project: &str) -> Self {
        Self::new(
            stack_root.join(".msctl").join(project).join("faults.json"),
            project,
        )
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl std::fmt::Display) -> ChaosError {
        ChaosError::Ledger {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn empty(&self) -> LedgerFile {
        LedgerFile {
            version: LEDGER_VERSION,
            project: self.project.clone(),
            next_id: 1,
            faults: Vec::new(),
        }
    }

    fn read_unlocked(&self) -> Result<LedgerFile, ChaosError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self.empty()),
            Err(e) => return Err(self.error(e)),
        };
        let file: LedgerFile = serde_json::from_str(&text).map_err(|e| {
            self.error(format!(
                "not a fault ledger ({e}); move it away to start a new one"
            ))
        })?;
        if file.version != LEDGER_VERSION {
            return Err(self.error(format!(
                "version {} is not {LEDGER_VERSION}; use the msctl that wrote it to heal",
                file.version
            )));
        }
        Ok(file)
    }

    fn write_unlocked(&self, file: &LedgerFile) -> Result<(), ChaosError> {
        let dir = self
            .path
            .parent()
            .ok_or_else(|| self.error("has no parent folder"))?;
        let tmp = dir.join(format!(".faults.json.{}.tmp", std::process::id()));
        let text = serde_json::to_vec_pretty(file).map_err(|e| self.error(e))?;
        let mut f = File::create(&tmp).map_err(|e| self.error(e))?;
        f.write_all(&text).map_err(|e| self.error(e))?;
        f.write_all(b"\n").map_err(|e| self.error(e))?;
        // On disk before the rename makes it the ledger: a fault is never applied on the
        // strength of a record that a power cut could lose.
        f.sync_all().map_err(|e| self.error(e))?;
        fs::rename(&tmp, &self.path).map_err(|e| self.error(e))?;
        Ok(())
    }

    fn lock(&self) -> Result<File, ChaosError> {
        let dir = self
            .path
            .parent()
            .ok_or_else(|| self.error("has no parent folder"))?;
        fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("faults.lock"))
            .map_err(|e| self.error(e))?;
        lock.lock().map_err(|e| self.error(format!("lock: {e}")))?;
        Ok(lock)
    }

    /// The current contents.
    pub fn read(&self) -> Result<LedgerFile, ChaosError> {
        let _lock = self.lock()?;
        self.read_unlocked()
    }

    /// Changes the ledger under the lock; `change` sees the current contents and its
    /// result is returned once the new contents are on disk.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut LedgerFile) -> Result<T, ChaosError>,
    ) -> Result<T, ChaosError> {
        let _lock = self.lock()?;
        let mut file = self.read_unlocked()?;
        let out = change(&mut file)?;
        self.write_unlocked(&file)?;
        Ok(out)
    }

    /// Records a new fault (state pending) and returns its id.
    pub fn record(
        &self,
        kind: &FaultKind,
        target: String,
        seed: Option<u64>,
        containers: Vec<Victim>,
        undo: Vec<Undo>,
        duration: Option<Duration>,
    ) -> Result<FaultRecord, ChaosError> {
        self.update(|file| {
            let now = SystemTime::now();
            let record = FaultRecord {
                id: format!("f{}", file.next_id),
                kind: kind.clone(),
                target,
                seed,
                containers,
                undo,
                state: FaultState::Pending,
                created_at: timestamp(now),
                expires_at: duration.map(|d| timestamp(now + d)),
                pid: std::process::id(),
            };
            file.next_id += 1;
            file.faults.push(record.clone());
            Ok(record)
        })
    }

    /// Marks a fault applied.
    pub fn activate(&self, id: &str) -> Result<(), ChaosError> {
        self.update(|file| {
            if let Some(f) = file.faults.iter_mut().find(|f| f.id == id) {
                f.state = FaultState::Active;
            }
            Ok(())
        })
    }

    /// Removes a reverted fault.
    pub fn remove(&self, id: &str) -> Result<(), ChaosError> {
        self.update(|file| {
            file.faults.retain(|f| f.id != id);
            Ok(())
        })
    }

    /// One fault by id.
    pub fn get(&self, id: &str) -> Result<Option<FaultRecord>, ChaosError> {
        Ok(self.read()?.faults.into_iter().find(|f| f.id == id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn victim(n: u32) -> Victim {
        Victim {
            id: format!("id{n}"),
            name: format!("p-redis-{n}"),
            component: "redis".into(),
            replica: n,
        }
    }

    #[test]
    fn faults_are_recorded_activated_and_removed() {
        let dir = tempfile::tempdir().expect("tmp");
        let ledger = FaultLedger::for_project(dir.path(), "p");
        assert!(ledger.read().expect("empty").faults.is_empty());
        let r = ledger
            .record(
                &FaultKind::Pause,
                "redis".into(),
                None,
                vec![victim(1)],
                vec![Undo::Unpause {
                    container: victim(1),
                }],
                Some(Duration::from_secs(30)),
            )
            .expect("record");
        assert_eq!(r.id, "f1");
        assert_eq!(r.state, FaultState::Pending);
        assert!(r.expires_at.is_some());
        // Another handle (another process) sees it on disk at once.
        let other = FaultLedger::for_project(dir.path(), "p");
        assert_eq!(other.get("f1").expect("read"), Some(r.clone()));
        ledger.activate("f1").expect("activate");
        assert_eq!(
            other.get("f1").expect("read").map(|f| f.state),
            Some(FaultState::Active)
        );
        let r2 = other
            .record(&FaultKind::Stop, "redis".into(), None, vec![], vec![], None)
            .expect("record");
        assert_eq!(r2.id, "f2");
        ledger.remove("f1").expect("remove");
        let file = ledger.read().expect("read");
        assert_eq!(
            file.faults
                .iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>(),
            ["f2"]
        );
        assert_eq!(file.next_id, 3);
        // No temporary files are left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path().join(".msctl/p"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    // Pins the on-disk format that `chaos heal` of a later msctl must still read.
    #[test]
    fn the_file_format_is_stable() {
        let dir = tempfile::tempdir().expect("tmp");
        let ledger = FaultLedger::for_project(dir.path(), "p");
        ledger
            .record(
                &FaultKind::Latency {
                    delay_ms: 200,
                    jitter_ms: 20,
                },
                "redis#1".into(),
                Some(42),
                vec![victim(1)],
                vec![Undo::Netem {
                    container: victim(1),
                }],
                None,
            )
            .expect("record");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ledger.path()).expect("file"))
                .expect("json");
        assert_eq!(v["version"], 1);
        assert_eq!(v["project"], "p");
        let f = &v["faults"][0];
        assert_eq!(f["id"], "f1");
        assert_eq!(f["kind"], "latency");
        assert_eq!(f["delay_ms"], 200);
        assert_eq!(f["seed"], 42);
        assert_eq!(f["state"], "pending");
        assert_eq!(f["undo"][0]["op"], "netem");
        assert_eq!(f["undo"][0]["container"]["name"], "p-redis-1");
    }

    #[test]
    fn a_corrupt_ledger_is_reported_not_overwritten() {
        let dir = tempfile::tempdir().expect("tmp");
        let ledger = FaultLedger::for_project(dir.path(), "p");
        std::fs::create_dir_all(ledger.path().parent().expect("dir")).expect("mkdir");
        std::fs::write(ledger.path(), "{not json").expect("write");
        let e = ledger
            .record(&FaultKind::Stop, "x".into(), None, vec![], vec![], None)
            .expect_err("corrupt");
        assert!(e.to_string().contains("not a fault ledger"), "{e}");
        assert_eq!(
            std::fs::read_to_string(ledger.path()).expect("file"),
            "{not json"
        );
    }

    #[test]
    fn overdue_is_judged_by_expiry() {
        let now = SystemTime::now();
        let mut r = FaultRecord {
            id: "f1".into(),
            kind: FaultKind::Stop,
            target: "x".into(),
            seed: None,
            containers: vec![],
            undo: vec![],
            state: FaultState::Active,
            created_at: timestamp(now),
            expires_at: None,
            pid: 1,
        };
        assert!(!r.is_overdue(now));
        r.expires_at = Some(timestamp(now - Duration::from_secs(5)));
        assert!(r.is_overdue(now));
        r.expires_at = Some(timestamp(now + Duration::from_secs(60)));
        assert!(!r.is_overdue(now));
    }
}
