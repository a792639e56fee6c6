pytest_plugins = ["tests.fixtures.db", "tests.fixtures.app", "tests.fixtures.gateway"]
