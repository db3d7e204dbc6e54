//! The node's hold on its units' leases, apart from the supervisor's loop so nothing there (a
//! slow read, a claim, the log) can delay it: a task renews the leases of the units this node
//! runs every sixth of a lease, each renewal bounded by a third of a lease; a watchdog kills a
//! unit as soon as its lease may be about to run out.
//!
//! **The margin.** A lease renewed (or claimed) by a query *sent* at `t` runs until at least
//! `t + lease` in the database (its clock starts when the query runs, later than `t`). The node
//! counts it good only until `t + lease − lease/3`: past that, with no renewal answered, the
//! unit's group is sent SIGKILL at once, from here (not waiting for the unit's own task, which
//! may be busy appending to the log), and its task told its lease is lost. So a node that can no
//! longer reach the database has killed its units a third of a lease before another node may
//! claim them. A unit whose renewal does not return it (another node took it after it ran out)
//! is killed the same way.
//!
//! A renewal gives up any lease of this node no unit here runs (a claim whose answer was lost, a
//! unit whose run ended), but keeps those a claim still out asked for (`claiming`), so it never
//! gives up a lease claimed while it ran; it never waits for a claim. A lease left to run out
//! (`Leases::leave`: a runnable's run whose end could not be recorded) is not renewed, and no
//! renewal ever gives up a runnable's run's lease (only its run does, or `take_expired` once it
//! ran out), so whoever takes it records that run lost; this node does not claim a lease it left
//! again until it ran out (`Leases::left_lately`). It takes the restart turn back from any unit of this node that does not know it holds it (one taken whose answer was
//! lost). Renewals have a connection of their own (see `Context::renewal_pool`): a busy pool
//! elsewhere cannot hold them up. The watchdog goes with the renewals' task, however that ends.
//!
//! Does not own: the lease table (`lease`), what a unit does once its lease is lost (`unit`).

use super::lease::{self, bounded};
use super::process::Groups;
use deadpool_postgres::Pool;
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// How often the leases are renewed: six times a lease.
pub(crate) fn renewal_interval(lease: Duration) -> Duration {
    lease / 6
}

/// How long a lease counts as good after the query that renewed it was sent.
pub(crate) fn good_for(lease: Duration) -> Duration {
    lease - lease / 3
}

/// How long any one database call of the units may take.
pub(crate) fn call_limit(lease: Duration) -> Duration {
    lease / 3
}

/// One unit's lease, as this node holds it.
pub(crate) struct UnitLease {
    pub key: String,
    /// Good until then (see the module's margin).
    until: Mutex<Instant>,
    lost: AtomicBool,
    told: Notify,
    /// The unit holds (or is taking) its process's restart turn: renewals leave it the turn.
    turn: AtomicBool,
}

impl UnitLease {
    fn new(key: &str, until: Instant) -> Self {
        UnitLease {
            key: key.to_string(),
            until: Mutex::new(until),
            lost: AtomicBool::new(false),
            told: Notify::new(),
            turn: AtomicBool::new(false),
        }
    }

    /// Says whether the unit holds its restart turn, or is about to ask for it (set before the
    /// turn is asked for, cleared once it is given back or was not taken).
    pub fn hold_turn(&self, holds: bool) {
        self.turn.store(holds, Ordering::SeqCst);
    }

    fn holds_turn(&self) -> bool {
        self.turn.load(Ordering::SeqCst)
    }

    /// Whether it is lost (taken, or not renewed in time).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Whether it is good for at least `margin` more.
    pub fn good_for(&self, margin: Duration) -> bool {
        !self.is_lost()
            && self
                .until
                .lock()
                .map(|until| Instant::now() + margin < *until)
                .unwrap_or(false)
    }

    /// Resolves once it is lost.
    pub async fn lost(&self) {
        loop {
            let told = self.told.notified();
            if self.is_lost() {
                return;
            }
            told.await;
        }
    }

    fn extend(&self, until: Instant) {
        if let Ok(mut current) = self.until.lock() {
            *current = (*current).max(until);
        }
    }

    fn expired(&self, now: Instant) -> bool {
        self.until.lock().map(|until| now >= *until).unwrap_or(true)
    }
}

/// The leases of the units this node runs.
pub(crate) struct Leases {
    held: Mutex<BTreeMap<String, Arc<UnitLease>>>,
    /// Leases left to run out (a run whose end could not be recorded), since when: neither
    /// renewed nor given up (renewals never give a run's lease up), so the node that takes them
    /// records the run lost; this node does not claim them again until they ran out.
    left: Mutex<BTreeMap<String, Instant>>,
    /// The units a claim still out asked for (how many claims), kept by the renewals until its
    /// answer is in `held`. Locked after `held` when both are.
    claiming: Mutex<BTreeMap<String, usize>>,
}

/// What one renewal asks about.
struct Asked {
    /// The units held here: their leases are extended, and checked.
    held: Vec<String>,
    /// Those, and those a claim still out asked for: every other lease of the node goes.
    keep: Vec<String>,
    /// The units that hold (or are taking) their restart turn: the others give it back.
    turns: Vec<String>,
}

/// A claim out: its units stay in `claiming` until it is dropped.
struct Claiming<'a> {
    leases: &'a Leases,
    units: Vec<String>,
}

impl<'a> Claiming<'a> {
    fn new(leases: &'a Leases, units: &[String]) -> Self {
        if let Ok(mut claiming) = leases.claiming.lock() {
            for unit in units {
                *claiming.entry(unit.clone()).or_default() += 1;
            }
        }
        Claiming {
            leases,
            units: units.to_vec(),
        }
    }
}

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        // Under `held`, so a renewal sees a unit claimed in one of the two.
        let _held = self.leases.held.lock();
        if let Ok(mut claiming) = self.leases.claiming.lock() {
            for unit in &self.units {
                if let Some(count) = claiming.get_mut(unit) {
                    *count -= 1;
                    if *count == 0 {
                        claiming.remove(unit);
                    }
                }
            }
        }
    }
}

/// Aborts its task when dropped (a `JoinHandle` dropped leaves its task running).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Leases {
    pub fn new() -> Self {
        Leases {
            held: Mutex::new(BTreeMap::new()),
            left: Mutex::new(BTreeMap::new()),
            claiming: Mutex::new(BTreeMap::new()),
        }
    }

    #[cfg(test)]
    fn keys(&self) -> Vec<String> {
        self.held
            .lock()
            .map(|held| held.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// What a renewal sent now asks about: `held` and `claiming` read at once.
    fn asked(&self) -> Asked {
        let Ok(held) = self.held.lock() else {
            return Asked {
                held: Vec::new(),
                keep: Vec::new(),
                turns: Vec::new(),
            };
        };
        let keys: Vec<String> = held.keys().cloned().collect();
        let turns = held
            .values()
            .filter(|l| l.holds_turn())
            .map(|l| l.key.clone())
            .collect();
        let mut keep = keys.clone();
        if let Ok(claiming) = self.claiming.lock() {
            keep.extend(claiming.keys().filter(|k| !held.contains_key(*k)).cloned());
        }
        Asked {
            held: keys,
            keep,
            turns,
        }
    }

    fn all(&self) -> Vec<Arc<UnitLease>> {
        self.held
            .lock()
            .map(|held| held.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The unit's run ended: its lease is no longer renewed (the next renewal gives it up).
    pub fn forget(&self, lease: &Arc<UnitLease>) {
        if let Ok(mut held) = self.held.lock() {
            if held.get(&lease.key).is_some_and(|l| Arc::ptr_eq(l, lease)) {
                held.remove(&lease.key);
            }
        }
    }

    /// The run's lease is no longer renewed, nor given up: it runs out (see `left`).
    pub fn leave(&self, lease: &Arc<UnitLease>) {
        self.forget(lease);
        self.leave_keys([lease.key.clone()]);
    }

    /// Leases held by nothing here left to run out (see `left`).
    pub fn leave_keys(&self, keys: impl IntoIterator<Item = String>) {
        let now = Instant::now();
        if let Ok(mut left) = self.left.lock() {
            left.extend(keys.into_iter().map(|key| (key, now)));
        }
    }

    /// The leases left to run out less than `lease` ago (they may not have run out yet): not to
    /// be claimed here again yet. Those left longer ago are forgotten.
    pub fn left_lately(&self, lease: Duration) -> BTreeSet<String> {
        let Ok(mut left) = self.left.lock() else {
            return BTreeSet::new();
        };
        left.retain(|_, since| since.elapsed() < lease);
        left.keys().cloned().collect()
    }

    /// Claims for `node` those of `units` nobody holds, at most `room` (see `lease::claim`);
    /// the leases of those claimed, good from when the claim was sent. Renewals go on
    /// meanwhile, keeping those units' leases until the answer is in. One whose answer is lost
    /// (past the bound) is given up by the next renewal after it.
    pub async fn claim(
        &self,
        pool: &Pool,
        node: &str,
        units: &[String],
        room: usize,
        lease: Duration,
    ) -> Result<Vec<Arc<UnitLease>>, lease::LeaseError> {
        if units.is_empty() || room == 0 {
            return Ok(Vec::new());
        }
        let _claiming = Claiming::new(self, units);
        let sent = Instant::now();
        let claimed = bounded(
            call_limit(lease),
            lease::claim(pool, node, units, room, lease),
        )
        .await?;
        let mut held = self
            .held
            .lock()
            .map_err(|_| lease::LeaseError::Pool("the unit leases are poisoned".into()))?;
        if let Ok(mut left) = self.left.lock() {
            for key in &claimed {
                left.remove(key);
            }
        }
        let claimed = claimed
            .into_iter()
            .map(|key| {
                let unit = Arc::new(UnitLease::new(&key, sent + good_for(lease)));
                held.insert(key, unit.clone());
                unit
            })
            .collect();
        // Before `_claiming` goes (it locks `held` too).
        drop(held);
        Ok(claimed)
    }

    /// Marks `unit` lost and kills its group now, if it runs.
    fn doom(&self, unit: &UnitLease, groups: &Groups) {
        if !unit.lost.swap(true, Ordering::SeqCst) {
            groups.signal(&unit.key, Signal::SIGKILL);
            unit.told.notify_waiters();
        }
    }
}

/// Renews the node's unit leases until `shutdown` says so; the watchdog runs beside it.
pub(crate) async fn keep(
    leases: Arc<Leases>,
    groups: Arc<Groups>,
    pool: Pool,
    node: String,
    lease: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    // Aborted with this task too, not only when it returns.
    let _watchdog = AbortOnDrop(tokio::spawn(watch_over(
        leases.clone(),
        groups.clone(),
        lease,
    )));
    let every = renewal_interval(lease);
    loop {
        let started = Instant::now();
        renew(&leases, &groups, &pool, &node, lease).await;
        let next = started + every;
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
    }
}

async fn renew(leases: &Leases, groups: &Groups, pool: &Pool, node: &str, lease: Duration) {
    let Asked { held, keep, turns } = leases.asked();
    let keys = held;
    let sent = Instant::now();
    let runs = crate::runnables::desired::PREFIX;
    let renewed = lease::renew(pool, node, &keep, &turns, runs, lease);
    match bounded(call_limit(lease), renewed).await {
        Ok(still) => {
            for unit in leases.all() {
                if !keys.contains(&unit.key) {
                    // Claimed after this renewal: it was not asked about.
                    continue;
                }
                if still.contains(&unit.key) {
                    unit.extend(sent + good_for(lease));
                } else if !unit.is_lost() {
                    tracing::warn!(
                        unit = unit.key,
                        node,
                        "the unit's lease was taken: killing it"
                    );
                    leases.doom(&unit, groups);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "renewing the unit leases failed; retrying"),
    }
}

/// Kills every unit whose lease is no longer good, as soon as that happens.
async fn watch_over(leases: Arc<Leases>, groups: Arc<Groups>, lease: Duration) {
    let every = (lease / 24).clamp(Duration::from_millis(20), Duration::from_millis(250));
    loop {
        let now = Instant::now();
        for unit in leases.all() {
            if !unit.is_lost() && unit.expired(now) {
                tracing::error!(
                    unit = unit.key,
                    "no renewal of the unit's lease answered in time: killing it before the lease runs out"
                );
                leases.doom(&unit, &groups);
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_counts_as_good_a_third_less_than_it_lasts() {
        let lease = Duration::from_secs(30);
        assert_eq!(good_for(lease), Duration::from_secs(20));
        assert_eq!(renewal_interval(lease), Duration::from_secs(5));
        assert_eq!(call_limit(lease), Duration::from_secs(10));
        // Renewals fail from the last good one: still several tries before the kill.
        assert!(good_for(lease) >= renewal_interval(lease) * 3);
        let short = Duration::from_secs(1);
        assert!(good_for(short) + call_limit(short) <= short);
    }

    #[tokio::test]
    async fn a_lease_not_renewed_in_time_is_lost_and_its_unit_killed() {
        let leases = Arc::new(Leases::new());
        let groups = Arc::new(Groups::default());
        let unit = Arc::new(UnitLease::new(
            "web.prod.http.0",
            Instant::now() + Duration::from_millis(300),
        ));
        leases
            .held
            .lock()
            .unwrap()
            .insert(unit.key.clone(), unit.clone());
        assert!(unit.good_for(Duration::from_millis(100)));
        assert!(!unit.good_for(Duration::from_millis(400)));
        let watchdog = tokio::spawn(watch_over(
            leases.clone(),
            groups,
            Duration::from_millis(600),
        ));
        let began = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), unit.lost())
            .await
            .expect("lost in time");
        let after = began.elapsed();
        assert!(
            after >= Duration::from_millis(250) && after < Duration::from_millis(1000),
            "{after:?}"
        );
        assert!(!unit.good_for(Duration::ZERO));
        leases.forget(&unit);
        assert!(leases.keys().is_empty());
        watchdog.abort();
    }

    #[test]
    fn a_lease_left_to_run_out_is_not_renewed_nor_claimed_again_until_it_ran_out() {
        let leases = Leases::new();
        let run = Arc::new(UnitLease::new("runnable:x", Instant::now()));
        leases
            .held
            .lock()
            .unwrap()
            .insert(run.key.clone(), run.clone());
        leases.leave(&run);
        leases.leave_keys(["runnable:y".to_string()]);
        let asked = leases.asked();
        assert!(
            asked.held.is_empty() && asked.keep.is_empty(),
            "not renewed"
        );
        let lease = Duration::from_secs(30);
        assert_eq!(
            leases.left_lately(lease).into_iter().collect::<Vec<_>>(),
            vec!["runnable:x", "runnable:y"]
        );
        leases
            .left
            .lock()
            .unwrap()
            .insert("runnable:x".into(), Instant::now() - lease);
        assert_eq!(
            leases.left_lately(lease).into_iter().collect::<Vec<_>>(),
            vec!["runnable:y"],
            "ran out: claimable again"
        );
    }

    #[test]
    fn a_renewal_keeps_the_leases_a_claim_out_asked_for_and_gives_turns_back() {
        let leases = Leases::new();
        let held = Arc::new(UnitLease::new("web.prod.http.0", Instant::now()));
        let other = Arc::new(UnitLease::new("web.prod.http.1", Instant::now()));
        held.hold_turn(true);
        for unit in [&held, &other] {
            leases
                .held
                .lock()
                .unwrap()
                .insert(unit.key.clone(), unit.clone());
        }
        let out = vec!["web.prod.http.2".to_string(), "web.prod.http.0".to_string()];
        let claiming = Claiming::new(&leases, &out);
        let asked = leases.asked();
        assert_eq!(asked.held, vec!["web.prod.http.0", "web.prod.http.1"]);
        assert_eq!(
            asked.keep,
            vec!["web.prod.http.0", "web.prod.http.1", "web.prod.http.2"]
        );
        assert_eq!(asked.turns, vec!["web.prod.http.0"]);
        drop(claiming);
        held.hold_turn(false);
        let asked = leases.asked();
        assert_eq!(asked.keep, asked.held);
        assert!(asked.turns.is_empty());
        assert!(leases.claiming.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_watchdog_goes_with_the_renewals_task_when_it_is_aborted() {
        let leases = Arc::new(Leases::new());
        let config: tokio_postgres::Config = "host=127.0.0.1 port=1 user=nobody connect_timeout=1"
            .parse()
            .unwrap();
        let pool = bosun_eventstore::postgres::connect_pool(&config, 1);
        let (_stop, stopped) = watch::channel(false);
        let renewals = tokio::spawn(keep(
            leases.clone(),
            Arc::new(Groups::default()),
            pool,
            "box:1".into(),
            Duration::from_secs(3),
            stopped,
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(Arc::strong_count(&leases), 3, "renewals and watchdog run");
        renewals.abort();
        let _ = renewals.await;
        tokio::time::timeout(Duration::from_secs(5), async {
            while Arc::strong_count(&leases) > 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the watchdog stopped with the renewals");
    }
}
