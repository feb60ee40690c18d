//! Compressed input (`compression = "gzip" | "zstd"`, or `"auto"` by the file's extension): a
//! finished file decompressed as a stream. Positions are offsets in the decompressed bytes, so a
//! restart decompresses the file again from its start and skips to the committed position (a
//! compressed stream cannot be entered in the middle). Following a compressed file is refused:
//! a file still being written is not a complete stream.

use std::io::Read;
use std::path::Path;

use sluice_core::ConnectorError;

use crate::config::Compression;

/// A compression format of input files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    /// gzip (`.gz`), concatenated members read as one stream like `gzip -d` does.
    Gzip,
    /// Zstandard (`.zst`, `.zstd`), concatenated frames read as one stream.
    Zstd,
}

impl Codec {
    /// The codec `compression` names for `path`; `None`: not compressed.
    pub(crate) fn of(compression: Compression, path: &Path) -> Option<Self> {
        match compression {
            Compression::None => None,
            Compression::Gzip => Some(Self::Gzip),
            Compression::Zstd => Some(Self::Zstd),
            Compression::Auto => match path.extension().and_then(|e| e.to_str()) {
                Some("gz") => Some(Self::Gzip),
                Some("zst" | "zstd") => Some(Self::Zstd),
                _ => None,
            },
        }
    }

    /// Its name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    /// Refuse `follow` with a compressed input.
    pub(crate) fn check_follow(
        compression: Compression,
        path: &Path,
        follow: bool,
    ) -> Result<Option<Self>, ConnectorError> {
        let codec = Self::of(compression, path);
        match codec {
            Some(c) if follow => Err(ConnectorError::config(format!(
                "{} is read as {} (compression = {:?}): a compressed file can only be read once it is complete, so `follow = true` cannot be used with it (set `compression = \"none\"` if it is not compressed)",
                path.display(),
                c.name(),
                compression.as_str(),
            ))
            .at("follow")),
            _ => Ok(codec),
        }
    }
}

/// A decompressing reader over one file that can hand out the same bytes again: reads ask for
/// the bytes at a decompressed offset, and the bytes of a read whose result was dropped (a
/// cancelled `next_batch`) are kept until a later read asks past them.
pub(crate) struct Decompressed {
    stream: Box<dyn Read + Send>,
    /// Decompressed offset of `held[0]`.
    held_at: u64,
    /// Bytes decompressed but not yet asked past.
    held: Vec<u8>,
    ended: bool,
    /// A decoding error met after some bytes were decompressed: those are handed out first,
    /// then this error.
    failed: Option<std::io::Error>,
}

impl Decompressed {
    /// Start decompressing `file` from its first byte.
    pub(crate) fn new(codec: Codec, file: std::fs::File) -> std::io::Result<Self> {
        let reader = std::io::BufReader::new(file);
        let stream: Box<dyn Read + Send> = match codec {
            Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
            Codec::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        };
        Ok(Self {
            stream,
            held_at: 0,
            held: Vec::new(),
            ended: false,
            failed: None,
        })
    }

    /// Up to `len` bytes at decompressed offset `at` (fewer only at the end of the stream).
    /// Offsets never go back before the last one asked for.
    pub(crate) fn read_at(&mut self, at: u64, len: usize) -> std::io::Result<Vec<u8>> {
        if at < self.held_at {
            return Err(std::io::Error::other(format!(
                "decompressed byte {at} was asked for after byte {}",
                self.held_at
            )));
        }
        // Drop what is before `at`, decompressing (and dropping) up to it first when it is
        // further on (a resumed position).
        let mut buf = vec![0u8; 64 * 1024];
        while self.held_at + (self.held.len() as u64) < at && !self.ended {
            let n = self.fill(&mut buf)?;
            let skip = ((at - self.held_at) as usize).min(self.held.len());
            if n == 0 || skip == self.held.len() {
                self.held_at += self.held.len() as u64;
                self.held.clear();
            }
        }
        let skip = ((at - self.held_at) as usize).min(self.held.len());
        self.held.drain(..skip);
        self.held_at += skip as u64;
        while self.held.len() < len && !self.ended {
            if let Err(e) = self.fill(&mut buf) {
                if self.held.is_empty() {
                    return Err(e);
                }
                // Hand out what came before the damage; the next read fails.
                self.failed = Some(e);
                self.ended = true;
            }
        }
        if self.held.is_empty()
            && let Some(e) = self.failed.take()
        {
            return Err(e);
        }
        Ok(self.held[..len.min(self.held.len())].to_vec())
    }

    /// Decompress more into `held`; 0 at the end.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = loop {
            match self.stream.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.ended = true;
        }
        self.held.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn open(dir: &Path, name: &str, bytes: &[u8], codec: Codec) -> Decompressed {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        Decompressed::new(codec, std::fs::File::open(&path).unwrap()).unwrap()
    }

    #[test]
    fn reads_at_offsets_again_and_skips_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut twice = gzip(&data[..1000]);
        twice.extend(gzip(&data[1000..]));
        let zst = zstd::encode_all(&data[..], 1).unwrap();
        for (name, bytes, codec) in [("a.gz", twice, Codec::Gzip), ("a.zst", zst, Codec::Zstd)] {
            let mut d = open(dir.path(), name, &bytes, codec);
            assert_eq!(d.read_at(0, 10).unwrap(), &data[..10]);
            // A dropped read: the same offset again gives the same bytes.
            assert_eq!(d.read_at(0, 5000).unwrap(), &data[..5000]);
            assert_eq!(d.read_at(700_000, 100).unwrap(), &data[700_000..700_100]);
            assert_eq!(d.read_at(1_199_990, 100).unwrap(), &data[1_199_990..]);
            assert!(d.read_at(1_200_000, 100).unwrap().is_empty());
            assert!(d.read_at(5, 1).is_err(), "{name}: backwards");
        }
    }

    #[test]
    fn a_truncated_stream_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![b'x'; 100_000];
        let gz = gzip(&data);
        let mut d = open(dir.path(), "t.gz", &gz[..gz.len() / 2], Codec::Gzip);
        // What came before the damage, then the error.
        let before = d.read_at(0, 200_000).unwrap();
        assert!(!before.is_empty() && before.len() < data.len());
        assert!(d.read_at(before.len() as u64, 200_000).is_err());
    }

    #[test]
    fn auto_goes_by_the_extension_and_following_is_refused() {
        let p = |s: &str| Path::new(s).to_path_buf();
        assert_eq!(
            Codec::of(Compression::Auto, &p("a.jsonl.gz")),
            Some(Codec::Gzip)
        );
        assert_eq!(
            Codec::of(Compression::Auto, &p("a.csv.zst")),
            Some(Codec::Zstd)
        );
        assert_eq!(Codec::of(Compression::Auto, &p("a.jsonl")), None);
        assert_eq!(Codec::of(Compression::None, &p("a.gz")), None);
        assert_eq!(Codec::of(Compression::Zstd, &p("a")), Some(Codec::Zstd));
        let e = Codec::check_follow(Compression::Auto, &p("app.log.gz"), true).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("follow"));
        assert!(e.message.contains("`follow = true` cannot be used"), "{e}");
        assert!(Codec::check_follow(Compression::Auto, &p("app.log"), true).is_ok());
    }
}
