//! The dependency graph between components: a start order, cycle detection, and the
//! closure of a selection (what `up product-service` must also start).

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;

use crate::model::Component;

/// Components in an order where every dependency comes before its dependents.
///
/// Ties are broken by file order so that output (and `ps`) is stable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependencyGraph {
    order: Vec<String>,
    deps: HashMap<String, Vec<String>>,
}

impl DependencyGraph {
    /// Builds the graph, or returns a cycle as the list of names along it, first repeated
    /// last (`a -> b -> a`).
    pub fn new(components: &IndexMap<String, Component>) -> Result<Self, Vec<String>> {
        let deps: HashMap<String, Vec<String>> = components
            .values()
            .map(|c| {
                (
                    c.name.clone(),
                    c.depends_on
                        .iter()
                        .map(|d| d.component.clone())
                        .filter(|d| components.contains_key(d))
                        .collect(),
                )
            })
            .collect();
        let index: HashMap<&str, usize> = components
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();

        // Depth-first post-order, visiting in file order; grey/black marking finds cycles.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            White,
            Grey,
            Black,
        }
        let names: Vec<&String> = components.keys().collect();
        let mut mark = vec![Mark::White; names.len()];
        let mut order = Vec::with_capacity(names.len());
        let mut path: Vec<usize> = Vec::new();

        fn visit(
            i: usize,
            names: &[&String],
            deps: &HashMap<String, Vec<String>>,
            index: &HashMap<&str, usize>,
            mark: &mut [Mark],
            path: &mut Vec<usize>,
            order: &mut Vec<String>,
        ) -> Result<(), Vec<String>> {
            match mark[i] {
                Mark::Black => return Ok(()),
                Mark::Grey => {
                    let start = path.iter().position(|&p| p == i).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|&p| names[p].clone()).collect();
                    cycle.push(names[i].clone());
                    return Err(cycle);
                }
                Mark::White => {}
            }
            mark[i] = Mark::Grey;
            path.push(i);
            for d in deps.get(names[i].as_str()).into_iter().flatten() {
                if let Some(&j) = index.get(d.as_str()) {
                    visit(j, names, deps, index, mark, path, order)?;
                }
            }
            path.pop();
            mark[i] = Mark::Black;
            order.push(names[i].clone());
            Ok(())
        }

        for i in 0..names.len() {
            visit(i, &names, &deps, &index, &mut mark, &mut path, &mut order)?;
        }
        Ok(Self { order, deps })
    }

    /// Every component, dependencies first.
    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// Direct dependencies of `name`.
    pub fn dependencies(&self, name: &str) -> &[String] {
        self.deps.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `roots` and everything they transitively depend on, in start order.
    pub fn closure(&self, roots: &[String]) -> Vec<String> {
        let mut wanted: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = roots.iter().map(String::as_str).collect();
        while let Some(n) = stack.pop() {
            if wanted.insert(n) {
                stack.extend(self.dependencies(n).iter().map(String::as_str));
            }
        }
        self.order
            .iter()
            .filter(|n| wanted.contains(n.as_str()))
            .cloned()
            .collect()
    }

    /// Components that depend on `name`, directly or not, in reverse start order (the order
    /// in which to stop them).
    pub fn dependents(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in &self.order {
            if n != name
                && self
                    .closure(std::slice::from_ref(n))
                    .iter()
                    .any(|d| d == name)
            {
                out.push(n.clone());
            }
        }
        out.reverse();
        out
    }
}
