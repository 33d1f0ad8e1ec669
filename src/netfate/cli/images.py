"""netfate images ...: the NF images the project builds itself (the VM flavour's guest)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from netfate.cli.common import console, emit_json, guarded

app = typer.Typer(help="Images the project builds for its flavours (VM guest).")


@app.command("build-vm")
def build_vm(
    cache: Annotated[Path | None, typer.Option(
        help="Cache directory (default /var/cache/netfate/vm)")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rewrite the initramfs")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Build the VM guest: Debian's kernel (apt-get download, never installed on the host)
    and an initramfs with busybox, the NFs' tools, their modules and qemu-guest-agent.
    Idempotent: with the same inputs nothing is rewritten."""
    from netfate.drivers import vm_image

    img = guarded(lambda: vm_image.build(cache or vm_image.DEFAULT_CACHE, force=force))
    if json_out:
        emit_json({**asdict(img), "disk_bytes": img.disk_bytes})
        return
    console.print(f"kernel {img.kernel_abi}: {img.kernel} ({img.kernel_bytes / 1e6:.1f} MB)")
    console.print(f"initrd {img.initrd} ({img.initrd_bytes / 1e6:.1f} MB), key {img.key}")
