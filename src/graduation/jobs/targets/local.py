"""``local``: run here (CPU or one GPU) with ``registry jobs run``, or ``launch.sh`` from any directory."""

from __future__ import annotations

from typing import Any

from graduation.jobs.targets import Target, register


def launch(job: str, job_dir: str, cluster: Any) -> list[str]:
    return [f"registry jobs run {job}", f"{job_dir}/launch.sh local"]


def files(job: Any, env: Any, context: dict[str, Any]) -> dict[str, str]:
    return {"launch.sh": env.get_template("launch.sh.j2").render(**context)}


register(Target("local", "this machine (registry jobs run, or launch.sh)", "local", launch, files))
