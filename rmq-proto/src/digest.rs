//! Body digests as the clients check them on delivery.

use crate::v2::{Digest, DigestType};

/// The CRC32 (IEEE) of a body as eight uppercase hex digits, the form the clients
/// compare against.
pub fn crc32_hex(body: &[u8]) -> String {
    format!("{:08X}", crc32fast::hash(body))
}

/// The `body_digest` sundial sets on a delivered message.
pub fn body_digest(body: &[u8]) -> Digest {
    Digest {
        r#type: DigestType::Crc32 as i32,
        checksum: crc32_hex(body),
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
    fn body_digest_is_crc32() {
        let d = body_digest(b"hello sundial");
        assert_eq!(d.r#type(), DigestType::Crc32);
        assert_eq!(d.checksum, "6B01E00D");
    }
}
