pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.app",
    "tests.fixtures.gateway",
    "tests.fixtures.models",
    "tests.fixtures.upstreams",
    "tests.fixtures.procs",
    "tests.fixtures.pgbouncer",
    "tests.fixtures.replicas",
    "tests.fixtures.tiny_models",
]
