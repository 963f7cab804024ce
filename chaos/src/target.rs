//! Fault targets: `component` (every replica), `component#N` (one replica) and
//! `component#random` (one replica picked from a seed, so a run can be replayed).
//!
//! The random pick uses splitmix64 rather than a library RNG: the same seed must pick the
//! same replica across msctl versions, which a library's unspecified algorithm does not
//! promise.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which replicas of a component a target means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// Every replica.
    All,
    /// One replica, 1-based.
    Replica(u32),
    /// One replica chosen from the seed.
    Random,
}

/// A parsed `TARGET` argument. The component may still be a unique prefix or a container
/// name; [`crate::Chaos`] resolves it against the stack and the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Component name as typed (a unique prefix is accepted), or a container name.
    pub component: String,
    /// Which replicas.
    pub selector: Selector,
}

impl Target {
    /// Every replica of `component`.
    pub fn all(component: impl Into<String>) -> Self {
        Self {
            component: component.into(),
            selector: Selector::All,
        }
    }

    /// Parses a comma-separated list (`order,gateway`).
    pub fn parse_list(text: &str) -> Result<Vec<Target>, String> {
        let list: Vec<Target> = text
            .split(',')
            .map(str::trim)
            .map(Target::from_str)
            .collect::<Result<_, _>>()?;
        if list.is_empty() {
            return Err("expected at least one target".to_string());
        }
        Ok(list)
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (component, selector) = match text.split_once('#') {
            None => (text, Selector::All),
            Some((c, "random")) => (c, Selector::Random),
            Some((c, n)) => match n.parse::<u32>() {
                Ok(n) if n >= 1 => (c, Selector::Replica(n)),
                _ => {
                    return Err(format!(
                    "target \"{text}\": after '#' write a replica number (1, 2, …) or \"random\""
                ))
                }
            },
        };
        if component.is_empty()
            || !component
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "target \"{text}\": expected COMPONENT, COMPONENT#N or COMPONENT#random"
            ));
        }
        Ok(Self {
            component: component.to_string(),
            selector,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.selector {
            Selector::All => write!(f, "{}", self.component),
            Selector::Replica(n) => write!(f, "{}#{n}", self.component),
            Selector::Random => write!(f, "{}#random", self.component),
        }
    }
}

/// splitmix64: a tiny, fully specified mixer (Steele, Lea, Flood 2014).
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The index (into `n` replicas sorted by replica number) that `seed` picks for
/// `component`. Mixing in the component name lets one seed pick independently for several
/// components.
pub fn pick(seed: u64, component: &str, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let salt = component.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (splitmix64(seed ^ salt) % n as u64) as usize
}

/// A seed for a run that did not ask for one; printed so the run can be replayed.
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Keep it short enough to type back.
    splitmix64(nanos ^ u64::from(std::process::id())) % 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        for (text, sel) in [
            ("redis", Selector::All),
            ("redis#2", Selector::Replica(2)),
            ("product-service#random", Selector::Random),
        ] {
            let t: Target = text.parse().expect("valid");
            assert_eq!(t.selector, sel);
            assert_eq!(t.to_string(), text);
        }
    }

    #[test]
    fn bad_targets_say_what_is_expected() {
        for text in ["", "#1", "redis#0", "redis#x", "redis#", "re dis", "a/b"] {
            let e = text.parse::<Target>().expect_err(text);
            assert!(e.contains(text), "{e}");
        }
    }

    #[test]
    fn lists_split_on_commas() {
        let l = Target::parse_list("order, gateway#2").expect("valid");
        assert_eq!(
            l,
            vec![Target::all("order"), "gateway#2".parse().expect("ok")]
        );
        assert!(Target::parse_list("order,,x").is_err());
    }

    // Pins the replay promise: the same seed picks the same replica forever.
    #[test]
    fn the_same_seed_picks_the_same_replica() {
        let picks: Vec<usize> = (0..8).map(|s| pick(s, "redis", 3)).collect();
        assert_eq!(
            picks,
            (0..8).map(|s| pick(s, "redis", 3)).collect::<Vec<_>>()
        );
        assert!(picks.iter().all(|&p| p < 3));
        // Every replica is reachable with some seed.
        for r in 0..3 {
            assert!((0..64).any(|s| pick(s, "redis", 3) == r));
        }
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    }
}
