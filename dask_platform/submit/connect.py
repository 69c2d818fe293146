"""A Client connected to a target's scheduler, and the one place where failing to get there becomes a one-line
error: a closed port, a silent peer, no kubeconfig, the Kubernetes API refusing or not answering, no running
scheduler pod, a scheduler that fails the client's first call (then the version table, exit 3)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dask_platform.errors import UserError, VersionMismatch
from dask_platform.submit.compat import remote_versions, version_table

if TYPE_CHECKING:
    from dask_platform.submit.target import Target


class Unreachable(Exception):
    """Nothing usable answers where a target points; the message says what and where."""


class KubeconfigError(Exception):
    """The kubeconfig could not be loaded: missing, unparsable, or without the context asked for."""


@dataclass(frozen=True)
class Reached:
    """A target opened for a run: the scheduler's address (as this process reaches it) and a Client on it."""

    client: Any
    address: str


@contextlib.contextmanager
def reach(target: Target, connect_timeout: float, echo: Callable[[str], None]) -> Iterator[Reached]:
    """Open ``target`` and connect a Client to its scheduler; both are closed at the end. Anything that stops
    either becomes a UserError naming the target (``explain``); errors of the run itself are the caller's."""
    with contextlib.ExitStack() as stack:
        try:
            address = stack.enter_context(target.open(echo))
            client = connect_or_explain(address, connect_timeout, target.connect_attempts)
        except UserError:
            raise
        except Exception as exc:
            message = explain(exc)
            if message is None:
                raise
            raise UserError(f"{target.where}: {message}" if target.where else message) from None
        stack.callback(client.close)
        yield Reached(client, address)


def explain(exc: BaseException) -> str | None:
    """What a failure to reach a scheduler means, in one line; None for an error that is not about reaching it."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    detail = " ".join(str(exc).split())[:200]
    if isinstance(exc, Unreachable):
        return str(exc)
    if isinstance(exc, KubeconfigError):
        return f"no usable kubeconfig ({detail}); --kube-context chooses a context, $KUBECONFIG the file"
    if isinstance(exc, ApiException):
        return (
            f"the Kubernetes API answered {exc.status} {exc.reason} (the kubeconfig's credentials must allow "
            "listing pods and port-forwarding in the cluster's namespace)"
        )
    if isinstance(exc, HTTPError):  # urllib3 under the kubernetes client: the API server does not answer
        return f"the Kubernetes API server did not answer ({type(exc).__name__}: {detail})"
    if isinstance(exc, OSError | TimeoutError):
        return f"{type(exc).__name__}: {detail}"
    return None


def _refuse_fast(address: str) -> None:
    """A closed port is known at once: say so instead of letting distributed retry until its timeout. Anything
    else (no route, a slow network, an accepting port) is left to the Client and its timeout."""
    match = re.fullmatch(r"tcp://\[?([^\]]+?)\]?:([0-9]+)", address)
    if not match:
        return
    try:
        with socket.create_connection((match.group(1), int(match.group(2))), timeout=2):
            return
    except ConnectionRefusedError:
        raise Unreachable(
            f"the Dask scheduler at {address} refused the connection: nothing listens on that port. Is the "
            "scheduler running, and is that its comm port (8786 by default)?"
        ) from None
    except OSError:
        return


def connect(address: str, timeout_s: float, attempts: int = 1) -> Any:
    """A Client connected to ``address``; Unreachable when nothing answers within ``timeout_s``.

    distributed waits for the scheduler's handshake without a deadline once TCP connects, so a peer that accepts
    and stays silent (another service on that port, a port-forward stream that never delivers) would hang the
    run: the connection is made in a helper thread and given up after the timeout. With ``attempts`` > 1 (a
    port-forward, where every connection gets a new stream), a silent or failed connection is tried again."""
    _refuse_fast(address)
    from distributed import Client

    for attempt in range(attempts):
        outcome: dict[str, Any] = {}

        def make_client(outcome: dict[str, Any] = outcome) -> None:
            try:
                outcome["client"] = Client(address, timeout=f"{timeout_s}s", set_as_default=True)
            except BaseException as exc:
                outcome["error"] = exc

        # A daemon thread: one stuck on a silent peer must not keep the process alive at exit.
        thread = threading.Thread(target=make_client, name="dask-connect", daemon=True)
        thread.start()
        thread.join(timeout_s + 5)
        if "client" in outcome:
            return outcome["client"]
        error = outcome.get("error")
        if isinstance(error, OSError | TimeoutError) and attempt + 1 < attempts:
            continue  # through a port-forward: a new connection opens a new stream
        if isinstance(error, OSError | TimeoutError):
            raise Unreachable(
                f"could not reach the Dask scheduler at {address} within {timeout_s:g} s"
                f"{f' ({attempts} attempts)' if attempts > 1 else ''} ({type(error).__name__}: "
                f"{' '.join(str(error).split())[:200]}). Is the scheduler running and the port open?"
            ) from None
        if error is not None:
            raise error
        # connected, but silent: a new connection (a new port-forward stream) may answer
    raise Unreachable(
        f"the Dask scheduler at {address} accepted the connection but sent no handshake within {timeout_s + 5:g} s "
        f"({attempts} attempts). Is that port a Dask scheduler's comm port?"
    )


def connect_or_explain(address: str, timeout_s: float, attempts: int) -> Any:
    """``connect``, and when the scheduler fails the Client's first call (an older or newer distributed whose
    handlers take other arguments), the version table instead of the scheduler's traceback: exit 3."""
    try:
        return connect(address, timeout_s, attempts=attempts)
    except Unreachable:
        raise
    except Exception as exc:
        cause = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        try:
            report = version_table(remote_versions(address, timeout_s))
        except Exception:
            raise UserError(f"the Dask scheduler at {address} failed the client's first call ({cause})") from None
        if report.critical:
            raise VersionMismatch(
                f"client and cluster versions differ in {', '.join(report.critical)}: the scheduler failed the "
                f"client's first call ({cause}). Use the platform image's environment (requirements/lock.txt):\n"
                f"{report.table()}"
            ) from None
        raise UserError(f"the Dask scheduler at {address} failed the client's first call ({cause})") from None
