"""``arag serve``'s public names where they were first imported; the server lives in
:mod:`agents.serve` (routes: :mod:`agents.serve.app`, wire shapes: :mod:`agents.serve.wire`,
runs: :mod:`agents.serve.runs`)."""

from agents.serve import ApiError, ServerAgents, check_exposure, create_app, serve, uvicorn_config

__all__ = ["ApiError", "ServerAgents", "check_exposure", "create_app", "serve", "uvicorn_config"]
