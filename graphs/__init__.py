"""LangGraph state machines, one graph per module (rag, react, rlm).

Empty until the agent graphs land (issue 4); the package exists so the distribution's layout
is final and imports stay stable.
"""

__all__: list[str] = []
