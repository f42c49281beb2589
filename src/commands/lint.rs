//! `llmwatch lint FILE…`: prints the findings and returns the exit code.

use std::io::Write;

use crate::cli::LintCli;
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
    super::report::print(&found, &checked, args.format);
    findings::exit_code(&found, args.fail_on)
}
