"""Prometheus metrics, served at /metrics."""

from prometheus_client import Counter, Histogram

CACHE_ERRORS = Counter("rlpa_cache_errors_total", "Cache operations that failed (served from DB)")
CACHE_HITS = Counter("rlpa_cache_hits_total", "Profile reads served from the cache")
CACHE_MISSES = Counter("rlpa_cache_misses_total", "Profile reads that went to the database")
PROFILE_WRITES = Counter("rlpa_profile_versions_total", "Profile versions written", ["source"])
FORMAT_FAILURES = Counter(
    "rlpa_format_failures_total", "Model outputs that did not follow the RLPA format"
)
CHAT_REQUESTS = Counter("rlpa_chat_requests_total", "Chat completions", ["status"])
TIME_TO_FIRST_TOKEN = Histogram(
    "rlpa_time_to_first_token_seconds", "Time from request to first visible token"
)
ERASED_WRITES_DROPPED = Counter(
    "rlpa_erased_profile_writes_dropped_total",
    "Profile writes of turns whose user was erased while the turn ran",
)
PROFILE_WRITE_FAILURES = Counter(
    "rlpa_profile_write_failures_total", "Turns whose profile change could not be stored"
)
AUTH_FAILURES = Counter("rlpa_auth_failures_total", "Requests with a missing or wrong API key")
