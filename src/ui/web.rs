//! The embedded page: one HTML file, one script and one style sheet, compiled into the binary
//! (no CDN, no fonts, works offline), served with a strict Content-Security-Policy: scripts
//! and styles from this origin only, no inline script, no `eval`, data from `/api/v1/` only.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/style.css");

/// The policy on every page and asset.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `/`.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// `/assets/app.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `/assets/style.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// Bytes of the whole page (HTML, script and styles), for the size budget.
pub fn page_bytes() -> usize {
    INDEX.len() + SCRIPT.len() + STYLE.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_small_and_has_no_inline_script_or_style() {
        assert!(page_bytes() < 150 * 1024, "{} bytes", page_bytes());
        assert!(
            !INDEX.contains("<script>") && !INDEX.contains("style="),
            "{INDEX}"
        );
        assert!(INDEX.contains("src=\"/assets/app.js\""));
        // Data reaches the page as text, never as markup.
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("eval("));
    }
}
