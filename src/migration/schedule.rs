//! Which clone step starts next when a slot frees up: the one heading the longest chain of
//! work still ahead.
//!
//! Steps run `parallelism` at a time and a step waits for the steps copying what it
//! references. Started in catalog order, a run's biggest step (at ten million documents,
//! suggestions with their votes: a quarter of the documents) could start last and finish
//! alone while the other slot stood idle. Starting first the step whose own documents plus
//! those of the longest chain of steps waiting on it are the most (longest processing time
//! first, along the critical path) keeps both slots busy until the end.

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

/// The step to start next among those not started whose dependencies are done: the longest
/// chain ahead, the catalog's order between equals.
pub(crate) fn next_step(
    chain: &[u64],
    deps: &[Vec<usize>],
    started: &[bool],
    done: &[bool],
) -> Option<usize> {
    (0..chain.len())
        .filter(|&i| !started[i] && deps[i].iter().all(|&d| done[d]))
        .max_by(|&a, &b| chain[a].cmp(&chain[b]).then(b.cmp(&a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a schedule on `slots` slots where a step takes as long as its size; returns the
    /// time the last step ends.
    fn makespan(sizes: &[u64], deps: &[Vec<usize>], slots: usize) -> u64 {
        let chain = chain_sizes(sizes, deps);
        let n = sizes.len();
        let (mut started, mut done) = (vec![false; n], vec![false; n]);
        let mut running: Vec<(u64, usize)> = Vec::new();
        let mut now = 0;
        loop {
            while running.len() < slots {
                let Some(i) = next_step(&chain, deps, &started, &done) else {
                    break;
                };
                started[i] = true;
                running.push((now + sizes[i], i));
            }
            let Some(k) = (0..running.len()).min_by_key(|&k| running[k].0) else {
                return now;
            };
            let (end, i) = running.swap_remove(k);
            now = end;
            done[i] = true;
        }
    }

    #[test]
    fn the_longest_chain_ahead_starts_first() {
        // 0 → 1 (step 1 waits for 0), 2 alone, 3 alone and biggest.
        let deps = vec![vec![], vec![0], vec![], vec![]];
        let sizes = [1, 300, 200, 400];
        assert_eq!(chain_sizes(&sizes, &deps), vec![301, 300, 200, 400]);
        let chain = chain_sizes(&sizes, &deps);
        let none = vec![false; 4];
        assert_eq!(next_step(&chain, &deps, &none, &none), Some(3));
        // Step 1 cannot start before 0 is done, however big.
        let started = [false, false, true, true];
        assert_eq!(next_step(&chain, &deps, &started, &none), Some(0));
    }

    #[test]
    fn equal_chains_keep_the_catalogs_order() {
        let deps = vec![vec![], vec![], vec![]];
        let chain = chain_sizes(&[5, 5, 5], &deps);
        let none = vec![false; 3];
        assert_eq!(next_step(&chain, &deps, &none, &none), Some(0));
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
        let catalog_order = {
            let n = sizes.len();
            let (mut started, mut done) = (vec![false; n], vec![false; n]);
            let mut running: Vec<(u64, usize)> = Vec::new();
            let mut now = 0;
            loop {
                while running.len() < 2 {
                    let Some(i) = (0..n).find(|&i| !started[i] && deps[i].iter().all(|&d| done[d]))
                    else {
                        break;
                    };
                    started[i] = true;
                    running.push((now + sizes[i], i));
                }
                let Some(k) = (0..running.len()).min_by_key(|&k| running[k].0) else {
                    break now;
                };
                let (end, i) = running.swap_remove(k);
                now = end;
                done[i] = true;
            }
        };
        let chained = makespan(&sizes, &deps, 2);
        assert!(chained < catalog_order, "{chained} ≥ {catalog_order}");
        // The biggest chain (steps 4 and 5) started first.
        let chain = chain_sizes(&sizes, &deps);
        let none = vec![false; sizes.len()];
        assert_eq!(next_step(&chain, &deps, &none, &none), Some(4));
    }
}
