"""What a variant must serve, and whether a server's answer is it: the whole repo id and the revision.

Facts relied on (TGI's ``GET /info``): ``model_id`` is the exact ``MODEL_ID`` the server was
started with, so for staged weights the path of their directory (the stack mounts
``<bucket prefix>/<revision>``, e.g. ``/mnt/datasets/model-weights/flan-t5-small/<commit>``), and
for a server that loads from the Hub the repo id itself; ``model_sha`` is the Hub commit it loaded
(null for a local directory). Other engines (an OpenAI-style server) can build a :class:`Served`
from what they report and reuse :meth:`Expected.problem` unchanged.

The rule (:meth:`Expected.problem`), most precise first:

1. ``weights`` known (the program passes the ``MODEL_ID`` it gave the server; it contains the
   revision): ``model_id`` must be exactly that path;
2. ``model_id`` equal to the repo id (Hub-served): ``model_sha`` must be the revision;
3. otherwise ``model_id`` must be a path whose components end with *all* of the repo id's
   components (the organisation included: ``attacker/flan-t5-small`` is not
   ``google/flan-t5-small``), followed by the revision when one is expected.

Plain Python (shipped with the package into the Job).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REVISION = re.compile(r"^(?:[0-9a-fA-F]{7,64}|main)$")
"""A path component that is a revision: a hex commit id (7-64 characters) or ``main``."""


def components(text: str) -> list[str]:
    """The non-empty ``/``-separated parts of a repo id or path."""
    return [part for part in text.strip().split("/") if part]


def _ends_with(parts: list[str], tail: list[str]) -> bool:
    if not tail or len(tail) > len(parts):
        return False
    return [p.lower() for p in parts[len(parts) - len(tail):]] == [t.lower() for t in tail]


def repo_matches(repo: str, model_id: str) -> bool:
    """Whether ``model_id`` is the model ``repo`` at any revision: equal, or a path ending with every
    component of ``repo`` (optionally followed by a revision component). Nothing is dropped."""
    if repo == model_id:
        return True
    want, have = components(repo), components(model_id)
    if _ends_with(have, want):
        return True
    return len(have) >= 2 and REVISION.match(have[-1]) is not None and _ends_with(have[:-1], want)


@dataclass(frozen=True)
class Served:
    """What a server says it serves."""

    model_id: str
    sha: str | None = None
    """The Hub commit it loaded, when it reports one (TGI's ``model_sha``)."""
    served_as: str | None = None
    """The rest of an OpenAI-compatible ``/v1/models`` entry where it differs from ``model_id``: the
    served name and the owner (vLLM: the repo id, ``vllm``; TGI: both its model id, so None). It keeps a
    TGI and a vLLM variant of the same weights (an engine migration) apart in the split."""

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Served:
        """From a TGI ``/info`` body (``model_id`` a string, checked by the caller)."""
        sha = info.get("model_sha")
        return cls(str(info["model_id"]), sha if isinstance(sha, str) and sha else None)

    def label(self) -> str:
        """``model_id``, with ``@<sha>`` when the server reports one and how it serves it (the split counts by
        it)."""
        base = self.model_id if self.sha is None else f"{self.model_id}@{self.sha}"
        return base if self.served_as is None else f"{base} ({self.served_as})"


@dataclass(frozen=True)
class Expected:
    """What a variant must serve: its repo id, revision and, when known, the weights path it was given."""

    repo: str
    revision: str | None = None
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.revision is not None and self.weights is not None and self.revision not in components(self.weights):
            raise ValueError(f"the weights path {self.weights!r} does not contain the revision {self.revision!r}")

    def describe(self) -> str:
        """``google/flan-t5-small@0fc9ddf`` (the short revision), for messages and the plan."""
        return self.repo if self.revision is None else f"{self.repo}@{self.revision[:7]}"

    def problem(self, served: Served) -> str | None:
        """None when ``served`` is this model at this revision, else what differs."""
        model_id = served.model_id
        if self.weights is not None:
            if components(model_id) == components(self.weights):
                return None
            return f"model_id {model_id!r} is not the weights path {self.weights!r} ({self.describe()})"
        if model_id == self.repo:
            if self.revision is None:
                return None
            if served.sha is None:
                return f"serves {model_id!r} but reports no model_sha, so revision {self.revision} is unverified"
            if served.sha.lower() != self.revision.lower():
                return f"serves {model_id!r} at revision {served.sha}, not {self.revision}"
            return None
        have = components(model_id)
        if self.revision is None:
            if repo_matches(self.repo, model_id):
                return None
            return f"model_id {model_id!r} is not {self.repo!r} (the whole repo id must match)"
        if not have or have[-1].lower() != self.revision.lower():
            return f"model_id {model_id!r} is not revision {self.revision} of {self.repo!r}"
        if not _ends_with(have[:-1], components(self.repo)):
            return f"model_id {model_id!r} is not {self.repo!r} (the whole repo id must match)"
        return None

    def indistinguishable_from(self, other: Expected) -> bool:
        """True when one server's answer could be either (same repo, revision and weights)."""
        return (self.repo.lower(), (self.revision or "").lower(), self.weights) == (
            other.repo.lower(), (other.revision or "").lower(), other.weights)
