//! The scheduling queue, after upstream's: pods waiting for a scheduling attempt are in one
//! of three places.
//!
//! - **active**: ready for an attempt, highest priority first, then first come first served;
//! - **backoff**: failed recently and waiting out a delay that doubles with each failed
//!   attempt (1 s, 2 s, 4 s, ... up to 10 s by default) before becoming active again;
//! - **unschedulable**: failed, and no cluster change since that could let them fit. A
//!   change (a node added or changed, a pod gone) moves them all to backoff, or straight to
//!   active if their backoff has passed; so does the periodic flush of pods that have waited
//!   too long, in case a change went unseen.
//!
//! A pod being attempted is in none of them. The heaps are lazy: a removed or moved pod
//! leaves a stale entry behind that is skipped when it surfaces, which keeps every
//! operation logarithmic.
//!
//! The queue reads no clock: callers pass `now`, so tests drive time by hand.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

/// A pod's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(namespace: &str, name: &str) -> PodKey {
        PodKey { namespace: namespace.to_owned(), name: name.to_owned() }
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay after `attempts` failed attempts: `initial` doubled per attempt after the
    /// first, capped at `max`.
    pub fn after(&self, attempts: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable { since: Instant },
}

#[derive(Debug)]
struct Slot {
    /// Matches the heap entry that is current for this pod; older ones are stale.
    seq: u64,
    place: Place,
    priority: i32,
    attempts: u32,
    last_attempt: Option<Instant>,
}

impl Slot {
    fn backoff_until(&self, backoff: Backoff) -> Option<Instant> {
        self.last_attempt.map(|t| t + backoff.after(self.attempts))
    }
}

#[derive(Debug, PartialEq, Eq)]
struct ActiveEntry {
    priority: i32,
    seq: u64,
    key: PodKey,
}

impl Ord for ActiveEntry {
    /// Higher priority first, then the earlier arrival.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority.cmp(&other.priority).then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug)]
pub struct SchedulingQueue {
    backoff_policy: Backoff,
    slots: HashMap<PodKey, Slot>,
    active: BinaryHeap<ActiveEntry>,
    backoff: BinaryHeap<Reverse<(Instant, u64, PodKey)>>,
    next_seq: u64,
}

impl SchedulingQueue {
    pub fn new(backoff_policy: Backoff) -> SchedulingQueue {
        SchedulingQueue {
            backoff_policy,
            slots: HashMap::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            next_seq: 0,
        }
    }

    /// Adds a new pod to the active queue; a pod already queued keeps its place.
    pub fn add(&mut self, key: PodKey, priority: i32) {
        if self.slots.contains_key(&key) {
            return;
        }
        self.slots
            .insert(key.clone(), Slot { seq: 0, place: Place::Active, priority, attempts: 0, last_attempt: None });
        self.push_active(key);
    }

    /// Takes the next pod to attempt out of the queue.
    pub fn pop(&mut self) -> Option<PodKey> {
        while let Some(entry) = self.active.pop() {
            let current = self.slots.get(&entry.key).is_some_and(|s| s.seq == entry.seq && s.place == Place::Active);
            if current {
                self.slots.remove(&entry.key);
                return Some(entry.key);
            }
        }
        None
    }

    /// Puts back a pod whose attempt found no node, after its `attempts`th failure.
    pub fn add_unschedulable(&mut self, key: PodKey, priority: i32, attempts: u32, now: Instant) {
        let seq = self.bump();
        self.slots.insert(
            key,
            Slot { seq, place: Place::Unschedulable { since: now }, priority, attempts, last_attempt: Some(now) },
        );
    }

    /// Puts back a pod whose attempt failed for a reason other than fit (a failed bind): it
    /// is retried after its backoff without waiting for a cluster change.
    pub fn add_backoff(&mut self, key: PodKey, priority: i32, attempts: u32, now: Instant) {
        let seq = self.bump();
        let slot = Slot { seq, place: Place::Backoff, priority, attempts, last_attempt: Some(now) };
        let until = slot.backoff_until(self.backoff_policy).unwrap_or(now);
        self.slots.insert(key.clone(), slot);
        self.backoff.push(Reverse((until, seq, key)));
    }

    pub fn remove(&mut self, key: &PodKey) {
        self.slots.remove(key);
    }

    pub fn contains(&self, key: &PodKey) -> bool {
        self.slots.contains_key(key)
    }

    /// The pod changed: if it was waiting for a cluster change, the change may be its own,
    /// so it gets another attempt once its backoff allows.
    pub fn pod_updated(&mut self, key: &PodKey, priority: i32, now: Instant) {
        let Some(slot) = self.slots.get_mut(key) else { return };
        slot.priority = priority;
        if matches!(slot.place, Place::Unschedulable { .. }) {
            self.reactivate(key.clone(), now);
        }
    }

    /// Something changed in the cluster that may let unschedulable pods fit.
    pub fn move_all_unschedulable(&mut self, now: Instant) {
        let keys: Vec<PodKey> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.place, Place::Unschedulable { .. }))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.reactivate(key, now);
        }
    }

    /// Retries unschedulable pods that have waited longer than `max_wait`, in case the change
    /// that would let them fit was not seen.
    pub fn flush_unschedulable(&mut self, max_wait: Duration, now: Instant) {
        let keys: Vec<PodKey> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.place, Place::Unschedulable { since } if now.duration_since(since) >= max_wait))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.reactivate(key, now);
        }
    }

    /// Moves pods whose backoff has passed to the active queue.
    pub fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((until, seq, key))) = self.backoff.peek() {
            if *until > now {
                break;
            }
            let (seq, key) = (*seq, key.clone());
            self.backoff.pop();
            if self.slots.get(&key).is_some_and(|s| s.seq == seq && s.place == Place::Backoff) {
                self.push_active(key);
            }
        }
    }

    /// When the earliest backoff ends, if any pod is backing off.
    pub fn next_backoff_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((until, seq, key))) = self.backoff.peek() {
            if self.slots.get(key).is_some_and(|s| s.seq == *seq && s.place == Place::Backoff) {
                return Some(*until);
            }
            self.backoff.pop();
        }
        None
    }

    pub fn has_active(&self) -> bool {
        // Stale entries may make this true spuriously; `pop` then returns `None`, which is harmless.
        !self.active.is_empty()
    }

    /// How many pods wait in each place: active, backoff, unschedulable.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let mut out = (0, 0, 0);
        for s in self.slots.values() {
            match s.place {
                Place::Active => out.0 += 1,
                Place::Backoff => out.1 += 1,
                Place::Unschedulable { .. } => out.2 += 1,
            }
        }
        out
    }

    fn reactivate(&mut self, key: PodKey, now: Instant) {
        let Some(slot) = self.slots.get(&key) else { return };
        match slot.backoff_until(self.backoff_policy) {
            Some(until) if until > now => {
                let (priority, attempts) = (slot.priority, slot.attempts);
                self.add_backoff_until(key, priority, attempts, slot.last_attempt, until);
            }
            _ => self.push_active(key),
        }
    }

    fn add_backoff_until(
        &mut self,
        key: PodKey,
        priority: i32,
        attempts: u32,
        last_attempt: Option<Instant>,
        until: Instant,
    ) {
        let seq = self.bump();
        self.slots.insert(key.clone(), Slot { seq, place: Place::Backoff, priority, attempts, last_attempt });
        self.backoff.push(Reverse((until, seq, key)));
    }

    fn push_active(&mut self, key: PodKey) {
        let seq = self.bump();
        let Some(slot) = self.slots.get_mut(&key) else { return };
        slot.seq = seq;
        slot.place = Place::Active;
        self.active.push(ActiveEntry { priority: slot.priority, seq, key });
    }

    fn bump(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> PodKey {
        PodKey::new("default", name)
    }

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(10) })
    }

    fn drain(q: &mut SchedulingQueue) -> Vec<String> {
        std::iter::from_fn(|| q.pop()).map(|k| k.name).collect()
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(10) };
        let secs: Vec<u64> = (1..=6).map(|n| b.after(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(b.after(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn active_is_priority_then_fifo() {
        let mut q = queue();
        q.add(key("a"), 0);
        q.add(key("b"), 10);
        q.add(key("c"), 0);
        q.add(key("d"), 10);
        q.add(key("a"), 100); // already queued: keeps its place
        assert_eq!(drain(&mut q), ["b", "d", "a", "c"]);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_change_then_their_backoff() {
        let mut q = queue();
        let t0 = Instant::now();
        q.add_unschedulable(key("p"), 0, 3, t0);
        q.flush_backoff(t0 + Duration::from_secs(100));
        assert_eq!(q.pop(), None, "no change yet, so no retry");
        assert_eq!(q.sizes(), (0, 0, 1));

        q.move_all_unschedulable(t0 + Duration::from_secs(1));
        assert_eq!(q.sizes(), (0, 1, 0), "third failure: 4 s of backoff");
        assert_eq!(q.next_backoff_deadline(), Some(t0 + Duration::from_secs(4)));
        q.flush_backoff(t0 + Duration::from_secs(3));
        assert_eq!(q.pop(), None);
        q.flush_backoff(t0 + Duration::from_secs(4));
        assert_eq!(q.pop(), Some(key("p")));
        assert!(!q.contains(&key("p")), "being attempted");
    }

    #[test]
    fn a_change_after_the_backoff_activates_at_once() {
        let mut q = queue();
        let t0 = Instant::now();
        q.add_unschedulable(key("p"), 0, 1, t0);
        q.move_all_unschedulable(t0 + Duration::from_secs(5));
        assert_eq!(q.pop(), Some(key("p")));
    }

    #[test]
    fn long_waiters_are_flushed() {
        let mut q = queue();
        let t0 = Instant::now();
        q.add_unschedulable(key("old"), 0, 1, t0);
        q.add_unschedulable(key("new"), 0, 1, t0 + Duration::from_secs(250));
        q.flush_unschedulable(Duration::from_secs(300), t0 + Duration::from_secs(301));
        assert_eq!(drain(&mut q), ["old"]);
        assert_eq!(q.sizes(), (0, 0, 1));
    }

    #[test]
    fn removed_and_moved_pods_leave_only_stale_entries() {
        let mut q = queue();
        let t0 = Instant::now();
        q.add(key("a"), 0);
        q.add(key("b"), 0);
        q.remove(&key("a"));
        q.add_backoff(key("c"), 0, 1, t0);
        q.remove(&key("c"));
        assert_eq!(q.next_backoff_deadline(), None, "c's entry is stale");
        q.flush_backoff(t0 + Duration::from_secs(60));
        assert_eq!(drain(&mut q), ["b"]);
    }

    #[test]
    fn an_updated_pod_gets_another_attempt() {
        let mut q = queue();
        let t0 = Instant::now();
        q.add_unschedulable(key("p"), 0, 1, t0);
        q.pod_updated(&key("p"), 5, t0 + Duration::from_secs(2));
        assert_eq!(q.pop(), Some(key("p")));
        // An update to an active pod changes nothing about its place.
        q.add(key("q"), 0);
        q.pod_updated(&key("q"), 0, t0);
        assert_eq!(q.sizes(), (1, 0, 0));
    }

    #[test]
    fn failed_binds_back_off_without_a_change() {
        let mut q = queue();
        let t0 = Instant::now();
        q.add_backoff(key("p"), 0, 2, t0);
        assert_eq!(q.next_backoff_deadline(), Some(t0 + Duration::from_secs(2)));
        q.flush_backoff(t0 + Duration::from_secs(2));
        assert_eq!(q.pop(), Some(key("p")));
    }
}
