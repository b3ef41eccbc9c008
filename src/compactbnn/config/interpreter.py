"""The Python that runs the workflow's jobs, named by a path that a shell takes unquoted.

Snakemake's ``script:`` directive runs a job as the shell command ``<sys.executable> <script>``
with the interpreter's path unquoted (snakemake/snakemake issue 2645), and its cluster executors
start jobs as ``<sys.executable> -m snakemake ...`` the same way. From a checkout or virtual
environment under a path with a space, a quote, ``&`` or another character the shell reads, every
such job then fails (``bash: line 1: /home/me/my: No such file or directory``, exit status 127).

``shell_safe_python`` gives the Snakefile a name for the same interpreter without such characters:
a symbolic link to the environment's directory (the virtual environment, or the installation whose
``bin/`` holds the interpreter), made in the user's cache directory or, failing that, in a private
folder under the temporary directory. The link points at the directory, not at the interpreter:
Python finds a virtual environment's ``pyvenv.cfg`` (and so its packages) next to the path it was
started by, so ``<link>/bin/python`` is the virtual environment's Python with all its packages.
Standard library only, as all of ``compactbnn.config``.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tempfile
from pathlib import Path

UPSTREAM_ISSUE = "https://github.com/snakemake/snakemake/issues/2645"


class PathError(RuntimeError):
    """No shell-safe name for the interpreter could be made; the message is one line naming the path."""


def shell_safe(path: str) -> bool:
    """Whether a shell reads ``path`` as one word, unquoted (shlex.quote leaves it unchanged)."""
    return bool(path) and shlex.quote(path) == path


def first_unsafe_character(path: str) -> str | None:
    """The first character of ``path`` that a shell would read specially, or None."""
    return next((character for character in path if not shell_safe(character)), None)


def link_folders() -> list[Path]:
    """Where a link may be made, best first: the user's cache directory (persistent, and on a cluster
    usually on the shared home, so compute nodes see it too), then a folder of this user's own under
    the temporary directory."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [Path(cache) / "compactbnn" / "python", Path(tempfile.gettempdir()) / f"compactbnn-python-{os.getuid()}"]


def shell_safe_python(executable: str, folders: list[Path] | None = None) -> str:
    """``executable`` itself if a shell takes its path unquoted, else the same interpreter by a link.

    The link, ``<folder>/<hash of the environment's path>``, points at the directory two levels above
    the interpreter (``<env>/bin/python`` -> ``<env>``); it is made once and reused by later runs.
    Raises PathError, in one line naming the path, the character and the upstream issue, when no
    folder of ``folders`` (default ``link_folders()``) has a safe path and can hold the link.
    """
    if shell_safe(executable):
        return executable
    interpreter = Path(executable)
    environment = interpreter.parent.parent
    name = hashlib.sha256(str(environment).encode()).hexdigest()[:16]
    reasons = []
    for folder in link_folders() if folders is None else folders:
        if not shell_safe(str(folder)):
            reasons.append(f"{folder} has {first_unsafe_character(str(folder))!r} too")
            continue
        try:
            link = _link_in(folder, name, environment)
        except OSError as error:
            reasons.append(f"{folder}: {error.strerror or error}")
            continue
        candidate = link / interpreter.parent.name / interpreter.name
        # the interpreter's own folder and file name stay in the path: they must be safe too
        if shell_safe(str(candidate)) and candidate.exists() and os.path.samefile(candidate, interpreter):
            return str(candidate)
        reasons.append(f"{candidate} is not a shell-safe name of {interpreter}")
    raise PathError(
        f"the Python running Snakemake, {executable}, has {first_unsafe_character(executable)!r} in its path, "
        f"which Snakemake's script: directive does not quote ({UPSTREAM_ISSUE}), and no shell-safe link to "
        f"{environment} could be made ({'; '.join(reasons)}): move the checkout or virtual environment "
        "to a path of letters, digits and _ . / - only, or set XDG_CACHE_HOME to a writable folder with such a path"
    )


def _link_in(folder: Path, name: str, environment: Path) -> Path:
    """``folder/name``, a symbolic link to ``environment``, made (atomically) unless it already is one.

    The folder is made private (0700). A folder under the shared temporary directory must belong to
    this user: another user could otherwise plant a link there to a Python of theirs.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = folder.lstat()
    if folder.is_symlink() or status.st_uid != os.getuid():
        raise OSError(f"{folder} is not a folder of this user's own")
    link = folder / name
    if link.is_symlink() and os.readlink(link) == str(environment):
        return link
    # a fresh link under a name of this process's own, then renamed over the old one: two runs starting
    # at once never see a half-made or missing link
    staging = folder / f".{name}.{os.getpid()}"
    staging.unlink(missing_ok=True)
    staging.symlink_to(environment, target_is_directory=True)
    os.replace(staging, link)
    return link
