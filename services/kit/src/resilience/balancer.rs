//! Load balancers: round robin, least connections and power of two choices.
//!
//! A balancer sees only the current in-flight count of each candidate (in a stable order)
//! and returns the index of the one to use.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

/// Which balancing strategy to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancing {
    /// Each candidate in turn.
    #[default]
    RoundRobin,
    /// The candidate with the fewest requests in flight (ties broken in rotation).
    LeastConnections,
    /// Two distinct candidates at random, the less loaded of the two.
    #[serde(rename = "p2c")]
    PowerOfTwoChoices,
}

/// An unknown strategy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown load-balancing strategy {0:?}; use round_robin, least_connections or p2c")]
pub struct UnknownStrategy(pub String);

impl FromStr for LoadBalancing {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "round_robin" | "rr" => Ok(Self::RoundRobin),
            "least_connections" | "least_conn" => Ok(Self::LeastConnections),
            "p2c" | "power_of_two_choices" => Ok(Self::PowerOfTwoChoices),
            _ => Err(UnknownStrategy(s.to_owned())),
        }
    }
}

impl LoadBalancing {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastConnections => "least_connections",
            Self::PowerOfTwoChoices => "p2c",
        }
    }
}

/// A balancer of one strategy, with the rotation counter it needs.
#[derive(Debug, Default)]
pub struct Balancer {
    strategy: LoadBalancing,
    next: AtomicUsize,
}

impl Balancer {
    /// A balancer using `strategy`.
    pub fn new(strategy: LoadBalancing) -> Self {
        Self {
            strategy,
            next: AtomicUsize::new(0),
        }
    }

    /// The strategy in use.
    pub fn strategy(&self) -> LoadBalancing {
        self.strategy
    }

    /// Pick among candidates whose in-flight counts are `loads`; `None` when there are none.
    pub fn pick(&self, loads: &[usize]) -> Option<usize> {
        self.pick_with(loads, &mut rand::thread_rng())
    }

    /// [`Balancer::pick`] with an explicit random source (for reproducible tests).
    pub fn pick_with<R: Rng + ?Sized>(&self, loads: &[usize], rng: &mut R) -> Option<usize> {
        let n = loads.len();
        if n == 0 {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        match self.strategy {
            LoadBalancing::RoundRobin => Some(turn % n),
            LoadBalancing::LeastConnections => {
                let min = loads.iter().copied().min()?;
                // Rotate the starting point so ties are shared rather than always the first.
                (0..n).map(|k| (turn + k) % n).find(|&i| loads[i] == min)
            }
            LoadBalancing::PowerOfTwoChoices => {
                if n == 1 {
                    return Some(0);
                }
                let a = rng.gen_range(0..n);
                let mut b = rng.gen_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                Some(if loads[b] < loads[a] { b } else { a })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn loads() -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(0usize..20, 0..12)
    }

    proptest! {
        #[test]
        fn every_strategy_picks_a_valid_index(loads in loads(), seed: u64) {
            let mut rng = StdRng::seed_from_u64(seed);
            for s in [LoadBalancing::RoundRobin, LoadBalancing::LeastConnections, LoadBalancing::PowerOfTwoChoices] {
                let b = Balancer::new(s);
                match b.pick_with(&loads, &mut rng) {
                    None => prop_assert!(loads.is_empty()),
                    Some(i) => prop_assert!(i < loads.len()),
                }
            }
        }

        /// Round robin gives every candidate exactly `rounds` turns in `rounds × n` picks.
        #[test]
        fn round_robin_is_exactly_fair(n in 1usize..12, rounds in 1usize..20) {
            let b = Balancer::new(LoadBalancing::RoundRobin);
            let loads = vec![0; n];
            let mut counts = vec![0usize; n];
            for _ in 0..n * rounds {
                if let Some(i) = b.pick(&loads) { counts[i] += 1; }
            }
            prop_assert!(counts.iter().all(|&c| c == rounds));
        }

        /// Least connections always picks a least-loaded candidate, and shares ties.
        #[test]
        fn least_connections_picks_a_minimum(loads in loads()) {
            let b = Balancer::new(LoadBalancing::LeastConnections);
            if let Some(min) = loads.iter().min() {
                let ties = loads.iter().filter(|l| *l == min).count();
                let mut seen = std::collections::HashSet::new();
                for _ in 0..loads.len() {
                    let i = b.pick(&loads).unwrap_or(usize::MAX);
                    prop_assert_eq!(loads.get(i), Some(min));
                    seen.insert(i);
                }
                prop_assert_eq!(seen.len(), ties);
            }
        }

        /// Power of two choices never picks the single most loaded candidate when there is
        /// more than one, and never anything worse than the second choice it drew.
        #[test]
        fn p2c_avoids_the_unique_maximum(loads in proptest::collection::vec(0usize..20, 2..12), seed: u64) {
            let mut rng = StdRng::seed_from_u64(seed);
            let b = Balancer::new(LoadBalancing::PowerOfTwoChoices);
            let max = *loads.iter().max().unwrap_or(&0);
            let unique_max = loads.iter().filter(|&&l| l == max).count() == 1;
            for _ in 0..50 {
                let i = b.pick_with(&loads, &mut rng).unwrap_or(usize::MAX);
                prop_assert!(i < loads.len());
                if unique_max {
                    prop_assert!(loads[i] < max);
                }
            }
        }
    }

    #[test]
    fn strategy_names_parse() {
        assert_eq!("round_robin".parse(), Ok(LoadBalancing::RoundRobin));
        assert_eq!(
            "least-connections".parse(),
            Ok(LoadBalancing::LeastConnections)
        );
        assert_eq!("P2C".parse(), Ok(LoadBalancing::PowerOfTwoChoices));
        assert!("random".parse::<LoadBalancing>().is_err());
    }
}
