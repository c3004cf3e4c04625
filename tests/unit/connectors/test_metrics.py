from importlib.metadata import version

from prometheus_client import CollectorRegistry, generate_latest

from connectors.runtime.metrics import Metrics, per_stage


def exported(registry: CollectorRegistry) -> dict[str, float]:
    """Every sample of the registry's exposition, by its line's name and labels."""
    lines = generate_latest(registry).decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if not line.startswith("#")}


def test_build_info_names_the_installed_version() -> None:
    """``ubridge_build_info`` says which version runs, so a dashboard can show a rollout."""
    samples = exported(Metrics(CollectorRegistry()).registry)
    (name,) = [n for n in samples if n.startswith("ubridge_build_info{")]
    assert f'version="{version("ubridge")}"' in name
    assert samples[name] == 1.0


def test_process_metrics_are_exported_by_every_registry() -> None:
    """CPU, resident memory and the Python version are there beside ubridge's own, in each process's registry."""
    for _ in range(2):  # a second registry in the same process (tests, the demo) works as well
        samples = exported(Metrics(CollectorRegistry()).registry)
        assert samples["process_resident_memory_bytes"] > 0
        assert "process_cpu_seconds_total" in samples
        assert any(name.startswith("python_info{") for name in samples)


def test_per_stage_reads_each_stage_s_value_of_one_metric() -> None:
    """Counters give their running total per stage (not their creation time); a gauge its value; unset stages none."""
    metrics = Metrics(CollectorRegistry())
    metrics.records_in.labels("router").inc(3)
    metrics.records_in.labels("normaliser").inc()
    metrics.consumer_lag.labels("router").set(7)
    assert per_stage(metrics.records_in) == {"router": 3.0, "normaliser": 1.0}
    assert per_stage(metrics.consumer_lag) == {"router": 7.0}
    assert per_stage(metrics.records_out) == {}
