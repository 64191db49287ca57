"""Chat model factory: settings -> a LangChain chat model (or ``None`` for the heuristic strategies)."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from agents.settings import Settings

__all__ = ["build_chat_model"]


def build_chat_model(settings: Settings, model: str | None = None) -> BaseChatModel | None:
    """``ChatOpenAI`` for the configured model (or ``model``) and endpoint; ``None`` when no model is set.

    ``ChatOpenAI(base_url=...)`` reaches OpenAI, vLLM, Ollama, llama.cpp and LM Studio. The client's
    own retries are off: :class:`graphs.llm.ModelClient` retries, so attempts are counted once.
    Every reply is capped at ``ARAG_MAX_OUTPUT_TOKENS`` (``max_tokens``; the client sends it under
    both of the API's names, see :class:`~graphs.llm.ModelClient`).
    """
    name = model or settings.model.name
    if not name:
        return None
    from langchain_openai import ChatOpenAI

    api_key = settings.model.api_key.get_secret_value() if settings.model.api_key else None
    if api_key is None and settings.model.base_url is None:
        msg = (
            f"chat model {name!r} needs ARAG_OPENAI_API_KEY (OpenAI) or "
            "ARAG_OPENAI_BASE_URL (a local server such as vLLM, Ollama or llama.cpp)"
        )
        raise ValueError(msg)
    return ChatOpenAI(
        model=name,
        base_url=settings.model.base_url,
        api_key=api_key or "not-needed",  # type: ignore[arg-type]
        timeout=settings.model.request_timeout,
        max_retries=0,
        max_tokens=settings.model.max_output_tokens,  # type: ignore[call-arg]
        stream_usage=True,
    )
