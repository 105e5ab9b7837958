"""What the Ray backends share without importing Ray: the extra's check, the cluster connection, their errors.

Importing this module never imports ``ray``, so the SB3 path and ``--help`` stay free of it; the Ray code itself
lives in :mod:`traingym.agents.rllib_backend` (RLlib PPO) and :mod:`traingym.experiments.ray_tune` (ablation grids).
"""

from __future__ import annotations

import os
import socket
from typing import Literal

RAY_REQUIREMENT = "ray[rllib,tune]==2.60.0"
"""The pinned ``traingym[ray]`` extra (pyproject.toml)."""
LOCAL = "local"
"""``--ray-address local``: start a Ray instance inside this process (one machine)."""
CONNECT_TIMEOUT_S = 5.0
"""How long a ``host:port`` address gets to accept a TCP connection (``ray.init`` itself retries for minutes)."""


class RayAddressError(ValueError):
    """``--ray-address`` names no reachable Ray cluster."""


def require_ray(flag: str, part: Literal["rllib", "tune"]) -> None:
    """Raise a one-line ValueError (what to install) when the ``[ray]`` extra is missing.

    Args:
        flag: the option that asked for Ray, e.g. ``"--backend rllib"``.
        part: the Ray library it needs.
    """
    try:
        if part == "rllib":
            import ray.rllib  # noqa: F401
        else:
            import ray.tune  # noqa: F401
    except ImportError as error:
        raise ValueError(f"{flag} needs the optional Ray extra ({RAY_REQUIREMENT}), which is not importable here "
                         f"({error}); install it with: pip install 'traingym[ray]'") from None


def check_ray_address(address: str) -> None:
    """Validate the form of ``--ray-address`` (``local``, ``auto``, ``host:port`` or ``ray://host:port``)."""
    if address in (LOCAL, "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--ray-address must be 'local', 'auto', 'host:port' or 'ray://host:port', got {address!r}")


def _reachable(address: str) -> str | None:
    """None when ``host:port`` accepts a TCP connection within :data:`CONNECT_TIMEOUT_S`, else the reason."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as error:
        return str(error) or type(error).__name__


def connect(address: str, num_cpus: int | None = None) -> bool:
    """Join (``auto``, ``host:port``, ``ray://...``) or start (``local``) a Ray cluster for this process.

    Returns whether this call initialised Ray (the caller then shuts it down); a process already connected (e.g.
    a test's cluster) is left as it is. ``num_cpus`` sizes a ``local`` instance (default: the machine's cores).

    Raises:
        RayAddressError: nothing answers at ``address`` (one line, no traceback at the CLI).
    """
    import ray

    if ray.is_initialized():
        return False
    if address not in (LOCAL, "auto"):
        reason = _reachable(address)
        if reason is not None:
            raise RayAddressError(f"--ray-address {address}: no Ray cluster reachable there ({reason}); start one "
                                  "with `ray start --head` or pass --ray-address local")
    try:
        if address == LOCAL:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, TimeoutError) as error:
        raise RayAddressError(f"--ray-address {address}: cannot join a Ray cluster ({str(error).splitlines()[0]})"
                              ) from None
    return True
