//! `llmwatch lint FILE…`: prints the findings and returns the exit code.

use std::io::{IsTerminal, Write};

use crate::cli::{FindingsFormat, LintCli};
use crate::findings::{self, EXIT_COULD_NOT_RUN};
use crate::lint::{LintOptions, lint, read};

/// Runs lint; the exit code (0 clean, 1 findings at or above `--fail-on`, 2 could not run).
pub fn run(args: &LintCli) -> u8 {
    let options = LintOptions {
        scrape_interval: args.scrape_interval,
    };
    let found = match read(&args.files).and_then(|inputs| lint(&inputs, &options)) {
        Ok(found) => findings::sorted(found),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "llmwatch lint: {err}");
            return EXIT_COULD_NOT_RUN;
        }
    };
    let checked = match args.files.len() {
        1 => "1 file".to_string(),
        n => format!("{n} files"),
    };
    print(&found, &checked, args.format);
    findings::exit_code(&found, args.fail_on)
}

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
