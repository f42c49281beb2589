//! Prints what `lint` and `doctor` found, in the format asked for.

use std::io::{IsTerminal, Write};

use crate::cli::FindingsFormat;
use crate::findings;

/// Prints findings to standard output in `format`; colours only on a terminal without
/// `NO_COLOR`.
pub fn print(found: &[findings::Finding], checked: &str, format: FindingsFormat) {
    let text = match format {
        FindingsFormat::Json => findings::render_json(found) + "\n",
        FindingsFormat::Text => {
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            findings::render_text(found, checked, colour)
        }
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
