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
//! Claims and renewals take turns (`turn`), so a renewal never misses a lease claimed while it
//! ran; a renewal gives up any lease of this node no unit here runs (a claim whose answer was
//! lost, a unit whose run ended).
//!
//! Does not own: the lease table (`lease`), what a unit does once its lease is lost (`unit`).

use super::lease::{self, bounded};
use super::process::Groups;
use deadpool_postgres::Pool;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
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
}

impl UnitLease {
    fn new(key: &str, until: Instant) -> Self {
        UnitLease {
            key: key.to_string(),
            until: Mutex::new(until),
            lost: AtomicBool::new(false),
            told: Notify::new(),
        }
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
    /// Claims and renewals, one at a time.
    turn: tokio::sync::Mutex<()>,
}

impl Leases {
    pub fn new() -> Self {
        Leases {
            held: Mutex::new(BTreeMap::new()),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    fn keys(&self) -> Vec<String> {
        self.held
            .lock()
            .map(|held| held.keys().cloned().collect())
            .unwrap_or_default()
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

    /// Claims for `node` those of `units` nobody holds, at most `room` (see `lease::claim`);
    /// the leases of those claimed, good from when the claim was sent.
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
        let _turn = self.turn.lock().await;
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
        Ok(claimed
            .into_iter()
            .map(|key| {
                let unit = Arc::new(UnitLease::new(&key, sent + good_for(lease)));
                held.insert(key, unit.clone());
                unit
            })
            .collect())
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
    let watchdog = tokio::spawn(watch_over(leases.clone(), groups.clone(), lease));
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
    watchdog.abort();
}

async fn renew(leases: &Leases, groups: &Groups, pool: &Pool, node: &str, lease: Duration) {
    let _turn = leases.turn.lock().await;
    let keys = leases.keys();
    let sent = Instant::now();
    match bounded(call_limit(lease), lease::renew(pool, node, &keys, lease)).await {
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
}
