//! The controller against a real registry (docker-registry) and a real NATS (nats-server), with
//! a scripted wadm that answers as a real one did ([`fake_wadm`]); one test binary
//! (`cargo test -p etl-controller --test all`).

// Not tests: the servers, the fake wadm, bundles.
mod bundles;
mod fake_wadm;
mod processes;
#[path = "../../../compiler/tests/common/registry.rs"]
mod registry;

mod api;
mod delivery;
mod reconcile;
mod telemetry;
mod v2_hosts;

use std::path::PathBuf;

use etl::oci::sign::SigningKey;
use etl_controller::config::{Flags, Settings};
use etl_controller::reconcile::Controller;
use etl_controller::source::Source;

use crate::bundles::{LATTICE, REPOSITORY};
use crate::fake_wadm::FakeWadm;
use crate::processes::Nats;
use crate::registry::TestRegistry;

/// A registry, a NATS, a fake wadm on dev's lattice, and the project's key pair.
pub struct Env {
    pub registry: TestRegistry,
    pub nats: Nats,
    pub wadm: FakeWadm,
    pub key: SigningKey,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn start() -> Env {
        let registry = TestRegistry::start(None);
        let nats = Nats::start();
        let wadm = FakeWadm::empty(&nats.url(), LATTICE).await;
        let dir = tempfile::tempdir().unwrap();
        let pair = etl::oci::sign::keygen(None).unwrap();
        std::fs::write(dir.path().join("cosign.pub"), &pair.public_pem).unwrap();
        let key = SigningKey::from_pem(&pair.private_pem, None).unwrap();
        Env {
            registry,
            nats,
            wadm,
            key,
            dir,
        }
    }

    pub fn public_key(&self) -> PathBuf {
        self.dir.path().join("cosign.pub")
    }

    /// The flags of dev's controller, polling every 100 ms.
    pub fn flags(&self) -> Flags {
        Flags {
            bundle: Some(format!("{}/{REPOSITORY}:dev", self.registry.host())),
            key: Some(self.public_key()),
            generation: Some("v1".to_owned()),
            nats_url: Some(self.nats.url()),
            poll_interval: Some("100ms".to_owned()),
            ..Flags::default()
        }
    }

    pub fn settings(&self) -> Settings {
        Settings::resolve(self.flags(), &|_| None).unwrap()
    }

    /// A controller, as `etl-controller` makes one.
    pub async fn controller(&self) -> Controller {
        let settings = self.settings();
        let nats = etl_controller::connect(&settings).await.unwrap();
        Controller::new(
            &settings,
            Source::new(&settings),
            etl_controller::lattice(&settings, nats).await.unwrap(),
        )
    }

    /// Pushes `bundle` as dev's, signed with the project's key, and moves the `dev` tag to it.
    pub async fn push(&self, bundle: &etl::oci::bundle::Bundle) -> String {
        bundles::push(
            &self.registry.host(),
            REPOSITORY,
            "dev",
            bundle,
            Some(&self.key),
        )
        .await
    }
}
