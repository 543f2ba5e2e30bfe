//! API tokens: 32 random bytes the operator hands a client once. The server keeps only
//! their SHA-256 (a token has full entropy, so a plain hash is as strong as a slow one).

use anyhow::{anyhow, Result};
use sha2::{Digest, Sha256};

const PREFIX: &str = "hlr_";

/// A fresh token, as printed to the operator.
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no OS randomness: {e}"))?;
    Ok(format!("{PREFIX}{}", hex(&bytes)))
}

/// The stored form of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// The token of an `authorization: Bearer …` header value, if it has that shape.
pub fn from_bearer(header: &str) -> Option<&str> {
    let token = header.strip_prefix("Bearer ")?.trim();
    (token.starts_with(PREFIX) && token.len() == PREFIX.len() + 64).then_some(token)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses `2·len` hex digits.
pub fn unhex<const LEN: usize>(text: &str) -> Option<[u8; LEN]> {
    let text = text.trim();
    if text.len() != 2 * LEN || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; LEN];
    for (k, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * k..2 * k + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_and_parse_back() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(from_bearer(&format!("Bearer {a}")), Some(a.as_str()));
        assert_eq!(from_bearer(&a), None, "the scheme is required");
        assert_eq!(
            from_bearer("Bearer hlr_00"),
            None,
            "a short token is refused"
        );
        assert_ne!(hash(&a), hash(&b));
        let raw: [u8; 32] = unhex(&a[PREFIX.len()..]).unwrap();
        assert_eq!(hex(&raw), a[PREFIX.len()..]);
        assert_eq!(unhex::<2>("zz00"), None);
    }
}
