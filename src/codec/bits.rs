//! Bit-level reading shared by the codec header parsers: an MSB-first bit
//! reader with exp-Golomb codes, and NAL emulation-prevention removal.

/// NAL payload to RBSP: drops each emulation-prevention byte (the 3 in 00 00 03).
pub fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits MSB first; every read is `None` past the end.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, pos: 0 }
    }

    pub fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    pub fn flag(&mut self) -> Option<bool> {
        Some(self.bit()? == 1)
    }

    pub fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc, _| Some((acc << 1) | self.bit()?))
    }

    /// Unsigned exp-Golomb, ue(v); at most 32 leading zeros (values below 2^32).
    pub fn ue(&mut self) -> Option<u64> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 32 {
                return None;
            }
        }
        let rest = u64::from(self.bits(zeros)?);
        Some((1u64 << zeros) - 1 + rest)
    }

    /// Signed exp-Golomb, se(v).
    pub fn se(&mut self) -> Option<i64> {
        let k = i64::try_from(self.ue()?).ok()?;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

impl BitReader<'_> {
    /// Skips `n` bits; `None` when fewer remain.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.data.len() * 8).then(|| self.pos = end)
    }
}
