"""riskmap.api — how it is served: FastAPI app, routers, CLI."""
