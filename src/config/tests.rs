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
    assert_eq!(config.targets.len(), 3);
    assert_eq!(config.targets[0].labels["service"], "chat");
    assert_eq!(
        config.targets[0].gpus,
        ["GPU-8f0b0c1e-4a5d-4b7e-9c1d-2e3f4a5b6c7d"]
    );
    assert_eq!(config.targets[2].name.as_deref(), Some("dcgm-node-7"));
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

#[test]
fn the_samples_proxy_section_uncommented_says_the_proxys_defaults() {
    let config = parse(&uncommented_sample_section("# [proxy]")).unwrap();
    let proxy = config.proxy.expect("a [proxy] section");
    assert_eq!(proxy.idle_timeout, Some(Duration::from_secs(60)));
    let options = crate::up::proxy_options(&proxy);
    let defaults = crate::proxy::ProxyOptions::default();
    assert_eq!(options.connect_timeout, defaults.connect_timeout);
    assert_eq!(options.first_byte_timeout, defaults.first_byte_timeout);
    assert_eq!(options.idle_timeout, defaults.idle_timeout);
    assert_eq!(options.total_timeout, defaults.total_timeout);
    assert_eq!(options.max_body_bytes, defaults.max_body_bytes);
    assert_eq!(options.inject_usage, defaults.inject_usage);
    assert_eq!(options.max_models, defaults.max_models);
}

#[test]
fn proxy_limits_from_the_command_line_replace_the_files() {
    let config = parse(
        "[proxy]\nupstream = [\"http://a:1\"]\nidle_timeout = \"2s\"\ntotal_timeout = \"9s\"\n",
    )
    .unwrap();
    let mut proxy = config.proxy.unwrap();
    proxy.apply(ProxyTimeouts {
        idle: Some(Duration::from_millis(500)),
        ..ProxyTimeouts::default()
    });
    let options = crate::up::proxy_options(&proxy);
    assert_eq!(options.idle_timeout, Duration::from_millis(500));
    assert_eq!(options.total_timeout, Duration::from_secs(9));
    assert_eq!(options.connect_timeout, Duration::from_secs(5));
}

#[test]
fn the_samples_otlp_section_uncommented_configures_the_export() {
    let mut config = parse(&uncommented_sample_section("# [otlp]")).unwrap();
    // The sample's CA file is an example path: one that is not there is refused, named.
    let ca = config.otlp.certificate.take();
    assert_eq!(ca.as_deref(), Some(Path::new("/etc/llmwatch/otlp-ca.pem")));
    let with_missing_ca = crate::config::OtlpTomlConfig {
        certificate: ca,
        ..config.otlp.clone()
    };
    let refused = with_missing_ca.settings("llmwatch-up").resolve(|_| None);
    assert!(refused.is_err_and(|e| e.to_string().contains("/etc/llmwatch/otlp-ca.pem")));
    let otlp = config
        .otlp
        .settings("llmwatch-up")
        .resolve(|_| None)
        .unwrap()
        .expect("an endpoint");
    assert_eq!(otlp.metrics_url, "http://127.0.0.1:4318/v1/metrics");
    assert_eq!(otlp.interval, Duration::from_secs(60));
    assert_eq!(otlp.temporality, crate::otlp::Temporality::Cumulative);
    // Left out, it exports nothing.
    assert_eq!(
        Config::default()
            .otlp
            .settings("x")
            .resolve(|_| None)
            .unwrap(),
        None
    );
}

/// The sample's commented-out section from the line `header` to the next blank line, with
/// its settings (lines of the form `# key = value`) uncommented.
fn uncommented_sample_section(header: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let sample = std::fs::read_to_string(path).unwrap();
    sample
        .lines()
        .skip_while(|l| *l != header)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with('[') || l.contains(" = "))
        .map(|l| format!("{l}\n"))
        .collect()
}
