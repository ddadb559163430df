"""Which runs a client's filtered cancel picks, and the active runs by client id.

Owns: checking the arguments of :meth:`~._client.ClientSession.cancel_runs` (exactly one of
the earlier JS ``CancelFilter``'s ``all``, ``own`` and client id, or a predicate; a usable
reason name; a client id to own runs by), what the filter selects among the active runs
(status ``active``: a suspended run is skipped, since no agent runs it and agents ignore
cancels for it), and the ``{client_id: {run_id, ...}}`` map of
:meth:`~._client.ClientSession.active_runs`. Publishing the cancels is the client's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .._errors import InvalidArgumentError, unable_to
from .._wire import MAX_REASON_LENGTH, check_reason_name
from ._run_info import RunInfo

__all__ = ["active_by_client", "runs_to_cancel"]


def runs_to_cancel(runs: Iterable[RunInfo], *, all: bool, own: bool, client_id: str | None,
                   where: Callable[[RunInfo], bool] | None, reason: str | None,
                   own_client_id: str | None) -> list[str]:
    """The ids of the active ``runs`` that the one filter given selects, in order.

    ``own_client_id`` is the client's own (``own`` selects the runs that answer it).

    Raises:
        InvalidArgumentError: not exactly one filter; ``own`` without a client id of its
            own; ``reason`` is not 1 to 64 printable characters.
    """
    if sum((all, own, client_id is not None, where is not None)) != 1:
        raise InvalidArgumentError(unable_to(
            "cancel runs", "give exactly one of all, own, client_id and where"))
    if reason is not None and check_reason_name(reason) is None:
        raise InvalidArgumentError(unable_to(
            "cancel runs", f"a cancel reason is 1 to {MAX_REASON_LENGTH} printable "
            f"characters, got {reason!r:.80}"))
    if own:
        client_id = own_client_id
        if not client_id or client_id == "*":
            raise InvalidArgumentError(unable_to(
                "cancel own runs", "this channel has no client id to own runs by"))
    select = where if where is not None else (
        (lambda run: True) if all else (lambda run: run.client_id == client_id))
    return [run.run_id for run in runs if run.status == "active" and select(run)]


def active_by_client(runs: Iterable[RunInfo], *, include_suspended: bool
                     ) -> dict[str | None, set[str]]:
    """The active ``runs`` (and the suspended ones too, if asked) by the client id they
    answer; runs whose start named no client id are under ``None``."""
    active: dict[str | None, set[str]] = {}
    for run in runs:
        if run.status == "active" or (include_suspended and run.status == "suspended"):
            active.setdefault(run.client_id, set()).add(run.run_id)
    return active
