//! The clients' request signature: the `authorization` header
//! `MQv2-HMAC-SHA1 Credential=<ak>, SignedHeaders=x-mq-date-time, Signature=<hex>`,
//! where the signature is the hex HMAC-SHA1, keyed with the secret, of the value of the
//! `x-mq-date-time` header. Python writes the hex in lowercase and Node in uppercase, so
//! it is compared without regard to case, and in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// The metadata key of the signature.
pub const AUTHORIZATION: &str = "authorization";
/// The metadata key of the signed value.
pub const DATE_TIME: &str = "x-mq-date-time";
/// The only algorithm the clients use.
pub const ALGORITHM: &str = "MQv2-HMAC-SHA1";

/// Why a request's credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The header does not have the clients' shape.
    #[error("malformed authorization header: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than MQv2-HMAC-SHA1.
    #[error("unsupported signature algorithm")]
    Algorithm,
    /// The header signs headers other than exactly x-mq-date-time.
    #[error("unsupported signed headers")]
    SignedHeaders,
    /// The access key is not the one configured.
    #[error("unknown access key")]
    AccessKey,
    /// The signature does not match the secret and the date-time.
    #[error("signature mismatch")]
    Signature,
}

/// A parsed `authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// The access key the client presents.
    pub access_key: &'a str,
    /// The signature as sent: hex, in either case.
    pub signature: &'a str,
}

/// Parses an `authorization` header value. Whitespace around the parts is tolerated;
/// the parts may come in any order after the algorithm, and each must appear once.
pub fn parse(header: &str) -> Result<Authorization<'_>, AuthError> {
    let header = header.trim();
    let (algorithm, rest) = header
        .split_once(char::is_whitespace)
        .ok_or(AuthError::Malformed("no credentials after the algorithm"))?;
    if algorithm != ALGORITHM {
        return Err(AuthError::Algorithm);
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(AuthError::Malformed("a part without '='"))?;
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(AuthError::Malformed("an unknown part")),
        };
        if slot.replace(value.trim()).is_some() {
            return Err(AuthError::Malformed("a part given twice"));
        }
    }
    let access_key = credential.ok_or(AuthError::Malformed("no Credential"))?;
    let signed = signed.ok_or(AuthError::Malformed("no SignedHeaders"))?;
    let signature = signature.ok_or(AuthError::Malformed("no Signature"))?;
    if !signed.eq_ignore_ascii_case(DATE_TIME) {
        return Err(AuthError::SignedHeaders);
    }
    Ok(Authorization {
        access_key,
        signature,
    })
}

/// The signature a client with `secret` sends for `date_time`, in lowercase hex.
pub fn sign(secret: &[u8], date_time: &str) -> String {
    hex::encode(mac(secret, date_time).finalize().into_bytes())
}

fn mac(secret: &[u8], date_time: &str) -> Hmac<Sha1> {
    // HMAC takes a key of any length, so this never fails; the fallback only keeps the
    // function total.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret)
        .unwrap_or_else(|_| Hmac::<Sha1>::new(&Default::default()));
    mac.update(date_time.as_bytes());
    mac
}

/// Checks a request's `authorization` header against the configured access key and
/// secret and the request's `x-mq-date-time` value. The access key is compared exactly;
/// the signature's hex in either case, in constant time.
pub fn verify(
    header: &str,
    date_time: &str,
    access_key: &str,
    secret: &[u8],
) -> Result<(), AuthError> {
    let auth = parse(header)?;
    if auth.access_key != access_key {
        return Err(AuthError::AccessKey);
    }
    // Decoding the hex makes the comparison case-blind; the MAC's own check is
    // constant-time over the bytes.
    let sent = hex::decode(auth.signature).map_err(|_| AuthError::Signature)?;
    mac(secret, date_time)
        .verify_slice(&sent)
        .map_err(|_| AuthError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "20260801T120000Z";
    // hmac.new(b"sundial-secret", b"20260801T120000Z", hashlib.sha1).hexdigest()
    const SIGNED: &str = "3d963a606cd561a8dd23e7f5800df9bf44ad6b86";
    // The same with an empty secret, as the Python client signs without credentials.
    const SIGNED_EMPTY: &str = "94f9abf32a338431f3e68244afdbc98a7d5ace99";

    fn header(ak: &str, sig: &str) -> String {
        format!("MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders=x-mq-date-time, Signature={sig}")
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        assert_eq!(sign(b"sundial-secret", DATE), SIGNED);
        assert_eq!(sign(b"", DATE), SIGNED_EMPTY);
    }

    #[test]
    fn parses_the_clients_header() {
        let h = header("ak1", SIGNED);
        assert_eq!(
            parse(&h),
            Ok(Authorization {
                access_key: "ak1",
                signature: SIGNED
            })
        );
        // Node leaves the credential empty only when none is set; an empty key parses.
        assert_eq!(parse(&header("", SIGNED)).map(|a| a.access_key), Ok(""));
    }

    #[test]
    fn verifies_lowercase_and_uppercase_hex() {
        let secret = b"sundial-secret";
        assert_eq!(verify(&header("ak1", SIGNED), DATE, "ak1", secret), Ok(()));
        let upper = SIGNED.to_ascii_uppercase();
        assert_eq!(verify(&header("ak1", &upper), DATE, "ak1", secret), Ok(()));
    }

    #[test]
    fn refuses_what_does_not_match() {
        let secret = b"sundial-secret";
        let h = header("ak1", SIGNED);
        assert_eq!(verify(&h, DATE, "ak2", secret), Err(AuthError::AccessKey));
        assert_eq!(
            verify(&h, "20260801T120001Z", "ak1", secret),
            Err(AuthError::Signature)
        );
        assert_eq!(verify(&h, DATE, "ak1", b"other"), Err(AuthError::Signature));
        let short = header("ak1", &SIGNED[..38]);
        assert_eq!(
            verify(&short, DATE, "ak1", secret),
            Err(AuthError::Signature)
        );
        let not_hex = header("ak1", "zz963a606cd561a8dd23e7f5800df9bf44ad6b86");
        assert_eq!(
            verify(&not_hex, DATE, "ak1", secret),
            Err(AuthError::Signature)
        );
    }

    #[test]
    fn refuses_malformed_headers() {
        assert_eq!(
            parse(&header("a", "b").replace("MQv2-HMAC-SHA1", "MQv2-HMAC-SHA256")),
            Err(AuthError::Algorithm)
        );
        assert_eq!(
            parse("MQv2-HMAC-SHA1 Credential=a, SignedHeaders=host, Signature=00"),
            Err(AuthError::SignedHeaders)
        );
        for bad in [
            "",
            "MQv2-HMAC-SHA1",
            "MQv2-HMAC-SHA1 Credential=a, Signature=00",
            "MQv2-HMAC-SHA1 Credential=a, SignedHeaders=x-mq-date-time",
            "MQv2-HMAC-SHA1 Credential=a SignedHeaders=x-mq-date-time Signature=00",
            "MQv2-HMAC-SHA1 Credential=a, Credential=b, SignedHeaders=x-mq-date-time, Signature=00",
            "MQv2-HMAC-SHA1 Credential=a, SignedHeaders=x-mq-date-time, Signature=00, Extra=1",
        ] {
            assert!(
                matches!(parse(bad), Err(AuthError::Malformed(_))),
                "{bad:?}: {:?}",
                parse(bad)
            );
        }
    }
}
