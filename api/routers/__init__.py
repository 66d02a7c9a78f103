"""HTTP routers; each module exposes ``router`` (or ``install(app)``)."""
