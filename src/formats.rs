//! The formats of the strings a spec uses to name things: one constant per format, used both
//! by the CRD schema (`#[schemars(regex(pattern = ...))]`, so the API server refuses a bad
//! value at admission) and by `api::validate` (so `parity render` and the operator refuse
//! the same values without an API server). Patterns stay within what RE2 (the API server) and
//! the `regex` crate read alike.

/// A DNS-1123 label: a namespace or a ParityEnvironment name.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1123 subdomain: the name of a Secret, a ConfigMap or a StorageClass.
pub const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A key in a Secret's or ConfigMap's data.
pub const DATA_KEY: &str = r"^[-._a-zA-Z0-9]+$";
/// An AWS KMS key as KMS accepts it in KeyId: an alias name (`alias/orders`), an alias or key
/// ARN, or a bare key id (a UUID, `mrk-...`, or a `parity kms` keyring id).
pub const KMS_KEY_ID: &str = r"^(alias/[a-zA-Z0-9/_-]+|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{1,12}:(key|alias)/[a-zA-Z0-9/_-]+|[a-zA-Z0-9_-]+)$";
/// A KMS alias name as the topology lists it (the `alias/aws/` prefix is refused by a rule).
pub const KMS_ALIAS: &str = r"^alias/[a-zA-Z0-9/_-]+$";
/// A secret name as apps read it (Infisical and environment-variable style).
pub const SECRET_NAME: &str = r"^[a-zA-Z0-9_./-]+$";
/// A DynamoDB table or index name (its length, 3-255, is a separate bound).
pub const TABLE_NAME: &str = r"^[a-zA-Z0-9_.-]+$";
/// A volume size in binary units.
pub const VOLUME_SIZE: &str = r"^[1-9][0-9]{0,5}(Mi|Gi|Ti)$";
/// An http(s) endpoint URL.
pub const HTTP_URL: &str = r"^https?://[^\s]+$";
/// An AWS region name.
pub const AWS_REGION: &str = r"^[a-z0-9-]+$";
/// An Infisical project or environment slug (lower-case words joined by - or _).
pub const SLUG: &str = r"^[a-z0-9]([-_a-z0-9]*[a-z0-9])?$";
/// A container image reference (`registry:5000/org/name:tag@sha256:...`): no spaces, starts
/// with a letter or digit. Loose on purpose: the kubelet checks the rest when it pulls.
pub const IMAGE: &str = r"^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$";
/// An Infisical folder path.
pub const SECRETS_PATH: &str = r"^/";

/// Whether `value` has the format `pattern` (one of the constants above).
pub fn matches(pattern: &str, value: &str) -> bool {
    regex::Regex::new(pattern).is_ok_and(|r| r.is_match(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_compiles_and_tells_good_from_bad() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (DNS_LABEL, &["dev", "a-1"], &["Dev", "-a", "a.b", ""]),
            (
                DNS_SUBDOMAIN,
                &["seed", "a.b-c"],
                &["Seed", "a_b", "a.", ""],
            ),
            (
                DATA_KEY,
                &["seed", "schema.json", "A_b-1"],
                &["a/b", "a b", ""],
            ),
            (
                KMS_KEY_ID,
                &[
                    "alias/orders",
                    "1234abcd-12ab-34cd-56ef-1234567890ab",
                    "mrk-1234",
                    "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab",
                    "arn:aws-cn:kms:cn-north-1:123456789012:alias/app",
                    "k",
                ],
                &["alias/", "arn:aws:s3:::bucket", "key id", "alias/a b", ""],
            ),
            (
                KMS_ALIAS,
                &["alias/orders", "alias/a/b_c-d"],
                &["orders", "alias/", "alias/a b"],
            ),
            (
                SECRET_NAME,
                &["STRIPE_KEY", "app/db.url"],
                &["bad name", ""],
            ),
            (TABLE_NAME, &["orders", "a.b_c-1"], &["a b", "a/b"]),
            (VOLUME_SIZE, &["1Gi", "512Mi"], &["0Gi", "1G", "1.5Gi"]),
            (
                HTTP_URL,
                &["https://x", "http://127.0.0.1:8000"],
                &["ftp://x", "https://a b"],
            ),
            (AWS_REGION, &["eu-west-1"], &["EU", "eu west"]),
            (
                SLUG,
                &["shop-backend", "dev", "my_env"],
                &["Shop", "-dev", "a b"],
            ),
            (SECRETS_PATH, &["/", "/app"], &["app"]),
            (
                IMAGE,
                &[
                    "moto:mine",
                    "localhost:5000/parity/moto:5.2.5",
                    "amazon/dynamodb-local@sha256:0a1b",
                ],
                &["moto mine", " moto", "-moto", ""],
            ),
        ];
        for (pattern, good, bad) in cases {
            assert!(regex::Regex::new(pattern).is_ok(), "{pattern}");
            for g in *good {
                assert!(matches(pattern, g), "{pattern} refuses {g:?}");
            }
            for b in *bad {
                assert!(!matches(pattern, b), "{pattern} accepts {b:?}");
            }
        }
    }
}
