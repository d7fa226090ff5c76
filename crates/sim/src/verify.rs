//! The verification half of request signing, as the API gateway does it: parse the
//! `Authorization` header and compare signatures without leaking timing. The signature itself is
//! recomputed with the cloud crate's signer (`changeorder_cloud::sign`), so the canonical forms
//! the simulator checks are the very ones the clients send.

use changeorder_cloud::sign::V3_ALGORITHM;

/// A parsed V3 `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Authorization {
    pub access_key_id: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parse `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`. `None` when the header
/// is not V3 or a part is missing (the gateway answers `IncompleteSignature`).
pub fn parse_v3_authorization(value: &str) -> Option<V3Authorization> {
    let rest = value.trim().strip_prefix(V3_ALGORITHM)?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let (mut id, mut names, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "Credential" => id = Some(v.trim().to_string()),
            "SignedHeaders" => {
                names = Some(
                    v.split(';')
                        .map(|n| n.trim().to_ascii_lowercase())
                        .filter(|n| !n.is_empty())
                        .collect::<Vec<_>>(),
                )
            }
            "Signature" => sig = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let (access_key_id, signed_headers, signature) = (id?, names?, sig?);
    if access_key_id.is_empty() || signature.is_empty() {
        return None;
    }
    Some(V3Authorization {
        access_key_id,
        signed_headers,
        signature,
    })
}

/// Parse `acs <id>:<signature>` into `(id, signature)`.
pub fn parse_roa_authorization(value: &str) -> Option<(String, String)> {
    let rest = value.trim().strip_prefix("acs ")?;
    let (id, sig) = rest.trim().rsplit_once(':')?;
    if id.is_empty() || sig.is_empty() {
        return None;
    }
    Some((id.to_string(), sig.to_string()))
}

/// Compare two strings without an early exit, so a server does not leak how much of a
/// signature matched.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
