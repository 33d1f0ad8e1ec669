"""netfate images ...: the images the project builds for its flavours: the node's local OCI
image store (container NFs) and the VM flavour's guest."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from netfate import paths
from netfate.cli.common import (
    ascii_int,
    checked,
    console,
    emit_json,
    given_path,
    guarded,
    need_root,
    results,
    settings,
)
from netfate.errors import InvalidInput
from netfate.oci.layout import check_tag
from netfate.oci.store import DISK_BUDGET_MB, ImageInfo, ImageStore

app = typer.Typer(help="OCI images of container NFs: build the catalogue's, import your own.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z: the image config's "created" is a date
MAX_BUDGET_MB = 1024 * 1024  # 1 TiB for one image: beyond any node's disk


def _tag(value: str) -> str:
    """A typer callback: an OCI tag as the store takes it (oci.layout.check_tag), refused
    at once with one line naming it."""
    try:
        return check_tag(value)
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None


def _store(budget_mb: int = DISK_BUDGET_MB) -> ImageStore:
    paths.configure(settings().paths.run_dir)
    return ImageStore(paths.run_dir() / "images", budget_mb * 1024 * 1024)


def _print(images: list[ImageInfo], json_out: bool) -> None:
    if json_out:
        emit_json([asdict(i) for i in images])
        return
    table = Table("tag", "digest", "size (bytes)")
    for i in images:
        table.add_row(i.tag, i.digest, str(i.size))
    results.print(table)


@app.command("build")
def build(
    nfs: Annotated[list[str] | None, typer.Argument(help="Catalogue NFs (default: every one "
                                                    "offering the container flavour)",
                                                    callback=checked("name"))] = None,
    force: Annotated[bool, typer.Option("--force", help="Build even if the tag exists")] = False,
    epoch: Annotated[int, typer.Option("--source-date-epoch", envvar="SOURCE_DATE_EPOCH",
                                       parser=ascii_int(0, MAX_EPOCH),
                                       help="Timestamp of every entry (s)")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Build catalogue NFs' images reproducibly from the host's Debian packages into the
    node's image store; idempotent (an image already there is kept unless --force)."""
    from netfate.oci.build import build_nf_image, container_nfs

    need_root()
    store = _store()
    names = nfs or container_nfs()
    _print(guarded(lambda: [build_nf_image(store, n, epoch, force=force) for n in names]),
           json_out)


@app.command("list")
def list_cmd(json_out: JsonOpt = False) -> None:
    """The images in the node's store, by tag."""
    _print(guarded(lambda: _store().list()), json_out)


@app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(help="An OCI image layout directory or an "
                                         "oci-archive (podman save --format oci-archive)",
                                         parser=given_path)],
    tag: Annotated[str, typer.Option("--tag", help="Tag in the store, e.g. firewall-1.0.0",
                                     callback=_tag)],
    ref: Annotated[str | None, typer.Option("--ref", help="Which image of the layout "
                                            "(its reference name); default: its only one")]
    = None,
    budget_mb: Annotated[int, typer.Option("--disk-budget-mb",
                                           parser=ascii_int(1, MAX_BUDGET_MB),
                                           help="Refuse an image larger than this")]
    = DISK_BUDGET_MB,
    json_out: JsonOpt = False,
) -> None:
    """Verify (digests, layer entries, size) and store a user's image; nothing is stored
    if any check fails."""
    need_root()
    store = _store(budget_mb)
    _print([guarded(lambda: store.import_image(path, tag, ref))], json_out)


@app.command("remove")
def remove(tag: Annotated[str, typer.Argument(help="The tag to remove", callback=_tag)],
           json_out: JsonOpt = False) -> None:
    """Untag an image. Idempotent: a tag that is not there is a no-op (exit 0), and says
    so."""
    need_root()
    removed = guarded(lambda: _store().remove(tag))
    if json_out:
        emit_json({"tag": tag, "removed": removed})
    elif removed:
        console.print(f"image {tag} removed")
    else:
        console.print(f"no image {tag} in the node's image store: nothing to remove")


@app.command("build-vm")
def build_vm(
    cache: Annotated[Path | None, typer.Option(
        help="Cache directory (default /var/cache/netfate/vm)", parser=given_path)] = None,
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
