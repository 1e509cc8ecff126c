# Reads one MLflow run back with MlflowClient for tests/mlflow_test.cpp and prints it as JSON:
#   {"status", "experiment", "name", "params": {k: v}, "metrics": {k: [[step, value], ...]},
#    "artifacts": [path, ...], "tags": {k: v}}
# usage: read_mlflow.py TRACKING_URI RUN_ID
import json
import os
import sys

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
from mlflow.tracking import MlflowClient  # noqa: E402


def artifacts(client, run_id, path=None):
    out = []
    for f in client.list_artifacts(run_id, path):
        out.extend(artifacts(client, run_id, f.path) if f.is_dir else [f.path])
    return out


def main(uri, run_id):
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    metrics = {}
    for key in run.data.metrics:
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        metrics[key] = [[m.step, m.value] for m in history]
    print(json.dumps({
        "status": run.info.status,
        "experiment": client.get_experiment(run.info.experiment_id).name,
        "name": run.info.run_name,
        "params": run.data.params,
        "metrics": metrics,
        "artifacts": sorted(artifacts(client, run_id)),
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
