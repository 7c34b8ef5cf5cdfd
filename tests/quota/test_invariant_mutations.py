"""The quota state machine catches broken invariants.

Each mutation below is a plausible bug in the controller or the field toolkit
that lets clients create more than the target. With it in place, the state
machine of :mod:`tests.quota.test_invariant` must fail; a mutation it does not
catch is a hole in the machine. ``python -m tests.quota.test_invariant_mutations``
runs them all and prints the catch rate.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import Phase, settings

import quota.client.models as device_models
import quota.controller as controller_module
import tests.quota.test_invariant as machine
from quota.controller import Controller
from tests.quota.test_invariant import SETTINGS, run_schedules

# Generation only: a caught mutation needs no shrinking to count as caught.
HUNT = settings(SETTINGS, phases=[Phase.generate])
# The catch rate is measured with more schedules than the suite runs.
LONG_HUNT = settings(HUNT, max_examples=400)
# The suite's one mutation: the same schedules every run, so it cannot flake.
SUITE_HUNT = settings(LONG_HUNT, derandomize=True, database=None)


def _raise_in_flight_forgotten(patch) -> None:
    def assumed_ceiling(session, client, outstanding=None):
        if outstanding is None:
            outstanding = controller_module.outstanding_extra(session, client)
        return client.acknowledged + outstanding

    patch(controller_module, "assumed_ceiling", assumed_ceiling)


def _approved_codes_not_held(patch) -> None:
    patch(controller_module, "outstanding_by_client", lambda session, quota: {})
    patch(controller_module, "outstanding_extra", lambda session, client: 0)


def _clock_skew_bound_ignored(patch) -> None:
    # The controller's side only: devices' clocks still drift within the bound.
    patch(machine, "POLICY", dataclasses.replace(machine.POLICY, max_skew=timedelta(0)))


def _lease_never_ends_on_the_device(patch) -> None:
    patch(device_models, "effective_ceiling_column", lambda table, now: table.c.ceiling)


def _reinstall_trusts_the_report(patch) -> None:
    real = Controller._reinstalled

    def reinstalled(self, client, why):
        client.pending = None
        client.acknowledged = client.count
        real(self, client, why)

    patch(Controller, "_reinstalled", reinstalled)


MUTATIONS = {
    "a raise on its way is not counted as held": _raise_in_flight_forgotten,
    "approved override codes are not held": _approved_codes_not_held,
    "the controller ignores the clock-skew bound": _clock_skew_bound_ignored,
    "the device keeps a raised ceiling past its lease": (
        _lease_never_ends_on_the_device
    ),
    "a reinstall forgets what the old install may have created": (
        _reinstall_trusts_the_report
    ),
}


def caught(mutate, tmp_path: Path, hunt=HUNT) -> bool:
    """Whether the state machine fails with ``mutate`` applied."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        mutate(monkeypatch.setattr)
        try:
            run_schedules(tmp_path, hunt)
        except Exception:  # any failure of the machine is a catch
            return True
    return False


@pytest.mark.parametrize(
    "name", ["the device keeps a raised ceiling past its lease"], ids=["lease"]
)
def test_the_state_machine_catches_a_broken_invariant(tmp_path, name):
    assert caught(MUTATIONS[name], tmp_path, SUITE_HUNT), f"not caught: {name}"


def main() -> None:
    found = 0
    for name, mutate in MUTATIONS.items():
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as directory:
            hit = caught(mutate, Path(directory), LONG_HUNT)
        found += hit
        took = time.monotonic() - started
        print(f"{'caught' if hit else 'MISSED':>7}  {took:6.1f} s  {name}", flush=True)
    print(f"{found} of {len(MUTATIONS)} mutations caught")
    sys.exit(0 if found == len(MUTATIONS) else 1)


if __name__ == "__main__":
    main()
