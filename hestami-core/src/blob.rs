//! Blobs (the bytes of photos, documents and signatures) and what may be attached where.
//!
//! A blob is named by the SHA-256 of its bytes, so uploading the same bytes twice is the same
//! upload, and a name can be checked against what arrived. Its type is decided from its first
//! bytes, never from a file name or a `Content-Type` a client chose: only the types on
//! [`MediaType`]'s allowlist are kept.

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// The largest blob accepted by default, in bytes (25 MiB: a phone's full-size photo or a
/// scanned multi-page document, with room to spare).
pub const DEFAULT_MAX_BYTES: u64 = 25 * 1024 * 1024;

/// The SHA-256 of a blob's bytes, as 64 lowercase hexadecimal digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256Hex(String);

impl Sha256Hex {
    /// Accepts 64 hexadecimal digits (either case; kept lowercase).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(Invalid::new(
                "invalid_sha256",
                "a blob is named by the SHA-256 of its bytes: 64 hexadecimal digits",
            ))
        }
    }

    /// The digest of `bytes` rendered as a name (the caller computes the digest).
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        use std::fmt::Write as _;
        let mut hex = String::with_capacity(64);
        for byte in digest {
            let _ = write!(hex, "{byte:02x}");
        }
        Self(hex)
    }

    /// The 64 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sha256Hex {
    type Error = Invalid;
    fn try_from(raw: String) -> Result<Self, Invalid> {
        Self::parse(&raw)
    }
}

impl From<Sha256Hex> for String {
    fn from(h: Sha256Hex) -> String {
        h.0
    }
}

impl std::fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The types a blob may have: the allowlist. Anything else is refused at upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaType {
    /// `image/jpeg`.
    #[serde(rename = "image/jpeg")]
    Jpeg,
    /// `image/png`.
    #[serde(rename = "image/png")]
    Png,
    /// `image/webp`.
    #[serde(rename = "image/webp")]
    Webp,
    /// `image/heic` (what iPhones take photos in).
    #[serde(rename = "image/heic")]
    Heic,
    /// `application/pdf`.
    #[serde(rename = "application/pdf")]
    Pdf,
}

impl MediaType {
    /// Every allowed type.
    pub const ALL: [MediaType; 5] = [Self::Jpeg, Self::Png, Self::Webp, Self::Heic, Self::Pdf];

    /// The MIME name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Heic => "image/heic",
            Self::Pdf => "application/pdf",
        }
    }

    /// Parses the MIME name (as stored).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == raw)
    }

    /// Whether it is a picture.
    pub fn is_image(self) -> bool {
        !matches!(self, Self::Pdf)
    }

    /// The type of `bytes`, from their signature (the "magic number" each format starts with),
    /// or `None` when it is not on the allowlist.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else if bytes.len() >= 12
            && &bytes[4..8] == b"ftyp"
            && matches!(
                &bytes[8..12],
                b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1"
            )
        {
            Some(Self::Heic)
        } else if bytes.starts_with(b"%PDF-") {
            Some(Self::Pdf)
        } else {
            None
        }
    }
}

/// What an attachment is, which decides the blob types it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// A photo taken on site (an image).
    Photo,
    /// A document (a PDF or a scanned image).
    Document,
    /// A customer's signature (an image), with the name they printed.
    Signature,
}

impl AttachmentKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Photo => "photo",
            Self::Document => "document",
            Self::Signature => "signature",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Photo, Self::Document, Self::Signature]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }

    /// Whether a blob of type `media` may be attached as this kind.
    pub fn accepts(self, media: MediaType) -> bool {
        match self {
            Self::Photo | Self::Signature => media.is_image(),
            Self::Document => true,
        }
    }
}

/// What an attachment is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachedTo {
    /// A job.
    Job,
    /// One visit of a job.
    Appointment,
    /// An estimate.
    Estimate,
    /// An invoice.
    Invoice,
}

impl AttachedTo {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Job => "job",
            Self::Appointment => "appointment",
            Self::Estimate => "estimate",
            Self::Invoice => "invoice",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Job, Self::Appointment, Self::Estimate, Self::Invoice]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_64_hex_digits_kept_lowercase() {
        let upper = "AB".repeat(32);
        assert_eq!(
            Sha256Hex::parse(&upper).map(|h| h.to_string()),
            Ok("ab".repeat(32))
        );
        for bad in ["", "ab", &"g".repeat(64), &"a".repeat(65)] {
            assert_eq!(
                Sha256Hex::parse(bad).map_err(|e| e.code),
                Err("invalid_sha256")
            );
        }
        assert_eq!(
            Sha256Hex::from_digest(&[0xAB; 32]).as_str(),
            "ab".repeat(32)
        );
    }

    #[test]
    fn types_come_from_the_bytes() {
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0";
        let webp = b"RIFF\x10\0\0\0WEBPVP8 ";
        let cases: [(&[u8], Option<MediaType>); 8] = [
            (b"\xFF\xD8\xFF\xE0\0\x10JFIF", Some(MediaType::Jpeg)),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Some(MediaType::Png)),
            (webp, Some(MediaType::Webp)),
            (heic, Some(MediaType::Heic)),
            (b"%PDF-1.7\n", Some(MediaType::Pdf)),
            (b"<html><script>", None),
            (b"MZ\x90\0", None),
            (b"", None),
        ];
        for (bytes, expected) in cases {
            assert_eq!(MediaType::sniff(bytes), expected, "{bytes:?}");
        }
    }

    #[test]
    fn kinds_accept_their_types() {
        assert!(AttachmentKind::Photo.accepts(MediaType::Heic));
        assert!(!AttachmentKind::Photo.accepts(MediaType::Pdf));
        assert!(!AttachmentKind::Signature.accepts(MediaType::Pdf));
        assert!(AttachmentKind::Document.accepts(MediaType::Pdf));
        for m in MediaType::ALL {
            assert_eq!(MediaType::parse(m.as_str()), Some(m));
        }
    }

    proptest! {
        /// A text file (what a renamed script or page would be) is never taken for an allowed
        /// type, whatever it claims to be.
        #[test]
        fn text_is_never_an_allowed_type(text in "[ -~\\n]{0,64}") {
            prop_assume!(!text.starts_with("%PDF-"));
            prop_assume!(!(text.starts_with("RIFF") && text.get(8..12) == Some("WEBP")));
            prop_assume!(text.get(4..8) != Some("ftyp"));
            prop_assert_eq!(MediaType::sniff(text.as_bytes()), None);
        }
    }
}
