//! Count-min frequency sketch with 4-bit counters and periodic halving.
//!
//! Four rows of `width` counters (a power of two), sixteen counters packed in
//! each `u64` word, so the sketch costs `width / 2` bytes per row, 2 bytes
//! per counter column in total. Increments use the conservative update (only
//! the counters at the current minimum grow), which keeps the estimate of
//! cold keys low even when hot keys share their counters. Counters saturate at
//! 15. After `10 * width` increments every counter is halved, so frequencies
//! describe the recent past and a formerly hot key fades.

/// Number of rows (independent hash functions).
const DEPTH: usize = 4;
/// Counters per `u64` word.
const PER_WORD: usize = 16;
/// Largest value a 4-bit counter holds.
pub(super) const MAX_COUNT: u64 = 15;
/// Increments between two halvings, per counter column.
const SAMPLE_FACTOR: u64 = 10;
/// Per-row seeds of the index hash (odd, unrelated constants).
const SEEDS: [u64; DEPTH] = [
    0xc3a5_c85c_97cb_3127,
    0xb492_b66f_be98_f273,
    0x9ae1_6a3b_2f90_404f,
    0xcbf2_9ce4_8422_2325,
];
/// Magic and version of the persisted form.
const MAGIC: &[u8; 8] = b"CDNTLFU1";

#[derive(Debug, Clone)]
pub(super) struct Sketch {
    /// `DEPTH` rows of `width / PER_WORD` words each, row after row.
    words: Vec<u64>,
    /// Counters per row, a power of two `>= PER_WORD`.
    width: usize,
    /// Increments since the last halving.
    additions: u64,
    /// Increments that trigger a halving.
    sample: u64,
}

impl Sketch {
    /// A sketch for about `expected_items` distinct keys.
    pub(super) fn new(expected_items: usize) -> Self {
        let width = expected_items.max(PER_WORD).next_power_of_two();
        Sketch {
            words: vec![0; DEPTH * width / PER_WORD],
            width,
            additions: 0,
            sample: SAMPLE_FACTOR * width as u64,
        }
    }

    /// Heap bytes used by the counters.
    pub(super) fn memory_bytes(&self) -> usize {
        self.words.len() * std::mem::size_of::<u64>()
    }

    /// (word index, bit shift) of the counter of `hash` in `row`.
    #[inline]
    fn slot(&self, hash: u64, row: usize) -> (usize, u32) {
        let mut h = (hash ^ SEEDS[row]).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 31;
        let column = (h as usize) & (self.width - 1);
        let words_per_row = self.width / PER_WORD;
        let word = row * words_per_row + column / PER_WORD;
        let shift = ((column % PER_WORD) * 4) as u32;
        (word, shift)
    }

    #[inline]
    fn read(&self, (word, shift): (usize, u32)) -> u64 {
        (self.words[word] >> shift) & 0xf
    }

    /// Estimated frequency of `hash`: the smallest of its counters.
    pub(super) fn frequency(&self, hash: u64) -> u8 {
        (0..DEPTH)
            .map(|row| self.read(self.slot(hash, row)))
            .min()
            .unwrap_or(0) as u8
    }

    /// Record one occurrence of `hash`, halving every counter when the
    /// sample period is over.
    pub(super) fn increment(&mut self, hash: u64) {
        let slots: [(usize, u32); DEPTH] = std::array::from_fn(|row| self.slot(hash, row));
        let min = slots.iter().map(|&s| self.read(s)).min().unwrap_or(0);
        if min < MAX_COUNT {
            for &(word, shift) in &slots {
                if (self.words[word] >> shift) & 0xf == min {
                    self.words[word] += 1 << shift;
                }
            }
        }
        self.additions += 1;
        if self.additions >= self.sample {
            self.age();
        }
    }

    /// Halve every counter.
    fn age(&mut self) {
        for word in &mut self.words {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions = 0;
    }

    /// The persisted form: magic, width, additions, the words (all
    /// little-endian), then an FNV-1a checksum of everything before it.
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * (4 + self.words.len()));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.width as u64).to_le_bytes());
        out.extend_from_slice(&self.additions.to_le_bytes());
        for word in &self.words {
            out.extend_from_slice(&word.to_le_bytes());
        }
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Replace the counters with a persisted sketch of the same width.
    pub(super) fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        let expected_len = 8 * (4 + self.words.len());
        if bytes.len() < 32 || &bytes[..8] != MAGIC {
            return Err("not a frequency sketch file".into());
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let width = u64_at(8);
        if width != self.width as u64 {
            return Err(format!(
                "sketch width {width} does not match the configured {}",
                self.width
            ));
        }
        if bytes.len() != expected_len {
            return Err(format!(
                "sketch file is {} bytes, expected {expected_len}",
                bytes.len()
            ));
        }
        let body = &bytes[..expected_len - 8];
        if fnv1a(body) != u64_at(expected_len - 8) {
            return Err("sketch file checksum mismatch".into());
        }
        self.additions = u64_at(16).min(self.sample - 1);
        for (i, word) in self.words.iter_mut().enumerate() {
            *word = u64_at(24 + 8 * i);
        }
        Ok(())
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_and_halve() {
        let mut s = Sketch::new(1024);
        for _ in 0..20 {
            s.increment(42);
        }
        assert_eq!(s.frequency(42), 15);
        assert_eq!(s.frequency(43), 0);
        s.age();
        assert_eq!(s.frequency(42), 7);
    }

    #[test]
    fn ages_after_the_sample_period() {
        let mut s = Sketch::new(16);
        for _ in 0..15 {
            s.increment(7);
        }
        // 160 increments in all end the period; 7 has been halved since.
        for k in 1000..1145u64 {
            s.increment(k);
        }
        assert!(s.frequency(7) <= 7, "got {}", s.frequency(7));
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let mut s = Sketch::new(256);
        for k in 0..100u64 {
            for _ in 0..(k % 7) {
                s.increment(k);
            }
        }
        let bytes = s.to_bytes();
        let mut t = Sketch::new(256);
        t.restore(&bytes).unwrap();
        for k in 0..100u64 {
            assert_eq!(s.frequency(k), t.frequency(k));
        }
        let mut damaged = bytes.clone();
        damaged[40] ^= 1;
        assert!(t.restore(&damaged).is_err());
        assert!(t.restore(&bytes[..bytes.len() - 1]).is_err());
        assert!(Sketch::new(4096).restore(&bytes).is_err());
    }
}
