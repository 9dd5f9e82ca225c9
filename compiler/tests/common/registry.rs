//! A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on a free
//! loopback port with its own config and storage directory (never the packaged config, which
//! enables htpasswd on :5000). Shared by the CLI's and the controller's tests (`#[path]`).

// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `docker-registry serve` on 127.0.0.1, killed (by pid) and waited for on drop; it can be
/// killed and started again on the same port and storage.
pub struct TestRegistry {
    pub child: Arc<Mutex<Child>>,
    pub port: u16,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts one; with `user` = (name, password), behind htpasswd basic auth.
    pub fn start(user: Option<(&str, &str)>) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((name, password)) = user {
            let hash = bcrypt::hash(password, 4).unwrap();
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{name}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: etl-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let registry = TestRegistry {
            child: Arc::new(Mutex::new(serve(&config_path))),
            port,
            config: config_path,
            _dir: dir,
        };
        registry.wait_ready();
        registry
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's storage root (filesystem driver): blobs are under
    /// `docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data`, served as they are on disk.
    pub fn storage(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    /// The file holding blob `digest` (the filesystem driver serves it as it is on disk).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Kills the process (if it still runs): an outage, until [`Self::resume`].
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the process (if it still runs) and starts another on the same port and storage,
    /// and waits until it answers.
    pub fn resume(&self) {
        self.stop();
        *self.child.lock().unwrap() = serve(&self.config);
        self.wait_ready();
    }

    /// Waits until `GET /v2/` answers (200, or 401 behind auth).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not answer on port {}", self.port);
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(config: &Path) -> Child {
    Command::new("docker-registry")
        .arg("serve")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry runs (scripts/setup.sh installs it)")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sha256 of the manifest `repository:tag` as the registry at `port` serves it, read
/// without etl (HTTP/1.0, no client library).
pub fn served_digest(port: u16, repository: &str, tag: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /v2/{repository}/manifests/{tag} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
         Accept: application/vnd.oci.image.manifest.v1+json\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"));
    etl::util::digest::sha256(&answer[split + 4..])
}
