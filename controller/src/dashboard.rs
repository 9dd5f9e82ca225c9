//! The dashboard's static files. A placeholder: the dashboard's own module replaces this file,
//! with this signature.

/// A static file of the dashboard.
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
    /// Its entity tag (quoted).
    pub etag: &'static str,
}

const INDEX: &[u8] = b"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>etl-controller</title></head><body><h1>etl-controller</h1>\
<p>The dashboard is not part of this build. The API is at <code>/api/v1/overview</code>.</p>\
</body></html>\n";

/// The file at `path`: `/` is `index.html`, `/assets/<file>` the others.
pub fn asset(path: &str) -> Option<Asset> {
    match path {
        "/" => Some(Asset {
            content_type: "text/html; charset=utf-8",
            bytes: INDEX,
            etag: "\"placeholder-1\"",
        }),
        _ => None,
    }
}
