//! `etl top` against a scripted controller (`controller.rs`): one frame with `--once`, frames
//! one after another off a terminal with rates computed between readings, Ctrl-C, the token.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::controller::{document_with_units, etl, serve, text};

#[test]
fn one_frame_with_once() {
    let (url, log) = serve(Some("t0ken"), |r| {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/status"));
        (
            200,
            serde_json::to_string(&document_with_units(1000, true)).unwrap(),
        )
    });
    let out = etl(
        &["top", "--env", "dev", "--once"],
        &[
            ("ETL_CONTROLLER_URL_DEV", &url),
            ("ETL_CONTROLLER_TOKEN", "t0ken"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(log.lock().unwrap().len(), 1);
    insta::assert_snapshot!("top_once", text(&out.stdout));

    // The environment is checked as by `etl status`.
    let out = etl(
        &["top", "--env", "staging", "--controller", &url, "--once"],
        &[("ETL_CONTROLLER_TOKEN", "t0ken")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("applies environment `dev`, not `staging`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_refused_token_is_clear() {
    let (url, _) = serve(Some("t0ken"), |_| {
        (
            200,
            serde_json::to_string(&document_with_units(1000, true)).unwrap(),
        )
    });
    let out = etl(&["top", "--controller", &url, "--once"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).replace(&url, "http://CONTROLLER"),
        "error: the controller at http://CONTROLLER/status refused the request (401): it wants a \
         bearer token (--token-file FILE or ETL_CONTROLLER_TOKEN)\n"
    );
    let out = etl(
        &["top", "--controller", &url, "--once"],
        &[("ETL_CONTROLLER_TOKEN", "wrong")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("the token given is not its token"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn frames_follow_one_another_off_a_terminal_until_ctrl_c() {
    // No rates from the controller; 100 more records at each reading.
    let readings = AtomicU64::new(0);
    let (url, _) = serve(None, move |_| {
        let n = 1000 + 100 * readings.fetch_add(1, Ordering::SeqCst);
        (
            200,
            serde_json::to_string(&document_with_units(n, false)).unwrap(),
        )
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["top", "--controller", &url, "--interval", "100ms"])
        .env_remove("ETL_CONTROLLER_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    // Three headings: the first two frames are whole.
    let mut output = Vec::new();
    let mut headings = 0;
    while headings < 3 {
        let line = received
            .recv_timeout(Duration::from_secs(30))
            .expect("etl top prints frames");
        if line.starts_with("environment dev") {
            headings += 1;
        }
        output.push(line);
    }
    // SAFETY: kill(2) on our own child's pid, which has not been waited for.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");

    output.pop();
    let output = output.join("\n");
    let frames: Vec<&str> = output.split("\n\nenvironment dev").collect();
    assert_eq!(frames.len(), 2, "{output}");
    // No clearing off a terminal; the first frame has no rates to show, the second computed
    // ones.
    assert!(!output.contains('\x1b'), "{output}");
    assert!(frames[0].starts_with("environment dev (project iot-sensors): ready, every 100ms"));
    assert!(!frames[0].contains('*'), "{}", frames[0]);
    assert!(
        frames[1].contains("* rates computed from the counts between two readings"),
        "{}",
        frames[1]
    );
}
