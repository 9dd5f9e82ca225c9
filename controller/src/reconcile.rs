//! The loop: check the tag, take a new bundle when it verifies, bring the lattice to the bundle
//! taken, say what runs — at start and every poll.
//!
//! - The tag is checked with a HEAD. A digest neither applied nor refused before is fetched
//!   and verified ([`Source::fetch`]); a refused one is not fetched again (unless it was only
//!   unsigned: its signature may come after the tag).
//! - A bundle for another project, environment or lattice than the controller's is refused;
//!   the first bundle taken settles those the configuration did not (so that what it applied
//!   is never orphaned under another name).
//! - The lattice is brought to the bundle taken on every poll, changed or not, so that drift
//!   is repaired; an unchanged bundle on a lattice already at it makes no write. After a
//!   restart the first look finds the lattice as it was left and changes nothing.
//! - When the registry cannot be asked (or no longer has the tag) the status says `stale`, the
//!   bundle taken keeps running, and the lattice is only looked at, not changed.
//! - While an application is reconciling the next look comes sooner (at most a second).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etl::build::generation::Generation;
use etl::oci::bundle::{Bundle, Facts};
use etl::ops::status::{Applied, ControllerStatus, Refused};
use etl::ops::telemetry::Deployment;
use tokio::sync::watch;

use crate::config::Settings;
use crate::delivery::Delivery;
use crate::lattice::Lattice;
use crate::source::{Expected, Refusal, Source};
use crate::status;

/// How soon the next look comes while something is reconciling.
const SETTLING: Duration = Duration::from_secs(1);

/// The bundle a controller took: what the telemetry and the API need of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    /// Its digest, signer and time.
    pub deployment: Deployment,
    /// Its facts.
    pub facts: Facts,
}

/// A controller: its source, its lattice and what it knows.
pub struct Controller {
    source: Source,
    lattice: Lattice,
    /// The JetStream streams and consumers of at-least-once delivery, when set up.
    delivery: Option<Delivery>,
    generation: Generation,
    poll: Duration,
    expected: Expected,
    /// The bundle taken, and its digest.
    running: Option<(String, Bundle)>,
    /// The last refusal's digest, and whether it may pass later.
    refused: Option<(String, bool)>,
    doc: ControllerStatus,
    status: watch::Sender<ControllerStatus>,
    taken: watch::Sender<Option<Arc<Taken>>>,
}

impl Controller {
    /// A controller of `settings`, fetching from `source` and applying to `lattice`.
    pub fn new(settings: &Settings, source: Source, lattice: Lattice) -> Controller {
        let doc = status::initial(settings);
        let (status, _) = watch::channel(doc.clone());
        let (taken, _) = watch::channel(None);
        Controller {
            source,
            lattice,
            delivery: None,
            generation: settings.generation,
            poll: settings.poll_interval,
            expected: Expected {
                project: settings.project.clone(),
                environment: settings.environment.clone(),
                lattice: match settings.generation {
                    Generation::V1 => settings.lattice.clone(),
                    Generation::V2 => None,
                },
            },
            running: None,
            refused: None,
            doc,
            status,
            taken,
        }
    }

    /// Keeps a bundle's JetStream streams and consumers (its `jetstream/` files) with
    /// `delivery`, before its manifests are applied.
    #[must_use]
    pub fn with_delivery(mut self, delivery: Delivery) -> Controller {
        self.delivery = Some(delivery);
        self
    }

    /// The bundle taken, as it changes.
    pub fn taken(&self) -> watch::Receiver<Option<Arc<Taken>>> {
        self.taken.subscribe()
    }

    /// The status document, as it changes.
    pub fn status(&self) -> watch::Receiver<ControllerStatus> {
        self.status.subscribe()
    }

    /// Runs until `shutdown` completes (between or during looks: every step is idempotent,
    /// so an interrupted one is finished by the next start).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let looping = async {
            loop {
                let wait = self.tick().await;
                tokio::time::sleep(wait).await;
            }
        };
        tokio::select! {
            () = looping => {}
            () = shutdown => {}
        }
    }

    /// One look: the tag, a new bundle if any, the lattice; publishes the status and returns
    /// how long to wait before the next.
    pub async fn tick(&mut self) -> Duration {
        self.check_tag().await;
        if let Some((_, bundle)) = &self.running {
            // The streams and consumers first, so that no unit starts before its consumer is
            // there; while one is not as the bundle wants, the lattice is only looked at.
            let delivery = match &self.delivery {
                Some(delivery) if !self.doc.tag.stale => Some(delivery.apply(bundle).await),
                _ => None,
            };
            let held = delivery.as_ref().is_some_and(|d| !d.failures.is_empty());
            let result = if self.doc.tag.stale || held {
                self.lattice.observe(bundle).await
            } else {
                self.lattice.apply(bundle).await
            };
            self.doc.pipelines = match result {
                Ok(states) => status::pipelines(&bundle.facts, self.generation, &states),
                Err(e) => {
                    tracing::warn!("the lattice: {e}");
                    status::unreachable(&bundle.facts, self.generation, &e.to_string())
                }
            };
            if let Some(delivery) = delivery {
                status::delivery_failed(&mut self.doc.pipelines, &delivery.failures);
            }
        }
        let state = status::overall(&self.doc);
        if state != self.doc.state {
            tracing::info!(from = self.doc.state.as_str(), to = state.as_str(), "state");
        }
        self.doc.state = state;
        self.status.send_replace(self.doc.clone());
        let settling = self
            .doc
            .pipelines
            .iter()
            .any(|p| p.state == etl::ops::status::PipelineState::Reconciling);
        if settling {
            self.poll.min(SETTLING)
        } else {
            self.poll
        }
    }

    /// Checks the tag and takes (or refuses) the bundle it names when it is new.
    async fn check_tag(&mut self) {
        let now = status::now();
        self.doc.tag.checked_at = Some(now.clone());
        let reference = self.source.reference().to_string();
        let digest = match self.source.tag().await {
            Ok(Some(digest)) => digest,
            Ok(None) => {
                self.doc.tag.digest = None;
                self.stale(format!("the registry has no tag `{reference}`"));
                return;
            }
            Err(e) => {
                self.stale(e.to_string());
                return;
            }
        };
        self.doc.tag.digest = Some(digest.clone());
        let applied = self.running.as_ref().is_some_and(|(d, _)| *d == digest);
        let refused = self
            .refused
            .as_ref()
            .is_some_and(|(d, later)| *d == digest && !later);
        if applied || refused {
            self.fresh();
            return;
        }
        let verified = match self.source.fetch(&digest).await {
            Ok(result) => result,
            Err(e) => {
                self.stale(format!("fetching bundle {digest}: {e}"));
                return;
            }
        };
        self.fresh();
        let verified = verified.and_then(|v| {
            self.expected.check(&v.bundle.facts)?;
            Ok(v)
        });
        match verified {
            Ok(v) => {
                let facts = &v.bundle.facts;
                tracing::info!(
                    digest = %v.digest,
                    revision = facts.revision.as_deref().unwrap_or("?"),
                    signer = %v.signer,
                    "taking bundle {reference}"
                );
                self.expected.project = Some(facts.project.clone());
                self.expected.environment = Some(facts.environment.clone());
                self.doc.project = Some(facts.project.clone());
                self.doc.environment = Some(facts.environment.clone());
                if self.generation == Generation::V1 {
                    self.expected.lattice = Some(facts.lattice.clone());
                    self.doc.lattice = Some(facts.lattice.clone());
                }
                self.taken.send_replace(Some(Arc::new(Taken {
                    deployment: Deployment {
                        digest: v.digest.clone(),
                        revision: facts.revision.clone(),
                        source: facts.source.clone(),
                        signer: v.signer.clone(),
                        applied_at: now.clone(),
                    },
                    facts: facts.clone(),
                })));
                self.doc.applied = Some(Applied {
                    digest: v.digest.clone(),
                    revision: facts.revision.clone(),
                    signer: v.signer,
                    applied_at: now,
                });
                self.refused = None;
                self.running = Some((v.digest, v.bundle));
            }
            Err(refusal) => self.refuse(&digest, &refusal, now),
        }
    }

    fn refuse(&mut self, digest: &str, refusal: &Refusal, now: String) {
        let reason = refusal.to_string();
        let known = self
            .doc
            .refused
            .as_ref()
            .is_some_and(|r| r.digest == digest && r.reason == reason);
        if !known {
            tracing::warn!(
                %digest,
                "refusing the bundle the tag names ({refusal}); {}",
                match &self.running {
                    Some((d, _)) => format!("{d} keeps running"),
                    None => "nothing applied".to_owned(),
                }
            );
            self.doc.refused = Some(Refused {
                digest: digest.to_owned(),
                reason,
                at: now,
            });
        }
        self.refused = Some((digest.to_owned(), refusal.may_pass_later()));
    }

    fn stale(&mut self, error: String) {
        if self.doc.tag.error.as_ref() != Some(&error) {
            tracing::warn!("the registry: {error}; what runs keeps running");
        }
        self.doc.tag.stale = true;
        self.doc.tag.error = Some(error);
    }

    fn fresh(&mut self) {
        if self.doc.tag.stale {
            tracing::info!("the registry answers again");
        }
        self.doc.tag.stale = false;
        self.doc.tag.error = None;
    }
}
