"""Long contexts kept out of the prompt: a store of texts behind handles, and the operations the
recursive (RLM) agent runs on them: ``info``, ``peek``, ``grep``, ``split`` and ``aggregate``,
and :func:`record_pattern`, which finds the shape repeated records share.

:mod:`tools.context._texts` holds the texts (:class:`ContextStore`, :func:`load_context`);
:mod:`tools.context._ops` is what the agent does to them. Everything here is plain Python on
strings, so it works the same offline and with a model.
"""

from tools.context._ops import SPLIT_STRATEGIES, AggregateOp, GrepMatch, aggregate, grep, grep_items, split_text
from tools.context._records import RecordPattern, record_pattern
from tools.context._texts import ContextInfo, ContextStore, DocumentSpan, load_context

__all__ = [
    "SPLIT_STRATEGIES",
    "AggregateOp",
    "ContextInfo",
    "ContextStore",
    "DocumentSpan",
    "GrepMatch",
    "RecordPattern",
    "aggregate",
    "grep",
    "grep_items",
    "load_context",
    "record_pattern",
    "split_text",
]
