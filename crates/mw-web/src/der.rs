//! Just enough DER to read the subject common name of an X.509 certificate that rustls has
//! already verified (a full X.509 parser would add a dozen crates for one field). Every read is
//! bounds-checked: any input gives `Some` or `None`, never a panic (tested on every truncation of
//! a real certificate).

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const EXPLICIT_0: u8 = 0xa0;
/// 2.5.4.3, id-at-commonName.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// One tag-length-value: `(tag, content, rest)`.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The content of a TLV with the expected tag, and what follows it.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, content, rest) = tlv(input)?;
    (t == tag).then_some((content, rest))
}

/// The first common name of the certificate's subject, when it is a UTF-8, printable or IA5
/// string.
pub(crate) fn subject_common_name(cert: &[u8]) -> Option<String> {
    let (certificate, _) = expect(cert, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if let Some((EXPLICIT_0, _, after)) = tlv(rest) {
        rest = after; // version
    }
    // serialNumber, signature, issuer, validity, then subject
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (mut rdns, _) = expect(rest, SEQUENCE)?;
    while !rdns.is_empty() {
        let (mut set, after) = expect(rdns, SET)?;
        rdns = after;
        while !set.is_empty() {
            let (attr, after) = expect(set, SEQUENCE)?;
            set = after;
            let (oid, value) = expect(attr, OID)?;
            if oid == COMMON_NAME {
                let (tag, text, _) = tlv(value)?;
                // UTF8String, PrintableString, IA5String
                return match tag {
                    0x0c | 0x13 | 0x16 => std::str::from_utf8(text).ok().map(str::to_owned),
                    _ => None,
                };
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_the_subject_common_name() {
        assert_eq!(
            subject_common_name(&cert(Some("operator-7"))).as_deref(),
            Some("operator-7")
        );
        assert_eq!(
            subject_common_name(&cert(Some("Zoë"))).as_deref(),
            Some("Zoë")
        );
        assert_eq!(subject_common_name(&cert(None)), None);
    }

    #[test]
    fn never_panics_on_truncated_or_corrupted_input() {
        let der = cert(Some("operator-7"));
        for n in 0..der.len() {
            let _ = subject_common_name(&der[..n]);
        }
        for i in 0..der.len() {
            let mut bad = der.clone();
            bad[i] ^= 0xff;
            let _ = subject_common_name(&bad);
        }
        assert_eq!(
            subject_common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(subject_common_name(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
    }
}
