//! Who may use the HTTP API: with a bearer token set, a request carries it
//! (`Authorization: Bearer <token>`) or the session cookie a browser got from the login form
//! ([`COOKIE`]: an HMAC-SHA256 of a fixed label keyed by the token, so no session is stored and
//! every cookie dies with its token). A state-changing request made with the cookie must also
//! carry [`CSRF_HEADER`]` = 1`, which no other site's form or image can send. Without a token,
//! everything is open. Tokens are compared in constant time.

use hmac::{Hmac, Mac as _};
use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};
use subtle::ConstantTimeEq as _;

use etl::ops::status::Token;

/// The session cookie's name.
pub const COOKIE: &str = "etl_session";
/// The header a cookie-authenticated state-changing request carries.
pub const CSRF_HEADER: &str = "x-etl-csrf";
/// What the session cookie is an HMAC of.
const SESSION_LABEL: &[u8] = b"etl-controller dashboard session v1";

/// How a request is let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token is set.
    Open,
    /// With the bearer token.
    Bearer,
    /// With the session cookie.
    Cookie,
    /// Not at all.
    Denied,
}

/// The token's forms that requests are checked against.
pub struct Auth {
    /// The SHA-256 of the token, `sha256:<hex>`: compared in constant time and fixed length.
    digest: Option<String>,
    /// The session cookie's value.
    session: Option<String>,
}

impl Auth {
    /// The checks of `token` (everything open without one).
    pub fn new(token: Option<&Token>) -> Auth {
        match token {
            None => Auth {
                digest: None,
                session: None,
            },
            Some(token) => {
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token.expose().as_bytes())
                    .expect("HMAC takes a key of any length");
                mac.update(SESSION_LABEL);
                Auth {
                    digest: Some(etl::util::digest::sha256(token.expose().as_bytes())),
                    session: Some(hex::encode(mac.finalize().into_bytes())),
                }
            }
        }
    }

    /// Whether a token is set.
    pub fn required(&self) -> bool {
        self.digest.is_some()
    }

    /// Whether `presented` is the token.
    pub fn is_token(&self, presented: &str) -> bool {
        let Some(expected) = &self.digest else {
            return true;
        };
        let presented = etl::util::digest::sha256(presented.trim().as_bytes());
        presented.as_bytes().ct_eq(expected.as_bytes()).into()
    }

    /// How a request with `headers` is let in.
    pub fn check(&self, headers: &HeaderMap) -> Access {
        let (Some(_), Some(session)) = (&self.digest, &self.session) else {
            return Access::Open;
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        if let Some(token) = bearer
            && self.is_token(token)
        {
            return Access::Bearer;
        }
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value.trim());
        match cookie {
            Some(value) if bool::from(value.as_bytes().ct_eq(session.as_bytes())) => Access::Cookie,
            _ => Access::Denied,
        }
    }

    /// Which credential a request let in by `access` used: the first 12 hex digits of the
    /// token's SHA-256, or `none` when no token is set.
    pub fn credential(&self) -> String {
        match &self.digest {
            Some(digest) => etl::util::digest::hex(digest)
                .unwrap_or(digest)
                .chars()
                .take(12)
                .collect(),
            None => "none".to_owned(),
        }
    }

    /// The `Set-Cookie` of a login (`Secure` under TLS).
    pub fn login_cookie(&self, tls: bool) -> Option<HeaderValue> {
        let session = self.session.as_ref()?;
        let secure = if tls { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/{secure}"
        ))
        .ok()
    }
}

/// The `Set-Cookie` of a logout.
pub fn logout_cookie(tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"
    ))
    .expect("a fixed header value")
}

/// Whether a request carries `x-etl-csrf: 1`.
pub fn csrf_header(headers: &HeaderMap) -> bool {
    headers
        .get(CSRF_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1")
}

/// The token of an `Authorization: Bearer <token>` value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The login page's style: inline (the page needs no other request), allowed by its hash in
/// the page's Content Security Policy.
pub const LOGIN_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:24rem;\
margin:4rem auto;padding:0 1rem}input{width:100%;padding:.5rem;margin:.5rem 0;\
box-sizing:border-box}button{padding:.5rem 1rem}.no{color:#b00020}";

/// The login page: a form posting the token to `/login`, and why it is shown again.
pub fn login_page(failed: bool) -> Vec<u8> {
    let note = if failed {
        "<p class=\"no\">That is not the controller's token.</p>"
    } else {
        ""
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>etl-controller: sign in</title><style>{LOGIN_STYLE}</style></head><body>\
<h1>etl-controller</h1>{note}\
<form method=\"post\" action=\"/login\"><label for=\"token\">The controller's bearer token \
(its <code>--token-file</code>)</label>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" \
required autofocus><button type=\"submit\">Sign in</button></form></body></html>\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn bearer_cookie_or_nothing() {
        let token = Token::new("s3cret", "test").unwrap();
        let auth = Auth::new(Some(&token));
        let cookie = auth.login_cookie(false).unwrap();
        let cookie = cookie.to_str().unwrap();
        assert!(
            cookie.ends_with("; HttpOnly; SameSite=Strict; Path=/"),
            "{cookie}"
        );
        assert!(!cookie.contains("s3cret"));
        let value = cookie.split(';').next().unwrap();
        assert_eq!(
            auth.check(&headers(&[("authorization", "Bearer s3cret")])),
            Access::Bearer
        );
        assert_eq!(
            auth.check(&headers(&[("cookie", &format!("a=b; {value}"))])),
            Access::Cookie
        );
        assert_eq!(
            auth.check(&headers(&[("cookie", "etl_session=00")])),
            Access::Denied
        );
        assert_eq!(
            auth.check(&headers(&[("authorization", "Bearer nope")])),
            Access::Denied
        );
        assert!(
            auth.login_cookie(true)
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        // Another token, another cookie.
        let other = Auth::new(Some(&Token::new("other", "test").unwrap()));
        assert_eq!(other.check(&headers(&[("cookie", value)])), Access::Denied);
        assert_eq!(auth.credential().len(), 12);
        assert_eq!(
            auth.credential(),
            &etl::util::digest::sha256(b"s3cret")["sha256:".len()..][..12]
        );
        let open = Auth::new(None);
        assert_eq!(open.check(&HeaderMap::new()), Access::Open);
        assert_eq!(open.credential(), "none");
        assert!(csrf_header(&headers(&[(CSRF_HEADER, "1")])));
        assert!(!csrf_header(&headers(&[(CSRF_HEADER, "yes")])));
    }
}
