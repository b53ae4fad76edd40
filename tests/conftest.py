pytest_plugins = ["tests._services.postgres"]

# The example projects' own suites run through `shipml test` inside the end-to-end tests,
# in their project folder, exactly as a user runs them; not as part of this suite.
collect_ignore_glob = ["e2e/projects/*"]
