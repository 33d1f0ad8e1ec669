"""The NF catalogue: bundles (VNF packages) by sha256."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from netfate.bundle import inspect_bundle, sha256_of
from netfate.db import repo
from netfate.descriptor import Descriptor, implementations_of
from netfate.errors import Conflict, InvalidInput, NetfateError, UnsupportedMediaType
from netfate.orchestrator.api.deps import all_rows, db, one_row, orch, row
from netfate.orchestrator.troubleshoot import PROBE_NF

router = APIRouter()

# Inspections run here, off the event loop and apart from every other worker thread, a few at
# a time: uploads can neither stall the API nor take the threads other requests need.
INSPECTORS = 2
_inspectors = ThreadPoolExecutor(INSPECTORS, thread_name_prefix="netfate-inspect")


# What a bundle upload may say it is. Whatever a tool sends for raw bytes passes (curl's
# --data-binary says application/x-www-form-urlencoded; tar and gzip types; none at all):
# the strict tar reader judges the bytes. Refused (415) are the types of another document:
# a JSON descriptor or a form with a file in it instead of the .tgz itself.
BUNDLE_TYPES = frozenset({"application/gzip", "application/x-gzip", "application/octet-stream",
                          "application/x-tar+gzip", "application/x-compressed-tar",
                          "application/x-tar", "application/x-gtar"})


def not_a_bundle(media: str) -> bool:
    """Whether a Content-Type (its media type, lower case) names another kind of document."""
    top = media.partition("/")[0]
    return (top in ("text", "multipart", "image", "audio", "video")
            or media in ("application/json", "application/xml", "application/yaml",
                         "application/x-yaml", "application/pdf")
            or media.endswith(("+json", "+xml", "+yaml")))


class Busy(NetfateError):
    """No inspector is free (answered 503: the problem handler's default)."""


async def _inspect(data: bytes, limit: float) -> Descriptor:
    """The bundle's descriptor, inspected in an inspector thread. Inspection is bounded by
    construction (netfate.archive, netfate.safe_yaml); one that still takes over `limit`
    seconds is refused (422; its thread ends on its own), and 503 if no inspector was free
    in that time."""
    started = threading.Event()

    def work() -> Descriptor:
        started.set()
        return inspect_bundle(data)[0]

    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(_inspectors, work), limit)
    except TimeoutError:
        if not started.is_set():
            raise Busy(f"every bundle inspector was busy for {limit:g} s: retry "
                       "later") from None
        raise InvalidInput(f"bundle took over {limit:g} s to inspect: refused") from None


_BUNDLE_BODY = {"type": "string", "format": "binary"}


@router.post("/vnf_packages", status_code=201,
             summary="Upload a bundle (.tgz body); ?sha256= refuses it unless it matches",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/gzip": {"schema": _BUNDLE_BODY},
                 "application/octet-stream": {"schema": _BUNDLE_BODY}}}})
async def upload(request: Request, response: Response,
                 sha256: str | None = Query(default=None, pattern=r"^[0-9a-fA-F]{64}$")
                 ) -> dict[str, Any]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not_a_bundle(media):
        raise UnsupportedMediaType(f"Content-Type {media[:100]!r}: send the bundle .tgz as "
                               f"{' or '.join(sorted(BUNDLE_TYPES))}")
    data = await request.body()
    if not data:
        raise InvalidInput("empty body: send the bundle .tgz as the request body")
    if sha256 is not None and sha256_of(data) != sha256.lower():
        raise InvalidInput(f"bundle sha256 is {sha256_of(data)}, not the expected {sha256}")
    desc = await _inspect(data, orch(request).settings.inspect_timeout)
    sha = sha256_of(data)

    def add(s: Any) -> dict[str, Any]:
        # Other bytes under a package's version would silently replace it as the newest
        # (the firewall's config checks then ran an uploader's code).
        repo.check_new_version(s, desc.name, desc.version, sha)
        return row(repo.add_bundle(s, data, name=desc.name, version=desc.version,
                                   descriptor=desc.model_dump(mode="json", by_alias=True)))

    made = with_implementations(await db(request).run(add))
    response.headers["Location"] = f"/api/v1/vnf_packages/{sha}"  # RFC 9110 §15.3.2
    return made


@router.get("/vnf_packages", summary="NF packages, each with its implementations (flavours "
            "and what each needs)")
def list_packages(request: Request) -> list[dict[str, Any]]:
    return [with_implementations(r) for r in all_rows(request, repo.list_bundles)]


# A package's id: its sha256 in hex, either case (as ?sha256= on upload takes it).
SHA256 = Path(pattern=r"^[0-9a-fA-F]{64}$", description="the package's sha256 (hex)")


@router.get("/vnf_packages/{sha256}")
def get_package(request: Request, sha256: str = SHA256) -> dict[str, Any]:
    return with_implementations(one_row(request, lambda s: repo.get_bundle(s, sha256.lower())))


def with_implementations(pkg: dict[str, Any]) -> dict[str, Any]:
    """The package with `implementations`: each flavour, in the NF's order of preference,
    with its memory (MB), CPU (percent of one CPU, a cap) and disk (MB) needs (the NNF
    paper's generic NF and its flavours; netfate.resolver picks one per node)."""
    impls = implementations_of(pkg.get("descriptor") or {})
    return {**pkg, "implementations": [
        {"flavour": i.flavour, "memory-mb": i.memory_mb, "cpu-percent": i.cpu_percent,
         "disk-mb": i.disk_mb} for i in impls]}


@router.delete("/vnf_packages/{sha256}", status_code=204, response_class=Response,
               summary="Delete a package no NF instance uses (409 otherwise)")
async def delete_package(request: Request, sha256: str = SHA256) -> Response:
    """SOL005 §9.4.3.3.5 (DELETE of an individual VNF package): refused (409) while an NF
    instance uses it, or while users subscribe to its NF (or hold a config for it) and it
    is that NF's only package, or it is the troubleshooter's only one (the platform's
    troubleshooting questions place it);
    404 for an unknown one. The next package of its NF, by version, is then the newest."""
    def delete(s: Any) -> None:
        pkg = repo.get_bundle(s, sha256.lower())
        if repo.highest_other(s, pkg.name, pkg.sha256) is None:
            if pkg.name == PROBE_NF:  # the troubleshooting questions place it themselves
                raise Conflict(f"package {pkg.sha256[:12]} is the only one of {pkg.name}, "
                               "whose probes the platform's troubleshooting questions "
                               "(POST /troubleshoot) place: upload another first")
            wanting = repo.users_wanting(s, pkg.name)
            if wanting:
                raise Conflict(f"package {pkg.sha256[:12]} is the only one of {pkg.name}, "
                               f"which users {', '.join(wanting[:3])} subscribe to or "
                               "hold a config for")
        repo.delete_bundle(s, pkg.sha256)

    await db(request).run(delete)
    return Response(status_code=204)


@router.get("/vnf_packages/{sha256}/content", response_class=Response,
            responses={200: {"content": {"application/gzip": {}}}})
def package_content(request: Request, sha256: str = SHA256) -> Response:
    with db(request).session() as s:
        data = repo.get_bundle(s, sha256.lower()).data
    return Response(content=data, media_type="application/gzip")
