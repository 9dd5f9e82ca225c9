//! `wadm-oracle FILE...`: validates each wadm manifest with wadm-types 0.8.3, as `wash app
//! validate` does, and prints one JSON line per file:
//! `{"path", "error"?, "failures": [{"level", "msg"}], "manifest"?}`, where `manifest` is the
//! file as wadm-types parsed it (serialized back as JSON) and `error` says why it did not parse.

use wadm_types::validation::{ValidationFailureLevel, validate_manifest_bytes};

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    for path in std::env::args().skip(1) {
        let line = match std::fs::read(&path) {
            Err(e) => {
                serde_json::json!({"path": path, "error": format!("read: {e}"), "failures": []})
            }
            Ok(bytes) => match runtime.block_on(validate_manifest_bytes(&bytes)) {
                Err(e) => {
                    serde_json::json!({"path": path, "error": format!("{e:#}"), "failures": []})
                }
                Ok((manifest, failures)) => {
                    let failures: Vec<_> = failures
                        .iter()
                        .map(|f| {
                            let level = match f.level {
                                ValidationFailureLevel::Error => "error",
                                ValidationFailureLevel::Warning => "warning",
                                _ => "unknown",
                            };
                            serde_json::json!({"level": level, "msg": f.msg})
                        })
                        .collect();
                    serde_json::json!({
                        "path": path,
                        "failures": failures,
                        "manifest": serde_json::to_value(&manifest).expect("manifests serialize"),
                    })
                }
            },
        };
        println!("{line}");
    }
}
