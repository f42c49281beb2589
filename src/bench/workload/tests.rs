//! Workload lengths and prompts.

use super::*;

#[test]
fn distributions_parse_and_refuse_nonsense() {
    assert_eq!(LengthDist::parse("128"), Ok(LengthDist::Fixed(128)));
    assert_eq!(LengthDist::parse("fixed:64"), Ok(LengthDist::Fixed(64)));
    assert_eq!(
        LengthDist::parse("uniform:50-500"),
        Ok(LengthDist::Uniform(50, 500))
    );
    assert_eq!(
        LengthDist::parse("normal:200,50"),
        Ok(LengthDist::Normal(200.0, 50.0))
    );
    assert_eq!(
        LengthDist::parse("lognormal:200,100"),
        Ok(LengthDist::LogNormal(200.0, 100.0))
    );
    for bad in [
        "0",
        "uniform:500-50",
        "normal:200",
        "lognormal:0,1",
        "zipf:1",
        "x",
    ] {
        assert!(LengthDist::parse(bad).is_err(), "{bad}");
    }
}

fn mean_sd(dist: &LengthDist) -> (f64, f64) {
    let mut rng = Rng::new(5, 1);
    let xs: Vec<f64> = (0..40_000)
        .map(|_| f64::from(dist.sample(&mut rng)))
        .collect();
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
    (mean, var.sqrt())
}

#[test]
fn samples_have_the_shape_asked_for() {
    let mut rng = Rng::new(1, 1);
    let uniform = LengthDist::Uniform(50, 60);
    let xs: Vec<u32> = (0..2_000).map(|_| uniform.sample(&mut rng)).collect();
    assert!(xs.iter().all(|x| (50..=60).contains(x)));
    assert!(xs.contains(&50) && xs.contains(&60));
    let (m, sd) = mean_sd(&LengthDist::Normal(200.0, 50.0));
    assert!(
        (m - 200.0).abs() < 2.0 && (sd - 50.0).abs() < 2.0,
        "{m} {sd}"
    );
    let (m, sd) = mean_sd(&LengthDist::LogNormal(200.0, 100.0));
    assert!(
        (m - 200.0).abs() < 4.0 && (sd - 100.0).abs() < 6.0,
        "{m} {sd}"
    );
    // A wide normal never draws below one token.
    let wide = LengthDist::Normal(1.0, 100.0);
    assert!((0..1_000).all(|_| wide.sample(&mut rng) >= 1));
}

#[test]
fn prompts_have_their_length_and_share_only_the_prefix() {
    let w = Workload {
        input: LengthDist::Fixed(100),
        output: LengthDist::Fixed(20),
        prefix_ratio: 0.5,
        sizing: crate::bench::sizing::Sizing::Words,
    };
    let mut rng = Rng::new(1, 1);
    let a = w.prompt(&mut rng, 7);
    let b = w.prompt(&mut rng, 8);
    assert_eq!((a.input_tokens, a.max_tokens), (100, 20));
    assert_eq!(a.text.len(), 400, "four characters per token");
    assert_eq!(a.text[..200], b.text[..200], "the shared half");
    assert_ne!(
        a.text[200..204],
        b.text[200..204],
        "unique right after the prefix"
    );
    let none = Workload {
        prefix_ratio: 0.0,
        ..w
    };
    let c = none.prompt(&mut rng, 1);
    let d = none.prompt(&mut rng, 2);
    assert_ne!(c.text[..4], d.text[..4]);
}
