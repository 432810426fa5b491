"""boto3, unmodified but for the endpoint, against `parity kms`.

Run by tests/kms_boto3.rs with PARITY_KMS_ENDPOINT, AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY set; prints OK on success, exits non-zero with the failing check.
"""
import os
import sys

import boto3
from botocore.exceptions import ClientError

endpoint = os.environ["PARITY_KMS_ENDPOINT"]
kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")


def expect_error(code, fn, **kwargs):
    try:
        fn(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}"
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        return
    raise AssertionError(f"expected {code}, call succeeded")


ctx = {"tenant": "acme"}
enc = kms.encrypt(KeyId="alias/app", Plaintext=b"from python", EncryptionContext=ctx)
assert enc["KeyId"].startswith("arn:aws:kms:us-east-1:000000000000:key/"), enc["KeyId"]
dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx)
assert dec["Plaintext"] == b"from python"
expect_error("InvalidCiphertextException", kms.decrypt,
             CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"tenant": "x"})

dk = kms.generate_data_key(KeyId="alias/app", KeySpec="AES_256", EncryptionContext=ctx)
assert len(dk["Plaintext"]) == 32
assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
nop = kms.generate_data_key_without_plaintext(KeyId="alias/app", NumberOfBytes=16)
assert "Plaintext" not in nop

key_id = kms.describe_key(KeyId="alias/app")["KeyMetadata"]["KeyId"]
assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [key_id]
assert kms.list_aliases(KeyId=key_id)["Aliases"][0]["AliasName"] == "alias/app"
assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False

kms.rotate_key_on_demand(KeyId=key_id)
assert len(kms.list_key_rotations(KeyId=key_id)["Rotations"]) == 1
re = kms.re_encrypt(CiphertextBlob=dk["CiphertextBlob"], SourceEncryptionContext=ctx,
                    DestinationKeyId="alias/app", DestinationEncryptionContext=ctx)
assert kms.decrypt(CiphertextBlob=re["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]

expect_error("NotFoundException", kms.describe_key, KeyId="alias/missing")
kms.disable_key(KeyId=key_id)
expect_error("DisabledException", kms.encrypt, KeyId=key_id, Plaintext=b"x")
kms.enable_key(KeyId=key_id)

bad = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"], aws_secret_access_key="wrong")
expect_error("InvalidSignatureException", bad.list_keys)
print("OK")
