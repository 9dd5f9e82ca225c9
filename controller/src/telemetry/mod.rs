//! What the controller does with what steps report (`docs/reporting.md`): [`reports`] reads
//! them durably into the [`store`], which [`persist`] saves; [`metrics`] names what
//! [`prometheus`] and [`otlp`] export. [`Telemetry`] holds it all for the HTTP API, and
//! [`Telemetry::run`] sets it up on the data plane's NATS once the first bundle says which
//! project and environment it is, then keeps it going until the controller stops.

pub mod metrics;
pub mod otlp;
pub mod persist;
pub mod prometheus;
pub mod reports;
pub mod store;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::{self, stream};
use etl::ops::telemetry::Deployment;
use tokio::sync::watch;

use self::persist::Persisted;
use self::store::{Graph, Snapshot, Store};
use crate::audit::Audit;
use crate::config;
use crate::deadletters::{self, DeadLetters};
use crate::jetstream::{Ensured, StreamSpec, ensure_stream};
use crate::reconcile::Taken;

/// How often the counts are saved (when they changed).
pub const PERSIST_INTERVAL: Duration = Duration::from_secs(5);
/// How long to wait before trying the data plane's NATS again.
const SETUP_AGAIN: Duration = Duration::from_secs(5);

/// The data plane as the API uses it, once set up.
pub struct Plane {
    /// Its NATS.
    pub nats: async_nats::Client,
    /// The project.
    pub project: String,
    /// The environment.
    pub environment: String,
    /// The dead-letter stream.
    pub dead_letters: stream::Stream,
    /// The replay audit.
    pub audit: Audit,
}

/// The telemetry of one controller: counts, bundles applied, dead letters, spans to send.
pub struct Telemetry {
    settings: config::Telemetry,
    taken: watch::Receiver<Option<Arc<Taken>>>,
    store: Mutex<Option<Store>>,
    history: Mutex<Vec<Deployment>>,
    plane: OnceLock<Plane>,
    /// The dead letters kept, by step.
    pub dead_letters: DeadLetters,
    /// Reports waiting to be sent as spans.
    pub spans: otlp::Spans,
}

/// `mutex`, locked, even when a thread panicked holding it: what it guards is counts and
/// indexes that stay usable, and a panic must not turn into every later request failing.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An interval ticking every `period`, first `period` from now; ticks missed (the runtime was
/// busy, the machine slept) are skipped, not made up in a burst.
pub fn every(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    interval
}

/// The time since the Unix epoch.
pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Completes when `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Waits `pause`; whether the controller is stopping instead.
pub async fn pause(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => *stop.borrow(),
        () = stopped(stop) => true,
    }
}

impl Telemetry {
    /// The telemetry of `settings`, following the bundle `taken`.
    pub fn new(
        settings: config::Telemetry,
        taken: watch::Receiver<Option<Arc<Taken>>>,
    ) -> Arc<Telemetry> {
        Arc::new(Telemetry {
            spans: otlp::Spans::new(settings.otlp.is_some()),
            dead_letters: DeadLetters::new(settings.dead_letters_kept),
            settings,
            taken,
            store: Mutex::new(None),
            history: Mutex::new(Vec::new()),
            plane: OnceLock::new(),
        })
    }

    /// `f` of the store, once the counts are loaded.
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> Option<R> {
        lock(&self.store).as_mut().map(f)
    }

    /// The bundle taken, if any.
    pub fn taken(&self) -> Option<Arc<Taken>> {
        self.taken.borrow().clone()
    }

    /// The bundles applied, newest first (the running one first).
    pub fn history(&self) -> Vec<Deployment> {
        lock(&self.history).clone()
    }

    /// The data plane, once set up.
    pub fn plane(&self) -> Option<&Plane> {
        self.plane.get()
    }

    /// The sequence to read the report stream after: the snapshot's, unless the stream is
    /// another than the one the snapshot's sequence is of (deleted and made again: its creation
    /// time differs, or it ends before that sequence): then from its start.
    pub(crate) async fn resume_from(&self, stream: &mut stream::Stream) -> u64 {
        let seq = self.with_store(|s| s.seq()).unwrap_or_default();
        let info = match stream.info().await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("the report stream's state: {e}");
                return seq;
            }
        };
        let created = crate::jetstream::created(info);
        let new = self
            .with_store(|s| s.stream_is_new(&created))
            .unwrap_or_default();
        if new || info.state.last_sequence < seq {
            tracing::warn!(
                stream = %info.config.name,
                %created,
                last = info.state.last_sequence,
                counted = seq,
                "the report stream is not the one counted (made anew): counting it from its \
                 start"
            );
            self.with_store(|s| s.rewind());
            return 0;
        }
        seq
    }

    /// Sets the telemetry up on `nats` (the data plane's) once a bundle is taken, and keeps it
    /// going until `stop`: reports counted, rates sampled, counts saved, dead letters indexed,
    /// OTLP sent. The counts are saved once more on the way out.
    pub async fn run(self: Arc<Self>, nats: async_nats::Client, mut stop: watch::Receiver<bool>) {
        let mut taken = self.taken.clone();
        let first = tokio::select! {
            first = taken.wait_for(Option::is_some) => match first {
                Ok(first) => first.clone().expect("waited for"),
                Err(_) => return,
            },
            () = stopped(&mut stop) => return,
        };
        let project = first.facts.project.clone();
        let environment = first.facts.environment.clone();
        let js = jetstream::new(nats.clone());
        let report_spec = reports::stream_spec(&project, self.settings.report_retention);
        let dead_letter_spec = deadletters::stream_spec(&project, self.settings.dead_letters_kept);
        let mut said = String::new();
        let (persisted, reports, dead_letters, audit) = loop {
            match self
                .setup(&js, &report_spec, &dead_letter_spec, &project, &environment)
                .await
            {
                Ok(set) => break set,
                Err(e) => {
                    let e = etl::util::io::chain(&e);
                    if e != said {
                        tracing::warn!(
                            "no reports, metrics or dead letters yet: the data plane's NATS: \
                             {e}; trying again every {}",
                            humantime::format_duration(SETUP_AGAIN)
                        );
                        said = e;
                    }
                    if pause(&mut stop, SETUP_AGAIN).await {
                        return;
                    }
                }
            }
        };
        let _ = self.plane.set(Plane {
            nats,
            project: project.clone(),
            environment: environment.clone(),
            dead_letters: dead_letters.clone(),
            audit,
        });
        let mut tasks = vec![
            tokio::spawn(reports::consume(
                self.clone(),
                reports::Source {
                    js: js.clone(),
                    spec: report_spec,
                    stream: reports,
                },
                project.clone(),
                environment.clone(),
                stop.clone(),
            )),
            tokio::spawn(deadletters::index(
                self.clone(),
                js.clone(),
                dead_letter_spec,
                dead_letters,
                project.clone(),
                stop.clone(),
            )),
        ];
        if let Some(otlp) = self.settings.otlp.clone() {
            tasks.push(tokio::spawn(otlp::export(self.clone(), otlp, stop.clone())));
        }
        let mut saved = self.with_store(|s| s.snapshot().clone());
        // The first sample was taken at setup.
        let mut sampling = every(store::SAMPLE_INTERVAL);
        let mut persisting = every(PERSIST_INTERVAL);
        loop {
            tokio::select! {
                _ = sampling.tick() => {
                    self.with_store(|s| s.sample(now().as_secs(), Instant::now()));
                }
                _ = persisting.tick() => self.save(&persisted, &mut saved).await,
                changed = taken.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let current = taken.borrow_and_update().clone();
                    if let Some(current) = current {
                        self.take_bundle(&persisted, &current).await;
                    }
                }
                () = stopped(&mut stop) => break,
            }
        }
        for task in tasks {
            let _ = task.await;
        }
        self.save(&persisted, &mut saved).await;
    }

    /// Streams, buckets and the counts saved: what must be there before counting starts.
    async fn setup(
        &self,
        js: &jetstream::Context,
        report_spec: &StreamSpec,
        dead_letter_spec: &StreamSpec,
        project: &str,
        environment: &str,
    ) -> Result<(Persisted, stream::Stream, stream::Stream, Audit), SetupError> {
        let (reports, ensured) = ensure_stream(js, report_spec).await?;
        log_ensured(&report_spec.name, ensured);
        let (dead_letters, ensured) = ensure_stream(js, dead_letter_spec).await?;
        log_ensured(&dead_letter_spec.name, ensured);
        let persisted = Persisted::open(js, project, environment).await?;
        let audit = Audit::open(js, project, environment).await?;
        // A snapshot that cannot be read is not taken for none: counting anew would count the
        // stream's reports twice.
        let snapshot = persisted.snapshot().await?;
        let mut history = persisted.history().await?;
        let snapshot = snapshot.unwrap_or_else(|| Snapshot {
            since: now().as_nanos().try_into().unwrap_or(u64::MAX),
            ..Snapshot::default()
        });
        let current = self.taken().expect("setup follows the first bundle");
        let mut store = Store::new(Graph::of(&current.facts), snapshot);
        tracing::info!(
            from = store.seq() + 1,
            counted = store.health().counted,
            "report counts loaded"
        );
        store.sample(now().as_secs(), Instant::now());
        *lock(&self.store) = Some(store);
        if persist::record(&mut history, &current.deployment) {
            persisted.save_history(&history).await?;
        }
        *lock(&self.history) = history;
        Ok((persisted, reports, dead_letters, audit))
    }

    /// Counts a new bundle's units from now on and adds it to the history.
    async fn take_bundle(&self, persisted: &Persisted, taken: &Taken) {
        self.with_store(|s| s.set_graph(Graph::of(&taken.facts)));
        let history = {
            let mut history = lock(&self.history);
            persist::record(&mut history, &taken.deployment).then(|| history.clone())
        };
        if let Some(history) = history
            && let Err(e) = persisted.save_history(&history).await
        {
            tracing::warn!("saving the bundle history: {e}");
        }
    }

    /// Saves the counts when they changed since `saved`.
    async fn save(&self, persisted: &Persisted, saved: &mut Option<Snapshot>) {
        let Some(now) = self.with_store(|s| s.snapshot().clone()) else {
            return;
        };
        if saved.as_ref() == Some(&now) {
            return;
        }
        match persisted.save(&now).await {
            Ok(()) => *saved = Some(now),
            Err(e) => tracing::warn!("saving the report counts: {e}"),
        }
    }
}

/// Logs what [`ensure_stream`] did to the stream `name`.
pub fn log_ensured(name: &str, ensured: Ensured) {
    match ensured {
        Ensured::Created => tracing::info!(stream = name, "JetStream stream created"),
        Ensured::Updated => tracing::info!(stream = name, "JetStream stream updated"),
        Ensured::Unchanged => tracing::debug!(stream = name, "JetStream stream as configured"),
    }
}

/// Why the data plane cannot be set up (yet).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A stream or bucket.
    #[error(transparent)]
    JetStream(#[from] crate::jetstream::Error),
    /// The counts or the history.
    #[error(transparent)]
    Persist(#[from] persist::PersistError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_holding_a_lock_does_not_stop_the_counting() {
        let store = Arc::new(Mutex::new(7));
        let held = store.clone();
        let panicked = std::thread::spawn(move || {
            let _guard = held.lock().unwrap();
            panic!("a bug while counting");
        })
        .join();
        assert!(panicked.is_err() && store.is_poisoned());
        *lock(&store) += 1;
        assert_eq!(*lock(&store), 8);
    }
}
