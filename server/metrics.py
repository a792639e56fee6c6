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
