//! The configuration file: defaults, the shipped sample, and errors that name the place.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("llmwatch.toml"), text)
}

#[test]
fn an_empty_file_is_the_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.listen, "127.0.0.1:9464");
    assert_eq!(config.scrape.interval, Duration::from_secs(5));
    assert_eq!(config.history.retention, Duration::from_secs(3600));
}

#[test]
fn the_sample_config_loads_and_says_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let config = Config::load(&path).unwrap();
    let defaults = Config::default();
    assert_eq!(config.listen, defaults.listen);
    assert_eq!(config.scrape, defaults.scrape);
    assert_eq!(config.history, defaults.history);
    assert_eq!(config.file_sd_refresh, defaults.file_sd_refresh);
    assert_eq!(config.targets.len(), 2);
    assert_eq!(config.targets[0].labels["service"], "chat");
    assert_eq!(config.targets[1].interval, Some(Duration::from_secs(10)));
    assert_eq!(config.targets[1].bearer_token.as_deref(), Some("llama-key"));
}

#[test]
fn an_unknown_field_is_reported_with_line_column_and_name() {
    let err = parse("listen = \"127.0.0.1:1\"\n[scrape]\nintervall = \"5s\"\n").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("llmwatch.toml:3:1: "), "{text}");
    assert!(text.contains("intervall"), "{text}");
}

#[test]
fn a_bad_duration_names_its_field_and_line() {
    let err = parse("[scrape]\ntimeout = \"5 parsecs\"\n").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("llmwatch.toml:2:"), "{text}");
    assert!(text.contains("invalid duration"), "{text}");
}

#[test]
fn a_reserved_label_or_bad_url_names_the_target() {
    let err = parse("[[target]]\nurl = \"http://a:1\"\n[[target]]\nurl = \"http://b:1\"\nlabels = { engine = \"x\" }\n")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "llmwatch.toml: target[1]: label \"engine\": llmwatch sets this label itself"
    );
    let err = parse("[[target]]\nurl = \"ftp://a\"\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("target[0]: \"ftp://a\" is not an http"),
        "{err}"
    );
}

#[test]
fn a_bad_listen_address_is_refused() {
    let err = parse("listen = \"localhost\"\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("listen: \"localhost\" is not an address"),
        "{err}"
    );
}

#[test]
fn line_and_column_count_from_one() {
    assert_eq!(line_column("ab\ncd", 0), (1, 1));
    assert_eq!(line_column("ab\ncd", 4), (2, 2));
}
