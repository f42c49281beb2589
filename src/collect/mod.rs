//! Collect: getting scrape bodies from targets (HTTP, files) and checking them before parsing.
//! No interpretation of the metrics happens here; that is `engines`.

pub mod body;
pub mod fetch;
pub mod probe;
