//! What people look at: the built-in web dashboard served by `up` (its data routes and its
//! embedded page) and `top` in a terminal, over `up`'s state and history and the panel
//! catalogue.

pub mod api;
pub mod overview;
pub mod query;
pub mod top;
pub mod web;

/// `text` as a URL query value, for the clients of `up`'s API (`top`, `doctor`).
pub fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
