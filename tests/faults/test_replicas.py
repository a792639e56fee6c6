"""Faults between two replicas never show: bench/replica_faults.py's trials, a few each, against
two `rlpa serve` processes over one PostgreSQL, one persistent Redis and the scripted upstream.

Each trial uses a fresh end user and puts back what it stopped; a trial whose setup did not go as
planned fails the test too, as it measured nothing.
"""

from __future__ import annotations

import pytest

from bench.replica_faults import CASES, NO_ADMIN_KEY, WRITE_BEHIND, run_trials
from tests.fixtures.replicas import Replicas

pytestmark = pytest.mark.slow


async def _never(name: str, replicas: Replicas, trials: int) -> None:
    result = await run_trials(CASES[name], replicas, trials, verbose=True)
    assert not result.errors and not result.not_run, result.report()
    assert not result.defects, result.report()


async def test_a_redis_snapshot_restored_after_an_erase_brings_nothing_back(
    two_replicas: Replicas,
) -> None:
    await _never("redis-snapshot", two_replicas, 3)


async def test_no_turn_started_after_an_opt_out_sees_the_profile(two_replicas: Replicas) -> None:
    await _never("opt-out", two_replicas, 2)


async def test_an_erase_during_turns_in_flight_on_another_replica_stays(
    two_replicas: Replicas,
) -> None:
    await _never("erase-in-flight", two_replicas, 3)


@pytest.mark.parametrize("two_replicas", [NO_ADMIN_KEY], indirect=True, ids=["no-admin-key"])
async def test_the_first_key_turns_authentication_on_on_every_replica(
    two_replicas: Replicas,
) -> None:
    await _never("auth-elsewhere", two_replicas, 2)


@pytest.mark.parametrize("two_replicas", [WRITE_BEHIND], indirect=True, ids=["write-behind"])
async def test_write_behind_turns_on_two_replicas_commit_in_order(two_replicas: Replicas) -> None:
    await _never("write-behind-order", two_replicas, 10)


async def test_a_client_leaving_mid_block_stores_nothing_and_frees_the_upstream(
    two_replicas: Replicas,
) -> None:
    await _never("disconnect-in-block", two_replicas, 3)


async def test_ready_while_redis_is_down(two_replicas: Replicas) -> None:
    await _never("ready", two_replicas, 2)


async def test_wrong_keys_from_an_address_do_not_lock_out_a_valid_key(
    two_replicas: Replicas,
) -> None:
    await _never("auth-limiter", two_replicas, 3)
