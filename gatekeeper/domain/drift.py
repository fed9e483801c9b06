"""Drift: the live objects of a target against the manifests at its baseline (DESIGN §3). Pure.

Only what Git sets counts: a field the manifest sets that the live object has with another value,
or an object missing live, is drift. What only the server or other controllers set (status, uid,
resourceVersion, generation, creationTimestamp, managedFields, defaults, Argo CD and Flux tracking
labels and annotations, sidecars a webhook injected into a list merged by name) is not. Numbers
and quantities compare by meaning (``"1"`` and ``1000m`` CPU; ``8080`` and ``"8080"``). Secret
values never appear in a diff. Nothing here reads Git or a cluster: readers bring the objects.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from gatekeeper.domain.policy import IgnoreRule
from gatekeeper.domain.types import DiffLine, Reason

# Differences kept per object and objects kept per reason (the rest are counted, not stored).
MAX_FIELDS = 10
MAX_OBJECTS = 20
MAX_VALUE = 120

# Labels and annotations that controllers write over what Git says (tracking, rollout state).
TRACKING_KEYS = frozenset(
    {
        "app.kubernetes.io/instance",
        "kubectl.kubernetes.io/last-applied-configuration",
        "kubectl.kubernetes.io/restartedAt",
        "deployment.kubernetes.io/revision",
    }
)
TRACKING_PREFIXES = ("argocd.argoproj.io/", "kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/", "fluxcd.io/")
# The metadata Git can set and a drift check compares; the rest is identity or server-owned.
COMPARED_METADATA = ("labels", "annotations")
# Lists merged by key (Kubernetes' strategic merge keys): a live element Git does not name is
# another controller's (an injected sidecar, an env var a webhook adds), never drift.
MERGE_KEYS = ("name", "mountPath", "containerPort", "port", "devicePath")
# Path segments under which strings are resource quantities.
QUANTITY_PARENTS = frozenset({"limits", "requests", "hard", "capacity", "overhead", "sizeLimit", "storage"})
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_SUFFIX = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60, "n": Decimal("1e-9"), "u": Decimal("1e-6"),
    "m": Decimal("1e-3"), "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
    "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"), "": Decimal(1),
}  # fmt: skip
CLUSTER_SCOPED = frozenset(
    {
        "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
        "StorageClass", "PriorityClass", "IngressClass", "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration", "APIService", "RuntimeClass", "Node",
    }
)  # fmt: skip
UNSET = "(unset)"
REDACTED = "(redacted)"


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """Which object: ``apiVersion``, ``kind``, namespace (None: cluster-scoped) and name."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    @classmethod
    def of(cls, manifest: Mapping[str, Any], default_namespace: str | None = None) -> ObjectRef:
        metadata = manifest.get("metadata") or {}
        kind = str(manifest.get("kind", ""))
        namespace = metadata.get("namespace") or (None if kind in CLUSTER_SCOPED else default_namespace)
        return cls(str(manifest.get("apiVersion", "")), kind, namespace, str(metadata.get("name", "")))

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.api_version} {self.kind} {where}"


@dataclass(frozen=True, slots=True)
class ObjectDrift:
    """One object that differs: missing live, or its first ``fields`` differences (``more`` left out)."""

    ref: ObjectRef
    missing: bool = False
    fields: tuple[DiffLine, ...] = ()
    more: int = 0


# --- comparison ---------------------------------------------------------------------------------


def compare(
    ref: ObjectRef, desired: Mapping[str, Any], live: Mapping[str, Any] | None, ignore: Sequence[IgnoreRule] = ()
) -> ObjectDrift | None:
    """How ``live`` differs from ``desired`` in what ``desired`` sets (None: no drift)."""
    if live is None:
        return ObjectDrift(ref, missing=True)
    rules = [rule for rule in ignore if rule.applies(ref.kind, ref.namespace, ref.name)]
    pointers = tuple(pointer for rule in rules for pointer in rule.json_pointers)
    secret = ref.kind == "Secret" and ref.api_version == "v1"
    found = [
        line
        for line in _object_lines(str(ref), _secret_data(desired) if secret else desired, live, secret)
        if not any(line.path == p or line.path.startswith(p.rstrip("/") + "/") for p in pointers)
    ]
    if not found:
        return None
    return ObjectDrift(ref, fields=tuple(found[:MAX_FIELDS]), more=max(0, len(found) - MAX_FIELDS))


def _object_lines(name: str, desired: Mapping[str, Any], live: Mapping[str, Any], secret: bool) -> Iterator[DiffLine]:
    for key, value in desired.items():
        if key in ("apiVersion", "kind", "status"):
            continue
        if key == "metadata":
            yield from _metadata_lines(name, value or {}, live.get("metadata") or {})
            continue
        redact = secret and key in ("data", "stringData")
        yield from _lines(name, f"/{_escape(key)}", value, live.get(key, _MISSING), redact)


def _metadata_lines(name: str, desired: Mapping[str, Any], live: Mapping[str, Any]) -> Iterator[DiffLine]:
    for key in COMPARED_METADATA:
        wanted = {k: v for k, v in (desired.get(key) or {}).items() if not _tracking(k)}
        if wanted:
            yield from _lines(name, f"/metadata/{key}", wanted, live.get(key) or {}, False)


def _tracking(key: str) -> bool:
    return key in TRACKING_KEYS or key.startswith(TRACKING_PREFIXES)


class _Missing:
    def __repr__(self) -> str:
        return UNSET


_MISSING: Any = _Missing()


def _lines(name: str, path: str, desired: Any, live: Any, redact: bool) -> Iterator[DiffLine]:
    if live is _MISSING:
        if not _empty(desired):
            yield _line(name, path, desired, live, redact)
    elif isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            yield _line(name, path, desired, live, redact)
            return
        for key, value in desired.items():
            yield from _lines(name, f"{path}/{_escape(str(key))}", value, live.get(key, _MISSING), redact)
    elif isinstance(desired, list):
        yield from _list_lines(name, path, desired, live, redact)
    elif not _same(desired, live, path):
        yield _line(name, path, desired, live, redact)


def _list_lines(name: str, path: str, desired: list[Any], live: Any, redact: bool) -> Iterator[DiffLine]:
    if not isinstance(live, list):
        if desired or live is not None:
            yield _line(name, path, desired, live, redact)
        return
    key = _merge_key(desired)
    if key is None:
        if len(desired) != len(live):
            yield _line(name, path, desired, live, redact)
            return
        for index, (wanted, have) in enumerate(zip(desired, live, strict=True)):
            yield from _lines(name, f"{path}/{index}", wanted, have, redact)
        return
    by_key = {_key_of(item, key): item for item in live if isinstance(item, Mapping)}
    for index, wanted in enumerate(desired):
        yield from _lines(name, f"{path}/{index}", wanted, by_key.get(_key_of(wanted, key), _MISSING), redact)


def _merge_key(items: list[Any]) -> str | None:
    if not items or not all(isinstance(item, Mapping) for item in items):
        return None
    return next((key for key in MERGE_KEYS if all(key in item for item in items)), None)


def _key_of(item: Mapping[str, Any], key: str) -> str:
    return str(item.get(key))


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == [] or value == ""


def _same(desired: Any, live: Any, path: str) -> bool:
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live
    if desired == live:
        return True
    quantity = any(segment in QUANTITY_PARENTS for segment in path.split("/"))
    if quantity or isinstance(desired, int | float) or isinstance(live, int | float):
        left, right = _number(desired, quantity), _number(live, quantity)
        return left is not None and left == right
    return False


def _number(value: Any, quantity: bool) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if match is None or (match.group(2) and not quantity):
        return None
    suffix = match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(match.group(1) + suffix)
        return Decimal(match.group(1)) * _SUFFIX[suffix]
    except InvalidOperation:
        return None


def _secret_data(desired: Mapping[str, Any]) -> dict[str, Any]:
    """A Secret as the API stores it: ``stringData`` written into ``data`` (base64)."""
    merged = {key: value for key, value in desired.items() if key != "stringData"}
    string_data = desired.get("stringData") or {}
    if string_data:
        data = dict(merged.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        merged["data"] = data
    return merged


def _line(name: str, path: str, desired: Any, live: Any, redact: bool) -> DiffLine:
    if redact:
        return DiffLine(name, path, REDACTED, UNSET if live is _MISSING else REDACTED)
    return DiffLine(name, path, _short(desired), _short(live))


def _short(value: Any) -> str:
    text = UNSET if value is _MISSING else json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def _escape(key: str) -> str:
    """A key as a JSON pointer token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


# --- the result of a check ----------------------------------------------------------------------


def diff_lines(drifted: Sequence[ObjectDrift]) -> tuple[DiffLine, ...]:
    """The readable diff stored with the decision: the first objects, each with its first fields."""
    lines: list[DiffLine] = []
    for item in drifted[:MAX_OBJECTS]:
        if item.missing:
            lines.append(DiffLine(str(item.ref), "", "(present in Git)", "(missing live)"))
        lines.extend(item.fields)
        if item.more:
            lines.append(DiffLine(str(item.ref), "", f"... {item.more} more differences", ""))
    if len(drifted) > MAX_OBJECTS:
        lines.append(DiffLine(f"... {len(drifted) - MAX_OBJECTS} more objects", "", "", ""))
    return tuple(lines)


def digest(drifted: Sequence[ObjectDrift]) -> str:
    """Identifies a drift: the same objects differing in the same fields by the same values."""
    canonical = [
        [str(item.ref), item.missing, [[f.path, f.desired, f.live] for f in item.fields], item.more]
        for item in sorted(drifted, key=lambda item: item.ref)
    ]
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def summary(drifted: Sequence[ObjectDrift], checked: int, baseline: str) -> str:
    """``drift_detected``'s message: the objects and their first differences."""
    parts = []
    for item in drifted[:3]:
        if item.missing:
            parts.append(f"{item.ref} is missing live")
        else:
            first = item.fields[0]
            parts.append(f"{item.ref} {first.path} is {first.live} live, {first.desired} in Git")
    more = f"; and {len(drifted) - 3} more" if len(drifted) > 3 else ""
    return (
        f"{len(drifted)} of {checked} objects differ from Git at {baseline[:12]}: " + "; ".join(parts) + more
    )


# --- what the drift reader hands the check --------------------------------------------------------

# Reasons a reader gives instead of a comparison: the first defer (fail closed, retried after
# RETRY_DELAY), the others warn and approve (never a silent pass).
CLUSTER_UNREACHABLE = "cluster_unreachable"
GIT_UNAVAILABLE = "git_unavailable"
REVISION_UNKNOWN = "revision_unknown"
UNSUPPORTED = "drift_unsupported"
BASELINE_UNKNOWN = "drift_baseline_unknown"
DETECTED = "drift_detected"
RETRIED = frozenset({CLUSTER_UNREACHABLE, GIT_UNAVAILABLE, REVISION_UNKNOWN})


@dataclass(frozen=True, slots=True)
class DriftOutcome:
    """One policy's drift facts for a target: the baseline compared, how many objects Git has,
    those that differ, or the ``problem`` that stood in the way (a reason with one of the codes
    above)."""

    baseline: str | None = None
    checked: int = 0
    drifted: tuple[ObjectDrift, ...] = ()
    problem: Reason | None = None


@dataclass(frozen=True, slots=True)
class DriftReading:
    """What the drift reader returns (``Facts.readings["drift"]``): an outcome per policy name."""

    outcomes: tuple[tuple[str, DriftOutcome], ...] = ()

    def of(self, policy: str) -> DriftOutcome | None:
        return next((outcome for name, outcome in self.outcomes if name == policy), None)
