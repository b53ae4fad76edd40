"""Rolling a registered model out to serving targets: shadow, canary, promote, rollback."""
