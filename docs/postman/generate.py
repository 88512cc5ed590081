#!/usr/bin/env python3
"""Builds the Postman collection from Tidings' OpenAPI document.

Every request comes from one operation of the document: its method, path,
summary, description and example body. What the document cannot say is
the order of a working session and which values carry over (tokens, ids,
names unique to each run); that is the FLOW table below. The collection
creates its own users, topic, tag and API key, uses them, and deletes them.

    python3 docs/postman/generate.py openapi.json            # writes the collection
    python3 docs/postman/generate.py openapi.json --check    # fails if it is stale

Get the document from a running server: curl -s localhost:8000/api/openapi.json
"""

import json
import re
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "tidings.postman_collection.json"
PASSWORD = "correct horse battery"
RUN = "{{run}}"

# (name, operationId, token variable, path values, query values (None: the
# document's examples), body fields over the example, expected status,
# variables captured from the response body)
FLOW = [
    ("Log in as the admin", "token_create", None, {}, None,
     {"username": "{{adminUsername}}", "password": "{{adminPassword}}"}, 200,
     {"adminToken": "access"}),
    ("Create alice", "users_create", "adminToken", {}, None,
     {"username": "alice" + RUN, "password": PASSWORD}, 201, {"aliceId": "id"}),
    ("Create bob", "users_create", "adminToken", {}, None,
     {"username": "bob" + RUN, "password": PASSWORD}, 201, {"bobId": "id"}),
    ("Log in as alice", "token_create", None, {}, None,
     {"username": "alice" + RUN, "password": PASSWORD}, 200,
     {"aliceToken": "access", "aliceRefresh": "refresh"}),
    ("Log in as bob", "token_create", None, {}, None,
     {"username": "bob" + RUN, "password": PASSWORD}, 200, {"bobToken": "access"}),
    ("Refresh alice's access token", "token_refresh", None, {}, None,
     {"refresh": "{{aliceRefresh}}"}, 200, {"aliceToken": "access"}),
    ("Alice: who am I", "users_me", "aliceToken", {}, None, None, 200, {}),
    ("Alice creates a topic", "topics_create", "aliceToken", {}, None,
     {"name": "news" + RUN}, 201, {}),
    ("Alice lists topics", "topics_list", "aliceToken", {}, None, None, 200, {}),
    ("Alice shows the topic", "topics_get", "aliceToken", {"name": "news" + RUN}, None,
     None, 200, {}),
    ("Alice keeps the newest 10,000 messages", "topics_update", "aliceToken",
     {"name": "news" + RUN}, None, {"retention": {"max_age_secs": None, "max_count": 10000}},
     200, {}),
    ("Bob joins the topic", "topics_members_add", "bobToken", {"name": "news" + RUN}, None,
     {"username": "bob" + RUN}, 201, {}),
    ("Alice lists the members", "topics_members_list", "aliceToken",
     {"name": "news" + RUN}, None, None, 200, {}),
    ("Alice publishes", "topics_messages_create", "aliceToken", {"name": "news" + RUN},
     None, {}, 201, {}),
    ("Bob reads the history", "topics_messages_list", "bobToken", {"name": "news" + RUN},
     {"after": 0, "limit": 100}, None, 200, {}),
    ("Bob scrolls back from the newest", "topics_messages_list", "bobToken",
     {"name": "news" + RUN}, {"before": 9007199254740991, "limit": 20}, None, 200, {}),
    ("Alice reads her conversation with bob", "direct_history", "aliceToken",
     {"username": "bob" + RUN}, {"after": 0, "limit": 100}, None, 200, {}),
    ("Bob leaves the topic", "topics_members_delete", "bobToken",
     {"name": "news" + RUN, "username": "bob" + RUN}, None, None, 204, {}),
    ("The admin creates a tag", "tags_create", "adminToken", {}, None,
     {"name": "deploys" + RUN}, 201, {"tagId": "id"}),
    ("Alice lists tags", "tags_list", "aliceToken", {}, None, None, 200, {}),
    ("Alice subscribes to the tag", "subscriptions_create", "aliceToken", {}, None,
     {"tag": "{{tagId}}"}, 201, {"subscriptionId": "id"}),
    ("Alice lists her subscriptions", "subscriptions_list", "aliceToken", {}, {}, None,
     200, {}),
    ("The admin notifies the tag", "notifications_create", "adminToken", {}, None,
     {"tag": "{{tagId}}"}, 201, {"notificationId": "id"}),
    ("Alice reads her inbox", "notifications_list", "aliceToken", {}, None, None, 200, {}),
    ("Alice marks the notification read", "notifications_update", "aliceToken",
     {"id": "{{notificationId}}"}, None, {}, 200, {}),
    ("Alice marks everything read", "notifications_read_all", "aliceToken", {}, None,
     None, 200, {}),
    ("The admin reads the audit log", "audit_list", "adminToken", {}, {"actor": "alice" + RUN},
     None, 200, {}),
    ("Alice unsubscribes", "subscriptions_delete", "aliceToken",
     {"id": "{{subscriptionId}}"}, None, None, 204, {}),
    ("The admin deletes the tag", "tags_delete", "adminToken", {"id": "{{tagId}}"}, None,
     None, 204, {}),
    ("Alice deletes the topic", "topics_delete", "aliceToken", {"name": "news" + RUN},
     None, None, 204, {}),
    ("Alice creates an API key", "keys_create", "aliceToken", {}, None,
     {"name": "deploy bot " + RUN}, 201, {"keyId": "id", "aliceKey": "key"}),
    ("Alice lists her keys", "keys_list", "aliceToken", {}, None, None, 200, {}),
    ("The key acts as alice", "users_me", "aliceKey", {}, None, None, 200, {}),
    ("Alice deletes the key", "keys_delete", "aliceToken", {"id": "{{keyId}}"}, None, None,
     204, {}),
    ("The admin lists users", "users_list", "adminToken", {}, None, None, 200, {}),
    ("Bob changes his password", "users_password", "bobToken", {}, None,
     {"old": PASSWORD, "new": "a new password for bob"}, 204, {}),
    ("The admin sets bob's password", "users_password_reset", "adminToken", {"id": "{{bobId}}"},
     None, {"new": "bob's password, set by the admin"}, 204, {}),
    ("The admin disables bob", "users_update", "adminToken", {"id": "{{bobId}}"}, None,
     {"is_active": False}, 200, {}),
    ("Alice logs out", "token_revoke", None, {}, None, {"refresh": "{{aliceRefresh}}"}, 204,
     {}),
    ("The admin deletes bob", "users_delete", "adminToken", {"id": "{{bobId}}"}, None, None,
     204, {}),
    ("The admin deletes alice", "users_delete", "adminToken", {"id": "{{aliceId}}"}, None,
     None, 204, {}),
]

# Numbers that come from a variable are written without quotes.
NUMERIC = ["{{tagId}}", "{{subscriptionId}}", "{{notificationId}}", "{{keyId}}", "{{bobId}}",
           "{{aliceId}}"]


def operations(doc):
    found = {}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            found[operation["operationId"]] = (method.upper(), path, operation)
    return found


def request(doc_ops, step):
    name, op_id, token, path_values, query, body_over, status, captures = step
    method, path, operation = doc_ops[op_id]
    for key, value in path_values.items():
        path = path.replace("{" + key + "}", value)
    assert not re.search(r"(?<!{){[a-z_]+}(?!})", path), f"{op_id}: path value missing in {path}"
    params = [p for p in operation.get("parameters", []) if p["in"] == "query"]
    if query is None:
        query = {p["name"]: p.get("example", p.get("schema", {}).get("example")) for p in params}
    else:
        known = {p["name"] for p in params}
        assert set(query) <= known, f"{op_id}: unknown query {set(query) - known}"
    query_list = [{"key": k, "value": json.dumps(v) if isinstance(v, bool) else str(v)}
                  for k, v in query.items()]
    segments = [s for s in path.split("/") if s]
    raw = "{{baseUrl}}/" + "/".join(segments) + "/"
    if query_list:
        raw += "?" + "&".join(f"{q['key']}={q['value']}" for q in query_list)
    req = {
        "method": method,
        "header": [],
        "url": {"raw": raw, "host": ["{{baseUrl}}"], "path": segments + [""]},
        "description": operation.get("description", operation["summary"]),
    }
    if query_list:
        req["url"]["query"] = query_list
    if token:
        req["auth"] = {"type": "bearer",
                       "bearer": [{"key": "token", "value": "{{" + token + "}}", "type": "string"}]}
    else:
        req["auth"] = {"type": "noauth"}
    if body_over is not None:
        example = operation["requestBody"]["content"]["application/json"]["example"]
        body = json.dumps({**example, **body_over}, indent=2)
        for variable in NUMERIC:
            body = body.replace(json.dumps(variable), variable)
        req["header"].append({"key": "Content-Type", "value": "application/json"})
        req["body"] = {"mode": "raw", "raw": body, "options": {"raw": {"language": "json"}}}
    assert str(status) in operation["responses"], f"{op_id}: {status} is not documented"
    tests = [
        f'pm.test("{operation["summary"]}: {status}", function () {{',
        f"    pm.response.to.have.status({status});",
        "});",
    ]
    for variable, field in captures.items():
        tests.append(f'pm.collectionVariables.set("{variable}", pm.response.json()["{field}"]);')
    events = [{"listen": "test", "script": {"type": "text/javascript", "exec": tests}}]
    if step is FLOW[0]:
        # Names unique to this run, so the collection runs again and again.
        events.insert(0, {"listen": "prerequest", "script": {"type": "text/javascript", "exec": [
            'pm.collectionVariables.set("run", Date.now().toString(36));']}})
    return {"name": f"{name} ({op_id})", "event": events, "request": req}


def collection(doc):
    doc_ops = operations(doc)
    used = {step[1] for step in FLOW}
    missing = sorted(set(doc_ops) - used)
    assert not missing, f"operations the collection does not cover: {missing}"
    variables = ["run", "adminToken", "aliceId", "bobId", "aliceToken", "aliceRefresh",
                 "bobToken", "tagId", "subscriptionId", "notificationId", "keyId", "aliceKey"]
    return {
        "info": {
            "name": doc["info"]["title"],
            "description": doc["info"].get("description", "")
            + "\n\nGenerated from the OpenAPI document by docs/postman/generate.py.",
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
        },
        "variable": [{"key": v, "value": ""} for v in variables],
        "item": [request(doc_ops, step) for step in FLOW],
    }


def main():
    args = sys.argv[1:]
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    if len(paths) != 1:
        sys.exit(__doc__)
    doc = json.loads(pathlib.Path(paths[0]).read_text())
    text = json.dumps(collection(doc), indent=2) + "\n"
    if check:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} is stale: run docs/postman/generate.py on the served document")
        return
    OUT.write_text(text)


if __name__ == "__main__":
    main()
