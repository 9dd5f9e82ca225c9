//! `etl dlq list|show|replay` against a scripted controller (`controller.rs`) keeping three dead
//! letters: tables and text for people, JSON as served, the query and replay requests sent, the
//! actor recorded, exit statuses, and the controller's errors.

use etl::ops::telemetry::{DeadLetter, Replay, ReplayRequest, replay_subject};

use crate::controller::{BUNDLE, DIGEST, Log, dead_letter, document, etl, serve, text};

fn letters() -> Vec<DeadLetter> {
    vec![
        dead_letter(
            "1043-0",
            "not JSON: expected value at line 1 column 1, and then a long explanation of what \
             the step wanted instead, which no terminal line has room for",
            "2026-12-07T14:59:58Z",
        ),
        dead_letter(
            "1042-3",
            "unit mismatch: temperature in kelvin",
            "2026-12-07T14:58:10Z",
        ),
        dead_letter("1042-0", "missing field `device`", "2026-12-07T14:58:10Z"),
    ]
}

/// `$value` as JSON.
macro_rules! json {
    ($value:expr) => {
        serde_json::to_string($value).unwrap()
    };
}

/// The answer of a controller keeping [`letters`], applying dev.
fn answer(method: &str, path: &str, body: &str) -> (u16, String) {
    let kept = letters();
    match (method, path) {
        ("GET", "/status") => (200, json!(&document(BUNDLE, DIGEST, true))),
        ("GET", p) if p == "/api/v1/dead-letters" || p.starts_with("/api/v1/dead-letters?") => {
            (200, json!(&kept))
        }
        ("POST", "/api/v1/dead-letters/replay") => {
            let request: ReplayRequest = serde_json::from_str(body).unwrap();
            let subject = replay_subject("iot-sensors", "sensor-ingest", "parse");
            let ids: Vec<String> = match (&request.pipeline, &request.step) {
                (Some(p), Some(s)) if p == "sensor-ingest" && s == "parse" => {
                    kept.iter().map(|d| d.id.clone()).collect()
                }
                (Some(p), _) => return (400, format!(r#"{{"error":"no pipeline `{p}`"}}"#)),
                _ => request.ids.clone(),
            };
            let (replayed, missing): (Vec<String>, Vec<String>) = ids
                .into_iter()
                .partition(|id| kept.iter().any(|d| d.id == *id));
            let replay = Replay {
                actor: request.actor,
                credential: "3f2a9c1b0d4e".to_owned(),
                remote: "127.0.0.1:40000".to_owned(),
                at: "2026-12-07T15:00:00Z".to_owned(),
                replayed: replayed
                    .into_iter()
                    .map(|id| (id, subject.clone()))
                    .collect(),
                missing,
            };
            (200, json!(&replay))
        }
        ("GET", p) if p.starts_with("/api/v1/dead-letters/") => {
            let id = &p["/api/v1/dead-letters/".len()..];
            match kept.iter().find(|d| d.id == id) {
                Some(d) => (200, json!(d)),
                None => (
                    404,
                    format!(r#"{{"error":"no dead letter `{id}` is kept"}}"#),
                ),
            }
        }
        _ => (404, r#"{"error":"not found"}"#.to_owned()),
    }
}

fn controller(token: Option<&'static str>) -> (String, Log) {
    serve(token, |r| answer(&r.method, &r.path, &r.body))
}

#[test]
fn a_list_as_a_table_and_as_served() {
    let (url, log) = controller(None);
    let out = etl(
        &["dlq", "list", "--controller", &url],
        &[("COLUMNS", "110")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.lines().all(|l| l.chars().count() <= 110), "{table}");
    insta::assert_snapshot!("dlq_list", table);
    assert_eq!(log.lock().unwrap()[0].path, "/api/v1/dead-letters");

    let out = etl(
        &[
            "dlq",
            "list",
            "--controller",
            &url,
            "--pipeline",
            "sensor-ingest",
            "--step",
            "parse",
            "--limit",
            "3",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{}\n", serde_json::to_string(&letters()).unwrap())
    );
    assert_eq!(
        log.lock().unwrap()[1].path,
        "/api/v1/dead-letters?pipeline=sensor-ingest&step=parse&limit=3"
    );
}

#[test]
fn one_shown_as_text_and_as_served() {
    let (url, _) = controller(None);
    let out = etl(&["dlq", "show", "1042-3", "--controller", &url], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("dlq_show", text(&out.stdout));
    let out = etl(
        &[
            "dlq",
            "show",
            "1042-3",
            "--controller",
            &url,
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(
        text(&out.stdout),
        format!("{}\n", serde_json::to_string(&letters()[1]).unwrap())
    );
}

#[test]
fn a_wrong_id_is_named_with_the_controller_s_words() {
    let (url, log) = controller(None);
    // Not kept: the controller's 404 and its text; exit 1.
    let out = etl(&["dlq", "show", "999-1", "--controller", &url], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!(
        "dlq_show_missing",
        text(&out.stderr).replace(&url, "http://CONTROLLER")
    );
    // Not an id: refused before any request; exit 2.
    let requests = log.lock().unwrap().len();
    let out = etl(&["dlq", "show", "../status", "--controller", &url], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: `../status` is not a dead letter id: expected `<seq>-<index>`, two numbers as \
         `etl dlq list` shows them (e.g. `1042-3`)\n"
    );
    assert_eq!(log.lock().unwrap().len(), requests);
}

#[test]
fn replays_say_what_went_where_and_what_was_missing() {
    let (url, log) = controller(None);
    let out = etl(
        &[
            "dlq",
            "replay",
            "1042-3",
            "1043-0",
            "999-1",
            "1042-3",
            "--controller",
            &url,
            "--actor",
            "alice@laptop",
        ],
        &[],
    );
    // An id missing: the others replayed, exit 1.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    insta::assert_snapshot!("dlq_replay", text(&out.stdout));
    assert_eq!(
        text(&out.stderr),
        "not replayed: the controller keeps no dead letter `999-1`\n"
    );
    let sent: ReplayRequest =
        serde_json::from_str(&log.lock().unwrap().last().unwrap().body).unwrap();
    assert_eq!(
        sent,
        ReplayRequest {
            ids: vec!["1042-3".into(), "1043-0".into(), "999-1".into()],
            pipeline: None,
            step: None,
            actor: "alice@laptop".to_owned(),
        }
    );

    // Every one of a step, as $USER@host by default; all there, exit 0.
    let out = etl(
        &[
            "dlq",
            "replay",
            "--all",
            "--pipeline",
            "sensor-ingest",
            "--step",
            "parse",
            "--controller",
            &url,
        ],
        &[("USER", "tester")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(
            "replayed 3 dead letters\n  to etl.iot-sensors.sensor-ingest.replay.parse: 1043-0, \
             1042-3, 1042-0\n"
        ),
        "{}",
        text(&out.stdout)
    );
    let sent: ReplayRequest =
        serde_json::from_str(&log.lock().unwrap().last().unwrap().body).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        sent,
        ReplayRequest {
            ids: vec![],
            pipeline: Some("sensor-ingest".into()),
            step: Some("parse".into()),
            actor: format!("tester@{}", host.trim()),
        }
    );

    // The controller's error, in its words.
    let out = etl(
        &[
            "dlq",
            "replay",
            "--all",
            "--pipeline",
            "nope",
            "--step",
            "parse",
            "--controller",
            &url,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).replace(&url, "http://CONTROLLER"),
        "error: the controller at http://CONTROLLER/api/v1/dead-letters/replay answered 400: no \
         pipeline `nope`\n"
    );
}

#[test]
fn all_needs_a_pipeline_and_a_step() {
    let (url, log) = controller(None);
    for args in [
        &["--all"][..],
        &["--all", "--pipeline", "sensor-ingest"],
        &["--all", "--step", "parse"],
    ] {
        let mut argv = vec!["dlq", "replay", "--controller", &url];
        argv.extend_from_slice(args);
        let out = etl(&argv, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("required arguments were not provided"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = etl(&["dlq", "replay", "--controller", &url], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn a_replay_goes_only_to_the_environment_named() {
    let (url, log) = controller(None);
    let out = etl(
        &["dlq", "replay", "1042-3", "--env", "staging"],
        &[("ETL_CONTROLLER_URL_STAGING", &url)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("applies environment `dev`, not `staging`"),
        "{}",
        text(&out.stderr)
    );
    let log = log.lock().unwrap();
    assert!(log.iter().all(|r| r.method == "GET"), "{log:?}");
}

#[test]
fn a_token_is_needed_and_a_refusal_is_clear() {
    let (url, _) = controller(Some("t0ken"));
    let out = etl(&["dlq", "list", "--controller", &url], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).replace(&url, "http://CONTROLLER"),
        "error: the controller at http://CONTROLLER/api/v1/dead-letters refused the request \
         (401): it wants a bearer token (--token-file FILE or ETL_CONTROLLER_TOKEN)\n"
    );
    let out = etl(
        &["dlq", "list", "--controller", &url],
        &[("ETL_CONTROLLER_TOKEN", "t0ken"), ("COLUMNS", "200")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ID "));
}
