"""Generated Python (rule predicates, prefilter checks) compiled once per machine, as ``__pycache__`` does for modules.

A hunt with SigmaHQ's Windows rules compiles ~1,400 generated functions, about 0.55 s in every process that meets
them (each worker, each run): more than a tenth of a small case's hunt. The code objects are kept with ``marshal``
under the user's cache folder (``$ASSAY_CACHE_DIR``, else ``~/.cache/assay``), keyed by the source text, the
interpreter's cache tag and marshal's version; a file that does not load is compiled again. The folder is trusted
as ``__pycache__`` is: it is the user's own.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
from functools import lru_cache
from pathlib import Path
from types import CodeType

#: Code objects compiled in this process, by key (a predicate met by several routes is compiled once).
_MEMORY: dict[str, CodeType] = {}
_MEMORY_LIMIT = 20_000


def default_cache_dir() -> Path:
    """``$ASSAY_CACHE_DIR`` or ``$XDG_CACHE_HOME/assay`` (``~/.cache/assay``)."""
    env = os.environ.get("ASSAY_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assay"


def _folder() -> str:
    """The code folder, as text: looked up for each of ~1,400 functions a worker meets, where building it with
    pathlib cost ~0.2 s per worker. Recomputed only when the environment naming it changes."""
    return _folder_for(os.environ.get("ASSAY_CACHE_DIR"), os.environ.get("XDG_CACHE_HOME"))


@lru_cache(maxsize=8)
def _folder_for(cache_dir: str | None, xdg_cache_home: str | None) -> str:
    # the arguments are the environment default_cache_dir reads: they key the cache
    return str(default_cache_dir() / f"code-{sys.implementation.cache_tag}-m{marshal.version}")


def compile_cached(source: str, filename: str, mode: str) -> CodeType:
    """``compile(source, filename, mode)``, from the cache when this source was compiled before."""
    key = hashlib.sha256(f"{filename}\0{mode}\0{source}".encode("utf-8", "surrogatepass")).hexdigest()
    code = _MEMORY.get(key)
    if code is not None:
        return code
    folder = os.path.join(_folder(), key[:2])
    path = os.path.join(folder, key)
    try:
        with open(path, "rb") as handle:
            loaded = marshal.loads(handle.read())
        if isinstance(loaded, CodeType):
            code = loaded
    except (OSError, ValueError, EOFError, TypeError):
        pass
    if code is None:
        code = compile(source, filename, mode)
        try:
            os.makedirs(folder, exist_ok=True)
            temporary = os.path.join(folder, f".{key}.{os.getpid()}.tmp")
            with open(temporary, "wb") as handle:
                handle.write(marshal.dumps(code))
            os.replace(temporary, path)  # atomic: a concurrent worker never reads half a file
        except OSError:
            pass  # a read-only cache only costs time
    if len(_MEMORY) >= _MEMORY_LIMIT:
        _MEMORY.clear()
    _MEMORY[key] = code
    return code
