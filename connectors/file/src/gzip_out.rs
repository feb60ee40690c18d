//! gzip output of the file sink: every write is one gzip member appended to the file. A gzip
//! file may hold any number of members (`gzip -dc` and every multi-member reader decode them as
//! one stream), so the file is valid after every write, and the byte length the exactly-once
//! sidecar records after a write is always a member boundary: cutting back to it (recovery)
//! leaves a valid file. At-least-once has no sidecar: a torn last member is found by decoding
//! the members in turn ([`complete_members`]).

use std::io::{BufRead, Read, Write};

/// `data` as one gzip member.
pub(crate) fn member(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::default(),
    );
    e.write_all(data)?;
    e.finish()
}

/// A `BufRead` that counts the bytes consumed from it.
struct Counting<R> {
    inner: R,
    consumed: u64,
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.consumed += amt as u64;
        self.inner.consume(amt);
    }
}

/// Reads `file` from byte 0 to `end` by position, leaving its cursor alone.
struct At<'a> {
    file: &'a std::fs::File,
    pos: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf.len().min((self.end - self.pos) as usize);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The length of the complete gzip members at the start of the first `size` bytes of `file`:
/// where a torn last member starts.
pub(crate) fn complete_members(file: &std::fs::File, size: u64) -> std::io::Result<u64> {
    let mut input = Counting {
        inner: std::io::BufReader::new(At {
            file,
            pos: 0,
            end: size,
        }),
        consumed: 0,
    };
    let mut good = 0;
    while good < size {
        let mut one = flate2::bufread::GzDecoder::new(&mut input);
        if std::io::copy(&mut one, &mut std::io::sink()).is_err() {
            break;
        }
        drop(one);
        if input.consumed <= good {
            break;
        }
        good = input.consumed;
    }
    Ok(good)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_concatenate_and_a_torn_one_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.gz");
        let mut bytes = member(b"a\nb\n").unwrap();
        let first = bytes.len() as u64;
        bytes.extend(member(&b"c\n".repeat(10_000)).unwrap());
        let second = bytes.len() as u64;
        let third = member(b"d\n").unwrap();
        bytes.extend(&third[..third.len() - 3]);
        std::fs::write(&path, &bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(complete_members(&file, bytes.len() as u64).unwrap(), second);
        assert_eq!(complete_members(&file, second).unwrap(), second);
        assert_eq!(complete_members(&file, second - 1).unwrap(), first);
        assert_eq!(complete_members(&file, 0).unwrap(), 0);
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..second as usize])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.len(), 4 + 20_000);
    }
}
