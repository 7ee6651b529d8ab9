"""The scenario servers' deployments, the same for Tollgate and LiteLLM: the main ones plus bench/upstream.py's.

    bench-paced      a stream of 10 chunks a few ms apart (time to first chunk, gaps, head-of-line)
    bench-fail-500   always answers 500, falls back to bench-model (failover)
    bench-fail-429   always answers 429, falls back to bench-model (failover)
    bench-flood      the model a flood of wrong keys asks for: bench/upstream.py counts any call that gets through

No retries within a group and no cooldown, so that every failover call costs exactly one failed attempt and one
fallback, on both gateways.
"""

from pathlib import Path

import yaml

from bench.targets import DEPLOYMENTS, PEERS, deployment, tollgate_config

GROUPS = ["bench-model", "bench-stream", "bench-paced", "bench-fail-500", "bench-fail-429", "bench-flood"]
FALLBACKS = [{"bench-fail-500": ["bench-model"]}, {"bench-fail-429": ["bench-model"]}]
ROUTER = {"num_retries": 0, "allowed_fails": 1_000_000, "fallbacks": FALLBACKS}
BASE_DEPLOYMENTS = 10  # the scale scenario's "10 deployments": the six groups' plus fillers


def deployments(upstream: str) -> list[dict]:
    return [
        *DEPLOYMENTS,
        deployment("bench-paced", f"{upstream}/paced/v1"),
        deployment("bench-fail-500", f"{upstream}/fail500/v1"),
        deployment("bench-fail-429", f"{upstream}/fail429/v1"),
        deployment("bench-flood", f"{upstream}/flood/v1"),
    ]


def fillers(count: int, per_group: int = 5) -> list[dict]:
    """Deployments nobody calls, five to a model group, each its own (model_info.id), so the table is that big."""
    entries = []
    for index in range(count):
        entry = deployment(f"bench-filler-{index // per_group:03d}", "http://127.0.0.1:9100/v1")
        entry["model_info"] = {"id": f"bench-filler-{index:04d}"}
        entries.append(entry)
    return entries


def tollgate(upstream: str, total_deployments: int = BASE_DEPLOYMENTS) -> str:
    listed = deployments(upstream)
    return tollgate_config(listed + fillers(total_deployments - len(listed)), router_settings=ROUTER)


def litellm(upstream: str) -> str:
    """The peer's own config.yaml with the scenario deployments and router settings added."""
    document = yaml.safe_load(Path(PEERS / "litellm" / "config.yaml").read_text())
    known = {entry["model_name"] for entry in document["model_list"]}
    document["model_list"] += [entry for entry in deployments(upstream) if entry["model_name"] not in known]
    document["router_settings"] = {**ROUTER, "disable_cooldowns": True}
    return "# Written by bench/run.py: ../shared/peers/litellm/config.yaml plus the scenarios' deployments.\n" + (
        yaml.safe_dump(document, sort_keys=False)
    )
