//! The `v1:<nonce>:<ciphertext>` format: round trip, wrong key, tampering, malformed values.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use heimdall_host::crypto::{Crypto, DecryptError, EncryptionKey, KeyError};

use crate::helpers::{test_key, OTHER_KEY};

#[test]
fn round_trip_in_the_documented_format() {
    let c = Crypto::new(&test_key());
    let secret = "rcon-pässwörd 🔑";
    let v = c.encrypt(secret);
    let parts: Vec<&str> = v.split(':').collect();
    assert_eq!(parts[0], "v1");
    assert_eq!(B64.decode(parts[1]).unwrap().len(), 12, "12-byte nonce");
    assert_eq!(
        B64.decode(parts[2]).unwrap().len(),
        secret.len() + 16,
        "ciphertext + 16-byte tag"
    );
    assert_eq!(c.decrypt(&v).unwrap(), secret);
    assert_ne!(c.encrypt(secret), v, "a fresh nonce each time");
}

#[test]
fn a_wrong_key_is_reported_as_such() {
    let v = Crypto::new(&test_key()).encrypt("token");
    let other = Crypto::new(&OTHER_KEY.parse::<EncryptionKey>().unwrap());
    let err = other.decrypt(&v).unwrap_err();
    assert_eq!(err, DecryptError::WrongKeyOrTampered);
    assert!(err.to_string().contains("ENCRYPTION_KEY"));
}

#[test]
fn tampered_ciphertext_is_refused() {
    let c = Crypto::new(&test_key());
    let v = c.encrypt("token");
    let (head, ct) = v.rsplit_once(':').unwrap();
    let mut bytes = B64.decode(ct).unwrap();
    bytes[0] ^= 1;
    let tampered = format!("{head}:{}", B64.encode(bytes));
    assert_eq!(
        c.decrypt(&tampered).unwrap_err(),
        DecryptError::WrongKeyOrTampered
    );
}

#[test]
fn malformed_values_say_what_is_wrong() {
    let c = Crypto::new(&test_key());
    for (value, needle) in [
        ("plaintext", "v1:"),
        ("v1:abc", "v1:<nonce>:<ciphertext>"),
        ("v1:!!!:AAAA", "nonce is not base64"),
        ("v1:AAAA:AAAAAAAAAAAAAAAAAAAAAAAA", "not 12 bytes"),
        ("v1:AAAAAAAAAAAAAAAA:AAAA", "shorter than"),
    ] {
        match c.decrypt(value) {
            Err(e @ DecryptError::Malformed(_)) => {
                assert!(e.to_string().contains(needle), "{value}: {e}")
            }
            other => panic!("{value}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn keys_must_be_64_hex_characters() {
    assert_eq!(
        "abc".parse::<EncryptionKey>().unwrap_err(),
        KeyError::Length(3)
    );
    let not_hex = "z".repeat(64);
    assert_eq!(
        not_hex.parse::<EncryptionKey>().unwrap_err(),
        KeyError::NotHex
    );
    assert!(!format!("{:?}", test_key()).contains("0001020304"));
}
