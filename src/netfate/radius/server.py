"""FreeRADIUS, the real AAA server, run from a private configuration on loopback.

The configuration is generated from the templates shipped in ``netfate/radius/templates``
into the server's own directory ``<state_dir>/fate-radius``, never /etc/freeradius:

    <dir>/raddb/       radiusd.conf, clients.conf, dictionary, mods-enabled/{rest,always},
                       policy.d/netfate, sites-enabled/netfate   (mode 0700, files 0600)
    <dir>/log/         radius.log (FreeRADIUS's audit log: logins, never passwords),
                       freeradius.out (its stdout/stderr)
    <dir>/log/radacct/detail   the accounting records it received (RFC 2866; rlm_detail's
                       format, read_detail() parses it). Written after FreeRADIUS dropped to
                       its user, so that directory is its own and <dir>, <dir>/log are 0711
                       (traversable, not listable; raddb/ stays 0700)
    <dir>/run/         its own pidfile
    <dir>/freeradius.pid   the PID we started, for stop() and for ending an orphan

Started as root, it drops to Debian's freerad user once its ports and log are open.

It runs in the foreground (``freeradius -f``; ``-X`` with debug=True, whose output shows
passwords: never in production), is ready when it answers a signed Status-Server, and is
stopped by its PID.
"""

from __future__ import annotations

import contextlib
import grp
import ipaddress
import logging
import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from pydantic import ValidationError

from netfate.errors import DriverError, InvalidInput
from netfate.naming import PREFIX
from netfate.radius.client import RadiusClient
from netfate.radius.settings import RadiusSettings
from netfate.supervisor import StartError, Supervised
from netfate.supervisor import stop_recorded as stop_pidfile

log = logging.getLogger("netfate.radius")

LIBDIRS = ("/usr/lib/freeradius", "/usr/lib/x86_64-linux-gnu/freeradius",
           "/usr/lib/aarch64-linux-gnu/freeradius", "/usr/local/lib/freeradius")
PROGRAMS = ("freeradius", "radiusd")  # what a recorded PID must still run
PIDFILE = "freeradius.pid"
RUN_AS = "freerad"  # Debian's freeradius package's user and group


def find_binary() -> str:
    for name in ("freeradius", "radiusd"):
        found = shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.access(p, os.X_OK)),
            None)
        if found:
            return found
    raise DriverError("FreeRADIUS not found: apt-get install freeradius freeradius-rest")


def find_libdir() -> str:
    """The module directory that has rlm_rest (Debian's freeradius-rest package)."""
    for d in LIBDIRS:
        if os.path.exists(f"{d}/rlm_rest.so"):
            return d
    raise DriverError("FreeRADIUS's rlm_rest module not found in "
                      f"{', '.join(LIBDIRS)}: apt-get install freeradius-rest")


def private_dir(state_dir: Path) -> Path:
    """The server's own directory in a state directory: <state_dir>/fate-radius."""
    return Path(state_dir) / f"{PREFIX}radius"


class FreeRadius:
    def __init__(self, state_dir: Path, port: int, secret: str, api_url: str, *,
                 api_key: str, host: str = "127.0.0.1", clients: Sequence[str] = ("127.0.0.1",),
                 reject_delay: float = 1.0, api_timeout: float = 5.0,
                 debug: bool = False, acct_port: int | None = None) -> None:
        self.dir = private_dir(Path(state_dir)).absolute()
        self.port = port
        self.acct_port = acct_port if acct_port is not None else port + 1
        self.host = host
        self.secret = secret
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        self.clients = tuple(clients)
        self.reject_delay = reject_delay
        self.api_timeout = api_timeout
        self.debug = debug
        self._sup: Supervised | None = None
        # Started as root, FreeRADIUS reads its configuration (0600, root's) and opens its
        # ports and log, then drops to Debian's freerad user before it handles a packet.
        self.run_as = RUN_AS if os.geteuid() == 0 and _user_exists(RUN_AS) else None
        # Validated like the settings: these end up inside FreeRADIUS config strings.
        try:
            RadiusSettings(host=host, port=port, secret=secret, api_key=api_key,
                           clients=self.clients, pool="10.90.100.0/22", max_failures=1,
                           failure_window=1, backoff=0, max_tracked=1, session_timeout=None,
                           reject_delay=reject_delay, api_timeout=api_timeout,
                           acct_port=self.acct_port).check()
        except ValidationError as exc:  # the settings' own checks, as they are read
            first = exc.errors()[0]
            raise InvalidInput(f"radius {'.'.join(str(x) for x in first['loc'])}: "
                               f"{first['msg']}") from None
        if not self.api_url.startswith(("http://", "https://")) or _unsafe(self.api_url):
            raise ValueError(f"api_url {api_url!r}: give http(s)://host:port")
        if _unsafe(str(self.dir)):
            raise ValueError(f"{self.dir}: FreeRADIUS's directory must not contain spaces, "
                             "quotes, '$', '\\' or braces")

    @classmethod
    def from_settings(cls, state_dir: Path, settings: RadiusSettings, api_url: str,
                      debug: bool = False) -> FreeRadius:
        """``settings`` resolved (RadiusSettings.resolve), ``api_url`` the orchestrator's."""
        return cls(state_dir, settings.port, settings.secret, api_url, api_key=settings.api_key,
                   host=settings.host, clients=settings.clients,
                   reject_delay=settings.reject_delay, api_timeout=settings.api_timeout,
                   debug=debug, acct_port=settings.acct_port)

    # -- paths -----------------------------------------------------------------------------
    @property
    def raddb(self) -> Path:
        return self.dir / "raddb"

    @property
    def log_file(self) -> Path:
        return self.dir / "log" / "radius.log"

    @property
    def detail_file(self) -> Path:
        """Where FreeRADIUS records the accounting requests it receives."""
        return self.dir / "log" / "radacct" / "detail"

    @property
    def out_file(self) -> Path:
        return self.dir / "log" / "freeradius.out"

    @property
    def pidfile(self) -> Path:
        return self.dir / PIDFILE

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # -- configuration ---------------------------------------------------------------------
    def write_config(self) -> Path:
        """Render the templates into raddb/ (replacing what was there). Returns raddb."""
        values = {
            "STATE_DIR": str(self.dir),
            "LIBDIR": find_libdir(),
            "LISTEN": self.host,
            "PORT": str(self.port),
            "ACCT_PORT": str(self.acct_port),
            "API_URL": self.api_url,
            "API_KEY": self.api_key,
            "API_TIMEOUT": f"{self.api_timeout:g}",
            "REJECT_DELAY": f"{self.reject_delay:g}",
            "CLIENTS": self._clients_conf(),
            "RUN_AS": (f"\t# Started as root: it handles packets as {self.run_as}.\n"
                       f"\tuser = {self.run_as}\n\tgroup = {self.run_as}")
                      if self.run_as else "\t# Runs as the user who started it.",
        }
        for sub in ("log", "run", "log/radacct"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.raddb.exists():
            shutil.rmtree(self.raddb)
        self.raddb.mkdir(parents=True, mode=0o700)
        # rlm_detail opens its file after the drop to run_as: let that user through to its
        # own radacct/ (traverse only: nothing here is listable or readable to it).
        traverse = 0o711 if self.run_as else 0o700
        os.chmod(self.dir, traverse)
        os.chmod(self.dir / "log", traverse)
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.dir / "log" / "radacct", pw.pw_uid, pw.pw_gid)
            blocked = _untraversable(self.dir.parent, pw.pw_uid)
            if blocked is not None:
                log.warning("FreeRADIUS's user %s cannot reach %s (%s is not traversable): "
                            "accounting requests will not be recorded nor answered",
                            self.run_as, self.detail_file, blocked)
        _render(resources.files("netfate.radius") / "templates", self.raddb, values)
        return self.raddb

    def _clients_conf(self) -> str:
        blocks = []
        for i, c in enumerate(self.clients):
            net = ipaddress.ip_network(c, strict=False)
            addr = str(net.network_address) if net.num_addresses == 1 else str(net)
            key = "ipaddr" if net.version == 4 else "ipv6addr"
            blocks.append(
                f"client portal{i} {{\n"
                f"\t{key} = {addr}\n"
                f"\tsecret = \"{self.secret}\"\n"
                f"\trequire_message_authenticator = yes\n"
                f"\tshortname = portal{i}\n"
                f"}}\n")
        return "\n".join(blocks)

    def check_config(self) -> None:
        """``freeradius -C``: parse the configuration and load the modules, or DriverError."""
        self.write_config()
        cp = subprocess.run(  # noqa: S603 - argument list
            [find_binary(), "-C", "-d", str(self.raddb)], capture_output=True, timeout=30,
            check=False)
        if cp.returncode != 0:
            out = (cp.stdout + cp.stderr).decode(errors="replace").strip().splitlines()
            raise DriverError("FreeRADIUS configuration check failed: " + " | ".join(out[-8:]))

    # -- process ---------------------------------------------------------------------------
    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running server's process handle; set to None to forget it (it is then ended
        by its recorded PID only: stop_recorded, or the next start)."""
        return self._sup.proc if self._sup is not None else None

    @proc.setter
    def proc(self, value: subprocess.Popen[bytes] | None) -> None:
        if self._sup is not None:
            self._sup.proc = value

    def start(self, timeout: float = 15.0) -> None:
        """Write the configuration, start FreeRADIUS, and return once it answers a signed
        Status-Server. DriverError (with the end of its log) if it does not; then it is not
        running."""
        if self.running():
            return
        self.write_config()
        argv = [find_binary(), "-f", "-d", str(self.raddb)]
        if self.debug:
            argv.append("-X")
        self._sup = Supervised("freeradius", argv, self.dir, programs=PROGRAMS,
                               pidfile=self.pidfile, log=self.out_file, logs=[self.log_file])
        probe = RadiusClient(self.host, self.port, self.secret, timeout=0.2, retries=0)
        try:
            self._sup.start(ready=probe.status, timeout=timeout)
        except StartError as exc:
            self._sup = None
            raise DriverError(f"FreeRADIUS on {self.host}:{self.port} {exc.reason}: "
                              f"{self.log_tail()}") from exc

    def stop(self, timeout: float = 5.0) -> None:
        """End the process we started (SIGTERM, then SIGKILL), by its PID."""
        if self._sup is not None:
            self._sup.stop(grace=timeout)
        else:
            Supervised("freeradius", [], self.dir, programs=PROGRAMS,
                       pidfile=self.pidfile).stop_recorded(grace=timeout)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 6) -> str:
        out: list[str] = []
        for f in (self.out_file, self.log_file):
            with contextlib.suppress(OSError):
                out += f.read_text(errors="replace").strip().splitlines()[-lines:]
        return " | ".join(out) or "(no log)"

    def __enter__(self) -> FreeRadius:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _render(src: Traversable, dst: Path, values: dict[str, str]) -> None:
    for item in src.iterdir():
        if item.name.startswith((".", "__")):
            continue
        target = dst / item.name
        if item.is_dir():
            target.mkdir(mode=0o700)
            _render(item, target, values)
            continue
        text = item.read_text()
        for k, v in values.items():
            text = text.replace(f"@{k}@", v)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)


def stop_recorded(state_dir: Path) -> int | None:
    """End the FreeRADIUS started for ``state_dir`` whose PID is recorded in its private
    dir, if that PID is still FreeRADIUS (e.g. after the stack was killed). Returns the PID
    it ended, or None."""
    return stop_pidfile(private_dir(Path(state_dir)) / PIDFILE, PROGRAMS)


def _untraversable(path: Path, uid: int) -> Path | None:
    """The first directory from / down to ``path`` that a user ``uid`` (not root, in no
    group of the owners: the conservative reading) cannot enter; None if all can be."""
    for d in [*reversed(path.parents), path]:
        try:
            st = d.stat()
        except OSError:
            return d
        if st.st_uid != uid and not st.st_mode & 0o001:
            return d
    return None


def _unsafe(text: str) -> bool:
    """Whether text could break out of a FreeRADIUS config string or expand in it."""
    return any(c in text for c in "\"'$\\{}`") or any(c.isspace() for c in text)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


