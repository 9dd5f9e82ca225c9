//! Building blocks with no knowledge of pipelines: digests, canonical JSON, I/O errors that name
//! their path, and writing outputs without losing the user's files.

pub mod digest;
pub mod io;
pub mod json;
pub mod out_dir;

/// The environment variable `prefix` + `name` in upper case, every character other than an
/// ASCII letter or digit as `_` (`ETL_SECRET_` + `alerts-webhook-token` →
/// `ETL_SECRET_ALERTS_WEBHOOK_TOKEN`).
pub fn env_var_name(prefix: &str, name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}{name}")
}
