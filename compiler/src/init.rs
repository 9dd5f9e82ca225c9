//! `etl init`: scaffolds a pipeline repo that validates cleanly.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::Error;

/// Bytes of the placeholder component `etl init` writes until the user builds their own.
pub const PLACEHOLDER_COMPONENT: &[u8] = b"PLACEHOLDER: not a Wasm component.\n\
Build your transform for the etl:pipeline/transformer world (wit/etl-pipeline) and replace this\n\
file, then put its `sha256sum` into pipelines/hello.yaml.\n";

/// Creates a new pipeline repo in `dir` named `name` (derived from the directory when `None`).
/// Refuses to overwrite any existing file; returns the files written, repo-relative.
pub fn init(dir: &Path, name: Option<&str>) -> Result<Vec<String>, Error> {
    let name = match name {
        Some(n) => sanitize(n),
        None => sanitize(
            &dir.canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "pipelines".to_owned()),
        ),
    };
    let digest = format!("sha256:{:x}", Sha256::digest(PLACEHOLDER_COMPONENT));
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("etl.yaml", project(&name).into_bytes()),
        ("pipelines/hello.yaml", pipeline(&digest).into_bytes()),
        ("environments/dev.yaml", ENVIRONMENT.as_bytes().to_vec()),
        ("tests/hello.yaml", FIXTURE.as_bytes().to_vec()),
        ("components/transform.wasm", PLACEHOLDER_COMPONENT.to_vec()),
        (".gitignore", b"/dist/\n".to_vec()),
    ];
    let existing: Vec<&str> = files
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| dir.join(f).exists())
        .collect();
    if !existing.is_empty() {
        return Err(Error::WouldOverwrite {
            path: dir.to_owned(),
            what: existing.join(", "),
        });
    }
    let mut written: Vec<PathBuf> = Vec::new();
    for (file, bytes) in &files {
        let path = dir.join(file);
        let result = path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::write(&path, bytes));
        if let Err(source) = result {
            for done in &written {
                let _ = fs::remove_file(done);
            }
            return Err(Error::Io { path, source });
        }
        written.push(path);
    }
    Ok(files.iter().map(|(f, _)| (*f).to_owned()).collect())
}

/// A name valid for wadm and OCI, from any text.
fn sanitize(raw: &str) -> String {
    crate::model::name_from(raw).unwrap_or_else(|| "pipelines".to_owned())
}

fn project(name: &str) -> String {
    format!(
        "apiVersion: etl/v1alpha1
kind: Project
metadata:
  name: {name}
spec:
  registry: registry.example/{name}   # OCI repository prefix for composed step artifacts
  # Which provider runs each connector: here the wasmCloud 1.x host's built-ins. Pin OCI
  # images by digest instead, e.g. ghcr.io/wasmcloud/messaging-nats:0.27.0@sha256:<digest>.
  providers:
    http-server: wasmcloud+builtin://http-server
    http-client: wasmcloud+builtin://http-client
    messaging-nats: wasmcloud+builtin://messaging-nats
  environments:
    dev:
      lattice: {name}-dev
      replicas: 1
      vars:
        greeting: hello
  policy:
    allow: []   # imports every customer component may have, e.g. wasi:logging/logging
"
    )
}

fn pipeline(digest: &str) -> String {
    format!(
        "apiVersion: etl/v1alpha1
kind: Pipeline
metadata:
  name: hello
  description: Records posted over HTTP, transformed, published on NATS
spec:
  source:
    name: ingest
    connector: http
    with:
      path: /hello
  steps:
    - name: transform
      from: [ingest]
      component: components/transform.wasm   # PLACEHOLDER until you build your component
      digest: {digest}
      config:
        greeting: \"{{{{ vars.greeting }}}}\"
  sinks:
    - name: out
      from: [transform]
      connector: nats
      with:
        subject: hello.out
"
    )
}

const ENVIRONMENT: &str = "apiVersion: etl/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  vars:
    greeting: hello from dev
";

const FIXTURE: &str = "apiVersion: etl/v1alpha1
kind: Test
metadata:
  name: hello
spec:
  pipeline: hello
  environment: dev
  input:
    - payload: world
  expect:
    sinks:
      out:
        - payload: world
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_names() {
        assert_eq!(sanitize("My Pipelines!"), "my-pipelines");
        assert_eq!(sanitize("***"), "pipelines");
    }

    #[test]
    fn scaffold_validates_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), Some("demo")).unwrap();
        assert!(files.contains(&"etl.yaml".to_owned()));
        let v = crate::validate(dir.path()).unwrap();
        assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
        let before = fs::read(dir.path().join("etl.yaml")).unwrap();
        assert!(matches!(
            init(dir.path(), None),
            Err(Error::WouldOverwrite { .. })
        ));
        assert_eq!(fs::read(dir.path().join("etl.yaml")).unwrap(), before);
    }
}
