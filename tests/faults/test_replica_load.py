"""Two replicas under load behind a round-robin proxy, both told to stop (SIGTERM) while clients
keep sending: every change acknowledged to a client is in PostgreSQL once they have exited.
bench/replica_load.py's run, short, as a test, with each version's INSERT slowed down so that
many writes are still pending when the signal comes."""

from __future__ import annotations

import pytest

from bench.replica_load import Run, measure, stored
from tests.fixtures.proxy import RoundRobinProxy
from tests.fixtures.replicas import ReplicaConfig, Replicas, execute
from tests.fixtures.upstreams import remembering

pytestmark = pytest.mark.slow

CLIENTS = 8
SECONDS = 1.5
# Each version's INSERT takes this long (under the replicas' 1 s statement timeout).
WRITE_S = 0.3
_SLOW_WRITES = f"""
CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep({WRITE_S}); RETURN NEW; END $$;
CREATE TRIGGER slow_write BEFORE INSERT ON profile_version
FOR EACH ROW EXECUTE FUNCTION slow_write();
"""


@pytest.mark.parametrize(
    "two_replicas",
    # A database of their own: the trigger goes with it.
    [ReplicaConfig(env={"RLPA_PROFILE_WRITE_BEHIND": "true"}, fresh_database=True)],
    indirect=True,
)
async def test_sigterm_to_every_replica_under_load_loses_no_acknowledged_change(
    two_replicas: Replicas,
) -> None:
    """Write-behind: replies went out before their versions committed, so each replica's
    shutdown must finish the writes it owes before it exits."""
    two_replicas.upstream.script.respond = remembering  # one new fact per turn
    await execute(two_replicas.dsn, _SLOW_WRITES)
    nodes = list(two_replicas.nodes.values())
    proxy = RoundRobinProxy([node.port for node in nodes])
    proxy.start()
    run = Run(replicas=len(nodes), mode="behind", clients=CLIENTS)
    try:
        await measure(run, nodes, proxy, SECONDS)
    finally:
        proxy.stop()
    assert run.unclean_exits == 0, "a replica did not exit 0 by itself after SIGTERM"
    assert len(run.acknowledged) >= 20, run.errors[:3]
    lost = len(run.acknowledged) - await stored(two_replicas.dsn, run.acknowledged)
    assert lost == 0, f"{lost} of {len(run.acknowledged)} acknowledged changes are not stored"
