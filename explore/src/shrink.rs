//! Shrinking a failing run to a minimal one that still fails the same checker: delta
//! debugging (Zeller's ddmin) over the fault events, then over parameters — each fault's
//! duration, the workload's clients and length — re-running every candidate a few times to
//! master flakiness (a candidate counts as failing when any of its tries fails).

use std::collections::HashMap;
use std::future::Future;

/// Delta debugging: a 1-minimal subset of `items` for which `fails` holds (removing any one
/// element makes it pass), assuming `fails(items)`. The empty set is tried first: a failure
/// that needs no element at all shrinks to nothing. Each distinct subset is tested once.
/// Returns the subset and the number of tests run.
pub async fn ddmin<T, F, Fut>(items: Vec<T>, mut fails: F) -> (Vec<T>, u32)
where
    T: Clone,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut tests = 0u32;
    let mut seen: HashMap<Vec<usize>, bool> = HashMap::new();
    // Work on indices so subsets can be remembered.
    let mut current: Vec<usize> = (0..items.len()).collect();
    let mut test =
        async |idx: Vec<usize>, tests: &mut u32, seen: &mut HashMap<Vec<usize>, bool>| {
            if let Some(r) = seen.get(&idx) {
                return (idx, *r);
            }
            *tests += 1;
            let subset: Vec<T> = idx.iter().map(|&i| items[i].clone()).collect();
            let r = fails(subset).await;
            (idx, r)
        };
    let (idx, r) = test(Vec::new(), &mut tests, &mut seen).await;
    seen.insert(idx, r);
    if r {
        return (Vec::new(), tests);
    }
    let mut n = 2usize;
    while current.len() >= 2 {
        let chunks = split(&current, n);
        let mut reduced = false;
        for c in &chunks {
            let (idx, r) = test(c.clone(), &mut tests, &mut seen).await;
            seen.insert(idx, r);
            if r {
                current = c.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && n > 2 {
            for c in &chunks {
                let complement: Vec<usize> =
                    current.iter().copied().filter(|i| !c.contains(i)).collect();
                let (idx, r) = test(complement.clone(), &mut tests, &mut seen).await;
                seen.insert(idx, r);
                if r {
                    current = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (n * 2).min(current.len());
        }
    }
    // With n = 2 the complements are the chunks themselves; a 1-minimal result also needs
    // every single removal tried.
    if current.len() >= 2 {
        loop {
            let mut reduced = false;
            for i in 0..current.len() {
                let without: Vec<usize> = current
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, v)| *v)
                    .collect();
                let (idx, r) = test(without.clone(), &mut tests, &mut seen).await;
                seen.insert(idx, r);
                if r {
                    current = without;
                    reduced = true;
                    break;
                }
            }
            if !reduced || current.len() < 2 {
                break;
            }
        }
    }
    (current.iter().map(|&i| items[i].clone()).collect(), tests)
}

fn split(items: &[usize], n: usize) -> Vec<Vec<usize>> {
    let n = n.min(items.len()).max(1);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for k in 0..n {
        let end = start + (items.len() - start) / (n - k);
        out.push(items[start..end].to_vec());
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run<T: Clone>(items: Vec<T>, pred: impl Fn(&[T]) -> bool) -> (Vec<T>, u32) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(ddmin(items, |s| {
            let r = pred(&s);
            async move { r }
        }))
    }

    #[test]
    fn a_failure_caused_by_two_events_shrinks_to_exactly_those_two() {
        let items: Vec<u32> = (0..12).collect();
        let (min, tests) = run(items, |s| s.contains(&3) && s.contains(&8));
        assert_eq!(min, vec![3, 8]);
        assert!(tests < 40, "{tests} tests");
    }

    #[test]
    fn a_failure_that_needs_no_event_shrinks_to_nothing_in_one_test() {
        let (min, tests) = run(vec![1, 2, 3], |_| true);
        assert!(min.is_empty());
        assert_eq!(tests, 1);
    }

    proptest! {
        // The result still fails and is 1-minimal: dropping any one element passes.
        #[test]
        fn the_result_fails_and_is_one_minimal(n in 1usize..16, wanted in proptest::collection::btree_set(0usize..16, 1..4)) {
            let items: Vec<usize> = (0..n).collect();
            let wanted: Vec<usize> = wanted.into_iter().filter(|w| *w < n).collect();
            prop_assume!(!wanted.is_empty());
            let pred = |s: &[usize]| wanted.iter().all(|w| s.contains(w));
            let (min, _) = run(items, pred);
            prop_assert!(pred(&min));
            for i in 0..min.len() {
                let mut less = min.clone();
                less.remove(i);
                prop_assert!(!pred(&less));
            }
        }
    }
}
