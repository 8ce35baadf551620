"""Targets that are container images, run through testcontainers on Docker or Podman.

`image:REF` runs any image; `preset:NAME` runs a known one (see PRESETS) with its ports and environment.
Ports are published on 127.0.0.1 only, with engine-chosen host ports, and the suite talks to the
container only through them (never through a bridge address). Readiness is the SMTP greeting itself.

There is no Ryuk with Podman, so this module removes its own containers: `stop()` force-removes, an
`atexit` hook catches what an interrupted session left, and `cleanup_leftovers()` removes every
container carrying the `org.smtp-conformance` label (for a crashed or SIGKILLed run).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import re
import socket
import ssl
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..escapes import escape_bytes
from ..mailbox import MAX_MESSAGES, MAX_OCTETS, Mailbox, MailboxError, parse_mailbox
from ..problems import did_you_mean
from .base import Endpoint, Target, TargetError, TargetParams, sanitize_label

LABEL = "org.smtp-conformance"
LABEL_SESSION = "org.smtp-conformance.session"
SESSION_ENV = "SMTP_CONFORMANCE_SESSION"
# One id per process (per xdist worker), unless the caller shares one through the environment.
SESSION_ID: str = os.environ.get(SESSION_ENV) or uuid.uuid4().hex
NO_ENGINE = "no container engine: set DOCKER_HOST or run scripts/containers/setup"
LOOPBACK = "127.0.0.1"
REMOVE_PATIENCE = 10.0  # seconds a container being started may take to become removable
LOG_TAIL = 64 * 1024


@dataclass(frozen=True)
class Preset:
    image: str
    port: int
    api_port: int | None = None
    env: tuple[tuple[str, str], ...] = ()
    api_messages: str | None = None  # path of the message list on the API port
    api_kind: str | None = None  # conformance.mailbox kind that reads the API (mailhog, mailpit)
    maildir: str | None = None  # where accepted mail lands, inside the container
    build: str = ""  # how to get the image when it is missing
    profile: str | None = None  # the server profile it runs as (C3), unless the user declares another


PRESETS: MappingProxyType[str, Preset] = MappingProxyType({
    "mailhog": Preset("mailhog/mailhog", 1025, 8025, api_messages="/api/v2/messages", api_kind="mailhog",
                      build="docker pull mailhog/mailhog", profile="catcher"),
    "mailpit": Preset("axllent/mailpit", 1025, 8025, api_messages="/api/v1/messages", api_kind="mailpit",
                      build="docker pull axllent/mailpit", profile="catcher"),
    "postfix": Preset("smtp-conformance/postfix:latest", 25,
                      maildir="/var/mail/vhosts/example.test/user/",
                      build="scripts/containers/build-images postfix (or docker build -t "
                            "smtp-conformance/postfix:latest images/postfix)", profile="mx"),
    "pysmtp": Preset("smtp-conformance/pysmtp:latest", 1025, 8025, env=(("PYSMTP_DOMAINS", "example.test"),),
                     api_messages="/api/v2/messages", api_kind="mailhog",
                     build="scripts/containers/build-images pysmtp (or docker build -t "
                           "smtp-conformance/pysmtp:latest images/pysmtp)"),
})

# [registry[:port]/]path[:tag][@digest], as Docker spells references (lowercase path components).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REF = re.compile(
    rf"^(?:[A-Za-z0-9.-]+(?::\d{{1,5}})?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _one_line(text: str, limit: int = 300) -> str:
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _reason(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)  # docker.errors.APIError: the engine's own words
    return _one_line(str(explanation or exc) or exc.__class__.__name__, 240)


def _port(value: object, what: str, spec: str) -> int:
    try:
        port = int(str(value))
    except ValueError:
        raise TargetError(f"target {spec!r}: {what} {value!r} is not a number") from None
    if not 0 < port < 65536:
        raise TargetError(f"target {spec!r}: {what} {port} is out of range")
    return port


def _engine_client() -> Any:
    """testcontainers' DockerClient (DOCKER_HOST, docker context, ~/.testcontainers.properties)."""
    try:
        from docker.errors import DockerException
        from testcontainers.core.docker_client import DockerClient
    except ImportError as exc:
        raise TargetError(f"image targets need testcontainers: {exc}") from None
    try:
        client = DockerClient()
        client.client.ping()
    except DockerException as exc:
        raise TargetError(f"{NO_ENGINE} ({_reason(exc)})") from None
    return client


def cleanup_leftovers(session: str | None = None) -> list[str]:
    """Force-remove every container labelled org.smtp-conformance (or only one run's); return their ids."""
    from docker.errors import APIError, NotFound

    client = _engine_client()
    label = f"{LABEL_SESSION}={session}" if session else LABEL
    removed = []
    try:
        for container in client.client.containers.list(all=True, filters={"label": label}):
            with contextlib.suppress(NotFound):
                try:
                    container.remove(force=True, v=True)
                except APIError as exc:  # already being removed by its own run
                    if "in progress" not in str(exc).lower():
                        raise
                removed.append(container.id)
    finally:
        client.client.close()
    return removed


def greeting(host: str, port: int, timeout: float, tls: bool = False) -> str:
    """Connect, read one complete final greeting line (`220 …`), say QUIT; return that line.

    Raises OSError (refused, reset, closed, timeout) when there is no complete greeting yet.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock: socket.socket = raw
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(raw)
        buf = b""
        while True:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed after {len(buf)} octets, before a complete greeting")
            buf += chunk
            *lines, buf = buf.split(b"\n")
            final = next((ln for ln in lines if len(ln) >= 4 and ln[:3].isdigit() and ln[3:4] in (b" ", b"\r")),
                         None)
            if final is not None:
                break
            if len(buf) > 65536:
                raise ConnectionError("no line end in 64 KiB of greeting")
        with contextlib.suppress(OSError):
            sock.sendall(b"QUIT\r\n")
            sock.settimeout(1.0)
            sock.recv(4096)
        return final.rstrip(b"\r").decode("utf-8", "replace")


@dataclass
class ContainerMaildir(Mailbox):
    """A Maildir (or a folder of Maildirs) inside a running container, read through the engine's archive API."""

    client: Any  # docker.DockerClient
    container_id: str
    path: str
    spec: str = ""

    def messages_with(self, token: bytes) -> list[bytes]:
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        try:
            stream, _ = self.client.api.get_archive(self.container_id, self.path.rstrip("/"))
            data = b"".join(stream)
        except (DockerException, RequestException) as exc:
            raise MailboxError(f"{self.spec}: {_reason(exc)}") from None
        found = []
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = [m for m in tar.getmembers()
                       if m.isfile() and m.name.rsplit("/", 2)[-2:-1] in (["new"], ["cur"])]
            for member in sorted(members, key=lambda m: m.name)[-MAX_MESSAGES:]:
                fh = tar.extractfile(member)
                raw = fh.read(MAX_OCTETS) if fh is not None else b""
                if token in raw:
                    found.append(raw)
        return found


@dataclass
class ImageTarget(Target):
    """A container image started per session; the SMTP port (and an API port) published on loopback."""

    kind: str = "image"
    image: str = ""
    port: int = 25
    api_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    command: str | list[str] | None = None
    preset: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _stopped: bool = field(default=False, repr=False, compare=False)
    _starting: bool = field(default=False, repr=False, compare=False)
    _client: Any = field(default=None, repr=False, compare=False)
    _container_id: str | None = field(default=None, repr=False, compare=False)
    _name: str | None = field(default=None, repr=False, compare=False)  # unique: removable before its id is known
    _info: dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    _logs: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    # ----- construction ---------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, text: str, label: str | None, params: TargetParams, *, preset: bool = False) -> ImageTarget:
        """`image:REF[,OPTION...]` or (preset=True) `preset:NAME[,OPTION...]`; text is what follows the colon.

        Options: `port=N` (SMTP port inside), `api_port=N`, `env.NAME=VALUE`, and for presets `image=REF`.
        """
        spec = f"{'preset' if preset else 'image'}:{text.strip()}"
        head, *options = [part.strip() for part in text.split(",")]
        values: dict[str, str] = {}
        env: dict[str, str] = {}
        allowed = ("port", "api_port", "image") if preset else ("port", "api_port")
        for option in options:
            key, sep, value = option.partition("=")
            if key.startswith("env.") and sep:
                env[key[4:]] = value
            elif key in allowed and sep and value:
                values[key] = value
            else:
                raise TargetError(f"target {spec!r}: unknown option {option!r} "
                                  f"(known: {', '.join(k + '=' for k in allowed)}, env.NAME=VALUE)")
        return cls._build(
            spec, label, params,
            image=values.get("image") if preset else head,
            preset=head if preset else None,
            port=values.get("port"), api_port=values.get("api_port"), env=env, command=None)

    @classmethod
    def from_entry(cls, entry: dict[str, Any], params: TargetParams) -> ImageTarget:
        """A targets-file entry: image and/or preset, port, api_port, env, container_command."""
        image = entry.get("image")
        preset = entry.get("preset")
        if preset:
            spec = f"preset:{preset}" + (f",image={image}" if image else "")
        elif image:
            spec = f"image:{image}"
        else:
            raise TargetError("a container target needs `image:` or `preset:`")
        env = {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (entry.get("env") or {}).items()}
        command = entry.get("container_command")
        if isinstance(command, list):
            command = [str(word) for word in command]
        return cls._build(spec, entry.get("label"), params, image=image, preset=preset, port=entry.get("port"),
                          api_port=entry.get("api_port"), env=env, command=command)

    @classmethod
    def _build(cls, spec: str, label: str | None, params: TargetParams, *, image: str | None, preset: str | None,
               port: object, api_port: object, env: dict[str, str], command: str | list[str] | None) -> ImageTarget:

        defaults = Preset(image="", port=25)
        if preset is not None:
            if preset not in PRESETS:
                raise TargetError(f"target {spec!r}: unknown preset {preset!r}{did_you_mean(preset, list(PRESETS))} "
                                  f"(known: {', '.join(PRESETS)})")
            defaults = PRESETS[preset]
        image = (image or defaults.image).strip()
        if not image:
            raise TargetError(f"target {spec!r}: the image name is empty")
        if not _IMAGE_REF.match(image):
            raise TargetError(f"target {spec!r}: {image!r} is not an image reference "
                              "([REGISTRY/]NAME[:TAG][@sha256:DIGEST], lowercase name)")
        for name in env:
            if not _ENV_NAME.match(name):
                raise TargetError(f"target {spec!r}: {name!r} is not an environment variable name")
        smtp = _port(port, "port", spec) if port is not None else defaults.port
        api = _port(api_port, "api_port", spec) if api_port is not None else defaults.api_port
        if api == smtp:
            raise TargetError(f"target {spec!r}: api_port and port are both {smtp}")
        if label is None:
            if preset is not None:
                label = preset
            else:
                last = image.split("@")[0].rsplit("/", 1)[-1]
                label = last.removesuffix(":latest")
        if params.profile is None and defaults.profile is not None:
            params = params.with_(profile=defaults.profile)
        return cls(label=sanitize_label(label), spec=spec, params=params, image=image, port=smtp, api_port=api,
                   env={**dict(defaults.env), **env}, command=command, preset=preset)

    # ----- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Endpoint:
        with self._lock:
            if self._stopped:
                raise TargetError(f"{self.label}: stopped before it started")
            self._starting = True
        try:
            return self._start()
        finally:
            with self._lock:
                self._starting = False
            if self._stopped:
                self._close_client()  # stop() left the client open for the start still in progress

    def _start(self) -> Endpoint:
        atexit.register(self._at_exit)  # last resort; stop() unregisters it
        began = time.monotonic()
        container = self._create()
        from docker.errors import DockerException
        from requests.exceptions import RequestException
        try:
            self._run(container)
            with self._lock:
                if self._stopped:  # stop() ran while the engine was creating it
                    raise TargetError(f"{self.label}: interrupted while starting")
                self._container_id = container.get_container_id()
            started = time.monotonic()
            try:
                port = self._inspect(container)
                waited = self._wait_ready(container, port)
            except (DockerException, RequestException) as exc:  # the engine, mid-start (or stop() removed it)
                if self._stopped:
                    raise TargetError(f"{self.label}: interrupted while starting") from None
                raise TargetError(f"{self.label}: the engine failed while starting {self.image!r}: "
                                  f"{_reason(exc)}") from None
        except BaseException:
            with self._lock:
                self._container_id = None
            self._collect_logs(container)
            self._remove(container)
            self._close_client()
            raise
        self._info["timings"] = {"engine_start_seconds": round(started - began, 3),
                                 "greeting_after_seconds": round(waited, 3),
                                 "ready_seconds": round(time.monotonic() - began, 3)}
        return Endpoint(LOOPBACK, port, implicit_tls=self.params.tls == "implicit", server_hostname=LOOPBACK)

    def _create(self) -> Any:
        """The testcontainers object (nothing runs yet); engine problems become TargetError."""
        try:
            from docker.errors import DockerException
            from testcontainers.core.config import testcontainers_config as tc_config
            from testcontainers.core.container import DockerContainer
        except ImportError as exc:
            raise TargetError(f"{self.label}: image targets need testcontainers: {exc}") from None
        try:
            self._name = f"smtpc-{re.sub(r'[^A-Za-z0-9_.-]', '-', self.label)[:40]}-{uuid.uuid4().hex[:8]}"
            container = DockerContainer(
                self.image, command=self.command, env=dict(self.env), name=self._name,
                labels={LABEL: "1", LABEL_SESSION: SESSION_ID, f"{LABEL}.target": self.label[:200]})
            self._client = container.get_docker_client()
            version = self._client.client.version()
        except DockerException as exc:
            raise TargetError(f"{self.label}: {NO_ENGINE} ({_reason(exc)})") from None
        engine = next((c for c in version.get("Components") or [] if "Engine" in c.get("Name", "")), {})
        self._info["engine"] = f"{engine.get('Name', 'engine')} {engine.get('Version', version.get('Version', '?'))}"
        podman = "podman" in self._info["engine"].lower()  # type: ignore[union-attr]
        if podman and os.environ.get("TESTCONTAINERS_RYUK_DISABLED") is None \
                and "ryuk.disabled" not in tc_config.tc_properties:
            tc_config.ryuk_disabled = True  # Podman has no Ryuk image to pull; we remove our own containers
        for inside in (self.port, self.api_port):
            if inside is not None:
                container.ports[f"{inside}/tcp"] = (LOOPBACK, None)  # loopback only, any free host port
        return container

    def _run(self, container: Any) -> None:
        from docker.errors import DockerException, ImageNotFound

        try:
            container.start()
        except ImageNotFound:
            preset = PRESETS.get(self.preset or "")
            hint = preset.build if preset and preset.image == self.image else f"docker pull {self.image}, or build it"
            raise TargetError(f"{self.label}: image {self.image!r} is not available locally and could not be "
                              f"pulled ({hint})") from None
        except DockerException as exc:
            raise TargetError(f"{self.label}: the engine could not start {self.image!r}: {_reason(exc)}") from None
        except Exception as exc:  # testcontainers' own failures (Ryuk, ...): a reason, not a traceback
            raise TargetError(f"{self.label}: could not start {self.image!r}: {exc.__class__.__name__}: "
                              f"{_reason(exc)}") from None

    def _inspect(self, container: Any) -> int:
        """Record identity and published ports; refuse anything not bound to 127.0.0.1."""
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        attrs = wrapped.attrs
        image_id = str(attrs.get("Image") or "")
        digests: list[str] = []
        with contextlib.suppress(Exception):
            digests = list(self._client.client.images.get(image_id).attrs.get("RepoDigests") or [])
        published: dict[str, str] = {}
        for key, bindings in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
            for binding in bindings or []:
                if binding.get("HostIp") not in (LOOPBACK,):
                    raise TargetError(f"{self.label}: the engine published {key} on "
                                      f"{binding.get('HostIp') or 'all addresses'}, not {LOOPBACK} only; refusing")
                published[key] = f"{LOOPBACK}:{binding['HostPort']}"
        self._info.update({
            "image": self.image, "image_id": image_id, "repo_digest": digests[0] if digests else None,
            "container": wrapped.short_id.removeprefix("sha256:")[:12], "container_name": wrapped.name,
            "session": SESSION_ID, "ports": published, "preset": self.preset,
        })
        smtp = published.get(f"{self.port}/tcp")
        if smtp is None:
            state = attrs.get("State") or {}
            if state.get("Status") in ("exited", "dead", "stopped"):
                self._collect_logs(container)
                raise TargetError(self._exited_message(state))
            raise TargetError(f"{self.label}: port {self.port}/tcp was not published (got {published or 'none'})")
        if self.api_port is not None and f"{self.api_port}/tcp" in published:
            api = "http://" + published[f"{self.api_port}/tcp"]
            self._info["api"] = api
            if self.preset and PRESETS[self.preset].api_messages:
                self._info["api_messages"] = api + str(PRESETS[self.preset].api_messages)
        if self.preset and PRESETS[self.preset].maildir:
            self._info["maildir_in_container"] = PRESETS[self.preset].maildir
        return int(smtp.rsplit(":", 1)[1])

    def _wait_ready(self, container: Any, port: int) -> float:
        """Until a complete 220 (or 554) greeting arrives on 127.0.0.1:port; return the seconds waited."""
        start = time.monotonic()
        deadline = start + self.params.startup_timeout
        wrapped = container.get_wrapped_container()
        last = "no connection yet"
        next_check = start  # at once, then every 0.5 s
        while True:
            if self._stopped:
                raise TargetError(f"{self.label}: interrupted while waiting for the greeting")
            now = time.monotonic()
            if now >= next_check:  # a container that died will never greet: say so at once
                next_check = now + 0.5
                wrapped.reload()
                state = wrapped.attrs.get("State") or {}
                if state.get("Status") in ("exited", "dead", "stopped"):
                    self._collect_logs(container)
                    raise TargetError(self._exited_message(state))
            try:
                line = greeting(LOOPBACK, port, min(5.0, max(0.2, deadline - now)), self.params.tls == "implicit")
            except OSError as exc:
                last = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
            else:
                if line[:3] in ("220", "554"):
                    return time.monotonic() - start
                last = f"greeting {line!r}"
            if time.monotonic() >= deadline:
                self._collect_logs(container)
                tail = _one_line(self._log_text()[-2000:], 200)
                raise TargetError(f"{self.label}: no 220 greeting on {LOOPBACK}:{port} within "
                                  f"{self.params.startup_timeout:g} s (last: {_one_line(last, 120)})"
                                  + (f"; container log: {tail}" if tail else ""))
            time.sleep(0.1)

    def _exited_message(self, state: dict[str, Any]) -> str:
        code = state.get("ExitCode")
        self._info["exit_status"] = code
        tail = _one_line(self._log_text()[-2000:], 200)
        return (f"{self.label}: container exited with status {code} before greeting"
                + (f"; log: {tail}" if tail else "; no log output"))

    def stop(self) -> None:
        """Force-remove the container (no 10 s stop grace); safe twice, from any thread, after a failed start."""
        with self._lock:
            self._stopped = True
            cid = self._container_id
            # a start under way: its container may exist before its id is known, and the process may end before
            # that start notices it was stopped (seen: SIGTERM, exit 0.3 s later, a container left behind)
            name = self._name if self._starting and cid is None else None
        if name is not None:
            self._remove_id(name)
        if cid is not None:
            with contextlib.suppress(Exception):
                self._collect_logs(self._client.client.containers.get(cid))
            self._remove_id(cid)
            with self._lock:  # forgotten only once removed: an interrupted stop() leaves it to atexit
                if self._container_id == cid:
                    self._container_id = None
        atexit.unregister(self._at_exit)
        with self._lock:
            starting = self._starting
        if not starting:
            # a start still in progress removes its own container when it sees _stopped: it needs the client
            self._close_client()

    def _at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def _remove(self, container: Any) -> None:
        # by its id once the engine gave one; by the unique name we gave it when the start failed half-way
        # (created, then the start call raised: testcontainers never learnt the id)
        cid = getattr(getattr(container, "_container", None), "id", None) or self._name
        if cid:
            self._remove_id(cid)

    def _remove_id(self, cid: str) -> None:
        from docker.errors import NotFound

        # a start that ended while stop() ran may have closed the shared client (seen: SIGTERM just as the
        # container became ready, the removal skipped, the container left): then a client of its own
        own = None
        client = self._client
        if client is None:
            try:
                client = own = _engine_client()
            except TargetError:
                return
        # Podman can refuse the removal of a container it is still starting: remove until the engine no longer
        # knows it, for a bounded time
        api = client.client.api
        deadline = time.monotonic() + REMOVE_PATIENCE
        try:
            while True:
                try:
                    api.remove_container(cid, force=True, v=True)
                    api.inspect_container(cid)  # still there
                except NotFound:
                    return
                except Exception:  # noqa: BLE001 - removal in progress, the container mid-start, the engine busy
                    pass
                if time.monotonic() >= deadline:
                    return  # left to atexit, then to `smtp-conformance cleanup`
                time.sleep(0.2)
        finally:
            if own is not None:
                with contextlib.suppress(Exception):
                    own.client.close()

    def _close_client(self) -> None:
        with self._lock:
            if not self._stopped:
                return
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.client.close()

    def _collect_logs(self, container: Any) -> None:
        wrapped = getattr(container, "_container", container)
        if wrapped is None or not hasattr(wrapped, "logs"):
            return
        logs = {}
        with contextlib.suppress(Exception):
            for stream in ("stdout", "stderr"):
                data = wrapped.logs(stdout=stream == "stdout", stderr=stream == "stderr", tail=2000)
                logs[stream] = escape_bytes(data[-LOG_TAIL:]).replace("\\n", "\n")
        if logs:
            self._logs = logs

    def _log_text(self) -> str:
        return "\n".join(v for v in (self._logs.get("stdout", ""), self._logs.get("stderr", "")) if v)

    # ----- reporting ------------------------------------------------------------------------------
    def details(self) -> dict[str, object]:
        info: dict[str, object] = {"image": self.image, "preset": self.preset, "port_inside": self.port}
        if self.api_port is not None:
            info["api_port_inside"] = self.api_port
        if self.command is not None:
            info["container_command"] = self.command
        if self.env:
            info["env"] = sorted(self.env)  # names only: values may be secrets
        info.update(self._info)
        return info

    def mailbox(self) -> Mailbox | None:
        """The user's mailbox parameter if any; else the preset's API, or its Maildir inside the container."""
        own = super().mailbox()
        if own is not None or self.preset is None:
            return own
        preset = PRESETS[self.preset]
        api = self._info.get("api")
        if preset.api_kind and api:
            return parse_mailbox(f"{preset.api_kind}:{api}")
        cid, client = self._container_id, self._client
        if preset.maildir and cid and client is not None:
            return ContainerMaildir(client.client, cid, preset.maildir,
                                    f"container-maildir:{cid[:12]}:{preset.maildir}")
        return None

    def logs(self) -> dict[str, str]:
        if self._container_id is not None and self._client is not None:
            with contextlib.suppress(Exception):
                self._collect_logs(self._client.client.containers.get(self._container_id))
        return dict(self._logs)
