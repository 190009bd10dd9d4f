//! SHA-1, from one of two implementations chosen at build time: the `sha1` crate (the
//! default `fast-sha1` feature; it uses the CPU's SHA instructions when it has them, found
//! at run time, about 3.5× sha1_smol here) or sha1_smol (`--no-default-features`, the
//! smallest dependency tree). Everything in btmini hashes through this module.

/// An incremental SHA-1.
#[derive(Clone, Default)]
pub struct Sha1(
    #[cfg(feature = "fast-sha1")] sha1::Sha1,
    #[cfg(not(feature = "fast-sha1"))] sha1_smol::Sha1,
);

impl Sha1 {
    /// A fresh hash.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        #[cfg(feature = "fast-sha1")]
        sha1::Digest::update(&mut self.0, data);
        #[cfg(not(feature = "fast-sha1"))]
        self.0.update(data);
    }

    /// The digest of everything added.
    pub fn digest(self) -> [u8; 20] {
        #[cfg(feature = "fast-sha1")]
        return sha1::Digest::finalize(self.0).into();
        #[cfg(not(feature = "fast-sha1"))]
        return self.0.digest().bytes();
    }
}

/// The SHA-1 of `data`.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(data);
    h.digest()
}

/// Which implementation this build uses, for `--version` and the benchmarks.
pub const IMPLEMENTATION: &str = if cfg!(feature = "fast-sha1") {
    "sha1 (SHA-NI when the CPU has it)"
} else {
    "sha1_smol"
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // FIPS 180 examples.
        assert_eq!(
            crate::util::hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let mut h = Sha1::new();
        for _ in 0..1000 {
            h.update(&[b'a'; 1000]);
        }
        assert_eq!(
            crate::util::hex(&h.digest()),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }
}
