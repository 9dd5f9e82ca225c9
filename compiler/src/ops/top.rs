//! `etl top`: the per-step counts of an environment's controller ([`crate::ops::status`]'s
//! document, `pipelines[].units`), read again and again: one [`Frame`] per reading, pipelines by
//! name, their steps and sinks in graph order.
//!
//! Rates are the controller's (over its last window). When it gives none for a unit (all 0)
//! while the unit's counts moved since the previous reading, [`Top`] computes them from the
//! difference between the two readings, and the frame marks them (`*`).

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::ops::status::{
    ControllerStatus, Endpoint, EnvironmentState, PipelineState, StatusError, UnitLine, UnitTable,
    graph_order,
};
use crate::ops::telemetry::Rates;

/// One reading of the environment, for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The environment, when the controller knows it.
    pub environment: Option<String>,
    /// The project, when known.
    pub project: Option<String>,
    /// The environment's state.
    pub state: EnvironmentState,
    /// Every pipeline, by name.
    pub pipelines: Vec<PipelineFrame>,
}

/// A pipeline's part of a [`Frame`].
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineFrame {
    /// The pipeline.
    pub name: String,
    /// Where it stands.
    pub state: PipelineState,
    /// Its version.
    pub version: Option<String>,
    /// Its steps and sinks, in graph order (none before they report).
    pub units: Vec<UnitLine>,
}

/// What the counts of one unit were at one reading.
#[derive(Debug, Clone, Copy)]
struct Reading {
    input: u64,
    out: u64,
    errors: u64,
}

/// Turns status documents into frames, remembering the previous reading to compute the rates the
/// controller does not give.
#[derive(Debug, Default)]
pub struct Top {
    previous: Option<(Instant, Readings)>,
}

/// Each unit's reading, by pipeline and unit.
type Readings = HashMap<(String, String), Reading>;

impl Top {
    /// A new one, with no reading yet.
    pub fn new() -> Top {
        Top::default()
    }

    /// The frame of `status`, read at `at`.
    pub fn frame(&mut self, status: &ControllerStatus, at: Instant) -> Frame {
        let mut readings = HashMap::new();
        let elapsed = self
            .previous
            .as_ref()
            .map(|(then, _)| at.saturating_duration_since(*then).as_secs_f64())
            .filter(|s| *s > 0.0);
        let mut pipelines: Vec<PipelineFrame> = status
            .pipelines
            .iter()
            .map(|p| {
                let units = p
                    .units
                    .iter()
                    .map(|u| {
                        let mut line = UnitLine::from(u);
                        let now = Reading {
                            input: line.input,
                            out: line.out,
                            errors: line.dead + line.failed,
                        };
                        let key = (p.name.clone(), u.name.clone());
                        let before = self.previous.as_ref().and_then(|(_, r)| r.get(&key));
                        if line.rates == Rates::default()
                            && let (Some(before), Some(secs)) = (before, elapsed)
                            && let Some(rates) = rates_between(before, &now, secs)
                        {
                            line.rates = rates;
                            line.computed = true;
                        }
                        readings.insert(key, now);
                        line
                    })
                    .collect();
                PipelineFrame {
                    name: p.name.clone(),
                    state: p.state,
                    version: p.version.clone(),
                    units: graph_order(units),
                }
            })
            .collect();
        pipelines.sort_by(|a, b| a.name.cmp(&b.name));
        self.previous = Some((at, readings));
        Frame {
            environment: status.environment.clone(),
            project: status.project.clone(),
            state: status.state,
            pipelines,
        }
    }
}

/// The rates between two readings `secs` apart, when the counts moved forward (not when they
/// went back: the controller restarted and counts again from 0).
fn rates_between(before: &Reading, now: &Reading, secs: f64) -> Option<Rates> {
    let input = now.input.checked_sub(before.input)?;
    let out = now.out.checked_sub(before.out)?;
    let errors = now.errors.checked_sub(before.errors)?;
    if input == 0 && out == 0 && errors == 0 {
        return None;
    }
    Some(Rates {
        input: input as f64 / secs,
        out: out as f64 / secs,
        errors: errors as f64 / secs,
    })
}

/// How a frame is headed: what it is read every, and why it may be old.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Heading {
    /// How often it is read again (none: once).
    pub every: Option<Duration>,
    /// Why the last reading failed (the frame shows the one before).
    pub error: Option<String>,
}

/// `frame` for people: a heading line, then per pipeline a line and its units' counts.
pub fn render(frame: &Frame, heading: &Heading) -> String {
    let mut out = format!(
        "environment {} (project {}): {}",
        frame.environment.as_deref().unwrap_or("?"),
        frame.project.as_deref().unwrap_or("?"),
        frame.state.as_str()
    );
    if let Some(every) = heading.every {
        out.push_str(&format!(
            ", every {}",
            humanize(every).unwrap_or_else(|| format!("{every:?}"))
        ));
    }
    out.push('\n');
    if let Some(error) = &heading.error {
        out.push_str(&format!(
            "last reading failed (showing the one before): {}\n",
            one_line(error)
        ));
    }
    if frame.pipelines.is_empty() {
        out.push_str("\nno pipelines\n");
        return out;
    }
    let groups: Vec<Vec<UnitLine>> = frame.pipelines.iter().map(|p| p.units.clone()).collect();
    let table = UnitTable::new(&groups, "  ");
    for (i, p) in frame.pipelines.iter().enumerate() {
        out.push('\n');
        let mut line = format!("{}  {}", p.name, p.state.as_str());
        if let Some(version) = &p.version {
            line.push_str(&format!("  {version}"));
        }
        if p.units.is_empty() {
            line.push_str("  (no step has reported)");
        }
        out.push_str(&line);
        out.push('\n');
        out.push_str(&table.render(i));
    }
    if frame
        .pipelines
        .iter()
        .flat_map(|p| &p.units)
        .any(|u| u.computed)
    {
        out.push_str(
            "\n* rates computed from the counts between two readings (the controller gave none)\n",
        );
    }
    out
}

/// `d` as `2s` or `500ms`, when it is a whole number of either.
fn humanize(d: Duration) -> Option<String> {
    if d.subsec_nanos() == 0 {
        Some(format!("{}s", d.as_secs()))
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        Some(format!("{}ms", d.as_millis()))
    } else {
        None
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How [`watch`] reads.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Pause between two readings.
    pub interval: Duration,
    /// Read once and return.
    pub once: bool,
}

/// Reads the status of the controller at `endpoint` (which, with `environment`, must apply that
/// one) every `options.interval`, and hands each frame to `show` with its heading, until `show`
/// says to stop (`false`: e.g. stdout was closed), Ctrl-C is pressed, or after one frame with
/// `options.once`.
///
/// The first reading must succeed. After it, a controller that cannot be reached or answers
/// 5xx is shown in the heading of the last good frame, and asked again; any other error (a
/// refused token, another environment, not a controller) ends the watch.
pub fn watch(
    endpoint: &Endpoint,
    environment: Option<&str>,
    options: &WatchOptions,
    mut show: impl FnMut(&Frame, &Heading) -> bool,
) -> Result<(), StatusError> {
    let client = crate::ops::status::Client::new(endpoint)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StatusError::Runtime)?;
    let every = (!options.once).then_some(options.interval);
    let watching = async {
        let mut top = Top::new();
        let fetched = client.get_for(environment).await?;
        let mut frame = top.frame(&fetched.status, Instant::now());
        let mut heading = Heading { every, error: None };
        loop {
            if !show(&frame, &heading) || options.once {
                return Ok(());
            }
            tokio::time::sleep(options.interval).await;
            match client.get_for(environment).await {
                Ok(fetched) => {
                    frame = top.frame(&fetched.status, Instant::now());
                    heading.error = None;
                }
                Err(e) if e.transient() => heading.error = Some(e.to_string()),
                Err(e) => return Err(e),
            }
        }
    };
    runtime.block_on(until_interrupted(watching))
}

/// `work`, or `Ok(())` as soon as Ctrl-C is pressed (the handler is in place from the first
/// poll, before `work` starts).
async fn until_interrupted(
    work: impl Future<Output = Result<(), StatusError>>,
) -> Result<(), StatusError> {
    let interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    let work = std::pin::pin!(work);
    match futures_util::future::select(interrupted, work).await {
        futures_util::future::Either::Left(_) => Ok(()),
        futures_util::future::Either::Right((result, _)) => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::status::{API_VERSION, KIND, PipelineStatus, TagStatus, UnitMetrics};
    use crate::ops::telemetry::{Counters, Flow, NodeKind};

    fn unit(name: &str, kind: NodeKind, input: u64, out: u64, rates: Rates) -> UnitMetrics {
        UnitMetrics {
            name: name.to_owned(),
            kind,
            counters: Counters {
                batches: 1,
                input: Flow {
                    records: input,
                    bytes: 100 * input,
                },
                out: Flow {
                    records: out,
                    bytes: 100 * out,
                },
                produced: out,
                filtered: input - out,
                ..Counters::default()
            },
            rates,
        }
    }

    fn status(pipelines: Vec<PipelineStatus>) -> ControllerStatus {
        ControllerStatus {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            project: Some("iot-sensors".to_owned()),
            environment: Some("dev".to_owned()),
            generation: "v1".to_owned(),
            lattice: None,
            bundle: "127.0.0.1:5000/etl/bundles/iot-sensors/dev:dev".to_owned(),
            tag: TagStatus::default(),
            applied: None,
            refused: None,
            state: EnvironmentState::Ready,
            pipelines,
        }
    }

    fn pipeline(name: &str, units: Vec<UnitMetrics>) -> PipelineStatus {
        PipelineStatus {
            name: name.to_owned(),
            application: name.to_owned(),
            version: Some("sha-2ada642ee5de".to_owned()),
            state: PipelineState::Deployed,
            reason: None,
            artifacts: vec![],
            units,
        }
    }

    #[test]
    fn pipelines_by_name_units_in_graph_order() {
        let doc = status(vec![
            pipeline(
                "zeta",
                vec![
                    unit("archive", NodeKind::Sink, 5, 5, Rates::default()),
                    unit("parse", NodeKind::Step, 6, 5, Rates::default()),
                ],
            ),
            pipeline("alpha", vec![]),
        ]);
        let frame = Top::new().frame(&doc, Instant::now());
        let names: Vec<(&str, Vec<&str>)> = frame
            .pipelines
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.units.iter().map(|u| u.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![("alpha", vec![]), ("zeta", vec!["parse", "archive"])]
        );
    }

    #[test]
    fn rates_come_from_the_controller_else_from_two_readings() {
        let given = Rates {
            input: 7.0,
            out: 6.5,
            errors: 0.5,
        };
        let at = |n: u64, m: u64| {
            status(vec![pipeline(
                "p",
                vec![
                    unit("parse", NodeKind::Step, n, m, Rates::default()),
                    unit("sink", NodeKind::Sink, m, m, given),
                ],
            )])
        };
        let mut top = Top::new();
        let t0 = Instant::now();
        let first = top.frame(&at(100, 90), t0);
        // One reading: nothing to compute from.
        assert!(!first.pipelines[0].units[0].computed);
        assert_eq!(first.pipelines[0].units[0].rates, Rates::default());
        let second = top.frame(&at(140, 110), t0 + Duration::from_secs(2));
        let parse = &second.pipelines[0].units[0];
        assert!(parse.computed);
        assert_eq!((parse.rates.input, parse.rates.out), (20.0, 10.0));
        // The controller's rates are kept.
        let sink = &second.pipelines[0].units[1];
        assert!(!sink.computed);
        assert_eq!(sink.rates, given);
        // Counts that did not move, or went back (a restarted controller): no computed rates.
        let third = top.frame(&at(140, 110), t0 + Duration::from_secs(4));
        assert!(!third.pipelines[0].units[0].computed);
        let fourth = top.frame(&at(3, 1), t0 + Duration::from_secs(6));
        assert!(!fourth.pipelines[0].units[0].computed);
        insta::assert_snapshot!(
            "computed_rates",
            render(
                &second,
                &Heading {
                    every: Some(Duration::from_secs(2)),
                    error: None
                }
            )
        );
        insta::assert_snapshot!(
            "failed_reading",
            render(
                &first,
                &Heading {
                    every: Some(Duration::from_millis(500)),
                    error: Some("cannot reach the controller at http://x/status: refused".into())
                }
            )
        );
    }
}
