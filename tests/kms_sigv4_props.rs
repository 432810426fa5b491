//! Property tests: requests signed by aws-sigv4 (the AWS SDK's own signer) verify with
//! `parity kms`'s verifier, and any change to the body, a signed header, the secret or the
//! clock beyond the allowed skew makes verification fail.

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::HeaderMap;
use parity_operator::kms::sigv4::{AuthError, Credentials, MAX_SKEW_SECONDS, verify};
use proptest::prelude::*;

const AKID: &str = "AKIDPROPTEST";

/// A request as the SDK would send it to `parity kms`, with extra headers and a query.
#[derive(Debug, Clone)]
struct Req {
    secret: String,
    region: String,
    /// Seconds since the epoch, within 2001..2100.
    time: i64,
    target: String,
    extra: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Vec<u8>,
}

fn req() -> impl Strategy<Value = Req> {
    (
        "[!-~]{1,40}",
        "[a-z]{2}-[a-z]{4,9}-[1-9]",
        978_307_200i64..4_102_444_800,
        "TrentService\\.[A-Z][A-Za-z]{2,20}",
        // Values with runs of inner spaces: SigV4 collapses them when canonicalising.
        prop::collection::btree_map(
            "x-amz-[a-z]{1,10}",
            "[!-~]{1,10}( {1,3}[!-~]{1,10}){0,2}",
            0..4,
        ),
        prop::collection::vec(("[a-zA-Z0-9_.~-]{1,8}", "[a-zA-Z0-9_.~-]{0,8}"), 0..3),
        prop::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|(secret, region, time, target, extra, query, body)| Req {
            secret,
            region,
            time,
            target,
            // Headers the signer sets or the test fixes are not extra ones.
            extra: extra
                .into_iter()
                .filter(|(k, _)| k != "x-amz-date" && k != "x-amz-target")
                .collect(),
            query,
            body,
        })
}

fn creds(r: &Req) -> Credentials {
    Credentials::new(AKID.into(), r.secret.clone(), r.region.clone())
}

fn at(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(secs).unwrap()
}

fn query_string(r: &Req) -> Option<String> {
    (!r.query.is_empty()).then(|| {
        r.query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// The headers of `r` once aws-sigv4 has signed it (Authorization and X-Amz-Date added).
fn signed(r: &Req) -> HeaderMap {
    let uri = match query_string(r) {
        Some(q) => format!("http://127.0.0.1:4599/?{q}"),
        None => "http://127.0.0.1:4599/".to_string(),
    };
    let mut headers = vec![
        ("host".to_string(), "127.0.0.1:4599".to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("x-amz-target".to_string(), r.target.clone()),
    ];
    headers.extend(r.extra.iter().cloned());
    let identity =
        aws_credential_types::Credentials::new(AKID, r.secret.clone(), None, None, "proptest")
            .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&r.region)
        .name("kms")
        .time(SystemTime::from(at(r.time)))
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        uri.clone(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&r.body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = http::Request::builder().method("POST").uri(uri);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let mut req = req.body(()).unwrap();
    instructions.apply_to_request_http1x(&mut req);
    req.headers().clone()
}

fn check(r: &Req, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), AuthError> {
    verify(
        "POST",
        "/",
        query_string(r).as_deref(),
        headers,
        body,
        &creds(r),
        at(now),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sdk_signed_requests_verify(r in req(), skew in -MAX_SKEW_SECONDS..=MAX_SKEW_SECONDS) {
        let h = signed(&r);
        prop_assert_eq!(check(&r, &h, &r.body, r.time + skew), Ok(()));
    }

    #[test]
    fn any_flipped_body_bit_fails(r in req(), bit in any::<prop::sample::Index>()) {
        prop_assume!(!r.body.is_empty());
        let h = signed(&r);
        let mut body = r.body.clone();
        let i = bit.index(body.len() * 8);
        body[i / 8] ^= 1 << (i % 8);
        prop_assert_eq!(check(&r, &h, &body, r.time), Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn a_changed_signed_header_or_secret_fails(r in req(), other in "[!-~]{1,40}") {
        let h = signed(&r);
        let mut swapped = h.clone();
        swapped.insert("x-amz-target", "TrentService.Decrypt-swapped".parse().unwrap());
        prop_assert_eq!(check(&r, &swapped, &r.body, r.time), Err(AuthError::SignatureMismatch));
        prop_assume!(other != r.secret);
        let wrong = Req { secret: other, ..r.clone() };
        prop_assert_eq!(check(&wrong, &h, &r.body, r.time), Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn outside_the_skew_window_fails(r in req(), late in (MAX_SKEW_SECONDS + 1)..86_400i64) {
        let h = signed(&r);
        prop_assert_eq!(check(&r, &h, &r.body, r.time + late), Err(AuthError::Expired));
        prop_assert_eq!(check(&r, &h, &r.body, r.time - late), Err(AuthError::Expired));
    }
}
