"""Long contexts kept out of the prompt: a store of texts behind handles, and the operations the
recursive (RLM) agent runs on them: ``info``, ``peek``, ``grep``, ``split`` and ``aggregate``.

:mod:`tools.context._texts` holds the texts (:class:`ContextStore`, :func:`load_context`);
:mod:`tools.context._ops` is what the agent does to them. Everything here is plain Python on
strings, so it works the same offline and with a model.
"""

from tools.context._ops import SPLIT_STRATEGIES, AggregateOp, GrepMatch, aggregate, grep, split_text
from tools.context._texts import ContextInfo, ContextStore, DocumentSpan, load_context

__all__ = [
    "SPLIT_STRATEGIES",
    "AggregateOp",
    "ContextInfo",
    "ContextStore",
    "DocumentSpan",
    "GrepMatch",
    "aggregate",
    "grep",
    "load_context",
    "split_text",
]
