//! Ed25519 keys (`ed25519-dalek`), PEM files (PKCS#8 private, SPKI public),
//! signed-note verifier keys (C2SP signed-note), and DSSE envelopes
//! (secure-systems-lab DSSE v1, pre-authentication encoding).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Errors of the signing module.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{what}: {reason}")]
    BadKey { what: String, reason: String },
    #[error("{what}: {reason}")]
    BadEnvelope { what: String, reason: String },
    #[error("signature: {0}")]
    BadSignature(String),
}

type Result<T> = std::result::Result<T, SignError>;

fn bad_key(what: &str, reason: impl ToString) -> SignError {
    SignError::BadKey {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// A signing key with the name used in signed notes.
#[derive(Clone)]
pub struct KeyPair {
    pub name: String,
    pub signing: SigningKey,
}

/// A public key, optionally with the signed-note key name.
#[derive(Clone, Debug)]
pub struct PublicKey {
    pub name: Option<String>,
    pub key: VerifyingKey,
}

/// Key names of signed notes: non-empty, no whitespace, no '+'.
pub fn check_key_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(bad_key(
            "key name",
            format!("{name:?} must be non-empty and contain no spaces or '+'"),
        ));
    }
    Ok(())
}

impl KeyPair {
    pub fn generate(name: &str) -> Result<Self> {
        check_key_name(name)?;
        let signing = SigningKey::generate(&mut rand_core::OsRng);
        Ok(KeyPair {
            name: name.to_string(),
            signing,
        })
    }

    /// PKCS#8 PEM of the private key; the name travels in a comment line
    /// before the PEM block (`# name: <name>`), which PEM parsers skip.
    pub fn to_pem(&self) -> Result<String> {
        let pem = self
            .signing
            .to_pkcs8_pem(Default::default())
            .map_err(|e| bad_key("private key", e))?;
        Ok(format!("# name: {}\n{}", self.name, pem.as_str()))
    }

    pub fn from_pem(text: &str, what: &str) -> Result<Self> {
        let name = header_name(text).unwrap_or_else(|| "maestro".to_string());
        check_key_name(&name)?;
        let signing = SigningKey::from_pkcs8_pem(strip_comments(text).trim())
            .map_err(|e| bad_key(what, format!("not an Ed25519 PKCS#8 PEM private key ({e})")))?;
        Ok(KeyPair { name, signing })
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: Some(self.name.clone()),
            key: self.signing.verifying_key(),
        }
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }
}

fn header_name(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("# name: ").map(|s| s.trim().to_string()))
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

impl PublicKey {
    /// SPKI PEM, preceded by the `# name:` comment when named.
    pub fn to_pem(&self) -> Result<String> {
        let pem = self
            .key
            .to_public_key_pem(Default::default())
            .map_err(|e| bad_key("public key", e))?;
        Ok(match &self.name {
            Some(n) => format!("# name: {n}\n{pem}"),
            None => pem,
        })
    }

    /// C2SP signed-note verifier key: `name+hex(keyid)+base64(0x01 ‖ key)`.
    pub fn to_vkey(&self) -> Result<String> {
        let name = self
            .name
            .as_deref()
            .ok_or_else(|| bad_key("public key", "a verifier key needs a key name"))?;
        let mut raw = vec![0x01u8];
        raw.extend_from_slice(self.key.as_bytes());
        Ok(format!(
            "{name}+{:08x}+{}",
            note_key_id(name, self.key.as_bytes()),
            B64.encode(raw)
        ))
    }

    /// Parse an SPKI PEM (optionally with `# name:`) or a signed-note vkey.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let t = text.trim();
        if t.contains("-----BEGIN") {
            let key = VerifyingKey::from_public_key_pem(strip_comments(t).trim())
                .map_err(|e| bad_key(what, format!("not an Ed25519 SPKI PEM public key ({e})")))?;
            let name = header_name(t);
            if let Some(n) = &name {
                check_key_name(n)?;
            }
            return Ok(PublicKey { name, key });
        }
        let parts: Vec<&str> = t.splitn(3, '+').collect();
        if parts.len() != 3 {
            return Err(bad_key(
                what,
                "expected a PEM public key or a verifier key name+keyid+base64",
            ));
        }
        check_key_name(parts[0])?;
        let raw = B64
            .decode(parts[2])
            .map_err(|e| bad_key(what, format!("verifier key base64: {e}")))?;
        if raw.len() != 33 || raw[0] != 0x01 {
            return Err(bad_key(
                what,
                "verifier key is not an Ed25519 (type 0x01) key",
            ));
        }
        let bytes: [u8; 32] = raw[1..]
            .try_into()
            .map_err(|_| bad_key(what, "verifier key length"))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|e| bad_key(what, e))?;
        let id = u32::from_str_radix(parts[1], 16)
            .map_err(|_| bad_key(what, "verifier key id is not 8 hex digits"))?;
        if parts[1].len() != 8 || id != note_key_id(parts[0], &bytes) {
            return Err(bad_key(what, "verifier key id does not match the key"));
        }
        Ok(PublicKey {
            name: Some(parts[0].to_string()),
            key,
        })
    }

    /// Lower-case hex SHA-256 of the SPKI DER, the DSSE `keyid`.
    pub fn key_id(&self) -> String {
        match self.key.to_public_key_der() {
            Ok(der) => hex::encode(Sha256::digest(der.as_bytes())),
            Err(_) => hex::encode(Sha256::digest(self.key.as_bytes())),
        }
    }

    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        let sig = Signature::from_slice(sig)
            .map_err(|_| SignError::BadSignature(format!("{} bytes, expected 64", sig.len())))?;
        self.key.verify(msg, &sig).map_err(|_| {
            SignError::BadSignature("does not verify with the given public key".into())
        })
    }
}

/// Signed-note key ID: first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ key).
pub fn note_key_id(name: &str, key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([0x01]);
    h.update(key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

/// A DSSE envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

impl Envelope {
    pub fn sign(payload_type: &str, payload: &[u8], key: &KeyPair) -> Self {
        let sig = key.sign(&pae(payload_type, payload));
        Envelope {
            payload_type: payload_type.to_string(),
            payload: B64.encode(payload),
            signatures: vec![EnvelopeSignature {
                keyid: key.public().key_id(),
                sig: B64.encode(sig),
            }],
        }
    }

    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| SignError::BadEnvelope {
            what: what.to_string(),
            reason: format!("not a DSSE envelope: {e}"),
        })
    }

    pub fn payload_bytes(&self) -> Result<Vec<u8>> {
        B64.decode(&self.payload)
            .map_err(|e| SignError::BadEnvelope {
                what: "payload".into(),
                reason: format!("base64: {e}"),
            })
    }

    /// Succeeds when a signature by `key` verifies over the PAE.
    pub fn verify(&self, key: &PublicKey) -> Result<Vec<u8>> {
        let payload = self.payload_bytes()?;
        if self.signatures.is_empty() {
            return Err(SignError::BadSignature("envelope has no signatures".into()));
        }
        let msg = pae(&self.payload_type, &payload);
        let mut last = String::new();
        for (i, s) in self.signatures.iter().enumerate() {
            let sig = match B64.decode(&s.sig) {
                Ok(sig) => sig,
                Err(e) => {
                    last = format!("signatures[{i}]: base64: {e}");
                    continue;
                }
            };
            match key.verify(&msg, &sig) {
                Ok(()) => return Ok(payload),
                Err(e) => last = format!("signatures[{i}]: {e}"),
            }
        }
        Err(SignError::BadSignature(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_roundtrip_and_dsse() {
        let k = KeyPair::generate("example.org/log").unwrap();
        let k2 = KeyPair::from_pem(&k.to_pem().unwrap(), "key").unwrap();
        assert_eq!(k2.name, "example.org/log");
        let p = PublicKey::parse(&k.public().to_pem().unwrap(), "pub").unwrap();
        let v = PublicKey::parse(&k.public().to_vkey().unwrap(), "vkey").unwrap();
        assert_eq!(p.key, v.key);
        let env = Envelope::sign("t", b"hello", &k2);
        assert_eq!(env.verify(&p).unwrap(), b"hello");
        let other = KeyPair::generate("x").unwrap().public();
        assert!(env.verify(&other).is_err());
        assert_eq!(pae("t", b"ab"), b"DSSEv1 1 t 2 ab");
    }
}
