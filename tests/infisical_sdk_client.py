"""Drives `parity secrets-api` with the official Infisical Python SDK (PyPI `infisicalsdk`),
exactly as an app would: only the site URL differs from production.

Usage: infisical_sdk_client.py SITE_URL CLIENT_ID CLIENT_SECRET PROJECT ENVIRONMENT PATH [GET_NAME ...]
Prints one JSON object: login (token type and lifetime, never the token), the listed secrets,
each requested secret, and what a wrong client secret and a missing secret produce.
"""

import json
import sys

from infisical_sdk import InfisicalSDKClient
from infisical_sdk.infisical_requests import APIError


def main() -> None:
    site, client_id, client_secret, project, environment, path, *names = sys.argv[1:]
    out = {}

    # cache_ttl=None: every call reaches the server, so the test sees the server's answers.
    client = InfisicalSDKClient(host=site, cache_ttl=None)
    login = client.auth.universal_auth.login(client_id=client_id, client_secret=client_secret)
    out["login"] = {
        "tokenType": login.tokenType,
        "expiresIn": login.expiresIn,
        "tokenLength": len(login.accessToken),
    }

    listed = client.secrets.list_secrets(
        project_id=project, environment_slug=environment, secret_path=path
    )
    out["list"] = {s.secretKey: s.secretValue for s in listed.secrets}
    out["listMeta"] = [
        {"key": s.secretKey, "environment": s.environment, "workspace": s.workspace,
         "type": s.type, "version": s.version, "secretPath": s.secretPath}
        for s in listed.secrets
    ]

    by_slug = client.secrets.list_secrets(
        project_slug=project, environment_slug=environment, secret_path=path
    )
    out["listBySlug"] = sorted(s.secretKey for s in by_slug.secrets)

    out["get"] = {}
    for name in names:
        secret = client.secrets.get_secret_by_name(
            secret_name=name, project_id=project, environment_slug=environment, secret_path=path
        )
        out["get"][name] = secret.secretValue

    try:
        client.secrets.get_secret_by_name(
            secret_name="NO_SUCH_SECRET", project_id=project,
            environment_slug=environment, secret_path=path,
        )
        out["missing"] = {"status": None}
    except APIError as e:
        out["missing"] = {"status": e.status_code, "error": e.response.get("error"),
                          "message": e.response.get("message")}

    bad = InfisicalSDKClient(host=site, cache_ttl=None)
    try:
        bad.auth.universal_auth.login(client_id=client_id, client_secret=client_secret + "-wrong")
        out["badLogin"] = {"status": None}
    except APIError as e:
        out["badLogin"] = {"status": e.status_code, "error": e.response.get("error"),
                           "message": e.response.get("message")}

    # A client that never logged in must be refused.
    anon = InfisicalSDKClient(host=site, cache_ttl=None)
    try:
        anon.secrets.list_secrets(project_id=project, environment_slug=environment, secret_path=path)
        out["anonymous"] = {"status": None}
    except APIError as e:
        out["anonymous"] = {"status": e.status_code, "error": e.response.get("error")}

    print(json.dumps(out))


if __name__ == "__main__":
    main()
