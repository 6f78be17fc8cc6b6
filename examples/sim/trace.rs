//! Reading access traces: gzip or plain text, one key per line.
//!
//! A line that parses as a decimal `u64` is that key; any other non-empty
//! line is a string key, hashed with FNV-1a 64 over its UTF-8 bytes (as the
//! shared traces' README specifies), or every line is hashed with
//! `--strings`. Gzip is recognised by its magic bytes, not by the name.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One trace, loaded and interned.
pub struct Trace {
    /// File name without `.gz`, `.keys`, `.txt`, `.trace`.
    pub name: String,
    /// The keys in access order.
    pub keys: Vec<u64>,
    /// Dense ids (`0..distinct`) of the keys, in access order.
    pub ids: Vec<u32>,
    /// Number of distinct keys.
    pub distinct: usize,
}

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// Parses a decimal `u64` made of ASCII digits only.
fn parse_u64(line: &[u8]) -> Option<u64> {
    if line.is_empty() || line.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in line {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// The trace files named by `args`: files as given, directories expanded
/// to every trace file in them (sorted by name).
pub fn expand(args: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(arg)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_trace_name(p))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(arg.clone());
        }
    }
    Ok(out)
}

/// True for the file names a directory argument picks up.
fn is_trace_name(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let lower = name.to_ascii_lowercase();
    !lower.starts_with("readme")
        && !lower.starts_with("sha256sums")
        && [".gz", ".keys", ".txt", ".trace"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// The display name of a trace file.
fn trace_name(path: &Path) -> String {
    let mut name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("trace")
        .to_string();
    for ext in [".gz", ".keys", ".txt", ".trace"] {
        if let Some(stripped) = name.strip_suffix(ext) {
            name = stripped.to_string();
        }
    }
    name
}

/// Loads a trace; `strings` hashes every line instead of parsing numbers.
pub fn load(path: &Path, strings: bool) -> std::io::Result<Trace> {
    let raw = std::fs::read(path)?;
    let text = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)?;
        out
    } else {
        raw
    };
    let mut keys = Vec::with_capacity(text.len() / 8);
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let key = if strings {
            fnv1a(line)
        } else {
            parse_u64(line).unwrap_or_else(|| fnv1a(line))
        };
        keys.push(key);
    }
    let mut dense: HashMap<u64, u32> = HashMap::with_capacity(keys.len() / 4);
    let ids = keys
        .iter()
        .map(|&k| {
            let next = dense.len() as u32;
            *dense.entry(k).or_insert(next)
        })
        .collect();
    Ok(Trace {
        name: trace_name(path),
        distinct: dense.len(),
        keys,
        ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn numbers_and_strings() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"12a"), None);
        assert_eq!(trace_name(Path::new("/x/lirs-cs.keys.gz")), "lirs-cs");
    }
}
