"""The chat front ends' helpers where they were first imported; they live in :mod:`agents.serve.chat`."""

from agents.serve.chat import *  # noqa: F403  # the names of agents.serve.chat.__all__, listed once there
from agents.serve.chat import __all__ as __all__
