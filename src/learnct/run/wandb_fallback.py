"""Fall back to offline W&B logging when online logging cannot start.

With ``WANDB_MODE=online`` a missing login makes ``wandb.init`` fail, and an unreachable
server makes it wait for its ``init_timeout`` (90 s) and more. :func:`start_wandb_or_fallback`
first checks within ``timeout`` seconds that the server (``WANDB_BASE_URL``, default
``https://api.wandb.ai``) accepts a TCP connection, then starts the run with ``wandb.init``
waiting at most :func:`wandb_init_timeout` seconds (``WANDB_INIT_TIMEOUT``, W&B's own
variable; learnct's default 15 s, not W&B's 90 s), so that a server that accepts connections
and never answers costs seconds; if either fails it switches ``WANDB_MODE`` to ``offline``,
rebuilds the loggers and says so (sync the offline run later with ``wandb sync``), for this
run only (:func:`restore_wandb_mode` at its end). Offline and disabled modes are left alone.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from learnct.run.config_checks import ConfigError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_INIT_TIMEOUT",
    "reset_wandb",
    "restore_wandb_mode",
    "server_unreachable_reason",
    "start_wandb_or_fallback",
    "wandb_init_timeout",
]

DEFAULT_BASE_URL = "https://api.wandb.ai"
#: Seconds ``wandb.init`` may wait for the server unless ``WANDB_INIT_TIMEOUT`` says otherwise.
DEFAULT_INIT_TIMEOUT = 15.0
ONLINE_MODES = ("online", "run")


def server_unreachable_reason(base_url: str, timeout: float) -> str | None:
    """``None`` when ``base_url``'s host accepts a TCP connection within ``timeout`` seconds
    (name lookup included), else why not."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        return f"WANDB_BASE_URL={base_url!r} has no host name"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                outcome.append(None)
        except OSError as err:
            outcome.append(f"cannot connect to {parts.hostname}:{port} ({err})")

    worker = threading.Thread(target=connect, daemon=True)  # name lookups ignore timeouts
    worker.start()
    worker.join(timeout)
    if not outcome:
        return f"no answer from {parts.hostname}:{port} within {timeout:g} s"
    return outcome[0]


def wandb_init_timeout() -> float:
    """The seconds ``wandb.init`` may wait for the server: ``WANDB_INIT_TIMEOUT`` when set (a
    positive number, else a ``ConfigError``), else :data:`DEFAULT_INIT_TIMEOUT`."""
    text = os.environ.get("WANDB_INIT_TIMEOUT")
    if text is None:
        return DEFAULT_INIT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(
            f"WANDB_INIT_TIMEOUT={text!r} is not valid: a positive number of seconds "
            f"(unset: {DEFAULT_INIT_TIMEOUT:g})"
        )
    return seconds


def _is_wandb(logger: object) -> bool:
    from lightning.pytorch.loggers import WandbLogger

    return isinstance(logger, WandbLogger)


def start_wandb_or_fallback(
    loggers: list,
    rebuild: Callable[[], list],
    timeout: float = 5.0,
    init_timeout: float | None = None,
) -> list:
    """Start the W&B run of ``loggers`` now (not at the first log call), falling back to
    offline mode as the module docstring says; returns the loggers to use. ``timeout``: the
    TCP probe's seconds; ``init_timeout``: ``wandb.init``'s (None: :func:`wandb_init_timeout`)."""
    if not any(_is_wandb(lg) for lg in loggers):
        return loggers
    if os.environ.get("WANDB_MODE", "online") not in ONLINE_MODES:
        return loggers
    init_timeout = wandb_init_timeout() if init_timeout is None else init_timeout
    base_url = os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)
    reason = server_unreachable_reason(base_url, timeout)
    if reason is None:
        try:
            import wandb

            # W&B's process-wide settings: every wandb.init of this process waits this long
            wandb.setup(settings=wandb.Settings(init_timeout=init_timeout))
            for logger in loggers:
                if _is_wandb(logger):
                    _ = logger.experiment  # wandb.init
            return loggers
        except Exception as err:  # no login, timeout, refused key: all mean "not online"
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    _modes_before_fallback.append(os.environ.get("WANDB_MODE"))
    os.environ["WANDB_MODE"] = "offline"
    reset_wandb()  # W&B's process-wide settings were read with the online mode
    print(
        f"W&B online logging unavailable ({reason}); falling back to offline logging "
        "(WANDB_MODE=offline). Upload the run later with `wandb sync <run folder>/wandb`.",
        file=sys.stderr,
        flush=True,
    )
    return rebuild()


#: ``WANDB_MODE`` before this process's fallbacks switched it to offline, to restore at the
#: run's end: the next run of the process (a sweep job of the basic launcher) tries online again
_modes_before_fallback: list[str | None] = []


def restore_wandb_mode() -> None:
    """Undo this process's fallbacks: ``WANDB_MODE`` as it was before the first one (called
    when a run ends, after its W&B run is finished)."""
    if not _modes_before_fallback:
        return
    mode = _modes_before_fallback[0]
    _modes_before_fallback.clear()
    if mode is None:
        os.environ.pop("WANDB_MODE", None)
    else:
        os.environ["WANDB_MODE"] = mode
    reset_wandb()  # the next wandb.init reads the restored mode


def reset_wandb() -> None:
    """Finish any W&B run and drop W&B's process-wide state, so that the next ``wandb.init``
    reads ``WANDB_MODE`` again (best effort)."""
    if "wandb" not in sys.modules:
        return
    import wandb

    try:
        if wandb.run is not None:
            wandb.finish(exit_code=1)  # (wandb 0.31 has no quiet=)
        wandb.teardown()
    except Exception:  # clean-up of a run that never started
        pass
