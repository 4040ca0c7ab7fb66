"""pytest fixtures for suites run through authfault.

Copy this file and authfault_admin.py next to your tests. Run the suite
under `authfault exec -- pytest`, or with a sidecar and
AUTHFAULT_ADMIN_URL=http://authfault:8081 (HTTPS_PROXY pointing at it).

    def test_orders_reject_an_expired_token(authfault_scenario, api):
        with authfault_scenario("expired"):
            assert api.get("/v1/orders").status_code == 401

    # Parallel-safe (pytest-xdist): this one request only, no global switch.
    def test_orders_reject_a_missing_token(api, scenario_header):
        assert api.get("/v1/orders", headers=scenario_header("missing")).status_code == 401
"""

import pytest

import authfault_admin


@pytest.fixture
def authfault_scenario():
    """A context manager that switches a scenario on for the whole proxy."""
    yield authfault_admin.scenario
    # A test that failed inside the block has already switched it off; this
    # also heals a test that called switch_on() by hand.
    authfault_admin.switch_off()


@pytest.fixture
def scenario_header():
    """`scenario_header("expired")`: headers naming a per-request scenario."""
    return authfault_admin.scenario_header


@pytest.fixture(scope="session", autouse=True)
def authfault_report():
    """Prints authfault's verdict counts at the end of the session."""
    yield
    try:
        summary = authfault_admin.report()
    except OSError:
        return  # no authfault running: nothing to report
    print(f"\nauthfault: {summary['exchanges']} exchange(s), "
          f"{summary['violations']} violation(s): {summary['verdicts']}")
