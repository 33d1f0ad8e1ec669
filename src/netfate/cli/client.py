"""netfate nodes|users|nfs|ops|notifications: a client of the orchestrator's API."""

from __future__ import annotations

import functools
import getpass
import json
import re
import sys
import time
import warnings
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from netfate.api_auth import BearerAuth
from netfate.api_pages import follow
from netfate.cli.common import (
    checked,
    console,
    emit_json,
    fail,
    guarded,
    json_object,
    results,
    settings,
)
from netfate.credentials import PASSWORD_MAX_BYTES

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
# Arguments checked as the API checks them (netfate.validators), before any request.
NameArg = Annotated[str, typer.Argument(callback=checked("name"))]
InstanceArg = Annotated[str, typer.Argument(callback=checked("instance-id"))]


@functools.cache
def api() -> str:
    """The orchestrator's API (client.api: NETFATE_API), from the settings the command
    builds on its first call."""
    return settings().client.api


@functools.cache
def auth() -> BearerAuth:
    """The operator token (netfate.api_auth), found from the same settings."""
    return BearerAuth(settings=settings())


# A path segment the CLI puts in a URL (a name or id given on its command line): nothing
# that changes which resource is meant ("..", "?", "#", "%", "/") or is empty.
_SEGMENT = re.compile(r"[A-Za-z0-9_:@+=~-][A-Za-z0-9._:@+=~-]{0,255}")


def _checked_path(path: str) -> str:
    """`path` if each of its segments is a plain name or id; else one clear line and exit
    1 (`netfate ops show '../users/c1?x='` printed user c1: new-user probe, 2026-12-03)."""
    for seg in path.split("/")[1:]:
        if not _SEGMENT.fullmatch(seg):
            fail(f"{seg!r} is not a name or id (letters, digits and . _ : @ + = ~ -, not "
                 "starting with a dot, at most 256)")
    return path


def call(method: str, path: str, **kw: Any) -> Any:
    """The API's JSON answer (an object or an array; None for an empty body); one clear
    line and exit 1 for anything else (NETFATE_API pointing at some other page)."""
    r = _request(method, f"{api()}/api/v1{_checked_path(path)}", **kw)
    return _document(r, (dict, list)) if r.content else None


def call_rows(path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """GET a list whose items are objects, as `call`."""
    return _rows(_request("GET", f"{api()}/api/v1{_checked_path(path)}", params=params))


def _rows(r: httpx.Response) -> list[dict[str, Any]]:
    doc = _document(r, (list,))
    if not all(isinstance(x, dict) for x in doc):
        _document(r, ())  # fails, the same way
    return list(doc)


def _document(r: httpx.Response, kinds: tuple[type, ...]) -> Any:
    try:
        doc = r.json()
    except ValueError:
        doc = None
    if not isinstance(doc, kinds):
        kind = r.headers.get("content-type", "no content type").split(";")[0]
        fail(f"{r.request.method} {r.url.path} answered HTTP {r.status_code} ({kind}), not "
             f"the API's JSON: is NETFATE_API ({api()}) the orchestrator's base URL?")
    return doc


def call_all(path: str, params: dict[str, Any] | None = None) -> list[Any]:
    """GET a paged list whole, following each Link rel="next" (netfate.api_pages), with
    the CLI's one-line errors."""
    def page(url: str, p: dict[str, Any] | None = None) -> httpx.Response:
        r = _request("GET", url, params=p)
        _rows(r)
        return r

    first = page(f"{api()}/api/v1{_checked_path(path)}", params)
    try:
        return follow(first, page)
    except ValueError as exc:
        fail(str(exc))


def _request(method: str, url: str, **kw: Any) -> httpx.Response:
    try:
        r = httpx.request(method, url, timeout=30, auth=auth(), **kw)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        console.print(f"[red]error:[/] cannot reach the orchestrator at {escape(api())}: "
                      f"{escape(str(exc))}")
        raise typer.Exit(2) from None
    if r.status_code >= 400:
        try:
            body = r.json()
        except ValueError:
            body = None
        detail = body.get("detail", r.text) if isinstance(body, dict) else r.text[:300]
        # The server's words as they are: a pattern such as '^[a-z0-9]...' is no markup.
        console.print(f"[red]error {r.status_code}:[/] {escape(str(detail))}")
        raise typer.Exit(1)
    return r


def show(rows: list[dict[str, Any]], cols: list[str], json_out: bool) -> None:
    if json_out:
        emit_json(rows)
        return
    t = Table(*cols)
    for r in rows:
        t.add_row(*[_cell(r.get(c)) for c in cols])
    results.print(t)


def _cell(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v)[:60]
    if isinstance(v, float) and v > 1e9:
        return time.strftime("%H:%M:%S", time.localtime(v))
    return "" if v is None else str(v)


nodes = typer.Typer(help="NFVI nodes")
users = typer.Typer(help="Users (Table I)")
nfs = typer.Typer(help="NF instances (Table II) and their lifecycle")
ops = typer.Typer(help="Lifecycle operation occurrences")
notes = typer.Typer(help="NF notifications")


@nodes.command("list")
def nodes_list(json_out: JsonOpt = False) -> None:
    """List the nodes: role, online, marked down, CPU, free memory, NF count."""
    rows = call_rows("/nodes")
    for r in rows:
        r["cpu"] = (r.get("resources") or {}).get("cpu_util")
        r["mem_free_mb"] = (r.get("resources") or {}).get("mem_free_mb")
        r["nfs"] = (r.get("resources") or {}).get("nf_count")
    show(rows, ["name", "role", "online", "admin_down", "cpu", "mem_free_mb", "nfs",
                "last_seen"], json_out)


@nodes.command("down")
def nodes_down(name: str) -> None:
    """Mark a node down: no NF is placed there and its NFs move out with their state; its
    switch goes on serving the users who enter there."""
    call("PATCH", f"/nodes/{name}", json={"admin_down": True})
    console.print(f"node {name} marked down")


@nodes.command("up")
def nodes_up(name: str) -> None:
    """Put a node the operator marked down back into placement."""
    call("PATCH", f"/nodes/{name}", json={"admin_down": False})
    console.print(f"node {name} marked up")


@users.command("list")
def users_list(json_out: JsonOpt = False) -> None:
    """List the users: their required NFs (chain) and where they are."""
    show(call_rows("/users"),
         ["name", "required_nfs", "access_node", "mac", "ip", "last_seen"], json_out)


MAX_PASSWORD = PASSWORD_MAX_BYTES  # bytes of the first line of --password-stdin


def _password(given: str | None, from_stdin: bool) -> str:
    """The new user's password: --password, or the first line of stdin (--password-stdin,
    as `docker login`: not in ps or the shell's history), or asked for, hidden."""
    if given is not None and from_stdin:
        fail("give --password or --password-stdin, not both")
    if from_stdin:
        raw = sys.stdin.buffer.readline(4 * MAX_PASSWORD + 2).rstrip(b"\r\n")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            fail("--password-stdin: the password is not UTF-8 text")
        if not line or len(raw) > MAX_PASSWORD:
            fail(f"--password-stdin: the first line of stdin must be the password "
                 f"(1-{MAX_PASSWORD} bytes of UTF-8)")
        return line
    if given is not None:
        return given
    with warnings.catch_warnings():  # without a terminal getpass warns, naming its source
        warnings.simplefilter("ignore", getpass.GetPassWarning)
        try:
            p: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        except typer.Abort:
            fail("no password given: use --password-stdin (or --password), or run on a "
                 "terminal to be asked for it")
    return p


@users.command("add")
def users_add(name: NameArg,
              password: Annotated[str | None, typer.Option(
                  help="The password (shows in ps and the shell's history: prefer "
                       "--password-stdin, or leave both out to be asked)")] = None,
              password_stdin: Annotated[bool, typer.Option(
                  "--password-stdin", help="Read the password from stdin's first line")] = False,
              nfs_: Annotated[list[str] | None, typer.Option(
                  "--nf", help="Required NF", callback=checked("name"))] = None,
              config: Annotated[str | None, typer.Option(help="JSON {nf: config}")] = None,
              json_out: JsonOpt = False) -> None:
    """Add a user with a password and the NFs they require (their chain)."""
    body = {"name": name, "password": _password(password, password_stdin),
            "required_nfs": nfs_ or [],
            "nf_config": guarded(lambda: json_object(config, "--config"))}
    out = call("POST", "/users", json=body)
    emit_json(out) if json_out else console.print(f"user {name} created")


@users.command("associate")
def users_associate(
        name: NameArg, node: NameArg,
        mac: Annotated[str | None, typer.Option(callback=checked("unicast-mac"))] = None,
        ip: Annotated[str | None, typer.Option(callback=checked("station-ipv4"))] = None,
        json_out: JsonOpt = False) -> None:
    """Associate the user at a node (a CPE or PE), as a login there would: their NFs follow."""
    out = call("POST", f"/users/{name}/associate", json={"node": node, "mac": mac, "ip": ip})
    emit_json(out) if json_out else show(out["intents"], ["kind", "nf", "node", "instance_id",
                                                          "reason"], False)


@users.command("idle")
def users_idle(name: NameArg, json_out: JsonOpt = False) -> None:
    """The user went idle: end their session and release their NFs (Idle-Timeout)."""
    out = call("POST", f"/users/{name}/idle")
    emit_json(out) if json_out else _released(name, out)


@users.command("logout")
def users_logout(name: NameArg, json_out: JsonOpt = False) -> None:
    """End the user's session (RADIUS Stop, User-Request) and release their NFs."""
    out = call("POST", f"/users/{name}/logout")
    emit_json(out) if json_out else _released(name, out)


def _released(name: str, out: dict[str, Any]) -> None:
    """What an idle or a logout released: the plan's intents as a table, or one line that
    says nothing was (no active session, or no NFs placed for it), with the plan's
    reasons."""
    intents = out.get("intents") or []
    if intents:
        show(intents, ["kind", "nf", "node", "instance_id", "reason"], False)
        return
    why = "; ".join(str(r) for r in out.get("reasons") or [])
    results.print(f"user {escape(name)}: nothing to release (no active session, or no NFs "
                  f"placed for it){': ' + escape(why) if why else ''}")


@users.command("delete")
def users_delete(name: NameArg) -> None:
    """Forget a user (refused while they own NF instances: log them out first)."""
    call("DELETE", f"/users/{name}")
    console.print(f"user {name} deleted")


@nfs.command("list")
def nfs_list(node: Annotated[str | None, typer.Option(callback=checked("name"))] = None,
             json_out: JsonOpt = False) -> None:
    """List NF instances (Table II): node, owner, desired and actual state."""
    rows = call_rows("/vnf_instances", params={"node": node} if node else None)
    show(rows, ["id", "nf_name", "owner", "node_name", "desired_state", "actual_state",
                "pinned"], json_out)


@nfs.command("instantiate")
def nfs_instantiate(nf: NameArg, owner: NameArg, node: NameArg, config: str | None = None,
                    wait: bool = True, json_out: JsonOpt = False) -> None:
    """Instantiate an NF for an owner on a node (--config: JSON), and follow the operation."""
    cfg = guarded(lambda: json_object(config, "--config"))
    out = call("POST", "/vnf_instances", json={"nf": nf, "owner": owner, "node": node,
                                               "config": cfg})
    _follow(out["vnf_lcm_op_occs"], wait, json_out)


@nfs.command("terminate")
def nfs_terminate(instance: InstanceArg, wait: bool = True, json_out: JsonOpt = False) -> None:
    """Terminate an NF instance, and follow the operation."""
    _follow(call("POST", f"/vnf_instances/{instance}/terminate")["vnf_lcm_op_occs"], wait,
            json_out)


@nfs.command("migrate")
def nfs_migrate(instance: InstanceArg, node: NameArg, wait: bool = True,
                json_out: JsonOpt = False) -> None:
    """Migrate an NF instance to another node with its state, and follow the operation."""
    _follow(call("POST", f"/vnf_instances/{instance}/migrate", json={"node": node})
            ["vnf_lcm_op_occs"], wait, json_out)


@nfs.command("update")
def nfs_update(instance: InstanceArg,
               config: Annotated[str | None, typer.Argument(
                   help="JSON, or @file (or give it as --config)")] = None,
               config_opt: Annotated[str | None, typer.Option(
                   "--config", help="JSON, or @file, as with `nfs instantiate`")] = None,
               wait: bool = True, json_out: JsonOpt = False) -> None:
    """Give an NF instance a new configuration (CONFIG or --config: JSON, or @file), and
    follow it."""
    if (config is None) == (config_opt is None):
        fail("give the new configuration once: CONFIG or --config")
    text = config if config is not None else config_opt
    cfg = guarded(lambda: json_object(text, "config" if config is not None else "--config"))
    _follow(call("PATCH", f"/vnf_instances/{instance}", json={"config": cfg})
            ["vnf_lcm_op_occs"], wait, json_out)


def _follow(op_ids: list[str], wait: bool, json_out: bool, timeout: float = 60) -> None:
    done = []
    for op_id in op_ids:
        deadline = time.monotonic() + timeout
        op = call("GET", f"/vnf_lcm_op_occs/{op_id}")
        with console.status(f"operation {op_id[:8]} {op['operation']}") as st:
            while wait and op["operation_state"] in ("PROCESSING", "ROLLING_BACK"):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
                op = call("GET", f"/vnf_lcm_op_occs/{op_id}")
                st.update(f"operation {op_id[:8]} {op['operation']}: {op['operation_state']}")
        done.append(op)
    if json_out:
        emit_json(done)
    else:
        show(done, ["id", "operation", "vnf_instance_id", "operation_state", "error"], False)
    if any(o["operation_state"] not in ("COMPLETED", "PROCESSING") for o in done):
        raise typer.Exit(1)


@ops.command("list")
def ops_list(state: str | None = None, json_out: JsonOpt = False) -> None:
    """List lifecycle operation occurrences (ETSI SOL003), oldest first; --state to filter."""
    show(call_all("/vnf_lcm_op_occs", params={"state": state} if state else None),
         ["id", "operation", "vnf_instance_id", "operation_state", "start_time"], json_out)


@ops.command("show")
def ops_show(op_id: str) -> None:
    """One lifecycle operation occurrence, as JSON."""
    emit_json(call("GET", f"/vnf_lcm_op_occs/{op_id}"))


@notes.command("list")
def notes_list(nf: str | None = None, json_out: JsonOpt = False) -> None:
    """List NF notifications, oldest first; --nf to filter by instance."""
    show(call_all("/notifications", params={"nf_instance_id": nf} if nf else None),
         ["id", "nf_instance_id", "type", "severity", "source", "acknowledged", "ts"], json_out)


@notes.command("ack")
def notes_ack(nid: int) -> None:
    """Acknowledge a notification."""
    call("POST", f"/notifications/{nid}/ack")
    console.print(f"notification {nid} acknowledged")


@notes.command("delete")
def notes_delete(nid: int) -> None:
    """Delete a notification."""
    call("DELETE", f"/notifications/{nid}")
    console.print(f"notification {nid} deleted")


@notes.command("mute")
def notes_mute(instance: InstanceArg, off: bool = False) -> None:
    """Mute an NF's notifications (--off: unmute)."""
    call("DELETE" if off else "PUT", f"/vnf_instances/{instance}/mute")
    console.print(f"{instance}: notifications {'unmuted' if off else 'muted'}")


def register(app: typer.Typer) -> None:
    for name, sub in (("nodes", nodes), ("users", users), ("nfs", nfs), ("ops", ops),
                      ("notifications", notes)):
        app.add_typer(sub, name=name)
