//! Which clone step starts next when a slot frees up.
//!
//! Steps run `parallelism` at a time and a step waits for the steps copying what it
//! references. Two rules, both from ten million documents on a server whose cache holds a
//! third of the data (docs/benchmarks.md):
//!
//! - **The longest chain of work first.** Started in catalog order, a run's biggest step
//!   (one collection and its children: a third of the documents) started last and ended alone
//!   while the other slot stood idle. A free slot takes the ready step whose own documents
//!   plus those of the longest chain of steps waiting on it are the most (longest
//!   processing time first, along the critical path).
//! - **One large step at a time.** Two large collections copied at once evict each other's
//!   index pages from the server's cache: each insert of a thousand documents into two
//!   collections whose unique keys come in random order took 2.3 and 4.5 times as long as
//!   in a plain copy of each alone. A step holding at least a [`LARGE_SHARE`]th of the
//!   run's documents runs beside small steps only, as the plain copy runs each collection
//!   alone.

/// A step is large when it holds at least this share of the run's documents (1 / n).
const LARGE_SHARE: u64 = 10;

/// Which steps are large: at least a [`LARGE_SHARE`]th of all the run's documents.
pub(crate) fn large_steps(sizes: &[u64]) -> Vec<bool> {
    let total: u64 = sizes.iter().sum();
    sizes
        .iter()
        .map(|&s| s > 0 && s.saturating_mul(LARGE_SHARE) >= total)
        .collect()
}

/// For each step, its documents plus those of the longest chain of steps that
/// wait on it (directly or not). `deps[j]` lists the steps step `j` waits for; a step only
/// waits for steps before it in the catalog's order.
pub(crate) fn chain_sizes(sizes: &[u64], deps: &[Vec<usize>]) -> Vec<u64> {
    let mut chain = sizes.to_vec();
    for j in (0..sizes.len()).rev() {
        for &d in &deps[j] {
            debug_assert!(d < j, "a step waits only for earlier steps");
            if d < j {
                chain[d] = chain[d].max(sizes[d].saturating_add(chain[j]));
            }
        }
    }
    chain
}

/// What the schedule knows of a run's steps.
pub(crate) struct Plan<'a> {
    /// Each step's chain of work ahead ([`chain_sizes`]).
    pub chain: &'a [u64],
    /// The steps each step waits for.
    pub deps: &'a [Vec<usize>],
    /// The large steps ([`large_steps`]).
    pub large: &'a [bool],
}

impl Plan<'_> {
    /// The step to start next among those not started whose dependencies are done, no
    /// large one while another runs: the longest chain ahead, the catalog's order between
    /// equals.
    pub(crate) fn next_step(&self, started: &[bool], done: &[bool]) -> Option<usize> {
        let large_running = (0..self.chain.len()).any(|i| started[i] && !done[i] && self.large[i]);
        (0..self.chain.len())
            .filter(|&i| !started[i] && self.deps[i].iter().all(|&d| done[d]))
            .filter(|&i| !(large_running && self.large[i]))
            .max_by(|&a, &b| self.chain[a].cmp(&self.chain[b]).then(b.cmp(&a)))
    }

    /// Once step `i` has ended: the steps no step still to end waits for (`i` and those it
    /// waited for, each once every step waiting on it has ended).
    pub(crate) fn no_longer_needed(&self, i: usize, done: &[bool]) -> Vec<usize> {
        let waits_on = |j: usize, d: usize| self.deps[j].contains(&d);
        self.deps[i]
            .iter()
            .copied()
            .chain([i])
            .filter(|&d| (0..self.deps.len()).all(|j| done[j] || !waits_on(j, d)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs steps on `slots` slots, each taking as long as its size, started in the order
    /// `pick` gives; returns each step's (start, end).
    fn simulate(
        sizes: &[u64],
        slots: usize,
        mut pick: impl FnMut(&[bool], &[bool]) -> Option<usize>,
    ) -> Vec<(u64, u64)> {
        let n = sizes.len();
        let (mut started, mut done) = (vec![false; n], vec![false; n]);
        let mut times = vec![(0, 0); n];
        let mut running: Vec<usize> = Vec::new();
        let mut now = 0;
        loop {
            while running.len() < slots {
                let Some(i) = pick(&started, &done) else {
                    break;
                };
                started[i] = true;
                times[i] = (now, now + sizes[i]);
                running.push(i);
            }
            let Some(k) = (0..running.len()).min_by_key(|&k| times[running[k]].1) else {
                return times;
            };
            let i = running.swap_remove(k);
            now = times[i].1;
            done[i] = true;
        }
    }

    fn end(times: &[(u64, u64)]) -> u64 {
        times.iter().map(|t| t.1).max().unwrap_or(0)
    }

    #[test]
    fn the_longest_chain_ahead_starts_first() {
        // 0 → 1 (step 1 waits for 0), 2 alone, 3 alone and biggest.
        let deps = vec![vec![], vec![0], vec![], vec![]];
        let sizes = [1, 300, 200, 400];
        let chain = chain_sizes(&sizes, &deps);
        assert_eq!(chain, vec![301, 300, 200, 400]);
        let large = vec![false; 4];
        let plan = Plan {
            chain: &chain,
            deps: &deps,
            large: &large,
        };
        let none = vec![false; 4];
        assert_eq!(plan.next_step(&none, &none), Some(3));
        // Step 1 cannot start before 0 is done, however big.
        let started = [false, false, true, true];
        assert_eq!(plan.next_step(&started, &none), Some(0));
    }

    #[test]
    fn equal_chains_keep_the_catalogs_order() {
        let deps = vec![vec![], vec![], vec![]];
        let chain = chain_sizes(&[5, 5, 5], &deps);
        let large = vec![false; 3];
        let plan = Plan {
            chain: &chain,
            deps: &deps,
            large: &large,
        };
        let none = vec![false; 3];
        assert_eq!(plan.next_step(&none, &none), Some(0));
    }

    #[test]
    fn a_chain_counts_its_longest_branch_once() {
        // 0 feeds 1 and 2; 2 feeds 3.
        let deps = vec![vec![], vec![0], vec![0], vec![2]];
        assert_eq!(chain_sizes(&[10, 50, 20, 40], &deps), vec![70, 50, 60, 40]);
    }

    #[test]
    fn the_biggest_step_last_in_the_catalog_no_longer_ends_alone() {
        // The shape of a big instance: small steps, two mid-sized chains, the biggest step
        // last in the catalog. In catalog order it starts after the others and ends alone.
        let deps = vec![vec![], vec![], vec![1], vec![], vec![], vec![4]];
        let sizes = [180, 5, 320, 40, 5, 330];
        let ready = |i: usize, started: &[bool], done: &[bool]| {
            !started[i] && deps[i].iter().all(|&d| done[d])
        };
        let in_catalog_order = simulate(&sizes, 2, |started, done| {
            (0..sizes.len()).find(|&i| ready(i, started, done))
        });
        let chain = chain_sizes(&sizes, &deps);
        let large = vec![false; sizes.len()];
        let plan = Plan {
            chain: &chain,
            deps: &deps,
            large: &large,
        };
        let chained = simulate(&sizes, 2, |s, d| plan.next_step(s, d));
        assert!(end(&chained) < end(&in_catalog_order));
        // The biggest chain (steps 4 and 5) started first.
        assert_eq!(chained[4].0, 0);
    }

    #[test]
    fn large_steps_run_one_at_a_time_beside_small_ones() {
        // Three large steps and small ones, two slots: never two large at once, and the
        // small ones run beside the large ones rather than after them.
        let deps = vec![vec![], vec![], vec![], vec![], vec![], vec![]];
        let sizes = [300, 20, 250, 30, 200, 10];
        let large = large_steps(&sizes);
        assert_eq!(large, vec![true, false, true, false, true, false]);
        let chain = chain_sizes(&sizes, &deps);
        let plan = Plan {
            chain: &chain,
            deps: &deps,
            large: &large,
        };
        let times = simulate(&sizes, 2, |s, d| plan.next_step(s, d));
        for a in 0..sizes.len() {
            for b in a + 1..sizes.len() {
                let overlap = times[a].0 < times[b].1 && times[b].0 < times[a].1;
                assert!(!(large[a] && large[b] && overlap), "{a} and {b}: {times:?}");
            }
        }
        let large_end = (0..sizes.len())
            .filter(|&i| large[i])
            .map(|i| times[i].1)
            .max();
        assert!((0..sizes.len()).all(|i| large[i] || Some(times[i].1) < large_end));
        assert_eq!(end(&times), 300 + 250 + 200);
    }

    #[test]
    fn a_step_is_no_longer_needed_once_every_step_waiting_on_it_ended() {
        // 1 and 2 wait for 0; 3 waits for nothing.
        let deps = vec![vec![], vec![0], vec![0], vec![]];
        let chain = chain_sizes(&[1, 1, 1, 1], &deps);
        let large = vec![false; 4];
        let plan = Plan {
            chain: &chain,
            deps: &deps,
            large: &large,
        };
        // 0 ended: 1 and 2 still wait on it.
        assert_eq!(
            plan.no_longer_needed(0, &[true, false, false, false]),
            vec![] as Vec<usize>
        );
        // 1 ended, 2 still running: 0 is still needed, 1 is not.
        assert_eq!(
            plan.no_longer_needed(1, &[true, true, false, false]),
            vec![1]
        );
        // 2 ended too: 0 and 2 are no longer needed.
        assert_eq!(
            plan.no_longer_needed(2, &[true, true, true, false]),
            vec![0, 2]
        );
        // A step nothing waits on is done with as it ends.
        assert_eq!(
            plan.no_longer_needed(3, &[false, false, false, true]),
            vec![3]
        );
    }

    #[test]
    fn an_empty_run_has_no_large_step() {
        assert_eq!(large_steps(&[0, 0, 0]), vec![false; 3]);
        assert_eq!(large_steps(&[1, 0, 0]), vec![true, false, false]);
    }
}
