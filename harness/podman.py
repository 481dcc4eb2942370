"""A real container engine for tests: rootful podman serving the Docker API on a private socket.

Nothing here installs anything: podman and runc must be on the machine (`make test` installs
them). `PodmanService` writes its own config files (runc, cgroupfs, no network namespace by
default, no reachable registry), keeps its images and containers under one directory, and is
stopped by its own pid. `build_python_image` makes an image without any registry: a tar of this
machine's Python installation and the shared libraries it loads, imported as a root file system,
then a `podman build --network=none` layer on top. Tests bind-mount the project and its virtual
environment read-only at their own paths, so the image needs neither Dagster nor this package.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

CONTAINERS_CONF = """\
[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{root}/libpod-tmp"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{root}/storage"
runroot = "{root}/run"
"""

REGISTRIES_CONF = """\
unqualified-search-registries = []

[[registry]]
location = "docker.io"
blocked = true

[[registry]]
location = "quay.io"
blocked = true
{extra}"""

# Labels of every container the test suite starts, so teardown finds what tests left.
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def podman_available() -> bool:
    return shutil.which("podman") is not None and shutil.which("runc") is not None


class PodmanService:
    """`podman system service` on a unix socket under ``root``, with its own store and config.

    ``insecure_registries`` lists registries (host:port on loopback) podman may reach over
    plain HTTP, for a test that serves one.
    """

    def __init__(self, root: Path, insecure_registries: Iterable[str] = ()) -> None:
        self.root = Path(root)
        self.socket = self.root / "podman.sock"
        self.base_url = f"unix://{self.socket}"
        self.insecure_registries = list(insecure_registries)
        self._process: subprocess.Popen | None = None
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(self.root / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.root / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(self.root / "registries.conf"),
        }
        self.env.pop("DOCKER_HOST", None)

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "containers.conf").write_text(CONTAINERS_CONF.format(root=self.root))
        (self.root / "storage.conf").write_text(STORAGE_CONF.format(root=self.root))
        extra = "".join(
            f'\n[[registry]]\nlocation = "{where}"\ninsecure = true\n'
            for where in self.insecure_registries
        )
        (self.root / "registries.conf").write_text(REGISTRIES_CONF.format(extra=extra))

    def podman(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        """Run the podman CLI against this service's store; its output."""
        done = subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self, timeout: float = 60) -> None:
        self.write_config()
        self._process = subprocess.Popen(
            ["podman", "system", "service", "--time=0", self.base_url],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=open(self.root / "service.log", "wb"),  # noqa: SIM115 - lives with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"podman system service exited with {self._process.returncode}: "
                    f"{(self.root / 'service.log').read_text()[-2000:]}"
                )
            if self.ping():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"podman system service did not answer on {self.socket} in {timeout}s")

    def ping(self) -> bool:
        import socket

        if not self.socket.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(str(self.socket))
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
                answer = sock.recv(4096)
        except OSError:
            return False
        return answer.startswith(b"HTTP/1.") and answer.rstrip().endswith(b"OK")

    def client(self):
        import docker

        return docker.DockerClient(base_url=self.base_url)

    def containers(self, label: str | None = None) -> list[dict[str, str]]:
        """Every container of this store (running or not), as `podman ps -a` lists them."""
        import json

        args = ["ps", "--all", "--format", "json"]
        if label:
            args += ["--filter", f"label={label}"]
        return json.loads(self.podman(*args) or "[]")

    def stop(self) -> None:
        """Remove every container of this store, then stop the service by its own pid."""
        process = self._process
        if process is None:
            return
        self.podman("rm", "--all", "--force", "--time", "0", check=False)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._process = None


def _shared_libraries(files: Iterable[Path]) -> set[Path]:
    """The system libraries (and the loader) these executables and extension modules load."""
    files = [str(f) for f in files]
    found: set[Path] = set()
    for start in range(0, len(files), 200):
        done = subprocess.run(
            ["ldd", *files[start : start + 200]], capture_output=True, text=True, check=False
        )
        for line in done.stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > parts.index("=>") + 1:
                target = parts[parts.index("=>") + 1]
            elif parts and parts[0].startswith("/") and "(0x" in line:
                target = parts[0]  # the loader: /lib64/ld-linux-x86-64.so.2 (0x...)
            else:
                continue
            if target.startswith("/"):
                found.add(Path(target))
    return found


def _add_path(tar: tarfile.TarFile, path: Path, added: set[str]) -> None:
    """Add a file with its parent directories, following a chain of symlinks to the file."""
    # Through the real directory: /lib/x86_64-linux-gnu is /usr/lib/... on a merged /usr.
    path = Path(os.path.realpath(path.parent), path.name)
    for parent in reversed(path.parents):
        if str(parent) != "/" and str(parent) not in added:
            added.add(str(parent))
            tar.add(str(parent), recursive=False)
    if str(path) in added:
        return
    added.add(str(path))
    tar.add(str(path), recursive=False)
    if path.is_symlink():
        target = Path(os.path.join(path.parent, os.readlink(path)))
        _add_path(tar, Path(os.path.normpath(target)), added)


def python_rootfs_tar(target: Path, venv: str = sys.prefix) -> Path:
    """A tar of a root file system with this machine's Python installation and the libraries it
    and the virtual environment ``venv`` load (without the installation's own site-packages)."""
    prefix = Path(sys.base_prefix)
    stdlib = Path(sysconfig.get_paths(vars={"base": str(prefix)})["stdlib"])
    skip = {
        stdlib / "site-packages",
        stdlib / "test",
        stdlib / "idlelib",
        stdlib / "tkinter",
        stdlib / "turtledemo",
        *stdlib.glob("config-*"),
    }
    executable = Path(os.path.realpath(sys._base_executable))
    extensions = list(stdlib.joinpath("lib-dynload").glob("*.so"))
    extensions += list(Path(venv).rglob("*.so")) + list(Path(venv).rglob("*.so.*"))
    libraries = _shared_libraries([executable, *extensions])

    with tarfile.open(target, "w") as tar:
        added: set[str] = set()
        for name, link in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
            if Path("/", name).is_symlink():
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
                added.add(f"/{name}")
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, mode in (("tmp", 0o1777), ("root", 0o700), ("etc", 0o755)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
            added.add(f"/{name}")
        # The installation first, at its own path: the virtual environment's python links to it.
        for parent in reversed(prefix.parents):
            if str(parent) != "/" and str(parent) not in added:
                added.add(str(parent))
                tar.add(str(parent), recursive=False)

        def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            path = Path("/", info.name)
            if any(path == s or s in path.parents for s in skip):
                return None
            added.add(str(path))
            return info

        tar.add(str(prefix), filter=keep)
        # An empty site-packages, where site.py expects one.
        info = tarfile.TarInfo(str(stdlib.joinpath("site-packages")).lstrip("/"))
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        added.add(str(stdlib.joinpath("site-packages")))
        for library in sorted(libraries):
            _add_path(tar, library, added)
    return target


def build_python_image(
    service: PodmanService,
    workdir: Path,
    tag: str,
    path: Iterable[str],
    dockerfile: str = 'ENTRYPOINT ["dagster-webserver"]\n',
    context: Iterable[Path] = (),
) -> str:
    """Build ``tag``: this machine's Python as the base layer (``localhost/...-base``), then
    PATH, PYTHONUNBUFFERED and HOME, then the lines of ``dockerfile`` (without FROM), with the
    ``context`` files beside it for its COPY lines."""
    workdir.mkdir(parents=True, exist_ok=True)
    base = f"{tag.rsplit(':', 1)[0]}-base:latest"
    started = time.monotonic()
    tar = python_rootfs_tar(workdir / "rootfs.tar")
    service.podman("import", str(tar), base)
    tar.unlink()
    for source in context:
        shutil.copy(source, workdir / Path(source).name)
    (workdir / "Dockerfile").write_text(
        f"FROM {base}\nENV PATH={':'.join(path)} PYTHONUNBUFFERED=1 HOME=/tmp\n{dockerfile}"
    )
    service.podman("build", "--network=none", "--pull=never", "-t", tag, str(workdir))
    log.info("Built image %s in %.1fs", tag, time.monotonic() - started)
    return tag
