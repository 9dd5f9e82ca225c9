//! Helpers both bench binaries use (`mod support;`).

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// CPUs, CPU model and load average, so figures can be read against the machine they came from.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim())
        })
        .unwrap_or("unknown CPU");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!("machine: {cpus} CPUs, {model}, load average {load}")
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median of some timings (sorts them).
pub fn median(xs: &mut [Duration]) -> Duration {
    xs.sort();
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2
    }
}

/// Runs the `etl` binary with `args` (no stdin) and times it, process start to exit; fails the
/// bench, with etl's stderr, unless it succeeds.
#[allow(dead_code)] // the validate bench measures its CLI runs from a helper process instead
pub fn time_etl<I, S>(args: I) -> (Duration, Output)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(env!("CARGO_BIN_EXE_etl"));
    command.args(args).stdin(Stdio::null());
    let t = Instant::now();
    let output = command.output().expect("spawn etl");
    let wall = t.elapsed();
    assert!(
        output.status.success(),
        "`etl` {:?}: {}\n{}",
        command.get_args().collect::<Vec<_>>(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (wall, output)
}
