"""The deployment files stay in step with the code: commands exist, settings are known ones."""

import configparser
import shlex
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from service.config import Settings, parse_bind

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NBRELAY = str(Path(sys.executable).with_name("nbrelay"))
KNOWN_VARIABLES = {f.metadata["env"] for f in fields(Settings)}
SECRET_VARIABLES = {f.metadata["env"] for f in fields(Settings) if f.metadata.get("secret")}


def subcommand_exists(argv: list[str]) -> bool:
    assert Path(argv[0]).name == "nbrelay", argv
    result = subprocess.run([NBRELAY, argv[1], "--help"], capture_output=True, timeout=60)
    return result.returncode == 0


def kubernetes_documents() -> list[dict]:
    documents = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def containers(kind: str | None = None) -> list[dict]:
    found = []
    for doc in kubernetes_documents():
        if doc["kind"] in ("Deployment", "StatefulSet") and kind in (None, doc["kind"]):
            found.extend(doc["spec"]["template"]["spec"]["containers"])
    return found


def test_compose_runs_existing_commands_against_durable_redis():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "web", "worker", "scheduler"} <= services.keys()
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--maxmemory-policy noeviction" in redis_command
    for name in ("web", "worker", "scheduler"):
        assert services[name]["command"][:2] == ["nbrelay", name]
        assert subcommand_exists(services[name]["command"])


def test_kubernetes_manifests_use_existing_commands_and_known_settings():
    nbrelay_containers = [c for c in containers() if c["image"].startswith("nbrelay")]
    assert {c["name"] for c in nbrelay_containers} == {"web", "worker", "scheduler"}
    for container in nbrelay_containers:
        assert subcommand_exists(container["command"])
    web = next(c for c in nbrelay_containers if c["name"] == "web")
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    documents = {doc["metadata"]["name"]: doc for doc in kubernetes_documents()}
    assert set(documents["nbrelay-config"]["data"]) <= KNOWN_VARIABLES - SECRET_VARIABLES
    assert set(documents["nbrelay-secrets"]["stringData"]) <= SECRET_VARIABLES
    scheduler = documents["nbrelay-scheduler"]
    assert scheduler["spec"]["replicas"] == 1


def admin_bind(argv: list[str]) -> tuple[str, int]:
    """The --admin-bind of an `nbrelay web` command line (which must have one)."""
    assert "--admin-bind" in argv, argv
    return parse_bind("--admin-bind", argv[argv.index("--admin-bind") + 1])


def test_compose_publishes_the_admin_listener_on_loopback_only():
    web = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["web"]
    _, admin_port = admin_bind(web["command"])
    public_port = int(web["command"][web["command"].index("--port") + 1])
    published = {}
    for mapping in web["ports"]:
        host_side, _, container_port = mapping.rpartition(":")
        published[int(container_port)] = host_side
    assert published[admin_port] == "127.0.0.1:8090"
    assert published[public_port] == str(public_port)  # the public listener only


def test_kubernetes_ingress_routes_only_the_public_surface():
    documents = kubernetes_documents()
    (ingress,) = [doc for doc in documents if doc["kind"] == "Ingress"]
    services = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "Service"}
    (web,) = [c for c in containers() if c["name"] == "web"]
    ports = {port["name"]: port["containerPort"] for port in web["ports"]}
    assert admin_bind(web["command"])[1] == ports["admin"]
    assert int(web["command"][web["command"].index("--port") + 1]) == ports["public"]

    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert {(p["path"], p["pathType"]) for p in paths} == {
        ("/callbacks/", "Prefix"),
        ("/hooks/losant", "Exact"),
    }
    for path in paths:
        backend = path["backend"]["service"]
        service = services[backend["name"]]
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"]]
        assert port["targetPort"] == "public"
    admin = services["nbrelay-admin"]
    assert admin["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert [p["targetPort"] for p in admin["spec"]["ports"]] == ["admin"]
    assert all(p["targetPort"] != "admin" for p in services["nbrelay-web"]["spec"]["ports"])
    annotations = next(
        d for d in documents if d["metadata"]["name"] == "nbrelay-web" and d["kind"] == "Deployment"
    )["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["admin"]


def test_systemd_web_keeps_the_admin_listener_local():
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(DEPLOY / "systemd" / "nbrelay-web.service")
    host, _ = admin_bind(shlex.split(parser["Service"]["ExecStart"]))
    assert host == "127.0.0.1"


def test_kubernetes_redis_is_durable():
    (redis,) = [c for c in containers("StatefulSet") if c["name"] == "redis"]
    args = " ".join(redis["args"])
    assert "--appendonly yes" in args and "--maxmemory-policy noeviction" in args


def test_env_example_names_only_known_settings():
    names = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "nbrelay.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert names <= KNOWN_VARIABLES


@pytest.mark.parametrize(
    "unit", sorted((DEPLOY / "systemd").glob("*.service")), ids=lambda p: p.name
)
def test_systemd_units_run_existing_commands(unit: Path):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(unit)
    argv = parser["Service"]["ExecStart"].split()
    assert subcommand_exists(argv)
    assert parser["Service"]["KillSignal"] == "SIGTERM"


def test_dockerfile_copies_files_that_exist():
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (DEPLOY.parent / source).exists(), source


def test_dockerfile_installs_the_runtime_lock_then_nbrelay_without_dependencies():
    runs = [
        line.removeprefix("RUN ").split()
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("RUN ") and " pip install " in line
    ]
    assert runs == [
        ["python", "-m", "pip", "install", "--require-hashes", "-r", "requirements/runtime.txt"],
        ["python", "-m", "pip", "install", "--no-deps", "--no-build-isolation", "."],
    ]
