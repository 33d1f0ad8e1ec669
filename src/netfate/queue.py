"""A node's local notification queue: NFs drop JSON files (maildir style: write in tmp/, rename
into new/), and the agent drains them to forward."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any


class NotificationQueue:
    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> Path:
        for sub in ("tmp", "new"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self.root

    def post(self, note: dict[str, Any]) -> None:
        self.ensure()
        name = f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.root / "tmp" / name
        tmp.write_text(json.dumps(note))
        os.rename(tmp, self.root / "new" / name)

    def pending(self) -> list[Path]:
        try:
            return sorted((self.root / "new").glob("*.json"))
        except FileNotFoundError:
            return []

    def drain(self) -> list[dict[str, Any]]:
        """Read and remove every queued notification, oldest first; skip malformed files."""
        out = []
        for p in self.pending():
            try:
                data = json.loads(p.read_text())
                if isinstance(data, dict):
                    out.append(data)
            except (OSError, ValueError):
                pass
            p.unlink(missing_ok=True)
        return out
