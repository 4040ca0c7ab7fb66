"""A client for authfault's admin API, standard library only.

Reads AUTHFAULT_ADMIN_URL (set by `authfault exec`, or by your CI job for a
sidecar) and AUTHFAULT_ADMIN_TOKEN. Calls go straight to the admin API,
never through HTTP(S)_PROXY, so they are not recorded as exchanges.
"""

import contextlib
import json
import os
import urllib.error
import urllib.request

ADMIN_URL = os.environ.get("AUTHFAULT_ADMIN_URL", "http://127.0.0.1:8081").rstrip("/")
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class AdminError(RuntimeError):
    """The admin API answered with an error ({"error", "detail"})."""


def call(method, path, body=None):
    """One admin call; returns the decoded JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        ADMIN_URL + path, data=data, method=method,
        headers={"content-type": "application/json"})
    token = os.environ.get("AUTHFAULT_ADMIN_TOKEN")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with _opener.open(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        raise AdminError(f"authfault {method} {path}: {err.code} {err.read().decode()}") from None


def switch_on(name):
    """Switches a scenario on for every request that starts from now on."""
    return call("PUT", "/scenario", {"name": name})


def switch_off():
    """Switches the scenario off: the rules' enabled flags decide again."""
    return call("DELETE", "/scenario")


@contextlib.contextmanager
def scenario(name):
    """`with scenario("expired"): ...` — on for the block, then off."""
    switch_on(name)
    try:
        yield
    finally:
        switch_off()


def scenario_header(name):
    """Headers that pick a scenario for one request alone (parallel-safe)."""
    return {"x-authfault-scenario": name}


def report():
    """The verdict summary so far (`authfault report --format json`)."""
    return call("GET", "/report")
