"""Fault injection with real processes (issue 8): Redis and PostgreSQL stopped, killed or frozen
under a live gateway, concurrent turns of one user, and an erase racing a turn.

The upstream dying mid-stream is covered where the upstream is: tests/server/openai/
test_gateway_upstream.py::test_upstream_dying_mid_stream_sends_an_error_event_and_stores_nothing.
"""
