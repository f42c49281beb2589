//! Targets from arguments, tables and file_sd files.

use super::*;

fn scrape() -> ScrapeConfig {
    ScrapeConfig::default()
}

#[test]
fn an_argument_names_a_url_a_name_and_labels() {
    let t = Target::from_arg(
        "http://10.0.0.5:8000,name=vllm-a,service=chat,env=prod",
        &scrape(),
    )
    .unwrap();
    assert_eq!(t.url, "http://10.0.0.5:8000/metrics");
    assert_eq!(t.name, "vllm-a");
    assert_eq!(t.labels.len(), 2);
    assert_eq!(t.labels["service"], "chat");
    assert_eq!(t.interval, scrape().interval);
    let bare = Target::from_arg("http://host:3000/metrics", &scrape()).unwrap();
    assert_eq!(bare.name, "host:3000");
    assert_eq!(bare.url, "http://host:3000/metrics");
}

#[test]
fn bad_arguments_say_what_is_wrong() {
    let s = scrape();
    assert_eq!(
        Target::from_arg("localhost:8000", &s).unwrap_err(),
        TargetError::Url {
            url: "localhost:8000".into()
        }
    );
    let err = Target::from_arg("http://user:hunter2@a:1", &s)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no credentials in the URL") && !err.contains("hunter2"),
        "{err}"
    );
    assert!(matches!(
        Target::from_arg("http://a:1,oops", &s),
        Err(TargetError::Option { .. })
    ));
    for label in ["engine", "model", "instance", "__meta", "1x", "a-b"] {
        assert!(
            matches!(
                Target::from_arg(&format!("http://a:1,{label}=v"), &s),
                Err(TargetError::Label { .. })
            ),
            "{label}"
        );
    }
}

#[test]
fn two_targets_with_one_name_are_refused() {
    let s = scrape();
    let a = Target::from_arg("http://a:1", &s).unwrap();
    let b = Target::from_arg("http://b:1,name=a:1", &s).unwrap();
    assert_eq!(
        check_unique(&[a.clone(), b]),
        Err(TargetError::Duplicate { name: "a:1".into() })
    );
    assert_eq!(check_unique(&[a]), Ok(()));
}

#[test]
fn file_sd_groups_become_targets_without_meta_labels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("targets.json");
    std::fs::write(
        &path,
        r#"[{"targets": ["127.0.0.1:8000", "https://gpu-2:8443/metrics"], "labels": {"service": "chat", "__meta_x": "y"}},
            {"targets": ["127.0.0.1:3000"]}]"#,
    )
    .unwrap();
    let targets = read_file_sd(&path, &scrape()).unwrap();
    let urls: Vec<&str> = targets.iter().map(|t| t.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1:8000/metrics",
            "https://gpu-2:8443/metrics",
            "http://127.0.0.1:3000/metrics"
        ]
    );
    assert_eq!(targets[0].labels.keys().collect::<Vec<_>>(), ["service"]);
    assert!(targets[2].labels.is_empty());
    std::fs::write(&path, "{not json").unwrap();
    let err = read_file_sd(&path, &scrape()).unwrap_err().to_string();
    assert!(err.contains("targets.json: not file_sd JSON"), "{err}");
}
