//! PutRecordBatch's limits, and the cut of a write into calls that respect them.

/// Most records in one PutRecordBatch call.
pub const MAX_RECORDS: usize = 500;
/// Most bytes (all records' data) in one call.
pub const MAX_CALL_BYTES: usize = 4 << 20;
/// Most bytes of one record (before base64 encoding).
pub const MAX_RECORD_BYTES: usize = 1_000 * 1024;

/// Cut records of sizes `sizes` (in order) into calls: ranges of indices with at most
/// [`MAX_RECORDS`] records and [`MAX_CALL_BYTES`] bytes each. Every size must be at most
/// [`MAX_RECORD_BYTES`] (larger ones are rejected before).
pub fn calls(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_RECORDS || bytes + size > MAX_CALL_BYTES) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_respect_count_and_bytes() {
        let c = calls(&vec![10; 1001]);
        assert_eq!(c, vec![0..500, 500..1000, 1000..1001]);
        let big = MAX_RECORD_BYTES;
        let c = calls(&[big, big, big, big, big, 1]);
        // 4 MiB = 4194304 bytes holds four 1,000 KiB records (4096000 bytes) and the small one.
        assert_eq!(c, vec![0..4, 4..6]);
        assert!(calls(&[]).is_empty());
        for r in calls(&vec![300_000; 40]) {
            assert!(r.len() * 300_000 <= MAX_CALL_BYTES);
        }
    }
}
