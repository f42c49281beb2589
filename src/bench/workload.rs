//! What a benchmark sends: prompts of a chosen length in tokens (words of four characters,
//! sized to the server's tokens as `sizing` says), an optional shared prefix for prefix-cache
//! studies, and a requested output length; both lengths drawn from a distribution.

use crate::rng::Rng;

/// A distribution of token counts.
#[derive(Debug, Clone, PartialEq)]
pub enum LengthDist {
    /// Always `n`.
    Fixed(u32),
    /// Uniform between the bounds, inclusive.
    Uniform(u32, u32),
    /// Normal with a mean and a standard deviation, at least 1.
    Normal(f64, f64),
    /// Log-normal with the given mean and standard deviation of the lengths themselves.
    LogNormal(f64, f64),
}

impl LengthDist {
    /// Parses `fixed:128`, `uniform:50-500`, `normal:200,50` or `lognormal:200,100`; a bare
    /// number is fixed.
    pub fn parse(text: &str) -> Result<LengthDist, String> {
        let bad = || {
            format!(
                "invalid length distribution {text:?}: use N, fixed:N, uniform:MIN-MAX, normal:MEAN,SD or lognormal:MEAN,SD"
            )
        };
        let (kind, args) = text.split_once(':').unwrap_or(("fixed", text));
        let pair = |sep: char| -> Result<(f64, f64), String> {
            let (a, b) = args.split_once(sep).ok_or_else(bad)?;
            Ok((
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ))
        };
        let dist = match kind {
            "fixed" => LengthDist::Fixed(args.trim().parse().map_err(|_| bad())?),
            "uniform" => {
                let (a, b) = pair('-')?;
                if a < 1.0 || b < a {
                    return Err(bad());
                }
                LengthDist::Uniform(a as u32, b as u32)
            }
            "normal" => {
                let (m, sd) = pair(',')?;
                LengthDist::Normal(m, sd)
            }
            "lognormal" => {
                let (m, sd) = pair(',')?;
                if m <= 0.0 {
                    return Err(bad());
                }
                LengthDist::LogNormal(m, sd)
            }
            _ => return Err(bad()),
        };
        if dist == LengthDist::Fixed(0) {
            return Err(bad());
        }
        Ok(dist)
    }

    /// Draws one length (at least 1).
    pub fn sample(&self, rng: &mut Rng) -> u32 {
        let x = match *self {
            LengthDist::Fixed(n) => f64::from(n),
            LengthDist::Uniform(a, b) => {
                f64::from(a) + (rng.uniform() * f64::from(b - a + 1)).floor()
            }
            LengthDist::Normal(m, sd) => m + sd * rng.normal(),
            LengthDist::LogNormal(m, sd) => {
                // The underlying normal's parameters for the requested mean and deviation.
                let sigma2 = (1.0 + (sd / m).powi(2)).ln();
                let mu = m.ln() - sigma2 / 2.0;
                (mu + sigma2.sqrt() * rng.normal()).exp()
            }
        };
        x.round().clamp(1.0, f64::from(u32::MAX)) as u32
    }
}

/// How requests are built.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Prompt length in tokens.
    pub input: LengthDist,
    /// Requested output length (`max_tokens`, with `ignore_eos` so engines that honour it
    /// generate exactly that many).
    pub output: LengthDist,
    /// Share of each prompt that is the same across requests (0 to 1), at its start.
    pub prefix_ratio: f64,
    /// How asked token counts become text (words, calibrated, or a tokenizer).
    pub sizing: super::sizing::Sizing,
}

/// One request's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The text.
    pub text: String,
    /// Its intended length in tokens.
    pub input_tokens: u32,
    /// `max_tokens`.
    pub max_tokens: u32,
}

/// Words of four characters: one token each for a four-characters-per-token count.
pub(super) const WORDS: [&str; 16] = [
    "sea ", "sky ", "oak ", "ice ", "sun ", "fog ", "elm ", "bay ", "ray ", "dew ", "ash ", "fir ",
    "owl ", "yak ", "ant ", "eel ",
];

impl Workload {
    /// The `i`-th prompt: the shared prefix, then words unique to this request, sized by
    /// [`Workload::sizing`].
    pub fn prompt(&self, rng: &mut Rng, i: u64) -> Prompt {
        let input_tokens = self.input.sample(rng);
        let max_tokens = self.output.sample(rng);
        // The words' own draws, repeatable: sizing may ask for the same prompt at several
        // lengths.
        let seed = (rng.uniform() * f64::from(u32::MAX)) as u64;
        let text = self.sizing.text(input_tokens, |n| self.words(n, i, seed));
        Prompt {
            text,
            input_tokens,
            max_tokens,
        }
    }

    /// The first `n` words of request `i`'s prompt: the shared prefix (its share of `n`),
    /// the request number in words, then the words in turn from a start drawn from `seed`.
    fn words(&self, n: u32, i: u64, seed: u64) -> String {
        let mut rng = Rng::new(seed, i);
        let shared = (f64::from(n) * self.prefix_ratio.clamp(0.0, 1.0)).round() as u32;
        let mut text = String::with_capacity(n as usize * 4);
        for k in 0..shared {
            text.push_str(WORDS[k as usize % WORDS.len()]);
        }
        // The request number in words first, so prompts differ right after the prefix.
        let mut unique = n - shared.min(n);
        let mut number = i;
        while unique > 0 {
            text.push_str(WORDS[(number % WORDS.len() as u64) as usize]);
            number /= WORDS.len() as u64;
            unique -= 1;
            if number == 0 {
                break;
            }
        }
        // Then every word in turn from a random start: any 16 in a row hold each word once,
        // so a prompt's length in a real tokenizer's tokens varies little from request to
        // request, and calibration's tokens-per-word holds for each.
        let start = (rng.uniform() * WORDS.len() as f64) as usize;
        for k in 0..unique as usize {
            text.push_str(WORDS[(start + k) % WORDS.len()]);
        }
        text
    }
}

#[cfg(test)]
mod tests;
