#!/usr/bin/env python3
"""Checks the deployment files where no Docker engine or cluster runs:
YAML parses, manifests have the fields Kubernetes requires, the compose
file is structurally sound, the Dockerfile is multi-stage and non-root, and
the grace period covers the server's drain."""
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent / "deploy"
errors = []


def check(cond, message):
    if not cond:
        errors.append(message)


for path in sorted((ROOT / "k8s").glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        for key in ("apiVersion", "kind", "metadata"):
            check(key in doc, f"{path.name}: missing {key}")
        if doc.get("kind") == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            container = spec["containers"][0]
            check("livenessProbe" in container and "readinessProbe" in container, "deployment: probes")
            grace = spec.get("terminationGracePeriodSeconds", 30)
            config = yaml.safe_load((ROOT / "k8s" / "configmap.yaml").read_text())["data"]["config.toml"]
            drain = int(re.search(r"shutdown_grace_secs\s*=\s*(\d+)", config).group(1))
            check(grace >= drain + 5, f"deployment: grace {grace}s < drain {drain}s + 5s")
            check(spec["securityContext"].get("runAsNonRoot") is True, "deployment: runAsNonRoot")

compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
services = compose["services"]
replicas = [name for name in services if name.startswith("wasmwiz-")]
check(len(replicas) >= 2, "compose: at least two replicas")
for name in ("postgres", "redis", "nginx"):
    check(name in services, f"compose: service {name}")
for name in replicas:
    env = services[name]["environment"]
    check("DATABASE_URL" in env and "REDIS_URL" in env, f"compose: {name} shares PostgreSQL and Redis")
nginx = (ROOT / "nginx.conf").read_text()
check("grpc_pass" in nginx, "nginx: grpc_pass")
check(nginx.count("{") == nginx.count("}"), "nginx: balanced braces")

dockerfile = (ROOT / "Dockerfile").read_text()
stages = re.findall(r"^FROM\s+\S+(?:\s+AS\s+\S+)?", dockerfile, re.M)
check(len(stages) >= 2, "Dockerfile: multi-stage")
check(re.search(r"^USER\s+(?!root|0\b)", dockerfile, re.M) is not None, "Dockerfile: non-root USER")
for line in dockerfile.splitlines():
    word = line.split(" ", 1)[0]
    if word and not line.startswith("#") and not line.startswith(" ") and word.isupper():
        check(word in {"FROM", "RUN", "COPY", "WORKDIR", "ENV", "EXPOSE", "USER", "ENTRYPOINT", "CMD", "HEALTHCHECK", "ARG", "LABEL"}, f"Dockerfile: unknown instruction {word}")

if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"deploy files OK ({len(list((ROOT / 'k8s').glob('*.yaml')))} manifests, compose with {len(replicas)} replicas)")
