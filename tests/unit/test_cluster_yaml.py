from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_yaml_is_valid_for_the_ray_cluster_launcher() -> None:
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    jsonschema.validate(config, schema)

    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert any(t["resources"].get("GPU", 0) > 1 and t["max_workers"] > t["min_workers"] for t in workers)
    commands = " ".join(config["head_start_ray_commands"])
    assert "mlflow server" in commands and "--backend-store-uri sqlite:" in commands
    assert "0.0.0.0" not in commands and "--dashboard-host=127.0.0.1" in commands
    assert "pkill" not in commands and "server.pid" in commands  # MLflow is stopped by its own pid
    assert "--app-name basic-auth" in (ROOT / "cluster.yaml").read_text()  # how to require a login
    assert any("pip install" in c and "prunetune" in c for c in config["setup_commands"])
