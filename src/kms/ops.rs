//! The TrentService operations over the [`Store`]: request and response shapes of the
//! AWS KMS JSON 1.1 protocol (blobs are base64 strings, dates epoch seconds).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::KmsError;
use super::store::Store;
use crate::crypto::blob;
use crate::crypto::{EncryptionContext, SecretBytes};

const ALGORITHM: &str = "SYMMETRIC_DEFAULT";

type Ctx = Option<BTreeMap<String, String>>;

fn context(ctx: Ctx, field: &str) -> Result<Vec<u8>, KmsError> {
    EncryptionContext::from_map(ctx.unwrap_or_default())
        .and_then(|c| c.canonical())
        .map_err(|e| KmsError::validation(format!("{field}: {e}")))
}

fn b64(field: &str, value: Option<String>) -> Result<Vec<u8>, KmsError> {
    let v = value.ok_or_else(|| KmsError::validation(format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null")))?;
    B64.decode(v.as_bytes()).map_err(|_| {
        KmsError::new(
            "SerializationException",
            format!("{field} is not valid base64"),
        )
    })
}

/// AWS's bound on a CiphertextBlob.
const MAX_CIPHERTEXT_BLOB: usize = 6144;

/// A CiphertextBlob argument: base64 of 1 to 6144 bytes, as AWS validates it.
fn ciphertext_blob(field: &str, value: Option<String>) -> Result<Vec<u8>, KmsError> {
    let bytes = b64(field, value)?;
    if bytes.is_empty() || bytes.len() > MAX_CIPHERTEXT_BLOB {
        return Err(KmsError::validation(format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have length between 1 and {MAX_CIPHERTEXT_BLOB}"
        )));
    }
    Ok(bytes)
}

fn required(field: &str, v: Option<String>) -> Result<String, KmsError> {
    v.ok_or_else(|| {
        KmsError::validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn check_algorithm(a: &Option<String>) -> Result<(), KmsError> {
    match a.as_deref() {
        None | Some(ALGORITHM) => Ok(()),
        Some(other) => Err(KmsError::new(
            "InvalidKeyUsageException",
            format!("Algorithm {other} is incompatible with key spec SYMMETRIC_DEFAULT."),
        )),
    }
}

/// Seals `plaintext` under the key's Active version.
fn seal(store: &Store, id: &str, plaintext: &[u8], ctx: &[u8]) -> Result<Vec<u8>, KmsError> {
    let e = store.usable(id)?;
    let (version, kek) = e
        .keyring
        .active_kek()
        .map_err(|err| KmsError::new("KMSInternalException", err.to_string()))?;
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    blob::seal(kek, e.keyring.key_id(), version, nonce, plaintext, ctx)
        .map_err(|err| KmsError::validation(err.to_string()))
}

/// Opens a blob: returns the key id it belongs to and the plaintext.
fn open(
    store: &Store,
    blob_bytes: &[u8],
    key_hint: Option<String>,
    ctx: &[u8],
) -> Result<(String, SecretBytes), KmsError> {
    let header =
        blob::parse_header(blob_bytes).map_err(|e| KmsError::invalid_ciphertext(e.to_string()))?;
    if let Some(hint) = key_hint {
        let wanted = store.resolve(&hint)?;
        if wanted != header.key_id {
            return Err(KmsError::new(
                "IncorrectKeyException",
                "The key ID in the request does not identify a CMK that can perform this operation.",
            ));
        }
    }
    let e = store.usable(&header.key_id).map_err(|err| match err.code {
        "NotFoundException" => KmsError::invalid_ciphertext(
            "the key that encrypted this ciphertext is not served here",
        ),
        _ => err,
    })?;
    let kek = e.keyring.kek(header.kek_version).map_err(|err| {
        KmsError::invalid_ciphertext(format!("{err}; the ciphertext cannot be decrypted"))
    })?;
    let pt = blob::open(kek, &header, blob_bytes, ctx).map_err(|_| {
        KmsError::invalid_ciphertext("ciphertext does not match this key and encryption context")
    })?;
    Ok((header.key_id, pt))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptReq {
    key_id: Option<String>,
    plaintext: Option<String>,
    encryption_context: Ctx,
    encryption_algorithm: Option<String>,
}

pub fn encrypt(store: &Store, r: EncryptReq) -> Result<Value, KmsError> {
    let id = store.resolve(&required("keyId", r.key_id)?)?;
    check_algorithm(&r.encryption_algorithm)?;
    let pt = SecretBytes::new(b64("plaintext", r.plaintext)?);
    if pt.is_empty() || pt.len() > blob::MAX_BLOB_PLAINTEXT {
        return Err(KmsError::validation(
            "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and 4096",
        ));
    }
    let ctx = context(r.encryption_context, "EncryptionContext")?;
    let ct = seal(store, &id, pt.expose(), &ctx)?;
    Ok(
        json!({"CiphertextBlob": B64.encode(ct), "KeyId": store.key_arn(&id), "EncryptionAlgorithm": ALGORITHM}),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptReq {
    ciphertext_blob: Option<String>,
    encryption_context: Ctx,
    key_id: Option<String>,
    encryption_algorithm: Option<String>,
}

pub fn decrypt(store: &Store, r: DecryptReq) -> Result<Value, KmsError> {
    check_algorithm(&r.encryption_algorithm)?;
    let blob_bytes = ciphertext_blob("ciphertextBlob", r.ciphertext_blob)?;
    let ctx = context(r.encryption_context, "EncryptionContext")?;
    let (id, pt) = open(store, &blob_bytes, r.key_id, &ctx)?;
    Ok(
        json!({"Plaintext": B64.encode(pt.expose()), "KeyId": store.key_arn(&id), "EncryptionAlgorithm": ALGORITHM}),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomReq {
    number_of_bytes: Option<i64>,
}

/// GenerateRandom: 1 to 1024 bytes from the operating system's CSPRNG (no key involved).
pub fn generate_random(r: GenerateRandomReq) -> Result<Value, KmsError> {
    let n = r
        .number_of_bytes
        .ok_or_else(|| KmsError::validation("numberOfBytes is required"))?;
    let len = usize::try_from(n)
        .ok()
        .filter(|n| (1..=1024).contains(n))
        .ok_or_else(|| {
            KmsError::validation(format!("numberOfBytes must be between 1 and 1024, got {n}"))
        })?;
    let mut bytes = zeroize::Zeroizing::new(vec![0u8; len]);
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Ok(json!({"Plaintext": B64.encode(&*bytes)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyReq {
    key_id: Option<String>,
    key_spec: Option<String>,
    number_of_bytes: Option<i64>,
    encryption_context: Ctx,
}

pub fn generate_data_key(
    store: &Store,
    r: GenerateDataKeyReq,
    with_plaintext: bool,
) -> Result<Value, KmsError> {
    let id = store.resolve(&required("keyId", r.key_id)?)?;
    let len = match (r.key_spec.as_deref(), r.number_of_bytes) {
        (Some("AES_256"), None) => 32,
        (Some("AES_128"), None) => 16,
        (None, Some(n)) if (1..=1024).contains(&n) => n as usize,
        (None, Some(_)) => {
            return Err(KmsError::validation(
                "1 validation error detected: Value at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024",
            ));
        }
        (Some(s), None) => {
            return Err(KmsError::validation(format!(
                "1 validation error detected: Value '{s}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
            )));
        }
        (Some(_), Some(_)) => {
            return Err(KmsError::validation(
                "Please specify either number of bytes or key spec, not both.",
            ));
        }
        (None, None) => {
            return Err(KmsError::validation(
                "Please specify either number of bytes or key spec.",
            ));
        }
    };
    let ctx = context(r.encryption_context, "EncryptionContext")?;
    let mut raw = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let dk = SecretBytes::new(raw);
    let ct = seal(store, &id, dk.expose(), &ctx)?;
    let mut out = json!({"CiphertextBlob": B64.encode(ct), "KeyId": store.key_arn(&id)});
    if with_plaintext {
        out["Plaintext"] = Value::String(B64.encode(dk.expose()));
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptReq {
    ciphertext_blob: Option<String>,
    source_encryption_context: Ctx,
    source_key_id: Option<String>,
    destination_key_id: Option<String>,
    destination_encryption_context: Ctx,
    source_encryption_algorithm: Option<String>,
    destination_encryption_algorithm: Option<String>,
}

pub fn re_encrypt(store: &Store, r: ReEncryptReq) -> Result<Value, KmsError> {
    check_algorithm(&r.source_encryption_algorithm)?;
    check_algorithm(&r.destination_encryption_algorithm)?;
    let dest = store.resolve(&required("destinationKeyId", r.destination_key_id)?)?;
    let blob_bytes = ciphertext_blob("ciphertextBlob", r.ciphertext_blob)?;
    let src_ctx = context(r.source_encryption_context, "SourceEncryptionContext")?;
    let dst_ctx = context(
        r.destination_encryption_context,
        "DestinationEncryptionContext",
    )?;
    let (src, pt) = open(store, &blob_bytes, r.source_key_id, &src_ctx)?;
    let ct = seal(store, &dest, pt.expose(), &dst_ctx)?;
    Ok(json!({
        "CiphertextBlob": B64.encode(ct),
        "SourceKeyId": store.key_arn(&src),
        "KeyId": store.key_arn(&dest),
        "SourceEncryptionAlgorithm": ALGORITHM,
        "DestinationEncryptionAlgorithm": ALGORITHM,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyIdReq {
    key_id: Option<String>,
}

fn epoch(t: jiff::Timestamp) -> Value {
    json!(t.as_second())
}

pub fn describe_key(store: &Store, r: KeyIdReq) -> Result<Value, KmsError> {
    let id = store.resolve(&required("keyId", r.key_id)?)?;
    let e = store.entry(&id)?;
    Ok(json!({"KeyMetadata": {
        "AWSAccountId": store.account,
        "KeyId": id,
        "Arn": store.key_arn(&id),
        "CreationDate": epoch(e.keyring.created()),
        "Enabled": e.enabled,
        "Description": "parity local key (keyring)",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": if e.enabled { "Enabled" } else { "Disabled" },
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": [ALGORITHM],
        "MultiRegion": false,
    }}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListReq {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

/// One page of `items` from `marker` (an index we handed out), AWS-style.
fn page(
    items: Vec<Value>,
    limit: Option<i64>,
    marker: Option<String>,
    field: &str,
) -> Result<Value, KmsError> {
    let limit = match limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n as usize,
        Some(_) => return Err(KmsError::validation("Limit must be between 1 and 1000")),
    };
    // Only markers we handed out are valid: an index within the listing. Anything else
    // (negative, not a number, past the end, beyond usize) is refused before any arithmetic.
    let start = match marker {
        None => 0,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|s| *s <= items.len())
            .ok_or_else(|| KmsError::new("InvalidMarkerException", "Marker is not valid"))?,
    };
    let end = start.saturating_add(limit).min(items.len());
    let slice: Vec<Value> = items.get(start..end).unwrap_or_default().to_vec();
    let mut out = json!({ field: slice, "Truncated": end < items.len() });
    if end < items.len() {
        out["NextMarker"] = Value::String(end.to_string());
    }
    Ok(out)
}

pub fn list_keys(store: &Store, r: ListReq) -> Result<Value, KmsError> {
    let items = store
        .order
        .iter()
        .map(|id| json!({"KeyId": id, "KeyArn": store.key_arn(id)}))
        .collect();
    page(items, r.limit, r.marker, "Keys")
}

pub fn list_aliases(store: &Store, r: ListReq) -> Result<Value, KmsError> {
    let only = r.key_id.map(|k| store.resolve(&k)).transpose()?;
    let items = store
        .aliases
        .iter()
        .filter(|(_, target)| only.as_ref().is_none_or(|o| o == *target))
        .map(|(name, target)| {
            json!({
                "AliasName": name,
                "AliasArn": store.alias_arn(name),
                "TargetKeyId": target,
                "CreationDate": epoch(store.keys.get(target).map(|e| e.keyring.created()).unwrap_or_default()),
            })
        })
        .collect();
    page(items, r.limit, r.marker, "Aliases")
}

pub fn get_key_rotation_status(store: &Store, r: KeyIdReq) -> Result<Value, KmsError> {
    let id = store.resolve(&required("keyId", r.key_id)?)?;
    let e = store.entry(&id)?;
    let enabled = store.rotation_period_days > 0;
    let mut out = json!({"KeyRotationEnabled": enabled, "KeyId": store.key_arn(&id)});
    if enabled {
        out["RotationPeriodInDays"] = json!(store.rotation_period_days);
        let active_created = e.keyring.active_created();
        let next = active_created
            .checked_add(jiff::SignedDuration::from_hours(
                24 * store.rotation_period_days as i64,
            ))
            .unwrap_or(active_created);
        out["NextRotationDate"] = epoch(next);
    }
    Ok(out)
}

pub fn list_key_rotations(store: &Store, r: ListReq) -> Result<Value, KmsError> {
    let id = store.resolve(&required("keyId", r.key_id)?)?;
    let e = store.entry(&id)?;
    // Every version after the first is one completed rotation. The keyring does not record
    // whether the operator's schedule or an on-demand call made it; rotations through the
    // operator's period are reported as AUTOMATIC only when a period is configured.
    let kind = if store.rotation_period_days > 0 {
        "AUTOMATIC"
    } else {
        "ON_DEMAND"
    };
    let items = e
        .keyring
        .status_versions()
        .iter()
        .skip(1)
        .map(|v| json!({"KeyId": store.key_arn(&id), "RotationDate": epoch(v.created), "RotationType": kind}))
        .collect();
    page(items, r.limit, r.marker, "Rotations")
}
