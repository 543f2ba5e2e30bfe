//! Which key sets an adapter's server holds in memory: at most a cap of them, the least
//! recently used evicted first (the store keeps every key set; an evicted one is loaded
//! again on its next request). A key set in use by a request in progress is leased and
//! never evicted, so the cap may be exceeded by the key sets of requests in flight, and
//! only by those.

use helora::pll::ClientId;
use std::collections::HashMap;

struct Entry {
    last_used: u64,
    leases: usize,
}

pub struct Residency {
    cap: usize,
    tick: u64,
    entries: HashMap<ClientId, Entry>,
}

impl Residency {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            tick: 0,
            entries: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, id: ClientId) -> bool {
        self.entries.contains_key(&id)
    }

    /// Leases `id` if it is resident (marking it used now); false if it is not.
    pub fn lease(&mut self, id: ClientId) -> bool {
        self.tick += 1;
        match self.entries.get_mut(&id) {
            Some(entry) => {
                entry.last_used = self.tick;
                entry.leases += 1;
                true
            }
            None => false,
        }
    }

    /// Drops `id` (its admission failed).
    pub fn forget(&mut self, id: ClientId) {
        self.entries.remove(&id);
    }

    pub fn release(&mut self, id: ClientId) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.leases = entry.leases.saturating_sub(1);
        }
    }

    /// Records `id` as resident and leased; returns the key sets to evict to keep within
    /// the cap (least recently used first, never a leased one).
    pub fn admit(&mut self, id: ClientId) -> Vec<ClientId> {
        self.tick += 1;
        let tick = self.tick;
        self.entries
            .entry(id)
            .and_modify(|e| {
                e.last_used = tick;
                e.leases += 1;
            })
            .or_insert(Entry {
                last_used: tick,
                leases: 1,
            });
        let excess = self.entries.len().saturating_sub(self.cap);
        if excess == 0 {
            return Vec::new();
        }
        let mut idle: Vec<(u64, ClientId)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.leases == 0)
            .map(|(id, e)| (e.last_used, *id))
            .collect();
        idle.sort();
        let evicted: Vec<ClientId> = idle.into_iter().take(excess).map(|(_, id)| id).collect();
        for id in &evicted {
            self.entries.remove(id);
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_idle_key_set() {
        let mut r = Residency::new(2);
        assert!(r.admit(ClientId(1)).is_empty());
        assert!(r.admit(ClientId(2)).is_empty());
        r.release(ClientId(1));
        r.release(ClientId(2));
        // 1 used after 2: 2 is the least recently used.
        assert!(r.lease(ClientId(1)));
        r.release(ClientId(1));
        assert_eq!(r.admit(ClientId(3)), vec![ClientId(2)]);
        assert!(!r.contains(ClientId(2)) && r.contains(ClientId(1)));
        assert!(!r.lease(ClientId(2)), "an evicted key set is not resident");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn never_evicts_a_leased_key_set() {
        let mut r = Residency::new(1);
        assert!(r.admit(ClientId(1)).is_empty());
        // 1 is leased: 2 goes over the cap rather than evict it.
        assert!(r.admit(ClientId(2)).is_empty());
        assert_eq!(r.len(), 2);
        r.release(ClientId(1));
        r.release(ClientId(2));
        // Back within the cap at the next admission, oldest first.
        assert_eq!(r.admit(ClientId(3)), vec![ClientId(1), ClientId(2)]);
        assert_eq!(r.len(), 1);
    }
}
