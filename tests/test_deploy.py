"""The appliance: the Dockerfile, compose.yaml and the Helm chart, checked with real tools.

No Docker engine or cluster runs here, so these tests check what can be checked without one:
hadolint on the Dockerfile, the image's own command line run on the host, compose.yaml against
the Compose specification and against the files it mounts, and the chart rendered by the real
Helm engine (helm-python-sdk), linted, and every manifest validated against the Kubernetes
schema (kubernetes-validate).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import helm_python as helm
import httpx
import kubernetes_validate
import pytest
import yaml

from tests.support.server import alive, free_port, stop, wait_for

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
PROMETHEUS_CONFIG = REPO / "deploy/prometheus/prometheus.yml"
GRAFANA_PROVISIONING = REPO / "deploy/grafana/provisioning"
DASHBOARD = REPO / "deploy/grafana/dashboards/mosic.json"
CHART = REPO / "helm/mosic"

RELEASE = "mosic"
NAMESPACE = "media"
CONTAINER_PORT = 8000
# The chart's default metrics.port: /metrics leaves the port the Ingress publishes.
METRICS_PORT = 9100
# gunicorn's graceful timeout (mosic/gunicorn.py): what a stop must give running streams.
GUNICORN_GRACE_S = 30

# Custom resources the Kubernetes schema cannot know; only their envelope is checked.
CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
}

SERVER_START_TIMEOUT_S = 60
SERVER_STOP_TIMEOUT_S = 30
TOOL_TIMEOUT_S = 120


# ------------------------------------------------------------------------------ helpers


def tool(name: str) -> str:
    """A command-line tool installed beside this Python (a test dependency), or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install the test extras (pip install '.[test]')")
    return found


def mosic_setting_names() -> set[str]:
    """Every environment variable Mosic reads: MOSIC_ + the names mosic/settings.py asks for."""
    source = (REPO / "mosic/settings.py").read_text()
    prefix = re.search(r'^PREFIX = "([A-Z_]+)"', source, re.M).group(1)
    names = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', source))
    assert names, 'no env.<type>("NAME") calls found in mosic/settings.py'
    return {prefix + name for name in names}


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        stages[-1].append((instruction, args.strip()))
    return stages


def final_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[-1]


def instruction_args(name: str) -> list[str]:
    return [args for instruction, args in final_stage() if instruction == name]


def image_env(host_path: str) -> dict[str, str]:
    """The final stage's ENV, with ${VAR} expanded as Docker does ($PATH from the base image)."""
    env: dict[str, str] = {}

    def expand(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, host_path if name == "PATH" else "")

    for args in instruction_args("ENV"):
        for item in shlex.split(args):
            key, sep, value = item.partition("=")
            assert sep, f"ENV {args!r}: use the KEY=value form"
            env[key] = re.sub(r"\$\{(\w+)\}|\$(\w+)", expand, value)
    return env


def image_cmd() -> list[str]:
    (cmd,) = instruction_args("CMD")
    return json.loads(cmd)


def healthcheck_cmd() -> list[str]:
    (check,) = instruction_args("HEALTHCHECK")
    _, _, exec_form = check.partition("CMD ")
    return json.loads(exec_form)


def image_uid() -> int:
    (user,) = instruction_args("USER")
    return int(user.split(":")[0])


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_built_in_a_builder_stage_and_runs_slim_and_unprivileged():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: a builder stage and a final stage"
    base = stages[-1][0][1]
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base), base
    assert any(
        instruction == "COPY" and args.startswith("--from=") for instruction, args in stages[-1]
    ), "the final stage copies what the builder made"
    assert image_uid() > 0, "the image must not run as root"
    assert instruction_args("VOLUME") == ['["/data"]']
    assert instruction_args("EXPOSE") == [str(CONTAINER_PORT)]


def test_image_runs_mosic_serve_with_gunicorn_on_the_data_volume():
    env = image_env("/usr/bin")
    assert env["MOSIC_DATA_DIR"] == "/data"
    assert int(env["MOSIC_WORKERS"]) > 1, "more than one worker runs gunicorn with uvicorn workers"
    assert set(k for k in env if k.startswith("MOSIC_")) <= mosic_setting_names()
    all_interfaces = "0.0.0.0"  # noqa: S104 - what a container must listen on
    assert image_cmd() == ["mosic", "serve", "--host", all_interfaces, "--port", "8000"]
    check = healthcheck_cmd()
    assert check[0] == "python", "the slim image has no curl"
    assert f"127.0.0.1:{CONTAINER_PORT}/healthz" in check[-1]


def test_ignore_file_keeps_secrets_and_history_out_of_the_build_context():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # An allowlist: everything is ignored first, then the package is let back in.
    assert patterns[0] == "*"
    assert "!mosic/" in patterns and "!pyproject.toml" in patterns
    assert not any(p in ("!.env", "!.git", "!data") for p in patterns)


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """(exclude?, regex) per .dockerignore line, in order: the last match decides."""
    patterns = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?)", glob):
            regex += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                part, re.escape(part)
            )
        patterns.append((not negated, re.compile(regex)))
    return patterns


def in_build_context(path: str, patterns) -> bool:
    """Docker's rule: a pattern matching the path or one of its parent directories applies."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for exclude, regex in patterns:
        if any(regex.fullmatch(c) for c in candidates):
            excluded = exclude
    return not excluded


def test_the_build_context_holds_what_the_builder_stage_installs(tmp_path):
    """What `COPY . /src` receives through .dockerignore must build the package."""
    patterns = dockerignore_patterns()
    includes = [
        line.strip()[1:].strip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip().startswith("!")
    ]
    assert includes and not any("/" in include for include in includes), includes
    context = tmp_path / "context"
    copied = []
    for root, dirs, files in os.walk(REPO):
        base = Path(root).relative_to(REPO).as_posix().removeprefix(".")
        # Includes name top-level entries only (asserted below): no excluded directory
        # can hold an included file.
        dirs[:] = [d for d in dirs if in_build_context(f"{base}/{d}".lstrip("/"), patterns)]
        for name in files:
            relative = f"{base}/{name}".lstrip("/")
            if in_build_context(relative, patterns):
                (context / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / relative, context / relative)
                copied.append(relative)
    assert "pyproject.toml" in copied and "mosic/cli/__init__.py" in copied
    leaked = [c for c in copied if c.startswith((".git/", ".env", "data/", "tests/", "helm/"))]
    assert not leaked, leaked
    assert not any("__pycache__" in c for c in copied)

    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = wheels.glob("mosic-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "mosic/api/openapi.json" in names
        web = {f"mosic/web/static/{p.name}" for p in (REPO / "mosic/web/static").iterdir()}
        assert web and web <= names, "the web player's files must ship in the package"
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "mosic = mosic.cli:main" in archive.read(entry_points).decode()


def test_the_image_command_line_serves_on_the_host(tmp_path):
    """Run the image's CMD with the image's ENV, only /data and the address changed."""
    port = free_port()
    data_dir = tmp_path / "data"
    home = tmp_path / "home"  # the image's user has a home of its own
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MOSIC_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(image_env(os.environ.get("PATH", "")))
    env.update(MOSIC_DATA_DIR=str(data_dir), HOME=str(home))

    argv = image_cmd()
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    assert argv[0] == "mosic"
    argv[:1] = [sys.executable, "-m", "mosic"]  # the same console script, this interpreter

    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        # A working directory of its own: no developer's ./.env gets read.
        proc = subprocess.Popen(
            argv,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def ready() -> bool:
            alive(proc, log_path)
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200

        wait_for("the image's command line to serve", ready, SERVER_START_TIMEOUT_S, log_path)
        # MOSIC_WORKERS workers: gunicorn, as in the container (the last may still be booting).
        workers = int(env["MOSIC_WORKERS"])
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while log_path.read_text(errors="replace").count("Booting worker") < workers:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        output = log_path.read_text(errors="replace")
        assert output.count("Booting worker") == workers, output
        # The generated API key is kept in the data directory and printed exactly once.
        key_file = data_dir / "api_key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert output.count(key_file.read_text().strip()) == 1
        # The image's HEALTHCHECK command works against it.
        check = [c.replace(f":{CONTAINER_PORT}/", f":{port}/") for c in healthcheck_cmd()]
        check[0] = sys.executable
        subprocess.run(check, check=True, timeout=10, env=env)
    finally:
        stop(proc)


# ------------------------------------------------------------------------------ compose.yaml


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not KEY=value"
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, with .env.example's values."""

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = values.get(name, "")
        if op == ":-" and not value:
            return arg
        if op == ":?" and not value:
            return f"<required {name}>"
        return value

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, str(text))


def service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_file_follows_the_compose_specification():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_compose_service_has_an_image_or_a_build():
    services = compose()["services"]
    assert {"mosic", "postgres", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
    assert services["mosic"]["build"] == "."
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_mosic_waits_for_a_healthy_postgres():
    services = compose()["services"]
    for name in ("mosic", "postgres"):
        test = services[name]["healthcheck"]["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    mosic_check = " ".join(services["mosic"]["healthcheck"]["test"])
    assert f"127.0.0.1:{CONTAINER_PORT}/readyz" in mosic_check
    assert services["mosic"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_mosic_environment_names_are_settings_mosic_reads():
    services = compose()["services"]
    env = service_env(services["mosic"])
    names = {k for k in env if k.startswith("MOSIC_")}
    unknown = names - mosic_setting_names()
    assert not unknown, f"compose sets variables Mosic never reads: {sorted(unknown)}"
    # Mosic reaches the database by its service name; both sides share one password.
    assert env["MOSIC_DB_HOST"] == "postgres"
    postgres_env = service_env(services["postgres"])
    assert env["MOSIC_DB_PASSWORD"].startswith("${MOSIC_DB_PASSWORD:?")
    assert postgres_env["POSTGRES_PASSWORD"].startswith("${MOSIC_DB_PASSWORD:?")
    assert env["MOSIC_API_KEY"].startswith("${MOSIC_API_KEY")


def test_every_variable_compose_uses_is_in_the_env_example():
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", COMPOSE.read_text()))
    missing = used - set(env_example())
    assert not missing, f".env.example lacks {sorted(missing)}"
    assert "cp .env.example .env" in ENV_EXAMPLE.read_text()


def test_every_mounted_host_path_exists_and_named_volumes_are_declared():
    data = compose()
    declared = set(data.get("volumes") or {})
    values = env_example()
    for name, service in data["services"].items():
        for volume in service.get("volumes", []):
            # As .env.example leaves it (MUSIC_DIR unset: the declared, empty music volume).
            source, _, rest = interpolate(volume, values).partition(":")
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts {source}, missing from the repo"
                assert rest.endswith(":ro"), f"{name}: mount configuration read-only: {volume}"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
    assert "mosic-data:/data" in data["services"]["mosic"]["volumes"]
    # A music folder is only ever read.
    assert "${MUSIC_DIR:-music}:/music:ro" in data["services"]["mosic"]["volumes"]


def test_ports_are_published_on_localhost_by_default():
    values = env_example()
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            published = interpolate(port, values)
            assert published.startswith("127.0.0.1:"), f"{name}: {port} -> {published}"
            # And with no .env at all, the defaults in compose.yaml itself say the same.
            assert interpolate(port, {}).startswith("127.0.0.1:"), f"{name}: {port}"
    mosic_ports = [interpolate(p, values) for p in compose()["services"]["mosic"]["ports"]]
    assert mosic_ports == [f"127.0.0.1:8000:{CONTAINER_PORT}"]


def test_prometheus_scrapes_the_mosic_service_on_its_container_port():
    services = compose()["services"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "mosic"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    assert targets
    container_ports = {
        int(interpolate(p, {}).rsplit(":", 1)[1]) for p in services["mosic"]["ports"]
    }
    for target in targets:
        host, _, port = target.rpartition(":")
        assert host == "mosic" and host in services, target
        assert int(port) in container_ports, target


def test_grafana_provisioning_matches_the_compose_services_and_mounts():
    services = compose()["services"]
    datasources = [
        ds
        for path in sorted((GRAFANA_PROVISIONING / "datasources").glob("*.y*ml"))
        for ds in yaml.safe_load(path.read_text()).get("datasources", [])
    ]
    prometheus = [ds for ds in datasources if ds["type"] == "prometheus"]
    assert prometheus, "no Prometheus datasource provisioned"
    for ds in prometheus:
        assert ds["url"] == "http://prometheus:9090", ds["url"]
    assert "prometheus" in services
    providers = [
        provider
        for path in sorted((GRAFANA_PROVISIONING / "dashboards").glob("*.y*ml"))
        for provider in yaml.safe_load(path.read_text()).get("providers", [])
    ]
    mounts = {v.split(":")[1] for v in services["grafana"]["volumes"] if v.startswith("./deploy/")}
    assert any(p["options"]["path"] in mounts for p in providers), (providers, mounts)
    assert DASHBOARD.is_file()
    # The home dashboard is the Mosic one, inside the mounted directory.
    home = service_env(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    (dashboards_mount,) = [
        v for v in services["grafana"]["volumes"] if v.startswith("./deploy/grafana/dashboards:")
    ]
    _, target, _ = dashboards_mount.split(":")
    assert home == f"{target}/{DASHBOARD.name}"


# ------------------------------------------------------------------------------ the Helm chart


@pytest.fixture(scope="module")
def chart():
    loaded = helm.Chart.load(CHART)
    yield loaded
    loaded.close()


def production_values() -> dict:
    return yaml.safe_load((CHART / "values-production.yaml").read_text())


EVERYTHING_ON = {
    "postgresql": {"enabled": False},
    "cnpg": {"enabled": True, "instances": 3, "storage": {"storageClass": "fast"}},
    "ingress": {"enabled": True, "className": "nginx", "tls": [{"secretName": "t"}]},
    "podDisruptionBudget": {"enabled": True},
    "metrics": {"port": 9100, "serviceMonitor": {"enabled": True}},
    "auth": {"apiKey": "k" * 40},
    "extraEnv": [{"name": "TZ", "value": "UTC"}],
}
EXTERNAL_WITH_PASSWORD = {
    "postgresql": {"enabled": False},
    "externalDatabase": {"host": "db.internal", "password": "pw"},
    "persistence": {"enabled": False},
    "migrations": {"initContainer": False},
}
GATEWAY_AND_ALERTS = {
    "nameOverride": "tunes",
    "httpRoute": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gateways"}]},
    "networkPolicy": {
        "httpFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateways"}}}
        ]
    },
    "metrics": {"prometheusRule": {"enabled": True}},
    "podDisruptionBudget": {"enabled": True},
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
        }
    ],
}
NGINX_SIDECAR = {"nginx": {"enabled": True}, "networkPolicy": {"httpFrom": [{"podSelector": {}}]}}
RENDER_CASES = {
    "default": {},
    "nginx-sidecar": NGINX_SIDECAR,
    "gateway-alerts-name-override": GATEWAY_AND_ALERTS,
    "production": production_values(),
    "cnpg-everything-on": EVERYTHING_ON,
    "external-password-no-persistence": EXTERNAL_WITH_PASSWORD,
}


def render(chart, values: dict | None = None) -> list[dict]:
    manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def kinds(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    (doc,) = kinds(docs, kind)
    return doc


def kube_versions() -> list[str]:
    minimum = re.search(r"(\d+\.\d+)", helm_chart_metadata()["kubeVersion"]).group(1)
    return [f"{minimum}.0", kubernetes_validate.latest_version()]


def helm_chart_metadata() -> dict:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


@pytest.mark.parametrize("case", RENDER_CASES)
def test_chart_renders_to_manifests_the_kubernetes_schema_accepts(chart, case):
    docs = render(chart, RENDER_CASES[case])
    assert docs
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        name = doc.get("metadata", {}).get("name")
        assert key[0] and key[1] and name, f"{case}: a manifest without apiVersion/kind/name"
        if key in CUSTOM_RESOURCES:
            continue
        for version in kube_versions():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{case}: {key[1]} {name} on Kubernetes {version}: {exc}")


@pytest.mark.parametrize("case", RENDER_CASES)
def test_chart_passes_helm_lint(case):
    report = helm.lint(CHART, RENDER_CASES[case], strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    assert problems == [], problems


def test_values_schema_rejects_typos(chart):
    with pytest.raises(helm.HelmValuesError, match="replicas"):
        chart.render({"replicas": 3}, name=RELEASE, namespace=NAMESPACE)
    with pytest.raises(helm.HelmValuesError, match="accessMode"):
        chart.render({"persistence": {"accessMode": "RWX"}}, name=RELEASE, namespace=NAMESPACE)


def test_several_replicas_on_a_read_write_once_volume_is_refused(chart):
    with pytest.raises(helm.HelmRenderError, match="ReadWriteMany"):
        render(chart, {"replicaCount": 2, "persistence": {"accessMode": "ReadWriteOnce"}})
    with pytest.raises(helm.HelmRenderError, match="ReadWriteMany"):
        render(chart, {"replicaCount": 2, "persistence": {"enabled": False}})


S3_VALUES = {
    "replicaCount": 3,
    "persistence": {"enabled": False},
    "storage": {
        "type": "s3",
        "s3": {"bucket": "music", "existingSecret": "mosic-s3", "endpointUrl": "http://s3:9000"},
    },
}


def test_several_replicas_on_an_object_store_need_no_shared_volume(chart):
    docs = render(chart, S3_VALUES)
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert not kinds(docs, "PersistentVolumeClaim")
    env = env_of(containers(deployment)["mosic"])
    assert env["MOSIC_STORAGE"]["value"] == "s3"
    assert env["MOSIC_S3_BUCKET"]["value"] == "music"
    assert env["MOSIC_S3_ENDPOINT_URL"]["value"] == "http://s3:9000"
    assert env["MOSIC_S3_STREAM"]["value"] == "redirect"
    assert env["MOSIC_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "mosic-s3",
        "key": "secret-access-key",
    }
    assert "MOSIC_STORAGE" not in env_of(containers(one(render(chart, {}), "Deployment"))["mosic"])


def test_an_object_store_without_its_bucket_or_secret_is_refused(chart):
    with pytest.raises(helm.HelmRenderError, match="storage.s3.bucket"):
        render(chart, {"storage": {"type": "s3", "s3": {"existingSecret": "x"}}})
    with pytest.raises(helm.HelmRenderError, match="storage.s3.existingSecret"):
        render(chart, {"storage": {"type": "s3", "s3": {"bucket": "music"}}})


def test_several_replicas_on_a_shared_claim_the_user_vouches_for(chart):
    docs = render(
        chart,
        {
            "replicaCount": 2,
            "persistence": {"existingClaim": "media", "accessMode": "ReadWriteMany"},
        },
    )
    assert not kinds(docs, "PersistentVolumeClaim")
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "media"


def test_chart_refuses_an_ambiguous_or_missing_database(chart):
    with pytest.raises(helm.HelmRenderError, match="choose one"):
        render(chart, {"cnpg": {"enabled": True}})
    with pytest.raises(helm.HelmRenderError, match="externalDatabase.host"):
        render(chart, {"postgresql": {"enabled": False}})
    with pytest.raises(helm.HelmRenderError, match="existingSecret"):
        render(chart, {"postgresql": {"enabled": False}, "externalDatabase": {"host": "db"}})


def containers(deployment: dict) -> dict[str, dict]:
    spec = deployment["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def test_scheduled_backups_go_to_a_claim_of_their_own(chart):
    plain = containers(one(render(chart), "Deployment"))["mosic"]
    assert "MOSIC_BACKUP_DIR" not in env_of(plain)
    values = {"backups": {"existingClaim": "mosic-backups", "intervalHours": 6, "keep": 3}}
    deployment = one(render(chart, values), "Deployment")
    mosic = containers(deployment)["mosic"]
    env = {name: entry["value"] for name, entry in env_of(mosic).items() if "value" in entry}
    assert env["MOSIC_BACKUP_DIR"] == "/backups"
    assert (env["MOSIC_BACKUP_INTERVAL_H"], env["MOSIC_BACKUP_KEEP"]) == ("6", "3")
    assert {"name": "backups", "mountPath": "/backups"} in mosic["volumeMounts"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"]["claimName"] == "mosic-backups"


def test_music_folders_are_mounted_read_only_in_every_replica(chart):
    plain = containers(one(render(chart), "Deployment"))["mosic"]
    assert "MOSIC_LIBRARY_DIRS" not in env_of(plain)
    folders = [
        {"name": "Music", "existingClaim": "nas-music"},
        {"name": "Vinyl", "hostPath": "/srv/vinyl"},
    ]
    values = {
        "replicaCount": 3,
        "persistence": {"accessMode": "ReadWriteMany"},
        "musicFolders": {"folders": folders, "scanIntervalSeconds": 600},
    }
    deployment = one(render(chart, values), "Deployment")
    assert deployment["spec"]["replicas"] == 3
    mosic = containers(deployment)["mosic"]
    env = {name: entry["value"] for name, entry in env_of(mosic).items() if "value" in entry}
    assert env["MOSIC_LIBRARY_DIRS"] == "/music/Music:/music/Vinyl"
    assert env["MOSIC_LIBRARY_SCAN_INTERVAL_S"] == "600"
    mounts = {m["name"]: m for m in mosic["volumeMounts"]}
    assert mounts["music-0"] == {"name": "music-0", "mountPath": "/music/Music", "readOnly": True}
    assert mounts["music-1"]["mountPath"] == "/music/Vinyl" and mounts["music-1"]["readOnly"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["music-0"]["persistentVolumeClaim"] == {
        "claimName": "nas-music",
        "readOnly": True,
    }
    assert volumes["music-1"]["hostPath"] == {"path": "/srv/vinyl", "type": "Directory"}
    with pytest.raises(helm.HelmValuesError):
        render(chart, {"musicFolders": {"folders": [{"name": "Nowhere"}]}})


def readme_section(heading: str) -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme[readme.index(heading) :]


def test_the_readme_music_folders_values_mount_them_read_only(chart):
    # No cluster here: the README's values are rendered, as helm install -f would.
    block = re.search(r"```yaml\n(.*?)```", readme_section("### Under Compose and Helm"), re.S)
    values = yaml.safe_load(block.group(1))
    mosic = containers(one(render(chart, values), "Deployment"))["mosic"]
    env = {name: entry["value"] for name, entry in env_of(mosic).items() if "value" in entry}
    assert env["MOSIC_LIBRARY_DIRS"] == "/music/Music:/music/Vinyl"
    music = [m for m in mosic["volumeMounts"] if m["mountPath"].startswith("/music/")]
    assert [(m["mountPath"], m["readOnly"]) for m in music] == [
        ("/music/Music", True),
        ("/music/Vinyl", True),
    ]


def test_the_readme_helm_commands_push_the_image_the_chart_pulls_and_read_its_key(chart):
    """Without a registry or a cluster, what can be held true: the image built and pushed is the
    one the installed chart runs, and the key's command is the one its notes print."""
    block = re.search(r"```sh\n(.*?)```", readme_section("### Helm\n"), re.S).group(1)
    lines = block.replace("\\\n", "").splitlines()
    [build] = [shlex.split(line) for line in lines if line.startswith("docker build")]
    [push] = [shlex.split(line) for line in lines if line.startswith("docker push")]
    [install] = [shlex.split(line) for line in lines if line.startswith("helm install")]
    [key] = [line for line in lines if line.startswith("export KEY=")]
    reference = build[build.index("-t") + 1]
    assert push == ["docker", "push", reference]
    repository, tag = reference.rsplit(":", 1)
    assert tag == helm_chart_metadata()["appVersion"]  # image.tag left empty: appVersion
    assert install[:4] == ["helm", "install", "mosic", "./helm/mosic"]
    assert f"image.repository={repository}" in install
    namespace = install[install.index("--namespace") + 1]
    values = {"image": {"repository": repository}}
    manifests = chart.render(values, name=install[2], namespace=namespace, is_install=True)
    deployment = next(
        doc
        for doc in yaml.safe_load_all(manifests["mosic/templates/deployment.yaml"])
        if doc and doc["kind"] == "Deployment"
    )
    assert containers(deployment)["mosic"]["image"] == reference
    assert key.strip() in manifests["mosic/templates/NOTES.txt"]


def test_default_release_runs_mosic_like_the_image_on_the_bundled_postgresql(chart):
    docs = render(chart)
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    by_name = containers(deployment)
    server, migrate = by_name["mosic"], by_name["migrate"]

    assert server["command"] == image_cmd()
    assert migrate["command"] == ["mosic", "migrate"]
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["ports"][0]["containerPort"] == CONTAINER_PORT
    assert server["resources"]["requests"] and server["resources"]["limits"]

    # Non-root as the image's user, read-only root, a writable /tmp.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image_uid()
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert server["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "persistentVolumeClaim" in volumes[mounts["/data"]]
    # A Service named "mosic" would otherwise inject MOSIC_PORT=tcp://...
    assert pod["enableServiceLinks"] is False

    for container in (server, migrate):
        env = env_of(container)
        names = {n for n in env if n.startswith("MOSIC_")}
        assert names <= mosic_setting_names(), names - mosic_setting_names()
        assert env["MOSIC_DATA_DIR"]["value"] == "/data"
        assert env["MOSIC_DB_HOST"]["value"] == f"{RELEASE}-postgresql"
        for secret in ("MOSIC_API_KEY", "MOSIC_SIGNING_SECRET", "MOSIC_DB_PASSWORD"):
            ref = env[secret]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == RELEASE

    secret = one(docs, "Secret")
    assert set(secret["data"]) == {"api-key", "signing-secret", "db-password"}
    statefulset = one(docs, "StatefulSet")
    pg = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert pg["image"].startswith("postgres:")
    assert env_of(pg)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": RELEASE,
        "key": "db-password",
    }
    assert one(docs, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert not any(
        d["metadata"].get("annotations", {}).get("helm.sh/hook") == "pre-install" for d in docs
    )


def test_the_mosic_service_selects_mosic_pods_only(chart):
    docs = render(chart)
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    pg_labels = one(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    services = {s["metadata"]["name"]: s for s in kinds(docs, "Service")}
    selector = services[RELEASE]["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    assert not selector.items() <= pg_labels.items()
    pg_selector = services[f"{RELEASE}-postgresql"]["spec"]["selector"]
    assert pg_selector.items() <= pg_labels.items()
    assert not pg_selector.items() <= pod_labels.items()


def test_prometheus_finds_the_pods_and_grafana_the_dashboard(chart):
    docs = render(chart)
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert not kinds(docs, "ServiceMonitor")

    (dashboard,) = [c for c in kinds(docs, "ConfigMap") if "mosic.json" in c.get("data", {})]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["mosic.json"] == DASHBOARD.read_text()
    json.loads(dashboard["data"]["mosic.json"])


def test_the_chart_ships_the_same_dashboard_file():
    assert (CHART / "dashboards/mosic.json").read_bytes() == DASHBOARD.read_bytes()


NGINX_SITE = REPO / "deploy/nginx/mosic-auth-request.conf"


def test_the_chart_ships_the_same_nginx_site():
    assert (CHART / "files/mosic-auth-request.conf").read_bytes() == NGINX_SITE.read_bytes()


def test_the_auth_request_site_keeps_sendfile_for_the_question_too():
    """nginx lets a subrequest's location decide sendfile for the whole connection: set only
    where the file is sent, the question (a location without it) turned it off, and nginx
    read and copied every file. So it is set for the server, and no location unsets it."""
    lines = [line.split("#")[0].strip() for line in NGINX_SITE.read_text().splitlines()]
    depth, server_level = 0, []
    for line in lines:
        if depth == 1:
            server_level.append(line)
        depth += line.count("{") - line.count("}")
    assert "sendfile on;" in server_level
    assert "sendfile off;" not in lines


def test_the_nginx_sidecar_sends_the_files_and_the_service_points_at_it(chart):
    docs = render(chart, NGINX_SIDECAR)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    sidecar = containers(one(docs, "Deployment"))["nginx"]
    assert env_of(containers(one(docs, "Deployment"))["mosic"])["MOSIC_NGINX_AUTH_REQUEST"] == {
        "name": "MOSIC_NGINX_AUTH_REQUEST",
        "value": "true",
    }
    mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
    assert mounts["data"] == {"name": "data", "mountPath": "/data", "readOnly": True}
    assert sidecar["ports"] == [{"name": "nginx", "containerPort": 8080, "protocol": "TCP"}]
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # reads what Mosic wrote
    assert mosic_service(docs)["spec"]["ports"][0]["targetPort"] == "nginx"
    (config,) = [d for d in kinds(docs, "ConfigMap") if d["metadata"]["name"].endswith("-nginx")]
    site = config["data"]["default.conf"]
    # The shipped site, only its three marked values set for the pod.
    assert (
        site.strip()
        == NGINX_SITE.read_text()
        .replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{CONTAINER_PORT};")
        .replace("listen 80;", "listen 8080;")
        .replace("root /var/lib/mosic/media;", "root /data/media;")
        .strip()
    )
    policy = next(p for p in kinds(docs, "NetworkPolicy") if p["metadata"]["name"] == RELEASE)
    assert {"port": "nginx", "protocol": "TCP"} in policy["spec"]["ingress"][0]["ports"]
    # Without it: no sidecar, the Service on Mosic's own port.
    plain = render(chart, {})
    assert "nginx" not in containers(one(plain, "Deployment"))
    assert mosic_service(plain)["spec"]["ports"][0]["targetPort"] == "http"
    with pytest.raises(helm.HelmRenderError, match="storage.type=local"):
        render(chart, {**S3_VALUES, "nginx": {"enabled": True}})


def test_compose_offers_nginx_asking_mosic_before_streams():
    services = compose()["services"]
    nginx = services["nginx"]
    assert nginx["profiles"] == ["nginx"]  # off unless asked for
    site = NGINX_SITE.read_text()
    assert "server 127.0.0.1:8000;" in site and "root /var/lib/mosic/media;" in site
    # The shipped file, Mosic's address set to the service's; the media volume where the
    # file's root says, read-only.
    assert "s/server 127.0.0.1:8000;/server mosic:8000;/" in " ".join(nginx["command"])
    assert (
        "./deploy/nginx/mosic-auth-request.conf:/etc/mosic/mosic-auth-request.conf:ro"
        in (nginx["volumes"])
    )
    assert "mosic-data:/var/lib/mosic:ro" in nginx["volumes"]
    env = service_env(services["mosic"])
    assert env["MOSIC_NGINX_AUTH_REQUEST"] == "${MOSIC_NGINX_AUTH_REQUEST:-false}"


def test_production_values_run_three_replicas_on_shared_storage_and_external_postgres(chart):
    docs = render(chart, production_values())
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert one(docs, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]
    assert not kinds(docs, "StatefulSet"), "no bundled PostgreSQL"
    assert not kinds(docs, "Secret"), "every secret comes from an existing Secret"

    env = env_of(containers(deployment)["mosic"])
    values = production_values()
    assert env["MOSIC_DB_HOST"]["value"] == values["externalDatabase"]["host"]
    assert env["MOSIC_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": values["externalDatabase"]["existingSecret"],
        "key": values["externalDatabase"]["existingSecretPasswordKey"],
    }
    assert env["MOSIC_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mosic-auth"

    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    # Scraped on the metrics port: the Ingress's port no longer serves /metrics.
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert "metrics" in [p["name"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


def test_cloudnativepg_cluster_supplies_host_and_password(chart):
    docs = render(chart, EVERYTHING_ON)
    cluster = one(docs, "Cluster")
    name = cluster["metadata"]["name"]
    assert cluster["spec"]["bootstrap"]["initdb"] == {"database": "mosic", "owner": "mosic"}
    env = env_of(containers(one(docs, "Deployment"))["mosic"])
    assert env["MOSIC_DB_HOST"]["value"] == f"{name}-rw"
    assert env["MOSIC_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{name}-app",
        "key": "password",
    }
    assert env["MOSIC_METRICS_PORT"]["value"] == "9100"
    assert one(docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"


def test_notes_tell_how_to_read_the_api_key(chart):
    notes = chart.render({}, name=RELEASE, namespace=NAMESPACE)["mosic/templates/NOTES.txt"]
    assert f"kubectl get secret --namespace {NAMESPACE} {RELEASE}" in notes
    assert "{.data.api-key}" in notes
    production = chart.render(production_values(), name=RELEASE, namespace=NAMESPACE)
    assert "mosic-auth" in production["mosic/templates/NOTES.txt"]


# Objects passed to Kubernetes whole: documented as one value, not key by key.
FREE_FORM = {
    "resources",
    "podSecurityContext",
    "securityContext",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "updateStrategy",
    "annotations",
    "labels",
    "podAnnotations",
    "podLabels",
    "nodeSelector",
    "affinity",
    "hosts",
}


def value_paths(values: dict, prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in FREE_FORM:
            paths.extend(value_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def test_readme_documents_every_value():
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([\w.-]+)` \|", readme, re.M))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [p for p in value_paths(values) if p not in documented]
    assert not missing, f"helm/mosic/README.md does not document {missing}"
    stale = documented - set(value_paths(values))
    assert not stale, f"helm/mosic/README.md documents values that do not exist: {stale}"


# ------------------------------------------------------------------------------ production review


def mosic_service(docs: list[dict]) -> dict:
    return next(
        d
        for d in kinds(docs, "Service")
        if d["metadata"]["name"].startswith(RELEASE)
        and d["spec"]["selector"].get("app.kubernetes.io/component") == "server"
    )


def chart_env(docs: list[dict]) -> dict[str, dict]:
    return env_of(containers(one(docs, "Deployment"))["mosic"])


def secret_data(docs: list[dict]) -> dict[str, str]:
    return one(docs, "Secret")["data"]


def test_rendering_without_a_cluster_makes_new_secrets_so_gitops_must_give_them(chart):
    # What Argo CD does on every sync: render with no cluster to look the Secret up in.
    assert secret_data(render(chart))["api-key"] != secret_data(render(chart))["api-key"]

    gitops = {"generateSecrets": False}
    with pytest.raises(
        helm.HelmRenderError, match="generateSecrets=false: set auth.existingSecret"
    ):
        render(chart, gitops)
    with pytest.raises(helm.HelmRenderError, match="postgresql.auth.existingSecret"):
        render(chart, gitops | {"auth": {"existingSecret": "mosic-auth"}})

    given = gitops | {
        "auth": {"apiKey": "k" * 32, "signingSecret": "s" * 32},
        "postgresql": {"auth": {"password": "p" * 24}},
    }
    first, second = secret_data(render(chart, given)), secret_data(render(chart, given))
    assert first == second, "the same values render the same Secret on every sync"
    existing = gitops | {
        "auth": {"existingSecret": "mosic-auth"},
        "postgresql": {"auth": {"existingSecret": "mosic-db"}},
    }
    assert not kinds(render(chart, existing), "Secret")
    assert production_values()["generateSecrets"] is False
    render(chart, production_values())  # every secret there comes from an existingSecret


def test_metrics_leave_the_api_port_by_default(chart, monkeypatch):
    from mosic.settings import load_settings

    docs = render(chart, {"ingress": {"enabled": True, "className": "nginx"}})
    env = chart_env(docs)
    assert env["MOSIC_METRICS_PORT"]["value"] == str(METRICS_PORT)
    assert env["MOSIC_METRICS_ON_API_PORT"]["value"] == "false"
    service = mosic_service(docs)
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "http": 8000,
        "metrics": METRICS_PORT,
    }
    backends = [
        path["backend"]["service"]["port"]["name"]
        for rule in one(docs, "Ingress")["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends == ["http"]

    # Mosic reads the chart's values as the chart means them.
    for name in [n for n in os.environ if n.startswith("MOSIC_")]:
        monkeypatch.delenv(name)
    for name, item in env.items():
        if name.startswith("MOSIC_") and "value" in item:
            monkeypatch.setenv(name, item["value"])
    settings = load_settings(env_file=None)
    assert settings.metrics_port == METRICS_PORT
    assert settings.metrics_on_api_port is False

    on = chart_env(render(chart, {"metrics": {"onApiPort": True}}))
    assert on["MOSIC_METRICS_ON_API_PORT"]["value"] == "true"
    same_port = chart_env(render(chart, {"metrics": {"port": ""}}))
    assert "MOSIC_METRICS_PORT" not in same_port and "MOSIC_METRICS_ON_API_PORT" not in same_port


def network_policies(docs: list[dict]) -> dict[str, dict]:
    return {p["metadata"]["name"]: p["spec"] for p in kinds(docs, "NetworkPolicy")}


def test_only_mosic_reaches_the_bundled_postgresql_and_only_prometheus_the_metrics(chart):
    docs = render(chart)
    mosic_pod = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    pg_pod = one(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    policies = network_policies(docs)

    pg = policies[f"{RELEASE}-postgresql"]
    assert pg["podSelector"]["matchLabels"].items() <= pg_pod.items()
    assert not pg["podSelector"]["matchLabels"].items() <= mosic_pod.items()
    (rule,) = pg["ingress"]
    (peer,) = rule["from"]
    assert peer["podSelector"]["matchLabels"].items() <= mosic_pod.items()
    assert not peer["podSelector"]["matchLabels"].items() <= pg_pod.items()
    assert rule["ports"] == [{"port": 5432, "protocol": "TCP"}]

    server = policies[RELEASE]
    assert server["podSelector"]["matchLabels"].items() <= mosic_pod.items()
    by_port = {r["ports"][0]["port"]: r for r in server["ingress"]}
    assert "from" not in by_port["http"], "the API is open to the Ingress controller and pods"
    assert by_port["metrics"]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    ports = {p["name"] for p in containers(one(docs, "Deployment"))["mosic"]["ports"]}
    assert set(by_port) <= ports, "named ports the container has"

    # Restricted HTTP: the given peers, and the helm test pod that asks /readyz.
    limited = render(chart, GATEWAY_AND_ALERTS)
    http = {
        r["ports"][0]["port"]: r for r in network_policies(limited)[f"{RELEASE}-tunes"]["ingress"]
    }
    peers = http["http"]["from"]
    assert peers[0] == GATEWAY_AND_ALERTS["networkPolicy"]["httpFrom"][0]
    (test_pod,) = kinds(limited, "Pod")
    assert peers[1]["podSelector"]["matchLabels"].items() <= test_pod["metadata"]["labels"].items()
    # No bundled database, no policy for it.
    assert list(network_policies(render(chart, EXTERNAL_WITH_PASSWORD))) == [RELEASE]


def test_a_terminating_pod_keeps_serving_while_it_leaves_the_endpoints(chart):
    deployment = one(render(chart), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    server = containers(deployment)["mosic"]
    command = server["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and int(command[1]) >= 5
    assert pod["terminationGracePeriodSeconds"] >= int(command[1]) + GUNICORN_GRACE_S
    with pytest.raises(helm.HelmRenderError, match="terminationGracePeriodSeconds=30"):
        render(chart, {"terminationGracePeriodSeconds": 30})
    none = containers(one(render(chart, {"preStopSleepSeconds": 0}), "Deployment"))["mosic"]
    assert "lifecycle" not in none


def test_an_httproute_beside_the_ingress_with_stream_timeouts(chart):
    docs = render(chart, GATEWAY_AND_ALERTS)
    route = one(docs, "HTTPRoute")
    service = mosic_service(docs)
    assert route["spec"]["parentRefs"] == GATEWAY_AND_ALERTS["httpRoute"]["parentRefs"]
    assert route["spec"]["hostnames"] == ["mosic.example.com"]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert rule["backendRefs"] == [
        {"name": service["metadata"]["name"], "port": service["spec"]["ports"][0]["port"]}
    ]
    assert rule["timeouts"] == {"request": "3600s", "backendRequest": "3600s"}
    assert re.fullmatch(r"([0-9]{1,5}(h|m|s|ms)){1,4}", rule["timeouts"]["request"])
    with pytest.raises(helm.HelmRenderError, match="httpRoute.parentRefs"):
        render(chart, {"httpRoute": {"enabled": True}})


def test_an_nginx_ingress_takes_uploads_of_max_upload_size_and_long_streams(chart):
    values = {"ingress": {"enabled": True, "className": "nginx"}, "maxUploadMB": 500}
    annotations = one(render(chart, values), "Ingress")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "501m"
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    # The user's annotations win; other controllers get none of nginx's.
    mine = {"nginx.ingress.kubernetes.io/proxy-read-timeout": "60"}
    values["ingress"]["annotations"] = mine
    annotations = one(render(chart, values), "Ingress")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "60"
    traefik = one(render(chart, {"ingress": {"enabled": True, "className": "traefik"}}), "Ingress")
    assert "annotations" not in traefik["metadata"]


def test_topology_spread_selects_the_pods_under_a_name_override(chart):
    for values in (
        production_values() | {"nameOverride": "tunes"},
        production_values() | {"fullnameOverride": "radio"},
        GATEWAY_AND_ALERTS,
    ):
        pod = one(render(chart, values), "Deployment")["spec"]["template"]
        (constraint,) = pod["spec"]["topologySpreadConstraints"]
        assert (
            constraint["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        )
    own = {"matchLabels": {"team": "audio"}}
    given = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}]
    given[0]["labelSelector"] = own
    pod = one(render(chart, {"topologySpreadConstraints": given}), "Deployment")["spec"]["template"]
    assert pod["spec"]["topologySpreadConstraints"][0]["labelSelector"] == own


def test_the_disruption_budget_never_blocks_a_node_drain(chart):
    single = one(render(chart, {"podDisruptionBudget": {"enabled": True}}), "PodDisruptionBudget")
    assert single["spec"]["maxUnavailable"] == 1 and "minAvailable" not in single["spec"]
    with pytest.raises(helm.HelmRenderError, match="no node could be drained"):
        render(
            chart,
            {"podDisruptionBudget": {"enabled": True, "maxUnavailable": "", "minAvailable": 1}},
        )
    with pytest.raises(helm.HelmRenderError, match="not both"):
        render(chart, {"podDisruptionBudget": {"enabled": True, "minAvailable": 1}})
    assert one(render(chart, production_values()), "PodDisruptionBudget")["spec"] == {
        "minAvailable": 2,
        "selector": {"matchLabels": mosic_service(render(chart))["spec"]["selector"]},
    }


DASHBOARD_VARIABLES = ("namespace", "job", "instance")


def test_the_dashboard_tells_releases_apart_by_namespace_job_and_instance():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name in DASHBOARD_VARIABLES:
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert variable["includeAll"] is True and variable["allValue"] == ".*"
        assert f", {name})" in variable["query"]["query"]
    selectors = 0
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for metric, matchers in re.findall(r"\b(mosic_\w+)(\{[^}]*\})?", target["expr"]):
                selectors += 1
                for name in DASHBOARD_VARIABLES:
                    assert f'{name}=~"${name}"' in matchers, f"{panel['title']}: {metric}"
    assert selectors >= 20


def test_the_prometheus_rule_alerts_on_errors_downtime_readiness_and_the_database(chart, tmp_path):
    docs = render(chart, production_values())
    rule = one(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (group,) = rule["spec"]["groups"]
    names = [r["alert"] for r in group["rules"]]
    assert names == ["MosicHighErrorRate", "MosicDown", "MosicNotReady", "MosicDatabaseErrors"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    check = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules)],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr

    # Ten minutes at 10% 5xx fires MosicHighErrorRate; a target down five minutes, MosicDown.
    sel = f'job="mosic",namespace="{NAMESPACE}"'
    cases = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f'mosic_total_api_requests_total{{{sel},status="200"}}',
                     "values": "0+90x30"},
                    {"series": f'mosic_total_api_requests_total{{{sel},status="500"}}',
                     "values": "0+10x30"},
                    {"series": f'up{{{sel},instance="10.0.0.7:9100"}}', "values": "0x30"},
                    {"series": f'mosic_database_errors_total{{{sel},kind="query"}}',
                     "values": "0x30"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "MosicHighErrorRate",
                        "exp_alerts": [{
                            "exp_labels": {"severity": "warning", "job": "mosic",
                                           "namespace": NAMESPACE},
                            "exp_annotations": {
                                "summary": "Mosic answers more than 5% of requests with 5xx",
                                "description": f"10% of requests in {NAMESPACE} failed over "
                                "the last 5 minutes.",
                            },
                        }],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "MosicDown",
                        "exp_alerts": [{
                            "exp_labels": {"severity": "critical", "job": "mosic",
                                           "namespace": NAMESPACE, "instance": "10.0.0.7:9100"},
                            "exp_annotations": {
                                "summary": "Prometheus cannot scrape a Mosic pod",
                                "description": f"10.0.0.7:9100 in {NAMESPACE} has not answered "
                                "/metrics for 5 minutes.",
                            },
                        }],
                    },
                    {"eval_time": "20m", "alertname": "MosicDatabaseErrors", "exp_alerts": []},
                ],
            }
        ],
    }  # fmt: skip
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump(cases))
    result = subprocess.run(
        [tool("promtool"), "test", "rules", str(tests)],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def notes(chart, values: dict) -> str:
    return chart.render(values, name=RELEASE, namespace=NAMESPACE)["mosic/templates/NOTES.txt"]


def test_notes_point_at_the_ingress_or_the_gateway_instead_of_a_port_forward(chart):
    ingress = notes(chart, {"ingress": {"enabled": True, "tls": [{"secretName": "t"}]}})
    assert 'curl -H "X-API-Key: $KEY" https://mosic.example.com/play' in ingress
    assert "127.0.0.1" not in ingress and "port-forward" not in ingress
    plain = notes(chart, {"ingress": {"enabled": True}})
    assert "http://mosic.example.com/play" in plain
    gateway = notes(chart, GATEWAY_AND_ALERTS)
    assert "https://mosic.example.com/play" in gateway and "port-forward" not in gateway
    default = notes(chart, {})
    assert "kubectl port-forward" in default and "http://127.0.0.1:8000/play" in default


def test_compose_hardens_mosic_and_checks_postgres_over_tcp():
    services = compose()["services"]
    mosic = services["mosic"]
    assert mosic["read_only"] is True and "/tmp" in mosic["tmpfs"]
    assert mosic["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in mosic["security_opt"]
    assert mosic["logging"]["options"]["max-size"] and mosic["logging"]["options"]["max-file"]
    assert mosic["mem_limit"]
    grace = int(re.fullmatch(r"(\d+)s", mosic["stop_grace_period"]).group(1))
    assert grace > GUNICORN_GRACE_S, "Compose's 10 s default would cut gunicorn's drain"
    pg = services["postgres"]
    assert int(re.fullmatch(r"(\d+)s", pg["stop_grace_period"]).group(1)) > 10
    check = " ".join(pg["healthcheck"]["test"])
    assert "pg_isready" in check and "-h 127.0.0.1" in check, "TCP, not the Unix socket"


def locked_names(lock: Path) -> dict[str, list[str]]:
    """Each pinned package of a lock file, with the hashes pinned for it."""
    pins: dict[str, list[str]] = {}
    current = None
    for line in lock.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-]+)==\S+", line):
            current = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            pins[current] = []
        elif current and (found := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            pins[current].append(found.group(1))
    return pins


@pytest.mark.parametrize(
    "lock, extras", [("requirements.lock", ()), ("requirements-test.lock", ("test",))]
)
def test_the_locks_pin_every_dependency_with_hashes(lock, extras):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    names = {
        re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", d).group(0)).lower() for d in wanted
    }
    pins = locked_names(REPO / lock)
    assert names - set(pins) == set(), f"{lock} is stale: run .ci/lock"
    assert all(pins.values()), f"{lock} has pins without hashes"
    assert "--find-links" not in (REPO / lock).read_text()  # no path of this machine
