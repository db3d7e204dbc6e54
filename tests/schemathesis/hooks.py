"""Schemathesis hooks for Bosun's /v1 suite (loaded with SCHEMATHESIS_HOOKS=hooks).

JSON Schema counts 3.0 as an integer, so the generator sends integral floats where the
document says integer; Bosun reads integers as JSON integers (as its clients send them), so
the hook sends those floats as the integers they are.

Every answer is written to `BOSUN_CALLS_FILE` (see `after_call`), and the run's admin
token is minted again whenever a step of the run ended it (see `Admin`).
"""

import os
import subprocess
import urllib.error
import urllib.request

import schemathesis


def _integers(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integers(item) for item in value]
    return value


@schemathesis.hook
def map_body(ctx, body):
    return _integers(body)


# Every answer is written down with the request id the server gave it, so the test can check
# afterwards that no event of the log carries a refused request's (4xx or 5xx): a refused request
# changes nothing. One line per request: `<request id> <status> <method> <path>`.
_CALLS = os.environ.get("BOSUN_CALLS_FILE")


@schemathesis.hook
def after_call(ctx, case, response):
    if _CALLS is None:
        return
    ids = response.headers.get("request-id") or ["-"]
    with open(_CALLS, "a", encoding="utf-8") as calls:
        calls.write(f"{ids[0]} {response.status_code} {case.method} {case.formatted_path}\n")


@schemathesis.auth(refresh_interval=1)
class Admin:
    """The run's admin token, `BOSUN_TOKEN` at first. A step of the run may end it (revoke it by
    `DELETE /v1/tokens/{token_id}`, remove its user): it is checked every second, and once it no
    longer works, a new admin and token are made with `bosun admin` (`BOSUN_BINARY`, on the
    server's database, `BOSUN_DATABASE__URL`), as an operator would. `BOSUN_BASE_URL` is the
    server's."""

    def __init__(self):
        self.token = os.environ["BOSUN_TOKEN"]
        self.minted = 0

    def get(self, case, ctx):
        if not self._works(case):
            self.token = self._mint()
        return self.token

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"

    def _works(self, case):
        request = urllib.request.Request(
            f"{os.environ['BOSUN_BASE_URL']}/v1/auth/whoami", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10):
                return True
        except urllib.error.HTTPError as error:
            return error.code != 401
        except OSError:
            return True

    def _mint(self):
        self.minted += 1
        # A user name is letters, digits and underscores.
        name = f"st_admin_{os.getpid()}_{self.minted}"
        binary = os.environ["BOSUN_BINARY"]
        # Bosun reads every BOSUN_* variable as configuration: only its own go through.
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOSUN_")}
        env.update({k: os.environ[k] for k in ("BOSUN_DATABASE__URL", "BOSUN_DATA_DIR")
                    if k in os.environ})
        for args in (["create-user", name, "--admin"], ["issue-token", name]):
            done = subprocess.run([binary, "admin", *args], capture_output=True, text=True,
                                  env=env)
            if done.returncode != 0:
                raise RuntimeError(f"bosun admin {args[0]} failed: {done.stderr.strip()}")
        return done.stdout.strip()
