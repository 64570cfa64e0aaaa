//! Body digests as the clients check them on delivery.

use crate::v2::{Digest, DigestType};

/// The CRC32 (IEEE) of a body as eight uppercase hex digits, the form the clients
/// compare against.
pub fn crc32_hex(body: &[u8]) -> String {
    format!("{:08X}", crc32fast::hash(body))
}

/// How a client writes the CRC32 it compares a delivered body's digest with. The
/// official clients disagree, and each compares the text exactly: Python formats eight
/// uppercase hex digits, Node the decimal value, Java uppercase hex without leading
/// zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumForm {
    /// `%08X` (the Python client).
    PaddedHex,
    /// The decimal number (the Node client).
    Decimal,
    /// Uppercase hex without leading zeros (the Java client, and the default).
    Hex,
}

impl ChecksumForm {
    /// The form the client that sent `x-mq-language: <language>` expects. The Node
    /// client sends `HTTP`.
    pub fn for_language(language: &str) -> ChecksumForm {
        match language.to_ascii_uppercase().as_str() {
            "PYTHON" => ChecksumForm::PaddedHex,
            "HTTP" | "NODE_JS" | "NODEJS" => ChecksumForm::Decimal,
            _ => ChecksumForm::Hex,
        }
    }
}

/// The `body_digest` sundial sets on a delivered message, in the client's form.
pub fn body_digest(body: &[u8], form: ChecksumForm) -> Digest {
    let crc = crc32fast::hash(body);
    Digest {
        r#type: DigestType::Crc32 as i32,
        checksum: match form {
            ChecksumForm::PaddedHex => format!("{crc:08X}"),
            ChecksumForm::Decimal => crc.to_string(),
            ChecksumForm::Hex => format!("{crc:X}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_uppercase_and_zero_padded() {
        // Expected values from zlib.crc32, formatted with "%08X".
        assert_eq!(crc32_hex(b"hello sundial"), "6B01E00D");
        assert_eq!(crc32_hex(b""), "00000000");
        // The standard CRC-32 check value.
        assert_eq!(crc32_hex(b"123456789"), "CBF43926");
    }

    #[test]
    fn body_digest_is_crc32_in_each_clients_form() {
        let d = body_digest(b"hello sundial", ChecksumForm::PaddedHex);
        assert_eq!(d.r#type(), DigestType::Crc32);
        assert_eq!(d.checksum, "6B01E00D");
        // zlib.crc32(b"body-0") = 0x060BB6A6 = 101430950: a leading zero digit.
        let form = |f| body_digest(b"body-0", f).checksum;
        assert_eq!(form(ChecksumForm::PaddedHex), "060BB6A6");
        assert_eq!(form(ChecksumForm::Hex), "60BB6A6");
        assert_eq!(form(ChecksumForm::Decimal), "101430950");
        assert_eq!(
            ChecksumForm::for_language("PYTHON"),
            ChecksumForm::PaddedHex
        );
        assert_eq!(ChecksumForm::for_language("HTTP"), ChecksumForm::Decimal);
        assert_eq!(ChecksumForm::for_language("JAVA"), ChecksumForm::Hex);
        assert_eq!(ChecksumForm::for_language(""), ChecksumForm::Hex);
    }
}
