//! C2SP `tlog-checkpoint` bodies inside C2SP `signed-note` envelopes.
//!
//! ```text
//! <origin>\n
//! <tree size, decimal>\n
//! <root hash, base64>\n
//! \n
//! — <key name> <base64(key id[4] ‖ Ed25519 signature[64])>\n
//! ```
//! The signature covers the note text (the first three lines, newline
//! included). The origin must equal the signing key's name.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::hash::Digest;
use crate::sign::{check_key_name, note_key_id, KeyPair, PublicKey};

/// Errors of checkpoint parsing and verification.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    #[error("checkpoint line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("checkpoint signature: {0}")]
    Signature(String),
}

type Result<T> = std::result::Result<T, NoteError>;

const DASH: &str = "\u{2014} ";

/// A parsed (not yet trusted) checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Digest,
    /// Extension lines after the root, kept verbatim.
    pub extensions: Vec<String>,
}

fn bad(line: usize, reason: impl Into<String>) -> NoteError {
    NoteError::Malformed {
        line,
        reason: reason.into(),
    }
}

impl Checkpoint {
    /// The note text that is signed.
    pub fn body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Sign as a note with `key`; the origin must be the key's name.
    pub fn sign(&self, key: &KeyPair) -> Result<String> {
        if key.name != self.origin {
            return Err(NoteError::Signature(format!(
                "key name {:?} differs from origin {:?}",
                key.name, self.origin
            )));
        }
        let body = self.body();
        let mut blob = note_key_id(&key.name, key.signing.verifying_key().as_bytes())
            .to_be_bytes()
            .to_vec();
        blob.extend_from_slice(&key.sign(body.as_bytes()));
        Ok(format!("{body}\n{DASH}{} {}\n", key.name, B64.encode(blob)))
    }

    /// Parse a signed checkpoint and verify its signature by `key`.
    /// A key without a name (plain PEM) takes the checkpoint origin as name.
    pub fn verify(text: &str, key: &PublicKey) -> Result<Checkpoint> {
        let (body, sigs) = text
            .split_once("\n\n")
            .ok_or_else(|| bad(0, "no blank line between the note text and its signatures"))?;
        let body = format!("{body}\n");
        let cp = Self::parse_body(&body)?;
        let name = key.name.clone().unwrap_or_else(|| cp.origin.clone());
        if name != cp.origin {
            return Err(bad(
                1,
                format!(
                    "origin {:?} does not match the log key name {name:?}",
                    cp.origin
                ),
            ));
        }
        let want_id = note_key_id(&name, key.key.as_bytes());
        let body_lines = body.lines().count();
        let mut found_any = false;
        for (i, line) in sigs.lines().enumerate() {
            let lineno = body_lines + 2 + i;
            if line.is_empty() {
                continue;
            }
            let rest = line.strip_prefix(DASH).ok_or_else(|| {
                bad(
                    lineno,
                    "signature line must start with an em dash and a space",
                )
            })?;
            let (sname, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad(lineno, "signature line needs a key name and a signature"))?;
            let blob = B64
                .decode(b64)
                .map_err(|e| bad(lineno, format!("signature base64: {e}")))?;
            if blob.len() < 5 {
                return Err(bad(lineno, "signature is too short"));
            }
            found_any = true;
            let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
            if sname != name || id != want_id {
                continue; // a signature by another key (witness, mirror)
            }
            return key
                .verify(body.as_bytes(), &blob[4..])
                .map(|_| cp)
                .map_err(|e| NoteError::Signature(e.to_string()));
        }
        Err(NoteError::Signature(if found_any {
            format!("no signature by key {name:?} on this checkpoint")
        } else {
            "the checkpoint carries no signature".into()
        }))
    }

    /// Parse the note text (unsigned).
    pub fn parse_body(body: &str) -> Result<Checkpoint> {
        if body.chars().any(|c| c.is_control() && c != '\n') {
            return Err(bad(0, "control characters are not allowed in a note"));
        }
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .unwrap_or(body)
            .split('\n')
            .collect();
        if lines.len() < 3 {
            return Err(bad(
                lines.len() + 1,
                "a checkpoint needs origin, size and root lines",
            ));
        }
        let origin = lines[0];
        if origin.is_empty() {
            return Err(bad(1, "origin line is empty"));
        }
        if origin.trim() != origin || origin.contains(char::is_whitespace) {
            return Err(bad(1, format!("origin {origin:?} contains white space")));
        }
        check_key_name(origin).map_err(|e| bad(1, e.to_string()))?;
        let size_s = lines[1];
        if size_s.is_empty()
            || !size_s.bytes().all(|b| b.is_ascii_digit())
            || (size_s.len() > 1 && size_s.starts_with('0'))
        {
            return Err(bad(
                2,
                format!("tree size {size_s:?} is not a decimal number"),
            ));
        }
        let size: u64 = size_s
            .parse()
            .map_err(|_| bad(2, format!("tree size {size_s:?} is out of range")))?;
        let root_v = B64
            .decode(lines[2])
            .map_err(|e| bad(3, format!("root hash base64: {e}")))?;
        let root: Digest = root_v.as_slice().try_into().map_err(|_| {
            bad(
                3,
                format!("root hash has {} bytes, expected 32", root_v.len()),
            )
        })?;
        let extensions: Vec<String> = lines[3..].iter().map(|s| s.to_string()).collect();
        if let Some(i) = extensions.iter().position(|e| e.is_empty()) {
            return Err(bad(4 + i, "empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_tamper() {
        let k = KeyPair::generate("example.com/log").unwrap();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 7,
            root: [3u8; 32],
            extensions: vec![],
        };
        let note = cp.sign(&k).unwrap();
        assert!(note.starts_with("example.com/log\n7\n"));
        assert_eq!(Checkpoint::verify(&note, &k.public()).unwrap(), cp);
        let tampered = note.replacen("\n7\n", "\n8\n", 1);
        assert!(Checkpoint::verify(&tampered, &k.public()).is_err());
        let bad_origin = note.replacen("example.com/log\n", " example.com/log\n", 1);
        assert!(matches!(
            Checkpoint::verify(&bad_origin, &k.public()),
            Err(NoteError::Malformed { line: 1, .. })
        ));
    }
}
