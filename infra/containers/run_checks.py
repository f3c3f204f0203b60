"""`make test-containers`: the containers proven on a real Docker engine, offline if need be.

Steps, each named and timed on the way:

1. engine    a Docker engine that answers. None, and this is root on Debian: install Debian's
             docker.io (and Compose v2, packaged from Debian trixie on) if missing, start
             `dockerd`, remember its PID, and stop exactly that process at the end. Otherwise:
             say why, and exit 0 (skipped).
2. images    each backing service's official image if the engine has it or can pull it; if not,
             one built here from Debian packages under its own name (bookstore-local/...), from a
             base made with debootstrap. Jaeger and Grafana have no Debian package: without their
             official image their checks are skipped, saying so.
3. project   the project's image from its Dockerfile. Offline: on the local Python base, with the
             wheels built on this host (wheelhouse/) and no network inside the build.
4. pytest    tests/integration/test_compose_live.py (compose up --wait, an order end to end,
             Prometheus scraping) and tests/integration/test_containers_live.py (testcontainers:
             RabbitMQ, MariaDB, Prometheus; clean-up after SIGKILL), told the images to use.
5. cleanup   every container, network and volume labelled org.bookstore.project (also on Ctrl-C
             or SIGTERM), then the engine if step 1 started it.

Reuse: every image built here carries the label org.bookstore.inputs, a hash of what it was built
from (its Dockerfile and files, the image below it, the project's code and pins). A later run whose
inputs are unchanged uses the image as it is, so a warm run costs the engine's start, the stack's
start and the tests: a few minutes. Images stay in the engine's data directory between runs (they
are the cache; `docker image rm` them to start cold).

    .venv/bin/python infra/containers/run_checks.py [pytest options, e.g. -x -k compose]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

from bookstore.platform import settings  # noqa: E402  (the defaults: one place)
from bookstore.platform.container_watchdog import PROJECT, PROJECT_LABEL  # noqa: E402

WORK = REPO / ".bookstore" / "containers"
WHEELHOUSE = REPO / "wheelhouse"
INPUTS_LABEL = "org.bookstore.inputs"
LOCAL = "bookstore-local"
DEBIAN_IMAGE = f"{LOCAL}/debian:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
COMPOSE_SUITE = "trixie"  # the first Debian release that packages Compose v2
COMPOSE_PLUGIN = Path("/usr/libexec/docker/cli-plugins/docker-compose")
NICE = ["nice", "-n", "10"]  # builds share a small machine
ENGINE_START_TIMEOUT_S = 60
TEARDOWN_TIMEOUT_S = 60
TESTS = ["tests/integration/test_compose_live.py", "tests/integration/test_containers_live.py"]


class Skip(Exception):
    """No engine can be had here; the message says why."""


class Interrupted(Exception):
    """SIGTERM or SIGHUP: clean up as for Ctrl-C."""


# ---------------------------------------------------------------------------- output
def say(message: str) -> None:
    print(f"[test-containers] {message}", flush=True)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    started = time.monotonic()
    say(f"{name} ...")
    try:
        yield
    finally:
        say(f"{name}: {time.monotonic() - started:.1f} s")


def run(command: Sequence[str], *, check: bool = True, quiet: bool = False, **options: object) -> str:
    """Run ``command``; its output is returned (``quiet``) or shown; a failure shows the tail."""
    if quiet:
        done = subprocess.run(list(command), capture_output=True, text=True, **options)  # type: ignore[call-overload]
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{(done.stdout + done.stderr)[-3000:]}")
        return str(done.stdout)
    subprocess.run(list(command), check=check, **options)  # type: ignore[call-overload]
    return ""


def succeeds(command: Sequence[str], timeout: float = 20) -> bool:
    try:
        return subprocess.run(list(command), capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# ---------------------------------------------------------------------------- 1. the engine
@dataclass
class Engine:
    pid: int | None = None  # set when this script started dockerd: only then does it stop it
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is None:
            return
        with step(f"stop the engine this run started (dockerd, PID {self.pid})"):
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def engine_answers() -> bool:
    return succeeds(["docker", "info"], timeout=15)


def ensure_engine() -> Engine:
    if shutil.which("docker") and engine_answers():
        say("a Docker engine answers already: using it (and leaving it running)")
        ensure_compose()
        return Engine()
    if os.geteuid() != 0:
        raise Skip("no Docker engine answers, and only root may install and start one")
    if not Path("/etc/debian_version").exists() or not shutil.which("apt-get"):
        raise Skip("no Docker engine answers, and this is not Debian: install one (docs/containers.md)")
    if not shutil.which("dockerd") or not shutil.which("docker"):
        with step("install Debian's docker.io"):
            try:
                apt_install(["docker.io"])
            except (RuntimeError, subprocess.CalledProcessError) as error:
                raise Skip(f"no Docker engine answers, and installing docker.io failed: {error}") from None
    ensure_compose()
    WORK.mkdir(parents=True, exist_ok=True)
    with step("start dockerd"):
        log = open(WORK / "dockerd.log", "ab")  # noqa: SIM115  (the daemon writes to it until it stops)
        process = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        engine = Engine(process.pid, process)
        (WORK / "dockerd.pid").write_text(f"{process.pid}\n")
        deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
        while not engine_answers():
            if process.poll() is not None or time.monotonic() > deadline:
                engine.stop()
                tail = (WORK / "dockerd.log").read_text(errors="replace")[-1500:]
                raise Skip(f"dockerd did not come up (see {WORK / 'dockerd.log'}):\n{tail}")
            time.sleep(0.5)
        say(f"dockerd started, PID {process.pid}")
    return engine


def apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if not succeeds(command, timeout=600):
        run(["apt-get", "update", "-qq"], env=env)
        run(command, env=env)


def ensure_compose() -> None:
    """Compose v2 (`docker compose`): Debian bookworm's docker-compose 1.29 rejects the file's `name:`."""
    if succeeds(["docker", "compose", "version"]):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Skip("`docker compose` (Compose v2) is missing: install it (docs/containers.md)")
    with (
        step(f"install Compose v2 from Debian {COMPOSE_SUITE} (one static binary)"),
        tempfile.TemporaryDirectory() as tmp,
    ):
        root = Path(tmp)
        (root / "lists" / "partial").mkdir(parents=True)
        (root / "sources.list").write_text(
            f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {COMPOSE_SUITE} main\n"
        )
        # A private package list: the machine's own apt configuration is left as it was.
        apt = [
            "apt-get",
            "-qq",
            f"-o=Dir::Etc::sourcelist={root / 'sources.list'}",
            "-o=Dir::Etc::sourceparts=-",
            f"-o=Dir::State::lists={root / 'lists'}",
            f"-o=Dir::Cache={root}",
            "-o=APT::Sandbox::User=root",
        ]
        try:
            run([*apt, "update"], quiet=True)
            run([*apt, "download", "docker-compose"], quiet=True, cwd=root)
        except RuntimeError as error:
            raise Skip(f"`docker compose` (Compose v2) is missing, and fetching it failed: {error}") from None
        [deb] = root.glob("docker-compose_*.deb")
        run(["dpkg-deb", "-x", str(deb), str(root / "x")])
        COMPOSE_PLUGIN.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / "x" / COMPOSE_PLUGIN.relative_to("/"), COMPOSE_PLUGIN)
    say(run(["docker", "compose", "version"], quiet=True).strip())


# ---------------------------------------------------------------------------- 2. images
def image_inputs(image: str) -> str | None:
    """The inputs label of ``image`` ("" if it has none), or None when the engine lacks it."""
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return None
    labels = json.loads(done.stdout.strip() or "null") or {}
    return str(labels.get(INPUTS_LABEL, ""))


def image_id(image: str) -> str:
    return run(["docker", "image", "inspect", "--format", "{{.Id}}", image], quiet=True).strip()


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:24]


def official_or_none(image: str) -> str | None:
    """``image`` when the engine has it or a pull brings it; None offline (or the pull is refused)."""
    if image_inputs(image) is not None or succeeds(["docker", "pull", "-q", image], timeout=300):
        return image
    return None


def debian_base() -> str:
    """A Debian bookworm base made by debootstrap and imported: no registry involved."""
    wanted = digest("debootstrap --variant=minbase", DEBIAN_SUITE, DEBIAN_MIRROR)
    if image_inputs(DEBIAN_IMAGE) == wanted:
        say(f"{DEBIAN_IMAGE}: up to date")
        return DEBIAN_IMAGE
    with step(f"build {DEBIAN_IMAGE} (debootstrap)"):
        if not shutil.which("debootstrap"):
            apt_install(["debootstrap"])
        with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
            root = Path(tmp) / "rootfs"
            run(
                [*NICE, "debootstrap", "--variant=minbase", DEBIAN_SUITE, str(root), DEBIAN_MIRROR],
                quiet=True,
            )
            tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            run(
                [
                    "docker",
                    "import",
                    "-c",
                    f"LABEL {INPUTS_LABEL}={wanted} {PROJECT_LABEL}={PROJECT}",
                    "-",
                    DEBIAN_IMAGE,
                ],
                quiet=True,
                stdin=tar.stdout,
            )
            if tar.wait() != 0:
                raise RuntimeError("tar of the debootstrap tree failed")
    return DEBIAN_IMAGE


def local_image(name: str, tag: str, files: Sequence[str], below: str) -> str:
    """``bookstore-local/<name>:<tag>`` from infra/containers/<name>.Dockerfile on the image ``below``."""
    image = f"{LOCAL}/{name}:{tag}"
    dockerfile = HERE / f"{name}.Dockerfile"
    wanted = digest(image_id(below), dockerfile.read_bytes(), *((HERE / f).read_bytes() for f in files))
    if image_inputs(image) == wanted:
        say(f"{image}: up to date")
        return image
    with step(f"build {image}"):
        build(image, wanted, HERE, dockerfile, {"DEBIAN_IMAGE": below})
    return image


def build(
    image: str, inputs: str, context: Path, dockerfile: Path, args: dict[str, str], *, offline: bool = False
) -> None:
    command = [
        *NICE,
        "docker",
        "build",
        "-q",
        "-t",
        image,
        "-f",
        str(dockerfile),
        "--label",
        f"{INPUTS_LABEL}={inputs}",
        "--label",
        f"{PROJECT_LABEL}={PROJECT}",
    ]
    for key, value in args.items():
        command += ["--build-arg", f"{key}={value}"]
    if offline:
        command += ["--network", "none"]
    # The classic builder: Debian's engine has no BuildKit front end here (no buildx plugin).
    run([*command, str(context)], quiet=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})


@dataclass
class Images:
    rabbitmq: str
    mysql: str
    prometheus: str
    redis: str
    bookstore: str
    jaeger: str | None
    grafana: str | None

    def environment(self) -> dict[str, str]:
        """What compose and the testcontainers code read (BOOKSTORE_<NAME>_IMAGE); absent ones unset."""
        chosen = {
            "BOOKSTORE_RABBITMQ_IMAGE": self.rabbitmq,
            "BOOKSTORE_MYSQL_IMAGE": self.mysql,
            "BOOKSTORE_PROMETHEUS_IMAGE": self.prometheus,
            "BOOKSTORE_IMAGE": self.bookstore,
            "BOOKSTORE_JAEGER_IMAGE": self.jaeger,
            "BOOKSTORE_GRAFANA_IMAGE": self.grafana,
            "BOOKSTORE_REDIS_IMAGE": self.redis,
        }
        return {key: value for key, value in chosen.items() if value}


def choose_images() -> Images:
    compose_defaults = compose_image_defaults()
    found = {name: official_or_none(image) for name, image in compose_defaults.items()}
    debian: str | None = None

    def local(name: str, tag: str, files: Sequence[str]) -> str:
        nonlocal debian
        debian = debian or debian_base()
        return local_image(name, tag, files, debian)

    rabbitmq = found["rabbitmq"] or local("rabbitmq", DEBIAN_SUITE, ["rabbitmq.conf"])
    mysql = found["mysql"] or local(
        "mariadb", DEBIAN_SUITE, ["mariadb-entrypoint.sh", "mariadb-healthcheck.sh"]
    )
    prometheus = found["prometheus"] or local("prometheus", DEBIAN_SUITE, [])
    redis = found["redis"] or local("redis", DEBIAN_SUITE, [])
    python = official_or_none(dockerfile_base())
    if python is None:
        python = local("python", f"3.11-{DEBIAN_SUITE}", [])
    bookstore = project_image(python, offline=python.startswith(f"{LOCAL}/"))
    for name in ("jaeger", "grafana"):
        if found[name] is None:
            say(f"{compose_defaults[name]}: absent, not pullable, and no Debian package to build it from")
    return Images(rabbitmq, mysql, prometheus, redis, bookstore, found["jaeger"], found["grafana"])


def compose_image_defaults() -> dict[str, str]:
    """The official images, as the settings (testcontainers) and the compose file's defaults name them."""
    compose = (REPO / "docker-compose.yml").read_text()
    images = {
        "rabbitmq": settings.RABBITMQ_IMAGE,
        "mysql": settings.MYSQL_IMAGE,
        "prometheus": settings.PROMETHEUS_IMAGE,
        "jaeger": settings.JAEGER_IMAGE,
    }
    for name in ("grafana", "redis"):
        variable = f"${{BOOKSTORE_{name.upper()}_IMAGE:-"
        images[name] = compose.split(variable, 1)[1].split("}", 1)[0]
    return images


# ---------------------------------------------------------------------------- 3. the project image
def dockerfile_base() -> str:
    """The default of the Dockerfile's BASE_IMAGE argument (the official Python image)."""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("ARG BASE_IMAGE="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError("the Dockerfile has no ARG BASE_IMAGE=")


def project_inputs(base: str) -> str:
    parts: list[bytes | str] = [image_id(base)]
    for name in ("Dockerfile", "requirements.txt", "pyproject.toml", ".dockerignore"):
        parts += [name, (REPO / name).read_bytes()]
    for path in sorted((REPO / "bookstore").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            parts += [str(path.relative_to(REPO)), path.read_bytes()]
    return digest(*parts)


def project_image(base: str, *, offline: bool) -> str:
    image = f"{LOCAL}/bookstore:dev" if offline else "bookstore:dev"
    wanted = project_inputs(base)
    if image_inputs(image) == wanted:
        say(f"{image}: up to date")
        return image
    args = {"BASE_IMAGE": base}
    if offline:
        wheelhouse()
        # Debian bookworm's Python is 3.11.2; a few pinned pure-Python wheels declare >=3.11.5 (soupsieve)
        # without needing anything newer. The image test imports the services to check that.
        args["PIP_INSTALL_OPTIONS"] = "--no-index --find-links /tmp/build --ignore-requires-python"
    with step(f"build {image} (the project's Dockerfile{', no network' if offline else ''})"):
        build(image, wanted, REPO, REPO / "Dockerfile", args, offline=offline)
    return image


def wheelhouse() -> None:
    """wheelhouse/: wheels of the runtime dependencies at the pinned versions, built on this host."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = "\n".join(pyproject["project"]["dependencies"]) + "\n"
    wanted = digest(runtime, (REPO / "requirements.txt").read_bytes(), sys.version.split()[0])
    stamp = WHEELHOUSE / ".inputs"
    if stamp.exists() and stamp.read_text().strip() == wanted:
        say("wheelhouse/: up to date")
        return
    with step("build wheelhouse/ (pip wheel on this host)"):
        shutil.rmtree(WHEELHOUSE, ignore_errors=True)
        WHEELHOUSE.mkdir()
        (WHEELHOUSE / "runtime.txt").write_text(runtime)
        pip = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--disable-pip-version-check",
            "-w",
            str(WHEELHOUSE),
        ]
        run(
            [
                *NICE,
                *pip,
                "--constraint",
                str(REPO / "requirements.txt"),
                "-r",
                str(WHEELHOUSE / "runtime.txt"),
            ],
            quiet=True,
        )
        (WHEELHOUSE / "runtime.txt").unlink()
        stamp.write_text(wanted + "\n")


# ---------------------------------------------------------------------------- 4. the tests
def run_tests(images: Images, pytest_args: Sequence[str]) -> int:
    env = {
        **os.environ,
        **images.environment(),
        # The reaper's image cannot be pulled offline; the project's own watchdog removes containers.
        "TESTCONTAINERS_RYUK_DISABLED": "true",
        # This machine may look like a container (/.dockerenv): use the ports published on loopback.
        "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
        "TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
    }
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    # Two workers, one per file: the compose stack and the testcontainers mostly wait on
    # containers starting, so side by side they take about as long as the longer one.
    command = [*pytest, "-q", "-rs", "--durations=8", "-n", "2", "--dist", "loadfile", *TESTS, *pytest_args]
    with step("pytest: " + " ".join(TESTS)):
        # Its own process group, so an interruption reaches pytest and the `docker compose` it runs
        # together, and pytest's own teardown (compose down) runs before the sweep by label.
        tests = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
        try:
            return tests.wait()
        except BaseException:
            stop_group(tests)
            raise


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the process's group (as Ctrl-C would), up to a minute for its teardown, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=TEARDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# ---------------------------------------------------------------------------- 5. cleanup
def project_objects() -> dict[str, list[str]]:
    """Containers, networks and volumes labelled as the project's, by kind."""
    found: dict[str, list[str]] = {}
    for kind, listing in (
        ("container", ["ps", "-aq"]),
        ("network", ["network", "ls", "-q"]),
        ("volume", ["volume", "ls", "-q"]),
    ):
        output = run(["docker", *listing, "--filter", f"label={PROJECT_LABEL}"], quiet=True, check=False)
        found[kind] = output.split()
    return found


def cleanup() -> None:
    with step("remove the project's containers, networks and volumes"):
        objects = project_objects()
        if objects["container"]:
            run(["docker", "rm", "-f", "-v", *objects["container"]], quiet=True, check=False)
        if objects["network"]:
            run(["docker", "network", "rm", *objects["network"]], quiet=True, check=False)
        if objects["volume"]:
            run(["docker", "volume", "rm", "-f", *objects["volume"]], quiet=True, check=False)
        left = {kind: ids for kind, ids in project_objects().items() if ids}
        say(f"left behind: {left or 'nothing'}")


def on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main(argv: Sequence[str]) -> int:
    # Ctrl-C raises KeyboardInterrupt here, and, since a handler (unlike an ignored signal) does not
    # pass to the programs this starts, SIGINT reaches pytest as Ctrl-C even when this script was
    # started in the background (a shell's `&` ignores SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    started = time.monotonic()
    engine: Engine | None = None
    status = 1
    try:
        with step("engine"):
            engine = ensure_engine()
        cleanup()  # what an earlier run killed with SIGKILL may have left
        with step("images"):
            images = choose_images()
        status = run_tests(images, argv)
    except Skip as why:
        say(f"SKIPPED: {why}")
        status = 0
    except (KeyboardInterrupt, Interrupted) as why:
        say(f"interrupted ({why or 'SIGINT'}): cleaning up")
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        if engine is not None:
            cleanup()
            engine.stop()
        say(f"done in {time.monotonic() - started:.0f} s, exit status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
