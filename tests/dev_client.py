"""An app's view of a `parity dev` environment: unmodified boto3 and Infisical SDK clients
configured only by the `.env` file parity dev wrote (no endpoint or credential in code:
boto3 reads AWS_ENDPOINT_URL_<SERVICE>, AWS_ACCESS_KEY_ID, ... from the environment).

Usage: dev_client.py PATH/.env [PROJECT ENVIRONMENT SECRET_PATH]
Prints one JSON object. Secret values are never printed: only whether the SDK returned the
value the .env holds.
"""

import base64
import json
import os
import sys


def load_dotenv(path):
    """Reads NAME='value' and NAME="value" lines (the two forms parity dev writes)."""
    names = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, _, value = line.partition("=")
            if value.startswith("'") and value.endswith("'"):
                value = value[1:-1]
            elif value.startswith('"') and value.endswith('"'):
                value = bytes(value[1:-1], "utf-8").decode("unicode_escape").replace("\\$", "$")
            os.environ[name] = value
            names.append(name)
    return names


def main() -> None:
    names = load_dotenv(sys.argv[1])
    out = {"names": names}
    import boto3  # after the environment is set, as an app's process would have it

    kms = boto3.client("kms")
    key = os.environ["PARITY_KMS_KEY_ID"]
    enc = kms.encrypt(KeyId=key, Plaintext=b"from the app", EncryptionContext={"app": "demo"})
    dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"app": "demo"})
    out["kms"] = {"keyArn": enc["KeyId"], "roundTrip": dec["Plaintext"] == b"from the app"}

    if "AWS_ENDPOINT_URL_DYNAMODB" in os.environ:
        ddb = boto3.client("dynamodb")
        tables = {}
        for name in ddb.list_tables()["TableNames"]:
            t = ddb.describe_table(TableName=name)["Table"]
            ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            tables[name] = {
                "gsi": sorted(i["IndexName"] for i in t.get("GlobalSecondaryIndexes", [])),
                "lsi": sorted(i["IndexName"] for i in t.get("LocalSecondaryIndexes", [])),
                "stream": t.get("StreamSpecification", {}).get("StreamViewType"),
                "ttl": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None,
                "items": ddb.scan(TableName=name, Select="COUNT")["Count"],
            }
        out["tables"] = tables
        item = ddb.get_item(TableName="customers", Key={"id": {"S": "42"}}).get("Item")
        if item and "B" in item.get("card", {}):
            out["card"] = base64.b64encode(item["card"]["B"]).decode()

    if "INFISICAL_SITE_URL" in os.environ and len(sys.argv) > 4:
        from infisical_sdk import InfisicalSDKClient

        project, environment, path = sys.argv[2:5]
        client = InfisicalSDKClient(host=os.environ["INFISICAL_SITE_URL"], cache_ttl=None)
        client.auth.universal_auth.login(
            client_id=os.environ["INFISICAL_UNIVERSAL_AUTH_CLIENT_ID"],
            client_secret=os.environ["INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"],
        )
        listed = client.secrets.list_secrets(
            project_id=project, environment_slug=environment, secret_path=path
        )
        out["infisical"] = {
            s.secretKey: s.secretValue == os.environ.get(s.secretKey) for s in listed.secrets
        }
    print(json.dumps(out))


main()
