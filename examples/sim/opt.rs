//! Bélády's OPT with bypass: the most hits any cache of a given capacity
//! can get on a trace, knowing the future.
//!
//! `next_use[i]` (the position of the next access to the key of access
//! `i`) comes from one backward pass. Resident keys sit in a max-heap by
//! their next use, with lazy deletion (a hit pushes a fresh entry; stale
//! ones are skipped when they surface, and purged when the heap grows). On
//! a miss in a full cache the new key is compared with the heap top: if it
//! is needed later than every resident key (or never again), it is not
//! cached at all (bypass); otherwise the top is evicted.

use std::collections::BinaryHeap;

/// "Never used again".
const NEVER: u32 = u32::MAX;

/// The next-use position of every access (`NEVER` when there is none).
pub fn next_uses(ids: &[u32], distinct: usize) -> Vec<u32> {
    let mut next = vec![NEVER; ids.len()];
    let mut seen = vec![NEVER; distinct];
    for (i, &id) in ids.iter().enumerate().rev() {
        next[i] = seen[id as usize];
        seen[id as usize] = i as u32;
    }
    next
}

/// Hits of OPT with bypass at `capacity` entries.
pub fn hits(ids: &[u32], next: &[u32], distinct: usize, capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    // The next use each resident key is filed under; NEVER + not resident
    // is told apart by `resident`.
    let mut filed = vec![0u32; distinct];
    let mut resident = vec![false; distinct];
    let mut len = 0usize;
    let mut heap: BinaryHeap<(u32, u32)> = BinaryHeap::with_capacity(capacity * 2);
    let mut hits = 0u64;
    for (i, &id) in ids.iter().enumerate() {
        let id_u = id as usize;
        let nu = next[i];
        if resident[id_u] {
            hits += 1;
            filed[id_u] = nu;
            heap.push((nu, id));
        } else if len < capacity {
            resident[id_u] = true;
            filed[id_u] = nu;
            heap.push((nu, id));
            len += 1;
        } else {
            // The resident key needed furthest in the future.
            let top = loop {
                let &(t_nu, t_id) = heap.peek().expect("a full cache has a heap top");
                if resident[t_id as usize] && filed[t_id as usize] == t_nu {
                    break (t_nu, t_id);
                }
                heap.pop();
            };
            if nu < top.0 {
                heap.pop();
                resident[top.1 as usize] = false;
                resident[id_u] = true;
                filed[id_u] = nu;
                heap.push((nu, id));
            }
            // else bypass: the new key is needed last (or never).
        }
        if heap.len() > 4 * capacity + 1024 {
            heap.retain(|&(t_nu, t_id)| resident[t_id as usize] && filed[t_id as usize] == t_nu);
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_examples() {
        // a b c a b d a: capacity 2 keeps a, and b until d.
        let ids = [0, 1, 2, 0, 1, 3, 0];
        let next = next_uses(&ids, 4);
        assert_eq!(next, vec![3, 4, NEVER, 6, NEVER, NEVER, NEVER]);
        assert_eq!(hits(&ids, &next, 4, 2), 3);
        assert_eq!(hits(&ids, &next, 4, 1), 2);
        assert_eq!(hits(&ids, &next, 4, 0), 0);
        // A loop of 3 keys in a cache of 2: OPT keeps one fixed.
        let ids: Vec<u32> = (0..30).map(|i| i % 3).collect();
        let next = next_uses(&ids, 3);
        assert!(hits(&ids, &next, 3, 2) >= 13);
    }
}
