"""Schemathesis hooks for Bosun's /v1 suite (loaded with SCHEMATHESIS_HOOKS=hooks).

JSON Schema counts 3.0 as an integer, so the generator sends integral floats where the
document says integer; Bosun reads integers as JSON integers (as its clients send them), so
the hook sends those floats as the integers they are.
"""

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
