"""The benchmarks' printed report: aligned `label  value  note` lines, and figures checked against their targets
(a missed target is listed, so `--check` can exit 1)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    op: str  # "<=", ">=" or "=="
    limit: float

    def met(self, value: float) -> bool:
        if self.op == "<=":
            return value <= self.limit
        if self.op == ">=":
            return value >= self.limit
        return value == self.limit

    def text(self) -> str:
        return f"target {self.op} {self.limit:g}"


class Report:
    def __init__(self, targets: dict[str, Target], width: int) -> None:
        self.targets = targets
        self.width = width  # of the label column
        self.missed: list[str] = []

    def line(self, label: str, value: str, note: str = "") -> None:
        print(f"  {label:<{self.width}} {value:>12}   {note}".rstrip(), flush=True)

    def figure(self, label: str, value: float, fmt: str, unit: str = "", target: str | None = None,
               note: str = "") -> None:
        text = format(value, fmt) + (f" {unit}" if unit else "")
        verdict = ""
        if target is not None:
            ok = self.targets[target].met(value)
            verdict = f"{self.targets[target].text()} {'ok' if ok else 'MISSED'}"
            if not ok:
                self.missed.append(target)
        self.line(label, text, "   ".join(x for x in (verdict, note) if x))


def storage_breakdown(report: Report, ops: dict[str, int], per: float, unit: str, *, indent: str = "    ") -> None:
    """The app's table and queue requests by operation (shared.storage.transport.operation), per `unit`; table
    names without the run's TABLE_PREFIX."""
    import os

    prefix = os.environ.get("TABLE_PREFIX", "")
    merged: dict[str, int] = {}
    for name, count in ops.items():
        kind, _, resource = name.partition(" ")
        if prefix and resource.startswith(prefix):
            resource = resource[len(prefix):]
        key = f"{kind} {resource}".rstrip()
        merged[key] = merged.get(key, 0) + count
    for name, count in sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])):
        if count / per >= 0.005:
            report.line(f"{indent}{name}", f"{count / per:.2f}", unit)
