//! `etl init`: scaffolds a pipeline repo that validates, compiles, tests and runs: its one step is
//! a real component that passes every record through unchanged, for the user to replace.

use std::path::{Path, PathBuf};

use crate::util::io::IoError;
use crate::util::out_dir::{NewFile, OutputError};

/// The component `etl init` writes as `components/transform.wasm`: a wit-bindgen core module of
/// world `etl:pipeline/transformer` that returns every record unchanged, built reproducibly from
/// `examples/components/passthrough` by `examples/build-components.sh`.
pub const PASSTHROUGH_COMPONENT: &[u8] = include_bytes!("../../assets/passthrough.wasm");

/// Creates a new pipeline repo in `dir` named `name` (when `None`, after the directory, made a
/// valid name). Refuses to overwrite any existing file; returns the files written, repo-relative.
pub fn init(dir: &Path, name: Option<&str>) -> Result<Vec<String>, OutputError> {
    let name = match name {
        Some(n) => sanitize(n),
        None => {
            // The directory may not exist yet: resolved as far as it does.
            let resolved = crate::util::out_dir::resolve(dir)
                .map_err(|source| OutputError::Io(IoError::new(dir, source)))?;
            sanitize(&resolved.file_name().unwrap_or_default().to_string_lossy())
        }
    };
    let digest = crate::util::digest::sha256(PASSTHROUGH_COMPONENT);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("etl.yaml", project(&name).into_bytes()),
        ("pipelines/hello.yaml", pipeline(&digest).into_bytes()),
        ("environments/dev.yaml", ENVIRONMENT.as_bytes().to_vec()),
        ("tests/hello.yaml", FIXTURE.as_bytes().to_vec()),
        ("components/transform.wasm", PASSTHROUGH_COMPONENT.to_vec()),
        (".gitignore", b"/dist/\n".to_vec()),
    ];
    let paths: Vec<PathBuf> = files.iter().map(|(f, _)| dir.join(f)).collect();
    let new: Vec<NewFile<'_>> = files
        .iter()
        .zip(&paths)
        .map(|((_, bytes), path)| NewFile {
            path,
            bytes,
            mode: 0o644,
        })
        .collect();
    crate::util::out_dir::create_new(&new)?;
    Ok(files.iter().map(|(f, _)| (*f).to_owned()).collect())
}

/// A name valid for wadm and OCI, from any text.
fn sanitize(raw: &str) -> String {
    crate::spec::model::name_from(raw).unwrap_or_else(|| "pipelines".to_owned())
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
      component: components/transform.wasm   # passes records through: replace it with yours
      digest: {digest}   # the file's sha256sum
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
    use std::fs;

    #[test]
    fn sanitizes_names() {
        assert_eq!(sanitize("My Pipelines!"), "my-pipelines");
        assert_eq!(sanitize("***"), "pipelines");
        // Transliterated, not dashed out (`t-l-m-trie`); runs of other characters are one `-`.
        assert_eq!(sanitize("Télémétrie"), "telemetrie");
        assert_eq!(sanitize("東京"), "dong-jing");
        assert_eq!(sanitize("a & b"), "a-b");
    }

    #[test]
    fn scaffold_validates_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), Some("demo")).unwrap();
        assert!(files.contains(&"etl.yaml".to_owned()));
        let v = crate::spec::validate(dir.path()).unwrap();
        assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
        let before = fs::read(dir.path().join("etl.yaml")).unwrap();
        assert!(matches!(
            init(dir.path(), None),
            Err(OutputError::Exists { .. })
        ));
        assert_eq!(fs::read(dir.path().join("etl.yaml")).unwrap(), before);
    }
}
