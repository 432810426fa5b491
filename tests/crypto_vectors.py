"""An independent implementation of the envelope v1 format (docs/crypto.md), written from the
format description with Python `cryptography` (OpenSSL's AES-GCM and HKDF), checked against
tests/vectors/envelope.json, which the Rust code under test generated.

For every positive vector it derives the keyring (root, key id, KEK) from the seed, unwraps
the data key from the KMS blob, derives the message key and commitment, decrypts the payload,
and re-encrypts with the recorded nonces to the same bytes. Every negative vector must fail
here too. Prints "OK <n positive> <n negative>" and exits 0, or raises.

Usage: python crypto_vectors.py tests/vectors/envelope.json
"""

import json
import struct
import sys
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SUITE = 0x0001


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def uuid4_layout(b: bytes) -> str:
    b = bytearray(b)
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(b)))


def seeded_keyring(seed: bytes):
    """Root, key id and the version-1 KEK of Keyring::seeded."""
    root = hkdf(seed, b"parity/v1/seeded-keyring", b"root")
    key_id = uuid4_layout(hkdf(seed, b"parity/v1/seeded-keyring", b"key-id", 16))
    salt = hkdf(root, b"parity/v1/seeded-rotation", struct.pack(">I", 1))
    kek = hkdf(root, salt, b"parity/v1/kek" + key_id.encode() + struct.pack(">I", 1))
    return root, key_id, kek


def canonical(ctx: dict) -> bytes:
    out = struct.pack(">H", len(ctx))
    for k in sorted(ctx, key=lambda s: s.encode()):
        kb, vb = k.encode(), ctx[k].encode()
        out += struct.pack(">H", len(kb)) + kb + struct.pack(">H", len(vb)) + vb
    return out


class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u(self, fmt: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]


def parse_envelope(data: bytes) -> dict:
    r = Reader(data)
    if r.take(4) != b"PENV":
        raise ValueError("magic")
    if r.u(">B") != 1 or r.u(">H") != SUITE:
        raise ValueError("version or suite")
    key_id_len = r.u(">H")
    if not 1 <= key_id_len <= 2048:
        raise ValueError("key id length")
    env = {"key_id": r.take(key_id_len).decode(), "key_version": r.u(">I")}
    wrapped_len = r.u(">H")
    if wrapped_len < 1:
        raise ValueError("wrapped key length")
    env["wrapped"] = r.take(wrapped_len)
    env["nonce"], env["commitment"] = r.take(12), r.take(32)
    ct_len = r.u(">I")
    if ct_len < 16:
        raise ValueError("ciphertext length")
    env["ciphertext"] = r.take(ct_len)
    if r.pos != len(data):
        raise ValueError("trailing bytes")
    return env


def unwrap(blob: bytes, kek: bytes, key_id: str, ctx: bytes):
    """The data key from a PKMS blob: (data key, KEK version, wrap nonce)."""
    r = Reader(blob)
    if r.take(4) != b"PKMS" or r.u(">B") != 1:
        raise ValueError("blob magic or version")
    blob_key_id = r.take(r.u(">B")).decode()
    if blob_key_id != key_id:
        raise ValueError("blob of another key")
    version = r.u(">I")
    nonce = r.take(12)
    header = blob[: r.pos]
    wrapping_key = hkdf(kek, nonce, b"parity/v1/wrap")
    return AESGCM(wrapping_key).decrypt(nonce, blob[r.pos :], header + ctx), version, nonce


def message_keys(data_key: bytes, nonce: bytes):
    suite = struct.pack(">H", SUITE)
    return (
        hkdf(data_key, nonce, b"parity/v1/enc" + suite),
        hkdf(data_key, nonce, b"parity/v1/commit" + suite),
    )


def payload_aad(nonce: bytes, commitment: bytes, ctx: bytes) -> bytes:
    return b"PENV" + bytes([1]) + struct.pack(">H", SUITE) + nonce + commitment + ctx


def open_envelope(data: bytes, kek: bytes, key_id: str, ctx: dict) -> bytes:
    env = parse_envelope(data)
    if env["key_id"] != key_id:
        raise ValueError("envelope of another key")
    c = canonical(ctx)
    data_key, version, _ = unwrap(env["wrapped"], kek, key_id, c)
    if version != env["key_version"]:
        raise ValueError("version in envelope and blob differ")
    enc_key, commitment = message_keys(data_key, env["nonce"])
    if commitment != env["commitment"]:
        raise ValueError("commitment")
    return AESGCM(enc_key).decrypt(env["nonce"], env["ciphertext"], payload_aad(env["nonce"], commitment, c))


def seal_envelope(v: dict, kek: bytes) -> bytes:
    """Re-encrypts a positive vector's plaintext with its recorded keys and nonces."""
    ctx = canonical(v["context"])
    data_key = bytes.fromhex(v["data_key_hex"])
    wrap_nonce = bytes.fromhex(v["wrap_nonce_hex"])
    key_id = v["key_id"].encode()
    header = b"PKMS" + bytes([1, len(key_id)]) + key_id + struct.pack(">I", v["key_version"]) + wrap_nonce
    wrapped = header + AESGCM(hkdf(kek, wrap_nonce, b"parity/v1/wrap")).encrypt(wrap_nonce, data_key, header + ctx)
    nonce = bytes.fromhex(v["payload_nonce_hex"])
    enc_key, commitment = message_keys(data_key, nonce)
    ct = AESGCM(enc_key).encrypt(nonce, bytes.fromhex(v["plaintext_hex"]), payload_aad(nonce, commitment, ctx))
    return (
        b"PENV" + bytes([1]) + struct.pack(">H", SUITE)
        + struct.pack(">H", len(key_id)) + key_id + struct.pack(">I", v["key_version"])
        + struct.pack(">H", len(wrapped)) + wrapped + nonce + commitment
        + struct.pack(">I", len(ct)) + ct
    )


def main(path: str) -> None:
    vectors = json.load(open(path))
    root, key_id, kek = seeded_keyring(bytes.fromhex(vectors["seed_hex"]))
    kr = vectors["keyring_json"]
    import base64

    assert kr["keyId"] == key_id, (kr["keyId"], key_id)
    assert base64.b64decode(kr["root"]) == root, "root differs"
    assert base64.b64decode(kr["versions"][0]["material"]) == kek, "KEK differs"
    for v in vectors["positive"]:
        name = v["name"]
        assert v["kek_hex"] == kek.hex(), name
        assert canonical(v["context"]).hex() == v["canonical_context_hex"], name
        data = bytes.fromhex(v["envelope_hex"])
        assert open_envelope(data, kek, key_id, v["context"]).hex() == v["plaintext_hex"], name
        assert seal_envelope(v, kek) == data, f"{name}: re-encryption gives other bytes"
    _, other_id, other_kek = seeded_keyring(bytes.fromhex(vectors["other_seed_hex"]))
    for v in vectors["negative"]:
        name, expect = v["name"], v["expect"]
        data = bytes.fromhex(v["envelope_hex"])
        if expect.startswith("data-key-99:"):
            # Opened with the data key 0x99..99 instead of the wrapped one.
            env = parse_envelope(data)
            enc_key, commitment = message_keys(bytes([0x99] * 32), env["nonce"])
            assert commitment != env["commitment"], f"{name}: opened"
            continue
        k, kid = (other_kek, other_id) if expect.startswith("other-keyring:") else (kek, key_id)
        try:
            open_envelope(data, k, kid, v["context"])
        except (ValueError, InvalidTag, UnicodeDecodeError, struct.error):
            continue
        raise AssertionError(f"{name}: opened in Python, expected {expect}")
    print(f"OK {len(vectors['positive'])} {len(vectors['negative'])}")


if __name__ == "__main__":
    main(sys.argv[1])
