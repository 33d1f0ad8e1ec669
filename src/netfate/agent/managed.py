"""The NFs this node's agent deployed for the orchestrator, remembered across restarts.

Converging to the desired state removes what the orchestrator no longer wants, but only among
these: an NF someone started on the node by hand (`netfate nf deploy`, a benchmark) is not the
agent's to remove. On the first start (no record yet) every NF present counts as the agent's,
so leftovers of an earlier agent are still collected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path


class ManagedNFs:
    def __init__(self, path: Path, present: Iterable[str]) -> None:
        self.path = path
        try:
            self.ids: set[str] = set(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            self.ids = set(present)
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(sorted(self.ids)))
        os.replace(tmp, self.path)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self.ids

    def add(self, instance_id: str) -> None:
        if instance_id not in self.ids:
            self.ids.add(instance_id)
            self._save()

    def discard(self, instance_id: str) -> None:
        if instance_id in self.ids:
            self.ids.discard(instance_id)
            self._save()
