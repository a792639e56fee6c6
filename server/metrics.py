"""Prometheus metrics, served at /metrics.

Labels stay bounded: routes are templates (`/admin/users/{user:path}/profile`), models only ids the
gateway serves, upstreams the host:port of a configured URL, tenants only those
RLPA_METRICS_TENANTS names (any other is "other").
"""

from prometheus_client import Counter, Gauge, Histogram

# Chat turns last from milliseconds (a refusal) to minutes (a long stream).
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REQUESTS = Counter(
    "rlpa_requests_total",
    "HTTP requests by route, method, status and model",
    ["route", "method", "status", "model"],
)
REQUEST_DURATION = Histogram(
    "rlpa_request_duration_seconds",
    "Time from request to the end of the response (of the whole stream when streaming)",
    ["route", "method"],
    buckets=_SECONDS,
)
PROMPT_TOKENS = Counter("rlpa_prompt_tokens_total", "Prompt tokens sent to the model", ["model"])
COMPLETION_TOKENS = Counter(
    "rlpa_completion_tokens_total", "Completion tokens the model generated", ["model"]
)
RATE_LIMITED = Counter("rlpa_rate_limited_total", "Requests refused with 429", ["reason"])
PROFILE_BLOCKS_SKIPPED = Counter(
    "rlpa_profile_blocks_skipped_total",
    "Completed profile blocks that changed nothing, so no version was written: empty, or "
    "unchanged (only what was stored)",
    ["block"],
)
UPSTREAM_IN_FLIGHT = Gauge(
    "rlpa_upstream_in_flight", "Requests in flight to each upstream", ["upstream"]
)
BACKEND_QUEUE_DEPTH = Gauge(
    "rlpa_backend_queue_depth",
    "Generations waiting for the embedded model behind the one it runs (RLPA_MAX_QUEUE bounds it)",
)
BACKEND_BUSY = Counter(
    "rlpa_backend_busy_total",
    "Requests refused with 503 because the backend had all the work it may have: queue (the "
    "embedded model's, RLPA_MAX_QUEUE) or in_flight (the upstreams', RLPA_UPSTREAM_MAX_INFLIGHT)",
    ["limit"],
)
UPSTREAM_ERRORS = Counter(
    "rlpa_upstream_errors_total",
    "Failed upstream requests by kind: connect, timeout, transport, status, stream",
    ["upstream", "kind"],
)

CACHE_ERRORS = Counter("rlpa_cache_errors_total", "Cache operations that failed (served from DB)")
CACHE_HITS = Counter("rlpa_cache_hits_total", "Profile reads served from the cache")
CACHE_MISSES = Counter("rlpa_cache_misses_total", "Profile reads that went to the database")
CACHE_RESETS = Counter(
    "rlpa_cache_resets_total",
    "Redis runs not seen before (restarted, from a snapshot or empty) whose entries were dropped",
)
WRITE_WAITS = Counter(
    "rlpa_profile_write_waits_total",
    "Turns that waited for the same user's write-behind write on another replica, by outcome",
    ["outcome"],
)
PROFILE_WRITES = Counter("rlpa_profile_versions_total", "Profile versions written", ["source"])
FORMAT_FAILURES = Counter(
    "rlpa_format_failures_total", "Model outputs that did not follow the RLPA format"
)
CHAT_REQUESTS = Counter(
    "rlpa_chat_requests_total",
    "Chat completions by outcome: ok, error (an error status or a stream that ended with an "
    "error event) or disconnected (the client left before the end)",
    ["status"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "rlpa_time_to_first_token_seconds",
    "Time from request to first visible token (streams)",
    ["model"],
    buckets=_SECONDS,
)
ERASED_WRITES_DROPPED = Counter(
    "rlpa_erased_profile_writes_dropped_total",
    "Profile writes of turns whose user was erased while the turn ran",
)
PROFILE_WRITE_FAILURES = Counter(
    "rlpa_profile_write_failures_total",
    "Turns whose profile change could not be stored (not_stored) or may have been (unknown)",
    ["outcome"],
)
AUTH_FAILURES = Counter("rlpa_auth_failures_total", "Requests with a missing or wrong API key")
# Tenants are labelled by name only when RLPA_METRICS_TENANTS lists them; every other tenant is
# "other", so that the label stays bounded however many tenants there are.
TENANT_REQUESTS = Counter(
    "rlpa_tenant_requests_total", "Chat turns answered, by tenant", ["tenant"]
)
TENANT_TOKENS = Counter(
    "rlpa_tenant_tokens_total",
    "Tokens of chat turns by tenant and kind: prompt or completion",
    ["tenant", "kind"],
)
USAGE_WRITE_FAILURES = Counter(
    "rlpa_usage_write_failures_total",
    "Usage flushes that could not be written; their counts are kept for the next flush",
)
USAGE_DROPPED = Counter(
    "rlpa_usage_dropped_total",
    "Turns whose usage was not counted: the replica held as many unwritten rows as it may",
)
