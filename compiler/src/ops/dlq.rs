//! `etl dlq`: the dead letters an environment's controller keeps (`docs/reporting.md`) — records
//! a step rejected as `invalid` — listed, shown one by one, and replayed into their step.
//!
//! The controller's API: `GET /api/v1/dead-letters?pipeline=&step=&limit=` (newest first),
//! `GET /api/v1/dead-letters/<id>`, and `POST /api/v1/dead-letters/replay` with a
//! [`ReplayRequest`], answered by the [`Replay`] it records. Payloads come truncated and
//! redacted by the controller; nothing here sees more. Asked through the client of
//! [`crate::ops::status`], with its endpoint, token and errors.

use serde::de::DeserializeOwned;

use crate::oci::registry;
use crate::ops::status::{Client, Endpoint, StatusError};
use crate::ops::telemetry::{DeadLetter, Replay, ReplayRequest};

/// The API's path of the dead letters.
const PATH: &str = "/api/v1/dead-letters";

/// The longest reason a table shows when the terminal's width is unknown.
const REASON_CHARS: usize = 160;

/// Which dead letters to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this pipeline's.
    pub pipeline: Option<String>,
    /// Only this step's.
    pub step: Option<String>,
    /// At most this many (the newest); else the controller's default.
    pub limit: Option<u32>,
}

/// A document as read: the exact bytes served (what `--format json` prints) and their meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct Served<T> {
    /// The body, as served.
    pub body: Vec<u8>,
    /// The document.
    pub document: T,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These, by id.
    Ids(Vec<String>),
    /// Every one kept of one step.
    All {
        /// The pipeline.
        pipeline: String,
        /// Its step.
        step: String,
    },
}

/// Why dead letters cannot be listed, shown or replayed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// The controller cannot be asked, or answered with an error.
    #[error(transparent)]
    Controller(#[from] StatusError),
    /// Not an id the controller gives.
    #[error(
        "`{0}` is not a dead letter id: expected `<seq>-<index>`, two numbers as `etl dlq list` \
         shows them (e.g. `1042-3`)"
    )]
    BadId(String),
    /// The controller keeps no dead letter by that id.
    #[error(
        "dead letter `{id}`: the controller at {url} answered 404: {error} (`etl dlq list` shows \
         the ones it keeps)"
    )]
    NotFound {
        /// The controller's base URL.
        url: String,
        /// The id asked.
        id: String,
        /// The controller's `error` text.
        error: String,
    },
    /// The answer is not the document asked for.
    #[error("{url} did not answer with {what}: {detail}")]
    NotADocument {
        /// The URL asked.
        url: String,
        /// What was asked for.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A replay names no dead letter.
    #[error("nothing to replay: give dead letter ids, or --pipeline, --step and --all")]
    NothingSelected,
    /// A replay without anyone to record.
    #[error("a replay is recorded with who asked: the actor cannot be empty")]
    NoActor,
}

impl From<registry::Error> for DlqError {
    fn from(e: registry::Error) -> Self {
        DlqError::Controller(e.into())
    }
}

impl DlqError {
    /// Whether the controller answered, and it was that the dead letter asked for is not kept
    /// (rather than that it could not be asked).
    pub fn not_found(&self) -> bool {
        matches!(self, DlqError::NotFound { .. })
    }
}

/// Checks that `id` is `<seq>-<index>`.
pub fn check_id(id: &str) -> Result<(), DlqError> {
    let number = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    match id.split_once('-') {
        Some((seq, index)) if number(seq) && number(index) => Ok(()),
        _ => Err(DlqError::BadId(id.to_owned())),
    }
}

/// A client of the controller at `endpoint`, which with `environment` must apply that one (a
/// `GET /status` first).
async fn connect(endpoint: &Endpoint, environment: Option<&str>) -> Result<Client, DlqError> {
    let client = Client::new(endpoint)?;
    if environment.is_some() {
        client.get_for(environment).await?;
    }
    Ok(client)
}

/// Sends a request and reads a `what` from a 200 answer; `not_found` makes a 404 the error
/// it returns.
async fn ask<T: DeserializeOwned>(
    client: &Client,
    method: reqwest::Method,
    url: String,
    json: Option<Vec<u8>>,
    what: &'static str,
    not_found: impl FnOnce(String) -> DlqError,
) -> Result<Served<T>, DlqError> {
    let answer = client.send(method, url, json).await?;
    match answer.code {
        200 => {}
        404 => return Err(not_found(answer.error_text())),
        _ => return Err(answer.into_error().into()),
    }
    let document = serde_json::from_slice(&answer.body).map_err(|e| DlqError::NotADocument {
        url: answer.url.clone(),
        what,
        detail: e.to_string(),
    })?;
    Ok(Served {
        body: answer.body,
        document,
    })
}

/// For [`ask`] where a 404 means nothing in particular: the controller's plain HTTP error for
/// `url`.
fn not_found_as_http(url: String) -> impl FnOnce(String) -> DlqError {
    move |error| {
        StatusError::Http {
            url,
            code: 404,
            body: error,
        }
        .into()
    }
}

/// The dead letters the controller keeps that `query` selects, newest first.
pub fn list(
    endpoint: &Endpoint,
    environment: Option<&str>,
    query: &ListQuery,
) -> Result<Served<Vec<DeadLetter>>, DlqError> {
    registry::block_on(async {
        let client = connect(endpoint, environment).await?;
        let mut url = reqwest::Url::parse(&client.url(PATH))
            .map_err(|_| StatusError::BadUrl(client.base().to_owned()))?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(p) = &query.pipeline {
                pairs.append_pair("pipeline", p);
            }
            if let Some(s) = &query.step {
                pairs.append_pair("step", s);
            }
            if let Some(n) = query.limit {
                pairs.append_pair("limit", &n.to_string());
            }
        }
        let url = url.as_str().trim_end_matches('?').to_owned();
        ask(
            &client,
            reqwest::Method::GET,
            url.clone(),
            None,
            "a list of dead letters",
            not_found_as_http(url),
        )
        .await
    })
}

/// The dead letter `id`.
pub fn show(
    endpoint: &Endpoint,
    environment: Option<&str>,
    id: &str,
) -> Result<Served<DeadLetter>, DlqError> {
    check_id(id)?;
    registry::block_on(async {
        let client = connect(endpoint, environment).await?;
        let url = client.url(&format!("{PATH}/{id}"));
        ask(
            &client,
            reqwest::Method::GET,
            url,
            None,
            "a dead letter",
            |error| DlqError::NotFound {
                url: client.base().to_owned(),
                id: id.to_owned(),
                error,
            },
        )
        .await
    })
}

/// Replays `selection`: the controller publishes each dead letter to its step's replay subject
/// again, and records who asked (`actor`, with the credential used).
pub fn replay(
    endpoint: &Endpoint,
    environment: Option<&str>,
    selection: &Selection,
    actor: &str,
) -> Result<Served<Replay>, DlqError> {
    let actor = actor.trim();
    if actor.is_empty() {
        return Err(DlqError::NoActor);
    }
    let request = match selection {
        Selection::Ids(ids) => {
            if ids.is_empty() {
                return Err(DlqError::NothingSelected);
            }
            let mut unique: Vec<String> = Vec::with_capacity(ids.len());
            for id in ids {
                check_id(id)?;
                if !unique.contains(id) {
                    unique.push(id.clone());
                }
            }
            ReplayRequest {
                ids: unique,
                pipeline: None,
                step: None,
                actor: actor.to_owned(),
            }
        }
        Selection::All { pipeline, step } => {
            if pipeline.is_empty() || step.is_empty() {
                return Err(DlqError::NothingSelected);
            }
            ReplayRequest {
                ids: Vec::new(),
                pipeline: Some(pipeline.clone()),
                step: Some(step.clone()),
                actor: actor.to_owned(),
            }
        }
    };
    let body = serde_json::to_vec(&request).expect("a replay request serializes");
    registry::block_on(async {
        let client = connect(endpoint, environment).await?;
        let url = client.url(&format!("{PATH}/replay"));
        ask(
            &client,
            reqwest::Method::POST,
            url.clone(),
            Some(body),
            "a replay record",
            not_found_as_http(url),
        )
        .await
    })
}

/// `letters` as a table: id, pipeline, step, class, when, size, and the reason, cut so that a
/// line fits `width` columns (when known; else cut at 160 characters).
pub fn list_table(letters: &[DeadLetter], width: Option<usize>) -> String {
    let header = ["ID", "PIPELINE", "STEP", "CLASS", "AT", "SIZE", "REASON"];
    let rows: Vec<[String; 7]> = letters
        .iter()
        .map(|d| {
            [
                cell(&d.id),
                cell(&d.pipeline),
                cell(&d.step),
                cell(&d.class),
                cell(&d.at),
                size(d.size),
                cell(&d.reason),
            ]
        })
        .collect();
    let mut widths = [0; 6];
    for (i, w) in widths.iter_mut().enumerate() {
        *w = rows
            .iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0);
    }
    // The reason gets what the other columns leave, but never less than a few words.
    let before: usize = widths.iter().map(|w| w + 2).sum();
    let reason_width = width.map_or(REASON_CHARS, |w| w.saturating_sub(before).max(16));
    let mut out = String::new();
    let mut row = |cells: [&str; 7]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().take(6).enumerate() {
            let pad = " ".repeat(widths[i] - cell.chars().count());
            if i == 5 {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
            line.push_str("  ");
        }
        line.push_str(&cut(cells[6], reason_width));
        out.push_str(line.trim_end());
        out.push('\n');
    };
    row(header);
    for r in &rows {
        row([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]]);
    }
    out
}

/// One dead letter for people: its fields, headers, then the preview of its payload.
pub fn show_text(d: &DeadLetter) -> String {
    let mut out = format!("dead letter {}\n", cell(&d.id));
    let mut field = |name: &str, value: &str| {
        let line = format!("{:<10} {value}", format!("{name}:"));
        out.push_str(line.trim_end());
        out.push('\n');
    };
    field("pipeline", &cell(&d.pipeline));
    field("step", &cell(&d.step));
    field("at", &cell(&d.at));
    field("class", &cell(&d.class));
    field("reason", &cell(&d.reason));
    field("key", &d.key.as_deref().map_or("(none)".to_owned(), cell));
    field("digest", &cell(&d.input_digest));
    field("size", &format!("{} ({} bytes)", size(d.size), d.size));
    if d.headers.is_empty() {
        field("headers", "(none)");
    } else {
        field("headers", "");
        for (name, value) in &d.headers {
            out.push_str(&format!("  {}: {}\n", cell(name), cell(value)));
        }
    }
    out.push('\n');
    if d.truncated {
        out.push_str(&format!(
            "preview (truncated: the start of the {} payload; secret-looking values redacted by \
             the controller):\n",
            size(d.size)
        ));
    } else {
        out.push_str(
            "preview (the whole payload; secret-looking values redacted by the controller):\n",
        );
    }
    if d.preview.is_empty() {
        out.push_str("  (empty)\n");
    }
    for line in d.preview.lines() {
        out.push_str(&format!("  {}\n", printable(line)));
    }
    out
}

/// What a replay did, for people: who it is recorded as, what went to which subject, which ids
/// were missing.
pub fn replay_summary(r: &Replay) -> String {
    let mut out = format!(
        "replayed {} dead letter{}\n",
        r.replayed.len(),
        if r.replayed.len() == 1 { "" } else { "s" },
    );
    // Per subject, in the order first replayed to.
    let mut subjects: Vec<(&str, Vec<&str>)> = Vec::new();
    for (id, subject) in &r.replayed {
        match subjects.iter_mut().find(|(s, _)| s == subject) {
            Some((_, ids)) => ids.push(id),
            None => subjects.push((subject, vec![id])),
        }
    }
    for (subject, ids) in subjects {
        out.push_str(&wrap(&format!("  to {}:", cell(subject)), &ids));
    }
    if !r.missing.is_empty() {
        let ids: Vec<&str> = r.missing.iter().map(String::as_str).collect();
        out.push_str(&wrap("missing (not kept by the controller):", &ids));
    }
    out.push_str(&format!(
        "recorded as {} at {} (credential {}, from {})\n",
        cell(&r.actor),
        cell(&r.at),
        cell(&r.credential),
        cell(&r.remote)
    ));
    out
}

/// `head` and the `ids` after it, in lines of at most 100 columns.
fn wrap(head: &str, ids: &[&str]) -> String {
    let indent = " ".repeat(head.len() - head.trim_start().len() + 4);
    let mut out = String::new();
    let mut line = head.to_owned();
    for (i, id) in ids.iter().enumerate() {
        let id = cell(id);
        let piece = if i + 1 < ids.len() {
            format!("{id},")
        } else {
            id
        };
        if line.chars().count() + 1 + piece.chars().count() > 100 && line.trim() != head.trim() {
            out.push_str(&line);
            out.push('\n');
            line = indent.clone();
            line.push_str(&piece);
        } else {
            line.push(' ');
            line.push_str(&piece);
        }
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// `n` bytes for people.
fn size(n: u64) -> String {
    const KIB: u64 = 1024;
    if n < KIB {
        format!("{n} B")
    } else if n < KIB * KIB {
        format!("{:.1} KiB", n as f64 / KIB as f64)
    } else {
        format!("{:.1} MiB", n as f64 / (KIB * KIB) as f64)
    }
}

/// `text` on one line, printable ([`printable`]).
fn cell(text: &str) -> String {
    printable(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `text` with what a terminal would act on rather than show — control characters but tab,
/// and bidirectional overrides — as `\u{…}` escapes: dead letters carry what senders sent.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() && c != '\t') || bidi {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` in at most `width` characters: cut with `…` when longer.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn letter(id: &str, reason: &str) -> DeadLetter {
        DeadLetter {
            id: id.to_owned(),
            pipeline: "sensor-ingest".to_owned(),
            step: "parse".to_owned(),
            reason: reason.to_owned(),
            class: crate::ops::telemetry::reason_class(reason),
            at: "2026-12-07T14:59:58Z".to_owned(),
            input_digest: format!("sha256:{}", "4".repeat(64)),
            size: 2048,
            preview: "{\"device\":\"d-17\",\"token\":\"[redacted]\",\n \"t\":\u{1b}[31m".to_owned(),
            truncated: true,
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("authorization".to_owned(), "[redacted]".to_owned()),
            ],
            key: Some("device-17".to_owned()),
        }
    }

    #[test]
    fn ids() {
        for ok in ["1042-3", "0-0", "18446744073709551615-1"] {
            assert!(check_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "1042", "-3", "1042-", "a-1", "1-2-3", "../x", "1042-3?x", " 1-2",
        ] {
            assert!(matches!(check_id(bad), Err(DlqError::BadId(_))), "{bad}");
        }
    }

    #[test]
    fn tables_fit_the_width() {
        let letters = vec![
            letter(
                "1043-0",
                "not JSON: expected value at line 1 column 1, and a great deal more explanation \
                 than any terminal line holds",
            ),
            letter("1042-3", "egress denied: api.example.com"),
        ];
        let table = list_table(&letters, Some(100));
        assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
        insta::assert_snapshot!("list_100_columns", table);
        let wide = list_table(&letters, None);
        assert!(wide.contains("than any terminal line holds"), "{wide}");
    }

    #[test]
    fn what_senders_sent_cannot_drive_the_terminal() {
        let d = letter("1042-3", "bad: \u{1b}]0;owned\u{7}\u{202e}txt");
        let text = show_text(&d);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert!(text.contains("\\u{1b}]0;owned\\u{7}\\u{202e}txt"), "{text}");
        insta::assert_snapshot!("show", text);
    }

    #[test]
    fn replay_summaries_wrap_ids() {
        let subject = "etl.iot-sensors.sensor-ingest.replay.parse".to_owned();
        let r = Replay {
            actor: "alice@laptop".to_owned(),
            credential: "3f2a9c1b0d4e".to_owned(),
            remote: "127.0.0.1:51234".to_owned(),
            at: "2026-12-07T15:00:00Z".to_owned(),
            replayed: (0..20)
                .map(|i| (format!("10{i:02}-0"), subject.clone()))
                .collect(),
            missing: vec!["999-1".to_owned()],
        };
        let text = replay_summary(&r);
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        insta::assert_snapshot!("replay_many", text);
    }
}
