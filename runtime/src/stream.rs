//! `etl run`: a pipeline (and those run with it) loaded for an environment, and records streamed
//! through it: JSON lines ([`crate::input`]) read from a file or stdin a batch at a time, each
//! record's [`Outcome`] handed back as soon as its batch has gone through the whole pipeline,
//! and only the [`Summary`] kept.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use etl::build::deployment::{self, DeploymentError};
use etl::spec::load::Repo;
use etl::util::io::IoError;

use crate::artifacts::Artifacts;
use crate::input::{InputError, read_lines};
use crate::secrets::SecretValues;
use crate::{Limits, LoadedPipeline, Outcome, Record, RunError, Runtime, Session, Summary};

/// Why records could not be streamed through a pipeline (a record that fails at a unit is an
/// [`Outcome`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The pipeline or environment is unknown.
    #[error(transparent)]
    Plan(#[from] DeploymentError),
    /// The pipeline could not be loaded, or a record cannot enter it.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The input cannot be opened.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The secrets file cannot be used.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsFileError),
    /// A line of the input is not a record.
    #[error(transparent)]
    Input(#[from] InputError),
}

/// Where the records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input.
    Stdin,
    /// A file (or a pipe, a FIFO).
    File(PathBuf),
}

impl Input {
    /// `-` is stdin, any other path a file.
    pub fn new(path: &Path) -> Input {
        if path.as_os_str() == "-" {
            Input::Stdin
        } else {
            Input::File(path.to_owned())
        }
    }
}

/// Loads `pipelines` of `artifacts` for environment `env` (default: the project's first), its
/// compiled code cached under `cache`: records enter the first, the others run with it on one
/// bus ([`Runtime::load_together`]); with the values of the secrets their units read from
/// `secrets`: every one must have a value ([`RunError::MissingSecrets`] names those without).
pub fn load(
    repo: &Repo,
    artifacts: &Artifacts,
    pipelines: &[String],
    env: Option<String>,
    cache: &Path,
    secrets: &SecretValues,
) -> Result<LoadedPipeline, StreamError> {
    let env = env
        .or_else(|| deployment::default_environment(repo))
        .unwrap_or_default();
    let deployments = pipelines
        .iter()
        .map(|p| deployment::deploy(repo, &env, p))
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = Runtime::new(Some(cache))?;
    let none = BTreeMap::new();
    let together: Vec<_> = deployments
        .iter()
        .map(|d| (d, artifacts.get(&d.pipeline).unwrap_or(&none)))
        .collect();
    let mut loaded = runtime.load_together(&together)?;
    let missing = loaded.set_secrets(|key| secrets.get(key));
    if !missing.is_empty() {
        return Err(RunError::MissingSecrets(missing).into());
    }
    Ok(loaded)
}

/// The records of an input, one at a time.
type Records = Box<dyn Iterator<Item = Result<Record, InputError>>>;

/// Where the records of a run come from.
enum Source {
    /// A regular file, read in place: every batch is full.
    File(Records),
    /// Stdin or a pipe, read by a thread as lines arrive: a batch is what has arrived, at least
    /// one record and at most a full batch, so a record typed or piped in slowly runs at once.
    Arriving(std::sync::mpsc::Receiver<Result<Record, InputError>>),
}

impl Source {
    /// Reads lines on a thread of their own.
    fn arriving(
        read: impl FnOnce() -> Box<dyn Iterator<Item = Result<Record, InputError>>> + Send + 'static,
        batch: usize,
    ) -> Source {
        let (tx, rx) = std::sync::mpsc::sync_channel(batch);
        std::thread::spawn(move || {
            for record in read() {
                if tx.send(record).is_err() {
                    break;
                }
            }
        });
        Source::Arriving(rx)
    }

    /// The next record, waiting for it only if `wait` (else `None` when none has arrived).
    fn next(&mut self, wait: bool) -> Option<Result<Record, InputError>> {
        match self {
            Source::File(records) => records.next(),
            Source::Arriving(rx) if wait => rx.recv().ok(),
            Source::Arriving(rx) => rx.try_recv().ok(),
        }
    }
}

/// Records streaming through a pipeline: an iterator of each record's [`Outcome`], in input
/// order, every secret value taken out ([`crate::secrets::Redactor`]); it ends after the first
/// error.
pub struct Stream<'p> {
    records: Source,
    total: Option<usize>,
    session: Session<'p>,
    /// Records read at a time and fed as one batch.
    batch: usize,
    /// Outcomes of the last batch not yet returned.
    pending: std::collections::VecDeque<Outcome>,
    /// The error that ended the last batch's reading, returned after its outcomes.
    error: Option<StreamError>,
    failed: bool,
}

impl<'p> Stream<'p> {
    /// Opens `input` for `pipeline`. Records run [`Limits::batch`] at a time: a regular file's
    /// in full batches; stdin's or a pipe's as they arrive (a batch is what has arrived, up to a
    /// full one, so records typed or piped in slowly run at once). A regular file is read twice:
    /// every line is checked ([`LoadedPipeline::check_input`]) before the first record runs, so
    /// its total is known; a pipe or FIFO can be read only once.
    pub fn open(
        pipeline: &'p LoadedPipeline,
        input: &Input,
        limits: &Limits,
    ) -> Result<Stream<'p>, StreamError> {
        let batch = limits.batch.max(1);
        let (records, total): (Source, Option<usize>) = match input {
            Input::Stdin => (
                Source::arriving(
                    || Box::new(read_lines("<stdin>", std::io::stdin().lock())),
                    batch,
                ),
                None,
            ),
            Input::File(path) => {
                let origin = path.display().to_string();
                let open = || {
                    File::open(path)
                        .map(BufReader::new)
                        .map_err(IoError::at(path))
                };
                if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
                    let mut total = 0;
                    for record in read_lines(&origin, open()?) {
                        pipeline.check_input(total, &record?)?;
                        total += 1;
                    }
                    (
                        Source::File(Box::new(read_lines(&origin, open()?))),
                        Some(total),
                    )
                } else {
                    let reader = open()?;
                    (
                        Source::arriving(move || Box::new(read_lines(&origin, reader)), batch),
                        None,
                    )
                }
            }
        };
        Ok(Stream {
            records,
            total,
            session: pipeline.session(limits),
            batch,
            pending: std::collections::VecDeque::new(),
            error: None,
            failed: false,
        })
    }

    /// The number of records, when known before they run (a regular file's).
    pub fn total(&self) -> Option<usize> {
        self.total
    }

    /// The totals so far.
    pub fn summary(&self) -> Summary {
        self.session.summary()
    }
}

impl Iterator for Stream<'_> {
    type Item = Result<Outcome, StreamError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(outcome) = self.pending.pop_front() {
            return Some(Ok(outcome));
        }
        if let Some(error) = self.error.take() {
            self.failed = true;
            return Some(Err(error));
        }
        if self.failed {
            return None;
        }
        // Each record is checked as it is read: the records before one that is refused (or a
        // line that is not a record) run, then the error ends the stream.
        let mut batch = Vec::with_capacity(self.batch);
        let first = self.session.inputs();
        while batch.len() < self.batch {
            match self.records.next(batch.is_empty()) {
                Some(Ok(record)) => {
                    let index = first + batch.len();
                    if let Err(e) = self.session.pipeline().check_input(index, &record) {
                        self.error = Some(e.into());
                        break;
                    }
                    batch.push(record);
                }
                Some(Err(e)) => {
                    self.error = Some(e.into());
                    break;
                }
                None => break,
            }
        }
        match self.session.feed_batch(&batch) {
            Ok(outcomes) => {
                let redactor = self.session.pipeline().redactor();
                self.pending
                    .extend(outcomes.into_iter().map(|o| redactor.outcome(o)));
            }
            Err(e) => {
                self.failed = true;
                self.error = None;
                return Some(Err(e.into()));
            }
        }
        if self.pending.is_empty() && self.error.is_none() {
            return None;
        }
        self.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::{self, Origin};

    /// The example's webhook token, as a test gives it.
    const TOKEN: &str = "Bearer stream-test-token";

    /// The example repo's `sensor-ingest`, compiled in memory and loaded for `env`, its secret
    /// given [`TOKEN`].
    fn example(env: Option<&str>) -> Result<LoadedPipeline, StreamError> {
        example_with(
            env,
            &SecretValues::of([("alerts-webhook-token".to_owned(), TOKEN.to_owned())]),
        )
    }

    fn example_with(
        env: Option<&str>,
        secrets: &SecretValues,
    ) -> Result<LoadedPipeline, StreamError> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/iot-sensors");
        let (validation, built) = artifacts::prepare(
            &repo,
            &Origin::Build(None),
            etl::build::generation::Generation::V2,
        )
        .unwrap();
        let cache = tempfile::tempdir().unwrap();
        load(
            &validation.repo,
            &built.expect("the example is valid"),
            &["sensor-ingest".to_owned()],
            env.map(str::to_owned),
            cache.path(),
            secrets,
        )
    }

    const HOT: &str = r#"{"json": {"sensor": "t-1", "temp_c": 90, "ts": "2026-11-01T12:00:00Z"}}"#;

    #[test]
    fn a_file_is_checked_whole_then_streamed_in_order() {
        let pipeline = example(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits::default();
        let good = dir.path().join("in.jsonl");
        std::fs::write(&good, format!("{HOT}\n\n{{\"payload\": \"not json\"}}\n")).unwrap();
        let mut stream = Stream::open(&pipeline, &Input::File(good), &limits).unwrap();
        assert_eq!(stream.total(), Some(2));
        let outcomes = stream.by_ref().collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(outcomes.iter().map(|o| o.input).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(outcomes[0].sinks.len(), 2);
        assert_eq!(outcomes[1].dead_letters.len(), 1);
        assert_eq!(stream.summary().inputs, 2);

        // A bad line anywhere stops the run before any record runs.
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, format!("{HOT}\n{{\"jsn\": 1}}\n")).unwrap();
        let e = Stream::open(&pipeline, &Input::File(bad), &limits)
            .err()
            .unwrap();
        assert!(matches!(e, StreamError::Input(ref e) if e.line == 2), "{e}");
        // So does a record the source cannot take: a key, at an HTTP source.
        let keyed = dir.path().join("keyed.jsonl");
        std::fs::write(
            &keyed,
            format!("{HOT}\n{{\"payload\": \"x\", \"key\": \"k\"}}\n"),
        )
        .unwrap();
        let e = Stream::open(&pipeline, &Input::File(keyed), &limits)
            .err()
            .unwrap();
        assert!(
            matches!(e, StreamError::Run(RunError::Input { index: 1, .. })),
            "{e}"
        );
        let missing = dir.path().join("missing.jsonl");
        let e = Stream::open(&pipeline, &Input::File(missing), &limits)
            .err()
            .unwrap();
        assert!(matches!(e, StreamError::Io(_)), "{e}");
    }

    #[test]
    fn a_secret_without_a_value_stops_the_run_naming_its_key() {
        let e = example_with(None, &SecretValues::none()).err().unwrap();
        assert_eq!(
            e.to_string(),
            "secret `alerts-webhook-token` (setting `authorization` of `alerts`) has no value: \
             give it in a `--secrets FILE` or as `ETL_SECRET_ALERTS_WEBHOOK_TOKEN`"
        );
    }

    #[test]
    fn streamed_outcomes_carry_no_secret_value() {
        let pipeline = example(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, format!("{HOT}\n")).unwrap();
        let mut stream = Stream::open(&pipeline, &Input::File(input), &Limits::default()).unwrap();
        let outcome = stream.next().unwrap().unwrap();
        let alerts = outcome.sinks.iter().find(|s| s.sink == "alerts").unwrap();
        assert!(
            alerts.record.headers.contains(&(
                "authorization".to_owned(),
                "<secret alerts-webhook-token>".to_owned()
            )),
            "{:?}",
            alerts.record.headers
        );
        assert!(!format!("{outcome:?}").contains(TOKEN));
    }

    #[test]
    fn an_unknown_environment_is_a_plan_error() {
        assert!(matches!(example(Some("nope")), Err(StreamError::Plan(_))));
    }

    #[test]
    fn a_dash_is_stdin() {
        assert_eq!(Input::new(Path::new("-")), Input::Stdin);
        assert_eq!(
            Input::new(Path::new("in.jsonl")),
            Input::File(PathBuf::from("in.jsonl"))
        );
        assert_eq!(
            Input::new(Path::new("./-")),
            Input::File(PathBuf::from("./-"))
        );
    }
}
