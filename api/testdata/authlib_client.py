"""Drives tokenledger's RFC 7009 revocation and RFC 7662 introspection with
Authlib's OAuth 2 client (authlib.integrations.requests_client.OAuth2Session),
exactly as an application using that library would call them.

Run by api's TestAuthlibRevokesAndIntrospects. Input comes from the
environment, so no secret appears on a command line:
  TL_URL           the API's base URL
  TL_INTROSPECTOR  a secret with ledger:introspect, sent as the bearer token
                   of introspection requests (RFC 7662 section 2.1)
  TL_CONFIDENTIAL  a secret, revoked by a confidential client that puts its
                   client_id and client_secret in the body (client_secret_post)
  TL_PUBLIC        a secret, revoked by a public client that sends only its
                   client_id (auth method "none")
Output, on stdout, is one JSON object: {"steps": [{"name", "status", "body",
"sent"}]}, where "sent" lists the names of the form parameters Authlib sent.
It never prints a secret.
"""

import json
import os
import sys
from urllib.parse import parse_qs

from authlib.integrations.requests_client import OAuth2Session

base = os.environ["TL_URL"]
introspector = os.environ["TL_INTROSPECTOR"]
revoke_url = base + "/v1/revoke"
introspect_url = base + "/v1/introspect"
bearer = {"Authorization": "Bearer " + introspector}

confidential = OAuth2Session(
    client_id="billing-service",
    client_secret="billing-service-client-secret",
    token_endpoint_auth_method="client_secret_post",
    revocation_endpoint_auth_method="client_secret_post",
)
public = OAuth2Session(
    client_id="cli-app",
    token_endpoint_auth_method="none",
    revocation_endpoint_auth_method="none",
)

steps = []


def record(name, resp):
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    sent = resp.request.body or ""
    if isinstance(sent, bytes):
        sent = sent.decode()
    sent = sorted(parse_qs(sent, keep_blank_values=True).keys())
    steps.append({"name": name, "status": resp.status_code, "body": body, "sent": sent})


for name, client, secret in [
    ("confidential", confidential, os.environ["TL_CONFIDENTIAL"]),
    ("public", public, os.environ["TL_PUBLIC"]),
]:
    record(name + " introspects before",
           client.introspect_token(introspect_url, token=secret, token_type_hint="access_token", headers=dict(bearer)))
    record(name + " revokes",
           client.revoke_token(revoke_url, token=secret, token_type_hint="access_token"))
    record(name + " introspects after",
           client.introspect_token(introspect_url, token=secret, token_type_hint="access_token", headers=dict(bearer)))

json.dump({"steps": steps}, sys.stdout)
