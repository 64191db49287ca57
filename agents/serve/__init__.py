"""The serving stack: the agents behind chat front ends.

```
app.py            routes and create_app / serve: the OpenAI-compatible API and the web page (arag serve)
wire.py           OpenAI request, completion, chunk and error shapes
runs.py           which agent answers, admission (run slots, queue, 429) and the run worker
_bodies.py        hostile-body-safe JSON in and out
_connections.py   uvicorn's set-up and the connection limits it lacks
chat.py           what every front end reads from a conversation and shows of an answer
open_webui.py     Open WebUI: its background requests and RAG template recognised, source events
langgraph_app.py  the rag and rlm chat graphs for the LangGraph server (langgraph.json)
web/index.html    the chat page served at /
```

```python
from agents.serve import create_app, serve

serve()                       # what `arag serve` runs: uvicorn on ARAG_SERVER_HOST:ARAG_SERVER_PORT
app = create_app()            # or the ASGI app, for any ASGI server
```

:mod:`agents.server`, :mod:`agents.chat` and :mod:`agents.langgraph_app` re-export these names
where they were imported before the stack moved here.
"""

from agents.serve._connections import check_exposure, uvicorn_config
from agents.serve.app import ChatServer, create_app, serve
from agents.serve.runs import ServerAgents
from agents.serve.wire import ApiError

__all__ = ["ApiError", "ChatServer", "ServerAgents", "check_exposure", "create_app", "serve", "uvicorn_config"]
