//! Every connector runs on a capability provider, and the records between steps on NATS: the
//! project must name an image for each provider a pipeline needs (`spec.providers`), best pinned.

use std::collections::BTreeSet;

use crate::diag::{Code, Diagnostic};
use crate::spec::load::Repo;
use crate::spec::model::{Pipeline, ProviderKind, SinkConnector, SourceConnector};

/// The providers `pipeline` needs, each with the JSON pointer of its first user.
pub fn needed(pipeline: &Pipeline) -> Vec<(ProviderKind, String)> {
    let spec = &pipeline.spec;
    let mut out: Vec<(ProviderKind, String)> = Vec::new();
    let mut need = |kind: ProviderKind, pointer: String| {
        if !out.iter().any(|(k, _)| *k == kind) {
            out.push((kind, pointer));
        }
    };
    need(
        match spec.source.connector {
            SourceConnector::Http => ProviderKind::HttpServer,
            SourceConnector::Nats | SourceConnector::Mqtt | SourceConnector::Pipeline => {
                ProviderKind::MessagingNats
            }
            SourceConnector::Kafka => ProviderKind::MessagingKafka,
        },
        "/spec/source/connector".to_owned(),
    );
    if !spec.steps.is_empty() {
        need(ProviderKind::MessagingNats, "/spec/steps/0/name".to_owned());
    }
    for (i, sink) in spec.sinks.iter().enumerate() {
        let kind = match sink.connector {
            SinkConnector::Http => ProviderKind::HttpClient,
            SinkConnector::Nats => ProviderKind::MessagingNats,
            SinkConnector::Kafka => ProviderKind::MessagingKafka,
            SinkConnector::S3 => ProviderKind::BlobstoreS3,
        };
        need(kind, format!("/spec/sinks/{i}/connector"));
    }
    out
}

pub(super) fn check_providers(repo: &Repo, out: &mut Vec<Diagnostic>) {
    let Some(project) = &repo.project else {
        return;
    };
    let configured = &project.spec.spec.providers;
    for p in &repo.pipelines {
        for (kind, pointer) in needed(&p.spec) {
            if configured.contains_key(&kind) {
                continue;
            }
            let name = kind.name();
            let suggestion = match kind.builtin() {
                Some(builtin) => format!(
                    "`{name}: {builtin}` (the wasmCloud 1.x host's built-in) or `{name}: {}@sha256:<digest>`",
                    kind.published()
                ),
                None => format!("`{name}: {}@sha256:<digest>`", kind.published()),
            };
            out.push(
                Diagnostic::new(
                    Code::MissingProvider,
                    format!(
                        "pipeline `{}` needs the `{name}` provider, and `etl.yaml` does not say which image runs it",
                        p.spec.metadata.name
                    ),
                )
                .at(&p.file, p.span(&pointer))
                .label(format!("runs on `{name}`"))
                .expected(format!("`spec.providers.{name}` in `{}`", project.file))
                .help(format!("add {suggestion} under `spec.providers`")),
            );
        }
    }
    let used: BTreeSet<ProviderKind> = repo
        .pipelines
        .iter()
        .flat_map(|p| needed(&p.spec).into_iter().map(|(k, _)| k))
        .collect();
    for (kind, image) in configured {
        if !image.is_pinned() && used.contains(kind) {
            out.push(
                Diagnostic::new(
                    Code::UnpinnedProvider,
                    format!("provider `{}` is not pinned by digest", kind.name()),
                )
                .at(
                    &project.file,
                    project.span(&format!("/spec/providers/{}", kind.name())),
                )
                .label("a tag can move")
                .help(format!("append `@sha256:<digest>`: `{image}@sha256:…`")),
            );
        }
    }
}
