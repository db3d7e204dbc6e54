"""Drives tsuru's Python client (PyPI tsuruclient 0.4.1) against Bosun's /compat/tsuru.

    python drive.py <target> <token> setup <app name> <a private value>
    python drive.py <target> <token> remove <app name>
    python drive.py <target> <token> users

<target> is the base URL tsuruclient is given (…/compat/tsuru). Each scenario prints one JSON
object: what each call returned, under its name; a call the server refused is
{"refused": <the client's error text>}, which starts with the status. Run by
tests/tests/compat_tsuru_clients.rs, which reads the app back natively between `setup` and
`remove`.
"""

import json
import sys
import types

from tsuruclient import client
from tsuruclient.base import TsuruAPIError


def outcome(call):
    """What a call returned (a streamed answer read to its end), or how it was refused."""
    try:
        result = call()
        if isinstance(result, types.GeneratorType):
            result = list(result)
        return result
    except TsuruAPIError as error:
        # tsuruclient raises it with its text only: "<status> Client Error: …: <body>".
        return {"refused": str(error)}


def setup(c, name, secret):
    """An app's making as a tsuruclient user drives it: create (a form), list, show, set its
    environment through the client's own request (tsuruclient has no env call; `secret` as a
    private value), restart, update."""
    out = {}
    out["create"] = outcome(lambda: c.apps.create(
        name=name, platform="python", description="made by tsuruclient"))
    out["create_again"] = outcome(lambda: c.apps.create(name=name, platform="python"))
    out["list"] = outcome(lambda: c.apps.list())
    out["list_by_name"] = outcome(lambda: c.apps.list(name=name))
    out["list_versioned"] = outcome(lambda: c.apps.request("get", "/apps", version="1.4"))
    out["get"] = outcome(lambda: c.apps.get(name))
    out["env_set"] = outcome(lambda: c.apps.request(
        "post", "/apps/{}/env".format(name), version="1.0",
        data={"Envs.0.Name": "GREETING", "Envs.0.Value": "hello", "NoRestart": "true"}))
    out["env_set_private"] = outcome(lambda: c.apps.request(
        "post", "/apps/{}/env".format(name), version="1.0",
        data={"Envs.0.Name": "API_KEY", "Envs.0.Value": secret, "NoRestart": "true",
              "Private": "true"}))
    out["env"] = outcome(lambda: c.apps.request("get", "/apps/{}/env".format(name)))
    out["restart"] = outcome(lambda: c.apps.restart(name))
    out["update"] = outcome(lambda: c.apps.update(name, description="changed by tsuruclient"))
    out["get_after_update"] = outcome(lambda: c.apps.get(name))
    return out


def remove(c, name):
    """The app's removal, and what the client reads after it."""
    return {
        "remove": outcome(lambda: c.apps.remove(name)),
        "get_removed": outcome(lambda: c.apps.get(name)),
        "list_after": outcome(lambda: c.apps.list()),
    }


def users(c):
    """tsuruclient's user calls."""
    return {
        "list": outcome(lambda: c.users.list()),
        "info": outcome(lambda: c.users.info()),
    }


def main():
    target, token, scenario = sys.argv[1:4]
    c = client.Client(target, token)
    if scenario == "setup":
        out = setup(c, sys.argv[4], sys.argv[5])
    elif scenario == "remove":
        out = remove(c, sys.argv[4])
    elif scenario == "users":
        out = users(c)
    else:
        raise SystemExit("unknown scenario: " + scenario)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
