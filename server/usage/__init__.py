"""Usage: requests and tokens per API key, tenant, end user and model, rolled up per hour.

Each turn's counts are added up in memory and written every RLPA_USAGE_FLUSH_S seconds
(service.py, UsageMeter), so a turn never waits for them; `GET /admin/usage` (router.py) and
`rlpa usage` (cli.py) read them back, filtered and grouped.
"""
