//! Seeded random numbers for the simulator and the load generator: xorshift64*. Small, fast
//! and reproducible, which is all fault draws, arrival times and lengths need; not for
//! anything secret. And FNV-1a, the stable hash the same code (and alert fingerprints) derive
//! numbers from text with.

/// FNV-1a over `bytes`: a stable 64-bit hash, cheap to compute (not for anything secret).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A seeded generator of uniform numbers in [0, 1).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for `seed`; `stream` separates generators that share a seed.
    pub fn new(seed: u64, stream: u64) -> Rng {
        Rng {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream | 1,
        }
    }

    /// The next number in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let x = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = (1.0 - self.uniform()).max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
