//! Secrets at rest: AES-256-GCM in the `v1:<nonce>:<ciphertext>` format.
//!
//! `<nonce>` is the 12-byte nonce and `<ciphertext>` the ciphertext with its 16-byte tag
//! appended, both standard base64 with padding. A wrong key and a malformed value are
//! different errors; neither panics.

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;

/// A 32-byte AES key, parsed from 64 hex characters. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key as 64 lower-case hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(***)")
    }
}

/// Why a key could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 64 characters long.
    #[error("must be 64 hexadecimal characters (32 bytes), got {0} characters; generate one with `openssl rand -hex 32`")]
    Length(usize),
    /// Holds a character that is not hex.
    #[error("must be 64 hexadecimal characters (0-9, a-f); it holds other characters")]
    NotHex,
}

impl FromStr for EncryptionKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.chars().count() != 64 {
            return Err(KeyError::Length(s.chars().count()));
        }
        let bytes = hex::decode(s).map_err(|_| KeyError::NotHex)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(Self(key))
    }
}

/// Why a value could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The value is not in the `v1:<nonce>:<ciphertext>` format.
    #[error("malformed encrypted value: {0}")]
    Malformed(&'static str),
    /// The format is right but authentication failed.
    #[error("cannot decrypt: the ENCRYPTION_KEY is not the one this value was encrypted with, or the value was altered")]
    WrongKeyOrTampered,
    /// Decrypted bytes are not UTF-8 text.
    #[error("decrypted value is not UTF-8 text")]
    NotText,
}

/// Encrypts and decrypts secrets with one key.
#[derive(Clone)]
pub struct Crypto {
    cipher: Aes256Gcm,
}

impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Crypto(***)")
    }
}

/// The prefix of every encrypted value of the current format.
pub const PREFIX: &str = "v1:";

impl Crypto {
    /// A cipher for `key`.
    pub fn new(key: &EncryptionKey) -> Self {
        Self {
            cipher: Aes256Gcm::new_from_slice(&key.0).expect("32-byte key"),
        }
    }

    /// Encrypts `plaintext` with a random nonce.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        self.encrypt_with_nonce(plaintext, nonce)
    }

    /// Encrypts with a given nonce. Only for reproducible sample data: never reuse a nonce.
    pub fn encrypt_with_nonce(&self, plaintext: &str, nonce: [u8; 12]) -> String {
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        format!("{PREFIX}{}:{}", B64.encode(nonce), B64.encode(ct))
    }

    /// Decrypts a `v1:<nonce>:<ciphertext>` value.
    pub fn decrypt(&self, value: &str) -> Result<String, DecryptError> {
        let rest = value
            .strip_prefix(PREFIX)
            .ok_or(DecryptError::Malformed("it does not start with \"v1:\""))?;
        let (nonce_b64, ct_b64) = rest
            .split_once(':')
            .ok_or(DecryptError::Malformed("expected v1:<nonce>:<ciphertext>"))?;
        let nonce = B64
            .decode(nonce_b64)
            .map_err(|_| DecryptError::Malformed("the nonce is not base64"))?;
        if nonce.len() != 12 {
            return Err(DecryptError::Malformed("the nonce is not 12 bytes"));
        }
        let ct = B64
            .decode(ct_b64)
            .map_err(|_| DecryptError::Malformed("the ciphertext is not base64"))?;
        if ct.len() < 16 {
            return Err(DecryptError::Malformed(
                "the ciphertext is shorter than its 16-byte tag",
            ));
        }
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(&nonce), ct.as_ref())
            .map_err(|_| DecryptError::WrongKeyOrTampered)?;
        String::from_utf8(plain).map_err(|_| DecryptError::NotText)
    }
}
