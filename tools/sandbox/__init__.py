"""Code mode's sandbox: model-written Python in a separate process behind an OS boundary.

- :mod:`tools.sandbox._runner`: :class:`Sandbox`, its limits and results, and the pipe protocol
  with the hostile child (size-capped, schema-checked messages; every way out kills the tree).
- :mod:`tools.sandbox._isolation`: the boundary (bubblewrap namespaces, uid switch, seccomp,
  read-only root, tmpfs), and :func:`isolation_problem`, which says what a machine lacks.
- :mod:`tools.sandbox._cgroup`: a memory cgroup per run, where one can be made.
- ``_child.py``: the script the child runs (standard library only, copied into the sandbox).
"""

from tools.sandbox._isolation import isolation_problem
from tools.sandbox._runner import DEFAULT_IMPORTS, Sandbox, SandboxLimits, SandboxResult, SandboxUnavailable

__all__ = ["DEFAULT_IMPORTS", "Sandbox", "SandboxLimits", "SandboxResult", "SandboxUnavailable", "isolation_problem"]
