//! AWS Signature Version 4 verification for incoming requests: rebuild the canonical request
//! and string to sign from what arrived, derive the signing key from the configured secret
//! and compare in constant time. The key derivation and the final HMAC are aws-sigv4's (the
//! SDK's own signer), so both ends share one implementation of the key chain; our copy of
//! the signing key is wiped when verification ends (it signs for the whole day of its
//! scope). aws-sigv4 does not wipe its intermediate keys (kDate, kRegion, kService).

use std::time::SystemTime;

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Longest accepted difference between the request's X-Amz-Date and the server clock (AWS
/// KMS allows the same 5 minutes).
pub const MAX_SKEW_SECONDS: i64 = 5 * 60;

/// The one access key pair `parity kms` accepts, and the region signatures must be scoped
/// to (the endpoint's `--region`, as AWS checks the scope against the endpoint's region).
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    secret_access_key: zeroize::Zeroizing<String>,
    pub region: String,
}

impl Credentials {
    pub fn new(access_key_id: String, secret_access_key: String, region: String) -> Credentials {
        Credentials {
            access_key_id,
            secret_access_key: zeroize::Zeroizing::new(secret_access_key),
            region,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("region", &self.region)
            .finish()
    }
}

/// Whether the request's Authorization header lists `name` among its signed headers (the
/// operation in X-Amz-Target must be covered by the signature, or it could be swapped).
pub fn signs_header(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_authorization(v).ok())
        .is_some_and(|a| a.signed_headers.contains(&name))
}

impl AuthError {
    /// The error code AWS KMS answers with.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "MissingAuthenticationTokenException",
            AuthError::Malformed(_) | AuthError::BadDate => "IncompleteSignatureException",
            AuthError::UnknownAccessKey => "UnrecognizedClientException",
            AuthError::WrongService
            | AuthError::WrongRegion(_)
            | AuthError::ScopeDate
            | AuthError::Expired
            | AuthError::SignatureMismatch => "InvalidSignatureException",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("request is not signed (no Authorization header)")]
    Missing,
    #[error("Authorization header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the access key id is not recognised")]
    UnknownAccessKey,
    #[error("Credential should be scoped to correct service: 'kms'")]
    WrongService,
    /// Carries the endpoint's region (not the request's, which is untrusted input).
    #[error("Credential should be scoped to a valid region: this endpoint is {0}")]
    WrongRegion(String),
    #[error("X-Amz-Date is missing or not YYYYMMDD'T'HHMMSS'Z'")]
    BadDate,
    #[error("Date in Credential scope does not match YYYYMMDD from X-Amz-Date")]
    ScopeDate,
    #[error("Signature expired: the request time is more than 5 minutes from the server clock")]
    Expired,
    #[error("the request signature does not match (wrong secret access key or altered request)")]
    SignatureMismatch,
}

struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or(AuthError::Malformed("algorithm must be AWS4-HMAC-SHA256"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or(AuthError::Malformed("no Credential"))?;
    let mut scope = credential.split('/');
    let (Some(akid), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(AuthError::Malformed(
            "Credential is not AKID/date/region/service/aws4_request",
        ));
    };
    let signed_headers: Vec<&str> = signed
        .ok_or(AuthError::Malformed("no SignedHeaders"))?
        .split(';')
        .collect();
    if !signed_headers.contains(&"host") {
        return Err(AuthError::Malformed("host must be a signed header"));
    }
    Ok(Authorization {
        access_key_id: akid,
        date,
        region,
        service,
        signed_headers,
        signature: signature.ok_or(AuthError::Malformed("no Signature"))?,
    })
}

/// kSigning for the UTC day of `time`, copied into a buffer that is wiped when dropped.
fn signing_key(
    secret: &str,
    time: SystemTime,
    region: &str,
    service: &str,
) -> zeroize::Zeroizing<[u8; 32]> {
    let derived = generate_signing_key(secret, time, region, service);
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    out.copy_from_slice(derived.as_ref());
    out
}

fn canonical_header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(values.join(","))
    }
}

fn canonical_query(query: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks that the request was signed with `creds` for the kms service within the allowed
/// skew of `now`.
pub fn verify(
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    creds: &Credentials,
    now: jiff::Timestamp,
) -> Result<(), AuthError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?;
    let header = header
        .to_str()
        .map_err(|_| AuthError::Malformed("not ASCII"))?;
    let auth = parse_authorization(header)?;
    if !bool::from(
        auth.access_key_id
            .as_bytes()
            .ct_eq(creds.access_key_id.as_bytes()),
    ) {
        return Err(AuthError::UnknownAccessKey);
    }
    if auth.service != "kms" {
        return Err(AuthError::WrongService);
    }
    if auth.region != creds.region {
        return Err(AuthError::WrongRegion(creds.region.clone()));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::BadDate)?;
    let when = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", amz_date)
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .ok_or(AuthError::BadDate)?
        .timestamp();
    // The scope's date is the request's UTC day, exactly (strptime above made amz_date
    // ASCII, so the 8-byte slice is on a character boundary).
    if amz_date.get(..8) != Some(auth.date) {
        return Err(AuthError::ScopeDate);
    }
    if (now.as_second() - when.as_second()).abs() > MAX_SKEW_SECONDS {
        return Err(AuthError::Expired);
    }

    let payload_hash = hex::encode(Sha256::digest(body));
    let mut canonical = String::with_capacity(512);
    canonical.push_str(method);
    canonical.push('\n');
    canonical.push_str(if path.is_empty() { "/" } else { path });
    canonical.push('\n');
    canonical.push_str(&canonical_query(query));
    canonical.push('\n');
    for name in &auth.signed_headers {
        let value = canonical_header_value(headers, name).ok_or(AuthError::SignatureMismatch)?;
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&value);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&auth.signed_headers.join(";"));
    canonical.push('\n');
    canonical.push_str(&payload_hash);

    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    // The scope's date was checked against X-Amz-Date above, so the day of `when` is it.
    let k_signing = signing_key(
        &creds.secret_access_key,
        SystemTime::from(when),
        auth.region,
        auth.service,
    );
    let expected = calculate_signature(*k_signing, string_to_sign.as_bytes());
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// The "get-vanilla" case of the AWS SigV4 test suite (service "service", secret
    /// wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY), adapted to the kms service name by
    /// recomputing the expected signature with the published algorithm steps.
    #[test]
    fn verifies_aws_test_suite_request_and_rejects_changes() {
        let creds = Credentials::new(
            "AKIDEXAMPLE".into(),
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            "us-east-1".into(),
        );
        let now: jiff::Timestamp = "2015-08-30T12:36:00Z".parse().unwrap();
        // Published AWS example (sigv4 test suite, get-vanilla) for service "service".
        let mut h = HeaderMap::new();
        h.insert("host", "example.amazonaws.com".parse().unwrap());
        h.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                .parse()
                .unwrap(),
        );
        // The service must be kms, so check the published signature through the same
        // arithmetic with the service check relaxed: compute by hand here.
        assert_eq!(
            verify("GET", "/", None, &h, b"", &creds, now),
            Err(AuthError::WrongService)
        );
        let sig = sign_for_test(
            "GET",
            "/",
            &h,
            b"",
            &creds,
            "20150830T123600Z",
            "us-east-1",
            "service",
        );
        assert_eq!(
            sig,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// Test-side signer written from the spec steps, reused to check that verify() agrees.
    #[allow(clippy::too_many_arguments)]
    fn sign_for_test(
        method: &str,
        path: &str,
        h: &HeaderMap,
        body: &[u8],
        creds: &Credentials,
        amz_date: &str,
        region: &str,
        service: &str,
    ) -> String {
        let canonical = format!(
            "{method}\n{path}\n\nhost:{}\nx-amz-date:{amz_date}\n\nhost;x-amz-date\n{}",
            h.get("host").unwrap().to_str().unwrap(),
            hex::encode(Sha256::digest(body))
        );
        let date = &amz_date[..8];
        let sts = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let k = hmac(
            format!("AWS4{}", creds.secret_access_key.as_str()).as_bytes(),
            date.as_bytes(),
        );
        let k = hmac(&k, region.as_bytes());
        let k = hmac(&k, service.as_bytes());
        let k = hmac(&k, b"aws4_request");
        hex::encode(hmac(&k, sts.as_bytes()))
    }

    #[test]
    fn kms_request_verifies_and_wrong_secret_or_body_does_not() {
        let creds = Credentials::new("AKIDEXAMPLE".into(), "secret".into(), "eu-west-1".into());
        let now: jiff::Timestamp = "2015-08-30T12:36:00Z".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8080".parse().unwrap());
        h.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let sig = sign_for_test(
            "POST",
            "/",
            &h,
            b"{}",
            &creds,
            "20150830T123600Z",
            "eu-west-1",
            "kms",
        );
        h.insert(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}")
                .parse()
                .unwrap(),
        );
        assert_eq!(verify("POST", "/", None, &h, b"{}", &creds, now), Ok(()));
        assert_eq!(
            verify("POST", "/", None, &h, b"{ }", &creds, now),
            Err(AuthError::SignatureMismatch)
        );
        let other = Credentials::new("AKIDEXAMPLE".into(), "other".into(), "eu-west-1".into());
        assert_eq!(
            verify("POST", "/", None, &h, b"{}", &other, now),
            Err(AuthError::SignatureMismatch)
        );
        let other = Credentials::new("AKIDOTHER".into(), "secret".into(), "eu-west-1".into());
        assert_eq!(
            verify("POST", "/", None, &h, b"{}", &other, now),
            Err(AuthError::UnknownAccessKey)
        );
        // AWS's five-minute window, both ways.
        for off in [-6, 6] {
            let t = now + jiff::SignedDuration::from_mins(off);
            assert_eq!(
                verify("POST", "/", None, &h, b"{}", &creds, t),
                Err(AuthError::Expired)
            );
        }
        let within = now + jiff::SignedDuration::from_mins(4);
        assert_eq!(verify("POST", "/", None, &h, b"{}", &creds, within), Ok(()));
        h.remove("authorization");
        assert_eq!(
            verify("POST", "/", None, &h, b"{}", &creds, now),
            Err(AuthError::Missing)
        );
    }

    /// A header signed over `host;x-amz-date` for `scope_date`/`region`/kms at `amz_date`.
    fn signed_headers(
        creds: &Credentials,
        amz_date: &str,
        scope_date: &str,
        region: &str,
    ) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8080".parse().unwrap());
        h.insert("x-amz-date", amz_date.parse().unwrap());
        // sign_for_test takes the scope date from amz_date; sign with the scope's own date
        // by passing a request time on that day, then put the real X-Amz-Date back.
        let sign_date = format!("{scope_date}{}", &amz_date[8..]);
        h.insert("x-amz-date", sign_date.parse().unwrap());
        let sig = sign_for_test("POST", "/", &h, b"{}", creds, &sign_date, region, "kms");
        h.insert("x-amz-date", amz_date.parse().unwrap());
        h.insert(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope_date}/{region}/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}")
                .parse()
                .unwrap(),
        );
        h
    }

    #[test]
    fn the_scope_must_name_the_endpoints_region_and_the_requests_day() {
        let creds = Credentials::new("AKIDEXAMPLE".into(), "secret".into(), "eu-west-1".into());
        let now: jiff::Timestamp = "2015-08-30T23:59:00Z".parse().unwrap();
        let ok = signed_headers(&creds, "20150830T235900Z", "20150830", "eu-west-1");
        assert_eq!(verify("POST", "/", None, &ok, b"{}", &creds, now), Ok(()));

        // Correctly signed for another region: AWS refuses it, and so do we.
        let other_region = signed_headers(&creds, "20150830T235900Z", "20150830", "us-east-1");
        let err = verify("POST", "/", None, &other_region, b"{}", &creds, now).unwrap_err();
        assert_eq!(err, AuthError::WrongRegion("eu-west-1".into()));
        assert_eq!(err.code(), "InvalidSignatureException");
        assert!(err.to_string().contains("eu-west-1"), "{err}");

        // A scope dated the next day (a key derived for tomorrow) with today's X-Amz-Date.
        let other_day = signed_headers(&creds, "20150830T235900Z", "20150831", "eu-west-1");
        let err = verify("POST", "/", None, &other_day, b"{}", &creds, now).unwrap_err();
        assert_eq!(err, AuthError::ScopeDate);
        assert_eq!(err.code(), "InvalidSignatureException");

        // No usable request time at all: the signature is incomplete.
        let mut no_date = ok.clone();
        no_date.insert("x-amz-date", "yesterday".parse().unwrap());
        let err = verify("POST", "/", None, &no_date, b"{}", &creds, now).unwrap_err();
        assert_eq!(err, AuthError::BadDate);
        assert_eq!(err.code(), "IncompleteSignatureException");
    }

    fn assert_wiped_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}

    /// The derived-key example of the AWS SigV4 documentation ("Examples of how to derive a
    /// signing key"), and a type that wipes itself on drop (this fails to compile if the
    /// key chain goes back to plain arrays).
    #[test]
    fn signing_key_matches_aws_example_and_is_wiped_on_drop() {
        let k = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "2012-02-15T12:00:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .into(),
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(*k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        assert_wiped_on_drop(&k);
    }
}
